"""Where monitoring listens when the config does not say: the client listener's host (so a
server on loopback does not expose /varz, /connz and /metrics on every interface), and
``http_port: -1`` takes any free port. Both servers, the same config."""

from __future__ import annotations

import re
import socket

import pytest
from tests.tools import http_get_json, wait_for

MONITOR_LINE = re.compile(r"Starting http monitor on ([0-9.]+):(\d+)")


@pytest.mark.parametrize("impl", ["nats-server", "scserver"])
def test_monitor_binds_the_client_host_and_a_random_port(servers, impl: str) -> None:
    sp = servers.start(impl, "http_port: -1\n")  # (listen: 127.0.0.1:<port> is prepended)
    wait_for(lambda: MONITOR_LINE.search(sp.log_text()), 10, what="the monitor's log line")
    found = MONITOR_LINE.search(sp.log_text())
    assert found is not None
    host, port = found.group(1), int(found.group(2))
    assert host == "127.0.0.1" and port > 0, found.group(0)
    varz = http_get_json("127.0.0.1", port, "/varz")
    assert varz["http_host"] == "127.0.0.1", varz["http_host"]
    # bound to 127.0.0.1 only: another loopback address of this host is refused
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=2):
        pass

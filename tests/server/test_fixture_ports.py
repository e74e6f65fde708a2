"""The ``servers`` fixture survives a port taken between picking it and the server binding it."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from tests.server import conftest
from tests.tools import LOOPBACK, free_port, read_info


@pytest.mark.parametrize("impl", conftest.IMPLS)
def test_server_whose_port_was_taken_starts_on_fresh_ports(
    servers: Any, monkeypatch: pytest.MonkeyPatch, impl: str
) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])
        # the globals the fixture's code reads (several conftest.py modules share one name)
        fixture_globals = type(servers)._start_once.__globals__
        monkeypatch.setitem(fixture_globals, "free_port", lambda: next(picks, None) or free_port())
        sp = servers.start(impl)
        assert sp.port != busy
        assert "address already in use" in servers.started[0].log_text()
        assert read_info(LOOPBACK, sp.port)["port"] == sp.port

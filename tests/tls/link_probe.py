"""Shared steps of the route and gateway TLS tests: start a topology, wait for a log line,
and knock on a TLS link listener with a plaintext CONNECT and a certificate-less TLS client.

Routes and gateways run the same TLS code (``scserver.link_tls``), so their tests probe it the
same way; only the port and the word in the log line (``route``/``gateway``) differ.
"""

from __future__ import annotations

import re
import socket
import ssl

from tests.cluster.topology import Topology, build
from tests.tls.link_certs import REASONS, Pki
from tests.tools import LOOPBACK, wait_for


def wait_log(node, pattern: str, timeout: float = 8.0) -> None:
    try:
        wait_for(lambda: re.search(pattern, node.log()), timeout, 0.1, pattern)
    except TimeoutError:
        raise AssertionError(
            f"{node.name} never logged /{pattern}/:\n{node.log()[-3000:]}"
        ) from None


def started(spec: dict, **plan) -> Topology:
    """``build(spec)`` with ``plan`` set on the topology (``cluster_extra=...``), started."""
    topo = build(spec)
    for key, value in plan.items():
        setattr(topo, key, value)
    return topo.start()


def assert_refuses_plaintext_and_certless(
    node, port: int, pki: Pki, word: str, connect: bytes, timeout: float = 4
) -> None:
    """A TLS link listener writes nothing in plaintext (no INFO for a plaintext ``connect``)
    and refuses a TLS client without a certificate; both failures are logged as
    ``TLS <word> handshake error``."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(connect)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        assert b"INFO" not in got, got
    wait_log(node, rf"TLS {word} handshake error")
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=LOOPBACK) as s:
                data = s.recv(4096)
                assert b"INFO" not in data, data
        except (ssl.SSLError, ConnectionResetError):
            pass
    wait_log(node, rf"TLS {word} handshake error: .*(" + REASONS["nocert"] + ")")

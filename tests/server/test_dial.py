"""Outbound links dial with a deadline (nats-server: DEFAULT_ROUTE_DIAL).

A peer address that never answers the SYN (a pod that is gone, seen on real pods after a
rolling update) must fail the attempt within the deadline, so the link manager moves on to the
next URL instead of waiting out the kernel's SYN retries for over a minute. A listener whose
accept backlog is full drops SYNs on Linux: that is the silent peer here, on loopback.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from tests.tools import LOOPBACK

from scserver.net.dial import connect_tcp


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A loopback port whose accept queue is full, so further SYNs get no answer."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # backlog 0 admits one or two; the rest stay in SYN-SENT
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((LOOPBACK, port))
            except BlockingIOError:
                pass
            fillers.append(s)
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_a_silent_peer_fails_within_the_deadline(silent_peer: int) -> None:
    loop = asyncio.get_running_loop()
    attempt = asyncio.ensure_future(connect_tcp(loop, LOOPBACK, silent_peer, timeout=0.5))
    done, _ = await asyncio.wait([attempt], timeout=30)
    assert attempt in done, "the dial waited for the kernel instead of its deadline"
    with pytest.raises(OSError):  # TimeoutError is an OSError
        attempt.result()


async def test_a_listening_peer_connects() -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: w.close(), LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    sock = await connect_tcp(loop, LOOPBACK, port)
    try:
        assert sock.getpeername()[1] == port
        assert not sock.getblocking()
    finally:
        sock.close()
        server.close()
        await server.wait_closed()


async def test_a_refused_port_is_an_oserror_at_once() -> None:
    loop = asyncio.get_running_loop()
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = probe.getsockname()[1]
    probe.close()  # bound then closed: nothing listens there
    with pytest.raises(ConnectionRefusedError):
        await connect_tcp(loop, LOOPBACK, port)

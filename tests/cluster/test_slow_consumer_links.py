"""A stuck consumer behind a gateway never slows the gateway; a SUB burst never freezes a server.

Two single-server scserver clusters, east and west, joined by gateways:

* a subscriber on west never reads its socket while east feeds its subject: messages on other
  subjects still cross the gateway at full speed (the link is never paused for a client; the
  client is cut as a slow consumer instead, at max_pending);
* one east client sends 200k SUBs in one burst while another east client makes requests:
  every request is answered (the burst is processed in slices between other work).

Time bounds are generous robustness bounds (150 crossings in 6 s, where a server pausing the
gateway link 50 ms per read while any consumer is behind needs more than 7 s; 2 s per request,
where processing the burst in one go froze the server for seconds).
"""

from __future__ import annotations

import asyncio
import socket
import time

import nats
import pytest
from tests.cluster.topology import SC, Topology, running
from tests.feeder import Feeder
from tests.server.conftest import RawClient
from tests.tools import LOOPBACK, wait_for

CROSSINGS = 150
CROSSING_BOUND = 6.0


@pytest.fixture(scope="module")
def pair():
    with running({"east": [SC], "west": [SC]}, top_extra={"*": 'write_deadline: "60s"'}) as topo:
        yield topo


def pending_of(topo: Topology, node: str, cid: int) -> int | None:
    for c in topo.node(node).get("/connz?limit=1000")["connections"]:
        if c["cid"] == cid:
            return int(c["pending_bytes"])
    return None


def test_stuck_consumer_behind_gateway_does_not_slow_the_link(pair: Topology) -> None:
    east, west = pair.node("east1"), pair.node("west1")
    stuck = RawClient(west.port, rcvbuf=4096)
    stuck.connect()
    assert stuck.exchange("SUB flood 1\r\nPING\r\n") == ["PONG"]
    cid = stuck.info["client_id"]
    sub = RawClient(west.port, timeout=10)
    sub.connect()
    assert sub.exchange("SUB other 9\r\nPING\r\n") == ["PONG"]
    pub = RawClient(east.port, timeout=10)
    pub.connect()
    # The gateway carries `other` to west (optimistic mode sends until told otherwise).
    pub.send("PUB other 1\r\nw\r\n")
    assert sub.lines(until=None, timeout=5)[:2] == ["MSG other 9 1", "b'w'"]
    feeder = Feeder(east.port, "flood")
    try:
        wait_for(lambda: (pending_of(pair, "west1", cid) or 0) > 20 << 20, 30, 0.1, "a backlog")
        start = time.monotonic()
        for i in range(CROSSINGS):
            body = str(i % 10)
            pub.send(f"PUB other 1\r\n{body}\r\n")
            assert sub.readline() == "MSG other 9 1"
            assert sub.read_exact(3) == body.encode() + b"\r\n"
        took = time.monotonic() - start
        still = pending_of(pair, "west1", cid)
    finally:
        feeder.close()
        for c in (stuck, sub, pub):
            c.close()
    assert still is not None, "the stuck consumer must still be there while we measured"
    assert took < CROSSING_BOUND, f"{CROSSINGS} crossings took {took:.1f}s"
    gwz = east.get("/gatewayz")
    assert "west" in gwz["outbound_gateways"], gwz


def _sub_burst(port: int, n: int) -> bool:
    """``n`` SUBs in one write, then PING: True once the PONG came back."""
    s = socket.create_connection((LOOPBACK, port))
    try:
        s.recv(4096)
        data = b'CONNECT {"verbose":false}\r\n' + b"".join(
            b"SUB burst.%d.x %d\r\n" % (i, i) for i in range(n)
        )
        s.sendall(data + b"PING\r\n")
        s.settimeout(120)
        buf = b""
        while b"PONG" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
        return True
    finally:
        s.close()


async def test_requests_succeed_during_a_200k_sub_burst(pair: Topology) -> None:
    east = pair.node("east1")
    responder = await nats.connect(east.url, allow_reconnect=False)
    requester = await nats.connect(east.url, allow_reconnect=False)
    try:

        async def answer(msg) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("svc.burst", cb=answer)
        await responder.flush()
        burst = asyncio.create_task(asyncio.to_thread(_sub_burst, east.port, 200_000))
        answered = 0
        worst = 0.0
        while not burst.done():
            t0 = time.monotonic()
            reply = await requester.request("svc.burst", b"%d" % answered, timeout=2.0)
            worst = max(worst, time.monotonic() - t0)
            assert reply.data == b"%d" % answered
            answered += 1
            await asyncio.sleep(0.01)
        assert await burst, "the SUB burst must complete"
        assert answered > 0
    finally:
        await requester.close()
        await responder.close()

"""A stuck consumer behind a gateway never slows the gateway; a SUB burst never freezes a server.

Two single-server scserver clusters, east and west, joined by gateways:

* a subscriber on west never reads its socket while east feeds its subject: messages on other
  subjects still cross the gateway at full speed (the link is never paused for a client; the
  client is cut as a slow consumer instead, at max_pending);
* one east client sends 200k SUBs in one burst while another east client makes requests:
  every request is answered (the burst is processed in slices between other work).

No test here asserts on elapsed time: the crossings must all arrive while the backlog is there,
and requests must be answered while the burst is half applied (``/subsz`` shows some of its
subscriptions, not all). How fast is a benchmark's figure (``make bench-robustness``: "stuck
consumer" across the gateway, "subscription flood" worst request round trip).
"""

from __future__ import annotations

import asyncio
import socket

import nats
import pytest
from tests.cluster.topology import SC, Topology, running
from tests.feeder import Feeder
from tests.server.conftest import RawClient
from tests.tools import LOOPBACK, wait_for

CROSSINGS = 150
BURST = 200_000


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
        crossed = 0
        for i in range(CROSSINGS):
            body = str(i % 10)
            pub.send(f"PUB other 1\r\n{body}\r\n")
            assert sub.readline() == "MSG other 9 1"
            assert sub.read_exact(3) == body.encode() + b"\r\n"
            crossed += 1
        still = pending_of(pair, "west1", cid)
    finally:
        feeder.close()
        for c in (stuck, sub, pub):
            c.close()
    assert still is not None, "the stuck consumer must still be there while the others crossed"
    assert crossed == CROSSINGS
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


def subscriptions(topo: Topology) -> int:
    """How many subscriptions east1 holds (``/subsz``)."""
    return int(topo.node("east1").get("/subsz")["num_subscriptions"])


async def test_requests_succeed_during_a_200k_sub_burst(pair: Topology) -> None:
    east = pair.node("east1")
    responder = await nats.connect(east.url, allow_reconnect=False)
    requester = await nats.connect(east.url, allow_reconnect=False)
    try:

        async def answer(msg) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("svc.burst", cb=answer)
        await responder.flush()
        base = await asyncio.to_thread(subscriptions, pair)
        burst = asyncio.create_task(asyncio.to_thread(_sub_burst, east.port, BURST))
        answered = 0
        mid_burst: list[int] = []  # burst subscriptions applied when a reply came back
        while not burst.done():
            # the timeout guards against a hang; a slow answer is the benchmark's concern
            reply = await requester.request("svc.burst", b"%d" % answered, timeout=10.0)
            assert reply.data == b"%d" % answered
            answered += 1
            applied = await asyncio.to_thread(subscriptions, pair) - base
            if 0 < applied < BURST:
                mid_burst.append(applied)
        assert await burst, "the SUB burst must complete"
        assert mid_burst, f"no request was answered while the burst was half applied ({answered})"
    finally:
        await requester.close()
        await responder.close()

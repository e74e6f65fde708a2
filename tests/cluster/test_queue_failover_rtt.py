"""Queue groups go to the lowest-RTT cluster, follow RTT changes, and fail over when it leaves.

Three clusters of one server: A has only the requester, B and C have members of one queue
group. A's gateways to B and to C each go through a
:class:`~tests.cluster.latency_proxy.LatencyProxy`, whose delay the test sets: 100 ms each way
makes a round trip of 200 ms or more, 0 leaves loopback's fraction of a millisecond. Every
server pings its links each second, so A re-measures both RTTs all the time. nats-server orders
its outbound gateways by the RTT its PINGs measure and gives a queue group to the first gateway
with a member, so:

1. B slow, C fast: every request from A is answered in C;
2. the delays swapped: once A has measured the change, every request is answered in B;
3. B's member leaves: requests fail over to C.

The same scenario runs with A as scserver and as nats-server (the reference), with B and C of
either kind. B and C advertise their proxies' addresses as their gateway URLs, so the URLs A
learns from gossip lead through the proxies too; the test checks on A's /gatewayz that both of
its links are proxied.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from tests.cluster.helpers import (
    close_all,
    connect,
    eventually,
    layout_params,
    reach,
    sentinel,
    unique,
)
from tests.cluster.latency_proxy import LatencyProxy
from tests.cluster.topology import GO, SC, Topology, build, wait_until
from tests.tools import LOOPBACK

DELAY = 0.100  # each way: a round trip of 200 ms or more, far above a busy loopback one
N = 20

LAYOUTS = {
    "scserver": {"A": [SC], "B": [SC], "C": [SC]},
    "nats-server": {"A": [GO], "B": [GO], "C": [GO]},
    "sc-to-nats": {"A": [SC], "B": [GO], "C": [GO]},
    "nats-to-sc": {"A": [GO], "B": [SC], "C": [SC]},
}

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_seconds(text: str) -> float:
    """Seconds in a Go duration string (``"1.2ms"``, ``"1m3.5s"``, ``"0s"``)."""
    parts = re.findall(r"([\d.]+)(ns|us|µs|ms|s|m|h)", text or "")
    return sum(float(v) * _UNITS[u] for v, u in parts)


def fully_linked(topo: Topology) -> bool:
    for node in topo.nodes:
        gwz = node.get("/gatewayz")
        others = set(topo.clusters) - {node.cluster}
        if set(gwz["outbound_gateways"]) != others or set(gwz["inbound_gateways"]) != others:
            return False
    return True


def outbound(topo: Topology, node: str, remote: str) -> dict:
    return topo.node(node).get("/gatewayz")["outbound_gateways"][remote]["connection"]


@pytest.fixture(
    scope="module",
    params=layout_params(LAYOUTS),
)
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[Topology, dict[str, LatencyProxy]]]:
    topo = build(LAYOUTS[request.param])
    proxies = {
        cl: LatencyProxy((LOOPBACK, topo.node(f"{cl}1").gateway_port), 0.0).start()
        for cl in ("B", "C")
    }
    # B and C advertise their proxies, and everyone reaches them through those; they do not
    # list A (they dial it back when it dials them).
    entries = {cl: f'{{name: "{cl}", urls: ["{p.url}"]}}' for cl, p in proxies.items()}
    topo.gateway_view = {cl: [cl] for cl in topo.clusters}
    topo.gateway_entries = {
        "A": [entries["B"], entries["C"]],
        "B": [entries["C"]],
        "C": [entries["B"]],
    }
    topo.gateway_extra = {cl: f'  advertise: "{LOOPBACK}:{p.port}"' for cl, p in proxies.items()}
    topo.top_extra = {"*": 'ping_interval: "1s"'}
    try:
        topo.start()
        wait_until(lambda: fully_linked(topo), 25, "every cluster linked to the two others")
        yield topo, proxies
    finally:
        topo.stop()
        for p in proxies.values():
            p.close()


def rtts(topo: Topology) -> dict[str, float]:
    return {cl: go_seconds(outbound(topo, "A1", cl).get("rtt", "")) for cl in ("B", "C")}


def measured_slower(topo: Topology, slow: str, fast: str) -> bool:
    """A's latest RTTs: ``slow`` through a 2 x DELAY round trip, ``fast`` well below it."""
    r = rtts(topo)
    return r[slow] >= 2 * DELAY and 0 < r[fast] < DELAY


async def answers(req: Client, subject: str) -> list[bytes]:
    return [(await req.request(subject, b"q", timeout=5)).data for _ in range(N)]


async def test_queue_requests_follow_the_lowest_rtt_then_fail_over(
    proxied: tuple[Topology, dict[str, LatencyProxy]],
) -> None:
    topo, proxies = proxied
    for cl, p in proxies.items():
        assert outbound(topo, "A1", cl)["port"] == p.port, (cl, outbound(topo, "A1", cl))
    subject = unique("svc")
    members = {}
    for name in ("B1", "C1"):
        nc = await connect(topo.node(name).url)
        cl = topo.node(name).cluster

        async def answer(msg: Msg, nc: Client = nc, cl: str = cl) -> None:
            await nc.publish(msg.reply, cl.encode())

        await nc.subscribe(subject, queue="svc", cb=answer)
        members[name] = nc
    req = await connect(topo.node("A1").url)
    try:
        await reach(req, [await sentinel(nc) for nc in members.values()])
        for slow, fast in (("B", "C"), ("C", "B")):
            proxies[slow].delay, proxies[fast].delay = DELAY, 0.0
            await eventually(
                lambda slow=slow, fast=fast: measured_slower(topo, slow, fast),
                20,
                f"A measuring {slow} slower than {fast}",
            )
            got = await answers(req, subject)
            assert got == [fast.encode()] * N, (
                f"requests from A should all go to {fast}; RTTs {rtts(topo)}: {got}"
            )
        # B (now the fast one) loses its member: the group fails over to C
        await members.pop("B1").close()

        async def served_by_c() -> bool:
            try:
                return (await req.request(subject, b"probe", timeout=1)).data == b"C"
            except Exception:  # noqa: BLE001 - B's withdrawal still travelling: no answer
                return False

        # A deadline, not a count of attempts: a request refused at once (no responders while
        # interest is re-learnt) would use up a count in no time.
        deadline = time.monotonic() + 30
        while not await served_by_c():
            if time.monotonic() > deadline:
                raise AssertionError(f"requests never failed over to C\n{topo.logs()}")
        assert await answers(req, subject) == [b"C"] * N
    finally:
        await close_all(req, *members.values())

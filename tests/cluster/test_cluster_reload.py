"""Config reload adds and removes gateways and routes without a restart (scserver).

Gateways: A and B know each other and refuse unknown clusters (``reject_unknown_cluster``); C
lists all three but is refused. Adding C to A's and B's files (A reloads on SIGHUP, B through
the file watcher) links C in; removing it again closes C's links and forgets its interest while
C keeps dialling.

Routes: two servers of one cluster without routes; adding one to a file joins them, removing it
separates them.
"""

from __future__ import annotations

import asyncio
import re
import signal

import pytest
from tests.cluster.helpers import (
    close_all,
    connect,
    reach,
    sentinel,
    subscribe,
    through,
    unique,
    unmarked,
)
from tests.cluster.scenarios import outbound_subs, wait_async
from tests.cluster.topology import SC, Topology, build

NO_WATCH = {"SCSERVER_WATCH_INTERVAL": "3600"}
FAST_WATCH = {"SCSERVER_WATCH_INTERVAL": "0.2"}


@pytest.fixture(scope="module")
def three():
    topo = build({"A": [SC], "B": [SC], "C": [SC]})
    topo.gateway_view = {"A": ["A", "B"], "B": ["A", "B"], "C": ["A", "B", "C"]}
    topo.gateway_extra = {
        "A": "  reject_unknown_cluster: true",
        "B": "  reject_unknown_cluster: true",
    }
    topo.node_env = {"A1": NO_WATCH, "B1": FAST_WATCH, "C1": NO_WATCH}
    topo.start()
    try:
        yield topo
    finally:
        topo.stop()


def links(topo: Topology, name: str) -> tuple[set[str], set[str]]:
    gwz = topo.node(name).get("/gatewayz")
    return set(gwz["outbound_gateways"]), set(gwz["inbound_gateways"])


def linked(topo: Topology, name: str, remotes: set[str]) -> bool:
    out, inb = links(topo, name)
    return out == remotes and inb == remotes


REJECTED_C = r"127\.0\.0\.1:\d+ - gid:\d+ Rejecting unknown gateway 'C'"


def rejections(topo: Topology, name: str) -> int:
    """How often ``name`` has refused C's gateway so far (its log)."""
    return len(re.findall(REJECTED_C, topo.node(name).log()))


async def refused_again(topo: Topology, names: tuple[str, ...] = ("A1", "B1")) -> None:
    """ "C keeps dialling and stays out" without a clock: wait until A and B have each refused
    C once more than now; a link C could have formed meanwhile would show after that."""
    seen = {n: rejections(topo, n) for n in names}
    await wait_async(lambda: all(rejections(topo, n) > seen[n] for n in names), 30)


async def test_reload_adds_and_removes_a_gateway(three: Topology) -> None:
    topo = three
    a, b, c = topo.node("A1"), topo.node("B1"), topo.node("C1")
    await wait_async(lambda: linked(topo, "A1", {"B"}) and linked(topo, "B1", {"A"}), 15)
    await refused_again(topo)  # C keeps dialling and keeps being refused
    assert "C" not in links(topo, "A1")[1] and "C" not in links(topo, "B1")[1]
    assert not links(topo, "C1")[1], "nobody may be linked into C yet"

    # add C everywhere: A on SIGHUP, B by its file watcher
    topo.gateway_view = {}
    topo.write_config(a)
    topo.write_config(b)
    assert a.proc is not None
    a.proc.signal(signal.SIGHUP)
    await wait_async(
        lambda: all(linked(topo, n, {"A", "B", "C"} - {n[0]}) for n in ("A1", "B1", "C1")), 15
    )
    assert "Reloaded server configuration (signal)" in a.log()
    assert "Reloaded server configuration (config file changed)" in b.log()
    topo.wait_ready(5)

    subject = unique("rl")
    cn = await connect(c.url)
    an = await connect(a.url)
    bn = await connect(b.url)
    try:
        box = await subscribe(cn, subject)
        sent = await sentinel(cn)
        await reach(an, [sent])
        await reach(bn, [sent])
        await an.publish(subject, b"from-a")
        await bn.publish(subject, b"from-b")
        await through([an, bn], subject, box)  # markers behind them: the count is final
        assert sorted(unmarked(box)) == [b"from-a", b"from-b"]
        assert subject in outbound_subs(topo, "A1", "C")

        # remove C again
        topo.gateway_view = {"A": ["A", "B"], "B": ["A", "B"], "C": ["A", "B", "C"]}
        topo.write_config(a)
        topo.write_config(b)
        a.proc.signal(signal.SIGHUP)
        await wait_async(lambda: linked(topo, "A1", {"B"}) and linked(topo, "B1", {"A"}), 10)
        await refused_again(topo)  # C is still running and dialling: it must stay out
        assert linked(topo, "A1", {"B"}) and linked(topo, "B1", {"A"})
        out_c, in_c = links(topo, "C1")
        assert not in_c, in_c
        assert "Config reload: removing gateway 'C'" in a.log()
        for i in range(20):
            await an.publish(subject, f"late-{i}".encode())
            await bn.publish(subject, f"late-{i}".encode())
        await an.flush()
        await bn.flush()
        # no path to C exists (A's and B's only links are to each other), so nothing can be
        # in flight to it
        assert linked(topo, "A1", {"B"}) and linked(topo, "B1", {"A"})
        assert sorted(unmarked(box)) == [b"from-a", b"from-b"], "C still gets messages"
        # A and B still talk to each other
        ab = unique("ab")
        abox = await subscribe(an, ab)
        await reach(bn, [(ab, abox)])
    finally:
        await close_all(cn, an, bn)


def route_names(topo: Topology, name: str) -> set[str]:
    return {r["remote_name"] for r in topo.node(name).get("/routez")["routes"]}


async def test_reload_adds_and_removes_a_route() -> None:
    topo = build({"R": [SC, SC]})
    topo.route_view = {"R1": [], "R2": []}
    topo.node_env = {"R1": NO_WATCH, "R2": NO_WATCH}
    topo.start()
    r1, r2 = topo.node("R1"), topo.node("R2")
    n1 = n2 = None
    try:
        # neither lists a route: nothing dials, so there is nothing to wait for
        assert route_names(topo, "R1") == set() and route_names(topo, "R2") == set()
        topo.route_view = {"R1": [], "R2": ["R1"]}
        topo.write_config(r2)
        assert r2.proc is not None
        r2.proc.signal(signal.SIGHUP)
        await wait_async(
            lambda: route_names(topo, "R1") == {"R2"} and route_names(topo, "R2") == {"R1"}, 10
        )
        n1, n2 = await connect(r1.url), await connect(r2.url)
        subject = unique("route")
        box = await subscribe(n1, subject)
        await reach(n2, [(subject, box)])

        topo.route_view = {"R1": [], "R2": []}
        topo.write_config(r2)
        r2.proc.signal(signal.SIGHUP)
        await wait_async(
            lambda: route_names(topo, "R1") == set() and route_names(topo, "R2") == set(), 10
        )
        # nobody re-dials a removed route: an absence no event announces, so this one check
        # keeps a window (longer than the 1 s redial delay)
        await asyncio.sleep(1.5)
        assert route_names(topo, "R1") == set() and route_names(topo, "R2") == set()
        before = box.count()
        await n2.publish(subject, b"after")
        await n2.flush()
        assert route_names(topo, "R2") == set(), "no route: no path from R2 to R1's subscriber"
        assert box.count() == before
        assert "Config reload: removing route" in r2.log()
    finally:
        await close_all(*(x for x in (n1, n2) if x is not None))
        topo.stop()

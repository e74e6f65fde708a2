"""Optimistic gateway mode and its switch to interest-only (scserver on both sides).

Cluster B accepts with ``gateway { interest_mode: optimistic, interest_only_threshold: 3 }``:
A sends optimistically, B answers "no interest" (RS-) per subject, and after 3 such subjects B
switches A's link for the account to interest-only. The default (interest-only from the start,
as nats-server 2.9+) is covered in test_sc_supercluster.py.
"""

from __future__ import annotations

import subprocess

import pytest
from tests.cluster.helpers import close_all, connect, reach, sentinel, settle, subscribe, unique
from tests.cluster.scenarios import wait_async
from tests.cluster.topology import SC, Topology, build
from tests.tools import scserver_command

OPTIMISTIC = "  interest_mode: optimistic\n  interest_only_threshold: 3"


@pytest.fixture(scope="module")
def optimistic():
    topo = build({"A": [SC], "B": [SC]})
    topo.gateway_extra = {"B": OPTIMISTIC}
    b = topo.node("B1")
    check = subprocess.run(
        [*(scserver_command() or []), "-t", "-c", str(topo.write_config(b))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode != 0:
        pytest.xfail(f"scserver does not accept the optimistic gateway options: {check.stderr}")
    topo.start()
    try:
        topo.wait_ready(15)
        yield topo
    finally:
        topo.stop()


def out_account(topo: Topology, node: str, remote: str) -> dict | None:
    gwz = topo.node(node).get("/gatewayz?accs=1")
    for acc in gwz["outbound_gateways"][remote].get("accounts") or []:
        if acc["name"] == "$G":
            return acc
    return None


async def test_optimistic_then_interest_only(optimistic: Topology) -> None:
    topo = optimistic
    a, b = topo.node("A1"), topo.node("B1")
    bn = await connect(b.url)
    pub = await connect(a.url)
    try:
        keep = unique("keep")
        box = await subscribe(bn, keep)
        await reach(pub, [await sentinel(bn)])
        acc = out_account(topo, "A1", "B")
        assert acc is None or acc["interest_mode"] == "Optimistic", acc
        base = unique("none")
        for i in range(3):
            await pub.publish(f"{base}.{i}", b"x")
        await settle(pub, delay=0.3)
        acc = out_account(topo, "A1", "B")
        assert acc is not None and acc["interest_mode"] == "Optimistic", acc
        assert acc["no_interest_count"] == 3, acc
        await pub.publish(f"{base}.3", b"x")
        await pub.flush()
        await wait_async(
            lambda: (out_account(topo, "A1", "B") or {}).get("interest_mode") == "Interest-Only",
            5,
        )
        # interest known before the switch still works, and new interest arrives
        await pub.publish(keep, b"after-switch")
        fresh = unique("fresh")
        fbox = await subscribe(bn, fresh)
        await reach(pub, [(fresh, fbox)])
        await settle(pub, delay=0.3)
        assert b"after-switch" in box.data()
    finally:
        await close_all(bn, pub)

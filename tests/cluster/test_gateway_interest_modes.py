"""Gateway interest modes: the optional optimistic mode and its switch, and the default.

nats-server (2.9+) has no config option for the mode: every account on every gateway link is
interest-only from the start (the accepting side says ``gateway_iom`` in its INFO), and
``/gatewayz?accs=1`` shows each account's ``interest_mode``. nats-server still implements the
classic optimistic mode on the sending side: it sends everything, records the "no interest"
(``RS-``) answers, and switches an account when the accepting side tells it to.

scserver keeps the optimistic mode as an option of the accepting side:
``gateway { interest_mode: optimistic, interest_only_threshold: 3 }`` on cluster B. A sends
optimistically, B answers ``RS-`` per subject, and after 3 such subjects B switches A's link for
the account to interest-only. That is tested with A as scserver and as nats-server (whose
``/gatewayz`` must show the same counts and modes), never turned into a skip or an xfail: the
option must load (``scserver -t``). nats-server itself rejects the option as unknown.
The default mode is checked between scserver and nats-server in both directions.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.cluster.helpers import close_all, connect, eventually, reach, sentinel, subscribe, unique
from tests.cluster.topology import GO, SC, Topology, running
from tests.tools import nats_server_binary, require_binary, scserver_command

OPTIMISTIC = "  interest_mode: optimistic\n  interest_only_threshold: 3"


def config_test(cmd: list[str], path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30)


@pytest.fixture(
    scope="module",
    params=[SC, pytest.param(GO, marks=pytest.mark.nats_server)],
    ids=["A-scserver", "A-nats-server"],
)
def optimistic(request: pytest.FixtureRequest):
    """A (scserver or nats-server) -> B (scserver, optimistic inbound, threshold 3)."""
    with running({"A": [request.param], "B": [SC]}, gateway_extra={"B": OPTIMISTIC}) as topo:
        yield topo


def test_optimistic_options_load(tmp_path: Path) -> None:
    path = tmp_path / "b.conf"
    path.write_text(
        'listen: "127.0.0.1:4222"\n'
        f'gateway {{\n  name: B\n  listen: "127.0.0.1:7222"\n{OPTIMISTIC}\n  gateways: []\n}}\n'
    )
    sc = config_test(list(require_binary(scserver_command(), "scserver not found")), path)
    assert sc.returncode == 0, sc.stderr
    go = config_test([str(require_binary(nats_server_binary(), "nats-server not found"))], path)
    assert go.returncode != 0 and 'unknown field "interest_mode"' in go.stderr, go.stderr


def out_account(topo: Topology, node: str, remote: str, account: str = "$G") -> dict | None:
    """The outbound link's entry for ``account`` in /gatewayz?accs=1 (None: no entry yet)."""
    gwz = topo.node(node).get("/gatewayz?accs=1")
    for acc in gwz["outbound_gateways"][remote].get("accounts") or []:
        if acc["name"] == account:
            return acc
    return None


def in_modes(topo: Topology, node: str, remote: str, account: str = "$G") -> list[str]:
    """``interest_mode`` of ``account`` on every inbound link from ``remote``."""
    gwz = topo.node(node).get("/gatewayz?accs=1")
    return [
        acc["interest_mode"]
        for conn in gwz["inbound_gateways"].get(remote) or []
        for acc in conn.get("accounts") or []
        if acc["name"] == account
    ]


def out_msgs(topo: Topology, node: str, remote: str) -> int:
    return topo.node(node).get("/gatewayz")["outbound_gateways"][remote]["connection"]["out_msgs"]


async def test_optimistic_then_interest_only(optimistic: Topology) -> None:
    topo = optimistic
    bn = await connect(topo.node("B1").url)
    pub = await connect(topo.node("A1").url)
    try:
        keep = unique("keep")
        box = await subscribe(bn, keep)
        await reach(pub, [await sentinel(bn)])
        acc = out_account(topo, "A1", "B")
        assert acc is None or acc["interest_mode"] == "Optimistic", acc
        # three subjects nobody in B wants: three RS- answers, still optimistic
        base = unique("none")
        for i in range(3):
            await pub.publish(f"{base}.{i}", b"x")
        await pub.flush()
        await eventually(
            lambda: (out_account(topo, "A1", "B") or {}).get("no_interest_count") == 3,
            10,
            "A to record 3 no-interest subjects",
        )
        acc = out_account(topo, "A1", "B")
        assert acc is not None and acc["interest_mode"] == "Optimistic", acc
        assert in_modes(topo, "B1", "A") == ["Optimistic"]
        # the fourth: B switches A's link for $G to interest-only
        await pub.publish(f"{base}.3", b"x")
        await pub.flush()
        await eventually(
            lambda: (out_account(topo, "A1", "B") or {}).get("interest_mode") == "Interest-Only",
            10,
            "A's link to B in interest-only mode",
        )
        assert in_modes(topo, "B1", "A") == ["Interest-Only"]
        # interest known before the switch still works, and new interest arrives
        await pub.publish(keep, b"after-switch")
        await pub.flush()
        await eventually(lambda: b"after-switch" in box.data(), 10, "delivery after the switch")
        fresh = unique("fresh")
        fbox = await subscribe(bn, fresh)
        await reach(pub, [(fresh, fbox)])
        # and subjects without interest stay home now: 50 published, then one B wants
        before = out_msgs(topo, "A1", "B")
        for i in range(50):
            await pub.publish(f"{base}.late.{i}", b"x")
        await pub.publish(keep, b"end")
        await pub.flush()
        await eventually(lambda: b"end" in box.data(), 10, "end marker")
        crossed = out_msgs(topo, "A1", "B") - before
        # the end marker, plus at most a few $SYS messages of the servers themselves
        assert 1 <= crossed < 10, f"{crossed} messages crossed after the switch"
    finally:
        await close_all(bn, pub)


@pytest.mark.nats_server
@pytest.mark.parametrize(("a", "b"), [(SC, GO), (GO, SC)], ids=["sc-to-go", "go-to-sc"])
async def test_default_is_interest_only_both_ways(a: str, b: str) -> None:
    """Without options both servers run every account interest-only, on both sides."""
    with running({"A": [a], "B": [b]}) as topo:
        na = await connect(topo.node("A1").url)
        nb = await connect(topo.node("B1").url)
        try:
            sa, sb = unique("a"), unique("b")
            box_a, box_b = await subscribe(na, sa), await subscribe(nb, sb)
            await reach(nb, [(sa, box_a)])
            await reach(na, [(sb, box_b)])
            for node, remote in (("A1", "B"), ("B1", "A")):
                acc = out_account(topo, node, remote)
                assert acc is not None and acc["interest_mode"] == "Interest-Only", (node, acc)
                assert acc.get("no_interest_count", 0) == 0, (node, acc)
        finally:
            await close_all(na, nb)

"""A gateway server dies (SIGKILL) and comes back on the same ports.

East is two scservers; west is a single server (scserver or nats-server). West is killed, east
notices, west restarts with the same config, and traffic flows again within seconds. Interest
that west had before the kill and not after must not survive on east's side.
"""

from __future__ import annotations

import pytest
from tests.cluster.helpers import (
    close_all,
    connect,
    eventually,
    reach,
    sentinel,
    subscribe,
    through,
    unique,
    unmarked,
)
from tests.cluster.scenarios import outbound_msgs, outbound_subs, wait_async
from tests.cluster.topology import GO, SC, Topology, running


@pytest.fixture(scope="module", params=[SC, GO], ids=["west-sc", "west-go"])
def pair(request):
    with running({"east": [SC, SC], "west": [request.param]}) as topo:
        yield topo


async def test_killed_gateway_server_recovers_without_stale_interest(pair: Topology) -> None:
    west = pair.node("west1")
    keep, gone = unique("keep"), unique("gone")
    w = await connect(west.url)
    pubs = {name: await connect(pair.node(name).url) for name in ("east1", "east2")}
    try:
        keep_box = await subscribe(w, keep)
        gone_box = await subscribe(w, gone)
        sent = await sentinel(w)
        for pub in pubs.values():
            await reach(pub, [sent])
        for name, pub in pubs.items():
            await pub.publish(keep, name.encode())
            await pub.publish(gone, name.encode())
        # a marker from each publisher behind its message: once both are in, the counts are
        # final, and a duplicate would have arrived before them
        await through(pubs.values(), keep, keep_box)
        await through(pubs.values(), gone, gone_box)
        state = (keep_box.data(), gone_box.data(), pair.logs())
        assert sorted(unmarked(keep_box)) == [b"east1", b"east2"], state
        assert sorted(unmarked(gone_box)) == [b"east1", b"east2"], state

        assert west.proc is not None
        west.proc.kill()
        await close_all(w)
        for name in ("east1", "east2"):
            await wait_async(
                lambda name=name: (
                    "west" not in pair.node(name).get("/gatewayz")["outbound_gateways"]
                ),
                15,
            )
        # east keeps serving its own clients meanwhile
        local = await subscribe(pubs["east2"], keep)
        await pubs["east2"].flush()
        await reach(pubs["east1"], [(keep, local)], timeout=15)

        pair.restart(west)
        w = await connect(west.url)
        keep_box = await subscribe(w, keep)
        await w.flush()
        # messages flow again: every east server reaches west's new subscription (the timeout
        # only guards against a hang; how soon is python -m bench.bench_recovery's figure)
        for pub in pubs.values():
            await reach(pub, [(keep, keep_box)], timeout=30)
        pair.wait_ready(20)

        # west forgot `gone`; east must not believe otherwise
        for name in ("east1", "east2"):
            subs = outbound_subs(pair, name, "west")
            assert gone not in subs, (name, subs)
            assert keep in subs, (name, subs)
        before = {name: outbound_msgs(pair, name, "west") for name in pubs}
        for name, pub in pubs.items():
            for i in range(100):
                await pub.publish(gone, f"after-{i}".encode())
            # a marker behind them on the same link: once west has it, east has sent (or
            # dropped) every `gone` message before it, so the counters below are final
            await pub.publish(keep, f"end-{name}".encode())
        await eventually(lambda: keep_box.count(b"end-") == 2, 15, "end markers at west")
        after = {name: outbound_msgs(pair, name, "west") for name in pubs}
        # $SYS heartbeats cross the gateway too: allow a few (and the marker), not the 100
        for name in pubs:
            assert after[name] - before[name] - 1 < 5, f"stale interest: {before} -> {after}"
    finally:
        await close_all(w, *pubs.values())

"""A gateway link moves off a server in lame duck mode before it exits, and loses nothing.

East's outbound link to west reaches one west server. When that server enters lame duck mode
(a pod replaced in a rolling update), nats-server keeps the link until the server exits and
redials afterwards: a second or more in which east's clients' messages into west, replies in
flight included, are dropped. scserver says ``ldm`` in the INFO on its inbound gateway links;
an scserver peer links to another server of that cluster, moves over once the new link has the
remote's interest (its first PONG), and closes the old one. A numbered stream from east to a
subscriber on the other west server shows every message arriving, in order, while the link
moves and the lame duck server exits.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from tests.cluster.helpers import close_all, connect, eventually, subscribe, unique
from tests.cluster.topology import GO, SC, Topology, running, wait_until

LAME_DUCK = {"*": "lame_duck_duration: 30s\nlame_duck_grace_period: 1s"}


def outbound_server_id(topo: Topology, name: str, remote: str) -> str | None:
    out = topo.node(name).get("/gatewayz").get("outbound_gateways") or {}
    link = out.get(remote)
    return link["connection"]["name"] if link else None


def server_id(topo: Topology, name: str) -> str:
    return str(topo.node(name).get("/varz")["server_id"])


async def test_outbound_link_moves_before_the_lame_duck_server_exits() -> None:
    with running({"east": [SC], "west": [SC, SC]}, top_extra=LAME_DUCK) as topo:
        ids = {n: server_id(topo, n) for n in ("west1", "west2")}
        target = outbound_server_id(topo, "east1", "west")
        ldm = next(n for n, i in ids.items() if i == target)
        other = next(n for n in ids if n != ldm)
        subject = unique("seq")
        sub_nc = await connect(topo.node(other).url)
        pub_nc = await connect(topo.node("east1").url)
        # a client on the lame duck server keeps it in lame duck mode for the whole duration
        stay = await connect(topo.node(ldm).url)
        try:
            box = await subscribe(sub_nc, subject)
            await sub_nc.flush()
            sent = 0

            async def publish_until(done: asyncio.Event) -> None:
                nonlocal sent
                while not done.is_set():
                    sent += 1
                    await pub_nc.publish(subject, str(sent).encode())
                    await asyncio.sleep(0.002)

            # the stream reaches west before anything changes
            done = asyncio.Event()
            task = asyncio.create_task(publish_until(done))
            await eventually(lambda: box.count() > 0, 15, "the stream reaching west")

            ldm_node = topo.node(ldm)
            assert ldm_node.proc is not None
            ldm_node.proc.signal(signal.SIGUSR2)
            await eventually(
                lambda: outbound_server_id(topo, "east1", "west") == ids[other],
                10,
                f"east1's link to west moving from {ldm} to {other}",
            )
            # ... while the lame duck server still runs (its client is closed only after the
            # grace period, the server exits after that)
            assert ldm_node.proc.alive(), ldm_node.log()
            await eventually(lambda: not ldm_node.proc.alive(), 20, f"{ldm} exiting")
            mark = sent
            await eventually(lambda: sent >= mark + 100, 10, "publishing on after the exit")
            done.set()
            await task
            # an end marker behind the stream: once it is in, whatever is missing is lost
            await pub_nc.publish(subject, b"end")
            await pub_nc.flush()
            await eventually(lambda: box.count(b"end") == 1, 15, "the end marker")
            got = [int(m) for m in box.data() if m != b"end"]
            # (the first few may precede west's interest reaching east1: counted from the first
            # that arrived, long before the lame duck mode)
            first = got[0]
            want = list(range(first, sent + 1))
            assert got == want, (
                f"{sent} sent, {len(got)} received from {first}; missing "
                f"{sorted(set(want) - set(got))[:20]}\n{topo.logs()}"
            )
            assert "moved to" in topo.node("east1").log(), topo.node("east1").log()
        finally:
            await close_all(sub_nc, pub_nc, stay)


@pytest.mark.parametrize("east", [SC, GO], ids=["east-sc", "east-go"])
def test_lame_duck_server_without_clients_does_not_wait_for_the_grace(east: str) -> None:
    """No client to move: nats-server exits at once. scserver first gives the servers linked
    to it a moment (2 s) to move their gateway links; a peer that cannot (nats-server, or no
    other server to go to) does not hold it for the grace period (here two minutes)."""
    slow = {"*": "lame_duck_duration: 180s\nlame_duck_grace_period: 120s"}
    with running({"east": [east], "west": [SC]}, top_extra=slow) as topo:
        west = topo.node("west1")
        assert west.proc is not None
        west.proc.signal(signal.SIGUSR2)
        wait_until(lambda: not west.proc.alive(), 30, "west1 exiting without clients")
        assert "Closing" not in west.log(), west.log()

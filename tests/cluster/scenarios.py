"""Message-flow scenarios shared by the scserver-only and the mixed supercluster tests.

Each takes a started :class:`~tests.cluster.topology.Topology` and node names; clients connect
to the named servers, so "every cluster to every cluster" runs with publishers and subscribers on
different servers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from tests.cluster.helpers import (
    Inbox,
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
from tests.cluster.topology import Topology


async def pubsub_every_pair(
    topo: Topology, publishers: Sequence[str], subscribers: Sequence[str], n: int = 20
) -> None:
    """Every subscriber gets every publisher's messages exactly once and in order."""
    subject = unique("ps")
    subs = {name: await connect(topo.node(name).url) for name in subscribers}
    pubs = {name: await connect(topo.node(name).url) for name in publishers}
    try:
        boxes = {name: await subscribe(nc, subject) for name, nc in subs.items()}
        sentinels = [await sentinel(nc) for nc in subs.values()]
        for pub in pubs.values():
            await reach(pub, sentinels)
        for src, pub in pubs.items():
            for i in range(n):
                await pub.publish(subject, f"{src}-{i}".encode())
            await pub.flush()
        total = len(pubs) * n
        try:
            await eventually(lambda: all(len(b.msgs) >= total for b in boxes.values()), 10)
        except TimeoutError:
            got = {k: len(b.msgs) for k, b in boxes.items()}
            raise AssertionError(f"expected {total} messages per subscriber, got {got}") from None
        for box in boxes.values():  # markers behind every publisher's messages: counts final
            await through(pubs.values(), subject, box)
        want = sorted(f"{src}-{i}".encode() for src in pubs for i in range(n))
        for name, box in boxes.items():
            assert sorted(unmarked(box)) == want, f"subscriber on {name}: {len(box.msgs)} messages"
            for src in pubs:
                seq = [
                    int(d.rsplit(b"-", 1)[1])
                    for d in unmarked(box)
                    if d.startswith(f"{src}-".encode())
                ]
                assert seq == list(range(n)), (name, src, seq)
    finally:
        await close_all(*subs.values(), *pubs.values())


async def request_reply_every_pair(
    topo: Topology, responders: Sequence[str], requesters: Sequence[str]
) -> None:
    """A service in each responder's cluster answers requests from every requester."""
    base = unique("svc")
    rsp = {name: await connect(topo.node(name).url) for name in responders}
    req = {name: await connect(topo.node(name).url) for name in requesters}
    try:
        sentinels = []
        for name, nc in rsp.items():
            cl = topo.node(name).cluster

            async def answer(msg, cl=cl, nc=nc):
                await nc.publish(msg.reply, f"hello from {cl}: ".encode() + msg.data)

            await nc.subscribe(f"{base}.{cl}", queue="svc", cb=answer)
            sentinels.append(await sentinel(nc))
        for nc in req.values():
            await reach(nc, sentinels)
        for src, dst in itertools.product(req, rsp):
            nc = req[src]
            dcl = topo.node(dst).cluster
            resp = await nc.request(f"{base}.{dcl}", src.encode(), timeout=3)
            assert resp.data == f"hello from {dcl}: {src}".encode()
            # old style: a brand-new inbox per request, its interest not yet known remotely
            resp = await nc.request(f"{base}.{dcl}", b"old", timeout=3, old_style=True)
            assert resp.data == f"hello from {dcl}: old".encode()
    finally:
        await close_all(*rsp.values(), *req.values())


class QueueGroup:
    """Members of queue group ``workers`` on the named servers, counting ``m-`` messages."""

    def __init__(self, topo: Topology, subject: str) -> None:
        self.topo = topo
        self.subject = subject
        self.conns: dict[str, object] = {}
        self.boxes: dict[str, Inbox] = {}
        self.sentinels: dict[str, tuple[str, Inbox]] = {}

    async def join(self, servers: Sequence[str]) -> list:
        sentinels = []
        for name in servers:
            nc = await connect(self.topo.node(name).url)
            self.conns[name] = nc
            self.boxes[name] = await subscribe(nc, self.subject, queue="workers")
            self.sentinels[name] = await sentinel(nc)
            sentinels.append(self.sentinels[name])
        return sentinels

    async def leave(self, name: str) -> None:
        nc = self.conns.pop(name)
        self.sentinels.pop(name)
        await nc.close()  # type: ignore[attr-defined]

    async def drained(self, pub, timeout: float = 15.0) -> None:
        """A marker from ``pub`` on every remaining member's plain sentinel subject, awaited:
        it takes the same path as the queue messages ``pub`` sent that member before, so once
        all are in, the counts are final (a fixed sleep only hoped so)."""
        seen = {name: box.count(b"drain") for name, (_, box) in self.sentinels.items()}
        for subj, _ in self.sentinels.values():
            await pub.publish(subj, b"drain")
        await pub.flush()
        await eventually(
            lambda: all(box.count(b"drain") > seen[n] for n, (_, box) in self.sentinels.items()),
            timeout,
            "drain markers at every member",
        )

    def per_cluster(self) -> dict[str, int]:
        out = {cl: 0 for cl in self.topo.clusters}
        for name, box in self.boxes.items():
            out[self.topo.node(name).cluster] += box.count(b"m-")
        return out

    def payloads(self) -> list[bytes]:
        return sorted(d for box in self.boxes.values() for d in box.data(b"m-"))

    def total(self) -> int:
        return sum(b.count(b"m-") for b in self.boxes.values())

    async def until_total(self, n: int, timeout: float = 10.0) -> None:
        try:
            await eventually(lambda: self.total() >= n, timeout)
        except TimeoutError:
            got = {k: b.count(b"m-") for k, b in self.boxes.items()}
            raise AssertionError(f"expected {n} queue deliveries, got {got}") from None

    async def close(self) -> None:
        await close_all(*self.conns.values())  # type: ignore[arg-type]


async def publish_batch(pub, subject: str, start: int, n: int) -> None:
    for i in range(start, start + n):
        await pub.publish(subject, f"m-{i}".encode())
    await pub.flush()


async def queue_once_local_preferred(topo: Topology, origin: str, n: int = 90) -> dict[str, int]:
    """Members on every server but the publisher's: each message once, all in its cluster."""
    group = QueueGroup(topo, unique("q"))
    pub = await connect(topo.node(origin).url)
    try:
        sentinels = await group.join([x.name for x in topo.nodes if x.name != origin])
        await reach(pub, sentinels)
        await publish_batch(pub, group.subject, 0, n)
        await group.until_total(n)
        await group.drained(pub)
        assert group.payloads() == sorted(f"m-{i}".encode() for i in range(n))
        per = group.per_cluster()
        home = topo.node(origin).cluster
        assert per[home] == n, f"remote members got messages although {home} has members: {per}"
        return per
    finally:
        await close_all(pub)
        await group.close()


async def wait_async(pred, timeout: float) -> None:
    await asyncio.wait_for(_until(pred), timeout)


async def _until(pred) -> None:
    while not pred():
        await asyncio.sleep(0.05)


def outbound_subs(topo: Topology, node: str, remote: str, account: str = "$G") -> list[str]:
    """Subjects a server believes remote cluster ``remote`` is interested in (/gatewayz)."""
    gwz = topo.node(node).get("/gatewayz?accs=1&subs=1")
    out = gwz["outbound_gateways"][remote]
    for acc in out.get("accounts") or []:
        if acc["name"] == account:
            return acc.get("subscriptions_list") or []
    return []


def route_interest(topo: Topology, node: str) -> list[str]:
    """Subscriptions ``node``'s routes have told it about (/routez?subs=1)."""
    doc = topo.node(node).get("/routez?subs=1")
    return [s for r in doc.get("routes") or [] for s in r.get("subscriptions_list") or []]


def outbound_msgs(topo: Topology, node: str, remote: str) -> int:
    gwz = topo.node(node).get("/gatewayz")
    return gwz["outbound_gateways"][remote]["connection"]["out_msgs"]

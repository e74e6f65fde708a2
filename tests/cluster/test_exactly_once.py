"""Exactly-once delivery with plain and queue subscribers on one subject, counted per message.

One subject, many kinds of subscriber spread over a supercluster of three clusters (A: three
servers, B: two, C: one), so that a publisher's server forwards each message over routes with a
*queue list* (``RMSG <acc> <subj> + <reply> q1 q2 <size>`` / ``RMSG <acc> <subj> | q1 <size>``,
and the ``HMSG`` forms) and over gateways with the queue groups it did not serve:

* ``plain``: one plain subscriber on every server, and a second plain subscription on A2's
  connection (a connection gets a message once per matching subscription);
* ``local``: queue members on A2, A3, B1 and C1 (every cluster has one: the publisher's cluster
  takes every message);
* ``remote``: members on B1, B2 and C1 only (from A: one of B and C takes each message; from B
  or C: that cluster takes them all);
* ``pair``: two members on A2 (two connections) and one on A3; ``solo``: one member on A3;
  ``both``: one member on A2, so A2's RMSG names up to three queues at once.

Every message carries an id; a third are plain publishes, a third have a reply subject, a third
headers and a reply. After the batch the publisher sends an end marker, then every subscriber
connection sends one too, so a duplicate relayed by any server before it saw the markers would
have arrived before them. Then: every plain subscription has every id exactly once, every queue
group has every id exactly once over all its members in the whole supercluster. Run on scserver
only, on a mix of scserver and nats-server (in one cluster too), and on nats-server only (the
reference: the same assertions must hold there).

The queue lists themselves are checked on the wire against a fake route peer (a raw socket
logged in to a single server's route port), both servers, transcripts compared: what a server
routes to a peer with plain and queue interest, and whom a routed message with each form of
queue list reaches.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from tests.cluster.helpers import (
    Inbox,
    close_all,
    connect,
    eventually,
    layout_params,
    reach,
    sentinel,
    unique,
)
from tests.cluster.topology import GO, SC, Topology, running
from tests.server.conftest import IMPLS, RawClient, Servers
from tests.tools import LOOPBACK, free_port

LAYOUTS = {
    "scserver": {"A": [SC, SC, SC], "B": [SC, SC], "C": [SC]},
    "mixed": {"A": [SC, GO, SC], "B": [GO, SC], "C": [GO]},
    "nats-server": {"A": [GO, GO, GO], "B": [GO, GO], "C": [GO]},
}

#: queue group -> the servers its members are on (one connection per member)
QUEUES: dict[str, list[str]] = {
    "local": ["A2", "A3", "B1", "C1"],
    "remote": ["B1", "B2", "C1"],
    "pair": ["A2", "A2", "A3"],
    "solo": ["A3"],
    "both": ["A2"],
}
N = 60


@pytest.fixture(
    scope="module",
    params=layout_params(LAYOUTS),
)
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    with running(LAYOUTS[request.param]) as t:
        yield t


@dataclass
class Member:
    """One subscriber connection: its subscriptions' inboxes and its end-marker inbox."""

    server: str
    nc: Client
    boxes: list[Inbox]
    done: Inbox


class Layout:
    """Every subscriber of the scenario, on one subject."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.subject = unique("once")
        self.done_subject = unique("done")
        self.plain: list[Member] = []
        self.queues: dict[str, list[Member]] = {q: [] for q in QUEUES}

    @property
    def members(self) -> list[Member]:
        return self.plain + [m for ms in self.queues.values() for m in ms]

    async def _member(self, server: str, queue: str = "", extra_plain: bool = False) -> Member:
        nc = await connect(self.topo.node(server).url)
        boxes = []
        for _ in range(2 if extra_plain else 1):
            box = Inbox(f"{server}/{queue or 'plain'}")
            await nc.subscribe(self.subject, queue=queue, cb=box.cb)
            boxes.append(box)
        done = Inbox(f"{server}/done")
        await nc.subscribe(self.done_subject, cb=done.cb)
        return Member(server, nc, boxes, done)

    async def start(self) -> list:
        for node in self.topo.nodes:
            self.plain.append(await self._member(node.name, extra_plain=node.name == "A2"))
        for q, where in QUEUES.items():
            for server in where:
                self.queues[q].append(await self._member(server, queue=q))
        return [await sentinel(m.nc) for m in self.members]

    async def close(self) -> None:
        await close_all(*(m.nc for m in self.members))

    async def end_markers(self, pub: Client) -> None:
        """The publisher's marker, then one from every subscriber connection, reach everyone."""
        await pub.publish(self.done_subject, b"pub")
        await pub.flush()
        members = self.members
        try:
            await eventually(lambda: all(m.done.count(b"pub") for m in members), 15)
            for i, m in enumerate(members):
                await m.nc.publish(self.done_subject, f"m{i}".encode())
                await m.nc.flush()
            await eventually(lambda: all(len(m.done.msgs) == 1 + len(members) for m in members), 15)
        except TimeoutError:
            got = {m.done.label: len(m.done.msgs) for m in members}
            raise AssertionError(f"end markers missing: {got}\n{self.topo.logs()}") from None


def ids(boxes: list[Inbox]) -> Counter[str]:
    return Counter(m.data.decode() for b in boxes for m in b.msgs)


async def publish_batch(pub: Client, subject: str) -> list[str]:
    """N messages: plain, with a reply subject, with headers and a reply (in turn)."""
    sent = []
    for i in range(N):
        mid = f"m-{i}"
        if i % 3 == 0:
            await pub.publish(subject, mid.encode())
        elif i % 3 == 1:
            await pub.publish(subject, mid.encode(), reply=f"r.{i}")
        else:
            await pub.publish(subject, mid.encode(), reply=f"r.{i}", headers={"Id": mid})
        sent.append(mid)
    await pub.flush()
    return sent


@pytest.mark.parametrize("origin", ["A1", "B2", "C1"])
async def test_each_plain_subscription_and_each_queue_group_gets_each_message_once(
    topo: Topology, origin: str
) -> None:
    layout = Layout(topo)
    pub = await connect(topo.node(origin).url)
    try:
        await reach(pub, await layout.start())
        sent = await publish_batch(pub, layout.subject)
        await layout.end_markers(pub)
        want = Counter(sent)
        for m in layout.plain:
            for box in m.boxes:
                assert ids([box]) == want, f"plain subscription on {m.server}: {ids([box])}"
        home = topo.node(origin).cluster
        for q, members in layout.queues.items():
            got = ids([b for m in members for b in m.boxes])
            extra = got - want
            missing = want - got
            assert not extra and not missing, (
                f"queue group {q!r} from {origin}: duplicates {dict(extra)}, "
                f"missing {sorted(missing)}"
            )
            per_cluster = Counter(
                topo.node(m.server).cluster for m in members for b in m.boxes for _ in b.msgs
            )
            if any(topo.node(s).cluster == home for s in QUEUES[q]):
                # a cluster with members of the group takes all its messages
                assert per_cluster == Counter({home: N}), (q, dict(per_cluster))
        # headers and replies crossed with the messages
        for m in layout.plain:
            for msg in m.boxes[0].msgs:
                i = int(msg.data.decode().split("-")[1])
                assert msg.reply == ("" if i % 3 == 0 else f"r.{i}"), (m.server, msg.reply)
                assert (msg.headers or {}).get("Id") == (msg.data.decode() if i % 3 == 2 else None)
    finally:
        await close_all(pub)
        await layout.close()


# --- the queue lists on the wire, against a fake route peer ---------------------------------


class FakeRoute:
    """A raw socket that logs in to a server's route port as a peer of its cluster."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=5)
        self.buf = b""
        info = json.loads(self._line()[5:])
        connect = {"echo": True, "verbose": False, "pedantic": False, "tls_required": False}
        connect.update(name="NFAKEROUTE", cluster="X", headers=True)
        mine = {"server_id": "NFAKEROUTE", "name": "fake", "cluster": "X", "headers": True}
        mine.update(port=1, route_pool_size=info.get("route_pool_size", 0))
        self.send(f"CONNECT {json.dumps(connect)}\r\nINFO {json.dumps(mine)}\r\n".encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"route closed: {self.buf!r}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def until_pong(self) -> None:
        while (line := self._line()) != b"PONG":
            if line == b"PING":
                self.send(b"PONG\r\n")

    def messages_until(self, end: bytes) -> list[str]:
        """RMSG/HMSG control lines (queue names sorted) up to the one on subject ``end``."""
        out = []
        while True:
            line = self._line()
            if line.startswith((b"RMSG ", b"HMSG ")):
                parts = line.split()
                self._line()  # the payload line
                if parts[2] == end:
                    return out
                out.append(normal_queue_order(parts))
            elif line == b"PING":
                self.send(b"PONG\r\n")

    def close(self) -> None:
        self.sock.close()


def normal_queue_order(parts: list[bytes]) -> str:
    """``RMSG acc subj [+ reply | |] q.. [hdr] size`` with its queue names sorted (nats-server
    lists them in map order)."""
    if len(parts) > 4 and parts[3] in (b"+", b"|"):
        head = 5 if parts[3] == b"+" else 4
        tail = 2 if parts[0] == b"HMSG" else 1
        parts = parts[:head] + sorted(parts[head:-tail]) + parts[-tail:]
    return b" ".join(parts).decode()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    yield s
    s.stop_all()


def route_server(servers: Servers, impl: str) -> tuple[Any, int]:
    port = free_port()
    sp = servers.start(impl, f"cluster {{\n  name: X\n  listen: {LOOPBACK}:{port}\n}}\n")
    return sp, port


HDR = b"NATS/1.0\r\n\r\n"  # 12 bytes


@pytest.mark.nats_server
def test_queue_lists_a_server_routes(servers: Servers) -> None:
    """What a server sends a route peer with plain and queue interest: ``+ reply q..`` and
    ``| q..`` (the peer's members are the only ones, so every group is named)."""

    def scenario(impl: str) -> list[str]:
        sp, port = route_server(servers, impl)
        peer = FakeRoute(port)
        try:
            peer.send(
                b"RS+ $G foo q1 1\r\nRS+ $G foo q2 1\r\nRS+ $G foo\r\nRS+ $G bar q1 1\r\n"
                b"RS+ $G end\r\nPING\r\n"
            )
            peer.until_pong()  # the server has read the interest before it
            c = RawClient(sp.port)
            c.connect(headers=True)
            c.send(
                b"PUB foo r 2\r\nhi\r\nPUB foo 2\r\nho\r\n"
                + b"HPUB foo r2 12 14\r\n"
                + HDR
                + b"hx\r\nHPUB foo 12 14\r\n"
                + HDR
                + b"hy\r\n"
                + b"PUB bar r3 2\r\nhz\r\nPUB bar 2\r\nhw\r\nPUB end 1\r\nx\r\nPING\r\n"
            )
            return peer.messages_until(b"end")
        finally:
            peer.close()

    res = {impl: scenario(impl) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    assert res["scserver"] == [
        "RMSG $G foo + r q1 q2 2",
        "RMSG $G foo | q1 q2 2",
        "HMSG $G foo + r2 q1 q2 12 14",
        "HMSG $G foo | q1 q2 12 14",
        "RMSG $G bar + r3 q1 2",
        "RMSG $G bar | q1 2",
    ]


@pytest.mark.nats_server
def test_queue_lists_a_server_receives(servers: Servers) -> None:
    """A routed message reaches the plain subscriptions and only the queue groups it names."""

    def scenario(impl: str) -> list[str]:
        sp, port = route_server(servers, impl)
        c = RawClient(sp.port)
        c.connect(headers=True)
        c.exchange(b"SUB foo 1\r\nSUB foo q1 2\r\nSUB foo q2 3\r\nSUB end 9\r\nPING\r\n")
        peer = FakeRoute(port)
        try:
            peer.send(
                b"RMSG $G foo + r q1 2\r\na1\r\nRMSG $G foo | q2 2\r\na2\r\n"
                + b"RMSG $G foo r 2\r\na3\r\nRMSG $G foo 2\r\na4\r\n"
                + b"HMSG $G foo | q1 q2 12 14\r\n"
                + HDR
                + b"a5\r\n"
                + b"HMSG $G foo + r q2 12 14\r\n"
                + HDR
                + b"a6\r\n"
                + b"RMSG $G foo | q3 2\r\na7\r\nRMSG $G end 1\r\nx\r\n"
            )
            got = c.lines(until="MSG end 9 1", timeout=5)
            return sorted(" ".join((got[i], got[i + 1])) for i in range(0, len(got) - 1, 2))
        finally:
            peer.close()

    res = {impl: scenario(impl) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    h = repr(HDR)[2:-1]  # the header block as the payload's repr shows it
    assert res["scserver"] == sorted(
        [
            "MSG foo 1 r 2 b'a1'",  # + r q1: the plain subscription and q1
            "MSG foo 2 r 2 b'a1'",
            "MSG foo 1 2 b'a2'",  # | q2
            "MSG foo 3 2 b'a2'",
            "MSG foo 1 r 2 b'a3'",  # a reply, no queue list: plain only
            "MSG foo 1 2 b'a4'",
            f"HMSG foo 1 12 14 b'{h}a5'",  # | q1 q2
            f"HMSG foo 2 12 14 b'{h}a5'",
            f"HMSG foo 3 12 14 b'{h}a5'",
            f"HMSG foo 1 r 12 14 b'{h}a6'",  # + r q2
            f"HMSG foo 3 r 12 14 b'{h}a6'",
            "MSG foo 1 2 b'a7'",  # | q3: nobody here is in q3
            "MSG end 9 1 b'x'",
        ]
    )

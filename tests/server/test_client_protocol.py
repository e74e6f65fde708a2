"""nats-py clients against a running server: pub/sub, wildcards, queues, headers, request/reply.

Every test runs against scserver and, as a reference, against nats-server: what the client
observes must be the same.
"""

from __future__ import annotations

from collections import Counter

import nats
import pytest
from nats.errors import NoRespondersError
from tests.server.conftest import IMPLS


@pytest.fixture(scope="module", params=IMPLS)
def url(request, module_servers) -> str:
    sp = module_servers.start(request.param)
    return sp.url


async def _connect(url: str, **kw):
    return await nats.connect(url, allow_reconnect=False, connect_timeout=3, **kw)


async def _collect(sub, n: int, timeout: float = 3.0) -> list:
    out = []
    for _ in range(n):
        out.append(await sub.next_msg(timeout=timeout))
    return out


SENTINEL = b"~sentinel"


async def _nothing_more(sub, nc, subject: str) -> None:
    """ "Nothing else arrived", proven: ``nc`` publishes a sentinel on ``subject`` (one ``sub``
    sees) after the messages under test; it must be ``sub``'s next message. A late or extra
    message from before would come first (a fixed wait only hoped it would have come by then)."""
    await nc.publish(subject, SENTINEL)
    await nc.flush()
    got = await sub.next_msg(timeout=5)
    assert (got.subject, got.data) == (subject, SENTINEL), (got.subject, got.data)


async def test_pub_sub_order(url: str) -> None:
    nc = await _connect(url)
    try:
        sub = await nc.subscribe("orders.new")
        await nc.flush()
        for i in range(50):
            await nc.publish("orders.new", f"m{i}".encode())
        msgs = await _collect(sub, 50)
        assert [m.data for m in msgs] == [f"m{i}".encode() for i in range(50)]
        assert {m.subject for m in msgs} == {"orders.new"}
        await _nothing_more(sub, nc, "orders.new")
    finally:
        await nc.close()


async def test_pub_sub_across_connections(url: str) -> None:
    a, b = await _connect(url), await _connect(url)
    try:
        sub = await b.subscribe("x.y")
        await b.flush()
        await a.publish("x.y", b"hello", reply="inbox.1")
        (m,) = await _collect(sub, 1)
        assert (m.subject, m.reply, m.data) == ("x.y", "inbox.1", b"hello")
    finally:
        await a.close()
        await b.close()


async def test_wildcards(url: str) -> None:
    nc = await _connect(url)
    try:
        star = await nc.subscribe("w.*")
        gt = await nc.subscribe("w.>")
        mid = await nc.subscribe("w.*.c")
        lit = await nc.subscribe("w.b")
        await nc.flush()
        for subj in ("w.b", "w.b.c", "w.b.d", "w", "w.x.c.d", "v.b"):
            await nc.publish(subj, subj.encode())
        await nc.flush()
        assert [m.subject for m in await _collect(star, 1)] == ["w.b"]
        assert [m.subject for m in await _collect(gt, 4)] == ["w.b", "w.b.c", "w.b.d", "w.x.c.d"]
        assert [m.subject for m in await _collect(mid, 1)] == ["w.b.c"]
        assert [m.subject for m in await _collect(lit, 1)] == ["w.b"]
        # Nothing else, proven by sentinels published after: each subscription's next messages
        # are exactly the sentinels its pattern matches, in order.
        for subj in ("w.s", "w.s.c", "w.b"):
            await nc.publish(subj, SENTINEL)
        await nc.flush()
        expected = {star: ["w.s", "w.b"], gt: ["w.s", "w.s.c", "w.b"], mid: ["w.s.c"], lit: ["w.b"]}
        for s, subjects in expected.items():
            got = await _collect(s, len(subjects))
            assert [(m.subject, m.data) for m in got] == [(x, SENTINEL) for x in subjects]
    finally:
        await nc.close()


async def test_queue_group_one_member_per_message(url: str) -> None:
    c1, c2 = await _connect(url), await _connect(url)
    pub = await _connect(url)
    try:
        members = [
            await c1.subscribe("work", queue="workers"),
            await c1.subscribe("work", queue="workers"),
            await c2.subscribe("work", queue="workers"),
        ]
        other_group = await c2.subscribe("work", queue="auditors")
        plain = await c2.subscribe("work")
        # a plain sentinel subscription on each member connection (see below)
        sentinels = [await c.subscribe("work.sentinel") for c in (c1, c2)]
        await c1.flush()
        await c2.flush()
        n = 300
        for i in range(n):
            await pub.publish("work", str(i).encode())
        await pub.publish("work.sentinel", SENTINEL)
        await pub.flush()
        # Every message reaches the plain subscriber and exactly one member of each group.
        assert len(await _collect(plain, n)) == n
        assert len(await _collect(other_group, n)) == n
        # Once each member connection has the sentinel the publisher sent last, it has every
        # message sent to it before: the members' counts are final.
        for s in sentinels:
            assert (await s.next_msg(timeout=5)).data == SENTINEL
        counts = [m.pending_msgs for m in members]
        assert sum(counts) == n, counts
        got: list[bytes] = []
        for m in members:
            got.extend(x.data for x in await _collect(m, m.pending_msgs))
        assert Counter(got) == Counter(str(i).encode() for i in range(n))
        # Random distribution: with 300 messages each member gets a fair share.
        assert all(c >= 40 for c in counts), counts
    finally:
        for nc in (c1, c2, pub):
            await nc.close()


async def test_headers_round_trip(url: str) -> None:
    nc = await _connect(url)
    try:
        sub = await nc.subscribe("h")
        await nc.flush()
        await nc.publish("h", b"body", headers={"X-One": "1", "X-Two": "two words"})
        await nc.publish("h", b"", headers={"Only": "header"})
        m1, m2 = await _collect(sub, 2)
        assert m1.data == b"body"
        assert m1.headers == {"X-One": "1", "X-Two": "two words"}
        assert m2.data == b"" and m2.headers == {"Only": "header"}
    finally:
        await nc.close()


async def test_request_reply(url: str) -> None:
    server, client = await _connect(url), await _connect(url)
    try:

        async def handler(msg):
            await msg.respond(b"echo:" + msg.data)

        await server.subscribe("svc.echo", cb=handler)
        await server.flush()
        for i in range(5):
            resp = await client.request("svc.echo", f"q{i}".encode(), timeout=3)
            assert resp.data == f"echo:q{i}".encode()
    finally:
        await server.close()
        await client.close()


async def test_no_responders(url: str) -> None:
    nc = await _connect(url)
    try:
        with pytest.raises(NoRespondersError):
            await nc.request("nobody.listens", b"?", timeout=3)
        # The connection is still fine afterwards.
        sub = await nc.subscribe("after")
        await nc.publish("after", b"ok")
        assert (await _collect(sub, 1))[0].data == b"ok"
    finally:
        await nc.close()


async def test_unsubscribe_with_max(url: str) -> None:
    nc = await _connect(url)
    try:
        sub = await nc.subscribe("limited")
        await sub.unsubscribe(limit=3)
        await nc.flush()
        for i in range(6):
            await nc.publish("limited", str(i).encode())
        await nc.flush()
        assert [m.data for m in await _collect(sub, 3)] == [b"0", b"1", b"2"]
        # A sentinel on another subscription of the same connection, published after: once it
        # is in, every MSG the server sent before it is counted (nats-py counts MSGs even for a
        # subscription it already dropped).
        probe = await nc.subscribe("limited.sentinel")
        await nc.publish("limited.sentinel", SENTINEL)
        assert (await probe.next_msg(timeout=5)).data == SENTINEL
        assert nc.stats["in_msgs"] == 3 + 1
    finally:
        await nc.close()


async def test_unsubscribe_stops_delivery(url: str) -> None:
    nc, pub = await _connect(url), await _connect(url)
    try:
        sub = await nc.subscribe("gone")
        keep = await nc.subscribe("gone")
        await nc.flush()
        await pub.publish("gone", b"1")
        await pub.flush()
        await _collect(sub, 1)
        await sub.unsubscribe()
        await nc.flush()
        await pub.publish("gone", b"2")
        await pub.flush()
        assert [m.data for m in await _collect(keep, 2)] == [b"1", b"2"]
    finally:
        await nc.close()
        await pub.close()


async def test_no_echo(url: str) -> None:
    quiet, other = await _connect(url, no_echo=True), await _connect(url)
    try:
        own = await quiet.subscribe("echo.test")
        theirs = await other.subscribe("echo.test")
        await quiet.flush()
        await other.flush()
        await quiet.publish("echo.test", b"from-quiet")
        await other.publish("echo.test", b"from-other")
        await quiet.flush()
        await other.flush()
        assert [m.data for m in await _collect(own, 1)] == [b"from-other"]
        await _nothing_more(own, other, "echo.test")
        assert sorted(m.data for m in await _collect(theirs, 2)) == [b"from-other", b"from-quiet"]
    finally:
        await quiet.close()
        await other.close()


async def test_large_message(url: str) -> None:
    nc = await _connect(url)
    try:
        assert nc.max_payload == 1048576
        sub = await nc.subscribe("big")
        await nc.flush()
        payload = bytes(range(256)) * 4000  # ~1 MB, just under max_payload
        await nc.publish("big", payload)
        (m,) = await _collect(sub, 1, timeout=5)
        assert m.data == payload
    finally:
        await nc.close()


async def test_many_subscriptions_fanout(url: str) -> None:
    nc = await _connect(url)
    try:
        subs = [await nc.subscribe(f"fan.{i % 5}") for i in range(50)]
        await nc.flush()
        for i in range(5):
            await nc.publish(f"fan.{i}", b"x")
        await nc.flush()
        for s in subs:
            assert len(await _collect(s, 1)) == 1
    finally:
        await nc.close()

"""Imports, exports and mappings across routes and gateways, in a supercluster that mixes
scserver and nats-server.

Clusters: ``E`` is an scserver and a nats-server joined by a route, ``W`` two scservers. Every
server has the same accounts: ``SVC`` exports a service and a stream, ``CLI`` imports both,
``OTHER`` imports nothing. Requests and subscriptions are made from every server to every other,
so each pairing of implementations is crossed by routes and by gateways; messages must arrive
exactly once, and never in ``OTHER``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from tests.cluster.helpers import close_all, connect, eventually, subscribe, unique
from tests.cluster.topology import GO, SC, Topology, running

pytestmark = pytest.mark.nats_server

ACCOUNTS = """
accounts {
  SVC: {
    users: [{user: svc, password: s}]
    exports: [
      {service: "help.>", response_type: stream}
      {stream: "news.>", accounts: [CLI]}
    ]
    mappings {
      "raw.*": "cooked.$1"
      "w.*": [{dest: "w.a.$1", weight: 50%}, {dest: "w.b.$1", weight: 50%}]
    }
  }
  CLI: {
    users: [{user: cli, password: c}]
    imports: [
      {service: {account: SVC, subject: "help.>"}, to: "ask.>"}
      {stream: {account: SVC, subject: "news.>"}, prefix: "ext"}
    ]
  }
  OTHER: { users: [{user: other, password: o}] }
}
"""


@pytest.fixture(scope="module")
def topo():
    with running({"E": [SC, GO], "W": [SC, SC]}, top_extra={"*": ACCOUNTS}) as t:
        yield t


def _url(t: Topology, node: str, creds: str) -> str:
    return t.node(node).url.replace("nats://", f"nats://{creds}@")


async def _request_until_answered(nc, subject: str, timeout: float = 15.0) -> bytes:
    """Retry while the responder's interest is still on its way (no responders / timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await nc.request(subject, b"q", timeout=1)).data
        except (NoRespondersError, NatsTimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


NODES = ["E1", "E2", "W1", "W2"]


@pytest.mark.parametrize("responder", NODES)
async def test_service_import_answers_from_every_server(topo: Topology, responder: str) -> None:
    svc = await connect(_url(topo, responder, "svc:s"))
    token = unique("r").replace(".", "-")

    async def handler(m):
        await m.respond(f"{token}:{m.subject}".encode())

    await svc.subscribe(f"help.{token}.>", cb=handler)
    await svc.flush()
    clients = [await connect(_url(topo, n, "cli:c")) for n in NODES]
    try:
        for n, cli in zip(NODES, clients, strict=True):
            got = await _request_until_answered(cli, f"ask.{token}.{n}")
            assert got == f"{token}:help.{token}.{n}".encode(), (responder, n)
    finally:
        await close_all(svc, *clients)


@pytest.mark.parametrize("publisher", NODES)
async def test_stream_import_exactly_once_everywhere(topo: Topology, publisher: str) -> None:
    token = unique("s").replace(".", "-")
    subs = {}
    clients = []
    for n in NODES:
        cli = await connect(_url(topo, n, "cli:c"))
        other = await connect(_url(topo, n, "other:o"))
        clients += [cli, other]
        subs[n] = await subscribe(cli, f"ext.news.{token}.>")
        subs["spy-" + n] = await subscribe(other, ">")
    pub = await connect(_url(topo, publisher, "svc:s"))
    clients.append(pub)
    try:
        # Probe until every CLI subscriber hears the stream (interest propagation).
        deadline = time.monotonic() + 15
        while not all(subs[n].msgs for n in NODES):
            assert time.monotonic() < deadline, {n: subs[n].count() for n in NODES}
            await pub.publish(f"news.{token}.probe", b"probe")
            await pub.flush()
            with contextlib.suppress(TimeoutError):
                await eventually(lambda: all(subs[n].msgs for n in NODES), 0.2)
        for i in range(10):
            await pub.publish(f"news.{token}.m", f"m{i}".encode())
        # an end marker behind them: once every subscriber has it, nothing earlier is missing
        # and a duplicate would be counted (probes may still trail in: they are not "m")
        await pub.publish(f"news.{token}.end", b"end")
        await pub.flush()
        await eventually(lambda: all(subs[n].count(b"end") for n in NODES), 15, "end markers")
        for n in NODES:
            got = [m for m in subs[n].msgs if m.data.startswith(b"m")]
            assert [m.data for m in got] == [f"m{i}".encode() for i in range(10)], (publisher, n)
            assert {m.subject for m in got} == {f"ext.news.{token}.m"}
        # OTHER's own sentinel, published on the publisher's server after all that, reaches
        # every OTHER spy: imported traffic that leaked to them would have come before it
        spy_pub = await connect(_url(topo, publisher, "other:o"))
        clients.append(spy_pub)
        deadline = time.monotonic() + 15
        while not all(subs["spy-" + n].msgs for n in NODES):
            assert time.monotonic() < deadline, "OTHER's sentinel never reached every spy"
            await spy_pub.publish(f"other.{token}", b"sentinel")
            await spy_pub.flush()
            with contextlib.suppress(TimeoutError):
                await eventually(lambda: all(subs["spy-" + n].msgs for n in NODES), 0.2)
        for n in NODES:
            leaked = [m.subject for m in subs["spy-" + n].msgs if m.data != b"sentinel"]
            assert leaked == [], f"OTHER on {n} saw imported traffic"
    finally:
        await close_all(*clients)


@pytest.mark.parametrize("origin", ["E1", "E2", "W1"])
async def test_account_ping_connz_answered_by_every_server(topo: Topology, origin: str) -> None:
    cli = await connect(_url(topo, origin, "cli:c"))
    try:
        inbox = cli.new_inbox()
        box = await subscribe(cli, inbox)
        await cli.flush()
        deadline = time.monotonic() + 10

        def servers() -> set[str]:
            return {json.loads(m.data)["server"]["name"] for m in box.msgs}

        while servers() != set(NODES) and time.monotonic() < deadline:
            await cli.publish("$SYS.REQ.ACCOUNT.PING.CONNZ", b"", reply=inbox)
            await cli.flush()
            with contextlib.suppress(TimeoutError):  # ask again: interest still spreading
                await eventually(lambda: servers() == set(NODES), 1.0)
        assert servers() == set(NODES)
        # The account's own connections only, from every server.
        for m in box.msgs:
            data = json.loads(m.data)["data"]
            assert all(c.get("account", "CLI") == "CLI" for c in data.get("connections") or [])
    finally:
        await close_all(cli)


async def test_mapping_applied_where_published(topo: Topology) -> None:
    """SVC maps raw.* to cooked.$1 at ingress: a subscriber in the other cluster sees the mapped
    subject whichever implementation the publisher is on."""
    sub_nc = await connect(_url(topo, "W2", "svc:s"))
    token = unique("m").replace(".", "-")
    cooked = await subscribe(sub_nc, f"cooked.{token}")
    raw = await subscribe(sub_nc, f"raw.{token}")
    pubs = [await connect(_url(topo, n, "svc:s")) for n in ("E1", "E2")]
    try:
        deadline = time.monotonic() + 15
        while len(cooked.msgs) < 2:
            assert time.monotonic() < deadline, cooked.count()
            cooked.msgs.clear()
            for p in pubs:
                await p.publish(f"raw.{token}", b"x")
                await p.flush()
            with contextlib.suppress(TimeoutError):
                await eventually(lambda: len(cooked.msgs) >= 2, 0.5)
        # an end marker from each publisher behind those: once both arrived (mapped), anything
        # delivered unmapped on raw would have come before them
        for p in pubs:
            await p.publish(f"raw.{token}", b"end")
            await p.flush()
        await eventually(lambda: cooked.count(b"end") == 2, 15, "end markers")
        assert raw.msgs == []
    finally:
        await close_all(sub_nc, *pubs)


async def test_weighted_mapping_across_the_supercluster(topo: Topology) -> None:
    """Each publisher (scserver E1, nats-server E2) picks a weighted destination at ingress; the
    subscriber in W sees every message once, on both destinations."""
    token = unique("w").replace(".", "-")
    sub_nc = await connect(_url(topo, "W2", "svc:s"))
    box = await subscribe(sub_nc, f"w.*.{token}")
    pubs = [await connect(_url(topo, n, "svc:s")) for n in ("E1", "E2")]
    try:
        deadline = time.monotonic() + 15
        while box.count(b"probe") < 2:
            assert time.monotonic() < deadline, len(box.msgs)
            box.msgs.clear()
            for p in pubs:
                await p.publish(f"w.{token}", b"probe")
                await p.flush()
            with contextlib.suppress(TimeoutError):
                await eventually(lambda: box.count(b"probe") >= 2, 0.5)
        for p in pubs:
            for _ in range(40):
                await p.publish(f"w.{token}", b"m")
            await p.publish(f"w.{token}", b"end")  # a marker behind its 40
            await p.flush()
        await eventually(lambda: box.count(b"end") == 2, 15, "end markers")
        subjects = [m.subject for m in box.msgs if m.data == b"m"]
        assert len(subjects) == 80
        assert set(subjects) == {f"w.a.{token}", f"w.b.{token}"}
    finally:
        await close_all(sub_nc, *pubs)


async def test_queue_responders_answer_each_request_once(topo: Topology) -> None:
    """Responders in one queue group on two clusters; the export streams responses, so a request
    delivered twice would be answered twice. Each request gets exactly one answer."""
    token = unique("q").replace(".", "-")
    responders = []
    for n in ("E1", "W1"):
        nc = await connect(_url(topo, n, "svc:s"))

        async def handler(m, name=n):
            await m.respond(name.encode() + b":" + m.data)

        await nc.subscribe(f"help.{token}", queue="workers", cb=handler)
        await nc.flush()
        responders.append(nc)
    clients = [await connect(_url(topo, n, "cli:c")) for n in ("E2", "W2")]
    try:
        for cli in clients:
            await _request_until_answered(cli, f"ask.{token}")
            inbox = cli.new_inbox()
            box = await subscribe(cli, inbox)
            await cli.flush()
            for _ in range(20):
                await cli.publish(f"ask.{token}", b"r", reply=inbox)
            await cli.flush()
            # sentinel requests until each responder that answered has answered one too (the
            # group prefers the local one): a duplicate request it got, or a duplicate answer it
            # sent, would have arrived ahead of that answer
            deadline = time.monotonic() + 15

            def sentinels_answered(box: Any = box) -> bool:
                def names(kind: bytes) -> set[bytes]:
                    return {d.split(b":")[0] for d in box.data() if d.endswith(kind)}

                return bool(names(b":s")) and names(b":r") <= names(b":s")

            while not sentinels_answered():
                assert time.monotonic() < deadline, [m.data for m in box.msgs]
                await cli.publish(f"ask.{token}", b"s", reply=inbox)
                await cli.flush()
                with contextlib.suppress(TimeoutError):
                    await eventually(sentinels_answered, 0.3)
            answers = [d for d in box.data() if d.endswith(b":r")]
            assert len(answers) == 20, [m.data for m in box.msgs]
    finally:
        await close_all(*responders, *clients)

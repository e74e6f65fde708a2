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
import json
import time

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from tests.cluster.helpers import close_all, connect, settle, subscribe, unique
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
            await asyncio.sleep(0.1)
        await settle(*clients, delay=0.5)
        for n in NODES:
            subs[n].msgs.clear()
        for i in range(10):
            await pub.publish(f"news.{token}.m", f"m{i}".encode())
        await settle(*clients, delay=1.0)
        for n in NODES:
            assert subs[n].data() == [f"m{i}".encode() for i in range(10)], (publisher, n)
            assert {m.subject for m in subs[n].msgs} == {f"ext.news.{token}.m"}
            assert subs["spy-" + n].msgs == [], f"OTHER on {n} saw imported traffic"
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
        servers: set[str] = set()
        while len(servers) < len(NODES) and time.monotonic() < deadline:
            box.msgs.clear()
            await cli.publish("$SYS.REQ.ACCOUNT.PING.CONNZ", b"", reply=inbox)
            await settle(cli, delay=0.7)
            servers = {json.loads(m.data)["server"]["name"] for m in box.msgs}
        assert servers == set(NODES)
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
            await asyncio.sleep(0.3)
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
        while True:
            box.msgs.clear()
            for p in pubs:
                await p.publish(f"w.{token}", b"probe")
            await settle(*pubs, sub_nc, delay=0.3)
            if len(box.msgs) == 2:
                break
            assert time.monotonic() < deadline, len(box.msgs)
        box.msgs.clear()
        for p in pubs:
            for _ in range(40):
                await p.publish(f"w.{token}", b"m")
        await settle(*pubs, sub_nc, delay=1.0)
        subjects = [m.subject for m in box.msgs]
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
            await m.respond(name.encode())

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
                await cli.publish(f"ask.{token}", b"", reply=inbox)
            await settle(cli, delay=1.0)
            assert len(box.msgs) == 20, [m.data for m in box.msgs]
    finally:
        await close_all(*responders, *clients)

"""`$SYS` seen from clients: account isolation, connect/disconnect advisories, STATSZ heartbeats.

The supercluster is the seed's shape with one more account ``A`` (user ``a``) next to ``$SYS``;
every test runs against scserver and nats-server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from tests.system.sysutil import GO, SC, SYS_CONF, Node, Supercluster, plan, seed_spec

pytestmark = pytest.mark.natscli

CONF_WITH_A = SYS_CONF.replace(
    "accounts: {", "accounts: {\n  A: {users: [{user: a, password: a}]}\n", 1
)


@pytest.fixture(scope="module", params=[SC, GO])
def two_accounts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supercluster]:
    impl = request.param
    sc = plan(seed_spec(impl, impl), tmp_path_factory.mktemp(f"acc-{impl}"))
    sc.sys_conf = CONF_WITH_A
    sc.start()
    try:
        yield sc
    finally:
        sc.stop()


def url(node: Node, user: str) -> str:
    return f"nats://{user}:{user}@127.0.0.1:{node.port}"


async def connect(node: Node, user: str, name: str = "") -> nats.NATS:
    return await nats.connect(url(node, user), name=name or f"{user}-client", allow_reconnect=False)


async def test_statsz_heartbeats(two_accounts: Supercluster) -> None:
    """`$SYS.SERVER.<id>.STATSZ` arrives from both servers; each server's seq increases."""
    n1 = two_accounts.node("n1")
    sys_nc = await connect(n1, "sys")
    try:
        ids = {}
        inbox = sys_nc.new_inbox()
        sub = await sys_nc.subscribe(inbox)
        await sys_nc.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
        for _ in range(2):
            doc = json.loads((await sub.next_msg(timeout=5)).data)
            ids[doc["server"]["id"]] = doc["server"]["name"]
        hb = await sys_nc.subscribe("$SYS.SERVER.*.STATSZ")
        # Heartbeats start 250 ms after startup and back off (doubling) to one per 10 s;
        # this test runs first on a fresh cluster, so the next ones come within seconds.
        seen: dict[str, list[int]] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 12
        while loop.time() < deadline and set(seen) != set(ids):
            try:
                msg = await hb.next_msg(timeout=deadline - loop.time())
            except NatsTimeout:
                break
            doc = json.loads(msg.data)
            sid = doc["server"]["id"]
            assert msg.subject == f"$SYS.SERVER.{sid}.STATSZ"
            assert 1 <= doc["statsz"]["active_servers"] <= 2
            seen.setdefault(sid, []).append(doc["server"]["seq"])
        assert {ids[s] for s in seen} == {"n1", "n2"}
        for seqs in seen.values():
            assert seqs == sorted(set(seqs))
    finally:
        await sys_nc.close()


async def test_sys_user_answered_other_account_not(two_accounts: Supercluster) -> None:
    n1 = two_accounts.node("n1")
    sys_nc = await connect(n1, "sys")
    a_nc = await connect(n1, "a")
    try:
        # positive control: the system user is answered by both servers
        inbox = sys_nc.new_inbox()
        sub = await sys_nc.subscribe(inbox)
        await sys_nc.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
        names = set()
        for _ in range(2):
            msg = await sub.next_msg(timeout=5)
            names.add(json.loads(msg.data)["server"]["name"])
        assert names == {"n1", "n2"}
        # account A: no responders for the same subject (or, at most, silence)
        with pytest.raises((NoRespondersError, NatsTimeout)):
            await a_nc.request("$SYS.REQ.SERVER.PING", b"", timeout=1)
        with pytest.raises((NoRespondersError, NatsTimeout)):
            await a_nc.request("$SYS.REQ.SERVER.PING.VARZ", b"{}", timeout=1)
        # on a plain subscription to its reply subject only a 503 status arrives, no answer
        a_inbox = a_nc.new_inbox()
        a_sub = await a_nc.subscribe(a_inbox)
        await a_nc.publish("$SYS.REQ.SERVER.PING", b"", reply=a_inbox)
        await a_nc.flush()
        # Sentinels instead of a second of silence: the system user asks the same after A; its
        # answers (both servers) leave the same internal queues and links after any answer to
        # A's request would have, and A's own message to its inbox then comes last on A's
        # connection. Whatever reached A's inbox before it is all A will ever get.
        await sys_nc.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
        answered = {json.loads((await sub.next_msg(timeout=5)).data)["server"]["name"]}
        answered.add(json.loads((await sub.next_msg(timeout=5)).data)["server"]["name"])
        assert answered == {"n1", "n2"}
        await a_nc.publish(a_inbox, b"sentinel")
        got = []
        while (m := await a_sub.next_msg(timeout=5)).data != b"sentinel":
            got.append(m)
        assert [(m.data, (m.headers or {}).get("Status")) for m in got] in ([], [(b"", "503")])
    finally:
        await a_nc.close()
        await sys_nc.close()


async def until_received(pub: nats.NATS, subject: str, sub: object, data: bytes) -> None:
    """Publish ``data`` on ``subject`` until ``sub`` receives it: the subscription's interest has
    crossed the gateway (in place of a fixed sleep). Later copies may still arrive: skip them."""
    for _ in range(200):
        await pub.publish(subject, data)
        await pub.flush()
        try:
            msg = await sub.next_msg(timeout=0.1)  # type: ignore[attr-defined]
        except NatsTimeout:
            continue
        if msg.data == data:
            return
    raise AssertionError(f"{subject} never reached the subscriber")


async def test_sys_subject_in_other_account_stays_there(two_accounts: Supercluster) -> None:
    """A publish on `$SYS.>` in account A reaches A's subscribers, never the system account's."""
    n1, n2 = two_accounts.node("n1"), two_accounts.node("n2")
    sys_local = await connect(n1, "sys")
    sys_remote = await connect(n2, "sys")
    a_pub = await connect(n1, "a")
    a_sub_nc = await connect(n2, "a")
    try:
        seen_sys: list[str] = []

        async def record(msg: nats.aio.msg.Msg) -> None:
            seen_sys.append(msg.subject)

        await sys_local.subscribe("$SYS.>", cb=record)
        await sys_remote.subscribe("$SYS.>", cb=record)
        a_sub = await a_sub_nc.subscribe("$SYS.PROBE.>")
        await sys_local.flush()
        await sys_remote.flush()
        await a_sub_nc.flush()
        await until_received(a_pub, "$SYS.PROBE.warm", a_sub, b"warm")
        for i in range(3):
            await a_pub.publish(f"$SYS.PROBE.{i}", b"from A")
        await a_pub.flush()
        got: list[str] = []
        while len(got) < 3:
            msg = await a_sub.next_msg(timeout=5)
            if msg.subject != "$SYS.PROBE.warm":  # later copies of the warm-up, ahead in order
                got.append(msg.subject)
        assert got == ["$SYS.PROBE.0", "$SYS.PROBE.1", "$SYS.PROBE.2"]
        # control: the system account's own publish reaches both system subscribers; it is
        # also the sentinel behind A's probes (a leak of those would have arrived before it)
        await sys_local.publish("$SYS.PROBE.sys", b"from $SYS")
        await sys_local.flush()
        await wait_until(lambda: seen_sys.count("$SYS.PROBE.sys") == 2, "$SYS.PROBE.sys twice")
        assert seen_sys.count("$SYS.PROBE.sys") == 2
        assert [s for s in seen_sys if s.startswith("$SYS.PROBE.") and s != "$SYS.PROBE.sys"] == []
        # and A does not see the system account's: A's own sentinel, published after, is next
        await a_pub.publish("$SYS.PROBE.end", b"sentinel")
        await a_pub.flush()
        assert (await a_sub.next_msg(timeout=5)).subject == "$SYS.PROBE.end"
    finally:
        for nc in (a_sub_nc, a_pub, sys_remote, sys_local):
            await nc.close()


async def wait_until(predicate: object, what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until true (fail naming ``what`` after ``timeout`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def next_json(sub: object, timeout: float, want: dict) -> dict:
    """The next message whose JSON has every key/value of ``want`` (dotted keys go deeper)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no message matching {want} within {timeout}s")
        try:
            msg = await sub.next_msg(timeout=left)  # type: ignore[attr-defined]
        except NatsTimeout:
            continue
        doc = json.loads(msg.data)
        doc["_subject"] = msg.subject
        if all(_get(doc, k) == v for k, v in want.items()):
            return doc


def _get(doc: dict, dotted: str) -> object:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)  # type: ignore[assignment]
    return doc


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_connect_disconnect_advisories(two_accounts: Supercluster, where: str) -> None:
    """The advisory of a client on n1 (or on n2, across the gateway) reaches a sys user on n1."""
    n1, n2 = two_accounts.node("n1"), two_accounts.node("n2")
    sys_nc = await connect(n1, "sys")
    try:
        conn_sub = await sys_nc.subscribe("$SYS.ACCOUNT.*.CONNECT")
        disc_sub = await sys_nc.subscribe("$SYS.ACCOUNT.*.DISCONNECT")
        await sys_nc.flush()
        target = n1 if where == "local" else n2
        if where == "remote":  # the subscriptions' interest has crossed the gateway once a
            sys_remote = await connect(n2, "sys")  # probe published on n2 reaches both
            try:
                for subject, sub in (("CONNECT", conn_sub), ("DISCONNECT", disc_sub)):
                    await until_received(
                        sys_remote, f"$SYS.ACCOUNT.PROBE.{subject}", sub, b'{"probe": 1}'
                    )
            finally:
                await sys_remote.close()
        name = f"advisory-probe-{where}"
        nc = await connect(target, "a", name)
        doc = await next_json(conn_sub, 5, {"client.name": name})
        assert doc["_subject"] == "$SYS.ACCOUNT.A.CONNECT"
        assert doc["type"] == "io.nats.server.advisory.v1.client_connect"
        assert doc["server"]["name"] == target.name
        assert doc["server"]["cluster"] == target.cluster
        assert doc["client"]["acc"] == "A"
        assert doc["client"]["user"] == "a"
        assert doc["client"]["lang"] == "python3"
        assert isinstance(doc["client"]["id"], int)
        assert doc["id"] and doc["timestamp"]
        cid = doc["client"]["id"]
        await nc.publish("adv.x", b"12345")
        await nc.flush()
        await nc.close()
        doc = await next_json(disc_sub, 5, {"client.name": name})
        assert doc["_subject"] == "$SYS.ACCOUNT.A.DISCONNECT"
        assert doc["type"] == "io.nats.server.advisory.v1.client_disconnect"
        assert doc["server"]["name"] == target.name
        assert doc["client"]["id"] == cid
        assert doc["client"]["acc"] == "A"
        assert doc["reason"] == "Client Closed"
        # the client's own view: what it sent (one message of 5 bytes)
        assert doc["sent"]["msgs"] == 1
        assert doc["sent"]["bytes"] == 5
    finally:
        await sys_nc.close()

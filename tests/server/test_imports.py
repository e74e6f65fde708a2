"""Account exports and imports, differential against nats-server.

Each scenario runs the same client actions against scserver and nats-server started with the
same configuration, and the observations (what each client received, on which subject, the
monitoring documents) must be equal -- and equal to what nats-server's documentation promises,
so the test would fail if both were wrong the same way.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from tests.server.conftest import IMPLS
from tests.tools import LOOPBACK, http_get_json, wait_for

CONF = """
accounts {
  SVC: {
    users: [{user: svc, password: s}]
    exports: [
      {service: "help.>", response_type: stream, response_threshold: "2s"}
      {service: "time"}
      {service: "chunks", response: chunked}
      {service: "shared"}
      {service: "track", response_type: stream, response_threshold: "1m"}
      {stream: "news.>", accounts: [CLI]}
      {stream: "feed.*"}
    ]
  }
  CLI: {
    users: [{user: cli, password: c}]
    imports: [
      {service: {account: SVC, subject: "help.>"}, to: "ask.>"}
      {service: {account: SVC, subject: "time"}}
      {service: {account: SVC, subject: "chunks"}}
      {service: {account: SVC, subject: "shared"}, share: true}
      {service: {account: SVC, subject: "track"}}
      {stream: {account: SVC, subject: "news.>"}, prefix: "ext"}
      {stream: {account: SVC, subject: "feed.*"}, to: "myfeed.*"}
    ]
  }
  OTHER: {
    users: [{user: other, password: o}]
  }
}
"""


@pytest.fixture(scope="module")
def started(module_servers):
    return {impl: module_servers.start(impl, CONF, http=True) for impl in IMPLS}


async def _connect(sp: Any, user: str, password: str, **kw: Any) -> nats.NATS:
    return await nats.connect(
        f"nats://{user}:{password}@{LOOPBACK}:{sp.port}",
        allow_reconnect=False,
        connect_timeout=3,
        **kw,
    )


def _both(started, scenario) -> Any:
    """Run ``scenario(sp)`` against both servers; their observations must be equal.

    On a loaded two-core machine either server can, rarely, lose a timing race inside one
    scenario, so a disagreement is checked once more before it fails the test: a real
    difference in behaviour shows up both times.
    """
    res = {impl: _run(scenario, started, impl) for impl in IMPLS}
    if res["scserver"] != res["nats-server"]:
        res = {impl: _run(scenario, started, impl) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    return res["scserver"]


def _run(scenario: Any, started: Any, impl: str) -> Any:
    """One scenario against one server; an error names the server and carries its log tail."""
    try:
        return asyncio.run(scenario(started[impl]))
    except Exception as exc:
        exc.add_note(f"against {impl}; its log ends:\n{started[impl].log_tail(15)}")
        raise


async def _drain(sub: Any, wait: float = 0.3) -> list[tuple[str, bytes]]:
    got = []
    while True:
        try:
            m = await sub.next_msg(timeout=wait)
        except NatsTimeoutError:
            return got
        got.append((m.subject, m.data))


# --- services ---------------------------------------------------------------------------------


def test_service_import_request_reply(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")
        seen: list[Any] = []

        async def handler(m):
            info = json.loads((m.headers or {}).get("Nats-Request-Info", "{}"))
            seen.append((m.subject, m.reply.startswith("_R_."), info.get("acc")))
            await m.respond(b"re:" + m.data)

        await svc.subscribe("help.>", cb=handler)
        await svc.flush()
        replies = [(await cli.request(f"ask.{w}", w.encode(), timeout=3)).data for w in "ab"]
        await svc.close()
        await cli.close()
        return replies, seen

    replies, seen = _both(started, scenario)
    assert replies == [b"re:a", b"re:b"]
    assert seen == [("help.a", True, "CLI"), ("help.b", True, "CLI")]


def test_shared_import_tells_the_responder_who_asked(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c", name="asker")
        infos: list[dict] = []

        async def handler(m):
            infos.append(json.loads(m.headers["Nats-Request-Info"]))
            await m.respond(b"")

        await svc.subscribe("shared", cb=handler)
        await svc.subscribe("help.>", cb=handler)
        await svc.flush()
        await cli.request("shared", b"", timeout=3)
        await cli.request("ask.x", b"", timeout=3)
        await svc.close()
        await cli.close()
        shared, plain = infos
        keys = {"acc", "user", "name", "lang", "ver", "kind", "client_type", "host", "id", "start"}
        return (
            sorted(keys - set(shared)),
            {k: shared.get(k) for k in ("acc", "user", "name", "kind")},
            sorted(set(plain) - {"rtt"}),
        )

    assert _both(started, scenario) == (
        [],
        {"acc": "CLI", "user": "cli", "name": "asker", "kind": "Client"},
        ["acc"],
    )


def test_service_not_reachable_from_exporter_side_names(started) -> None:
    """Only the import's local subject crosses: CLI publishing on the export subject itself,
    and OTHER (which imports nothing), reach nobody in SVC."""

    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")
        other = await _connect(sp, "other", "o")
        sub = await svc.subscribe("help.>")
        await svc.flush()
        await cli.publish("help.direct", b"1")
        await other.publish("ask.x", b"2")
        await other.publish("help.x", b"3")
        await cli.publish("ask.ok", b"4")
        await cli.flush()
        await other.flush()
        got = await _drain(sub)
        for nc in (svc, cli, other):
            await nc.close()
        return got

    assert _both(started, scenario) == [("help.ok", b"4")]


def test_no_responders_through_import(started) -> None:
    async def scenario(sp):
        cli = await _connect(sp, "cli", "c")
        try:
            await cli.request("ask.nobody", b"", timeout=2)
            result = "answered"
        except NoRespondersError:
            result = "no responders"
        except NatsTimeoutError:
            result = "timeout"
        await cli.close()
        return result

    assert _both(started, scenario) == "no responders"


async def _responses(sp: Any, subject: str, answers: list[bytes]) -> list[bytes]:
    """CLI requests ``subject`` with its own inbox; SVC answers every item of ``answers``."""
    svc = await _connect(sp, "svc", "s")
    cli = await _connect(sp, "cli", "c")

    async def handler(m):
        for a in answers:
            await svc.publish(m.reply, a)

    await svc.subscribe(subject, cb=handler)
    await svc.flush()
    inbox = cli.new_inbox()
    sub = await cli.subscribe(inbox)
    await cli.publish(subject, b"go", reply=inbox)
    await cli.flush()
    got = [data for _, data in await _drain(sub, 0.5)]
    await svc.close()
    await cli.close()
    return got


def test_singleton_response_delivers_one_answer(started) -> None:
    assert _both(started, lambda sp: _responses(sp, "time", [b"1", b"2", b"3"])) == [b"1"]


def test_streamed_response_delivers_every_answer(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")

        async def handler(m):
            for a in (b"1", b"2", b"3"):
                await svc.publish(m.reply, a)

        await svc.subscribe("help.>", cb=handler)
        await svc.flush()
        inbox = cli.new_inbox()
        sub = await cli.subscribe(inbox)
        await cli.publish("ask.stream", b"go", reply=inbox)
        await cli.flush()
        got = [d for _, d in await _drain(sub, 0.5)]
        await svc.close()
        await cli.close()
        return got

    assert _both(started, scenario) == [b"1", b"2", b"3"]


def test_chunked_response_ends_on_empty_message(started) -> None:
    got = _both(started, lambda sp: _responses(sp, "chunks", [b"a", b"b", b"", b"after"]))
    assert got == [b"a", b"b", b""]


def test_streamed_response_tracking_expires_after_threshold(started) -> None:
    """A streamed response stays tracked (in /accountz responses) until the export's
    response_threshold (2s) passes, then it is dropped."""

    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")

        async def handler(m):
            await svc.publish(m.reply, b"x")

        await svc.subscribe("help.>", cb=handler)
        await svc.flush()
        inbox = cli.new_inbox()
        sub = await cli.subscribe(inbox)
        await cli.publish("ask.track", b"", reply=inbox)
        await cli.flush()
        await sub.next_msg(timeout=5)  # the response streamed back: it is tracked now
        detail = http_get_json(LOOPBACK, sp.http_port, "/accountz?acc=SVC")["account_detail"]
        during = len(detail.get("responses", {}))
        deadline = time.monotonic() + 10
        after = during
        while time.monotonic() < deadline and after:
            await asyncio.sleep(0.5)
            detail = http_get_json(LOOPBACK, sp.http_port, "/accountz?acc=SVC")
            after = len(detail["account_detail"].get("responses", {}))
        await svc.close()
        await cli.close()
        return during, after

    assert _both(started, scenario) == (1, 0)


def test_requester_unsubscribe_ends_response_tracking(started) -> None:
    """A streamed response stays tracked until its threshold, unless the requester stops
    listening on the reply subject first."""

    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")

        async def handler(m):
            await svc.publish(m.reply, b"x")

        await svc.subscribe("track", cb=handler)
        await svc.flush()
        inbox = cli.new_inbox()
        sub = await cli.subscribe(inbox)
        await cli.publish("track", b"", reply=inbox)
        await cli.flush()
        await sub.next_msg(timeout=2)

        def pending() -> int:
            doc = http_get_json(LOOPBACK, sp.http_port, "/accountz?acc=SVC")
            return len(doc["account_detail"].get("responses", {}))

        doc = http_get_json(LOOPBACK, sp.http_port, "/accountz?acc=SVC")["account_detail"]
        (entry,) = doc["responses"].values()
        shape = sorted(entry) + [entry["account"], entry["type"], entry["subject"] == inbox]
        before = pending()
        await sub.unsubscribe()
        await cli.flush()
        # the threshold is 1m: within this wait only the unsubscribe can end the tracking
        await asyncio.to_thread(wait_for, lambda: pending() == 0, 15, 0.05, "tracking ended")
        after = pending()
        await svc.close()
        await cli.close()
        return shape, before, after

    shape, before, after = _both(started, scenario)
    assert (before, after) == (1, 0)
    assert shape[-3:] == ["CLI", 2, True]


# --- streams ------------------------------------------------------------------------------------


def test_stream_import_with_prefix(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")
        other = await _connect(sp, "other", "o")
        wide = await cli.subscribe(">")
        narrow = await cli.subscribe("ext.news.sports")
        plain = await cli.subscribe("news.>")
        spy = await other.subscribe(">")
        await cli.flush()
        await other.flush()
        for s in ("news.sports", "news.weather", "private.x"):
            await svc.publish(s, s.encode())
        await svc.flush()
        res = (await _drain(wide), await _drain(narrow), await _drain(plain), await _drain(spy))
        for nc in (svc, cli, other):
            await nc.close()
        return res

    wide, narrow, plain, spy = _both(started, scenario)
    assert sorted(wide) == [
        ("ext.news.sports", b"news.sports"),
        ("ext.news.weather", b"news.weather"),
    ]
    assert narrow == [("ext.news.sports", b"news.sports")]
    assert plain == [] and spy == []


def test_stream_import_with_to_rewrites_wildcards(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")
        one = await cli.subscribe("myfeed.a")
        star = await cli.subscribe("myfeed.*")
        await cli.flush()
        for s in ("feed.a", "feed.b", "feed.a.b"):
            await svc.publish(s, b"")
        await svc.flush()
        res = ([s for s, _ in await _drain(one)], sorted(s for s, _ in await _drain(star)))
        await svc.close()
        await cli.close()
        return res

    assert _both(started, scenario) == (["myfeed.a"], ["myfeed.a", "myfeed.b"])


def test_stream_import_queue_group_gets_one_copy(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")
        q1 = await cli.subscribe("ext.news.>", queue="q")
        q2 = await cli.subscribe("ext.news.>", queue="q")
        await cli.flush()
        for i in range(20):
            await svc.publish("news.q", str(i).encode())
        await svc.flush()
        got = await _drain(q1) + await _drain(q2)
        await svc.close()
        await cli.close()
        return sorted(int(d) for _, d in got)

    assert _both(started, scenario) == list(range(20))


def test_unsubscribe_removes_stream_import_interest(started) -> None:
    async def scenario(sp):
        svc = await _connect(sp, "svc", "s")
        cli = await _connect(sp, "cli", "c")
        sub = await cli.subscribe("ext.news.>")
        await cli.flush()
        base = http_get_json(LOOPBACK, sp.http_port, "/accountz?acc=SVC")["account_detail"]
        await sub.unsubscribe()
        await cli.flush()
        after = http_get_json(LOOPBACK, sp.http_port, "/accountz?acc=SVC")["account_detail"]
        await svc.close()
        await cli.close()
        return base["subscriptions"] - after["subscriptions"]

    assert _both(started, scenario) == 1


# --- system requests an account user can make ----------------------------------------------------


def test_account_system_requests(started) -> None:
    async def scenario(sp):
        cli = await _connect(sp, "cli", "c", name="probe")
        info = json.loads((await cli.request("$SYS.REQ.USER.INFO", b"", timeout=3)).data)
        statz = json.loads((await cli.request("$SYS.REQ.ACCOUNT.PING.STATZ", b"", timeout=3)).data)
        connz = json.loads((await cli.request("$SYS.REQ.ACCOUNT.PING.CONNZ", b"", timeout=3)).data)
        sconnz = json.loads((await cli.request("$SYS.REQ.SERVER.PING.CONNZ", b"", timeout=3)).data)
        await cli.close()
        stat = statz["data"]["account_statz"]
        return (
            {k: info["data"].get(k) for k in ("user", "account")},
            [(s["acc"], s["conns"]) for s in stat],
            [c.get("name") for c in connz["data"]["connections"]],
            connz["data"]["num_connections"],
            sconnz["data"]["num_connections"],
        )

    assert _both(started, scenario) == (
        {"user": "cli", "account": "CLI"},
        [("CLI", 1)],
        ["probe"],
        1,
        1,
    )


# --- monitoring ---------------------------------------------------------------------------------


def _links(doc: dict[str, Any]) -> dict[str, Any]:
    d = doc["account_detail"]
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731 - a sort key
    return {
        "exports": sorted(
            (
                {**e, "approved_accounts": sorted(e.get("approved_accounts", []))}
                for e in d.get("exports", [])
            ),
            key=key,
        ),
        "imports": sorted(d.get("imports", []), key=key),
        "mappings": d.get("mappings"),
        "subscriptions": d["subscriptions"],
    }


def test_accountz_shows_imports_and_exports(started) -> None:
    res = {
        impl: {
            acc: _links(http_get_json(LOOPBACK, started[impl].http_port, f"/accountz?acc={acc}"))
            for acc in ("SVC", "CLI", "OTHER")
        }
        for impl in IMPLS
    }
    assert res["scserver"] == res["nats-server"], res
    cli = res["scserver"]["CLI"]["imports"]
    assert {"subject": "help.>", "account": "SVC", "to": "ask.>", "local_subject": "ask.>",
            "type": "service", "invalid": False, "share": False, "tracking": False} in cli  # fmt: skip
    assert any(i["local_subject"] == "ext.news.>" and i["type"] == "stream" for i in cli)
    svc_exports = res["scserver"]["SVC"]["exports"]
    assert {"subject": "news.>", "type": "stream", "approved_accounts": ["CLI"]} in svc_exports


# --- account advisories -------------------------------------------------------------------------

SYS_CONF = """
accounts {
  SYS: { users: [{user: sys, password: s}] }
  CLI: { users: [{user: cli, password: c}] }
}
system_account: SYS
"""


@pytest.fixture(scope="module")
def with_sys(module_servers):
    return {impl: module_servers.start(impl, SYS_CONF) for impl in IMPLS}


def test_account_connection_advisories(with_sys) -> None:
    async def scenario(sp):
        sys_nc = await _connect(sp, "sys", "s")
        conns = await sys_nc.subscribe("$SYS.ACCOUNT.CLI.SERVER.CONNS")
        old = await sys_nc.subscribe("$SYS.SERVER.ACCOUNT.CLI.CONNS")
        events = await sys_nc.subscribe("$SYS.ACCOUNT.CLI.*")
        await sys_nc.flush()
        cli = await _connect(sp, "cli", "c")
        await cli.flush()
        await cli.close()

        async def docs(sub, n: int, sentinel_subject: str) -> list:
            """The next ``n`` documents, then whatever came before a sentinel the system user
            publishes on the subscription's subject (nothing, unless an advisory repeated)."""
            out = [json.loads((await sub.next_msg(timeout=10)).data) for _ in range(n)]
            await sys_nc.publish(sentinel_subject, b'"sentinel"')
            while (m := await sub.next_msg(timeout=10)).data != b'"sentinel"':
                out.append(json.loads(m.data))
            return out

        new = await docs(conns, 2, "$SYS.ACCOUNT.CLI.SERVER.CONNS")
        legacy = await docs(old, 2, "$SYS.SERVER.ACCOUNT.CLI.CONNS")
        evs = await docs(events, 2, "$SYS.ACCOUNT.CLI.SENTINEL")
        await sys_nc.close()
        return (
            [(d["type"], d["acc"], d["conns"]) for d in new],
            [(d["acc"], d["conns"]) for d in legacy],
            [d["type"] for d in evs],
        )

    kind = "io.nats.server.advisory.v1.account_connections"
    assert _both(with_sys, scenario) == (
        [(kind, "CLI", 1), (kind, "CLI", 0)],
        [("CLI", 1), ("CLI", 0)],
        [
            "io.nats.server.advisory.v1.client_connect",
            "io.nats.server.advisory.v1.client_disconnect",
        ],
    )


# --- reload -------------------------------------------------------------------------------------

BEFORE_RELOAD = """
accounts {
  SVC: {
    users: [{user: svc, password: s}]
    exports: [{service: "help.>"}, {stream: "news.>"}]
  }
  CLI: { users: [{user: cli, password: c}] }
}
"""
AFTER_RELOAD = BEFORE_RELOAD.replace(
    "CLI: { users: [{user: cli, password: c}] }",
    """CLI: {
    users: [{user: cli, password: c}]
    imports: [
      {service: {account: SVC, subject: "help.>"}, to: "ask.>"}
      {stream: {account: SVC, subject: "news.>"}, prefix: "ext"}
    ]
  }""",
)


@pytest.mark.parametrize("impl", IMPLS)
async def test_reload_adds_imports(servers, impl: str) -> None:
    sp = servers.start(impl, BEFORE_RELOAD)
    svc = await _connect(sp, "svc", "s")
    cli = await _connect(sp, "cli", "c")
    try:

        async def handler(m):
            await m.respond(b"ok")

        await svc.subscribe("help.>", cb=handler)
        await svc.flush()
        with pytest.raises(NoRespondersError):
            await cli.request("ask.x", b"", timeout=2)
        head = sp.config_path.read_text().split("accounts {")[0]
        sp.config_path.write_text(head + AFTER_RELOAD)
        sp.signal(signal.SIGHUP)
        # The reload is applied while clients keep running (nats-server activates service
        # imports before it has re-processed every client of the account), so both imports
        # are polled for, within a bound, rather than expected at the first message.
        deadline = time.monotonic() + 15
        while True:
            try:
                assert (await cli.request("ask.x", b"", timeout=2)).data == b"ok"
                break
            except (NoRespondersError, NatsTimeoutError):
                assert time.monotonic() < deadline, "service import not active after reload"
                await asyncio.sleep(0.2)
        news = await cli.subscribe("ext.news.>")
        await cli.flush()
        while True:
            await svc.publish("news.a", b"n")
            await svc.flush()
            try:
                msg = await news.next_msg(timeout=1)
                break
            except NatsTimeoutError:
                assert time.monotonic() < deadline, "stream import not active after reload"
        assert (msg.subject, msg.data) == ("ext.news.a", b"n")
    finally:
        await svc.close()
        await cli.close()


def test_accountz_system_account_exports(started) -> None:
    """The system account shows the exports every account's implicit imports use."""
    res = {}
    for impl in IMPLS:
        doc = http_get_json(LOOPBACK, started[impl].http_port, "/accountz?acc=$SYS")
        links = _links(doc)
        res[impl] = (links["exports"], links["imports"])
    assert res["scserver"] == res["nats-server"], res
    exports, imports = res["scserver"]
    assert {e["subject"] for e in exports} >= {"$SYS.REQ.ACCOUNT.*.CONNZ", "$SYS.REQ.USER.*.INFO"}
    assert [i["to"] for i in imports] == ["$SYS.REQ.USER.INFO"]


PERMS_CONF = """
accounts {
  A: {
    users: [
      {user: p1, password: p, permissions: {
        publish: ["a.>", "$SYS.REQ.USER.INFO"]
        subscribe: {allow: ["_INBOX.>", "b.*"], deny: ["x"]}
      }}
    ]
  }
}
"""


@pytest.fixture(scope="module")
def with_perms(module_servers):
    return {impl: module_servers.start(impl, PERMS_CONF) for impl in IMPLS}


def test_user_info_shows_permissions(with_perms) -> None:
    async def scenario(sp):
        nc = await _connect(sp, "p1", "p")
        doc = json.loads((await nc.request("$SYS.REQ.USER.INFO", b"", timeout=3)).data)["data"]
        await nc.close()
        perms = {
            what: {k: sorted(v) for k, v in rules.items()}
            for what, rules in doc["permissions"].items()
        }
        return doc["user"], doc["account"], perms

    assert _both(with_perms, scenario) == (
        "p1",
        "A",
        {
            "publish": {"allow": ["$SYS.REQ.USER.INFO", "a.>"]},
            "subscribe": {"allow": ["_INBOX.>", "b.*"], "deny": ["x"]},
        },
    )

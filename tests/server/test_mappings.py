"""Subject mappings, differential against nats-server, plus unit checks of the transforms.

The same configuration and publishes go to scserver and nats-server; the subjects subscribers
see must be equal (deterministic functions) or follow the same weights (weighted mappings).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from tests.server.conftest import IMPLS
from tests.tools import LOOPBACK, free_port, http_get_json

from scserver.mapping import MappingError, SubjectTransform, parse_mappings

CONF = """
mappings {
  "orders.*": [
    {dest: "orders.east.$1", weight: 40%}
    {dest: "orders.west.{{wildcard(1)}}", weight: 60%}
  ]
  "lossy": [{dest: "lossy", weight: 50%}]
  "p.*.*": "p.{{partition(4,1,2)}}.$2.$1"
  "sl.*": "sl.{{splitfromleft(1,2)}}"
  "sr.*": "sr.{{splitfromright(1,2)}}"
  "cl.*": "cl.{{slicefromleft(1,2)}}"
  "cr.*": "cr.{{slicefromright(1,2)}}"
  "sp.*": "sp.{{split(1,-)}}"
  "lr.*": "lr.{{left(1,2)}}.{{right(1,2)}}"
  "fw.>": "forward.>"
  "swap.*.*": "swap.$2.$1"
}
"""

ACCOUNTS_CONF = """
accounts {
  A: {
    users: [{user: a, password: a}]
    mappings { "in.*": "out.$1" }
  }
  B: {
    users: [{user: b, password: b}]
  }
}
"""


@pytest.fixture(scope="module")
def started(module_servers):
    """Top-level (global account) mappings; no accounts, so clients land in $G."""
    return {impl: module_servers.start(impl, CONF, http=True) for impl in IMPLS}


@pytest.fixture(scope="module")
def accounts(module_servers):
    return {impl: module_servers.start(impl, ACCOUNTS_CONF, http=True) for impl in IMPLS}


def _both(started, scenario) -> Any:
    res = {impl: asyncio.run(scenario(started[impl])) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    return res["scserver"]


async def _connect(sp: Any, creds: str = "") -> nats.NATS:
    auth = f"{creds}@" if creds else ""
    return await nats.connect(
        f"nats://{auth}{LOOPBACK}:{sp.port}", allow_reconnect=False, connect_timeout=3
    )


async def _drain(sub: Any, wait: float = 0.3) -> list[str]:
    got = []
    while True:
        try:
            m = await sub.next_msg(timeout=wait)
        except NatsTimeoutError:
            return got
        got.append(m.subject)


def test_deterministic_functions(started) -> None:
    subjects = [
        "p.a.b",
        "p.x.y",
        "p.orders.42",
        "sl.abcdef",
        "sr.abcdef",
        "cl.abcdefg",
        "cr.abcdefg",
        "sp.a-b--c",
        "lr.abcdef",
        "fw.a.b.c",
        "swap.one.two",
        "unmapped.x",
    ]

    async def scenario(sp):
        nc = await _connect(sp, "")
        sub = await nc.subscribe(">")
        await nc.flush()
        for s in subjects:
            await nc.publish(s, b"")
        await nc.flush()
        got = await _drain(sub)
        await nc.close()
        return got

    got = _both(started, scenario)
    assert got[3:] == [
        "sl.ab.cdef",
        "sr.abcd.ef",
        "cl.ab.cd.ef.g",
        "cr.a.bc.de.fg",
        "sp.a.b.c",
        "lr.ab.ef",
        "forward.a.b.c",
        "swap.two.one",
        "unmapped.x",
    ]
    assert all(s.split(".")[1] in "0123" for s in got[:3])


def test_weighted_mapping_splits_traffic(started) -> None:
    async def scenario(sp):
        nc = await _connect(sp, "")
        east = await nc.subscribe("orders.east.*")
        west = await nc.subscribe("orders.west.*")
        orig = await nc.subscribe("orders.*")
        await nc.flush()
        for _ in range(200):
            await nc.publish("orders.1", b"")
        await nc.flush()
        e, w, o = len(await _drain(east)), len(await _drain(west)), len(await _drain(orig))
        await nc.close()
        # Both destinations used, every message delivered exactly once, none left unmapped.
        return e > 20 and w > 40 and e + w == 200, o

    assert _both(started, scenario) == (True, 0)


def test_mapping_that_keeps_the_source_drops_the_rest(started) -> None:
    async def scenario(sp):
        nc = await _connect(sp, "")
        sub = await nc.subscribe("lossy")
        await nc.flush()
        for _ in range(200):
            await nc.publish("lossy", b"")
        await nc.flush()
        n = len(await _drain(sub))
        await nc.close()
        return 40 < n < 160

    assert _both(started, scenario) is True


def test_account_mapping_and_isolation(accounts) -> None:
    """An account's mappings apply to its own publishers only; the global ones do not apply."""

    async def scenario(sp):
        a = await _connect(sp, "a:a")
        b = await _connect(sp, "b:b")
        sa = await a.subscribe(">")
        sb = await b.subscribe(">")
        await a.flush()
        await b.flush()
        await a.publish("in.1", b"")
        await a.publish("orders.1", b"")
        await b.publish("in.2", b"")
        await a.flush()
        await b.flush()
        res = (await _drain(sa), await _drain(sb))
        await a.close()
        await b.close()
        return res

    assert _both(accounts, scenario) == (["out.1", "orders.1"], ["in.2"])


def test_mapped_request_reply(accounts) -> None:
    async def scenario(sp):
        a = await _connect(sp, "a:a")

        async def handler(m):
            await m.respond(m.subject.encode())

        await a.subscribe("out.*", cb=handler)
        await a.flush()
        r = await a.request("in.x", b"", timeout=3)
        await a.close()
        return r.data

    assert _both(accounts, scenario) == b"out.x"


def test_accountz_mappings(started, accounts) -> None:
    def doc(impl: str, acc: str) -> Any:
        sp = (accounts if acc != "$G" else started)[impl]
        return http_get_json(LOOPBACK, sp.http_port, f"/accountz?acc={acc}")["account_detail"].get(
            "mappings"
        )

    for acc in ("$G", "A", "B"):
        assert doc("scserver", acc) == doc("nats-server", acc), acc
    assert doc("scserver", "A") == {"in.*": [{"subject": "out.$1", "weight": 100}]}
    assert doc("scserver", "$G")["orders.*"] == [
        {"subject": "orders.east.$1", "weight": 40},
        {"subject": "orders.west.{{wildcard(1)}}", "weight": 100},
    ]


# --- unit checks (no server) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dest", "subject", "want"),
    [
        ("a.*.b", "x.$1", "a.q.b", "x.q"),
        ("a.*.*", "x.{{wildcard(2)}}.{{Wildcard(1)}}", "a.1.2", "x.2.1"),
        ("a.>", "b.>", "a.c.d", "b.c.d"),
        ("a.*.>", "b.$1.>", "a.c.d.e", "b.c.d.e"),
        ("x", "y", "x", "y"),
        ("s.*", "s.{{left(1)}}", "s.a", None),
        ("s.*", "s.{{wildcard()}}", "s.a", None),
    ],
)
def test_transform(src: str, dest: str, subject: str, want: str | None) -> None:
    if want is None:
        with pytest.raises(MappingError):
            SubjectTransform(src, dest)
        return
    assert SubjectTransform(src, dest).transform(subject.encode()) == want.encode()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"a.*": "b.{{nope(1)}}"}, "unknown function"),
        ({"a.*": "b.$2"}, "wildcard index out of range"),
        ({"a": [{"dest": "b", "weight": "70%"}, {"dest": "c", "weight": 40}]}, "total weight"),
        ({"a": [{"dest": "b"}]}, "Missing weight"),
        ({"a": [{"dest": "b", "weight": 101}]}, "Invalid weight"),
        ({"a..b": "c"}, "not a valid subject"),
        ({"a.*": "b.*"}, "invalid subject"),
    ],
)
def test_bad_mappings_refused(raw: dict[str, Any], fragment: str) -> None:
    _, errors = parse_mappings(raw)
    assert errors and fragment in errors[0][1], errors


def test_monitor_doc_fills_missing_weight_with_source() -> None:
    table, errors = parse_mappings({"a.*": [{"dest": "b.$1", "weight": 30}]})
    assert not errors
    assert json.loads(json.dumps(table.monitor_doc())) == {
        "a.*": [{"subject": "b.$1", "weight": 30}, {"subject": "a.$1", "weight": 100}]
    }


CLUSTER_CONF = """
cluster { name: east, listen: "127.0.0.1:%d" }
mappings {
  "cs": [
    {dest: "cs.here", weight: 100, cluster: east}
    {dest: "cs.elsewhere", weight: 100}
  ]
  "other": [
    {dest: "other.there", weight: 100, cluster: west}
    {dest: "other.default", weight: 100}
  ]
}
"""


def test_cluster_scoped_destinations(module_servers) -> None:
    started = {impl: module_servers.start(impl, CLUSTER_CONF % free_port()) for impl in IMPLS}

    async def scenario(sp):
        nc = await _connect(sp, "")
        sub = await nc.subscribe(">")
        await nc.flush()
        await nc.publish("cs", b"")
        await nc.publish("other", b"")
        await nc.flush()
        got = await _drain(sub)
        await nc.close()
        return got

    assert _both(started, scenario) == ["cs.here", "other.default"]


@pytest.mark.parametrize("impl", IMPLS)
async def test_reload_changes_mappings(servers, impl: str) -> None:
    sp = servers.start(impl, 'mappings { "a": "b" }\n')
    nc = await _connect(sp, "")
    try:
        sub = await nc.subscribe(">")
        await nc.flush()
        await nc.publish("a", b"")
        await nc.flush()
        assert await _drain(sub) == ["b"]
        head = sp.config_path.read_text().split("mappings")[0]
        sp.config_path.write_text(head + 'mappings { "a": "c" }\n')
        sp.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            await nc.publish("a", b"")
            await nc.flush()
            got = await _drain(sub, 0.2)
            if got and got[-1] == "c":
                break
            assert time.monotonic() < deadline, got
    finally:
        await nc.close()

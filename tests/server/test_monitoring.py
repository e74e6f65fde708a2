"""Monitoring endpoints compared with nats-server: status codes, JSON field names, paging/sorting.

Both servers get the same clients (raw sockets with known subscriptions and traffic); the
documents must use nats-server's field names for everything scserver reports.
"""

from __future__ import annotations

import pytest
from tests.server.conftest import IMPLS, SERVER_ID_RE, RawClient
from tests.tools import LOOPBACK, http_get, http_get_json, wait_for

N_CLIENTS = 5

# Fields scserver must report with nats-server's names (subset of nats-server's documents).
VARZ_FIELDS = {
    "server_id", "server_name", "version", "proto", "go", "host", "port", "max_connections",
    "ping_interval", "ping_max", "http_host", "http_port", "http_base_path", "auth_timeout",
    "max_control_line", "max_payload", "max_pending", "tls_timeout", "write_deadline", "start",
    "now", "uptime", "mem", "cores", "gomaxprocs", "cpu", "connections", "total_connections",
    "routes", "remotes", "leafnodes", "in_msgs", "out_msgs", "in_bytes", "out_bytes",
    "slow_consumers", "subscriptions", "http_req_stats", "config_load_time", "system_account",
    "cluster", "gateway", "leaf",
}  # fmt: skip
# scserver-only fields (documented extras that nats-server does not have).
VARZ_EXTRAS = {"python"}
CONNZ_FIELDS = {"server_id", "now", "num_connections", "total", "offset", "limit", "connections"}
CONN_FIELDS = {
    "cid", "kind", "type", "ip", "port", "start", "last_activity", "rtt", "uptime", "idle",
    "pending_bytes", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions",
}  # fmt: skip
SUBSZ_FIELDS = {
    "server_id", "now", "num_subscriptions", "num_cache", "num_inserts", "num_removes",
    "num_matches", "cache_hit_rate", "max_fanout", "avg_fanout",
}  # fmt: skip
SUB_DETAIL_FIELDS = {"subject", "sid", "msgs", "cid"}  # /subsz adds "account"
ACCOUNT_DETAIL_FIELDS = {
    "account_name", "update_time", "expired", "complete", "jetstream_enabled",
    "leafnode_connections", "client_connections", "subscriptions", "imports", "sublist_stats",
}  # fmt: skip
ACCOUNT_DETAIL_EXTRAS = {"is_system", "exports", "mappings"}


@pytest.fixture(scope="module")
def mon(module_servers):
    """{impl: (ServerProcess, [RawClient])}: client i has i+1 subscriptions and sent i msgs."""
    out = {}
    for impl in IMPLS:
        sp = module_servers.start(impl, "", http=True)
        clients = []
        for i in range(N_CLIENTS):
            c = RawClient(sp.port)
            c.connect(name=f"client-{i}")
            subs = "".join(f"SUB mon.{i}.{j} {j + 1}\r\n" for j in range(i + 1))
            pubs = "PUB mon.0.0 2\r\nhi\r\n" * i
            c.exchange(subs + pubs + "PING\r\n")
            clients.append(c)
        out[impl] = (sp, clients)
    yield out
    for _, clients in out.values():
        for c in clients:
            c.close()


def get(sp, path: str):
    return http_get_json(LOOPBACK, sp.http_port, path)


def both(mon, path: str) -> dict:
    return {impl: get(sp, path) for impl, (sp, _) in mon.items()}


def check_keys(docs: dict, required: set[str], extras: set[str] = frozenset()) -> None:
    ns, sc = set(docs["nats-server"]), set(docs["scserver"])
    assert required <= ns, required - ns  # the list above really is nats-server's naming
    assert required <= sc, required - sc
    assert sc - extras <= ns, f"scserver fields unknown to nats-server: {sc - extras - ns}"


def test_healthz(mon) -> None:
    for impl, (sp, _) in mon.items():
        status, body = http_get(LOOPBACK, sp.http_port, "/healthz")
        assert (status, body.strip()) in (
            (200, b'{"status":"ok"}'),
            (200, b'{\n  "status": "ok"\n}'),
        )
        assert get(sp, "/healthz") == {"status": "ok"}, impl


def test_varz(mon) -> None:
    docs = both(mon, "/varz")
    check_keys(docs, VARZ_FIELDS, VARZ_EXTRAS)
    for impl, doc in docs.items():
        sp = mon[impl][0]
        assert SERVER_ID_RE.match(doc["server_id"])
        assert doc["port"] == sp.port and doc["http_port"] == sp.http_port
        assert doc["connections"] == N_CLIENTS, impl
        assert doc["subscriptions"] >= sum(range(1, N_CLIENTS + 1)), impl
        assert doc["in_msgs"] >= sum(range(N_CLIENTS)), impl
        assert doc["max_payload"] == 1048576 and doc["ping_max"] == 2
        assert doc["ping_interval"] == 120 * 10**9  # nanoseconds
        assert isinstance(doc["uptime"], str) and doc["uptime"].endswith("s")
        assert doc["http_req_stats"].get("/varz", 0) >= 1, impl


def test_connz_default(mon) -> None:
    docs = both(mon, "/connz")
    check_keys(docs, CONNZ_FIELDS)
    conns = {impl: d["connections"] for impl, d in docs.items()}
    check_keys({k: v[0] for k, v in conns.items()}, CONN_FIELDS | {"name", "lang"})
    for impl, d in docs.items():
        assert d["total"] == d["num_connections"] == N_CLIENTS, impl
        assert (d["offset"], d["limit"]) == (0, 1024)
        cids = [c["cid"] for c in d["connections"]]
        assert cids == sorted(cids)
        assert [c["name"] for c in d["connections"]] == [f"client-{i}" for i in range(N_CLIENTS)]
        assert [c["subscriptions"] for c in d["connections"]] == list(range(1, N_CLIENTS + 1))
        assert all(c["kind"] == "Client" and c["type"] == "nats" for c in d["connections"])


def test_connz_paging(mon) -> None:
    for impl, (sp, _) in mon.items():
        full = [c["cid"] for c in get(sp, "/connz")["connections"]]
        page = get(sp, "/connz?offset=1&limit=2")
        assert (page["offset"], page["limit"], page["total"]) == (1, 2, N_CLIENTS), impl
        assert page["num_connections"] == 2
        assert [c["cid"] for c in page["connections"]] == full[1:3]
        tail = get(sp, f"/connz?offset={N_CLIENTS - 1}&limit=10")
        assert [c["cid"] for c in tail["connections"]] == full[-1:]
        assert get(sp, f"/connz?offset={N_CLIENTS + 3}")["connections"] == []


@pytest.mark.parametrize(
    ("sort", "key"),
    [("subs", "subscriptions"), ("msgs_from", "in_msgs"), ("bytes_from", "in_bytes")],
)
def test_connz_sort_descending(mon, sort: str, key: str) -> None:
    for impl, (sp, _) in mon.items():
        d = get(sp, f"/connz?sort={sort}")
        values = [c[key] for c in d["connections"]]
        assert values == sorted(values, reverse=True), (impl, values)
        assert values[0] > values[-1]


@pytest.mark.parametrize(
    "query",
    ["sort=bogus", "sort=stop", "limit=x", "subs=maybe"],
)
def test_connz_bad_params(mon, query: str) -> None:
    res = {
        impl: http_get(LOOPBACK, sp.http_port, f"/connz?{query}") for impl, (sp, _) in mon.items()
    }
    assert res["scserver"][0] == res["nats-server"][0] == 400, res
    if query != "subs=maybe":
        assert res["scserver"][1].strip() == res["nats-server"][1].strip(), res


def test_connz_subs_detail(mon) -> None:
    for impl, (sp, _) in mon.items():
        d = get(sp, "/connz?subs=detail&sort=subs&limit=1")
        (conn,) = d["connections"]
        details = conn["subscriptions_list_detail"]
        assert sorted(s["subject"] for s in details) == [f"mon.4.{j}" for j in range(5)], impl
        plain = get(sp, "/connz?subs=1&sort=subs&limit=1")["connections"][0]
        assert sorted(plain["subscriptions_list"]) == [f"mon.4.{j}" for j in range(5)]
    check_keys(
        {
            impl: get(sp, "/connz?subs=detail")["connections"][0]["subscriptions_list_detail"][0]
            for impl, (sp, _) in mon.items()
        },
        SUB_DETAIL_FIELDS,
    )


def test_subsz(mon) -> None:
    docs = both(mon, "/subsz")
    check_keys(docs, SUBSZ_FIELDS)
    for impl, d in docs.items():
        assert d["num_subscriptions"] >= sum(range(1, N_CLIENTS + 1)), impl
    detail = both(mon, "/subsz?subs=1&test=mon.0.0")
    for impl, d in detail.items():
        (entry,) = d["subscriptions_list"]
        assert (entry["subject"], entry["sid"], entry["account"]) == ("mon.0.0", "1", "$G"), impl
        assert entry["msgs"] == sum(range(N_CLIENTS))
    check_keys(
        {impl: d["subscriptions_list"][0] for impl, d in detail.items()},
        SUB_DETAIL_FIELDS | {"account"},
    )


def test_accountz(mon) -> None:
    docs = both(mon, "/accountz")
    check_keys(docs, {"server_id", "now", "system_account", "accounts"})
    for impl, d in docs.items():
        assert {"$G", "$SYS"} <= set(d["accounts"]), impl
        assert d["system_account"] == "$SYS"
    detail = both(mon, "/accountz?acc=$G")
    check_keys(
        {impl: d["account_detail"] for impl, d in detail.items()},
        ACCOUNT_DETAIL_FIELDS,
        ACCOUNT_DETAIL_EXTRAS,
    )
    for impl, d in detail.items():
        assert d["account_detail"]["account_name"] == "$G"
        assert d["account_detail"]["client_connections"] == N_CLIENTS, impl


def test_connz_closed_state(mon) -> None:
    for impl, (sp, _) in mon.items():
        c = RawClient(sp.port)
        c.connect(name="short-lived")
        cid = c.info["client_id"]
        c.close()

        def closed(sp=sp, cid=cid) -> bool:
            conns = get(sp, "/connz?state=closed")["connections"]
            return any(x["cid"] == cid and x.get("name") == "short-lived" for x in conns)

        wait_for(closed, 5, what=f"{impl} closed connection listed")
        entry = next(x for x in get(sp, f"/connz?state=closed&cid={cid}")["connections"])
        assert entry["reason"] == "Client Closed", impl
        assert "stop" in entry
        assert get(sp, "/connz")["total"] == N_CLIENTS

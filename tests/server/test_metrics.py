"""``/metrics``: prometheus-nats-exporter's names, scraped over HTTP(S) from running servers.

A small supercluster (cluster A of two servers, cluster B of one, linked by gateways) is
scraped with a real HTTP client and parsed with ``prometheus_client.parser``; values are
compared with the JSON endpoints they mirror and must follow traffic.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.cluster.helpers import (
    close_all,
    connect,
    eventually,
    reach,
    sentinel,
    subscribe,
    unique,
)
from tests.cluster.topology import SC, Node, Topology, running
from tests.server.conftest import RawClient, Servers
from tests.tls.link_certs import make_pki
from tests.tools import (
    LOOPBACK,
    ServerProcess,
    free_ports,
    http_get,
    scserver_command,
    wait_for,
)

from scserver.metrics import flatten

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: Every metric of the exporter's own Grafana dashboard (walkthrough/grafana-nats-dash.json).
EXPORTER_DASHBOARD = {
    "gnatsd_varz_connections", "gnatsd_varz_cpu", "gnatsd_varz_in_bytes", "gnatsd_varz_in_msgs",
    "gnatsd_varz_mem", "gnatsd_varz_out_bytes", "gnatsd_varz_out_msgs",
    "gnatsd_varz_slow_consumers", "gnatsd_varz_subscriptions",
}  # fmt: skip
#: /varz numbers that must appear under gnatsd_varz_<name> with the same value.
VARZ_NUMBERS = (
    "connections", "total_connections", "routes", "remotes", "subscriptions", "slow_consumers",
    "in_msgs", "out_msgs", "in_bytes", "out_bytes", "max_payload", "max_connections", "port",
)  # fmt: skip
GATEWAY_SUFFIXES = (
    "configured", "conn_start_time_seconds", "conn_last_activity_seconds", "conn_uptime_seconds",
    "conn_idle_seconds", "conn_rtt", "conn_pending_bytes", "conn_in_msgs", "conn_out_msgs",
    "conn_in_bytes", "conn_out_bytes", "conn_subscriptions",
)  # fmt: skip


@pytest.fixture(scope="module")
def sc() -> Iterator[Topology]:
    with running({"A": [SC, SC], "B": [SC]}) as topo:
        yield topo


def fetch(url: str, accept: str = "", context: ssl.SSLContext | None = None) -> tuple[str, str]:
    """GET ``url``; returns (content type, body)."""
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:  # noqa: S310 (loopback)
        return resp.headers["Content-Type"], resp.read().decode()


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples keyed by (name, labels) and each family's type."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def scrape(node: Node) -> Samples:
    return parse(fetch(f"http://{LOOPBACK}:{node.http_port}/metrics")[1])[0]


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    """The one sample of ``metric`` whose labels include ``labels``."""
    found = [
        v
        for (n, lv), v in samples.items()
        if n == metric and set(labels.items()) <= dict(lv).items()
    ]
    assert len(found) == 1, (metric, labels, found)
    return found[0]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(lv) for (n, lv) in samples if n == name]


# --- names, labels, values against the JSON endpoints ---------------------------------------


def test_exporter_names_labels_and_content_type(sc: Topology) -> None:
    node = sc.nodes[0]
    ctype, body = fetch(f"http://{LOOPBACK}:{node.http_port}/metrics")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    samples, types = parse(body)
    names = {n for n, _ in samples}
    assert names >= EXPORTER_DASHBOARD, EXPORTER_DASHBOARD - names
    sid = node.get("/varz")["server_id"]
    for (name, labels), _ in samples.items():
        if name.startswith("gnatsd_"):
            assert dict(labels)["server_id"] == sid, name
            # The exporter declares every family a gauge: a counter would be renamed *_total.
            assert types[name] == "gauge", name


def test_openmetrics_when_asked(sc: Topology) -> None:
    node = sc.nodes[0]
    ctype, body = fetch(
        f"http://{LOOPBACK}:{node.http_port}/metrics", accept="application/openmetrics-text"
    )
    assert ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "gnatsd_varz_in_msgs{" in body


def test_prefix_names_families_like_the_chart(sc: Topology) -> None:
    """The NATS Helm chart runs the exporter with -prefix=nats: ?prefix=nats gives its names."""
    node = sc.node("A1")
    plain = scrape(node)
    body = fetch(f"http://{LOOPBACK}:{node.http_port}/metrics?prefix=nats")[1]
    prefixed, _ = parse(body)
    assert not [n for n, _ in prefixed if n.startswith("gnatsd_")]
    want = {("nats" + n[len("gnatsd") :], lv) for n, lv in plain if n.startswith("gnatsd_")}
    assert {(n, lv) for n, lv in prefixed} == want
    assert value(prefixed, "nats_varz_max_payload") == value(plain, "gnatsd_varz_max_payload")
    assert series(prefixed, "nats_gatewayz_outbound_gateway_conn_out_msgs")


@pytest.mark.parametrize("prefix", ["9lives", "nats-io", "a%20b", "x" * 65])
def test_bad_prefix_is_a_clear_400(sc: Topology, prefix: str) -> None:
    node = sc.nodes[0]
    status, body = http_get(LOOPBACK, node.http_port, f"/metrics?prefix={prefix}")
    assert status == 400
    assert body.decode().startswith("invalid metrics prefix"), body


async def test_connz_detailed_is_per_connection_and_opt_in(sc: Topology) -> None:
    node = sc.node("A2")
    nc = await connect(node.url, "detail-me")
    try:
        for _ in range(3):
            await nc.publish("detail.x", b"abc")
        await nc.flush()
        url = f"http://{LOOPBACK}:{node.http_port}/metrics"
        detailed, _ = parse(fetch(url + "?connz_detailed=true")[1])
        plain = scrape(node)
        connz = node.get("/connz")
    finally:
        await close_all(nc)
    cid = str(next(c["cid"] for c in connz["connections"] if c.get("name") == "detail-me"))
    mine = {"name": "detail-me", "cid": cid, "kind": "Client", "lang": "python3"}
    assert value(detailed, "gnatsd_connz_in_msgs", **mine) == 3
    assert value(detailed, "gnatsd_connz_in_bytes", **mine) == 9
    assert value(detailed, "gnatsd_connz_start", **mine) > 0
    labels = next(s for s in series(detailed, "gnatsd_connz_rtt") if s.get("cid") == cid)
    assert set(labels) == {
        "server_id", "cid", "kind", "type", "ip", "port", "name", "name_tag", "account",
        "account_id", "lang", "version", "tls_version", "tls_cipher_suite",
    }  # fmt: skip
    # The summary series stay, and without the parameter there is nothing per connection.
    assert [s for s in series(detailed, "gnatsd_connz_in_msgs") if set(s) == {"server_id"}]
    assert series(plain, "gnatsd_connz_in_msgs") == [{"server_id": connz["server_id"]}]
    assert not series(plain, "gnatsd_connz_rtt")
    status, body = http_get(LOOPBACK, node.http_port, "/metrics?connz_detailed=maybe")
    assert status == 400 and b"connz_detailed" in body


def test_varz_families_match_varz(sc: Topology) -> None:
    for node in sc.nodes:
        before = node.get("/varz")
        samples = scrape(node)
        after = node.get("/varz")
        for key in VARZ_NUMBERS:
            got = value(samples, f"gnatsd_varz_{key}")
            assert before[key] <= got <= after[key], (node.name, key, before[key], got, after[key])
        for kind, count in after["slow_consumer_stats"].items():
            assert value(samples, f"gnatsd_varz_slow_consumer_stats_{kind}") == count
        # B1 runs alone, without a cluster block: no cluster name, as in /varz.
        names = [s["value"] for s in series(samples, "gnatsd_varz_cluster_name")]
        assert names == ([node.cluster] if after["cluster"] else []), (node.name, names)
        assert series(samples, "gnatsd_varz_gateway_name")[0]["value"] == node.cluster
        assert series(samples, "gnatsd_varz_server_name")[0]["value"] == node.name
        assert series(samples, "gnatsd_varz_version")[0]["value"] == after["version"]
        assert value(samples, "gnatsd_healthz_status") == 0
        # Skipped as the exporter skips them (collector.go skipFQN).
        assert not series(samples, "gnatsd_varz_gateway_port")
        assert not series(samples, "gnatsd_varz_cluster_cluster_port")


def test_routez_and_gatewayz_families_match(sc: Topology) -> None:
    seen = {"outbound": 0, "inbound": 0}
    for node in sc.nodes:
        routez = node.get("/routez")
        gatewayz = node.get("/gatewayz")
        samples = scrape(node)
        assert value(samples, "gnatsd_routez_num_routes") == routez["num_routes"]
        rids = {s["rid"] for s in series(samples, "gnatsd_routez_route_in_msgs")}
        assert rids == {str(r["rid"]) for r in routez["routes"]}
        for s in series(samples, "gnatsd_routez_route_in_msgs"):
            assert s["remote_name"] in {p.name for p in sc.clusters[node.cluster]} - {node.name}

        want_out = {
            (node.cluster, str(e["connection"]["cid"]), remote)
            for remote, e in gatewayz["outbound_gateways"].items()
        }
        want_in = {
            (node.cluster, str(e["connection"]["cid"]), remote)
            for remote, entries in gatewayz["inbound_gateways"].items()
            for e in entries
        }
        for direction, want in (("outbound", want_out), ("inbound", want_in)):
            seen[direction] += len(want)
            for suffix in GATEWAY_SUFFIXES:
                name = f"gnatsd_gatewayz_{direction}_gateway_{suffix}"
                got = {
                    (s["gateway_name"], s["cid"], s["remote_gateway_name"])
                    for s in series(samples, name)
                }
                assert got == want, (node.name, name, got, want)
            for s in series(samples, f"gnatsd_gatewayz_{direction}_gateway_configured"):
                assert value(samples, f"gnatsd_gatewayz_{direction}_gateway_configured", **s) == 1
    # Each server dials one server of every other cluster: 2 (A) + 1 (B) links each way.
    assert seen == {"outbound": 3, "inbound": 3}


# --- values follow traffic ---------------------------------------------------------------------


async def test_values_follow_traffic(sc: Topology) -> None:
    """Messages from a client on A1 to a subscriber on B1 show up in A1's client and outbound
    gateway counters and in B1's inbound gateway and client counters."""
    a1, b1 = sc.node("A1"), sc.node("B1")
    conns_before = value(scrape(a1), "gnatsd_connz_num_connections")
    pub = await connect(a1.url, "metrics-pub")
    sub = await connect(b1.url, "metrics-sub")
    try:
        subject = unique("metrics")
        box = await subscribe(sub, subject)
        await sub.flush()
        await reach(pub, [await sentinel(sub)])
        # Interest for `subject` crossed the gateway together with the sentinel's.
        wait_for(
            lambda: value(scrape(a1), "gnatsd_connz_num_connections") == conns_before + 1,
            10,
            what="A1 counts the publisher",
        )
        before_a, before_b = scrape(a1), scrape(b1)
        n, payload = 50, b"x" * 100
        for _ in range(n):
            await pub.publish(subject, payload)
        await pub.flush()
        await eventually(lambda: box.count() == n, 10, "all messages delivered")
        after_a, after_b = scrape(a1), scrape(b1)
    finally:
        await close_all(pub, sub)

    def grew(before: Samples, after: Samples, name: str, by: float, **labels: str) -> None:
        delta = total(after, name, **labels) - total(before, name, **labels)
        assert delta >= by, (name, labels, delta, by)

    grew(before_a, after_a, "gnatsd_varz_in_msgs", n)
    grew(before_a, after_a, "gnatsd_varz_in_bytes", n * len(payload))
    grew(before_a, after_a, "gnatsd_connz_in_msgs", n)
    grew(before_a, after_a, "gnatsd_gatewayz_outbound_gateway_conn_out_msgs", n,
         remote_gateway_name="B")  # fmt: skip
    # B1 has an inbound link from each server of A: together they carried the messages.
    grew(before_b, after_b, "gnatsd_gatewayz_inbound_gateway_conn_in_msgs", n,
         remote_gateway_name="A")  # fmt: skip
    grew(before_b, after_b, "gnatsd_varz_out_msgs", n)
    grew(before_b, after_b, "gnatsd_connz_out_msgs", n)
    grew(before_b, after_b, "gnatsd_connz_out_bytes", n * len(payload))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    found = [
        v for (n, lv), v in samples.items() if n == name and set(labels.items()) <= dict(lv).items()
    ]
    assert found, (name, labels)
    return sum(found)


def test_slow_consumer_counters_follow_a_cut(servers: Servers) -> None:
    """A client that never reads is cut as a slow consumer: the total and the per-kind
    counter (clients) both move, the others stay."""
    sp = servers.start(
        "scserver", 'max_pending: 65536\nmax_payload: 8192\nwrite_deadline: "1s"\n', http=True
    )

    def now() -> Samples:
        return parse(fetch(f"http://{LOOPBACK}:{sp.http_port}/metrics")[1])[0]

    before = now()
    slow = RawClient(sp.port, rcvbuf=4096)
    slow.connect()
    assert slow.exchange("SUB flood 1\r\nPING\r\n") == ["PONG"]
    pub = RawClient(sp.port)
    pub.connect()
    chunk = b"PUB flood 4096\r\n" + b"x" * 4096 + b"\r\n"

    def cut() -> bool:
        pub.send(chunk * 64)
        assert pub.exchange("PING\r\n") == ["PONG"]
        return value(now(), "gnatsd_varz_slow_consumers") >= 1

    try:
        wait_for(cut, 30, 0.01, "the slow consumer cut")
        after = now()
    finally:
        pub.close()
        slow.close()
    assert value(before, "gnatsd_varz_slow_consumers") == 0
    assert value(after, "gnatsd_varz_slow_consumer_stats_clients") == 1
    for kind in ("routes", "gateways", "leafs"):
        assert value(after, f"gnatsd_varz_slow_consumer_stats_{kind}") == 0
    varz = sp_varz(sp)
    assert value(after, "gnatsd_varz_slow_consumers") == varz["slow_consumers"]


def sp_varz(sp: ServerProcess) -> dict:
    return json.loads(fetch(f"http://{LOOPBACK}:{sp.http_port}/varz")[1])


# --- https ---------------------------------------------------------------------------------------


def test_metrics_over_https(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    port, https = free_ports(2)
    cmd = scserver_command()
    assert cmd is not None, "scserver not runnable"
    config = (
        f'listen: "{LOOPBACK}:{port}"\n'
        f'tls {{ cert_file: "{pki.path("good.pem")}", key_file: "{pki.path("good.key")}" }}\n'
        f"https_port: {https}\n"
    )
    with ServerProcess(cmd, config=config, name="https", port=port, workdir=tmp_path / "srv"):
        ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
        got: list[str] = []
        wait_for(
            lambda: got.append(fetch(f"https://localhost:{https}/metrics", context=ctx)[1]) or True,
            10,
            what="https /metrics",
        )
        samples, _ = parse(got[-1])
        assert value(samples, "gnatsd_varz_https_port") == https
        assert value(samples, "gnatsd_healthz_status") == 0


# --- the exporter's flattening rule ------------------------------------------------------------


def test_flatten_follows_the_exporter_rule() -> None:
    doc = {
        "server_id": "NABC",
        "version": "2.10.29",
        "start": "2026-11-26T04:00:00.5Z",
        "now": "2026-11-26T05:00:00Z",  # not a label key: skipped
        "host": "0.0.0.0",  # string, not a label key: skipped
        "auth_required": True,  # a JSON bool is not a number
        "connect_urls": ["a:1"],  # lists are skipped
        "in_msgs": 7,
        "cpu": 1.5,
        "http_req_stats": {"/varz": 3},
        "cluster": {"name": "east", "cluster_port": 6222, "urls": []},
        "gateway": {"name": "east", "port": 7222, "connect_retries": 3},
        "leaf": {"auth_timeout": 2},
    }
    got = {}
    for family in flatten(doc, "gnatsd", "varz", "NABC"):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    sid = (("server_id", "NABC"),)
    assert got == {
        ("gnatsd_varz_server_id", (("server_id", "NABC"), ("value", "NABC"))): 1.0,
        ("gnatsd_varz_version", (("server_id", "NABC"), ("value", "2.10.29"))): 1.0,
        ("gnatsd_varz_start", sid): 1795665600500.0,
        ("gnatsd_varz_in_msgs", sid): 7.0,
        ("gnatsd_varz_cpu", sid): 1.5,
        ("gnatsd_varz_http_req_stats_varz", sid): 3.0,
        ("gnatsd_varz_cluster_name", (("server_id", "NABC"), ("value", "east"))): 1.0,
        ("gnatsd_varz_gateway_name", (("server_id", "NABC"), ("value", "east"))): 1.0,
    }


# --- the Grafana dashboard ---------------------------------------------------------------------

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
#: PromQL words that are not metric names (functions are recognised by their parenthesis).
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "sum", "count", "max", "min", "avg", "topk", "bottomk", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: strings, label matchers, ranges and
    by/on/... label lists removed, then every identifier not called as a function."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", "0", text)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = m.group(0)
        called = text[m.end() :].lstrip().startswith("(")
        if not called and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def dashboard_exprs(doc: dict) -> list[str]:
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append(target["expr"])
    return out


def test_metric_names_parser() -> None:
    expr = (
        "sum by (cluster) (label_replace((rate(gnatsd_varz_in_msgs[5m])) * on (server_id) "
        'group_left (value) gnatsd_varz_gateway_name{value=~"$cluster"}, "cluster", "$1", '
        '"value", "(.*)")) * 1e6 or vector(0)'
    )
    assert metric_names(expr) == {"gnatsd_varz_in_msgs", "gnatsd_varz_gateway_name"}


def test_grafana_dashboard_uses_only_exported_metrics(sc: Topology) -> None:
    doc = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    exported: set[str] = set()
    for node in sc.nodes:
        exported |= {name for name, _ in scrape(node)}
    # The cluster variable: label_values(<metric>, <label>) over an exported family.
    metric, label = re.fullmatch(
        r"label_values\((\w+),\s*(\w+)\)", variables["cluster"]["definition"]
    ).groups()
    assert any(
        name == metric and label in dict(labels)
        for node in sc.nodes
        for name, labels in scrape(node)
    )
    exprs = dashboard_exprs(doc)
    titles = " ".join(p["title"] for p in doc["panels"]).lower()
    for word in ("gateway", "messages", "slow consumers", "connections"):
        assert word in titles, word
    for expr in exprs:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (names - exported, expr)
        for var in re.findall(r"\$(\w+)", expr):
            assert var in variables or var.startswith("__") or var.isdigit(), (var, expr)

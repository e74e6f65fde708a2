"""`nats server list|ping|info|report` against scserver and nats-server superclusters.

Every test runs on four superclusters: the seed's shape (east = n1, west = n2) and 2 clusters x
2 servers with routes, each once with scserver and once with nats-server. The assertions are
the same for both implementations, derived from the plan, so nats-server's answers are the
reference the scserver answers are held to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.system.sysutil import (
    GO,
    SC,
    NatsCli,
    RawClient,
    Supercluster,
    plan,
    routed_spec,
    seed_spec,
    table,
    wait_sys_ready,
)

pytestmark = pytest.mark.natscli

SHAPES = {
    "seed-sc": seed_spec(SC, SC),
    "seed-go": seed_spec(GO, GO),
    "routed-sc": routed_spec(SC),
    "routed-go": routed_spec(GO),
}


@pytest.fixture(scope="module")
def mcli(natscli_path: Path, tmp_path_factory: pytest.TempPathFactory) -> NatsCli:
    return NatsCli(natscli_path, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module", params=list(SHAPES))
def topo(
    request: pytest.FixtureRequest, mcli: NatsCli, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supercluster]:
    sc = plan(SHAPES[request.param], tmp_path_factory.mktemp(request.param))
    sc.start()
    try:
        wait_sys_ready(mcli, sc)
        yield sc
    finally:
        sc.stop()


def entry(sc: Supercluster) -> str:
    """The system user's URL on the first server of east (where the CLI connects)."""
    return sc.nodes[0].sys_url


def peers(sc: Supercluster, name: str) -> set[str]:
    node = sc.node(name)
    return {p.name for p in sc.clusters[node.cluster] if p.name != name}


def test_server_list_json(topo: Supercluster, mcli: NatsCli) -> None:
    docs = mcli.json("--server", entry(topo), "server", "list", "--json")
    first = topo.nodes[0].name
    by_name = {d["server"]["name"]: d for d in docs}
    assert sorted(by_name) == sorted(n.name for n in topo.nodes)
    assert len(docs) == len(topo.nodes), "every server answers exactly once"
    ids = {d["server"]["id"] for d in docs}
    assert len(ids) == len(docs)
    for node in topo.nodes:
        doc = by_name[node.name]
        server, stats = doc["server"], doc["statsz"]
        assert server["cluster"] == node.cluster
        assert server["host"] == "127.0.0.1"
        assert re.fullmatch(r"N[A-Z0-9]{55}", server["id"])
        assert server["jetstream"] is False
        assert stats["active_servers"] == len(topo.nodes)
        # the CLI itself is the only client, on the first server
        assert stats["connections"] == (1 if node.name == first else 0)
        assert stats["subscriptions"] > 0
        gws = stats.get("gateways") or []
        assert [g["name"] for g in gws] == [c for c in topo.clusters if c != node.cluster]
        routes = stats.get("routes") or []
        assert {r["name"] for r in routes} == peers(topo, node.name)
    # every outbound gateway is somebody's inbound connection
    for cluster in topo.clusters:
        inbound = sum(
            g["inbound_connections"]
            for d in docs
            if d["server"]["cluster"] == cluster
            for g in d["statsz"]["gateways"]
        )
        remote = sum(len(m) for c, m in topo.clusters.items() if c != cluster)
        assert inbound == remote


def test_server_list_table(topo: Supercluster, mcli: NatsCli) -> None:
    out = mcli.run("--server", entry(topo), "server", "list").stdout
    overview = table(out, "Server Overview")
    rows = {r["Name"]: r for r in overview["rows"]}
    assert sorted(rows) == sorted(n.name for n in topo.nodes)
    for node in topo.nodes:
        row = rows[node.name]
        assert row["Cluster"] == node.cluster
        assert row["GWs"] == "1"
        assert row["JS"] == "no"
        assert row["Conns"] == ("1" if node is topo.nodes[0] else "0")
        assert (row["Routes"] == "0") == (not peers(topo, node.name))
    # no "X" marks: versions, gateway counts and route counts agree
    assert "X" not in {r["Version"] for r in overview["rows"]}
    assert overview["footer"][0]["Cluster"] == str(len(topo.clusters))
    assert overview["footer"][0]["Host"] == str(len(topo.nodes))
    clusters = table(out, "Cluster Overview")
    got = {
        r["Cluster"]: (
            r["Node Count"],
            r["Outgoing Gateways"],
            r["Incoming Gateways"],
            r["Connections"],
        )
        for r in clusters["rows"]
    }
    size = len(topo.nodes) // 2
    assert got == {
        "east": (str(size), str(size), str(size), "1"),
        "west": (str(size), str(size), str(size), "0"),
    }


def test_server_list_expect(topo: Supercluster, mcli: NatsCli) -> None:
    """With an expected count the CLI stops as soon as that many answered."""
    docs = mcli.json("--server", entry(topo), "server", "list", str(len(topo.nodes)), "--json")
    assert len(docs) == len(topo.nodes)


def test_server_ping(topo: Supercluster, mcli: NatsCli) -> None:
    out = mcli.run("--server", entry(topo), "server", "ping", "--id").stdout
    ids = {
        d["server"]["name"]: d["server"]["id"]
        for d in mcli.json("--server", entry(topo), "server", "list", "--json")
    }
    pairs = re.findall(r"^(N[A-Z0-9]{55}) (\S+)\s+rtt=", out, re.M)
    assert sorted(pairs) == sorted((i, n) for n, i in ids.items()), out
    assert "Missing" not in out
    assert f"{len(topo.nodes)} replies" in out


def test_server_ping_from_every_server(topo: Supercluster, mcli: NatsCli) -> None:
    for node in topo.nodes:
        out = mcli.run("--server", node.sys_url, "server", "ping").stdout
        got = re.findall(r"^(\S+)\s+rtt=", out, re.M)
        assert sorted(got) == sorted(n.name for n in topo.nodes), out
        assert "Missing" not in out


def test_server_info_by_name(topo: Supercluster, mcli: NatsCli) -> None:
    ids = {
        d["server"]["name"]: d["server"]["id"]
        for d in mcli.json("--server", entry(topo), "server", "list", "--json")
    }
    for node in topo.nodes:
        out = mcli.run("--server", entry(topo), "server", "info", node.name).stdout
        assert f"Server information for {node.name} ({ids[node.name]})" in out
        super_cluster = out.split("Super Cluster:", 1)[1]
        assert re.search(rf"Name: {node.cluster}\b", super_cluster)
        assert re.search(rf"Host: 127\.0\.0\.1:{node.gateway_port}\b", super_cluster)
        clusters = re.search(r"Clusters: (.*?)(?:\n\s*\n|\Z)", super_cluster, re.S)
        assert clusters is not None
        assert sorted(clusters.group(1).split()) == sorted(topo.clusters)
        assert re.search(rf"Host: 127\.0\.0\.1:{node.port}\b", out)
        conns = re.search(r"^\s*Connections: (\d+)$", out, re.M)
        assert conns is not None
        assert conns.group(1) == ("1" if node is topo.nodes[0] else "0")
        if peers(topo, node.name):
            assert "Cluster:" in out.split("Super Cluster:", 1)[0]


def test_server_info_by_id(topo: Supercluster, mcli: NatsCli) -> None:
    docs = mcli.json("--server", entry(topo), "server", "list", "--json")
    last = docs[-1]["server"]
    out = mcli.run("--server", entry(topo), "server", "info", last["id"]).stdout
    assert f"Server information for {last['name']} ({last['id']})" in out


def test_report_connections(topo: Supercluster, mcli: NatsCli) -> None:
    far = topo.nodes[-1]
    probe = RawClient(far, "probe-client")
    try:
        conns = mcli.json("--server", entry(topo), "server", "report", "connections", "--json")
    finally:
        probe.close()
    got = sorted(
        (c["name"], c.get("account", "$G"), c["server"]["name"], c["server"]["cluster"])
        for c in conns
    )
    first = topo.nodes[0]
    assert got == sorted(
        [
            ("NATS CLI Version v0.4.0", "$SYS", first.name, first.cluster),
            ("probe-client", "$G", far.name, far.cluster),
        ]
    )
    cli_conn = next(c for c in conns if c.get("account") == "$SYS")
    assert cli_conn["authorized_user"] == "sys"
    assert cli_conn["kind"] == "Client"
    assert len(cli_conn["subscriptions_list"]) == cli_conn["subscriptions"] >= 1


def test_report_connections_account_filter(topo: Supercluster, mcli: NatsCli) -> None:
    probe = RawClient(topo.nodes[-1], "probe-client")
    try:
        out = mcli.run(
            "--server",
            entry(topo),
            "server",
            "report",
            "connections",
            "--account",
            "$G",
            "--json",
        ).stdout
    finally:
        probe.close()
    assert [c["name"] for c in json.loads(out)] == ["probe-client"]


def test_report_connections_table(topo: Supercluster, mcli: NatsCli) -> None:
    out = mcli.run("--server", entry(topo), "server", "report", "connections").stdout
    top = table(out, "Top 1 Connections out of 1")
    assert [(r["Server"], r["Cluster"], r["Account"]) for r in top["rows"]] == [
        (topo.nodes[0].name, "east", "$SYS")
    ]
    per_server = table(out, "Connections per server")
    assert [(r["Server"], r["Connections"]) for r in per_server["rows"]] == [
        (topo.nodes[0].name, "1")
    ]


def test_report_gateways(topo: Supercluster, mcli: NatsCli) -> None:
    out = mcli.run("--server", entry(topo), "server", "report", "gateways").stdout
    report = table(out, "Super Cluster Report")
    servers: dict[str, dict[str, list[str]]] = {}
    current = kind = ""
    for row in report["rows"]:
        if row["Server"]:
            current = row["Server"]
            node = topo.node(current)
            assert row["Name"] == node.cluster
            assert row["Port"] == str(node.gateway_port)
            servers[current] = {"Inbound": [], "Outbound": []}
        else:
            # a second link of the same kind is printed with an empty Kind cell
            kind = row["Kind"] or kind
            servers[current][kind].append(row["Connection"].split()[0])
    assert sorted(servers) == sorted(n.name for n in topo.nodes)
    for name, links in servers.items():
        other = [c for c in topo.clusters if c != topo.node(name).cluster]
        assert links["Outbound"] == other
        assert set(links["Inbound"]) <= set(other)
    inbound = sum(len(v["Inbound"]) for v in servers.values())
    assert inbound == len(topo.nodes)
    footer = report["footer"][0]
    assert footer["Server"] == str(len(topo.nodes))
    assert footer["Connection"] == str(2 * len(topo.nodes))

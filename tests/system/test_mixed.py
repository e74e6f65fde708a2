"""Mixed superclusters: nats-server and scserver answer each other's `$SYS` requests.

``server list`` and ``server ping`` from either side must list every server: requests cross the
gateway in both directions, answers come back through `_GR_.` replies, and each server's
``active_servers`` counts the other's STATSZ heartbeats (so ``server ping`` without an expected
count waits for all of them and reports no "Missing" servers).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.system.sysutil import GO, SC, NatsCli, Supercluster, plan, seed_spec, wait_sys_ready

pytestmark = [pytest.mark.natscli, pytest.mark.nats_server]


@pytest.fixture(scope="module")
def mcli(natscli_path: Path, tmp_path_factory: pytest.TempPathFactory) -> NatsCli:
    return NatsCli(natscli_path, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module", params=["go-east", "go-west"])
def mixed_seed(
    request: pytest.FixtureRequest, mcli: NatsCli, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supercluster]:
    spec = seed_spec(GO, SC) if request.param == "go-east" else seed_spec(SC, GO)
    sc = plan(spec, tmp_path_factory.mktemp(request.param))
    sc.start()
    try:
        wait_sys_ready(mcli, sc)
        yield sc
    finally:
        sc.stop()


def test_server_list_from_either_side(mixed_seed: Supercluster, mcli: NatsCli) -> None:
    want = {n.name: (n.cluster, n.impl) for n in mixed_seed.nodes}
    for node in mixed_seed.nodes:
        docs = mcli.json("--server", node.sys_url, "server", "list", "--json")
        got = {d["server"]["name"]: d for d in docs}
        assert sorted(got) == sorted(want), f"from {node.name}"
        for name, (cluster, impl) in want.items():
            server, stats = got[name]["server"], got[name]["statsz"]
            assert server["cluster"] == cluster
            assert (server["ver"] == "2.10.29") == (impl == SC), server["ver"]
            assert stats["active_servers"] == 2, f"{name} does not count its peer"
            assert [g["name"] for g in stats["gateways"]] == [
                c for c in mixed_seed.clusters if c != cluster
            ]
            assert stats["gateways"][0]["inbound_connections"] == 1


def test_server_ping_from_either_side(mixed_seed: Supercluster, mcli: NatsCli) -> None:
    """No expected count: the CLI trusts the first answer's active_servers."""
    for node in mixed_seed.nodes:
        out = mcli.run("--server", node.sys_url, "server", "ping", "--timeout", "3s").stdout
        assert sorted(re.findall(r"^(\S+)\s+rtt=", out, re.M)) == ["n1", "n2"], out
        assert "Missing" not in out
        assert "2 replies" in out


def test_server_info_of_the_other_implementation(mixed_seed: Supercluster, mcli: NatsCli) -> None:
    for node in mixed_seed.nodes:
        other = next(n for n in mixed_seed.nodes if n is not node)
        out = mcli.run("--server", node.sys_url, "server", "info", other.name).stdout
        assert f"Server information for {other.name} (" in out
        assert re.search(rf"Name: {other.cluster}\b", out.split("Super Cluster:", 1)[1])


def test_report_connections_from_either_side(mixed_seed: Supercluster, mcli: NatsCli) -> None:
    for node in mixed_seed.nodes:
        conns = mcli.json("--server", node.sys_url, "server", "report", "connections", "--json")
        assert [(c["server"]["name"], c.get("account")) for c in conns] == [(node.name, "$SYS")]


def test_mixed_clusters_ping_every_server(
    mcli: NatsCli, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spec = {"east": [("e1", GO), ("e2", SC)], "west": [("w1", SC), ("w2", GO)]}
    sc = plan(spec, tmp_path_factory.mktemp("mixed-2x2"))
    sc.start()
    try:
        for _ in range(3):
            for node in sc.nodes:
                out = mcli.run(
                    "--server", node.sys_url, "server", "ping", "4", "--timeout", "1s"
                ).stdout
                got = sorted(re.findall(r"^(\S+)\s+rtt=", out, re.M))
                assert got == ["e1", "e2", "w1", "w2"], f"from {node.name}:\n{out}"
    finally:
        sc.stop()

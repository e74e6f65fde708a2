"""The health observer: pure status folding, condition merging, and real servers on loopback.

The real-server tests start a two-cluster supercluster (east with 2 servers, west with 1) as
local processes from the same rendered configs the operator deploys (`scoperator.local`), with
scserver and with the Go nats-server, and point the observer at them through a
`StaticResolver` (server name -> 127.0.0.1:monitor port) instead of pod IPs.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

import pytest
from tests.operator.helpers import load_example
from tests.tools import free_port, nats_server_binary, require_binary, scserver_command

from scoperator.local import LocalSupercluster
from scoperator.models import ClusterStatus, SuperClusterStatus
from scoperator.observe import (
    POD_TERMINATING,
    KubePodResolver,
    ServerProbe,
    StaticResolver,
    cluster_status,
    config_current,
    observe_supercluster,
    parse_time,
    probe_server,
    supercluster_status,
)
from scoperator.secrets import secrets_from_objects
from scoperator.status import merge_conditions, merged_status, significant


def _conds(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def _healthy(name: str, outbound: list[str], inbound: dict[str, int] | None = None) -> ServerProbe:
    return ServerProbe(
        name,
        "10.0.0.1:8222",
        healthy=True,
        version="2.15.1",
        routes=1,
        outbound={o: 1 for o in outbound},
        inbound=inbound or {},
    )


# ------------------------------------------------------------------------------ pure folding


def test_parse_time_and_config_current() -> None:
    utc = datetime.UTC
    # Go's RFC3339Nano (nine fraction digits), offsets, our own microsecond stamps
    assert parse_time("2026-11-22T00:45:01.123456789Z") == datetime.datetime(
        2026, 11, 22, 0, 45, 1, 123456, tzinfo=utc
    )
    assert parse_time("2026-11-22T01:45:01+01:00") == datetime.datetime(
        2026, 11, 22, 0, 45, 1, tzinfo=utc
    )
    assert parse_time("") is None and parse_time(None) is None and parse_time("soon") is None
    applied = "2026-11-22T00:45:01.500000Z"
    assert config_current("2026-11-22T00:45:01.499999999Z", applied) is False
    assert config_current("2026-11-22T00:45:01.5Z", applied) is True
    assert config_current("2026-11-22T01:45:02.1+01:00", applied) is True
    assert config_current(None, applied) is None
    assert config_current("2026-11-22T00:45:01Z", None) is None


def test_cluster_status_config_reloaded() -> None:
    applied = "2026-11-22T00:45:00.000000Z"
    probes = {
        "east-0": _healthy("east-0", []),
        "east-1": _healthy("east-1", []),
        "east-2": ServerProbe("east-2", None, error="no running pod with an IP"),
    }
    probes["east-0"].config_load_time = "2026-11-22T00:45:03.2Z"  # reloaded after the apply
    probes["east-1"].config_load_time = "2026-11-22T00:40:00Z"  # still the previous config
    st = cluster_status("east", 3, probes, [], generation=1, config_applied=applied)
    servers = {s["name"]: s for s in st["servers"]}
    assert servers["east-0"]["configCurrent"] is True
    assert servers["east-1"]["configCurrent"] is False
    assert "configCurrent" not in servers["east-2"]  # not running: nothing to tell
    reloaded = next(c for c in st["conditions"] if c["type"] == "ConfigReloaded")
    assert (reloaded["status"], reloaded["reason"]) == ("False", "ReloadPending")
    assert "east-1" in reloaded["message"] and "east-0" not in reloaded["message"]
    assert reloaded["observedGeneration"] == 1
    ClusterStatus.model_validate({**st, "configAppliedTime": applied})

    # east-1 reloads; east-2 still has no pod: not confirmed for every server
    probes["east-1"].config_load_time = "2026-11-22T00:45:04Z"
    st = cluster_status("east", 3, probes, [], config_applied=applied)
    assert _conds(st)["ConfigReloaded"] == ("Unknown", "ReloadUnknown")
    st = cluster_status("east", 2, probes, [], config_applied=applied)
    assert _conds(st)["ConfigReloaded"] == ("True", "AllServersReloaded")
    assert all(s["configCurrent"] for s in st["servers"])
    # nothing applied yet (no configAppliedTime): unknown, no per-server verdict
    st = cluster_status("east", 2, probes, [])
    assert _conds(st)["ConfigReloaded"] == ("Unknown", "ReloadUnknown")
    assert all("configCurrent" not in s for s in st["servers"])


def test_supercluster_config_reloaded_names_stale_servers() -> None:
    applied = "2026-11-22T00:45:00Z"
    fresh, old = _healthy("east-0", []), _healthy("west-0", [])
    fresh.config_load_time, old.config_load_time = "2026-11-22T00:46:00Z", "2026-11-22T00:44:00Z"
    east = cluster_status("east", 1, {"east-0": fresh}, [], config_applied=applied)
    west = cluster_status("west", 1, {"west-0": old}, [], config_applied=applied)
    st = supercluster_status({"east": east, "west": west}, {"east": 1, "west": 1})
    assert _conds(st)["ConfigReloaded"] == ("False", "ReloadPending")
    msg = next(c for c in st["conditions"] if c["type"] == "ConfigReloaded")["message"]
    assert "west-0" in msg and "east-0" not in msg
    st = supercluster_status({"east": east, "west": east}, {"east": 1, "west": 1})
    assert _conds(st)["ConfigReloaded"] == ("True", "AllServersReloaded")
    assert _conds(supercluster_status({}, {}))["ConfigReloaded"] == ("Unknown", "ReloadUnknown")


def test_cluster_status_all_healthy_and_linked() -> None:
    probes = {
        "east-0": _healthy("east-0", ["west"], {"west": 1}),
        "east-1": _healthy("east-1", ["west"]),
    }
    st = cluster_status("east", 2, probes, ["west"], generation=3)
    assert st["readyServers"] == 2 and st["connectedGateways"] == 1
    assert _conds(st) == {
        "Ready": ("True", "AllServersHealthy"),
        "GatewaysConnected": ("True", "AllGatewaysConnected"),
        "ConfigReloaded": ("Unknown", "ReloadUnknown"),  # no configAppliedTime given
        "Degraded": ("False", "Healthy"),
    }
    assert st["gateways"] == [{"cluster": "west", "outbound": 2, "inbound": 1, "connected": True}]
    assert {s["version"] for s in st["servers"]} == {"2.15.1"}
    assert all(c["observedGeneration"] == 3 for c in st["conditions"])
    ClusterStatus.model_validate(st)  # every key is declared in the CRD schema


def test_cluster_status_without_pods_says_so() -> None:
    st = cluster_status("east", 3, {}, ["west"])
    assert st["readyServers"] == 0
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodsNotReady")
    assert "0/3 servers running" in ready["message"] and "east-0" in ready["message"]
    assert _conds(st)["Degraded"] == ("False", "PodsNotReady")
    assert _conds(st)["GatewaysConnected"] == ("False", "NoHealthyServers")


def test_cluster_status_one_server_down_is_degraded() -> None:
    probes = {
        "east-0": _healthy("east-0", ["west"]),
        "east-1": ServerProbe("east-1", "10.0.0.2:8222", error="unreachable (connection refused)"),
    }
    st = cluster_status("east", 2, probes, ["west"])
    assert _conds(st)["Ready"] == ("False", "ServersUnhealthy")
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "east-1: unreachable" in degraded["message"]
    # the link is judged on healthy servers only
    assert _conds(st)["GatewaysConnected"] == ("True", "AllGatewaysConnected")


async def test_terminating_pod_is_no_address_and_says_why() -> None:
    """A pod being deleted (lame duck) no longer counts, whatever its probe would say, and
    status says why; a Pending pod without an IP is just not running."""

    def pod(name: str, ip: str | None, phase: str, deleting: bool = False) -> dict:
        meta = {"name": name, **({"deletionTimestamp": "2026-11-26T00:00:00Z"} if deleting else {})}
        return {"metadata": meta, "status": {"podIP": ip, "phase": phase}}

    pods = [pod("west-0", "10.0.0.1", "Running", deleting=True), pod("west-1", "10.0.0.2", "Running"),
            pod("west-2", None, "Pending")]  # fmt: skip

    async def list_pods(namespace: str, selector: str) -> list[dict]:
        assert selector == "supercluster.dev/supercluster=demo"
        return pods

    resolver = KubePodResolver(list_pods, lambda ns, sc: 8222)
    got = await resolver("demo", "demo", {"west": 3})
    assert dict(got) == {"west-0": None, "west-1": "10.0.0.2:8222", "west-2": None}
    assert got.why == {"west-0": POD_TERMINATING}
    probes = {
        "west-0": ServerProbe("west-0", None, error=POD_TERMINATING),
        "west-1": _healthy("west-1", []),
        "west-2": ServerProbe("west-2", None, error="no running pod with an IP"),
    }
    degraded = next(
        c for c in cluster_status("west", 3, probes, [])["conditions"] if c["type"] == "Degraded"
    )
    assert degraded["status"] == "True"
    assert "west-0: pod terminating" in degraded["message"], degraded
    assert "west-2: no running pod" in degraded["message"], degraded


def test_cluster_status_missing_link_and_single_cluster() -> None:
    probes = {"east-0": _healthy("east-0", [])}
    st = cluster_status("east", 1, probes, ["west"])
    assert _conds(st)["GatewaysConnected"] == ("False", "GatewaysDisconnected")
    assert _conds(st)["Degraded"] == ("True", "GatewaysDisconnected")
    alone = cluster_status("east", 1, probes, [])
    assert _conds(alone)["GatewaysConnected"] == ("True", "NoRemoteClusters")


def test_supercluster_rollup_and_matrix() -> None:
    east = cluster_status(
        "east", 1, {"east-0": _healthy("east-0", ["west", "ext"])}, ["west", "ext"]
    )
    west = cluster_status(
        "west", 1, {"west-0": _healthy("west-0", [], {"ext": 2})}, ["east", "ext"]
    )
    st = supercluster_status({"east": east, "west": west}, {"east": 1, "west": 1}, ["ext"], 7)
    assert st["connectivity"] == {
        "east": {"west": True, "ext": True},
        "west": {"east": False, "ext": False},
        "ext": {"east": False, "west": True},
    }
    assert (st["clustersTotal"], st["clustersReady"], st["readyServers"]) == (2, 2, 2)
    assert _conds(st)["Ready"] == ("True", "AllClustersReady")
    assert _conds(st)["GatewaysConnected"] == ("False", "MeshIncomplete")
    assert _conds(st)["Degraded"] == ("True", "MembersDegraded")
    west_member = next(m for m in st["members"] if m["name"] == "west")
    assert west_member["missing"] == ["east", "ext"]
    SuperClusterStatus.model_validate(st)


def test_folding_is_deterministic() -> None:
    probes = {"east-0": _healthy("east-0", ["west"]), "east-1": _healthy("east-1", ["west"])}
    assert cluster_status("east", 2, probes, ["west"]) == cluster_status(
        "east", 2, dict(reversed(probes.items())), ["west"]
    )


# ------------------------------------------------------------------------- status merging


def test_merge_conditions_keeps_transition_time_until_status_flips() -> None:
    first = merge_conditions([], [{"type": "Ready", "status": "False", "reason": "A"}], "t1")
    assert first[0]["lastTransitionTime"] == "t1"
    same = merge_conditions(first, [{"type": "Ready", "status": "False", "reason": "B"}], "t2")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "B"
    flipped = merge_conditions(same, [{"type": "Ready", "status": "True", "reason": "C"}], "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"
    # another writer's conditions are kept, in a fixed order
    both = merge_conditions(flipped, [{"type": "ConfigApplied", "status": "True", "reason": "X"}])
    assert [c["type"] for c in both] == ["Ready", "ConfigApplied"]


def test_merged_status_ignores_volatile_keys() -> None:
    cur = merged_status({}, {"readyServers": 1, "lastHealthCheckTime": "t1"})
    again = merged_status(cur, {"readyServers": 1, "lastHealthCheckTime": "t2"})
    assert significant(again) == significant(cur)
    changed = merged_status(cur, {"readyServers": 2, "lastHealthCheckTime": "t2"})
    assert significant(changed) != significant(cur)


# --------------------------------------------------------------------------- real servers


async def test_probe_of_closed_port_is_an_observation() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        # the outer bound only guards against a hang; how long a probe of a dead server takes
        # is a benchmark's figure (python -m bench.bench_recovery)
        probe = await asyncio.wait_for(
            probe_server(http, "x-0", f"127.0.0.1:{free_port()}", timeout=1.0), 30
        )
    assert not probe.healthy and probe.error and probe.error.startswith("unreachable")


def _server_commands() -> list[pytest.param]:
    return [pytest.param("scserver", id="scserver"), pytest.param("nats-server", id="nats-server")]


@pytest.fixture(params=_server_commands())
def local_supercluster(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """east (2 servers) + west (1 server) from examples/supercluster.yaml, on loopback."""
    if request.param == "scserver":
        cmd = require_binary(scserver_command(), "scserver not installed")
    else:
        cmd = [str(require_binary(nats_server_binary(), "nats-server not installed"))]
    resources = load_example("supercluster.yaml")
    sc = resources.superclusters[0]
    clusters = resources.members(sc)
    east = next(c for c in clusters if c.name == "east")
    east.spec.replicas = 2
    local = LocalSupercluster(
        sc, clusters, secrets_from_objects(resources.secrets), list(cmd), tmp_path
    )
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        yield local
    finally:
        local.stop()


def _bodies(local: LocalSupercluster) -> tuple[dict, list[dict]]:
    sc = local.supercluster
    sc_body = {"metadata": {"name": sc.name, "namespace": sc.namespace, "generation": 1}}
    clusters = [
        {
            "metadata": {"name": c.name, "namespace": c.namespace, "generation": 2},
            "spec": {"superCluster": sc.name, "replicas": c.spec.replicas},
        }
        for c in local.clusters
    ]
    return sc_body, clusters


async def _wait_round(local, predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    resolver = StaticResolver(
        {s.name: f"127.0.0.1:{s.address.ports.monitor}" for s in local.servers}
    )
    sc_body, clusters = _bodies(local)
    deadline = time.monotonic() + timeout
    while True:
        rnd = await observe_supercluster(sc_body, clusters, resolver, timeout=1.0)
        if predicate(rnd) or time.monotonic() > deadline:
            return rnd
        await asyncio.sleep(0.2)


async def test_observer_against_real_servers(local_supercluster: LocalSupercluster) -> None:
    local = local_supercluster

    def all_ok(rnd) -> bool:  # type: ignore[no-untyped-def]
        return _conds(rnd.supercluster)["GatewaysConnected"][0] == "True" and all(
            _conds(c)["Ready"][0] == "True" for c in rnd.clusters.values()
        )

    # nats-server opens its route pool (3 + a pinned $SYS route) one connection at a time after
    # the first route is up; wait until the route counts settle (the same in three observed
    # rounds in a row) so "no churn" below compares rounds of a topology done forming.
    seen: list[list[int]] = []

    def settled(rnd) -> bool:  # type: ignore[no-untyped-def]
        routes = [s["routes"] for c in rnd.clusters.values() for s in c.get("servers", [])]
        seen.append(routes if all_ok(rnd) else [])
        return len(seen) >= 3 and seen[-1] != [] and seen[-3] == seen[-2] == seen[-1]

    await _wait_round(local, all_ok)
    rnd = await _wait_round(local, settled)
    assert all_ok(rnd), rnd.supercluster["conditions"]
    east, west = rnd.clusters["east"], rnd.clusters["west"]
    assert east["readyServers"] == 2 and west["readyServers"] == 1
    assert {s["name"] for s in east["servers"]} == {"east-0", "east-1"}
    assert all(s["healthy"] and s["version"] for s in east["servers"] + west["servers"])
    assert all(s["routes"] >= 1 for s in east["servers"])  # routed (nats-server pools routes)
    assert east["gateways"][0]["cluster"] == "west" and east["gateways"][0]["outbound"] == 2
    # west's single server receives the links east's servers dial (one each)
    assert west["gateways"][0]["inbound"] == 2 and west["gateways"][0]["outbound"] == 1
    assert rnd.supercluster["connectivity"] == {"east": {"west": True}, "west": {"east": True}}
    assert _conds(rnd.supercluster) == {
        "Ready": ("True", "AllClustersReady"),
        "GatewaysConnected": ("True", "MeshComplete"),
        "ConfigReloaded": ("Unknown", "ReloadUnknown"),  # the bodies carry no configAppliedTime
        "Degraded": ("False", "Healthy"),
    }
    ClusterStatus.model_validate(east)
    SuperClusterStatus.model_validate(rnd.supercluster)

    # nothing changed -> the folded status is identical (no churn)
    again = await _wait_round(local, lambda r: True)
    assert again.clusters == rnd.clusters and again.supercluster == rnd.supercluster

    # the servers' real /varz config_load_time against the reconciler's configAppliedTime
    resolver = StaticResolver(
        {s.name: f"127.0.0.1:{s.address.ports.monitor}" for s in local.servers}
    )
    sc_body, clusters = _bodies(local)
    loaded = [s["configLoadTime"] for c in rnd.clusters.values() for s in c["servers"]]
    assert all(parse_time(t) for t in loaded), loaded
    before = "2000-01-01T00:00:00.000000Z"
    after = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    for body in clusters:
        body["status"] = {
            "configAppliedTime": after if body["metadata"]["name"] == "west" else before
        }
    mixed = await observe_supercluster(sc_body, clusters, resolver, timeout=1.0)
    east, west = mixed.clusters["east"], mixed.clusters["west"]
    assert [s["configCurrent"] for s in east["servers"]] == [True, True]
    assert [s["configCurrent"] for s in west["servers"]] == [False]
    assert _conds(east)["ConfigReloaded"] == ("True", "AllServersReloaded")
    assert _conds(west)["ConfigReloaded"] == ("False", "ReloadPending")
    assert (
        "west-0" in next(c for c in west["conditions"] if c["type"] == "ConfigReloaded")["message"]
    )
    assert _conds(mixed.supercluster)["ConfigReloaded"] == ("False", "ReloadPending")
    ClusterStatus.model_validate(west)
    SuperClusterStatus.model_validate(mixed.supercluster)

    # stop west-0: the very next round reports it unreachable, Degraded set
    west0 = next(s for s in local.servers if s.name == "west-0")
    assert west0.process is not None
    west0.process.kill()
    west0.process.wait()
    down = await _wait_round(local, lambda r: True)
    west = down.clusters["west"]
    assert west["readyServers"] == 0
    assert _conds(west)["Ready"] == ("False", "ServersUnhealthy")
    assert _conds(west)["Degraded"] == ("True", "ServersUnhealthy")
    assert west["servers"][0]["lastError"].startswith("unreachable")
    assert _conds(down.supercluster)["Ready"] == ("False", "ClustersNotReady")
    assert _conds(down.supercluster)["Degraded"] == ("True", "MembersDegraded")
    # east notices the lost gateway once its outbound connection closes
    gone = await _wait_round(
        local, lambda r: _conds(r.clusters["east"])["GatewaysConnected"][0] == "False"
    )
    assert _conds(gone.clusters["east"])["GatewaysConnected"] == ("False", "GatewaysDisconnected")
    assert gone.supercluster["connectivity"]["east"] == {"west": False}

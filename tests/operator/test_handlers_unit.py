"""Handler-side logic without an API server: flags, status outcomes, the status writer's change
detection and Events (with a recording fake client), the observer round, metrics exposition."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from scoperator import metrics as m
from scoperator.apply import Outcome
from scoperator.handlers import Context, _outcome_status, parse_args
from scoperator.observe import StaticResolver
from scoperator.status import StatusWriter, condition


class FakeClient:
    """Records status applies and events; `objects` answers GETs."""

    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.applies: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.gets = 0

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.objects.get((kind, namespace or "", name))

    async def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        self.applies.append({"manager": manager, **obj})
        meta = obj["metadata"]
        # as the API server would: the object's own uid (see _cluster_body)
        return {**obj, "metadata": {**meta, "uid": f"uid-{meta['name']}", "resourceVersion": "1"}}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return obj

    async def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []


def _cluster_body(name: str = "east", status: dict | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "supercluster.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 2},
        "spec": {"superCluster": "sc", "replicas": 2},
        "status": status or {},
    }


# ------------------------------------------------------------------------------------ flags


def test_parse_args_defaults_and_scopes() -> None:
    cfg = parse_args([])
    assert cfg.all_namespaces and cfg.namespaces == []
    cfg = parse_args(["--", "-n", "a", "-n", "b", "--metrics-port", "0", "--probe-interval", "2"])
    assert (cfg.all_namespaces, cfg.namespaces) == (False, ["a", "b"])
    assert (cfg.metrics_port, cfg.probe_interval) == (0, 2.0)
    with pytest.raises(SystemExit):
        parse_args(["-n", "a", "-A"])


def test_outcome_status_sets_generation_only_on_success() -> None:
    ok = _outcome_status(Outcome(True, "Applied", "fine", 4, status={"replicas": 3}))
    assert ok["observedGeneration"] == 4 and ok["replicas"] == 3
    assert ok["conditions"][0]["type"] == "ConfigApplied"
    bad = _outcome_status(Outcome(False, "SecretMissing", "create it", 5))
    assert "observedGeneration" not in bad
    assert bad["conditions"][0]["status"] == "False"


# ---------------------------------------------------------------------------- status writer


async def test_writer_skips_unchanged_and_posts_events_on_transitions() -> None:
    client = FakeClient()
    writer = StatusWriter(client, manager="scoperator-reconciler")  # type: ignore[arg-type]
    body = _cluster_body()
    bad = {"conditions": [condition("ConfigApplied", False, "SecretMissing", "create it")]}
    await writer.update("Cluster", "ns", "east", bad, body)
    assert len(client.applies) == 1 and client.applies[0]["manager"] == "scoperator-reconciler"
    assert [e["reason"] for e in client.created] == ["SecretMissing"]
    assert client.created[0]["type"] == "Warning"
    assert client.created[0]["involvedObject"]["name"] == "east"
    # the same again: no API call at all (compared with what this writer last applied)
    await writer.update("Cluster", "ns", "east", bad, body)
    assert len(client.applies) == 1 and writer.skipped == 1 and client.gets == 0
    # recovery: applied, with a Normal event
    good = {"conditions": [condition("ConfigApplied", True, "Applied", "ok")], "replicas": 2}
    await writer.update("Cluster", "ns", "east", good, body)
    assert len(client.applies) == 2
    assert client.created[-1]["type"] == "Normal"
    # the writer sends only its own part: no other writer's keys or conditions
    assert set(client.applies[-1]["status"]) == {"conditions", "replicas"}


async def test_writer_compares_with_watched_body_after_restart() -> None:
    stamp = "2026-01-01T00:00:00Z"
    existing = {
        "readyServers": 0,
        "conditions": [
            {**condition("Ready", False, "PodsNotReady", "none"), "lastTransitionTime": stamp},
            {**condition("ConfigApplied", True, "Applied", "x"), "lastTransitionTime": stamp},
        ],
    }
    client = FakeClient()
    writer = StatusWriter(client, manager="scoperator-observer")  # type: ignore[arg-type]
    updates = {
        "readyServers": 0,
        "conditions": [condition("Ready", False, "PodsNotReady", "none")],
        "lastHealthCheckTime": "2026-01-02T00:00:00Z",
    }
    await writer.update("Cluster", "ns", "east", updates, _cluster_body(status=existing))
    assert client.applies == [] and client.created == []  # nothing changed, nothing written


async def test_observed_conditions_are_quiet_when_new() -> None:
    client = FakeClient({("Cluster", "ns", "east"): _cluster_body()})
    writer = StatusWriter(client)  # type: ignore[arg-type]
    upd = {"conditions": [condition("Ready", False, "PodsNotReady", "no pods")]}
    await writer.update("Cluster", "ns", "east", upd)  # no body passed: one GET
    assert client.gets == 1 and len(client.applies) == 1 and client.created == []
    upd = {"conditions": [condition("Ready", True, "AllServersHealthy", "2/2")]}
    await writer.update("Cluster", "ns", "east", upd)
    upd = {"conditions": [condition("Ready", False, "ServersUnhealthy", "east-1 down")]}
    await writer.update("Cluster", "ns", "east", upd)
    assert [(e["type"], e["reason"]) for e in client.created] == [
        ("Normal", "AllServersHealthy"),  # a recovery from a bad state is worth a Normal event
        ("Warning", "ServersUnhealthy"),
    ]


# --------------------------------------------------------------------------- observer round


async def test_observe_once_writes_once_then_nothing() -> None:
    from scoperator.handlers import OperatorConfig

    client = FakeClient()
    ctx = Context(
        OperatorConfig(probe_timeout=0.2),
        client,  # type: ignore[arg-type]
        StatusWriter(client, manager="r"),  # type: ignore[arg-type]
        StatusWriter(client, manager="o"),  # type: ignore[arg-type]
        m.Metrics(),
        StaticResolver({}),  # no pods anywhere
    )
    ctx.superclusters[("ns", "sc")] = {
        "apiVersion": "supercluster.dev/v1alpha1",
        "kind": "SuperCluster",
        "metadata": {"name": "sc", "namespace": "ns", "uid": "uid-sc", "generation": 1},
        "spec": {},
    }
    ctx.clusters[("ns", "east")] = _cluster_body()
    ctx.clusters[("ns", "west")] = _cluster_body("west")
    await ctx.observe_once()
    kinds = sorted((a["kind"], a["metadata"]["name"]) for a in client.applies)
    assert kinds == [("Cluster", "east"), ("Cluster", "west"), ("SuperCluster", "sc")]
    east = next(a for a in client.applies if a["metadata"]["name"] == "east")["status"]
    assert east["readyServers"] == 0
    assert {c["type"]: c["reason"] for c in east["conditions"]}["Ready"] == "PodsNotReady"
    await ctx.observe_once()
    assert len(client.applies) == 3  # second round: nothing changed
    assert ctx.metrics.observe_rounds.get() == 2
    assert ctx.metrics.probe_failures.get() == 8  # 4 servers x 2 rounds, no pod


def _sc_body(name: str, namespace: str, secrets: list[str], **meta: Any) -> dict[str, Any]:
    users = [
        {"user": f"u{i}", "passwordSecretRef": {"name": s, "key": "password"}}
        for i, s in enumerate(secrets)
    ]
    return {
        "apiVersion": "supercluster.dev/v1alpha1",
        "kind": "SuperCluster",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", **meta},
        "spec": {"accounts": [{"name": "APP", "users": users}]} if users else {},
    }


def test_referencing_finds_the_superclusters_of_a_secret() -> None:
    from scoperator.handlers import OperatorConfig

    client = FakeClient()
    ctx = Context(
        OperatorConfig(),
        client,  # type: ignore[arg-type]
        StatusWriter(client, manager="r"),  # type: ignore[arg-type]
        StatusWriter(client, manager="o"),  # type: ignore[arg-type]
        m.Metrics(),
        StaticResolver({}),
    )
    ctx.superclusters[("ns", "b")] = _sc_body("b", "ns", ["pw", "other"])
    ctx.superclusters[("ns", "a")] = _sc_body("a", "ns", ["pw"])
    ctx.superclusters[("ns", "none")] = _sc_body("none", "ns", [])
    ctx.superclusters[("elsewhere", "c")] = _sc_body("c", "elsewhere", ["pw"])
    ctx.superclusters[("ns", "gone")] = _sc_body(
        "gone", "ns", ["pw"], deletionTimestamp="2026-01-01T00:00:00Z"
    )
    bad = _sc_body("bad", "ns", ["pw"])
    bad["spec"]["accounts"][0]["users"][0]["passwordSecretRef"] = {"name": "pw"}  # no key
    ctx.superclusters[("ns", "bad")] = bad
    assert ctx.referencing("ns", "pw") == ["a", "b"]
    assert ctx.referencing("ns", "other") == ["b"]
    assert ctx.referencing("elsewhere", "pw") == ["c"]
    assert ctx.referencing("ns", "b-auth") == []


# ---------------------------------------------------------------------------------- metrics


async def test_metrics_exposition_and_endpoint() -> None:
    metrics = m.Metrics()
    metrics.reconciles.inc(result="ok")
    metrics.reconciles.inc(2, result="error")
    metrics.probe_seconds.observe(0.003)
    metrics.probe_seconds.observe(0.3)
    text = metrics.expose()
    assert 'scoperator_reconciles_total{result="error"} 2' in text
    assert "# TYPE scoperator_probe_duration_seconds histogram" in text
    assert 'scoperator_probe_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'scoperator_probe_duration_seconds_bucket{le="0.5"} 2' in text
    assert 'scoperator_probe_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "scoperator_probe_duration_seconds_count 2" in text
    runner = await m.start_server(metrics, "127.0.0.1", 0)
    try:
        port = m.bound_port(runner)
        import asyncio

        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        )
        assert b"scoperator_reconciles_total" in body
    finally:
        await runner.cleanup()

"""Chart-style settings against a real API server (issue 13): what the API server makes of the
rendered objects (server-side apply, owner references, a LoadBalancer client Service, sidecars,
the toolbox Deployment, a PodMonitor), a bad config merge (condition + Event, previous config
kept), and a PodMonitor asked for where its CRD is absent, then installed (a minimal CRD written
here, not fetched).

`reconcile_supercluster` is called directly, statuses are written with the reconciler's own
StatusWriter, as handlers.py does.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import yaml
from tests.kube.apiserver import KubeControlPlane
from tests.operator.helpers import EXAMPLES
from tests.operator.test_operator_kube import GROUP, VERSION, crds  # noqa: F401 (fixture)

from scoperator.apply import (
    MONITORING_READY,
    PODMONITOR_APPLIED,
    PODMONITOR_CRD_MISSING,
    ApplyCache,
    Report,
    reconcile_supercluster,
)
from scoperator.config_merge import INVALID_CONFIG_MERGE
from scoperator.handlers import _outcome_status
from scoperator.kube import FIELD_MANAGER, Credentials, KubeClient
from scoperator.status import StatusWriter

PODMONITOR_CRD = "podmonitors.monitoring.coreos.com"
TIMEOUT = 30.0


@pytest.fixture
async def client(kube: KubeControlPlane, crds: None) -> Any:  # noqa: F811
    async with KubeClient(Credentials.load(str(kube.kubeconfig))) as c:
        yield c


def minimal_podmonitor_crd() -> dict[str, Any]:
    """Just enough of the Prometheus Operator's PodMonitor CRD for the API server to store one."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": PODMONITOR_CRD},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": "PodMonitor", "plural": "podmonitors", "singular": "podmonitor",
                      "listKind": "PodMonitorList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }  # fmt: skip


async def until(what: str, fn: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> Any:
    """Poll the coroutine function `fn` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def crd_present(client: KubeClient, present: bool) -> None:
    """Install or remove the minimal PodMonitor CRD and wait until the API serves it (or not)."""
    current = await client.get("CustomResourceDefinition", None, PODMONITOR_CRD)
    if present and current is None:
        await client.create(minimal_podmonitor_crd())
    elif not present and current is not None:
        await client.delete("CustomResourceDefinition", None, PODMONITOR_CRD)

    async def served() -> bool:
        try:
            await client.list("PodMonitor", "default")
        except Exception:  # noqa: BLE001 - 404 until the CRD is established (or after removal)
            return not present
        return present

    await until(f"PodMonitor CRD {'served' if present else 'gone'}", served)


def _doc(kind: str, name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


async def _publish(writer: StatusWriter, report: Report) -> None:
    """What handlers.Context.publish does with a report (the reconciler's status part)."""
    for name, outcome in report.clusters.items():
        await writer.update("Cluster", report.namespace, name, _outcome_status(outcome))


def _conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return [(r["uid"], r.get("controller")) for r in refs] == [(owner["metadata"]["uid"], True)]


def _applied_by_us(obj: dict[str, Any]) -> bool:
    return any(
        m.get("manager") == FIELD_MANAGER and m.get("operation") == "Apply"
        for m in obj["metadata"].get("managedFields") or []
    )


async def test_bad_config_merge_keeps_the_previous_config(
    client: KubeClient, namespace: str
) -> None:
    ns = namespace
    await client.create(_doc("SuperCluster", "sc", ns, tls={"mode": "Disabled"}))
    await client.create(_doc("Cluster", "a", ns, superCluster="sc"))
    cache = ApplyCache()
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.clusters["a"].ok, report
    before = await client.get("ConfigMap", ns, "a-config")
    assert before is not None

    await client.merge_patch(
        "SuperCluster", ns, "sc", {"spec": {"config": {"merge": {"max_connections": "lots"}}}}
    )
    report = await reconcile_supercluster(client, ns, "sc", cache)
    outcome = report.clusters["a"]
    assert not outcome.ok and outcome.reason == INVALID_CONFIG_MERGE
    assert "'max_connections'" in outcome.message and not outcome.retry
    after = await client.get("ConfigMap", ns, "a-config")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert await client.get("StatefulSet", ns, "a") is not None  # nothing pruned either

    writer = StatusWriter(client, manager="scoperator-reconciler")
    await _publish(writer, report)
    body = await client.get("Cluster", ns, "a")
    assert body is not None
    cond = _conditions(body)["ConfigApplied"]
    assert (cond["status"], cond["reason"]) == ("False", INVALID_CONFIG_MERGE)
    assert "max_connections" in cond["message"]
    events = await client.list("Event", ns)
    assert any(
        e["reason"] == INVALID_CONFIG_MERGE and e["involvedObject"]["name"] == "a" for e in events
    )

    # a valid merge goes through, into the rendered config
    await client.merge_patch(
        "SuperCluster", ns, "sc", {"spec": {"config": {"merge": {"max_connections": 50}}}}
    )
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.clusters["a"].ok, report.clusters["a"]
    config = await client.get("ConfigMap", ns, "a-config")
    assert config is not None and "max_connections: 50\n" in config["data"]["scserver.conf"]


async def test_pod_monitor_without_then_with_its_crd(client: KubeClient, namespace: str) -> None:
    ns = namespace
    await crd_present(client, False)
    await client.create(
        _doc(
            "SuperCluster", "sc", ns,
            tls={"mode": "Disabled"},
            metrics={"podMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        )
    )  # fmt: skip
    await client.create(_doc("Cluster", "a", ns, superCluster="sc"))
    cache = ApplyCache()
    writer = StatusWriter(client, manager="scoperator-reconciler")

    report = await reconcile_supercluster(client, ns, "sc", cache)
    outcome = report.clusters["a"]
    assert outcome.ok, outcome  # everything else applied
    (cond,) = [c for c in outcome.conditions if c["type"] == MONITORING_READY]
    assert (cond["status"], cond["reason"]) == ("False", PODMONITOR_CRD_MISSING)
    assert "podmonitors.monitoring.coreos.com" in cond["message"]
    assert await client.get("StatefulSet", ns, "a") is not None
    await _publish(writer, report)
    body = await client.get("Cluster", ns, "a")
    assert body is not None
    assert _conditions(body)[MONITORING_READY]["reason"] == PODMONITOR_CRD_MISSING
    assert any(e["reason"] == PODMONITOR_CRD_MISSING for e in await client.list("Event", ns))

    await crd_present(client, True)
    report = await reconcile_supercluster(client, ns, "sc", cache)
    (cond,) = [c for c in report.clusters["a"].conditions if c["type"] == MONITORING_READY]
    assert (cond["status"], cond["reason"]) == ("True", PODMONITOR_APPLIED)
    monitor = await client.get("PodMonitor", ns, "a")
    cluster = await client.get("Cluster", ns, "a")
    assert monitor is not None and cluster is not None
    assert _owned_by(monitor, cluster) and _applied_by_us(monitor)
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "monitor", "path": "/metrics"}]
    await _publish(writer, report)
    body = await client.get("Cluster", ns, "a")
    assert body is not None and _conditions(body)[MONITORING_READY]["status"] == "True"

    # switched off on the Cluster: pruned, and the condition goes away
    await client.merge_patch(
        "Cluster", ns, "a", {"spec": {"metrics": {"podMonitor": {"enabled": False}}}}
    )
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.pruned == 1 and await client.get("PodMonitor", ns, "a") is None
    await _publish(writer, report)
    body = await client.get("Cluster", ns, "a")
    assert body is not None and MONITORING_READY not in _conditions(body)


async def test_chart_values_example_applied_with_owner_references(
    client: KubeClient, namespace: str
) -> None:
    """examples/chart-values.yaml as the API server takes it: every object server-side
    applied by us and controlled by its Cluster (the toolbox by the SuperCluster)."""
    ns = namespace
    await crd_present(client, True)
    for doc in yaml.safe_load_all((EXAMPLES / "chart-values.yaml").read_text()):
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = ns
        await client.create(doc)
    cache = ApplyCache()
    report = await reconcile_supercluster(client, ns, "edge", cache)
    assert report.outcome is not None and report.outcome.ok, report
    assert all(o.ok for o in report.clusters.values()), report.clusters

    sc = await client.get("SuperCluster", ns, "edge")
    assert sc is not None
    for cname in ("east", "west"):
        owner = await client.get("Cluster", ns, cname)
        assert owner is not None
        names = {
            "ConfigMap": f"{cname}-config",
            "Secret": f"{cname}-auth",
            "Service": cname,
            "StatefulSet": cname,
            "PodDisruptionBudget": cname,
            "PodMonitor": cname,
        }
        for kind, name in names.items():
            obj = await client.get(kind, ns, name)
            assert obj is not None, (kind, name)
            assert _owned_by(obj, owner) and _applied_by_us(obj), (kind, name)

    lb = await client.get("Service", ns, "east")
    assert lb is not None
    assert lb["spec"]["type"] == "LoadBalancer"
    assert lb["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert lb["spec"]["externalTrafficPolicy"] == "Local"
    west = await client.get("StatefulSet", ns, "west")
    east = await client.get("StatefulSet", ns, "east")
    assert west is not None and east is not None
    pod = west["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["scserver", "log-shipper"]
    assert pod["serviceAccountName"] == "nats-west"
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    assert east["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    config = await client.get("ConfigMap", ns, "west-config")
    assert config is not None and "max_connections: 2000" in config["data"]["scserver.conf"]

    toolbox = await client.get("Deployment", ns, "edge-toolbox")
    contexts = await client.get("Secret", ns, "edge-toolbox")
    assert toolbox is not None and contexts is not None
    assert _owned_by(toolbox, sc) and _owned_by(contexts, sc) and _applied_by_us(toolbox)

    # again: nothing to send
    report = await reconcile_supercluster(client, ns, "edge", cache)
    assert report.applied == 0

    # toolbox off: its two objects are pruned, the SuperCluster's other Secrets stay
    await client.merge_patch("SuperCluster", ns, "edge", {"spec": {"toolbox": {"enabled": False}}})
    report = await reconcile_supercluster(client, ns, "edge", cache)
    assert report.outcome is not None and report.outcome.ok
    assert await client.get("Deployment", ns, "edge-toolbox") is None
    assert await client.get("Secret", ns, "edge-toolbox") is None
    assert await client.get("Secret", ns, "edge-credentials") is not None


async def test_free_form_fields_survive_the_crd_schema(client: KubeClient, namespace: str) -> None:
    """Patches, JSON-patch values of any type and config fragments are stored as written
    (the generated CRD preserves them; a structural schema would otherwise prune them)."""
    ns = namespace
    ops = [
        {"op": "add", "path": "/spec/hostNetwork", "value": True},
        {"op": "add", "path": "/metadata/annotations/x", "value": "y"},
        {"op": "add", "path": "/spec/dnsConfig", "value": {"options": [{"name": "ndots"}]}},
        {"op": "remove", "path": "/spec/tolerations"},
        {"op": "move", "from": "/a", "path": "/b"},
    ]
    spec = {
        "superCluster": "sc",
        "podTemplateJsonPatch": ops,
        "podTemplatePatch": {"spec": {"containers": [{"name": "x", "$patch": "delete"}]}},
        "config": {"merge": {"websocket": {"port": 8080, "no_tls": True}, "max_payload": "2MB"}},
        "services": {
            "client": {"patch": {"spec": {"ports": [{"port": 4222, "$patch": "delete"}]}}}
        },
    }
    await client.create(_doc("Cluster", "a", ns, **copy.deepcopy(spec)))
    stored = await client.get("Cluster", ns, "a")
    assert stored is not None
    assert {k: stored["spec"][k] for k in spec} == spec

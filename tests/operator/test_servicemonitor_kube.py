"""metrics.serviceMonitor against a real API server: without the ServiceMonitor CRD the rest
is applied and MonitoringReady says ServiceMonitorCRDMissing; with it (a minimal CRD written
here) the ServiceMonitor is applied, owned by its Cluster, and pruned when switched off. With a
PodMonitor wanted too, the missing ServiceMonitor CRD is what the condition reports."""

from __future__ import annotations

import copy
from typing import Any

from tests.operator.test_knobs_kube import (
    _applied_by_us,
    _conditions,
    _doc,
    _owned_by,
    _publish,
    client,  # noqa: F401 (fixture)
    crd_present,
    minimal_podmonitor_crd,
    until,
)
from tests.operator.test_operator_kube import crds  # noqa: F401 (fixture)

from scoperator.apply import (
    MONITORING_READY,
    SERVICEMONITOR_APPLIED,
    SERVICEMONITOR_CRD_MISSING,
    ApplyCache,
    reconcile_supercluster,
)
from scoperator.kube import KubeClient
from scoperator.status import StatusWriter

SERVICEMONITOR_CRD = "servicemonitors.monitoring.coreos.com"


def minimal_servicemonitor_crd() -> dict[str, Any]:
    """Just enough of the Prometheus Operator's ServiceMonitor CRD to store one."""
    crd = copy.deepcopy(minimal_podmonitor_crd())
    crd["metadata"]["name"] = SERVICEMONITOR_CRD
    crd["spec"]["names"] = {
        "kind": "ServiceMonitor",
        "plural": "servicemonitors",
        "singular": "servicemonitor",
        "listKind": "ServiceMonitorList",
    }
    return crd


async def servicemonitor_crd_present(kc: KubeClient, present: bool) -> None:
    """Install or remove the minimal ServiceMonitor CRD and wait until it is served (or not)."""
    current = await kc.get("CustomResourceDefinition", None, SERVICEMONITOR_CRD)
    if present and current is None:
        await kc.create(minimal_servicemonitor_crd())
    elif not present and current is not None:
        await kc.delete("CustomResourceDefinition", None, SERVICEMONITOR_CRD)

    async def served() -> bool:
        try:
            await kc.list("ServiceMonitor", "default")
        except Exception:  # noqa: BLE001 - 404 until established (or after removal)
            return not present
        return present

    await until(f"ServiceMonitor CRD {'served' if present else 'gone'}", served)


def _monitoring(report: Any, cluster: str) -> dict[str, Any]:
    (cond,) = [c for c in report.clusters[cluster].conditions if c["type"] == MONITORING_READY]
    return cond


async def test_service_monitor_without_then_with_its_crd(
    client: KubeClient,  # noqa: F811
    namespace: str,
) -> None:
    ns = namespace
    await servicemonitor_crd_present(client, False)
    await crd_present(client, True)  # the PodMonitor CRD: only the ServiceMonitor's is missing
    metrics = {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}
    await client.create(_doc("SuperCluster", "sc", ns, tls={"mode": "Disabled"}, metrics=metrics))
    await client.create(_doc("Cluster", "a", ns, superCluster="sc"))
    cache = ApplyCache()
    writer = StatusWriter(client, manager="scoperator-reconciler")

    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.clusters["a"].ok, report.clusters["a"]  # everything else applied
    cond = _monitoring(report, "a")
    assert (cond["status"], cond["reason"]) == ("False", SERVICEMONITOR_CRD_MISSING)
    assert SERVICEMONITOR_CRD in cond["message"] and "metrics.serviceMonitor" in cond["message"]
    assert await client.get("PodMonitor", ns, "a") is not None
    await _publish(writer, report)
    body = await client.get("Cluster", ns, "a")
    assert body is not None
    assert _conditions(body)[MONITORING_READY]["reason"] == SERVICEMONITOR_CRD_MISSING

    await servicemonitor_crd_present(client, True)
    report = await reconcile_supercluster(client, ns, "sc", cache)
    cond = _monitoring(report, "a")
    assert (cond["status"], cond["reason"]) == ("True", SERVICEMONITOR_APPLIED), cond
    monitor = await client.get("ServiceMonitor", ns, "a")
    cluster = await client.get("Cluster", ns, "a")
    assert monitor is not None and cluster is not None
    assert _owned_by(monitor, cluster) and _applied_by_us(monitor)
    assert monitor["spec"]["endpoints"] == [{"port": "monitor", "path": "/metrics"}]

    # switched off on the Cluster: pruned (the PodMonitor stays)
    await client.merge_patch(
        "Cluster", ns, "a", {"spec": {"metrics": {"serviceMonitor": {"enabled": False}}}}
    )
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.pruned == 1 and await client.get("ServiceMonitor", ns, "a") is None
    assert await client.get("PodMonitor", ns, "a") is not None
    await servicemonitor_crd_present(client, False)

"""Status follows server pods as they change, not only at the next probe round (tests/kube).

A deleted or evicted server pod is replaced by its StatefulSet within seconds, often between two
of the observer's rounds (15 s by default): status must still go Degraded with a Warning Event
while the pod terminates, and Ready again once its replacement serves. The operator watches its
server pods and observes their supercluster when one starts terminating, goes, comes or changes
readiness.

Here the rounds are an hour apart, so only that watch can move the status. No kubelet runs:
the test writes the pods (scheduled to a node that does not exist, so a graceful delete leaves
them Terminating, as a kubelet in lame duck would) and their status, with pod IPs on loopback
where real scserver processes answer the probes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from tests.kube.apiserver import KubeControlPlane
from tests.operator.test_operator_kube import (  # noqa: F401 (crds is a fixture)
    GROUP,
    VERSION,
    Api,
    Operator,
    applied,
    cluster_doc,
    cond,
    cr_when,
    crds,
    wait_for,
)
from tests.tools import free_port, http_get_json, require_binary, scserver_command

from scoperator.naming import LABEL_CLUSTER, LABEL_SUPERCLUSTER

# Pod IPs of west-0 and west-1: one loopback address each, the same monitoring port on both
# (the observer probes podIP:spec.ports.monitor, as in a real cluster).
POD_IPS = {"west-0": "127.0.0.3", "west-1": "127.0.0.4"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[int]:
    """A real scserver per pod IP; yields the shared monitoring port."""
    cmd = require_binary(scserver_command(), "scserver not installed")
    monitor = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, ip in POD_IPS.items():
            conf = tmp_path / f"{name}.conf"
            conf.write_text(
                f"server_name: {name}\nlisten: {ip}:{free_port()}\nhttp: {ip}:{monitor}\n"
            )
            log = (tmp_path / f"{name}.log").open("wb")
            procs.append(subprocess.Popen([*cmd, "-c", str(conf)], stdout=log, stderr=log))
            log.close()
        for ip in POD_IPS.values():
            wait_for(f"scserver on {ip}", lambda ip=ip: healthy(ip, monitor))
        yield monitor
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def healthy(ip: str, port: int) -> bool:
    try:
        return http_get_json(ip, port, "/healthz").get("status") == "ok"
    except OSError:
        return False


def pod_doc(name: str, supercluster: str, cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {LABEL_SUPERCLUSTER: supercluster, LABEL_CLUSTER: cluster},
        },
        "spec": {
            # Scheduled (to a node without a kubelet): a graceful delete waits for the kubelet,
            # so the pod stays Terminating, with its deletionTimestamp, until deleted for good.
            "nodeName": "no-kubelet",
            "terminationGracePeriodSeconds": 60,
            "containers": [{"name": "scserver", "image": "scserver:test"}],
        },
    }


def run_pod(api: Api, name: str) -> str:
    """Create the server pod `name` and mark it Running and Ready at its loopback IP."""
    core = api.core
    pod = core.create_namespaced_pod(api.ns, pod_doc(name, "solo", "west"))
    status = {
        "phase": "Running",
        "podIP": POD_IPS[name],
        "podIPs": [{"ip": POD_IPS[name]}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    core.patch_namespaced_pod_status(name, api.ns, {"status": status})
    return str(pod.metadata.uid)


def seen(api: Api) -> dict[str, int]:
    """Event name -> count, of the Events about Cluster west."""
    return {
        e["metadata"]["name"]: e.get("count") or 1
        for e in api.events("west")
        if e["involvedObject"]["kind"] == "Cluster"
    }


def new_events(api: Api, before: dict[str, int], kind: str) -> list[str]:
    """Reasons of Events of type `kind` about Cluster west posted (or repeated) since `before`."""
    return [
        e["reason"]
        for e in api.events("west")
        if e["involvedObject"]["kind"] == "Cluster"
        and e["type"] == kind
        and (e.get("count") or 1) > before.get(e["metadata"]["name"], 0)
    ]


@pytest.fixture
def api(kube_client: k8s.ApiClient, namespace: str) -> Api:
    return Api(kube_client, namespace)


@pytest.mark.usefixtures("crds")
def test_deleted_pod_shows_degraded_then_ready_between_rounds(
    kube: KubeControlPlane, namespace: str, api: Api, tmp_path: Path, servers: int
) -> None:
    op = Operator(kube, namespace, tmp_path, probe_interval=3600).start()
    try:
        api.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "superclusters",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SuperCluster",
             "metadata": {"name": "solo"}, "spec": {"ports": {"monitor": servers}}},
        )  # fmt: skip
        api.create(cluster_doc("west", supercluster="solo", replicas=2))
        wait_for("west applied", lambda: applied(api, "Cluster", "west"))
        # The round at start has run (and found no pod); the next is an hour away.
        rounds = wait_for(
            "the first observation round",
            lambda: (op.metrics() or {}).get("scoperator_observe_rounds_total", 0.0),
        )

        # The pods come up: Ready, with no probe round due for an hour.
        for name in POD_IPS:
            run_pod(api, name)
        west = wait_for(
            "west Ready from its pods' events",
            cr_when(api, "Cluster", "west", lambda c: cond(c, "Ready").get("status") == "True"),
        )
        assert west["status"]["readyServers"] == 2
        assert cond(west, "Degraded")["status"] == "False"

        before = seen(api)
        # west-0 deleted: Terminating (deletionTimestamp, still Running) is already a server
        # gone, whatever its probe says, and a person sees why.
        api.core.delete_namespaced_pod("west-0", namespace)
        west = wait_for(
            "west Degraded while west-0 terminates",
            cr_when(api, "Cluster", "west", lambda c: cond(c, "Degraded").get("status") == "True"),
        )
        assert cond(west, "Ready")["status"] == "False"
        assert "west-0: pod terminating" in cond(west, "Degraded")["message"], west["status"]
        assert west["status"]["readyServers"] == 1
        wait_for("a Warning Event on Cluster west", lambda: new_events(api, before, "Warning"))
        before = seen(api)

        # The StatefulSet would replace it: the old pod goes, a new west-0 comes up.
        api.core.delete_namespaced_pod(
            "west-0", namespace, body=k8s.V1DeleteOptions(grace_period_seconds=0)
        )
        wait_for("west-0 gone", lambda: not _exists(api, "west-0"))
        run_pod(api, "west-0")
        west = wait_for(
            "west Ready again with the new west-0",
            cr_when(api, "Cluster", "west", lambda c: cond(c, "Ready").get("status") == "True"),
        )
        assert cond(west, "Degraded")["status"] == "False"
        assert west["status"]["readyServers"] == 2
        wait_for("a Normal Event on Cluster west", lambda: new_events(api, before, "Normal"))
        metrics = op.metrics() or {}
        # No round ran: the pods' events moved the status.
        assert metrics.get("scoperator_observe_rounds_total", 0.0) == rounds, op.log_tail()
        assert metrics.get("scoperator_prompt_observations_total", 0.0) >= 2, metrics
        assert "west-0 terminating: observing SuperCluster solo now" in op.log_tail(200)
    finally:
        op.stop()


def _exists(api: Api, name: str) -> bool:
    try:
        api.core.read_namespaced_pod(name, api.ns)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True

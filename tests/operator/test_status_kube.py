"""`kubectl supercluster status` against a real kube-apiserver (tests/kube).

No operator runs here: the test writes what the operator would (a SuperCluster and two
Clusters whose status subresources are set, pods with their status, Events about them) and
runs the kubectl plugin shim through the real `kubectl`, which must find it on PATH and hand
it the arguments; the shim runs `scoperator status`, which reads everything back.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from tests.kube.apiserver import KubeControlPlane
from tests.operator.helpers import ROOT
from tests.operator.test_operator_kube import GROUP, VERSION, Api, crds  # noqa: F401 (fixture)
from tests.tools import require_binary

from scoperator.observe import supercluster_status
from scoperator.status import condition

API = f"{GROUP}/{VERSION}"
PLURAL = {"SuperCluster": "superclusters", "Cluster": "clusters"}


def now_iso(seconds_ago: int = 0) -> str:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_status(name: str, replicas: int, ready: int, peers: list[str]) -> dict[str, Any]:
    ok = ready == replicas
    conds = [
        condition("Ready", ok, "AllServersReady" if ok else "PodsNotReady", f"{ready}/{replicas}"),
        condition("GatewaysConnected", True, "AllGatewaysConnected", "", 1),
        condition("ConfigApplied", True, "Applied", "", 1),
        condition("Degraded", False, "Healthy", "", 1),
    ]
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "readyServers": ready,
        "connectedGateways": len(peers),
        "conditions": [{**c, "lastTransitionTime": now_iso(120)} for c in conds],
        "servers": [
            {
                "name": f"{name}-{i}",
                "healthy": i < ready,
                "version": "2.10.29",
                "routes": replicas - 1,
                "outboundGateways": len(peers),
                "inboundGateways": 1,
                "configCurrent": True,
            }
            for i in range(replicas)
        ],
        "gateways": [
            {"cluster": p, "outbound": replicas, "inbound": 1, "connected": True} for p in peers
        ],
        "endpoints": {"client": f"nats://{name}.ns.svc:4222"},
    }


class World:
    """The objects of one supercluster `demo` (east: 2 servers, west: 1) in a namespace."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.ns = api.ns

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        self.api.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.ns, PLURAL[kind], name, {"status": status}
        )

    def pod(self, name: str, cluster: str, ready: bool) -> None:
        labels = {
            "supercluster.dev/supercluster": "demo",
            "supercluster.dev/cluster": cluster,
            "app.kubernetes.io/name": "scserver",
        }
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "scserver", "image": "example/scserver:0.9.1"}]},
        }
        self.api.core.create_namespaced_pod(self.ns, body)
        status = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "scserver",
                    "ready": ready,
                    "restartCount": 0 if ready else 2,
                    "image": "example/scserver:0.9.1",
                    "imageID": "",
                    "state": {"running": {}},
                }
            ],
        }
        self.api.core.patch_namespaced_pod_status(name, self.ns, {"status": status})

    def event(self, kind: str, name: str, etype: str, reason: str, message: str) -> None:
        stamp = now_iso(30)
        self.api.core.create_namespaced_event(
            self.ns,
            {
                "metadata": {"generateName": f"{name}."},
                "involvedObject": {
                    "apiVersion": API,
                    "kind": kind,
                    "name": name,
                    "namespace": self.ns,
                },
                "type": etype,
                "reason": reason,
                "message": message,
                "source": {"component": "scoperator"},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )

    def build(self, west_ready: int = 0) -> None:
        self.api.create(
            {"apiVersion": API, "kind": "SuperCluster", "metadata": {"name": "demo"}, "spec": {}}
        )
        for name, replicas in (("east", 2), ("west", 1)):
            self.api.create(
                {
                    "apiVersion": API,
                    "kind": "Cluster",
                    "metadata": {"name": name},
                    "spec": {"superCluster": "demo", "replicas": replicas},
                }
            )
        self.api.create(
            {
                "apiVersion": API,
                "kind": "Cluster",
                "metadata": {"name": "other"},
                "spec": {"superCluster": "not-demo", "replicas": 1},
            }
        )
        self.update(west_ready)
        self.pod("east-0", "east", True)
        self.pod("east-1", "east", True)
        self.pod("west-0", "west", bool(west_ready))
        self.event("Cluster", "west", "Warning", "PodsNotReady", "0/1 servers ready")
        self.event("SuperCluster", "demo", "Warning", "ClustersNotReady", "1/2 clusters ready")
        self.event("Cluster", "other", "Warning", "NotOurs", "about another supercluster")

    def update(self, west_ready: int) -> None:
        members = {
            "east": cluster_status("east", 2, 2, ["west"]),
            "west": cluster_status("west", 1, west_ready, ["east"]),
        }
        for name, st in members.items():
            self.set_status("Cluster", name, st)
        sc = supercluster_status(members, {"east": 2, "west": 1}, generation=1)
        sc["observedGeneration"] = 1
        sc["conditions"] = [{**c, "lastTransitionTime": now_iso(60)} for c in sc["conditions"]]
        self.set_status("SuperCluster", "demo", sc)


@pytest.fixture
def world(kube: KubeControlPlane, crds: None, kube_client: k8s.ApiClient, namespace: str) -> World:  # noqa: F811
    w = World(Api(kube_client, namespace))
    w.build()
    return w


def plugin_env(kube: KubeControlPlane) -> dict[str, str]:
    env = kube.env()
    env["PATH"] = os.pathsep.join([str(ROOT / "hack"), env["PATH"]])
    return env


def kubectl() -> str:
    return str(require_binary(_which("kubectl"), "kubectl not installed"))


def _which(name: str) -> Path | None:
    import shutil

    found = shutil.which(name)
    return Path(found) if found else None


def test_kubectl_plugin_prints_the_table(kube: KubeControlPlane, world: World) -> None:
    env = plugin_env(kube)
    listed = subprocess.run(
        [kubectl(), "plugin", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "kubectl-supercluster" in listed.stdout, listed.stdout + listed.stderr
    run = subprocess.run(
        [kubectl(), "supercluster", "status", "demo", "-n", world.ns],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    print(out)
    lines = out.splitlines()
    assert lines[0].startswith(f"SuperCluster demo in namespace {world.ns}: Ready=False")
    assert "1/2 clusters ready, 2/3 servers ready" in lines[0]
    rows = {
        line.split()[1]: line.split() for line in lines if line.startswith(("  east ", "  west "))
    }
    assert rows["east-0"][:7] == ["east", "east-0", "Running", "yes", "0", "yes", "2.10.29"]
    assert rows["west-0"][:6] == ["west", "west-0", "Running", "no", "2", "no"]
    # The Cluster of another supercluster in the namespace is not a member, nor its Events.
    assert not any(line.startswith("  other ") for line in lines)
    assert "Cluster/other" not in out
    assert "  east       -       ok 2/1" in out  # the gateway matrix row
    assert "SuperCluster/demo  Ready" in out and "ClustersNotReady" in out
    assert "PodsNotReady" in out and "1/2 clusters ready" in out
    assert "NotOurs" not in out


def test_missing_supercluster_is_one_clear_line(kube: KubeControlPlane, world: World) -> None:
    run = subprocess.run(
        [kubectl(), "supercluster", "status", "nope", "-n", world.ns],
        env=plugin_env(kube),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"scoperator status: SuperCluster 'nope' not found in namespace '{world.ns}'"
    )


def test_watch_refreshes_until_interrupted(kube: KubeControlPlane, world: World) -> None:
    proc = subprocess.Popen(
        [kubectl(), "supercluster", "status", "demo", "-n", world.ns, "--watch", "--interval",
         "0.5"],
        env=plugin_env(kube),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    seen: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "2/2 clusters ready" in line:
                ready.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        # Once the first table is out, the west pod becomes ready: a later refresh shows it.
        assert _wait(lambda: any("1/2 clusters ready" in s for s in seen), 60), "".join(seen)
        world.update(west_ready=1)
        assert ready.wait(60), "".join(seen[-40:])
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "".join(seen).count("\x1b[H\x1b[2J") >= 2


def _wait(predicate: Any, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False

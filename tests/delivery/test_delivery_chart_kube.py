"""The chart against a real kube-apiserver (tests/kube): server-side dry runs of every value set
(the API server validates each object against its schema), a real `helm install`, what the
chart's ServiceAccount may and may not do (`kubectl auth can-i --as`), and the operator itself
running with that ServiceAccount's token, reconciling the seed example: the RBAC is enough."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_helpers import (
    CHART,
    CLUSTER_NEEDS,
    FORBIDDEN,
    OPERATOR_NEEDS,
    REPO,
    run,
    set_args,
)
from tests.kube.apiserver import KubeControlPlane

pytestmark = pytest.mark.kube

STUB_CRDS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podmonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, plural: podmonitors, singular: podmonitor, listKind: PodMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterkopfpeerings.kopf.dev}
spec:
  group: kopf.dev
  scope: Cluster
  names: {kind: ClusterKopfPeering, plural: clusterkopfpeerings, singular: clusterkopfpeering}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kopfpeerings.kopf.dev}
spec:
  group: kopf.dev
  scope: Namespaced
  names: {kind: KopfPeering, plural: kopfpeerings, singular: kopfpeering}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


class Tools:
    def __init__(self, kube: KubeControlPlane) -> None:
        self.kube = kube
        self.helm = str(kube.binary("helm"))
        self.kubectl = str(kube.binary("kubectl"))
        self.env = kube.env()

    def kc(self, *args: str, input: str | None = None, check: bool = True) -> Any:  # noqa: A002
        return run([self.kubectl, *args], input=input, env=self.env, check=check)

    def helm_run(self, *args: str, check: bool = True) -> Any:
        return run([self.helm, *args], env=self.env, check=check, timeout=180)

    def template(self, release: str, namespace: str, values: dict[str, Any] | None = None,
                 files: tuple[Path, ...] = ()) -> str:  # fmt: skip
        args = ["template", release, str(CHART), "--namespace", namespace]
        for f in files:
            args += ["-f", str(f)]
        return self.helm_run(*args, *set_args(values)).stdout

    def wait_established(self, *crds: str) -> None:
        self.kc("wait", "--for=condition=Established", "--timeout=60s",
                *[f"crd/{c}" for c in crds])  # fmt: skip

    def can_i(self, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={sa}"]
        args += ["--namespace", namespace] if namespace else []
        res = self.kc(*args, check=False)
        answer = res.stdout.strip()
        assert answer in ("yes", "no"), res.stderr
        return answer == "yes"


@pytest.fixture(scope="module")
def tools(kube: KubeControlPlane) -> Tools:
    t = Tools(kube)
    # our CRDs (as the chart ships them), plus stand-ins for the Pod/ServiceMonitor and kopf peering
    t.kc("apply", "--server-side", "--force-conflicts", "--field-manager=delivery-tests",
         "-f", str(CHART / "crds"))  # fmt: skip
    t.kc("apply", "--server-side", "--force-conflicts", "--field-manager=delivery-tests",
         "-f", "-", input=STUB_CRDS)  # fmt: skip
    t.wait_established(
        "superclusters.supercluster.dev", "clusters.supercluster.dev",
        "podmonitors.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    )  # fmt: skip
    return t


def _release(namespace: str) -> str:
    return ("r" + namespace)[:40].rstrip("-")


VALUE_SETS = {
    "default": ({}, ()),
    "cluster-wide": ({}, (CHART / "ci" / "cluster-wide-values.yaml",)),
    "namespaced": ({"operator.watchNamespaces": ["$NS"]}, ()),
    "metrics": ({}, (CHART / "ci" / "metrics-values.yaml",)),
    "example": ({"operator.watchNamespaces": ["$NS"]}, (CHART / "ci" / "example-values.yaml",)),
    "peering": ({}, (CHART / "ci" / "peering-values.yaml",)),
    "peering-namespaced": (
        {"operator.watchNamespaces": ["$NS"], "operator.peering.enabled": True},
        (),
    ),
}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_server_side_dry_run(tools: Tools, namespace: str, name: str) -> None:
    values, files = VALUE_SETS[name]
    values = json.loads(json.dumps(values).replace("$NS", namespace))
    manifests = tools.template(_release(namespace), namespace, values, files)
    kinds = [d["kind"] for d in yaml.safe_load_all(manifests) if d]
    assert "Deployment" in kinds
    res = tools.kc("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifests,
                   check=False)  # fmt: skip
    assert res.returncode == 0, f"{res.stderr}\n---\n{manifests}"
    applied = [ln for ln in res.stdout.splitlines() if "(server dry run)" in ln]
    assert len(applied) == len(kinds), res.stdout


def test_dry_run_catches_invalid_objects(tools: Tools, namespace: str) -> None:
    """The server-side dry run is a real schema check: a broken Deployment is rejected."""
    manifests = tools.template(_release(namespace), namespace)
    broken = manifests.replace("containerPort: 8081", "containerPort: not-a-port")
    assert broken != manifests
    res = tools.kc("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=broken,
                   check=False)  # fmt: skip
    assert res.returncode != 0


@pytest.fixture
def installed(tools: Tools, namespace: str) -> Iterator[tuple[str, str]]:
    """A real `helm install` watching only `namespace`, with the example: (release, SA user)."""
    release = _release(namespace)
    tools.helm_run("install", release, str(CHART), "--namespace", namespace,
                   "--set-json", f'operator.watchNamespaces=["{namespace}"]',
                   "--set", "example.enabled=true")  # fmt: skip
    try:
        sa = f"{release}-supercluster-operator"
        yield release, sa
    finally:
        tools.helm_run("uninstall", release, "--namespace", namespace, check=False)


def test_helm_install_and_rbac(tools: Tools, namespace: str, installed: tuple[str, str]) -> None:
    release, sa_name = installed
    status = json.loads(tools.helm_run("status", release, "-n", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert "kubectl" in status["info"]["notes"]
    objs = json.loads(
        tools.kc(
            "get",
            "deployment,serviceaccount,role,rolebinding,secret,superclusters,clusters",
            "-n",
            namespace,
            "-o",
            "json",
        ).stdout  # fmt: skip
    )["items"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for expected in [("Deployment", sa_name), ("ServiceAccount", sa_name), ("Role", sa_name),
                     ("RoleBinding", sa_name), ("Secret", "demo-sys"), ("SuperCluster", "demo"),
                     ("Cluster", "east"), ("Cluster", "west")]:  # fmt: skip
        assert expected in names, expected

    sa = f"system:serviceaccount:{namespace}:{sa_name}"
    for (group, resource), verbs in OPERATOR_NEEDS.items():
        ref = f"{resource.split('/')[0]}.{group}" if group else resource.split("/")[0]
        sub = f"/{resource.split('/')[1]}" if "/" in resource else ""
        for verb in verbs:
            target = f"{ref}{sub}" if not sub else f"{ref}"
            args = (verb, target, namespace)
            if sub:  # kubectl auth can-i takes the subresource as a flag
                res = tools.kc("auth", "can-i", verb, ref, f"--subresource={sub[1:]}",
                               f"--as={sa}", "-n", namespace, check=False)  # fmt: skip
                assert res.stdout.strip() == "yes", (verb, resource)
            else:
                assert tools.can_i(sa, *args), (verb, resource, namespace)
            # namespaced mode: nothing in a namespace it does not watch
            if not sub:
                assert not tools.can_i(sa, verb, target, "default"), (verb, resource, "default")
    for (group, resource), verbs in CLUSTER_NEEDS.items():
        for verb in verbs:
            assert tools.can_i(sa, verb, f"{resource}.{group}", None), (verb, resource)
    for group, resource, verb in FORBIDDEN:
        ref = f"{resource}.{group}" if group else resource
        if "/" in resource:
            base, subres = resource.split("/")
            res = tools.kc("auth", "can-i", verb, base, f"--subresource={subres}", f"--as={sa}",
                           "-n", namespace, check=False)  # fmt: skip
            assert res.stdout.strip() == "no", (verb, resource)
        else:
            assert not tools.can_i(sa, verb, ref, namespace), (verb, resource)


def test_cluster_wide_install_rbac(tools: Tools, namespace: str) -> None:
    release = _release(namespace)
    tools.helm_run("install", release, str(CHART), "--namespace", namespace)
    try:
        sa = f"system:serviceaccount:{namespace}:{release}-supercluster-operator"
        for ns in (namespace, "default", "kube-system"):
            assert tools.can_i(sa, "create", "statefulsets.apps", ns)
            assert tools.can_i(sa, "patch", "superclusters.supercluster.dev", ns)
        assert tools.can_i(sa, "watch", "namespaces", None)
        assert not tools.can_i(sa, "create", "clusterroles.rbac.authorization.k8s.io", None)
        assert not tools.can_i(sa, "delete", "pods", "default")
    finally:
        tools.helm_run("uninstall", release, "--namespace", namespace, check=False)


# --------------------------------------------------------------------------- the real operator


def _sa_kubeconfig(tools: Tools, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig holding a real token of the ServiceAccount (TokenRequest API)."""
    token = tools.kc("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    admin = json.loads(tools.kube.kubeconfig.read_text())
    admin["users"] = [{"name": "sa", "user": {"token": token}}]
    admin["contexts"] = [{"name": "sa", "context": {"cluster": admin["clusters"][0]["name"],
                                                   "user": "sa", "namespace": namespace}}]  # fmt: skip
    admin["current-context"] = "sa"
    path.write_text(json.dumps(admin))
    return path


def _seed_in(namespace: str) -> str:
    docs = [
        d for d in yaml.safe_load_all((REPO / "examples" / "supercluster.yaml").read_text()) if d
    ]
    for d in docs:
        d["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(docs)


def test_operator_runs_with_chart_rbac(
    tools: Tools, namespace: str, installed: tuple[str, str], tmp_path: Path
) -> None:
    """`scoperator run` as the chart's ServiceAccount (its token, its args) reconciles the
    seed example: every child appears, and the operator logs no permission error."""
    release, sa_name = installed
    # the example the chart created is the seed's; apply the file too (idempotent, same specs)
    tools.kc("apply", "-n", namespace, "-f", "-", input=_seed_in(namespace))
    deployment = json.loads(
        tools.kc("get", "deployment", sa_name, "-n", namespace, "-o", "json").stdout
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "run"
    # same flags as in the pod, except that the endpoints bind to free loopback ports here
    from tests.tools import free_ports

    metrics, health = free_ports(2)
    local_args = [a for a in args[1:] if not a.startswith(("--metrics-", "--liveness"))] + [
        f"--metrics-port={metrics}",
        f"--liveness=http://127.0.0.1:{health}/healthz",
    ]
    kubeconfig = _sa_kubeconfig(tools, namespace, sa_name, tmp_path / "sa.kubeconfig")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(kubeconfig)
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scoperator", "run", *local_args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        expected = {
            ("StatefulSet", "east"), ("StatefulSet", "west"),
            ("PodDisruptionBudget", "east"), ("PodDisruptionBudget", "west"),
        }  # fmt: skip
        deadline = time.monotonic() + 60
        have: set[tuple[str, str]] = set()
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"operator exited {proc.returncode}:\n{log.read_text()}"
            items = json.loads(
                tools.kc(
                    "get",
                    "statefulsets,poddisruptionbudgets,configmaps,services,secrets",
                    "-n",
                    namespace,
                    "-o",
                    "json",
                ).stdout  # fmt: skip
            )["items"]
            have = {(o["kind"], o["metadata"]["name"]) for o in items}
            if expected <= have and sum(k == "ConfigMap" for k, _ in have) >= 2:
                break
            time.sleep(0.5)
        assert expected <= have, f"children missing: {expected - have}\n{log.read_text()}"
        text = log.read_text()
        assert not re.search(r"\b403\b|[Ff]orbidden", text), text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

"""The operator against a real kube-apiserver + etcd (no kubelet, no controller manager).

Each test runs `scoperator run -- -n <its namespace>` as a subprocess with the control plane's
kubeconfig, applies resources with the kubernetes client and asserts what the operator wrote:
children, owner references, rendered configs, statuses, conditions and Events.

Without a kubelet no pod ever runs, so the observer must report that clearly (readyServers 0,
Ready=False/PodsNotReady). Without a controller manager there is no StatefulSet controller and
no garbage collector: the tests assert owner references, not cascades.
"""

from __future__ import annotations

import base64
import copy
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from tests.kube.apiserver import KubeControlPlane
from tests.operator.helpers import EXAMPLES, ROOT
from tests.tools import free_port, http_get_json

from scoperator.apply import parse_cluster, parse_supercluster
from scoperator.render import render_supercluster

GROUP, VERSION = "supercluster.dev", "v1alpha1"
CHILDREN = ("ConfigMap", "Secret", "Service", "PodDisruptionBudget", "StatefulSet")
TIMEOUT = 30.0


# --------------------------------------------------------------------------------- plumbing


def wait_for(what: str, fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Poll `fn` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def rounds_pass(operator: Operator, n: int = 3) -> None:
    """Wait until the operator has finished ``n`` more observation rounds (its own counter,
    bumped after a round's status writes): the sentinel that a window of its work has passed,
    where a fixed sleep would only guess."""

    def rounds() -> float:
        return (operator.metrics() or {}).get("scoperator_observe_rounds_total", 0.0)

    start = rounds()
    wait_for(f"{n} more observation rounds", lambda: rounds() >= start + n)


class Operator:
    """`scoperator run` as a subprocess for one namespace."""

    def __init__(
        self, kube: KubeControlPlane, namespace: str, log_dir: Path, probe_interval: float = 0.5
    ) -> None:
        self.kube = kube
        self.probe_interval = probe_interval
        self.namespace = namespace
        self.log_path = log_dir / "operator.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        """Start and wait until the metrics endpoint answers (the operator is up)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "scoperator", "run", "--",
                "-n", self.namespace,
                "--metrics-port", str(self.metrics_port),
                "--probe-interval", str(self.probe_interval),
                "--probe-timeout", "0.5",
                "--resync-interval", "0",
            ],
            env=self.kube.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_for("operator metrics endpoint", lambda: self.metrics() is not None)
        return self

    def stop(self) -> None:
        """SIGTERM and wait (kopf exits gracefully)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[str, float] | None:
        """Parsed /metrics (series -> value), or None while not answering."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
                text = resp.read().decode()
        except OSError:
            return None
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                values[series] = float(value)
        return values

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the operator's log."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def crds(kube: KubeControlPlane) -> None:
    """Install crds/*.yaml (once per session; a 409 means already installed)."""
    with kube.api_client() as api:
        ext = k8s.ApiextensionsV1Api(api)
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            try:
                ext.create_custom_resource_definition(doc)
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
            name = doc["metadata"]["name"]

            def established(name: str = name) -> bool:
                crd = ext.read_custom_resource_definition(name)
                return any(
                    c.type == "Established" and c.status == "True"
                    for c in crd.status.conditions or []
                )

            wait_for(f"CRD {name} established", established)


@pytest.fixture
def operator(
    kube: KubeControlPlane, crds: None, namespace: str, tmp_path: Path
) -> Iterator[Operator]:
    op = Operator(kube, namespace, tmp_path).start()
    try:
        yield op
    finally:
        op.stop()
        if os.environ.get("SC_SHOW_OPERATOR_LOG"):
            print(op.log_tail(200))


class Api:
    """Typed shortcuts over the kubernetes client for one namespace."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.policy = k8s.PolicyV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.api = api

    def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = self.ns
        kind = doc["kind"]
        if kind == "Secret":
            return self.api.sanitize_for_serialization(
                self.core.create_namespaced_secret(self.ns, doc)
            )
        plural = {"SuperCluster": "superclusters", "Cluster": "clusters"}[kind]
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, doc)

    def cr(self, kind: str, name: str) -> dict[str, Any]:
        plural = {"SuperCluster": "superclusters", "Cluster": "clusters"}[kind]
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)

    def patch_cr(self, kind: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        plural = {"SuperCluster": "superclusters", "Cluster": "clusters"}[kind]
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, name, patch
        )

    def delete_cr(self, kind: str, name: str) -> None:
        plural = {"SuperCluster": "superclusters", "Cluster": "clusters"}[kind]
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)

    def child(self, kind: str, name: str) -> dict[str, Any]:
        read = {
            "ConfigMap": self.core.read_namespaced_config_map,
            "Secret": self.core.read_namespaced_secret,
            "Service": self.core.read_namespaced_service,
            "PodDisruptionBudget": self.policy.read_namespaced_pod_disruption_budget,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
        }[kind]
        return self.api.sanitize_for_serialization(read(name, self.ns))

    def children(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every object labelled as managed by scoperator, keyed by (kind, name)."""
        sel = "app.kubernetes.io/managed-by=scoperator"
        lists = {
            "ConfigMap": self.core.list_namespaced_config_map,
            "Secret": self.core.list_namespaced_secret,
            "Service": self.core.list_namespaced_service,
            "PodDisruptionBudget": self.policy.list_namespaced_pod_disruption_budget,
            "StatefulSet": self.apps.list_namespaced_stateful_set,
        }
        out = {}
        for kind, fn in lists.items():
            for item in fn(self.ns, label_selector=sel).items:
                out[(kind, item.metadata.name)] = self.api.sanitize_for_serialization(item)
        return out

    def config(self, cluster: str) -> str:
        return str(self.child("ConfigMap", f"{cluster}-config")["data"]["scserver.conf"])

    def auth(self, cluster: str) -> str:
        data = self.child("Secret", f"{cluster}-auth")["data"]["auth.conf"]
        return base64.b64decode(data).decode()

    def secret_data(self, name: str) -> dict[str, str]:
        """Decoded data of a Secret."""
        data = self.child("Secret", name).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name}"
        ).items
        return [self.api.sanitize_for_serialization(e) for e in items]


@pytest.fixture
def api(kube_client: k8s.ApiClient, namespace: str) -> Api:
    return Api(kube_client, namespace)


def example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return {}


def cr_when(
    api: Api, kind: str, name: str, pred: Callable[[dict[str, Any]], Any]
) -> Callable[[], dict[str, Any] | None]:
    """A poll function: the resource once `pred` holds for it."""

    def poll() -> dict[str, Any] | None:
        obj = api.cr(kind, name)
        return obj if pred(obj) else None

    return poll


def cluster_doc(name: str, supercluster: str = "demo", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"superCluster": supercluster, "replicas": replicas},
    }


def seed(cluster: str, ordinal: int, ns: str) -> str:
    return f"nats://{cluster}-{ordinal}.{cluster}-headless.{ns}.svc.cluster.local:7222"


def applied(api: Api, kind: str, name: str) -> dict[str, Any] | None:
    """The resource once the operator applied its current generation (ConfigApplied True)."""
    obj = api.cr(kind, name)
    c = cond(obj, "ConfigApplied")
    gen = obj["metadata"]["generation"]
    if c.get("status") == "True" and obj["status"].get("observedGeneration") == gen:
        return obj
    return None


def deploy_demo(api: Api) -> None:
    for doc in example("supercluster.yaml"):
        api.create(doc)
    for name in ("east", "west"):
        wait_for(f"{name} applied", lambda n=name: applied(api, "Cluster", n))


# ------------------------------------------------------------------------------------ tests


def test_children_owner_refs_and_rendered_seeds(operator: Operator, api: Api) -> None:
    deploy_demo(api)
    ns = api.ns
    clusters = {n: api.cr("Cluster", n) for n in ("east", "west")}
    sc = api.cr("SuperCluster", "demo")
    # what render produces from the stored resources is exactly what the API holds
    expected = render_supercluster(
        parse_supercluster(sc),
        [parse_cluster(c) for c in clusters.values()],
        {"demo-sys": {"password": "sys"}, "demo-credentials": api.secret_data("demo-credentials")},
    )
    children = api.children()
    # rendered objects, plus the Secrets of certificates and link credentials (pki.py)
    pki = {("Secret", n) for n in ("demo-ca", "demo-credentials", "east-tls", "west-tls")}
    assert set(children) == pki | {
        (o["kind"], o["metadata"]["name"]) for objs in expected.values() for o in objs
    }
    for name in ("demo-ca", "demo-credentials"):
        (ref,) = children[("Secret", name)]["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == (
            "SuperCluster", sc["metadata"]["uid"], True,
        )  # fmt: skip
    for cname, owner in clusters.items():
        tls = children[("Secret", f"{cname}-tls")]
        assert tls["type"] == "kubernetes.io/tls"
        assert tls["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    for cname, objs in expected.items():
        owner = clusters[cname]
        for obj in objs:
            got = children[(obj["kind"], obj["metadata"]["name"])]
            meta = got["metadata"]
            assert meta["ownerReferences"] == [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Cluster",
                    "name": cname,
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            assert not meta.get("finalizers")
            managers = {(m["manager"], m["operation"]) for m in meta["managedFields"]}
            assert ("scoperator", "Apply") in managers
            assert meta["labels"] == obj["metadata"]["labels"]
            if obj["kind"] in ("ConfigMap", "Secret"):
                assert got["data"] == obj["data"]
    assert seed("west", 0, ns) in api.config("east")
    assert seed("east", 0, ns) in api.config("west")
    assert 'SC_PASSWORD_SYS: "sys"' in api.auth("east")
    sts = api.child("StatefulSet", "east")
    assert sts["spec"]["replicas"] == 1 and sts["spec"]["serviceName"] == "east-headless"
    # no finalizers on our resources: deleting them never needs the operator
    assert not clusters["east"]["metadata"].get("finalizers")
    assert not sc["metadata"].get("finalizers")

    # no kubelet: the observer says so, and the status carries what was rendered
    east = wait_for(
        "east observed",
        cr_when(api, "Cluster", "east", lambda c: cond(c, "Ready").get("reason")),
    )
    assert cond(east, "Ready")["status"] == "False"
    assert cond(east, "Ready")["reason"] == "PodsNotReady"
    assert east["status"]["readyServers"] == 0
    assert east["status"]["seedUrls"] == [seed("west", 0, ns)]
    assert east["status"]["servers"] == [
        {"name": "east-0", "healthy": False, "lastError": "no running pod with an IP"}
    ]
    # the observer may publish a round from before it saw both Clusters: wait for both
    sc = wait_for(
        "supercluster observed with both clusters",
        cr_when(
            api,
            "SuperCluster",
            "demo",
            lambda s: cond(s, "Ready") and s.get("status", {}).get("clustersTotal") == 2,
        ),
    )
    assert cond(sc, "ConfigApplied")["status"] == "True"
    assert sc["status"]["clustersTotal"] == 2 and sc["status"]["clustersReady"] == 0
    assert sc["status"]["connectivity"] == {"east": {"west": False}, "west": {"east": False}}
    metrics = operator.metrics() or {}
    assert metrics.get('scoperator_reconciles_total{result="ok"}', 0) >= 1
    assert metrics.get("scoperator_applied_objects_total", 0) >= 12


def test_scale_join_leave_accounts_image(operator: Operator, api: Api) -> None:
    deploy_demo(api)
    ns = api.ns
    west_sts_rv = api.child("StatefulSet", "west")["metadata"]["resourceVersion"]

    # scale east: its StatefulSet grows, every member's config lists the new servers
    api.patch_cr("Cluster", "east", {"spec": {"replicas": 3}})
    wait_for("west config lists east-2", lambda: seed("east", 2, ns) in api.config("west"))
    wait_for("east generation 2 applied", lambda: applied(api, "Cluster", "east"))
    assert api.child("StatefulSet", "east")["spec"]["replicas"] == 3
    assert f"{seed('east', 2, ns).replace(':7222', ':6222')}" in api.config("east")  # routes
    # a config change is a file change (the server reloads): west's pods are not touched
    assert api.child("StatefulSet", "west")["metadata"]["resourceVersion"] == west_sts_rv

    # join: a third member appears in every config
    api.create(cluster_doc("north"))
    wait_for("north applied", lambda: applied(api, "Cluster", "north"))
    for c in ("east", "west"):
        wait_for(f"{c} config lists north", lambda c=c: seed("north", 0, ns) in api.config(c))
    assert seed("east", 2, ns) in api.config("north")

    # leave: north is removed from the others' configs; they stay applied
    north_uid = api.cr("Cluster", "north")["metadata"]["uid"]
    api.delete_cr("Cluster", "north")
    for c in ("east", "west"):
        wait_for(f"{c} config drops north", lambda c=c: "north" not in api.config(c))
        assert applied(api, "Cluster", c)
    # no garbage collector here: north's children remain, owned by the deleted Cluster
    left = api.child("ConfigMap", "north-config")
    assert left["metadata"]["ownerReferences"][0]["uid"] == north_uid

    # accounts: a new user lands in every member's credentials Secret, not in the pods
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app"},
            "stringData": {"alice": "wonder land"},
        }
    )
    api.patch_cr(
        "SuperCluster",
        "demo",
        {
            "spec": {
                "accounts": [
                    {
                        "name": "$SYS",
                        "users": [
                            {
                                "user": "sys",
                                "passwordSecretRef": {"name": "demo-sys", "key": "password"},
                            }
                        ],
                    },
                    {
                        "name": "APP",
                        "users": [
                            {"user": "alice", "passwordSecretRef": {"name": "app", "key": "alice"}}
                        ],
                    },
                ]
            }
        },
    )
    for c in ("east", "west"):
        wait_for(f"{c} has alice", lambda c=c: 'SC_PASSWORD_ALICE: "wonder land"' in api.auth(c))
        assert "alice" in api.config(c)
    assert api.child("StatefulSet", "west")["metadata"]["resourceVersion"] == west_sts_rv

    # image change: the pod template changes; the StatefulSet rolls one pod at a time
    api.patch_cr("SuperCluster", "demo", {"spec": {"image": "example.org/scserver:2"}})

    def rolled() -> bool:
        sts = api.child("StatefulSet", "west")
        return sts["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/scserver:2"

    wait_for("west image updated", rolled)
    strategy = api.child("StatefulSet", "west")["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy.get("rollingUpdate", {}).get("maxUnavailable", 1) in (1, None)
    assert not strategy.get("rollingUpdate", {}).get("partition")


def test_changed_password_is_rendered_within_seconds(operator: Operator, api: Api) -> None:
    # the operator runs with --resync-interval 0: only the Secret watch can pick this up
    deploy_demo(api)
    assert 'SC_PASSWORD_SYS: "sys"' in api.auth("east")
    unrelated = api.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"},
         "stringData": {"x": "y"}}
    )  # fmt: skip
    assert unrelated["metadata"]["name"] == "other"
    api.core.patch_namespaced_secret("demo-sys", api.ns, {"stringData": {"password": "n3w pw"}})
    for c in ("east", "west"):  # resync is off: only the Secret watch can bring this about
        wait_for(
            f"{c} renders the new password",
            lambda c=c: 'SC_PASSWORD_SYS: "n3w pw"' in api.auth(c),
        )

    # a Secret no SuperCluster references triggers no reconcile (first let the reconciles the
    # password change caused finish: the count must be stable before we compare against it)
    def ok_runs() -> float | None:
        return (operator.metrics() or {}).get('scoperator_reconciles_total{result="ok"}')

    runs: list[float | None] = [ok_runs()]

    def stable() -> bool:  # the same count on both sides of two observation rounds
        rounds_pass(operator, 2)
        runs.append(ok_runs())
        return runs[-1] == runs[-2]

    wait_for("reconciles after the password change finished", stable, timeout=30.0)
    api.core.patch_namespaced_secret("other", api.ns, {"stringData": {"x": "z"}})
    rounds_pass(operator, 3)  # the watch event arrives in milliseconds; rounds are 0.5 s apart
    assert ok_runs() == runs[-1]
    # deleting the referenced Secret is reported at once (the servers keep their config)
    api.core.delete_namespaced_secret("demo-sys", api.ns)
    wait_for(
        "SecretMissing reported",
        lambda: (
            cond(api.cr("SuperCluster", "demo"), "ConfigApplied").get("reason") == "SecretMissing"
        ),
        timeout=20.0,  # before the 30 s retry of a missing Secret: the watch reported it
    )
    assert 'SC_PASSWORD_SYS: "n3w pw"' in api.auth("east")


def test_restart_changes_nothing(kube: KubeControlPlane, operator: Operator, api: Api) -> None:
    deploy_demo(api)
    # let the observer publish its first status, then snapshot everything
    wait_for("supercluster observed", lambda: cond(api.cr("SuperCluster", "demo"), "Ready"))
    wait_for("west observed", lambda: cond(api.cr("Cluster", "west"), "Ready"))
    rounds_pass(operator, 3)  # a few probe rounds: nothing changes, so nothing is written

    def snapshot() -> dict[tuple[str, str], str]:
        snap = {k: v["metadata"]["resourceVersion"] for k, v in api.children().items()}
        for kind, name in (("SuperCluster", "demo"), ("Cluster", "east"), ("Cluster", "west")):
            snap[(kind, name)] = api.cr(kind, name)["metadata"]["resourceVersion"]
        return snap

    before = snapshot()
    rounds_pass(operator, 3)
    assert snapshot() == before, "status churn while nothing changed"
    operator.stop()
    operator.start()
    # the restarted operator resumed: it reconciled and observed at least twice
    wait_for(
        "resume reconcile + observation",
        lambda: (
            (m := operator.metrics() or {}).get('scoperator_reconciles_total{result="ok"}')
            and m.get("scoperator_observe_rounds_total", 0) >= 3
        ),
    )
    metrics = operator.metrics() or {}
    assert metrics.get("scoperator_applied_objects_total", 0) >= 12  # re-applied (no-op SSA)
    assert snapshot() == before, "the restart changed objects"
    assert len(api.children()) == 16  # nothing duplicated (12 rendered, 4 pki Secrets)


def test_bad_resources_are_reported(operator: Operator, api: Api) -> None:
    # a Cluster whose SuperCluster does not exist
    api.create(cluster_doc("lost", supercluster="nowhere"))
    lost = wait_for(
        "lost reported",
        cr_when(api, "Cluster", "lost", lambda c: cond(c, "ConfigApplied")),
    )
    c = cond(lost, "ConfigApplied")
    assert (c["status"], c["reason"]) == ("False", "SuperClusterNotFound")
    assert "nowhere" in c["message"] and "create it" in c["message"]
    ev = wait_for("event for lost", lambda: api.events("lost"))
    assert ev[0]["type"] == "Warning" and ev[0]["reason"] == "SuperClusterNotFound"
    assert "spec.superCluster" in ev[0]["message"]

    # creating the SuperCluster later fixes it without touching the Cluster
    api.create(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SuperCluster",
            "metadata": {"name": "nowhere"},
            "spec": {},
        }
    )
    wait_for("lost applied", lambda: applied(api, "Cluster", "lost"))

    # a missing Secret: reported, nothing applied, retried later (not in a hot loop)
    api.create(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SuperCluster",
            "metadata": {"name": "locked"},
            "spec": {
                "accounts": [
                    {
                        "name": "A",
                        "users": [
                            {"user": "u", "passwordSecretRef": {"name": "gone", "key": "pw"}}
                        ],
                    }
                ]
            },
        }
    )
    api.create(cluster_doc("vault", supercluster="locked"))
    vault = wait_for(
        "vault reported",
        cr_when(api, "Cluster", "vault", lambda c: cond(c, "ConfigApplied")),
    )
    c = cond(vault, "ConfigApplied")
    assert (c["status"], c["reason"]) == ("False", "SecretMissing")
    assert "gone/pw" in c["message"] and "create the Secret" in c["message"]
    sc_cond = cond(api.cr("SuperCluster", "locked"), "ConfigApplied")
    assert sc_cond["reason"] == "SecretMissing"
    assert ("StatefulSet", "vault") not in api.children()
    wait_for(
        "event for vault",
        lambda: [e for e in api.events("vault") if e["reason"] == "SecretMissing"],
    )

    # duplicate gateway names: an external gateway named like a member
    api.create(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SuperCluster",
            "metadata": {"name": "twins"},
            "spec": {"externalGateways": [{"name": "gemini", "urls": ["nats://gw.example:7222"]}]},
        }
    )
    api.create(cluster_doc("gemini", supercluster="twins"))
    twins = wait_for(
        "twins reported",
        cr_when(api, "SuperCluster", "twins", lambda s: cond(s, "ConfigApplied")),
    )
    c = cond(twins, "ConfigApplied")
    assert (c["status"], c["reason"]) == ("False", "DuplicateGatewayName")
    assert "gemini" in c["message"] and "rename" in c["message"]
    assert cond(api.cr("Cluster", "gemini"), "ConfigApplied")["reason"] == "DuplicateGatewayName"
    wait_for("event for twins", lambda: [e for e in api.events("twins") if e["type"] == "Warning"])

    # invalid ports: the CRD's rules reject them before the operator sees anything
    with pytest.raises(k8s.ApiException) as exc:
        api.create(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "SuperCluster",
                "metadata": {"name": "ports"},
                "spec": {"ports": {"client": 4222, "cluster": 4222}},
            }
        )
    assert exc.value.status == 422 and "ports must be distinct" in exc.value.body
    # a port the API server refuses at apply time (nodePort taken) -> ApplyFailed on that member
    for name, sc in (("np1", "nowhere"), ("np2", "nowhere")):
        doc = cluster_doc(name, supercluster=sc)
        doc["spec"]["gateway"] = {"type": "NodePort", "nodePort": 30123}
        api.create(doc)
    failed = wait_for(
        "nodePort conflict reported",
        lambda: [
            n
            for n in ("np1", "np2")
            if cond(api.cr("Cluster", n), "ConfigApplied").get("reason") == "ApplyFailed"
        ],
    )
    (bad,) = failed
    msg = cond(api.cr("Cluster", bad), "ConfigApplied")["message"]
    assert "Service" in msg and "30123" in msg

    # the operator is alive and idle: six observation rounds add (almost) no reconciles
    m1 = operator.metrics() or {}
    rounds_pass(operator, 6)
    m2 = operator.metrics() or {}
    runs = lambda m: sum(v for k, v in m.items() if k.startswith("scoperator_reconciles_total"))  # noqa: E731
    assert runs(m2) - runs(m1) <= 2, (m1, m2)
    assert operator.alive()


def test_deletion_needs_no_finalizer(operator: Operator, api: Api) -> None:
    deploy_demo(api)
    east_uid = api.cr("Cluster", "east")["metadata"]["uid"]
    api.delete_cr("Cluster", "east")
    # gone at once (no finalizer to remove), and west is re-rendered without it
    wait_for("east gone", lambda: _gone(api, "Cluster", "east"))
    wait_for("west drops east", lambda: "east" not in api.config("west"))
    assert all(
        o["metadata"]["ownerReferences"][0]["uid"] == east_uid
        for (kind, name), o in api.children().items()
        if o["metadata"]["labels"].get("supercluster.dev/cluster") == "east"
    )
    west = wait_for(
        "west observed without east",
        cr_when(
            api,
            "Cluster",
            "west",
            lambda c: c["status"].get("gateways") == [] and cond(c, "GatewaysConnected"),
        ),
    )
    assert cond(west, "GatewaysConnected")["reason"] == "NoRemoteClusters"
    assert applied(api, "Cluster", "west")
    # deleting the SuperCluster leaves its Clusters reporting it
    api.delete_cr("SuperCluster", "demo")
    wait_for(
        "west reports missing SuperCluster",
        lambda: (
            cond(api.cr("Cluster", "west"), "ConfigApplied").get("reason") == "SuperClusterNotFound"
        ),
    )


def _gone(api: Api, kind: str, name: str) -> bool:
    try:
        api.cr(kind, name)
    except k8s.ApiException as exc:
        return exc.status == 404
    return False


# ---------------------------------------------- in-process operator, real servers on loopback


class InProcessOperator:
    """`handlers.serve` in a thread with an injected resolver (server name -> local address)."""

    def __init__(self, kube: KubeControlPlane, namespace: str, resolver: Any) -> None:
        import threading

        from scoperator.handlers import OperatorConfig

        self.config = OperatorConfig(
            namespaces=[namespace],
            metrics_port=-1,
            probe_interval=0.3,
            probe_timeout=0.5,
            resync_interval=0,
            kubeconfig=str(kube.kubeconfig),
        )
        self.resolver = resolver
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import asyncio

        from scoperator.handlers import serve

        try:
            asyncio.run(
                serve(
                    self.config,
                    resolver=self.resolver,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def __enter__(self) -> InProcessOperator:
        self.thread.start()
        assert self.ready_flag.wait(30), self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def probed_rounds(local: Any, n: int) -> None:
    """Wait until every server of ``local`` has answered ``n`` more ``/gatewayz`` requests (the
    observer asks each server once per round; the test itself never asks): ``n`` rounds passed."""

    def counts() -> list[int]:
        out = []
        for s in local.servers:
            varz = http_get_json("127.0.0.1", s.address.ports.monitor, "/varz")
            out.append(int((varz.get("http_req_stats") or {}).get("/gatewayz", 0)))
        return out

    start = counts()
    wait_for(
        f"{n} more probe rounds",
        lambda: all(now >= was + n for now, was in zip(counts(), start, strict=True)),
    )


def test_status_from_real_servers(
    kube: KubeControlPlane, crds: None, api: Api, tmp_path: Path
) -> None:
    """The observer's statuses in the API, with real scserver processes standing in for pods."""
    import asyncio

    from tests.operator.helpers import load_example
    from tests.tools import require_binary, scserver_command

    from scoperator.local import LocalSupercluster
    from scoperator.observe import StaticResolver
    from scoperator.secrets import secrets_from_objects

    cmd = require_binary(scserver_command(), "scserver not installed")
    resources = load_example("supercluster.yaml")
    sc_model = resources.superclusters[0]
    local = LocalSupercluster(
        sc_model,
        resources.members(sc_model),
        secrets_from_objects(resources.secrets),
        list(cmd),
        tmp_path / "servers",
    )
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        resolver = StaticResolver(
            {s.name: f"127.0.0.1:{s.address.ports.monitor}" for s in local.servers}
        )
        with InProcessOperator(kube, api.ns, resolver) as op:
            deploy_demo(api)
            sc = wait_for(
                "mesh complete",
                cr_when(
                    api,
                    "SuperCluster",
                    "demo",
                    lambda s: (
                        cond(s, "GatewaysConnected").get("status") == "True"
                        and cond(s, "Ready").get("status") == "True"
                    ),
                ),
            )
            assert cond(sc, "GatewaysConnected")["reason"] == "MeshComplete"
            assert sc["status"]["connectivity"] == {"east": {"west": True}, "west": {"east": True}}
            assert sc["status"]["clustersReady"] == 2 and sc["status"]["readyServers"] == 2
            east = api.cr("Cluster", "east")
            assert cond(east, "Ready")["reason"] == "AllServersHealthy"
            assert east["status"]["readyServers"] == 1
            assert east["status"]["servers"][0]["version"]
            assert east["status"]["gateways"] == [
                {"cluster": "west", "outbound": 1, "inbound": 1, "connected": True}
            ]
            managers = {m["manager"] for m in east["metadata"]["managedFields"]}
            assert {"scoperator-reconciler", "scoperator-observer"} <= managers

            # these servers loaded their config files before the operator applied the
            # ConfigMaps: written (ConfigApplied) but not loaded, per server (ConfigReloaded)
            east = wait_for(
                "east reload pending",
                cr_when(
                    api,
                    "Cluster",
                    "east",
                    lambda c: cond(c, "ConfigReloaded").get("reason") == "ReloadPending",
                ),
            )
            stamp = api.child("ConfigMap", "east-config")["metadata"]["annotations"]
            assert (
                east["status"]["configAppliedTime"] >= stamp["supercluster.dev/config-applied-at"]
            )
            assert [s["configCurrent"] for s in east["status"]["servers"]] == [False]
            assert "east-0" in cond(east, "ConfigReloaded")["message"]
            assert cond(east, "ConfigApplied")["status"] == "True"
            sc = wait_for(
                "supercluster reload pending",
                cr_when(
                    api,
                    "SuperCluster",
                    "demo",
                    lambda s: cond(s, "ConfigReloaded").get("reason") == "ReloadPending",
                ),
            )
            assert "east-0" in cond(sc, "ConfigReloaded")["message"]

            # healthy and idle: probes every 0.3s, yet nothing is written (the servers count
            # the observer's /gatewayz requests: the sentinel that probe rounds happened)
            probed_rounds(local, 3)
            versions = {
                n: api.cr("Cluster", n)["metadata"]["resourceVersion"] for n in ("east", "west")
            }
            probed_rounds(local, 3)
            assert {
                n: api.cr("Cluster", n)["metadata"]["resourceVersion"] for n in ("east", "west")
            } == versions

            # a server dies: Degraded within a probe round or two, with a Warning Event
            west0 = next(s for s in local.servers if s.name == "west-0")
            assert west0.process is not None
            west0.process.kill()
            # how soon is a benchmark's figure (python -m bench.bench_recovery: observe rounds)
            west = wait_for(
                "west degraded",
                cr_when(
                    api, "Cluster", "west", lambda c: cond(c, "Degraded").get("status") == "True"
                ),
            )
            assert cond(west, "Ready")["reason"] == "ServersUnhealthy"
            assert west["status"]["servers"][0]["lastError"].startswith("unreachable")
            warnings = wait_for(
                "Warning event",
                lambda: [e for e in api.events("west") if e["type"] == "Warning"],
            )
            assert {e["reason"] for e in warnings} >= {"ServersUnhealthy"}
            wait_for(
                "supercluster degraded",
                cr_when(
                    api,
                    "SuperCluster",
                    "demo",
                    lambda s: cond(s, "Degraded").get("status") == "True",
                ),
            )
            assert not op.errors
    finally:
        local.stop()

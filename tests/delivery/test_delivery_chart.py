"""The Helm chart, rendered with `helm lint` / `helm template` (no cluster needed): CRDs identical
to the repository's, RBAC in both watch modes covering what the operator does, the operator's
arguments, metrics, peering, the example, and values.schema.json."""

from __future__ import annotations

import json
import re
import subprocess
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
    allows,
    by_kind,
    one,
    run,
    template,
    tool,
)

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def test_crds_identical_to_repository() -> None:
    repo = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert repo, "no CRDs in crds/"
    assert chart == repo, "copy crds/*.yaml to charts/supercluster-operator/crds/ (make crds)"


def test_crds_match_the_models() -> None:
    """The chart ships exactly what hack/gen-crds.py would generate from the models now."""
    from scoperator.crds import all_crds

    shipped = {}
    for p in (CHART / "crds").glob("*.yaml"):
        doc = yaml.safe_load(p.read_text())
        shipped[doc["metadata"]["name"]] = doc
    generated = {c["metadata"]["name"]: c for c in all_crds().values()}
    assert shipped == generated


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "default")
def test_helm_lint_strict(values: Path | None) -> None:
    args = [tool("helm"), "lint", "--strict", str(CHART)]
    if values:
        args += ["-f", str(values)]
    res = run(args, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 chart(s) failed" in res.stdout


def test_chart_and_app_version_follow_the_project() -> None:
    import tomllib

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version
    from scoperator.models import DEFAULT_IMAGE

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # one image for the operator and the servers it runs
    assert f"{values['container']['image']['repository']}:{version}" == DEFAULT_IMAGE


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _deployment(docs)["spec"]["template"]["spec"]["containers"][0]


def test_default_is_cluster_wide() -> None:
    docs = template()
    assert by_kind(docs, "Role") == [] and by_kind(docs, "RoleBinding") == []
    role = one(docs, "ClusterRole")
    for (group, resource), verbs in {
        **OPERATOR_NEEDS,
        **CLUSTER_NEEDS,
    }.items():
        for verb in verbs:
            assert allows(role["rules"], group, resource, verb), (group, resource, verb)
    for group, resource, verb in FORBIDDEN:
        assert not allows(role["rules"], group, resource, verb), (group, resource, verb)
    binding = one(docs, "ClusterRoleBinding")
    sa = one(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": sa["metadata"]["name"],
            "namespace": "supercluster-system",
        }
    ]
    c = _container(docs)
    assert c["command"] == ["scoperator"]
    assert c["args"][0] == "run"
    assert "--all-namespaces" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--namespace")]
    dep = _deployment(docs)
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_namespaced_watch_gets_roles_per_namespace() -> None:
    docs = template({"operator.watchNamespaces": ["team-a", "team-b"]})
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["subjects"][0]["namespace"] == "supercluster-system"
    for role in roles:
        for (group, resource), verbs in OPERATOR_NEEDS.items():
            for verb in verbs:
                assert allows(role["rules"], group, resource, verb), (group, resource, verb)
    # the ClusterRole keeps only kopf's CRD and namespace scans: nothing namespaced cluster-wide
    cluster_role = one(docs, "ClusterRole")
    assert allows(
        cluster_role["rules"], "apiextensions.k8s.io", "customresourcedefinitions", "watch"
    )
    for (group, resource), _verbs in OPERATOR_NEEDS.items():
        assert not allows(cluster_role["rules"], group, resource, "list"), (group, resource)
    args = _container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_operator_arguments_parse() -> None:
    """The rendered args are accepted by `scoperator run`'s own parser."""
    import scoperator.handlers as handlers

    docs = template(
        {"operator.watchNamespaces": ["a", "b"], "operator.logLevel": "debug",
         "operator.clusterDomain": "k8s.example"}
    )  # fmt: skip
    args = _container(docs)["args"]
    assert args[0] == "run"
    config = handlers.parse_args(args[1:])
    assert config.namespaces == ["a", "b"] and not config.all_namespaces
    assert config.metrics_port == 8080 and config.metrics_host == "0.0.0.0"
    assert config.liveness == "http://0.0.0.0:8081/healthz"
    assert config.cluster_domain == "k8s.example"
    assert config.verbose
    config = handlers.parse_args(
        _container(template({"operator.metrics.enabled": False}))["args"][1:]
    )
    assert config.all_namespaces and config.metrics_port == -1


def test_probes_and_security() -> None:
    c = _container(template())
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8081, "metrics": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_image_reference() -> None:
    assert _container(template())["image"] == "ghcr.io/supercluster/scserver:0.1.0"
    c = _container(
        template({"global.image.registry": "registry.local:5000", "container.image.tag": "dev",
                  "global.image.pullPolicy": "Never"})
    )  # fmt: skip
    assert c["image"] == "registry.local:5000/ghcr.io/supercluster/scserver:dev"
    assert c["imagePullPolicy"] == "Never"
    digest = "sha256:" + "a" * 64
    assert _container(template({"container.image.digest": digest}))["image"].endswith("@" + digest)


def test_metrics_service_and_servicemonitor() -> None:
    assert by_kind(template(), "Service") == []
    docs = template(files=[CHART / "ci" / "metrics-values.yaml"])
    svc = one(docs, "Service")
    sm = one(docs, "ServiceMonitor")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    selector = svc["spec"]["selector"]
    labels = _deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["interval"] == "15s"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    # metrics off in the operator: no Service to scrape
    docs = template({"operator.metrics.enabled": False, "metrics.serviceMonitor.enabled": True})
    assert by_kind(docs, "ServiceMonitor") == [] and by_kind(docs, "Service") == []


def test_peering() -> None:
    docs = template(files=[CHART / "ci" / "peering-values.yaml"])
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "sco-supercluster-operator"
    dep = _deployment(docs)
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"]["type"] == "RollingUpdate"
    c = _container(docs)
    assert "--peering=sco-supercluster-operator" in c["args"]
    assert "--priority" in " ".join(c["command"])  # a random priority per pod
    assert allows(one(docs, "ClusterRole")["rules"], "kopf.dev", "clusterkopfpeerings", "patch")
    docs = template({"operator.peering.enabled": True, "operator.peering.priority": 7,
                     "operator.watchNamespaces": ["a"]})  # fmt: skip
    assert one(docs, "KopfPeering")["metadata"]["namespace"] == "a"
    assert "--priority=7" in _container(docs)["args"]
    assert allows(one(docs, "Role")["rules"], "kopf.dev", "kopfpeerings", "patch")


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {"kind": doc["kind"], "name": doc["metadata"]["name"], "spec": doc.get("spec")}


def test_example_is_the_seed_example() -> None:
    docs = template(files=[CHART / "ci" / "example-values.yaml"], namespace="demo")
    seed = [
        d for d in yaml.safe_load_all((REPO / "examples" / "supercluster.yaml").read_text()) if d
    ]
    for kind in ("SuperCluster", "Cluster"):
        ours = sorted((_strip(d) for d in by_kind(docs, kind)), key=lambda d: d["name"])
        theirs = sorted((_strip(d) for d in by_kind(seed, kind)), key=lambda d: d["name"])
        assert ours == theirs
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == "demo-sys" and secret["metadata"]["namespace"] == "demo"
    import base64

    assert base64.b64decode(secret["data"]["password"]).decode() == "sys"
    # the operator renders it without complaint
    from scoperator.models import ResourceSet
    from scoperator.render import render_supercluster

    example = [d for d in docs if d["kind"] in ("SuperCluster", "Cluster", "Secret")]
    resources = ResourceSet.from_documents(example)
    (sc,) = resources.superclusters
    from tests.operator.helpers import fixed_credentials

    secrets = {"demo-sys": {"password": "sys"}, **fixed_credentials("demo")}
    rendered = render_supercluster(sc, resources.members(sc), secrets)
    assert sorted(rendered) == ["east", "west"]


def test_example_generates_a_password() -> None:
    docs = template({"example.enabled": True})
    assert len(one(docs, "Secret")["data"]["password"]) >= 24


def test_example_outside_watched_namespaces_fails() -> None:
    res = template({"example.enabled": True, "operator.watchNamespaces": ["a"]}, check=False)
    assert isinstance(res, subprocess.CompletedProcess) and res.returncode != 0
    assert "not in operator.watchNamespaces" in res.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator.logLevel": "loud"}, "logLevel"),
        ({"operator.watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"operator.metrics.port": 70000}, "port"),
        ({"container.image.digest": "latest"}, "digest"),
        ({"example.clusters": []}, "clusters"),
        ({"unknownKey": 1}, "unknownKey"),
    ],
)
def test_schema_rejects(values: dict[str, Any], message: str) -> None:
    res = template(values, check=False)
    assert isinstance(res, subprocess.CompletedProcess) and res.returncode != 0
    assert message in res.stderr


def _leaf_keys(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        out: list[str] = []
        for k, v in value.items():
            out += _leaf_keys(v, f"{prefix}.{k}" if prefix else k)
        return out
    return [prefix]


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = [k for k in _leaf_keys(values) if not k.startswith("example.clusters")]
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert not missing, f"chart README.md lacks rows for: {missing}"


def test_schema_is_json_and_covers_top_level_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


def test_notes_tell_what_to_apply_next() -> None:
    # NOTES.txt is not rendered by `helm template`; `helm install --dry-run=client` shows it
    res = run([tool("helm"), "install", "sco", str(CHART), "--dry-run=client", "-n", "x"])
    assert "kubectl apply -f examples/supercluster.yaml" in res.stdout
    assert re.search(r"wait supercluster/demo --for=condition=Ready", res.stdout)
    res = run([tool("helm"), "install", "sco", str(CHART), "--dry-run=client", "-n", "x",
               "--set", "example.enabled=true"])  # fmt: skip
    assert "example SuperCluster demo was created in namespace x" in res.stdout

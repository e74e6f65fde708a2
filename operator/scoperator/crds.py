"""CustomResourceDefinitions generated from the pydantic models.

Kubernetes only accepts *structural* schemas: every node has a type, no `$ref`, no
`additionalProperties: false`, nullable instead of `anyOf [X, null]`. Pydantic's JSON schema is
turned into that form here; `hack/gen-crds.py` writes the result to `crds/` and a test fails when
the files are stale.

Short names: `scl` for SuperCluster (`sc` is StorageClass) and `ncl` for Cluster; neither is a
built-in short name. Both kinds are in the category `nats`, so `kubectl get nats` lists both.
`kubectl get clusters` may be ambiguous when Cluster API or CloudNativePG are installed: use
`ncl` or `clusters.supercluster.dev` there.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

from scoperator.models import (
    CLUSTER_NAME_MAX,
    CLUSTER_NAME_PATTERN,
    GROUP,
    VERSION,
    ClusterSpec,
    ClusterStatus,
    SuperClusterSpec,
    SuperClusterStatus,
)

CATEGORY = "nats"

# Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps).
_ALLOWED = {
    "type",
    "description",
    "properties",
    "items",
    "required",
    "enum",
    "default",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "additionalProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-embedded-resource",
}
_FORMATS = {"date-time", "int32", "int64", "date", "byte"}


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model (camelCase, as the API server sees it)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _convert(schema, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        # Sibling keywords of the $ref (description, default) win over the definition's.
        node = {**target, **node}
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**_convert(node.pop("allOf")[0], defs), **node}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"union types cannot be expressed structurally: {branches}")
        node = {**_convert(branches[0], defs), **node}
        if node.get("default", ...) is None:
            del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _ALLOWED:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _convert(value, defs)
            elif value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            # `false` is the structural default (unknown fields are pruned): drop it.
        elif key == "format" and value not in _FORMATS:
            continue
        elif key == "description":
            # Docstrings wrap at 100 columns; kubectl explain re-wraps, so keep paragraphs only.
            out[key] = re.sub(r"(?<!\n)\n(?!\n)", " ", value.strip())
        else:
            out[key] = value
    if out.get("type") == "array" and out.pop("x-kubernetes-preserve-unknown-fields", False):
        # The free-form part of a list of objects is its items, not the list.
        out.setdefault("items", {"type": "object"})["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in out and out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("properties")
    if out.get("default") is not None and out.get("type") == "object" and not out["default"]:
        # `{}` defaults on free-form objects only add noise to stored objects.
        del out["default"]
    if out.get("type") == "array" and out.get("default") == []:
        del out["default"]
    return out


def _column(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, **extra}


def _ready_column(name: str = "Ready") -> dict[str, Any]:
    return _column(name, '.status.conditions[?(@.type=="Ready")].status')


def _age() -> dict[str, Any]:
    return _column("Age", ".metadata.creationTimestamp", "date")


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    description: str,
    root_rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(spec),
            "status": structural(status),
        },
    }
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def supercluster_crd() -> dict[str, Any]:
    """CRD of `SuperCluster` (short name `scl`)."""
    return _crd(
        "SuperCluster",
        "superclusters",
        ["scl"],
        SuperClusterSpec,
        SuperClusterStatus,
        [
            _column("Clusters", ".status.clustersTotal", "integer"),
            _column("Ready Clusters", ".status.clustersReady", "integer"),
            _column("Ready Servers", ".status.readyServers", "integer"),
            _column("Mesh", '.status.conditions[?(@.type=="GatewaysConnected")].status'),
            _ready_column(),
            _column("Certs", '.status.conditions[?(@.type=="CertificatesReady")].status'),
            _age(),
            _column("TLS", ".status.tls.mode", priority=1),
            _column("CA", ".status.tls.caFingerprint", priority=1),
            _column("Image", ".spec.image", priority=1),
        ],
        "A set of Clusters joined by gateways; holds what its members share.",
    )


def cluster_crd() -> dict[str, Any]:
    """CRD of `Cluster` (short name `ncl`); its name must be usable as a gateway name."""
    return _crd(
        "Cluster",
        "clusters",
        ["ncl"],
        ClusterSpec,
        ClusterStatus,
        [
            _column("SuperCluster", ".spec.superCluster"),
            _column("Replicas", ".spec.replicas", "integer"),
            _column("Ready Servers", ".status.readyServers", "integer"),
            _column("Gateways", ".status.connectedGateways", "integer"),
            _ready_column(),
            _column("Certs", '.status.conditions[?(@.type=="CertificatesReady")].status'),
            _age(),
            _column("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
            _column("Cert Not After", ".status.tls.certificates[0].notAfter", priority=1),
            _column("Advertise", ".spec.gateway.advertise", priority=1),
        ],
        "One cluster of a SuperCluster: a StatefulSet of servers; its name is the cluster "
        "and gateway name.",
        root_rules=[
            {
                "rule": f"self.metadata.name.matches('{CLUSTER_NAME_PATTERN}')"
                f" && self.metadata.name.size() <= {CLUSTER_NAME_MAX}",
                "message": f"name must match {CLUSTER_NAME_PATTERN} and have at most "
                f"{CLUSTER_NAME_MAX} characters (it becomes Service and gateway names)",
            }
        ],
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name (in `crds/`) -> CRD object."""
    return {
        f"{GROUP}_superclusters.yaml": supercluster_crd(),
        f"{GROUP}_clusters.yaml": cluster_crd(),
    }


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Reasons a schema is not structural (empty when it is); mirrors the API server's rules."""
    problems: list[str] = []
    here = path or "<root>"
    for key in schema:
        if key not in _ALLOWED:
            problems.append(f"{here}: keyword {key!r} not allowed")
    free = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
        "x-kubernetes-int-or-string"
    )
    if "type" not in schema and not free:
        problems.append(f"{here}: no type")
    if "additionalProperties" in schema:
        if "properties" in schema:
            problems.append(f"{here}: properties and additionalProperties together")
        if not isinstance(schema["additionalProperties"], dict):
            problems.append(f"{here}: additionalProperties must be a schema")
        else:
            problems += structural_problems(schema["additionalProperties"], f"{path}.*")
    if schema.get("type") == "array" and "items" not in schema:
        problems.append(f"{here}: array without items")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if "items" in schema:
        problems += structural_problems(schema["items"], f"{path}[]")
    for key in schema.get("required", []):
        if key not in schema.get("properties", {}):
            problems.append(f"{here}: required {key!r} is not a property")
    if schema.get("x-kubernetes-list-type") == "map":
        item = schema.get("items", {})
        for key in schema.get("x-kubernetes-list-map-keys", []):
            if key not in item.get("required", []) and "default" not in item.get(
                "properties", {}
            ).get(key, {}):
                problems.append(f"{here}: list-map key {key!r} must be required or defaulted")
    return problems


def render_crd_files() -> dict[str, str]:
    """File name -> YAML text, exactly as committed in `crds/`."""
    import yaml  # only needed when writing files

    header = "# Generated by hack/gen-crds.py from operator/scoperator/models.py. Do not edit.\n"
    return {
        name: header + yaml.safe_dump(crd, sort_keys=False, width=100)
        for name, crd in all_crds().items()
    }

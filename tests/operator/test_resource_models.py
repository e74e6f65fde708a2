"""The pydantic models: defaults, camelCase JSON, and the validation rules the operator relies on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tests.operator.helpers import example_names, load_example

from scoperator.models import (
    API_VERSION,
    Cluster,
    ClusterStatus,
    Condition,
    ResourceSet,
    SuperCluster,
    SuperClusterSpec,
    password_var,
)


def cluster(name: str = "east", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"superCluster": "demo", **spec},
    }


def user(name: str, secret: str = "s", key: str = "k") -> dict[str, Any]:
    return {"user": name, "passwordSecretRef": {"name": secret, "key": key}}


def test_defaults() -> None:
    spec = SuperClusterSpec()
    assert (spec.ports.client, spec.ports.cluster, spec.ports.gateway, spec.ports.monitor) == (
        4222,
        6222,
        7222,
        8222,
    )
    assert spec.system_account == "$SYS"
    assert spec.server_command == ["scserver"]
    c = Cluster.model_validate(cluster())
    assert c.spec.replicas == 1
    assert c.spec.gateway.type == "Headless"
    assert c.namespace == "ns" and c.name == "east"


def test_camel_case_json_roundtrip() -> None:
    c = Cluster.model_validate(
        cluster(
            replicas=3,
            nodeSelector={"a": "b"},
            topologySpreadConstraints=[{"maxSkew": 1}],
            gateway={"type": "NodePort", "nodePort": 30001, "advertise": "1.2.3.4:30001"},
        )
    )
    data = c.spec.to_json()
    assert data["superCluster"] == "demo"
    assert data["topologySpreadConstraints"] == [{"maxSkew": 1}]
    assert data["gateway"]["nodePort"] == 30001
    assert "image" not in data  # unset optionals are omitted, as the API server would store it
    assert Cluster.model_validate(cluster(**data)).spec == c.spec


@pytest.mark.parametrize(
    "name",
    ["East", "1east", "east_1", "east-", "a" * 41, "east.west"],
)
def test_cluster_names_must_be_usable_as_service_and_gateway_names(name: str) -> None:
    with pytest.raises(ValidationError, match="Cluster name|metadata.name"):
        Cluster.model_validate(cluster(name))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"replicas": 0}, "greater than or equal to 1"),
        ({"superCluster": "Bad_Name"}, "pattern"),
        ({"gateway": {"type": "Ingress"}}, "Headless"),
        ({"gateway": {"nodePort": 30001}}, "only valid with type NodePort"),
        ({"gateway": {"type": "NodePort", "nodePort": 80}}, "greater than or equal to 30000"),
        ({"gateway": {"advertise": "no-port"}}, "pattern"),
        ({"gateway": {"externalTrafficPolicy": "Local"}}, "NodePort or LoadBalancer"),
        ({"replica": 3}, "Extra inputs"),
    ],
)
def test_cluster_spec_validation(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Cluster.model_validate(cluster(**spec))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"ports": {"client": 4222, "cluster": 4222}}, "distinct"),
        ({"ports": {"client": 70000}}, "less than or equal to 65535"),
        ({"imagePullPolicy": "Sometimes"}, "IfNotPresent"),
        (
            {
                "accounts": [
                    {"name": "A", "users": [user("x")]},
                    {"name": "B", "users": [user("x")]},
                ]
            },
            "duplicate user",
        ),
        (
            {"accounts": [{"name": "A", "users": [user("a.b"), user("a_b")]}]},
            "after mapping to a variable",
        ),
        ({"accounts": [{"name": "A"}, {"name": "A"}]}, "duplicate account"),
        ({"systemAccount": "SYS"}, "not a declared account"),
        ({"config": {"noAuthUser": "nobody"}}, "not a user"),
        ({"config": {"pingInterval": "2 minutes"}}, "pattern"),
        ({"externalGateways": [{"name": "west", "urls": []}]}, "at least 1"),
        ({"externalGateways": [{"name": "west", "urls": ["http://x:1"]}]}, "pattern"),
        (
            {
                "externalGateways": [
                    {"name": "west", "urls": ["nats://a:1"]},
                    {"name": "west", "urls": ["nats://b:1"]},
                ]
            },
            "duplicate external gateway",
        ),
        ({"accounts": [{"name": "A", "users": [{"user": "x", "password": "inline"}]}]}, "Field"),
    ],
)
def test_supercluster_spec_validation(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        SuperClusterSpec.model_validate(spec)


def test_inline_passwords_are_impossible() -> None:
    """A user has a Secret reference and nothing else: there is no field for a password."""
    assert "password" not in SuperClusterSpec.model_json_schema()["$defs"]["User"]["properties"]


def test_password_variable_names() -> None:
    assert password_var("sys") == "SC_PASSWORD_SYS"
    assert password_var("alice@example.com") == "SC_PASSWORD_ALICE_EXAMPLE_COM"


def test_wrong_api_version_is_rejected() -> None:
    doc = cluster()
    doc["apiVersion"] = "nats.io/v1"
    with pytest.raises(ValidationError, match="apiVersion"):
        Cluster.model_validate(doc)


def test_statuses_serialise_in_camel_case() -> None:
    status = ClusterStatus(
        ready_servers=2,
        conditions=[Condition(type="Ready", status="True", reason="AllServersHealthy")],
    )
    data = status.to_json()
    assert data["readyServers"] == 2
    assert data["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "AllServersHealthy",
        "message": "",
    }
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="Yes")


@pytest.mark.parametrize("example", example_names())
def test_examples_are_valid(example: str) -> None:
    resources = load_example(example)
    assert len(resources.superclusters) == 1
    assert resources.members(resources.superclusters[0])
    assert not resources.orphans()


def test_resource_set_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="Deployment"):
        ResourceSet.from_documents([{"kind": "Deployment"}])
    rs = ResourceSet.from_documents(
        [
            None,
            cluster(),
            {"apiVersion": API_VERSION, "kind": "SuperCluster", "metadata": {"name": "x"}},
        ]
    )
    assert [c.name for c in rs.orphans()] == ["east"]  # its SuperCluster `demo` is elsewhere
    assert isinstance(rs.superclusters[0], SuperCluster)

"""Smoke test of the test control plane: a real kube-apiserver + etcd, kubectl and helm."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from tests.kube.apiserver import BinariesMissing, KubeControlPlane
from tests.tools import skip_or_fail

pytestmark = pytest.mark.kube

GROUP = "smoke.supercluster.test"
PLURAL = "widgets"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "color": {"type": "string", "default": "blue"},
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def _tool(kube: KubeControlPlane, name: str) -> str:
    try:
        return str(kube.binary(name))
    except BinariesMissing as e:
        skip_or_fail(str(e))


def _run(kube: KubeControlPlane, *args: str) -> str:
    res = subprocess.run(
        list(args), env=kube.env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, f"{args} failed: {res.stderr}"
    return res.stdout


def test_server_version_and_health(kube: KubeControlPlane) -> None:
    status, body = kube.get("/readyz")
    assert (status, body) == (200, "ok")
    status, body = kube.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"].startswith("v1.")
    assert kube.startup_seconds > 0
    # authentication is on: an unknown token is rejected
    assert kube.get("/api", token="not-a-token")[0] == 401


def test_namespace_and_configmap(kube_client: ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    assert core.read_namespace(namespace).status.phase == "Active"
    core.create_namespaced_config_map(
        namespace,
        k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cfg"), data={"nats.conf": "port: 4222"}),
    )
    got = core.read_namespaced_config_map("cfg", namespace)
    assert got.data == {"nats.conf": "port: 4222"}
    assert got.metadata.uid and got.metadata.resource_version
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
    assert "cfg" in names
    # a conflicting create is rejected by the real API server
    with pytest.raises(k8s.ApiException) as exc:
        core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cfg"))
        )
    assert exc.value.status == 409


def _wait_established(ext: k8s.ApiextensionsV1Api, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conds = {c.type: c.status for c in (crd.status.conditions or [])}
        if conds.get("Established") == "True":
            return
        time.sleep(0.1)
    raise AssertionError(f"CRD {name} not Established after {timeout}s")


def test_crd_and_custom_object(kube_client: ApiClient, namespace: str) -> None:
    ext = k8s.ApiextensionsV1Api(kube_client)
    name = CRD["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(CRD)
    except k8s.ApiException as e:  # already there from an earlier test in this session
        assert e.status == 409
    _wait_established(ext, name)

    custom = k8s.CustomObjectsApi(kube_client)
    # discovery of a fresh CRD can lag a moment behind Established
    deadline = time.monotonic() + 30
    while True:
        try:
            created = custom.create_namespaced_custom_object(
                GROUP,
                "v1",
                namespace,
                PLURAL,
                {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"},
                 "spec": {"size": 3}},
            )  # fmt: skip
            break
        except k8s.ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert created["spec"] == {"size": 3, "color": "blue"}  # schema default applied

    got = custom.get_namespaced_custom_object(GROUP, "v1", namespace, PLURAL, "w1")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]

    # status subresource
    custom.patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, PLURAL, "w1", {"status": {"ready": True}}
    )
    assert custom.get_namespaced_custom_object(GROUP, "v1", namespace, PLURAL, "w1")["status"] == {
        "ready": True
    }

    # the CRD schema is enforced
    with pytest.raises(k8s.ApiException) as exc:
        custom.create_namespaced_custom_object(
            GROUP,
            "v1",
            namespace,
            PLURAL,
            {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "bad"},
             "spec": {"size": 0}},
        )  # fmt: skip
    assert exc.value.status == 422


def test_kubectl(kube: KubeControlPlane, namespace: str) -> None:
    kubectl = _tool(kube, "kubectl")
    out = _run(kube, kubectl, "get", "ns", "-o", "name")
    assert f"namespace/{namespace}" in out.split()
    assert "namespace/default" in out.split()
    out = _run(kube, kubectl, "-n", namespace, "create", "configmap", "from-kubectl",
               "--from-literal=a=b")  # fmt: skip
    data = json.loads(
        _run(kube, kubectl, "-n", namespace, "get", "cm", "from-kubectl", "-o", "json")
    )
    assert data["data"] == {"a": "b"}
    # explicit --kubeconfig works too (no KUBECONFIG in the environment)
    res = subprocess.run(
        [kubectl, "--kubeconfig", str(kube.kubeconfig), "auth", "can-i", "*", "*"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.stdout.strip() == "yes", res.stderr


def test_helm(kube: KubeControlPlane) -> None:
    helm = _tool(kube, "helm")
    out = _run(kube, helm, "version", "--short")
    assert out.strip().startswith("v"), out
    # helm talks to the API server: no releases yet
    out = _run(kube, helm, "list", "--all-namespaces", "-o", "json")
    assert json.loads(out) == []

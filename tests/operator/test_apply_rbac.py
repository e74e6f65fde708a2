"""Reconciling under the chart's default RBAC, and the config check's view of the server
container, without an API server: `prune` against a stub client whose Deployment list is
refused (the chart grants Deployments only with rbac.toolbox), and `_server_env` on a
StatefulSet whose pod template patch put a sidecar first."""

from __future__ import annotations

from typing import Any

import pytest

from scoperator.apply import CHILD_KINDS, ApplyCache, _server_env, prune
from scoperator.kube import KubeError


class StubClient:
    """Lists answer from `objects`; a kind in `refused` answers `status`."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]], refused: dict[str, int]) -> None:
        self.objects = objects
        self.refused = refused
        self.deleted: list[tuple[str, str]] = []

    async def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        if kind in self.refused:
            status = self.refused[kind]
            raise KubeError(status, "Forbidden" if status == 403 else "Error", "no", "GET", kind)
        return self.objects.get(kind, [])

    async def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        self.deleted.append((kind, name))
        return True


def _child(kind: str, name: str, owner: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "ownerReferences": [{"uid": owner, "controller": True}],
        },
    }


async def test_prune_goes_on_when_deployments_may_not_be_listed() -> None:
    stale = _child("Service", "a-gateway", "cluster-a")
    client = StubClient({"Service": [stale]}, {"Deployment": 403})
    pruned = await prune(client, ApplyCache(), "ns", "sc", set(), {"cluster-a"})  # type: ignore[arg-type]
    assert pruned == 1 and client.deleted == [("Service", "a-gateway")]
    assert "Deployment" in CHILD_KINDS


@pytest.mark.parametrize(("kind", "status"), [("Service", 403), ("Deployment", 500)])
async def test_other_refusals_still_fail_the_prune(kind: str, status: int) -> None:
    client = StubClient({}, {kind: status})
    with pytest.raises(KubeError):
        await prune(client, ApplyCache(), "ns", "sc", set(), {"cluster-a"})  # type: ignore[arg-type]


def test_server_env_is_read_from_the_server_container_by_name() -> None:
    sts = {
        "kind": "StatefulSet",
        "spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "env": [{"name": "SIDE", "value": "1"}]},
            {"name": "scserver", "env": [{"name": "GOMEMLIMIT", "value": "1GiB"},
                                         {"name": "POD_NAME", "valueFrom": {}}]},
        ]}}},
    }  # fmt: skip
    assert _server_env([sts]) == {"GOMEMLIMIT": "1GiB", "POD_NAME": "placeholder"}

"""pytest fixtures for a real control plane (register with
``pytest_plugins = ["tests.kube.fixtures"]`` in the root conftest).

- ``kube`` (session): a started :class:`KubeControlPlane` — ``.kubeconfig``, ``.api_client()``,
  ``.env()``, ``.token``, ``.server``. Skips when the binaries are missing, fails instead under
  CI (:func:`tests.tools.in_ci`).
- ``namespace`` (function): name of a fresh namespace, deleted after the test.
- ``kube_client`` (function): a ``kubernetes.client.ApiClient``, closed after the test.

Tests that use any of them get the ``kube`` marker automatically (``-m "not kube"`` skips them).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from tests.kube.apiserver import BinariesMissing, KubeControlPlane
from tests.tools import skip_or_fail

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

KUBE_FIXTURES = frozenset({"kube", "namespace", "kube_client"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if KUBE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kube)


# One control plane per process, shared even if these fixtures are registered twice (root
# conftest plugin + a sub-directory conftest importing them): reference-counted.
_shared: KubeControlPlane | None = None
_users = 0


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeControlPlane]:
    """One etcd + kube-apiserver for the whole session (set SC_KUBE_CONTROLLER_MANAGER=1 to also
    run kube-controller-manager: garbage collection, namespace deletion, ...)."""
    global _shared, _users
    if _shared is None:
        plane = KubeControlPlane(
            with_controller_manager=os.environ.get("SC_KUBE_CONTROLLER_MANAGER") == "1"
        )
        try:
            plane.start()
        except BinariesMissing as e:
            skip_or_fail(str(e))
        _shared = plane
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0 and _shared is not None:
            _shared.stop()
            _shared = None


@pytest.fixture
def kube_client(kube: KubeControlPlane) -> Iterator[ApiClient]:
    client = kube.api_client()
    try:
        yield client
    finally:
        client.close()


def _namespace_name(nodeid: str) -> str:
    test = nodeid.rsplit("::", 1)[-1]
    slug = re.sub(r"[^a-z0-9-]+", "-", test.lower()).strip("-")[:40].strip("-") or "t"
    return f"{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube: KubeControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards (without a controller manager
    it stays Terminating, which is harmless: names never repeat)."""
    from kubernetes import client as k8s

    name = _namespace_name(request.node.nodeid)
    with kube.api_client() as api:
        core = k8s.CoreV1Api(api)
        core.create_namespace(
            k8s.V1Namespace(
                metadata=k8s.V1ObjectMeta(name=name, labels={"supercluster.test/ns": "1"})
            )
        )
        try:
            yield name
        finally:
            try:
                core.delete_namespace(name)
            except k8s.ApiException as e:
                if e.status != 404:
                    raise

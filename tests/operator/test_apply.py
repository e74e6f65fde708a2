"""apply.py against a real API server, without kopf: SSA, owner references, pruning, caching.

`reconcile_supercluster` is called directly with our aiohttp client, so these tests show what one
reconcile does to the API, request by request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.kube.apiserver import KubeControlPlane
from tests.operator.test_operator_kube import GROUP, VERSION, crds  # noqa: F401 (fixture)

from scoperator.apply import (
    CONFIG_APPLIED_AT,
    CONFIG_HASH,
    ApplyCache,
    Coalescer,
    reconcile_supercluster,
    stamp_config,
)
from scoperator.kube import Credentials, KubeClient, KubeError


@pytest.fixture
async def client(kube: KubeControlPlane, crds: None) -> Any:  # noqa: F811
    async with KubeClient(Credentials.load(str(kube.kubeconfig))) as c:
        yield c


def _sc(name: str = "sc", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SuperCluster",
        "metadata": {"name": name},
        "spec": spec,
    }


def _cluster(name: str, sc: str = "sc", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"superCluster": sc, **spec},
    }


async def _create(client: KubeClient, ns: str, *docs: dict[str, Any]) -> None:
    for doc in docs:
        doc["metadata"]["namespace"] = ns
        await client.create(doc)


async def _versions(client: KubeClient, ns: str) -> dict[tuple[str, str], str]:
    out = {}
    for kind in ("ConfigMap", "Secret", "Service", "PodDisruptionBudget", "StatefulSet"):
        for obj in await client.list(kind, ns, "app.kubernetes.io/managed-by=scoperator"):
            out[(kind, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    return out


async def test_apply_is_idempotent_and_prunes(client: KubeClient, namespace: str) -> None:
    ns = namespace
    await _create(
        client,
        ns,
        _sc(),
        _cluster("a", gateway={"type": "NodePort"}),
        _cluster("b", replicas=2),
    )
    cache = ApplyCache()
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.outcome is not None and report.outcome.ok, report
    assert {n: o.ok for n, o in report.clusters.items()} == {"a": True, "b": True}
    # a: config, credentials, headless, client, gateway Service, PDB, StatefulSet; b: no
    # gateway Service (certificate and link-credential Secrets are written by pki.py)
    assert report.applied == 13 and report.unchanged == 0
    versions = await _versions(client, ns)
    assert ("Service", "a-gateway") in versions

    # again with the cache: no request at all for the objects
    before = client.requests
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert (report.applied, report.unchanged) == (0, 13)
    # reads: SuperCluster, Clusters, prune lists (9 kinds: with Deployment, Pod- and
    # ServiceMonitor, Certificate);
    # pki: credentials, CA and 2 certificate Secrets, then the credentials again for
    # rendering; no write
    assert client.requests - before <= 11 + 5
    # again without a cache (= after a restart): every object re-applied, none changed
    report = await reconcile_supercluster(client, ns, "sc", ApplyCache())
    assert report.applied == 13
    assert await _versions(client, ns) == versions

    # gateway exposure back to Headless: the gateway Service is pruned
    await client.merge_patch("Cluster", ns, "a", {"spec": {"gateway": {"type": "Headless"}}})
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.pruned == 1
    assert await client.get("Service", ns, "a-gateway") is None

    # objects not controlled by a member are never pruned, even with our labels
    stray = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "stray",
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/managed-by": "scoperator",
                "supercluster.dev/supercluster": "sc",
            },
        },
    }
    await client.create(stray)
    await reconcile_supercluster(client, ns, "sc", cache)
    assert await client.get("ConfigMap", ns, "stray") is not None


def test_stamp_config_keeps_the_time_while_the_data_is_unchanged() -> None:
    cm = {"kind": "ConfigMap", "metadata": {"name": "a-config"}, "data": {"f": "one"}}
    first, at = stamp_config(cm, None, "T1")
    assert at == "T1" and first["metadata"]["annotations"][CONFIG_APPLIED_AT] == "T1"
    assert "annotations" not in cm["metadata"]  # the input is not modified
    again, at2 = stamp_config(cm, first, "T2")
    assert (again, at2) == (first, "T1")  # same data: same object, a no-op apply
    changed, at3 = stamp_config({**cm, "data": {"f": "two"}}, first, "T3")
    assert at3 == "T3"
    assert (
        changed["metadata"]["annotations"][CONFIG_HASH]
        != first["metadata"]["annotations"][CONFIG_HASH]
    )
    # a live object from before the stamps existed: with other data, stamped now; with the
    # same data, stamped with the time our field manager applied it (servers loaded it then)
    ours = {"manager": "scoperator", "operation": "Apply", "time": "2026-01-02T03:04:05Z"}
    theirs = {"manager": "kubectl", "operation": "Update", "time": "2026-05-05T00:00:00Z"}
    legacy = {"metadata": {"annotations": {"x": "y"}, "managedFields": [ours, theirs]}}
    assert stamp_config(cm, {**legacy, "data": {"f": "old"}}, "T4")[1] == "T4"
    assert stamp_config(cm, {**legacy, "data": {"f": "one"}}, "T4")[1] == (
        "2026-01-02T03:04:05.000000Z"
    )
    assert stamp_config(cm, {"metadata": {}, "data": {"f": "one"}}, "T5")[1] == "T5"


async def _stamps(client: KubeClient, ns: str, kind: str, name: str) -> tuple[str, str]:
    obj = await client.get(kind, ns, name)
    assert obj is not None
    ann = obj["metadata"]["annotations"]
    return ann[CONFIG_HASH], ann[CONFIG_APPLIED_AT]


async def test_config_applied_time_moves_only_with_the_config(
    client: KubeClient, namespace: str
) -> None:
    ns = namespace
    users = [{"user": "u", "passwordSecretRef": {"name": "pw", "key": "p"}}]
    await _create(
        client,
        ns,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pw"},
            "stringData": {"p": "1"},
        },
        _sc(accounts=[{"name": "APP", "users": users}]),
        _cluster("a"),
        _cluster("b"),
    )
    cache = ApplyCache()
    report = await reconcile_supercluster(client, ns, "sc", cache)
    assert report.outcome is not None and report.outcome.ok, report
    cm0 = await _stamps(client, ns, "ConfigMap", "a-config")
    auth0 = await _stamps(client, ns, "Secret", "a-auth")
    assert report.clusters["a"].status["configAppliedTime"] == max(cm0[1], auth0[1])
    versions = await _versions(client, ns)

    # a restart (empty cache): the stamps are read back, nothing is rewritten
    report = await reconcile_supercluster(client, ns, "sc", ApplyCache())
    assert await _versions(client, ns) == versions
    assert report.clusters["a"].status["configAppliedTime"] == max(cm0[1], auth0[1])

    # a new password: only the credentials Secret gets a new time, and it is the latest
    await client.merge_patch("Secret", ns, "pw", {"stringData": {"p": "2"}})
    report = await reconcile_supercluster(client, ns, "sc", cache)
    auth1 = await _stamps(client, ns, "Secret", "a-auth")
    assert auth1[0] != auth0[0] and auth1[1] > auth0[1]
    assert await _stamps(client, ns, "ConfigMap", "a-config") == cm0
    assert report.clusters["a"].status["configAppliedTime"] == auth1[1]

    # scaling b changes every member's server config: a's ConfigMap time moves too
    await client.merge_patch("Cluster", ns, "b", {"spec": {"replicas": 2}})
    report = await reconcile_supercluster(client, ns, "sc", cache)
    cm1 = await _stamps(client, ns, "ConfigMap", "a-config")
    assert cm1[0] != cm0[0] and cm1[1] > auth1[1]
    assert report.clusters["a"].status["configAppliedTime"] == cm1[1]


async def test_ssa_takes_over_fields_and_reverts_drift(client: KubeClient, namespace: str) -> None:
    ns = namespace
    await _create(client, ns, _sc(), _cluster("a"))
    await reconcile_supercluster(client, ns, "sc", ApplyCache())
    # someone edits the config by hand (another field manager)
    await client.merge_patch("ConfigMap", ns, "a-config", {"data": {"scserver.conf": "x"}})
    await reconcile_supercluster(client, ns, "sc", ApplyCache())  # a resync
    cm = await client.get("ConfigMap", ns, "a-config")
    assert cm is not None and cm["data"]["scserver.conf"].startswith("# Server config")


async def test_kube_errors_are_typed(client: KubeClient, namespace: str) -> None:
    assert await client.get("ConfigMap", namespace, "nope") is None
    with pytest.raises(KubeError) as exc:
        await client.merge_patch("ConfigMap", namespace, "nope", {"data": {}})
    assert exc.value.not_found
    assert not await client.delete("ConfigMap", namespace, "nope")


async def test_coalescer_folds_concurrent_requests() -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    async def work(key: str) -> int:
        calls.append(key)
        await gate.wait()
        return calls.count(key)  # which run of this key this is

    async def until(pred) -> None:  # conditions, not clocks: yield until true
        for _ in range(10_000):
            if pred():
                return
            await asyncio.sleep(0)
        raise AssertionError("condition never became true")

    co = Coalescer(work)
    first = asyncio.create_task(co.request("x"))
    await until(lambda: calls == ["x"])  # the first run is busy
    # while the first run is busy, 20 more requests arrive: they share one more run
    rest = [asyncio.create_task(co.request("x")) for _ in range(20)]
    other = asyncio.create_task(co.request("y"))
    # tasks start in creation order: once y's run began, the 20 have made their requests
    await until(lambda: "y" in calls)
    gate.set()
    assert await first in (1, 2)  # its own run, or the newer one if that finished first
    assert await asyncio.gather(*rest) == [2] * 20  # all served by one second run
    assert await other == 1
    assert calls.count("x") == 2 and calls.count("y") == 1


async def test_coalescer_hands_errors_to_waiters() -> None:
    async def work(key: str) -> None:
        raise RuntimeError(f"boom {key}")

    co = Coalescer(work)
    with pytest.raises(RuntimeError, match="boom k"):
        await co.request("k")
    with pytest.raises(RuntimeError):  # and the next request runs again
        await co.request("k")
    assert co.runs == 2

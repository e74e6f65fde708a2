"""Small contracts of ``scoperator.render`` that the golden files leave open (``make mutate``).

Durations round up to whole seconds in every unit; monitoring is https only when client TLS
serves it; the client Service is a ClusterIP; manifests need the Kubernetes target and a
per-server target needs the ordinal, both refused with a message that says so.
"""

from __future__ import annotations

import pytest
from tests.operator.helpers import example_secrets, load_example, local_topology

from scoperator.naming import KubeTarget, Topology
from scoperator.render import (
    client_service,
    duration_seconds,
    monitor_scheme,
    render_member,
    render_server_config,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1ms", 1), ("1000ms", 1), ("1001ms", 2), ("2000ms", 2), ("2h", 7200), ("0s", 0), ("3m", 180)],
)
def test_durations_round_up_to_whole_seconds(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "1d", "1.5s", "", "s"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(ValueError, match=f"^bad duration {text!r}$"):
        duration_seconds(text)


def _kube(example: str) -> Topology:
    resources = load_example(example)
    (sc,) = resources.superclusters
    return Topology.build(sc, resources.members(sc), KubeTarget("ns"))


def test_monitoring_is_https_only_when_asked_for() -> None:
    resources = load_example("tls-clients.yaml")
    (sc,) = resources.superclusters
    t = Topology.build(sc, resources.members(sc), KubeTarget("ns"))
    name = t.clusters[0].name
    assert monitor_scheme(sc) == "https"
    assert 'https: "0.0.0.0:8222"' in render_server_config(t, name)
    sc.spec.tls.monitoring = "HTTP"  # client TLS stays on
    t = Topology.build(sc, resources.members(sc), KubeTarget("ns"))
    assert monitor_scheme(sc) == "http"
    config = render_server_config(t, name)
    assert 'http: "0.0.0.0:8222"' in config and "https:" not in config
    assert monitor_scheme(_kube("supercluster.yaml").supercluster) == "http"


def test_client_service_is_cluster_ip() -> None:
    t = _kube("supercluster.yaml")
    svc = client_service(t, t.clusters[0].name)
    assert svc["spec"]["type"] == "ClusterIP"


def test_manifests_need_the_kubernetes_target() -> None:
    local, members = local_topology("supercluster.yaml", 3)
    with pytest.raises(TypeError, match="^manifests are rendered for the Kubernetes target only$"):
        render_member(local, members[0].name, None)
    with pytest.raises(ValueError, match="^a per-server target needs the server ordinal$"):
        render_server_config(local, members[0].name)
    config = render_server_config(local, members[0].name, 0)
    assert "10000" in config


def test_render_member_renders_that_member_only() -> None:
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    t = Topology.build(sc, resources.members(sc), KubeTarget("ns"))
    name = t.clusters[0].name
    objs = render_member(t, name, example_secrets(resources))
    assert objs
    kinds = {o["kind"] for o in objs}
    assert {"StatefulSet", "Service"} <= kinds
    for o in objs:
        assert o["metadata"]["namespace"] == "ns"


def _sc_cl(pod: dict) -> tuple:
    from tests.operator.helpers import fixed_credentials

    from scoperator.models import Cluster, SuperCluster

    sc = SuperCluster.model_validate(
        {"metadata": {"name": "sc", "namespace": "ns"}, "spec": {"tls": {"mode": "Disabled"}}}
    )
    cl = Cluster.model_validate(
        {
            "metadata": {"name": "east", "namespace": "ns"},
            "spec": {"superCluster": "sc", "pod": pod},
        }
    )
    return sc, cl, fixed_credentials(sc.name)


def _statefulset(objects: list[dict]) -> dict:
    (sts,) = [o for o in objects if o["kind"] == "StatefulSet"]
    return sts


def test_init_containers_and_pod_annotations_reach_the_pod_template() -> None:
    from scoperator.render import render_supercluster

    sc, cl, secrets = _sc_cl(
        {"initContainers": [{"name": "init", "image": "busybox"}], "annotations": {"a": "1"}}
    )
    template = _statefulset(render_supercluster(sc, [cl], secrets)["east"])["spec"]["template"]
    assert template["spec"]["initContainers"] == [{"name": "init", "image": "busybox"}]
    assert template["metadata"]["annotations"] == {"a": "1"}
    sc, cl, secrets = _sc_cl({})
    plain = _statefulset(render_supercluster(sc, [cl], secrets)["east"])["spec"]["template"]
    assert "initContainers" not in plain["spec"]
    assert "annotations" not in plain["metadata"]


def test_cluster_domain_and_namespace_reach_the_addresses() -> None:
    from scoperator.render import render_cluster, render_supercluster

    sc, cl, secrets = _sc_cl({})
    objs = render_supercluster(sc, [cl], secrets, cluster_domain="corp.example")["east"]
    text = repr(objs)
    assert "svc.corp.example" in text and "cluster.local" not in text
    objs = render_cluster(sc, cl, [cl], None, secrets, cluster_domain="corp.example")
    assert all(o["metadata"]["namespace"] == "ns" for o in objs)
    assert "east-0.east-headless.ns.svc.corp.example" in repr(objs)
    other = render_cluster(sc, cl, [cl], "elsewhere", secrets)
    assert all(o["metadata"]["namespace"] == "elsewhere" for o in other)
    assert "east-headless.elsewhere.svc.cluster.local" in repr(other)


def test_kubernetes_configs_are_one_per_cluster() -> None:
    from scoperator.render import render_configs

    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    t = Topology.build(sc, resources.members(sc), KubeTarget("ns"))
    units = render_configs(t, example_secrets(resources))
    assert sorted(units) == sorted(c.name for c in t.clusters)
    for name, files in units.items():
        assert files["scserver.conf"] == render_server_config(t, name)


def test_certificate_ca_is_required_only_for_an_external_gateway_bundle() -> None:
    from scoperator.render import cert_secret, required_refs

    plain = _kube("supercluster.yaml")
    name = plain.clusters[0].name
    assert cert_secret(plain, name) is not None  # TLS is on
    assert all(r.key != "ca.crt" for r in required_refs(plain, name))
    ext = _kube("multi-kube.yaml")
    name = ext.clusters[0].name
    refs = [(r.name, r.key) for r in required_refs(ext, name)]
    assert (cert_secret(ext, name), "ca.crt") in refs


def test_external_gateway_urls_are_one_list() -> None:
    from scoperator.render import render_secret_files

    resources = load_example("multi-kube.yaml")
    (sc,) = resources.superclusters
    (gw,) = sc.spec.external_gateways
    gw.urls.append("nats://gw2.west.example.net:7222")
    t = Topology.build(sc, resources.members(sc), KubeTarget("ns"))
    files = render_secret_files(t, t.clusters[0].name, example_secrets(resources))
    (line,) = [
        ln for text in files.values() for ln in text.splitlines() if "GATEWAY_URLS_WEST" in ln
    ]
    assert line.count('", "') == 1 and line.endswith('@gw2.west.example.net:7222"]')

"""Certificate names, gateway seeds and topology errors of ``scoperator.naming``.

``make mutate`` found ``certificate_names`` exercised only by the process-level TLS tests; these
pin the SAN list in-process (every pod, a wildcard for pods added later, the Services in short,
namespaced and full forms, the advertised gateway host), the external gateways' flag, and the
errors that name what is missing.
"""

from __future__ import annotations

import pytest
from tests.operator.helpers import load_example, local_topology

from scoperator.models import Ports
from scoperator.naming import (
    KubeTarget,
    LocalTarget,
    Topology,
    TopologyError,
    certificate_names,
)


def _topology(example: str, namespace: str) -> Topology:
    resources = load_example(example)
    (sc,) = resources.superclusters
    return Topology.build(sc, resources.members(sc), KubeTarget(namespace))


def test_san_list_of_a_cluster_with_a_gateway_service_and_advertise() -> None:
    names = certificate_names(_topology("multi-kube.yaml", "nats"), "east")
    full = "nats.svc.cluster.local"
    assert names == [
        f"east-0.east-headless.{full}",
        f"east-1.east-headless.{full}",
        f"east-2.east-headless.{full}",
        f"*.east-headless.{full}",
        "east-headless",
        "east-headless.nats",
        "east-headless.nats.svc",
        f"east-headless.{full}",
        "east",
        "east.nats",
        "east.nats.svc",
        f"east.{full}",
        "east-gateway",
        "east-gateway.nats",
        "east-gateway.nats.svc",
        f"east-gateway.{full}",
        "gw.east.example.net",
    ]


def test_san_list_of_a_headless_gateway_cluster_has_no_gateway_service() -> None:
    names = certificate_names(_topology("supercluster.yaml", "demo"), "west")
    full = "demo.svc.cluster.local"
    assert names == [
        f"west-0.west-headless.{full}",
        f"*.west-headless.{full}",
        "west-headless",
        "west-headless.demo",
        "west-headless.demo.svc",
        f"west-headless.{full}",
        "west",
        "west.demo",
        "west.demo.svc",
        f"west.{full}",
    ]


def test_local_servers_are_named_by_their_loopback_host() -> None:
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    topology = Topology(sc, resources.members(sc), LocalTarget(host="127.0.0.9"))
    assert certificate_names(topology, "west") == ["127.0.0.9", "localhost"]


def test_external_gateways_are_marked_external() -> None:
    t = _topology("multi-kube.yaml", "nats")
    members = {c.name for c in t.clusters}
    seeds = t.gateways()
    assert seeds, "multi-kube has gateways"
    assert any(s.external for s in seeds), "multi-kube lists an external gateway"
    for s in seeds:
        assert s.external is (s.name not in members), s


def test_unknown_cluster_and_unallocated_local_ports_are_named() -> None:
    t = _topology("supercluster.yaml", "demo")
    with pytest.raises(
        TopologyError, match=rf"^nowhere is not a member of supercluster {t.supercluster.name}$"
    ):
        t.cluster("nowhere")
    with pytest.raises(TopologyError, match="^no local ports allocated for server west-0$"):
        LocalTarget().address("west", 0, Ports())


def test_local_cluster_endpoints_are_its_first_servers_urls() -> None:
    from scoperator.naming import cluster_endpoints

    topology, _ = local_topology("supercluster-3x3.yaml", 5)
    name = topology.clusters[0].name
    assert len(topology.servers(name)) > 1
    e = cluster_endpoints(topology, name)
    assert (e.client, e.gateway) == ("nats://127.0.0.1:10000", "nats://127.0.0.1:12000")

"""Mixed superclusters: nats-server and scserver in one supercluster, and in one cluster.

Clusters: ``G`` is two real nats-servers, ``M`` mixes an scserver and a nats-server over routes,
``S`` is two scservers. So one cluster is all nats-server while the others run scserver, and a
mixed cluster is joined to the others by gateways.
"""

from __future__ import annotations

import pytest
from tests.cluster.scenarios import (
    pubsub_every_pair,
    queue_once_local_preferred,
    request_reply_every_pair,
)
from tests.cluster.topology import GO, SC, Topology, running

pytestmark = pytest.mark.nats_server


@pytest.fixture(scope="module")
def mixed():
    with running({"G": [GO, GO], "M": [SC, GO], "S": [SC, SC]}) as topo:
        yield topo


def test_routes_and_gateway_counts(mixed: Topology) -> None:
    outbound_total = inbound_total = 0
    for node in mixed.nodes:
        peer = next(p for p in mixed.clusters[node.cluster] if p is not node)
        routez = node.get("/routez")
        names = {r["remote_name"] for r in routez["routes"]}
        assert peer.name in names, (node.name, routez["routes"])
        gwz = node.get("/gatewayz")
        assert set(gwz["outbound_gateways"]) == set(mixed.clusters) - {node.cluster}, node.name
        outbound_total += len(gwz["outbound_gateways"])
        inbound_total += sum(len(v) for v in gwz["inbound_gateways"].values())
    # sum Ni*(M-1) = 6*2, and the same number inbound
    assert outbound_total == 12
    assert inbound_total == 12
    for cl in mixed.clusters:
        assert mixed.inbound_by_remote(cl) == {o: 2 for o in mixed.clusters if o != cl}


async def test_pubsub_every_cluster_to_every_cluster(mixed: Topology) -> None:
    # publishers: nats-server in G and M, scserver in S; subscribers on the other server
    await pubsub_every_pair(mixed, ["G1", "M2", "S1"], ["G2", "M1", "S2"])
    await pubsub_every_pair(mixed, ["G2", "M1", "S2"], ["G1", "M2", "S1"])


async def test_request_reply_every_cluster_to_every_cluster(mixed: Topology) -> None:
    await request_reply_every_pair(mixed, ["G1", "M1", "S1"], ["G2", "M2", "S2"])
    await request_reply_every_pair(mixed, ["G2", "M2", "S2"], ["G1", "M1", "S1"])


@pytest.mark.parametrize("origin", ["G1", "M1", "M2", "S2"])
async def test_queue_once_and_local_cluster_preferred(mixed: Topology, origin: str) -> None:
    await queue_once_local_preferred(mixed, origin, n=60)

"""A remote cluster's gateway URLs follow its servers: the address of one that left is dropped.

East lists only west1 (its seed, as the operator renders one seed per cluster) and learns the
other west servers' gateway URLs from west's INFO. When west2 goes (a pod replaced in a
rolling update, with a new address), east must stop counting its URL: every later redial that
picks it waits a whole dial timeout for nobody, while the link to west is down.

nats-server replaces the discovered URLs with the remote's current list at every INFO on the
outbound link (``updateURLs``) and shows them in /varz ``gateway.gateways[].urls``; the test
runs the same steps against both implementations and against mixes.
"""

from __future__ import annotations

import pytest
from tests.cluster.topology import GO, SC, Topology, build, wait_until


def varz_urls(topo: Topology, name: str, remote: str) -> set[str]:
    gw = topo.node(name).get("/varz")["gateway"]
    return {u for g in gw.get("gateways") or [] if g["name"] == remote for u in g["urls"]}


def host_port(url: str) -> str:
    return url.split("://", 1)[-1]


@pytest.mark.parametrize(
    ("east", "west"),
    [(SC, SC), (GO, GO), (SC, GO), (GO, SC)],
    ids=["sc-sc", "go-go", "sc-east-go-west", "go-east-sc-west"],
)
def test_gone_server_url_is_dropped(east: str, west: str) -> None:
    topo = build({"east": [east], "west": [west, west]})
    west1, west2 = topo.node("west1"), topo.node("west2")
    # east's config names west1 only; the user in the URL must never show in /varz
    topo.gateway_view = {"east": ["east"]}
    topo.gateway_entries = {
        "east": [
            f'{{name: "west", urls: ["nats://someone:secret@{host_port(west1.gateway_url)}"]}}'
        ]
    }
    topo.start()
    try:
        topo.wait_ready(25)
        seed, other = host_port(west1.gateway_url), host_port(west2.gateway_url)
        wait_until(
            lambda: varz_urls(topo, "east1", "west") == {seed, other},
            15,
            "east1 listing both west servers' gateway URLs",
        )
        assert west2.proc is not None
        west2.proc.stop(timeout=10)
        wait_until(
            lambda: varz_urls(topo, "east1", "west") == {seed},
            15,
            "east1 dropping west2's URL (west's INFO no longer lists it)",
        )
        # ... and west1 stays linked both ways
        wait_until(
            lambda: "west" in (topo.node("east1").get("/gatewayz")["outbound_gateways"] or {}),
            15,
            "east1 linked to west",
        )
    finally:
        topo.stop()

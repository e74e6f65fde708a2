"""Gateways over mutual TLS (``gateway { tls {} }`` and per-remote ``gateways[].tls``).

As in nats-server, both ends start the TLS handshake right after the TCP connect (the accepting
side sends its INFO only once TLS is up), the dialler verifies the listener's certificate
against its CA and the URL host, and the listener requires and verifies the dialler's
certificate. A dialler uses the remote entry's own ``tls {}`` when it has one, else the
``gateway { tls {} }`` block (also for gateways learnt by gossip).
"""

from __future__ import annotations

import pytest
from tests.cluster.scenarios import pubsub_every_pair, request_reply_every_pair
from tests.cluster.topology import GO, SC, build, running
from tests.tls.link_certs import REASONS, Pki, make_pki
from tests.tls.link_probe import assert_refuses_plaintext_and_certless, started, wait_log
from tests.tools import LOOPBACK, wait_for

pytestmark = pytest.mark.nats_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("gateway-pki"))


def links(node) -> tuple[set[str], set[str]]:
    gwz = node.get("/gatewayz")
    return set(gwz.get("outbound_gateways") or {}), set(gwz.get("inbound_gateways") or {})


def tls_conn_fields(node) -> list[dict]:
    """The ``connection`` objects of every gateway link in /gatewayz."""
    gwz = node.get("/gatewayz")
    conns = [g["connection"] for g in (gwz.get("outbound_gateways") or {}).values()]
    for lst in (gwz.get("inbound_gateways") or {}).values():
        conns += [g["connection"] for g in lst]
    return conns


async def test_mutual_tls_gateways_sc_and_nats_server(pki: Pki) -> None:
    """scserver East and nats-server West, TLS gateways dialled both ways."""
    with running({"E": [SC], "W": [GO]}, gateway_extra={"*": pki.tls_block()}) as topo:
        east, west = topo.nodes
        assert links(east) == ({"W"}, {"W"})
        assert links(west) == ({"E"}, {"E"})
        await request_reply_every_pair(topo, ["E1"], ["W1"])
        await request_reply_every_pair(topo, ["W1"], ["E1"])
        await pubsub_every_pair(topo, ["E1", "W1"], ["W1", "E1"])
        go_conns, sc_conns = tls_conn_fields(west), tls_conn_fields(east)
        assert len(go_conns) == len(sc_conns) == 2
        go_tls = {k for c in go_conns for k in c if k.startswith("tls")}
        assert go_tls == {"tls_version", "tls_cipher_suite"}, go_conns
        for c in sc_conns:
            assert {k for k in c if k.startswith("tls")} == go_tls, c
            assert c["tls_version"] in ("1.2", "1.3"), c
            assert c["tls_cipher_suite"].startswith("TLS_"), c
        for node in topo.nodes:
            gw = node.get("/varz")["gateway"]
            assert gw.get("tls_required") is True and gw.get("tls_verify") is True, gw


async def test_mixed_supercluster_over_tls(pki: Pki) -> None:
    """Two scservers and two nats-servers, TLS on every route and gateway."""
    block = pki.tls_block()
    with running(
        {"E": [SC, GO], "W": [GO, SC]},
        gateway_extra={"*": block},
        cluster_extra={"*": block},
    ) as topo:
        await pubsub_every_pair(topo, ["E1", "W1"], ["W2", "E2"])
        await request_reply_every_pair(topo, ["E2", "W2"], ["W1", "E1"])


@pytest.mark.parametrize("other", [SC, GO])
async def test_per_remote_tls_overrides_gateway_tls(pki: Pki, other: str) -> None:
    """Each side trusts a different CA; each reaches the other with a per-remote tls block."""

    def entry(cluster: str, leaf: str, ca: str) -> str:
        port = topo.clusters[cluster][0].gateway_port
        tls = pki.tls_block(leaf=leaf, ca=ca)
        return f'{{name: "{cluster}", urls: ["nats://{LOOPBACK}:{port}"], {tls}}}'

    topo = build({"E": [SC], "W": [other]})
    topo.gateway_extra = {"E": pki.tls_block(), "W": pki.tls_block(leaf="other", ca="other-ca")}
    topo.gateway_view = {"E": ["E"], "W": ["W"]}
    topo.gateway_entries = {
        "E": [entry("W", "other", "other-ca")],
        "W": [entry("E", "good", "ca")],
    }
    topo.start()
    try:
        east, west = topo.nodes
        # (wait_ready does not know about the extra entries: wait for both links here)
        wait_for(
            lambda: links(east) == ({"W"}, {"W"}) and links(west) == ({"E"}, {"E"}),
            20,
            0.1,
            f"gateway links\n{topo.logs()}",
        )
        await request_reply_every_pair(topo, ["E1"], ["W1"])
        await request_reply_every_pair(topo, ["W1"], ["E1"])
    finally:
        topo.stop()


@pytest.mark.parametrize("peer", [SC, GO])
@pytest.mark.parametrize("bad", ["other", "expired"])
def test_bad_certificate_gets_no_gateway(pki: Pki, peer: str, bad: str) -> None:
    topo = started(
        {"E": [SC], "W": [peer]},
        gateway_extra={"E": pki.tls_block(), "W": pki.tls_block(leaf=bad)},
    )
    try:
        east, west = topo.nodes
        # East refuses West's certificate as a dialler and as a listener.
        wait_log(east, r"TLS gateway handshake error: .*(" + REASONS[bad] + ")")
        wait_for(lambda: east.log().count("TLS gateway handshake error") >= 2, 8, 0.1, "both")
        if peer == SC:
            wait_log(west, r"TLS gateway error: peer (rejected our certificate|closed the link)")
        assert links(east) == (set(), set())
        assert links(west) == (set(), set())
    finally:
        topo.stop()


@pytest.mark.parametrize("peer", [SC, GO])
def test_wrong_san_refused_by_dialler(pki: Pki, peer: str) -> None:
    topo = started(
        {"E": [SC], "W": [peer]},
        gateway_extra={"E": pki.tls_block(), "W": pki.tls_block(leaf="wrongsan")},
        gateway_view={"E": ["E", "W"], "W": ["W"]},
    )
    try:
        east, west = topo.nodes
        wait_log(east, r"TLS gateway handshake error: .*(" + REASONS["wrongsan"] + ")")
        assert links(east) == (set(), set())
        assert links(west) == (set(), set())
    finally:
        topo.stop()


def test_plaintext_nats_server_gets_no_gateway(pki: Pki) -> None:
    """nats-server West without gateway TLS: East's TLS listener and dialler refuse it."""
    topo = started({"E": [SC], "W": [GO]}, gateway_extra={"E": pki.tls_block()})
    try:
        east, west = topo.nodes
        wait_log(east, r"TLS gateway handshake error")
        wait_for(lambda: east.log().count("TLS gateway handshake error") >= 2, 10, 0.1, "both")
        assert links(east) == (set(), set())
        assert links(west) == (set(), set())
    finally:
        topo.stop()


def test_raw_plaintext_and_certless_clients_refused(pki: Pki) -> None:
    topo = started({"E": [SC]}, gateway_extra={"*": pki.tls_block()})
    try:
        (east,) = topo.nodes
        assert_refuses_plaintext_and_certless(
            east, east.gateway_port, pki, "gateway", b'CONNECT {"gateway":"W","name":"x"}\r\n'
        )
        assert links(east) == (set(), set())
    finally:
        topo.stop()


@pytest.mark.parametrize("verifier", [SC, GO])
@pytest.mark.parametrize("leaf", ["good", "wrongsan"])
def test_check_known_urls(pki: Pki, verifier: str, leaf: str) -> None:
    """``verify_cert_and_check_known_urls`` on East: West's DNS SAN must name the host of one
    of East's remote gateway URLs (here ``localhost``)."""
    topo = build({"E": [verifier], "W": [SC]})
    topo.gateway_extra = {
        "E": pki.tls_block(extra="verify_cert_and_check_known_urls: true"),
        "W": pki.tls_block(leaf=leaf),
    }
    topo.gateway_view = {"E": ["E"], "W": ["W", "E"]}
    topo.gateway_entries = {"E": ['{name: "W", urls: ["nats://localhost:1"]}']}
    topo.start()
    try:
        east, west = topo.nodes
        if leaf == "good":
            wait_for(lambda: links(east)[1] == {"W"}, 10, 0.1, f"inbound\n{topo.logs()}")
        else:
            wait_log(east, r"[Aa]uthentication error")
            assert links(east)[1] == set()
            assert links(west)[0] == set()
    finally:
        topo.stop()


async def test_gossiped_gateways_dial_with_the_gateway_tls_block(pki: Pki) -> None:
    """C lists only E; W and C learn of each other by gossip and link over TLS anyway, with
    the ``gateway { tls {} }`` block (an implicit remote has no entry of its own)."""
    topo = build({"E": [SC], "W": [GO], "C": [SC]})
    topo.gateway_extra = {"*": pki.tls_block()}
    topo.gateway_view = {"E": ["E", "W", "C"], "W": ["W", "E"], "C": ["C", "E"]}
    topo.start()
    try:
        nodes = {n.cluster: n for n in topo.nodes}

        def meshed() -> bool:
            return all(
                links(n) == (set(nodes) - {cl}, set(nodes) - {cl}) for cl, n in nodes.items()
            )

        wait_for(meshed, 20, 0.2, f"full gateway mesh\n{topo.logs()}")
        for n in (nodes["C"], nodes["W"]):
            for c in tls_conn_fields(n):
                assert c.get("tls_version") in ("1.2", "1.3"), (n.name, c)
        await request_reply_every_pair(topo, ["C1"], ["W1"])
        await request_reply_every_pair(topo, ["W1"], ["C1"])
    finally:
        topo.stop()

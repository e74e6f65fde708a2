"""Routes over mutual TLS (``cluster { tls {} }``), scserver alone and mixed with nats-server.

nats-server's order on a TLS route: the TLS handshake starts right after the TCP connect, before
either side writes INFO or CONNECT; the dialler verifies the listener's certificate against
``ca_file`` and the URL's host (IP SAN for 127.0.0.1), and the listener always requires and
verifies the dialler's certificate. A failure is logged as ``TLS route handshake error: <why>``
and no route is made; a wrong SAN only fails the direction where the wrong-SAN server is dialled.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from tests.cluster.scenarios import pubsub_every_pair
from tests.cluster.topology import GO, SC, running
from tests.tls.link_certs import REASONS, Pki, make_pki
from tests.tls.link_probe import assert_refuses_plaintext_and_certless, started, wait_log
from tests.tools import LOOPBACK, wait_for

pytestmark = pytest.mark.nats_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("route-pki"))


def route_names(node) -> set[str]:
    return {r.get("remote_name") for r in node.get("/routez").get("routes") or []}


async def test_sc_cluster_over_tls_routes(pki: Pki) -> None:
    with running({"A": [SC, SC, SC]}, cluster_extra={"*": pki.tls_block()}) as topo:
        for node in topo.nodes:
            assert route_names(node) == {p.name for p in topo.nodes if p is not node}
            varz = node.get("/varz")
            assert varz["cluster"].get("tls_required") is True, varz["cluster"]
            assert varz["cluster"].get("tls_verify") is True, varz["cluster"]
        await pubsub_every_pair(topo, ["A1", "A2"], ["A3", "A2"])


@pytest.mark.parametrize("dialler", [SC, GO])
async def test_mixed_cluster_over_tls_routes(pki: Pki, dialler: str) -> None:
    """scserver and nats-server in one cluster; only ``dialler`` lists the other's route."""
    impls = [SC, GO] if dialler == SC else [GO, SC]
    with running(
        {"A": impls},
        cluster_extra={"*": pki.tls_block()},
        route_view={"A1": ["A2"], "A2": []},
    ) as topo:
        a1, a2 = topo.nodes
        assert a2.name in route_names(a1)
        routez = a1.get("/routez")["routes"]
        assert all(r["did_solicit"] for r in routez if r["remote_name"] == "A2")
        await pubsub_every_pair(topo, ["A1", "A2"], ["A2", "A1"])
        # nats-server's /routez has no TLS fields; neither has ours.
        for node in topo.nodes:
            for r in node.get("/routez")["routes"]:
                assert not [k for k in r if k.startswith("tls")], (node.name, r)


@pytest.mark.parametrize("verifier", [SC, GO])
@pytest.mark.parametrize("bad", ["other", "expired"])
def test_bad_peer_certificate_gets_no_route(pki: Pki, verifier: str, bad: str) -> None:
    """A peer whose certificate does not verify gets no route, whoever dials."""
    topo = started(
        {"A": [verifier, SC]},
        cluster_extra={"A1": pki.tls_block(), "A2": pki.tls_block(leaf=bad)},
    )
    try:
        a1, a2 = topo.nodes
        wait_log(a1, r"TLS route handshake error: .*(" + REASONS[bad] + ")")
        # The refused scserver dialler hears why too (TLS 1.3: an alert after its handshake).
        wait_log(a2, r"TLS route error: peer (rejected our certificate|closed the link)")
        assert route_names(a1) == set(), a1.get("/routez")
        assert route_names(a2) == set(), a2.get("/routez")
    finally:
        topo.stop()


@pytest.mark.parametrize("verifier", [SC, GO])
def test_wrong_san_refused_by_dialler(pki: Pki, verifier: str) -> None:
    """The dialler checks the listener's SAN against the URL host (127.0.0.1)."""
    topo = started(
        {"A": [verifier, SC]},
        cluster_extra={"A1": pki.tls_block(), "A2": pki.tls_block(leaf="wrongsan")},
        route_view={"A1": ["A2"], "A2": []},
    )
    try:
        a1, a2 = topo.nodes
        wait_log(a1, r"TLS route handshake error: .*(" + REASONS["wrongsan"] + ")")
        assert route_names(a1) == set()
        assert route_names(a2) == set()
    finally:
        topo.stop()


def test_sc_refuses_plaintext_and_certless_peers(pki: Pki) -> None:
    """Nothing is written before the handshake; a plaintext CONNECT or a TLS client without a
    certificate is refused with a log line, and no route appears."""
    topo = started({"A": [SC]}, cluster_extra={"*": pki.tls_block()})
    try:
        (a1,) = topo.nodes
        assert_refuses_plaintext_and_certless(
            a1,
            a1.cluster_port,
            pki,
            "route",
            b'CONNECT {"verbose":false,"name":"x"}\r\nINFO {"id":"x"}\r\n',
            timeout=3,
        )
        assert route_names(a1) == set()
    finally:
        topo.stop()


def test_plaintext_nats_server_gets_no_route(pki: Pki) -> None:
    """A nats-server without cluster TLS cannot join an scserver whose routes need TLS."""
    topo = started({"A": [SC, GO]}, cluster_extra={"A1": pki.tls_block()})
    try:
        a1, a2 = topo.nodes
        wait_log(a1, r"TLS route handshake error")
        assert route_names(a1) == set()
        assert route_names(a2) == set()
    finally:
        topo.stop()


def test_tls_block_without_usable_files_is_a_config_error(pki: Pki, tmp_path: Path) -> None:
    """A route TLS config that cannot be loaded refuses to start (no plaintext fallback)."""
    from tests.tools import ServerProcess, free_ports, scserver_command

    port, cport = free_ports(2)
    conf = (
        f'listen: "{LOOPBACK}:{port}"\n'
        f'cluster {{ name: A, listen: "{LOOPBACK}:{cport}"\n'
        f'  tls {{ cert_file: "{tmp_path / "missing.pem"}", key_file: "{pki.path("good.key")}",'
        f' ca_file: "{pki.path("ca.pem")}" }}\n}}\n'
    )
    proc = ServerProcess(scserver_command(), config=conf, name="badtls", port=port)
    proc.start(wait=False)
    try:
        assert proc.proc is not None
        rc = proc.proc.wait(timeout=15)
        assert rc != 0
        assert "missing.pem" in proc.log_text(), proc.log_text()
    finally:
        proc.kill()


@pytest.mark.parametrize(
    "text",
    [
        'cluster { name: A, listen: "127.0.0.1:-1", routes: ["tls://127.0.0.1:7999"] }',
        'gateway { name: A, listen: "127.0.0.1:-1", '
        'gateways: [{name: B, urls: ["tls://127.0.0.1:7998"]}] }',
    ],
)
def test_tls_url_without_tls_block_is_refused(text: str) -> None:
    """nats-server ignores the scheme and would dial a tls:// URL in plaintext; we refuse."""
    from scserver.conf import ConfigError, parse_string
    from scserver.options import from_dict

    with pytest.raises(ConfigError) as info:
        from_dict(parse_string(text, "t.conf", env={}), source="t.conf")
    msg = str(info.value)
    assert "t.conf:1" in msg and "tls://" in msg and "tls {} block" in msg, msg


def test_info_comes_after_the_handshake_and_says_tls(pki: Pki) -> None:
    """A peer with a good certificate gets INFO only inside TLS, with tls_required/tls_verify."""
    import json

    topo = started({"A": [SC]}, cluster_extra={"*": pki.tls_block()})
    try:
        (a1,) = topo.nodes
        ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
        ctx.load_cert_chain(pki.path("good.pem"), pki.path("good.key"))
        with (
            socket.create_connection((LOOPBACK, a1.cluster_port), timeout=3) as raw,
            ctx.wrap_socket(raw, server_hostname=LOOPBACK) as s,
        ):
            line = b""
            while not line.endswith(b"\r\n"):
                line += s.recv(1)
            assert line.startswith(b"INFO "), line
            info = json.loads(line[5:])
            assert info["tls_required"] is True and info["tls_verify"] is True, info
    finally:
        topo.stop()


@pytest.mark.parametrize("peer", [SC, GO])
def test_insecure_dialler_skips_the_san_check(pki: Pki, peer: str) -> None:
    """``insecure: true`` (links only) dials a wrong-SAN peer anyway, with nats-server's warning;
    the peer still verifies the dialler's certificate."""
    with running(
        {"A": [SC, peer]},
        cluster_extra={
            "A1": pki.tls_block(extra="insecure: true"),
            "A2": pki.tls_block(leaf="wrongsan"),
        },
        route_view={"A1": ["A2"], "A2": []},
    ) as topo:
        a1, a2 = topo.nodes
        assert route_names(a1) == {"A2"}
        assert "will not be verified" in a1.log(), a1.log()[-2000:]


@pytest.mark.parametrize("verifier", [SC, GO])
@pytest.mark.parametrize("leaf", ["good", "wrongsan"])
def test_check_known_urls(pki: Pki, verifier: str, leaf: str) -> None:
    """``verify_cert_and_check_known_urls``: the dialler's DNS SAN must name the host of one of
    the listener's route URLs (here ``localhost``); ``wrongsan`` names none."""
    topo = started(
        {"A": [verifier, SC]},
        cluster_extra={
            "A1": pki.tls_block(extra="verify_cert_and_check_known_urls: true")
            + '\n  routes: ["nats-route://localhost:1"]',
            "A2": pki.tls_block(leaf=leaf),
        },
        route_view={"A1": [], "A2": ["A1"]},
    )
    try:
        a1, a2 = topo.nodes
        if leaf == "good":
            wait_for(lambda: route_names(a1) == {"A2"}, 10, 0.1, "route")
        else:
            wait_log(a1, r"[Aa]uthentication error")
            assert route_names(a1) == set()
            assert route_names(a2) == set()
    finally:
        topo.stop()


@pytest.mark.parametrize("verifier", [SC, GO])
@pytest.mark.parametrize("user", ["localhost", "nobody"])
def test_verify_and_map_authorizes_by_certificate(pki: Pki, verifier: str, user: str) -> None:
    """``verify_and_map`` on a route listener: an identity of the dialler's certificate (its DNS
    SAN ``localhost`` here) must equal the cluster user; no password is asked for."""
    topo = started(
        {"A": [verifier, SC]},
        cluster_extra={
            "A1": pki.tls_block(extra="verify_and_map: true")
            + f'\n  authorization {{ user: "{user}", password: "unused" }}',
            "A2": pki.tls_block(),
        },
        route_view={"A1": [], "A2": ["A1"]},
    )
    try:
        a1, a2 = topo.nodes
        if user == "localhost":
            wait_for(lambda: route_names(a1) == {"A2"}, 10, 0.1, "route")
        else:
            wait_log(a1, r"[Aa]uthentication error")
            assert route_names(a1) == set()
    finally:
        topo.stop()


@pytest.mark.parametrize("pinned", ["good", "other"])
def test_pinned_certs(pki: Pki, pinned: str) -> None:
    """``pinned_certs``: only peers whose key is listed get a route (both directions)."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(Path(pki.path(pinned + ".pem")).read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = hashlib.sha256(spki).hexdigest()
    topo = started(
        {"A": [SC, SC]},
        cluster_extra={
            "A1": pki.tls_block(extra=f'pinned_certs: ["{pin}"]'),
            "A2": pki.tls_block(),
        },
    )
    try:
        a1, a2 = topo.nodes
        if pinned == "good":
            wait_for(lambda: route_names(a1) == {"A2"}, 10, 0.1, "route")
        else:
            wait_log(a1, r"not pinned")
            assert route_names(a1) == set()
            assert route_names(a2) == set()
    finally:
        topo.stop()

"""Link TLS changed by a config reload (scserver.link_reload, link_tls.required).

What nats-server does, and so the choices here:

* ``cluster { tls {} }`` added by a reload: nats-server applies it to new routes and keeps the
  established plaintext ones. ``gateway { tls {} }`` added: nats-server refuses the reload
  ("config reload not supported for Gateway"; only a gateway's TLS *files* may change).
  scserver applies both (it applies gateway changes in general) and closes the established
  plaintext links the new config says must be TLS: both sides dial again, over TLS only, so
  nothing runs in plaintext that the loaded config says must be TLS.
* Certificate files rotated in place + reload: new links use the new certificate, established
  links stay (nats-server does the same: its listeners and dialers take the reloaded TLS config;
  the test runs against both).

Certificates are made at test time (tests/tls/link_certs.py). The rotation trusts a bundle of two
CAs, so that the old and the new leaf verify at both ends while links of both generations live.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from tests.cluster.scenarios import pubsub_every_pair
from tests.cluster.topology import GO, SC, Node, Topology, build
from tests.tls.link_certs import Pki, make_pki
from tests.tools import LOOPBACK, read_info, wait_for

pytestmark = pytest.mark.nats_server


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    return make_pki(tmp_path_factory.mktemp("pki-1")), make_pki(tmp_path_factory.mktemp("pki-2"))


class LiveCerts:
    """The files a config names: a leaf that can be replaced in place, and both CAs."""

    def __init__(self, root: Path, first: Pki, second: Pki) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "ca.pem").write_text(
            Path(first.path("ca.pem")).read_text() + Path(second.path("ca.pem")).read_text()
        )
        self.use(first)

    def use(self, pki: Pki) -> None:
        """Copy ``pki``'s good leaf over the live files (a Secret rotated under a pod)."""
        for ext in ("pem", "key"):
            shutil.copyfile(pki.path(f"good.{ext}"), self.root / f"cert.{ext}")

    def tls_block(self) -> str:
        return (
            f'tls {{ cert_file: "{self.root / "cert.pem"}", key_file: "{self.root / "cert.key"}",'
            f' ca_file: "{self.root / "ca.pem"}", timeout: 2 }}'
        )


def _gw_conns(node: Node) -> list[dict]:
    gwz = node.get("/gatewayz")
    conns = [g["connection"] for g in (gwz.get("outbound_gateways") or {}).values()]
    for lst in (gwz.get("inbound_gateways") or {}).values():
        conns += [g["connection"] for g in lst]
    return conns


def _all_tls(node: Node, want: int) -> bool:
    conns = _gw_conns(node)
    return len(conns) == want and all(c.get("tls_version") for c in conns)


def _sighup(topo: Topology, node: Node) -> None:
    before = node.log().count("Reloaded server configuration")
    topo.write_config(node)
    assert node.proc is not None
    node.proc.signal(signal.SIGHUP)
    wait_for(
        lambda: (
            node.log().count("Reloaded server configuration") > before
            or "Failed to reload" in node.log()
        ),
        10,
        0.05,
        f"{node.name} reloaded",
    )
    assert "Failed to reload" not in node.log(), node.log()[-2000:]


def _refusals(node: Node, kind: str) -> int:
    """TLS handshakes of a ``kind`` link (route, gateway) ``node`` has refused (its log)."""
    return len(re.findall(rf"TLS {kind} handshake error", node.log()))


async def test_gateway_tls_turned_on_by_reload(pkis: tuple[Pki, Pki], tmp_path: Path) -> None:
    """A and B run plaintext gateways; `gateway { tls {} }` is added to both files. Once A has
    reloaded, none of A's gateway links is plaintext (B, not reloaded yet, cannot link); once
    B has too, both links run TLS and carry messages both ways."""
    live = LiveCerts(tmp_path / "certs", *pkis)
    topo = build({"A": [SC], "B": [SC]}, workdir=tmp_path / "topo")
    topo.env = {"SCSERVER_WATCH_INTERVAL": "3600"}  # reload on SIGHUP only
    topo.start()
    try:
        topo.wait_ready(20)
        a, b = topo.nodes
        assert not any(c.get("tls_version") for c in _gw_conns(a))

        topo.gateway_extra = {"*": live.tls_block()}
        _sighup(topo, a)
        # B keeps dialling in plaintext and is refused: no plaintext link on A at any check
        # until A has refused B twice (its log), instead of for a fixed 2.5 s
        refused = _refusals(a, "gateway")
        plain_seen: list[Any] = []

        def refused_twice() -> bool:
            plain_seen.extend(c for c in _gw_conns(a) if not c.get("tls_version"))
            return _refusals(a, "gateway") >= refused + 2

        wait_for(refused_twice, 30, 0.05, "two refusals of B's plaintext dial")
        assert not plain_seen, plain_seen
        assert "closing plaintext gateway link, the configuration now requires TLS" in a.log()

        _sighup(topo, b)
        wait_for(lambda: _all_tls(a, 2) and _all_tls(b, 2), 20, 0.1, "TLS gateways A <-> B")
        await pubsub_every_pair(topo, ["A1", "B1"], ["B1", "A1"])
        for node in (a, b):
            gw = node.get("/varz")["gateway"]
            assert gw.get("tls_required") is True, gw
    finally:
        topo.stop()


async def test_route_tls_turned_on_by_reload(pkis: tuple[Pki, Pki], tmp_path: Path) -> None:
    """The same for routes: A1 reloaded with `cluster { tls {} }` drops its plaintext route
    and takes none from A2 until A2 has TLS too; then the route is back."""
    live = LiveCerts(tmp_path / "certs", *pkis)
    topo = build({"A": [SC, SC]}, workdir=tmp_path / "topo")
    topo.env = {"SCSERVER_WATCH_INTERVAL": "3600"}
    topo.start()
    try:
        topo.wait_ready(20)
        a1, a2 = topo.nodes

        def routes(node: Node) -> int:
            return int(node.get("/routez")["num_routes"])

        topo.cluster_extra = {"*": live.tls_block()}
        _sighup(topo, a1)
        wait_for(lambda: routes(a1) == 0, 10, 0.05, "A1 closes its plaintext route")
        # A2 keeps dialling in plaintext: no route on A1 at any check until A1 has refused it
        # twice more (its log), instead of for a fixed 2 s
        refused = _refusals(a1, "route")
        route_seen: list[Any] = []

        def refused_twice() -> bool:
            if routes(a1) != 0:
                route_seen.append(a1.get("/routez"))
            return _refusals(a1, "route") >= refused + 2

        wait_for(refused_twice, 30, 0.05, "two refusals of A2's plaintext dial")
        assert not route_seen, route_seen
        assert "closing plaintext route link, the configuration now requires TLS" in a1.log()

        _sighup(topo, a2)
        wait_for(lambda: routes(a1) == 1 and routes(a2) == 1, 20, 0.1, "route over TLS")
        await pubsub_every_pair(topo, ["A1", "A2"], ["A2", "A1"])
    finally:
        topo.stop()


def _served_cert(port: int, live: LiveCerts) -> x509.Certificate:
    """The certificate a gateway listener presents to a new link (we show the live leaf)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(live.root / "ca.pem"))
    ctx.load_cert_chain(str(live.root / "cert.pem"), str(live.root / "cert.key"))
    raw = socket.create_connection((LOOPBACK, port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _leaf_serial(pki: Pki) -> int:
    return x509.load_pem_x509_certificate(Path(pki.path("good.pem")).read_bytes()).serial_number


@pytest.mark.parametrize("impl", [SC, GO])
async def test_gateway_certificate_rotation(
    pkis: tuple[Pki, Pki], tmp_path: Path, impl: str
) -> None:
    """New leaf files + SIGHUP on A: a new link to A's gateway port gets the new certificate;
    the established links stay (same connection ids) and keep carrying messages."""
    first, second = pkis
    live = LiveCerts(tmp_path / "certs", first, second)
    topo = build({"A": [impl], "B": [SC]}, workdir=tmp_path / "topo")
    topo.env = {"SCSERVER_WATCH_INTERVAL": "3600"}
    topo.gateway_extra = {"*": live.tls_block()}
    topo.start()
    try:
        topo.wait_ready(20)
        a, b = topo.nodes
        wait_for(lambda: _all_tls(a, 2) and _all_tls(b, 2), 20, 0.1, "TLS gateways")
        cids = sorted(c["cid"] for c in _gw_conns(a))
        assert _served_cert(a.gateway_port, live).serial_number == _leaf_serial(first)

        live.use(second)
        _sighup(topo, a)
        assert _served_cert(a.gateway_port, live).serial_number == _leaf_serial(second)
        assert sorted(c["cid"] for c in _gw_conns(a)) == cids, a.get("/gatewayz")
        await pubsub_every_pair(topo, ["A1", "B1"], ["B1", "A1"])
    finally:
        topo.stop()


async def test_gateway_tls_turned_off_by_reload(pkis: tuple[Pki, Pki], tmp_path: Path) -> None:
    """TLS removed from both files: the established TLS links stay (nothing asks for less
    security on them) and carry messages; a new link to A is offered plaintext (INFO first)."""
    live = LiveCerts(tmp_path / "certs", *pkis)
    topo = build({"A": [SC], "B": [SC]}, workdir=tmp_path / "topo")
    topo.env = {"SCSERVER_WATCH_INTERVAL": "3600"}
    topo.gateway_extra = {"*": live.tls_block()}
    topo.start()
    try:
        topo.wait_ready(20)
        a, b = topo.nodes
        wait_for(lambda: _all_tls(a, 2) and _all_tls(b, 2), 20, 0.1, "TLS gateways")
        cids = sorted(c["cid"] for c in _gw_conns(a))
        with pytest.raises(OSError):
            read_info(LOOPBACK, a.gateway_port)  # a TLS listener writes nothing first

        topo.gateway_extra = {}
        _sighup(topo, a)
        _sighup(topo, b)
        assert read_info(LOOPBACK, a.gateway_port)["gateway"] == "A"
        assert sorted(c["cid"] for c in _gw_conns(a)) == cids
        assert _all_tls(a, 2) and _all_tls(b, 2)
        await pubsub_every_pair(topo, ["A1", "B1"], ["B1", "A1"])
    finally:
        topo.stop()


def test_link_tls_that_cannot_load_refuses_the_reload(tmp_path: Path) -> None:
    """`gateway { tls {} }` naming a missing certificate: the reload is refused with the file
    named, and the running config (links, their connection ids) is kept as it was."""
    topo = build({"A": [SC], "B": [SC]}, workdir=tmp_path / "topo")
    topo.env = {"SCSERVER_WATCH_INTERVAL": "3600"}
    topo.start()
    try:
        topo.wait_ready(20)
        a, _ = topo.nodes
        cids = sorted(c["cid"] for c in _gw_conns(a))
        missing = tmp_path / "missing.pem"
        topo.gateway_extra = {
            "A": f'tls {{ cert_file: "{missing}", key_file: "{missing}", ca_file: "{missing}" }}'
        }
        topo.write_config(a)
        assert a.proc is not None
        a.proc.signal(signal.SIGHUP)
        wait_for(lambda: "Failed to reload" in a.log(), 10, 0.05, "refusal")
        line = next(x for x in a.log().splitlines() if "Failed to reload" in x)
        assert "missing.pem" in line, line
        assert "Reloaded server configuration" not in a.log()
        assert sorted(c["cid"] for c in _gw_conns(a)) == cids
    finally:
        topo.stop()

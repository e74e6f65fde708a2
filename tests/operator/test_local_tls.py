"""Secure links on loopback: the rendered TLS and credentials run by real servers.

- `scoperator local` (what `make demo` runs) over mutual-TLS routes and gateways with link
  credentials, with nats-server and with scserver;
- two "sites" (two SuperCluster renderings, each with its own CA and credentials) joined by
  external gateways with the other side's CA bundle and gateway credentials copied over, as
  docs/multi-kube.md describes.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.operator.helpers import EXAMPLES, load_example
from tests.tools import free_port, nats_server_binary, require_binary, scserver_command, wait_for

from scoperator import certs, links
from scoperator.local import LocalSupercluster, run_demo, server_tls_problem
from scoperator.models import Cluster, ExternalGateway, SuperCluster
from scoperator.naming import credentials_secret_name

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nats_server() -> list[str]:
    return [str(require_binary(nats_server_binary(), "nats-server not installed"))]


def tls_info(port: int, ca: certs.KeyPair, tmp: Path) -> dict:
    """The INFO a route or gateway port sends after a mutual-TLS handshake (TLS comes first on
    these ports), with a client certificate of `ca`."""
    import ssl

    now = datetime.datetime.now(datetime.UTC)
    pair = certs.make_server_cert(ca, "probe", ["127.0.0.1"], now, datetime.timedelta(hours=1))
    (tmp / "probe.crt").write_text(pair.cert_pem)
    (tmp / "probe.key").write_text(pair.key_pem)
    ctx = ssl.create_default_context(cadata=ca.cert_pem)
    ctx.load_cert_chain(tmp / "probe.crt", tmp / "probe.key")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].decode()
    assert line.startswith("INFO "), line
    return dict(json.loads(line[5:]))


def plaintext_gets_nothing(port: int) -> bool:
    """A plaintext peer is not talked to: no INFO, the server waits for a TLS handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(0.5)
        try:
            return sock.recv(100) == b""
        except TimeoutError:
            return True


def assert_secure_links(local: LocalSupercluster, tmp: Path) -> None:
    assert local.ca is not None
    for server in local.servers:
        ports = server.address.ports
        for port in (ports.cluster, ports.gateway):
            assert plaintext_gets_nothing(port), (server.name, port)
            info = tls_info(port, local.ca, tmp)
            assert info.get("tls_required") is True, (server.name, port, info)
            assert info.get("auth_required") is True, (server.name, port, info)
        text = (server.directory / "scserver.conf").read_text()
        password = local.secrets[credentials_secret_name(local.supercluster.name)][
            links.ROUTE_PASSWORD
        ]
        assert password not in text  # credentials only in the include
        assert password in (server.directory / "auth.conf").read_text()


def run_supercluster(command: list[str], tmp_path: Path, example: str) -> None:
    resources = load_example(example)
    (sc,) = resources.superclusters
    clusters = resources.members(sc)
    from scoperator.secrets import secrets_from_objects

    local = LocalSupercluster(
        sc, clusters, secrets_from_objects(resources.secrets), command, tmp_path
    )
    assert local.tls_enabled
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        assert_secure_links(local, tmp_path)
        for server in local.servers:
            cert = certs.load_cert((server.directory / "tls" / "tls.crt").read_text())
            assert "127.0.0.1" in certs.ip_addresses(cert)
            assert local.ca is not None and certs.signed_by(cert, local.ca.cert)
        out = io.StringIO()
        assert asyncio.run(run_demo(local, clusters, out)) == 0, out.getvalue()
        if sc.spec.tls.clients.enabled:
            assert_client_tls_and_https_monitoring(local, sc, clusters)
    finally:
        local.stop()


def assert_client_tls_and_https_monitoring(
    local: LocalSupercluster, sc: SuperCluster, clusters: list[Cluster]
) -> None:
    """The client port speaks TLS only; the operator's observer reads https monitoring,
    verifying the chain with the CA bundle."""
    from scoperator.observe import StaticResolver, observe_supercluster

    assert local.ca is not None
    server = local.servers[0]
    with socket.create_connection(("127.0.0.1", server.address.ports.client), timeout=5) as s:
        data = s.recv(4096)
    assert b'"tls_required":true' in data
    addresses = {s.name: f"127.0.0.1:{s.address.ports.monitor}" for s in local.servers}
    body = {"metadata": {"name": sc.name, "namespace": sc.namespace}, "spec": sc.spec.to_json()}
    members = [{"metadata": {"name": c.name, "generation": 1}, "spec": c.spec.to_json()}
               for c in clusters]  # fmt: skip
    rnd = asyncio.run(
        observe_supercluster(body, members, StaticResolver(addresses), trust=local.ca.cert_pem)
    )
    assert all(p.healthy for p in rnd.probes.values()), rnd.probes
    # a CA it does not know: the probes fail (and say why) rather than trust anything
    other = certs.make_ca("other", datetime.datetime.now(datetime.UTC), datetime.timedelta(hours=1))
    rnd = asyncio.run(
        observe_supercluster(body, members, StaticResolver(addresses), trust=other.cert_pem)
    )
    assert not any(p.healthy for p in rnd.probes.values())


@pytest.mark.nats_server
def test_demo_over_mutual_tls_with_nats_server(nats_server: list[str], tmp_path: Path) -> None:
    run_supercluster(nats_server, tmp_path, "supercluster-3x3.yaml")


@pytest.mark.nats_server
def test_client_tls_and_https_monitoring_with_nats_server(
    nats_server: list[str], tmp_path: Path
) -> None:
    run_supercluster(nats_server, tmp_path, "tls-clients.yaml")


def test_client_tls_and_https_monitoring_with_scserver(tmp_path: Path) -> None:
    command = require_binary(scserver_command(), "scserver not installed")
    run_supercluster(list(command), tmp_path, "tls-clients.yaml")


def test_demo_over_mutual_tls_with_scserver(tmp_path: Path) -> None:
    command = require_binary(scserver_command(), "scserver not installed")
    problem = server_tls_problem(list(command), tmp_path)
    assert problem is None, problem
    run_supercluster(list(command), tmp_path / "run", "supercluster.yaml")


def test_make_demo_says_tls(tmp_path: Path) -> None:
    """`make demo`: the seed's request crosses mutual-TLS gateways (default --tls auto)."""
    proc = subprocess.run(
        [sys.executable, "-m", "scoperator", "local", "-f", str(EXAMPLES / "supercluster.yaml"),
         "--demo", "--tls", "on"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mutual TLS" in proc.stdout and "hello from east" in proc.stdout


# ------------------------------------------------------------------------------- two sites


def _site(name: str, clusters: list[str], externals: list[ExternalGateway]) -> SuperCluster:
    return SuperCluster.model_validate(
        {
            "metadata": {"name": "global", "namespace": "nats"},
            "spec": {"externalGateways": [g.model_dump(by_alias=True) for g in externals]},
        }
    )


def _cluster(name: str) -> Cluster:
    return Cluster.model_validate(
        {"metadata": {"name": name, "namespace": "nats"}, "spec": {"superCluster": "global"}}
    )


def _base() -> int:
    """A port base whose four ports (+0, +1000, +2000, +3000) are free right now."""
    for _ in range(200):
        base = free_port()
        if base > 60000:
            continue
        try:
            socks = []
            for off in (0, 1000, 2000, 3000):
                s = socket.socket()
                s.bind(("127.0.0.1", base + off))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise AssertionError("no free port base")


@pytest.mark.nats_server
def test_two_sites_link_with_copied_ca_and_credentials(
    nats_server: list[str], tmp_path: Path
) -> None:
    """Each site has its own CA and credentials; the other's CA bundle and gateway credentials
    are copied over (docs/multi-kube.md), and the gateways link both ways."""

    now = datetime.datetime.now(datetime.UTC)
    ca_a = certs.make_ca("site A", now, datetime.timedelta(days=1))
    ca_b = certs.make_ca("site B", now, datetime.timedelta(days=1))
    creds_a, creds_b = links.generate_credentials(), links.generate_credentials()
    base_a, base_b = _base(), _base()
    gw_a, gw_b = f"nats://127.0.0.1:{base_a + 2000}", f"nats://127.0.0.1:{base_b + 2000}"

    def copied(creds: dict[str, str]) -> dict[str, str]:
        return {k: creds[k] for k in (links.GATEWAY_USER, links.GATEWAY_PASSWORD)}

    site_a = LocalSupercluster(
        _site(
            "A",
            ["east"],
            [
                ExternalGateway(
                    name="west", urls=[gw_b], credentials_secret="west-gateway", ca_secret="west-ca"
                )
            ],
        ),  # fmt: skip
        [_cluster("east")],
        {
            "global-credentials": creds_a,
            "west-gateway": copied(creds_b),
            "west-ca": {"ca.crt": ca_b.cert_pem},
        },
        nats_server,
        tmp_path / "a",
        port_base=base_a,
        ca=ca_a,
    )
    site_b = LocalSupercluster(
        _site(
            "B",
            ["west"],
            [
                ExternalGateway(
                    name="east",
                    urls=[gw_a],
                    credentials_secret="site-a-gateway",
                    ca_secret="site-a-ca",
                )
            ],
        ),  # fmt: skip
        [_cluster("west")],
        {
            "global-credentials": creds_b,
            "site-a-gateway": copied(creds_a),
            "site-a-ca": {"ca.crt": ca_a.cert_pem},
        },
        nats_server,
        tmp_path / "b",
        port_base=base_b,
        ca=ca_b,
    )
    for site in (site_a, site_b):
        site.plan()
    # the gateways trust both CAs; the external URLs carry the other site's credentials
    auth_a = (site_a.servers[0].directory / "auth.conf").read_text()
    assert f"gateway:{creds_b['gateway-password']}@127.0.0.1:{base_b + 2000}" in auth_a
    bundle = (site_a.servers[0].directory / "gateway-ca.pem").read_text()
    assert set(certs.bundle_fingerprints(bundle)) == {
        certs.fingerprint(ca_a.cert),
        certs.fingerprint(ca_b.cert),
    }
    for site in (site_a, site_b):
        site.start()
    try:
        deadline = time.monotonic() + 30
        linked: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            for site, remote in ((site_a, "west"), (site_b, "east")):
                server = site.servers[0]
                url = f"{server.address.monitor_url}/gatewayz"
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                        gz = json.loads(resp.read())
                except OSError:
                    continue
                linked[server.name] = set(gz.get("outbound_gateways") or {}) & {remote}
                linked[server.name] |= {
                    f"in:{k}" for k in (gz.get("inbound_gateways") or {}) if k == remote
                }
            if linked.get("east-0") == {"west", "in:west"} and linked.get("west-0") == {
                "east",
                "in:east",
            }:
                break
            time.sleep(0.3)
        assert linked == {"east-0": {"west", "in:west"}, "west-0": {"east", "in:east"}}, (
            site_a.servers[0].log_tail(),
            site_b.servers[0].log_tail(),
        )
    finally:
        site_a.stop()
        site_b.stop()


# ------------------------------------------------------------ renewal and rotation by reload


def _gateway_cids(local: LocalSupercluster) -> dict[str, dict[str, int]]:
    out = {}
    for server in local.servers:
        url = f"{server.address.monitor_url}/gatewayz"
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
            gz = json.loads(resp.read())
        out[server.name] = {
            name: int(gw["connection"]["cid"])
            for name, gw in (gz.get("outbound_gateways") or {}).items()
        }
    return out


def _presented_cert(port: int, ca_bundle: str) -> certs.x509.Certificate:
    """The certificate a gateway port presents now (handshake without a client certificate:
    the server may then close, but it has shown its certificate first)."""
    import ssl

    ctx = ssl.create_default_context(cadata=ca_bundle)
    ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = ctx.wrap_socket(raw, do_handshake_on_connect=False)
    try:
        try:
            sock.do_handshake()
        except (ssl.SSLError, OSError):
            pass
        der = sock.getpeercert(binary_form=True)
    finally:
        sock.close()
    assert der, "no certificate presented"
    return certs.x509.load_der_x509_certificate(der)


@pytest.mark.parametrize("server", ["nats-server", "scserver"])
def test_ca_rotation_and_renewal_are_picked_up_by_reload(server: str, tmp_path: Path) -> None:
    """What the operator's Managed mode does to the mounted files, done to running servers: the
    bundle with old and new CA, then certificates of the new CA, each followed by a reload
    (SIGHUP). No server restarts, no gateway link drops, and new handshakes use the new
    certificates."""
    import signal

    from scoperator.local import write_tls_files
    from scoperator.naming import certificate_names
    from scoperator.secrets import secrets_from_objects

    if server == "nats-server":
        command = [str(require_binary(nats_server_binary(), "nats-server not installed"))]
    else:
        command = list(require_binary(scserver_command(), "scserver not installed"))
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    local = LocalSupercluster(
        sc, resources.members(sc), secrets_from_objects(resources.secrets), command, tmp_path
    )
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        assert local.ca is not None and local.topology is not None
        before = _gateway_cids(local)
        pids = {s.name: s.process.pid for s in local.servers if s.process}
        old_ca = local.ca
        now = datetime.datetime.now(datetime.UTC)
        new_ca = certs.make_ca("rotated", now, datetime.timedelta(days=1))
        overlap = certs.bundle(old_ca.cert_pem, new_ca.cert_pem)

        def load_times() -> dict[str, str]:
            out = {}
            for s in local.servers:
                url = f"{s.address.monitor_url}/varz"
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                    out[s.name] = json.loads(resp.read())["config_load_time"]
            return out

        def reload_all() -> None:
            """SIGHUP every server and wait until each reports a new config_load_time (the
            reload is done), where a fixed sleep only hoped it was."""
            was = load_times()
            for s in local.servers:
                assert s.process is not None
                s.process.send_signal(signal.SIGHUP)

            def reloaded() -> bool:
                now = load_times()
                return all(now[n] != was[n] for n in was)

            wait_for(reloaded, 30, 0.05, "every server reloaded")

        # step 1: every server trusts old and new CA, still presenting its old certificate
        for s in local.servers:
            tls_dir = s.directory / "tls"
            (tls_dir / "ca.crt").write_text(overlap)
        reload_all()
        # step 2: certificates issued by the new CA
        for cluster in local.topology.clusters:
            names = certificate_names(local.topology, cluster.name)
            pair = certs.make_server_cert(
                new_ca, cluster.name, names, now, datetime.timedelta(hours=1)
            )
            for s in local.servers:
                if s.address.cluster == cluster.name:
                    write_tls_files(s.directory, pair, overlap)
        reload_all()
        # the links were never dropped, no process restarted
        assert _gateway_cids(local) == before
        assert {s.name: s.process.pid for s in local.servers if s.process} == pids
        for s in local.servers:
            assert s.process is not None and s.process.poll() is None
        # new handshakes present the new certificates
        for s in local.servers:
            cert = _presented_cert(s.address.ports.gateway, overlap)
            assert certs.signed_by(cert, new_ca.cert), s.name
        # and the mesh still carries requests
        out = io.StringIO()
        assert asyncio.run(run_demo(local, resources.members(sc), out)) == 0, out.getvalue()
    finally:
        local.stop()


# ------------------------------------------------------------------- switching TLS on


@pytest.mark.parametrize("server", ["nats-server", "scserver"])
def test_switching_tls_on_reaches_ready_with_every_gateway_linked(
    server: str, tmp_path: Path
) -> None:
    """A running supercluster with plaintext links gets TLS configs and certificates, then a
    rolling restart (what the operator's switch causes in Kubernetes): at the end every server
    is healthy, routed and linked to every other cluster over mutual TLS, and requests cross
    the gateways again."""
    from scoperator.secrets import secrets_from_objects

    if server == "nats-server":
        command = [str(require_binary(nats_server_binary(), "nats-server not installed"))]
    else:
        command = list(require_binary(scserver_command(), "scserver not installed"))
    resources = load_example("supercluster-3x3.yaml")
    (sc,) = resources.superclusters
    clusters = resources.members(sc)
    local = LocalSupercluster(
        sc, clusters, secrets_from_objects(resources.secrets), command, tmp_path, tls=False
    )
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        gateway = local.servers[0].address.ports.gateway
        assert not plaintext_gets_nothing(gateway)  # plaintext: INFO right away
        local.switch_tls(True)
        asyncio.run(local.rolling_restart())
        asyncio.run(local.wait_ready(60))
        assert_secure_links(local, tmp_path)
        out = io.StringIO()
        assert asyncio.run(run_demo(local, clusters, out)) == 0, out.getvalue()
    finally:
        local.stop()


def test_tls_asked_for_and_unsupported_is_refused(tmp_path: Path) -> None:
    """A server command that parses but ignores TLS blocks: `scoperator local` refuses to run
    rather than link in plaintext (unless told --tls auto/off)."""
    fake = tmp_path / "fake-server"
    fake.write_text('#!/bin/sh\necho "cluster tls is not supported; ignored"\nexit 0\n')
    fake.chmod(0o755)
    problem = server_tls_problem([str(fake)], tmp_path)
    assert problem is not None and "does not implement TLS" in problem
    proc = subprocess.run(
        [sys.executable, "-m", "scoperator", "local", "-f", str(EXAMPLES / "supercluster.yaml"),
         "--demo", "--server-cmd", str(fake)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "TLS asked for" in proc.stderr and "does not implement TLS" in proc.stderr

"""certs.py: CA and server certificates, renewal times and bundles, with a clock we move."""

from __future__ import annotations

import datetime
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from tests.tools import require_binary

from scoperator import certs

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def test_ca_and_server_certificate() -> None:
    ca = certs.make_ca("demo CA", T0, 30 * DAY)
    assert ca.cert.extensions.get_extension_for_class(certs.x509.BasicConstraints).value.ca
    names = ["east-0.east-headless.ns.svc.cluster.local", "*.east-headless.ns.svc", "127.0.0.1"]
    server = certs.make_server_cert(ca, "east", names, T0, 9 * DAY)
    cert = server.cert
    assert certs.signed_by(cert, ca.cert)
    assert certs.dns_names(cert) == names[:2]
    assert certs.ip_addresses(cert) == ["127.0.0.1"]
    assert certs.covers(cert, names) and not certs.covers(cert, ["east-1.other"])
    assert certs.key_matches(cert, server.key_pem)
    assert not certs.key_matches(cert, ca.key_pem)
    assert certs.not_after(cert) == T0 + 9 * DAY
    # both usages: every server is client and server of its peers (mutual TLS)
    usages = cert.extensions.get_extension_for_class(certs.x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usages} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
    other = certs.make_ca("other CA", T0, 30 * DAY)
    assert not certs.signed_by(cert, other.cert)
    assert certs.fingerprint(ca.cert).startswith("SHA256:")
    assert certs.fingerprint(ca.cert_pem) == certs.fingerprint(ca.cert)


def test_server_certificate_never_outlives_its_ca() -> None:
    ca = certs.make_ca("short CA", T0, 3 * DAY)
    server = certs.make_server_cert(ca, "east", ["a"], T0, 90 * DAY)
    assert certs.not_after(server.cert) == certs.not_after(ca.cert)
    with pytest.raises(certs.CertificateError):
        certs.make_server_cert(ca, "east", [], T0, DAY)


def test_renewal_at_two_thirds_of_the_lifetime() -> None:
    ca = certs.make_ca("CA", T0, 90 * DAY)
    server = certs.make_server_cert(ca, "east", ["a"], T0, 30 * DAY)
    start = certs.not_before(server.cert)  # backdated a little for clock skew
    lifetime = certs.not_after(server.cert) - start
    due = certs.renew_at(server.cert)
    assert due == start + lifetime * 2 / 3
    assert not certs.needs_renewal(T0, server.cert)
    assert not certs.needs_renewal(due - datetime.timedelta(seconds=1), server.cert_pem)
    assert certs.needs_renewal(due, server.cert)
    assert certs.needs_renewal(T0 + 40 * DAY, server.cert)  # expired: renewal all the more
    assert certs.expired(T0 + 30 * DAY, server.cert)


def test_bundle_dedupes_keeps_order_and_drops_expired() -> None:
    old = certs.make_ca("old", T0, 10 * DAY)
    new = certs.make_ca("new", T0 + 6 * DAY, 10 * DAY)
    text = certs.bundle(new.cert_pem, old.cert_pem + new.cert_pem, now=T0 + 7 * DAY)
    assert certs.bundle_fingerprints(text) == [
        certs.fingerprint(new.cert),
        certs.fingerprint(old.cert),
    ]
    assert certs.bundle_fingerprints(certs.bundle(text, now=T0 + 11 * DAY)) == [
        certs.fingerprint(new.cert)
    ]
    assert certs.split_pems("garbage") == []


def test_verify_chain_during_a_rotation() -> None:
    old = certs.make_ca("old", T0, 30 * DAY)
    new = certs.make_ca("new", T0 + 20 * DAY, 30 * DAY)
    by_old = certs.make_server_cert(old, "a", ["a"], T0, 10 * DAY).cert
    by_new = certs.make_server_cert(new, "a", ["a"], T0 + 20 * DAY, 10 * DAY).cert
    overlap = certs.bundle(old.cert_pem, new.cert_pem)
    now = T0 + 21 * DAY
    assert certs.verify_chain(by_new, overlap, now) is None
    assert certs.verify_chain(by_new, old.cert_pem, now) == (
        "not signed by any valid CA of the bundle"
    )
    assert "expired" in (certs.verify_chain(by_old, overlap, T0 + 11 * DAY) or "")


def test_python_ssl_accepts_the_pair_for_mutual_tls(tmp_path: Path) -> None:
    """A real TLS handshake over a socket pair, each side verifying the other."""
    now = datetime.datetime.now(datetime.UTC)
    ca = certs.make_ca("CA", now, DAY)
    pair = certs.make_server_cert(ca, "east", ["east-0.example", "127.0.0.1"], now, DAY)
    (tmp_path / "c.pem").write_text(pair.cert_pem)
    (tmp_path / "k.pem").write_text(pair.key_pem)

    def ctx(side: int) -> ssl.SSLContext:
        c = ssl.SSLContext(side)
        c.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        c.load_verify_locations(cadata=ca.cert_pem)
        c.verify_mode = ssl.CERT_REQUIRED
        return c

    import socket
    import threading

    a, b = socket.socketpair()
    server = ctx(ssl.PROTOCOL_TLS_SERVER).wrap_socket(
        a, server_side=True, do_handshake_on_connect=False
    )
    client = ctx(ssl.PROTOCOL_TLS_CLIENT).wrap_socket(
        b, server_hostname="east-0.example", do_handshake_on_connect=False
    )
    t = threading.Thread(target=server.do_handshake)
    t.start()
    client.do_handshake()
    t.join(5)
    assert server.getpeercert()["subject"] == ((("commonName", "east"),),)
    client.close()
    server.close()


def test_openssl_verifies_the_chain(tmp_path: Path) -> None:
    openssl = require_binary(shutil.which("openssl"), "openssl CLI not installed")
    now = datetime.datetime.now(datetime.UTC)
    ca = certs.make_ca("CA", now, DAY)
    pair = certs.make_server_cert(ca, "east", ["east-0.example"], now, DAY)
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    (tmp_path / "c.pem").write_text(pair.cert_pem)
    proc = subprocess.run(
        [openssl, "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "c.pem")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""Client-port TLS fixtures: certificates made at test time (never committed) and servers.

``pki`` (module scope) holds, besides the link files of ``link_certs.make_pki`` (``ca``,
``other-ca``, ``good`` = server certificate for localhost/127.0.0.1, ``other``, ``expired``,
``wrongsan``), client certificates for mutual TLS and ``verify_and_map``:

* ``alice.pem/.key`` — signed by ``ca``, subject ``CN=alice,O=Acme``, email SAN
  ``alice@example.com``;
* ``bob.pem/.key`` — signed by ``ca``, subject ``CN=bob,OU=ops,O=Acme`` (no SAN);
* ``mallory.pem/.key`` — signed by ``other-ca``.

``tls_server(kind, body)`` starts scserver (``"sc"``) or nats-server (``"go"``) with a config
``body`` (``{port}``, ``{http}`` and ``{dir}`` are filled in) and stops it at teardown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.tls.link_certs import Pki, make_pki
from tests.tools import (
    ServerProcess,
    free_port,
    nats_server_binary,
    require_binary,
    scserver_command,
    scserver_env,
)


def client_cert(
    out: Path,
    name: str,
    subject: x509.Name,
    issuer: str,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> int:
    """Write ``<name>.pem``/``<name>.key``: a certificate for ``usage`` signed by ``issuer``
    (the CA's key is kept next to its certificate as ``<issuer>.cakey``); returns its serial."""
    ca_cert = x509.load_pem_x509_certificate((out / f"{issuer}.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((out / f"{issuer}.cakey").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert.serial_number


def server_cert(out: Path, name: str, issuer: str = "client-ca") -> int:
    """A serverAuth certificate for localhost/127.0.0.1 signed by ``issuer``; its serial."""
    import ipaddress

    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return client_cert(out, name, subject, issuer, sans, ExtendedKeyUsageOID.SERVER_AUTH)


def _own_ca(out: Path, name: str, cn: str) -> None:
    """A CA whose key we keep (``<name>.pem`` + ``<name>.cakey``) to sign client certs."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.cakey").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    out = tmp_path_factory.mktemp("client-pki")
    p = make_pki(out)
    # Client certificates come from CAs of their own, bundled with the server CA where the
    # server should trust them (ca_file may hold several certificates).
    _own_ca(out, "client-ca", "client test CA")
    _own_ca(out, "rogue-ca", "rogue test CA")
    (out / "trusted.pem").write_bytes(
        (out / "ca.pem").read_bytes() + (out / "client-ca.pem").read_bytes()
    )
    alice = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
        ]
    )
    client_cert(out, "alice", alice, "client-ca", [x509.RFC822Name("alice@example.com")])
    bob = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
            x509.NameAttribute(NameOID.COMMON_NAME, "bob"),
        ]
    )
    client_cert(out, "bob", bob, "client-ca", [])
    mallory = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    client_cert(out, "mallory", mallory, "rogue-ca", [])
    return p


def server_command(kind: str) -> list[str]:
    if kind == "go":
        return [str(require_binary(nats_server_binary(), "nats-server binary not installed"))]
    return list(require_binary(scserver_command(), "scserver not runnable"))


@pytest.fixture
def tls_server(pki: Pki, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(
        kind: str, body: str, *, ready_port: bool = True, http: bool = False, **kw
    ) -> ServerProcess:
        port = free_port()
        http_port = free_port() if http else None
        text = (
            body.replace("{port}", str(port))
            .replace("{http}", str(http_port))
            .replace("{dir}", str(pki.dir))
        )
        if http and "https_port" not in text:
            text += f"http: {http_port}\n"
        proc = ServerProcess(
            server_command(kind),
            config=f"port: {port}\n" + text,
            name=f"{kind}-{len(started)}",
            port=port if ready_port else None,
            http_port=http_port if http and "https" not in text else None,
            workdir=tmp_path / f"{kind}-{len(started)}",
            env=scserver_env() if kind == "sc" else None,
            **kw,
        )
        started.append(proc)
        proc.start()
        proc.http_port = http_port
        if not ready_port:
            import time

            from tests.tools import wait_for

            def listening() -> bool:
                import socket

                with socket.socket() as s:
                    s.settimeout(0.2)
                    return s.connect_ex(("127.0.0.1", port)) == 0

            wait_for(listening, 10.0, 0.05, f"{proc.name} listening")
            time.sleep(0.05)
            proc.port = port
        return proc

    yield start
    for proc in started:
        proc.stop()

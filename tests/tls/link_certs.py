"""Certificates for the route/gateway TLS tests, generated at test time (never committed).

Links use one certificate as both server and client certificate (nats-server mirrors its CA
into the client-CA pool and requires the peer's certificate), so every leaf here carries both
the serverAuth and clientAuth key usages. :func:`make_pki` writes into a directory:

* ``ca.pem`` — the CA every good peer trusts; ``other-ca.pem`` — an unrelated CA;
* ``good.pem``/``good.key`` — signed by ``ca``, SANs ``127.0.0.1`` and ``localhost``;
* ``other.pem``/``other.key`` — same SANs, signed by ``other-ca``;
* ``expired.pem``/``expired.key`` — signed by ``ca``, validity ended yesterday;
* ``wrongsan.pem``/``wrongsan.key`` — signed by ``ca``, SAN ``wrong.example`` only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KEY_USAGES = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


@dataclass
class Pki:
    """Paths of the generated files (see module doc)."""

    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def tls_block(self, leaf: str = "good", ca: str = "ca", extra: str = "") -> str:
        """A nats-server ``tls {}`` block (one line) for a link using ``<leaf>.pem`` and
        ``<ca>.pem``; ``extra`` adds ``key: value`` text."""
        fields = [
            f'cert_file: "{self.path(leaf + ".pem")}"',
            f'key_file: "{self.path(leaf + ".key")}"',
            f'ca_file: "{self.path(ca + ".pem")}"',
            "timeout: 2",
        ]
        if extra:
            fields.append(extra)
        return "tls { " + ", ".join(fields) + " }"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _ca(cn: str, out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _leaf(
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    out_dir: Path,
    sans: list[x509.GeneralName],
    expired: bool = False,
) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"link-{name}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(_KEY_USAGES), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (out_dir / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, out_dir / f"{name}.key")


def make_pki(out_dir: Path) -> Pki:
    """Generate every file listed in the module doc into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    good_sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    ca = _ca("supercluster test CA", out_dir / "ca.pem")
    other = _ca("unrelated test CA", out_dir / "other-ca.pem")
    _leaf("good", ca, out_dir, good_sans)
    _leaf("other", other, out_dir, good_sans)
    _leaf("expired", ca, out_dir, good_sans, expired=True)
    _leaf("wrongsan", ca, out_dir, [x509.DNSName("wrong.example")])
    return Pki(out_dir)


#: What the verifying side's log says, per refusal, for scserver (OpenSSL) or nats-server (Go).
REASONS = {
    "other": r"unable to get local issuer certificate|unknown authority",
    "expired": r"certificate has expired",
    "wrongsan": r"mismatch|doesn't contain any IP SANs|not valid for",
    "nocert": r"did not provide a certificate|didn't provide a certificate|did not return a cert",
}

"""Certificates as pure functions: make a CA, issue server certificates, decide renewals.

Everything takes `now` explicitly, so tests move the clock instead of waiting, and the same code
serves the operator's Managed mode (pki.py) and `scoperator local` (local.py).

Why these choices:
- ECDSA P-256 keys: generated in a millisecond, accepted by nats-server and Python's ssl;
- one certificate per Cluster, shared by its pods, with both serverAuth and clientAuth usages:
  routes and gateways are mutual TLS, every server is client and server of its peers. Its SANs
  cover every pod's FQDN under the headless Service (nats-server verifies a gossiped peer,
  dialled by IP, against the first hostname it dialled, so any pod's certificate must be valid
  for any pod's name), a wildcard for pods added later, the client and gateway Services and
  the advertised gateway address;
- renewal at two thirds of the lifetime (`renew_at`), early enough that a failed renewal is
  noticed and retried long before anything expires;
- trust bundles (`bundle`) are PEM concatenations, deduplicated by fingerprint, with expired
  certificates dropped: during a CA rotation the bundle holds the old and the new CA, so peers
  with certificates from either keep linking while they reload one by one.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Fraction of a certificate's lifetime after which it is renewed.
RENEW_FRACTION = 2 / 3
# Issued certificates start a little in the past: clocks of peers are never exactly equal.
# (At most a tenth of the lifetime, so that short test lifetimes still renew at 2/3.)
BACKDATE = datetime.timedelta(minutes=5)


def _backdate(lifetime: datetime.timedelta) -> datetime.timedelta:
    return min(BACKDATE, lifetime / 10)


_PEM_RE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class CertificateError(ValueError):
    """A PEM text is not a usable certificate or key (the message says which and why)."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM text."""

    cert_pem: str
    key_pem: str

    @property
    def cert(self) -> x509.Certificate:
        """The parsed certificate."""
        return load_cert(self.cert_pem)


# ---------------------------------------------------------------------------------- parsing


def load_cert(pem: str) -> x509.Certificate:
    """The first certificate of a PEM text (raises CertificateError)."""
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from exc


def load_key(pem: str) -> ec.EllipticCurvePrivateKey | object:
    """A PEM private key (raises CertificateError)."""
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not an unencrypted PEM private key: {exc}") from exc


def split_pems(text: str) -> list[str]:
    """Every certificate block of a PEM bundle, in order (normalised line endings)."""
    return [m.group(0).replace("\r\n", "\n") + "\n" for m in _PEM_RE.finditer(text or "")]


def fingerprint(cert: x509.Certificate | str) -> str:
    """SHA-256 fingerprint as colon-separated hex (what `openssl x509 -fingerprint` shows)."""
    c = load_cert(cert) if isinstance(cert, str) else cert
    return "SHA256:" + c.fingerprint(hashes.SHA256()).hex(":").upper()


def not_before(cert: x509.Certificate) -> datetime.datetime:
    """Start of validity (aware UTC)."""
    return cert.not_valid_before_utc


def not_after(cert: x509.Certificate) -> datetime.datetime:
    """End of validity (aware UTC)."""
    return cert.not_valid_after_utc


def renew_at(cert: x509.Certificate) -> datetime.datetime:
    """When `cert` is due for renewal: two thirds into its lifetime."""
    start, end = not_before(cert), not_after(cert)
    return start + (end - start) * RENEW_FRACTION


def needs_renewal(now: datetime.datetime, cert: x509.Certificate | str) -> bool:
    """Whether `cert` is at or past two thirds of its lifetime (or already expired) at `now`."""
    c = load_cert(cert) if isinstance(cert, str) else cert
    return now >= renew_at(c)


def expired(now: datetime.datetime, cert: x509.Certificate) -> bool:
    """Whether `cert` is no longer valid at `now`."""
    return now >= not_after(cert)


def dns_names(cert: x509.Certificate) -> list[str]:
    """DNS SANs of `cert`."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.DNSName))


def ip_addresses(cert: x509.Certificate) -> list[str]:
    """IP SANs of `cert`, as text."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]


def covers(cert: x509.Certificate, names: Iterable[str]) -> bool:
    """Whether every name of `names` is literally a SAN of `cert` (DNS or IP)."""
    have = set(dns_names(cert)) | set(ip_addresses(cert))
    return set(names) <= have


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` issued `cert` (issuer name and signature)."""
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def key_matches(cert: x509.Certificate, key_pem: str) -> bool:
    """Whether the private key belongs to the certificate."""
    try:
        key = load_key(key_pem)
    except CertificateError:
        return False
    public = key.public_key()  # type: ignore[attr-defined]
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(public.public_bytes(enc, fmt) == cert.public_key().public_bytes(enc, fmt))


# ---------------------------------------------------------------------------------- issuing


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(common_name: str, now: datetime.datetime, lifetime: datetime.timedelta) -> KeyPair:
    """A self-signed CA valid from `now` (backdated a little) for `lifetime`."""
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scoperator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _backdate(lifetime))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def make_server_cert(
    ca: KeyPair,
    common_name: str,
    names: Sequence[str],
    now: datetime.datetime,
    lifetime: datetime.timedelta,
) -> KeyPair:
    """A certificate for servers (and, for mutual TLS, their outgoing links) signed by `ca`.

    `names` become SANs: IP literals as IP addresses, the rest as DNS names. The validity never
    outlasts the CA's.
    """
    if not names:
        raise CertificateError("a server certificate needs at least one name")
    ca_cert = ca.cert
    ca_key = load_key(ca.key_pem)
    key = _new_key()
    sans: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    end = min(now + lifetime, not_after(ca_cert))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - _backdate(lifetime), not_before(ca_cert)))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


# ---------------------------------------------------------------------------------- bundles


def bundle(*texts: str, now: datetime.datetime | None = None) -> str:
    """One PEM bundle of every certificate in `texts`, first occurrence first, duplicates and
    (with `now`) expired certificates removed."""
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        for pem in split_pems(text):
            cert = load_cert(pem)
            fp = fingerprint(cert)
            if fp in seen or (now is not None and expired(now, cert)):
                continue
            seen.add(fp)
            out.append(pem)
    return "".join(out)


def bundle_fingerprints(text: str) -> list[str]:
    """Fingerprints of the certificates of a bundle, in order."""
    return [fingerprint(pem) for pem in split_pems(text)]


def verify_chain(cert: x509.Certificate, trust: str, now: datetime.datetime) -> str | None:
    """Why `cert` would not be trusted by a peer holding bundle `trust` at `now` (or None)."""
    if now < not_before(cert):
        return "not valid yet"
    if expired(now, cert):
        return f"expired at {not_after(cert).isoformat()}"
    for pem in split_pems(trust):
        ca = load_cert(pem)
        if signed_by(cert, ca) and not expired(now, ca):
            return None
    return "not signed by any valid CA of the bundle"

"""``tls {}`` option blocks: parsed into a ``TLSConfig`` with every fault located.

A block (top level for clients and monitoring over https, ``cluster``/``gateway`` for links,
``gateways[]`` entries for one remote) is checked against what nats-server accepts; options this
server cannot honour are config errors (a config that asks for security and cannot get it is
refused, never run in plaintext). Certificate files are loaded at parse time too (through the
context builders of ``scserver.tls``), so a missing file or a key that does not match its
certificate is a ``file:line`` error from ``scserver -t``, as it is from ``nats-server -t``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..conf import ConfigError
from .values import parse_duration

#: nats-server's TLS_TIMEOUT: how long a handshake may take (seconds).
DEFAULT_TLS_TIMEOUT = 2.0
#: nats-server's DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY ("auto" handshake_first).
DEFAULT_HANDSHAKE_FIRST_FALLBACK = 0.05
#: The first byte of a TLS record carrying a handshake (a ClientHello).
TLS_HANDSHAKE_BYTE = 0x16

# Go's cipher suite names (crypto/tls CipherSuites()) -> OpenSSL names. TLS 1.3 suites have the
# same names in both and cannot be restricted in Go either (they are always on).
_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
_SECURE_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# crypto/tls InsecureCipherSuites(): refused unless allow_insecure_cipher_suites is set.
_INSECURE_SUITES = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
}
#: OpenSSL name -> Go name, to report the negotiated suite as nats-server does in /connz.
GO_SUITE_NAMES = {v: k for k, v in {**_SECURE_SUITES, **_INSECURE_SUITES}.items()} | {
    s: s for s in _TLS13_SUITES
}

_PIN_RE = re.compile(r"^[A-Fa-f0-9]{64}$")

# Keys nats-server knows that this server cannot honour: refused (fail closed), with the reason.
_REFUSED = {
    "cert_store": "cert_store is Windows-only and not supported by scserver",
    "cert_match_by": "cert_match_by is Windows-only and not supported by scserver",
    "cert_match": "cert_match is Windows-only and not supported by scserver",
    "cert_match_skip_invalid": "cert_match_skip_invalid is Windows-only and not supported",
    "ca_certs_match": "ca_certs_match is Windows-only and not supported by scserver",
    "ocsp_peer": "ocsp_peer (OCSP peer verification) is not supported by scserver",
    "certs": "multiple certificates ('certs') are not supported by scserver; use cert_file",
    "certificates": "multiple certificates are not supported by scserver; use cert_file",
    "curve_preferences": (
        "curve_preferences cannot be honoured (Python's ssl module has no group list); remove it"
    ),
    "connection_rate_limit": "connection_rate_limit is not supported by scserver",
}


class TLSFileError(ConfigError):
    """A certificate, key or CA file that cannot be used; the message names the file."""


@dataclass(slots=True, frozen=True)
class TLSConfig:
    """One ``tls {}`` block, as nats-server's TLSConfigOpts (only what scserver honours)."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    #: Require and verify a peer certificate (``verify``, or implied by the two below).
    verify: bool = False
    #: ``verify_and_map``: the client certificate names the user (email, SAN, URI or DN).
    verify_and_map: bool = False
    #: ``verify_cert_and_check_known_urls`` (routes/gateways only): the peer's certificate must
    #: match a configured URL. Enforced by the link modules.
    check_known_urls: bool = False
    #: Skip verification of the server we dial (routes/gateways/remotes only, as nats-server).
    insecure: bool = False
    timeout: float = DEFAULT_TLS_TIMEOUT
    #: True when ``timeout`` was written (nats-server then derives auth_timeout = timeout + 1).
    timeout_set: bool = False
    min_version: str | None = None
    #: Go names as written; ``openssl_ciphers`` is what set_ciphers receives (TLS 1.2 only).
    cipher_suites: tuple[str, ...] = ()
    allow_insecure_cipher_suites: bool = False
    handshake_first: bool = False
    #: With ``handshake_first: auto`` or a duration: wait this long for a ClientHello, then
    #: fall back to sending INFO first.
    handshake_first_fallback: float = 0.0
    #: Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo of allowed peer certificates.
    pinned_certs: frozenset[str] = field(default_factory=frozenset)

    @property
    def openssl_ciphers(self) -> str | None:
        names = [_SECURE_SUITES.get(n) or _INSECURE_SUITES.get(n) for n in self.cipher_suites]
        return ":".join(n for n in names if n) or None


# --------------------------------------------------------------------------------------------
# parsing


class _Reporter(Protocol):
    """What parse_tls_block needs from options.py's builder (located errors and warnings)."""

    def where(self, container: Any, key: Any) -> Any: ...
    def error(self, pos: Any, message: str) -> None: ...
    def warn(self, pos: Any, message: str) -> None: ...
    def unknown(self, d: Mapping[str, Any], key: str, where: str) -> None: ...


def _parse_duration(v: str) -> float:
    return parse_duration(v)


def parse_tls_block(
    b: _Reporter, d: Mapping[str, Any], k: str, *, context: str
) -> TLSConfig | None:
    """Parse ``d[k]`` (a ``tls {}`` map) for ``context`` ("client", "cluster", "gateway",
    "remote gateway"), reporting every fault through ``b`` at its ``file:line:col``.

    Certificates are loaded here (and thrown away) so that file problems are config errors.
    Returns None when the block has faults.
    """
    tm = d[k]
    pos = b.where(d, k)
    if not isinstance(tm, dict):
        got = "array" if isinstance(tm, list) else type(tm).__name__
        b.error(pos, f"{context} tls: expected a map, got {got}")
        return None
    n_errors = len(getattr(b, "errors", []))
    failed = False

    def fail(p: Any, msg: str) -> None:
        nonlocal failed
        failed = True
        b.error(p, f"error parsing tls config: {msg}")

    vals: dict[str, Any] = {}
    for mk in tm:
        lk = mk.lower()
        mv = tm[mk]
        p = b.where(tm, mk)
        if lk in ("cert_file", "key_file", "ca_file"):
            if not isinstance(mv, str) or not mv:
                fail(p, f"expected '{lk}' to be a filename")
            else:
                vals[lk] = mv
        elif lk in ("verify", "insecure", "allow_insecure_cipher_suites"):
            if not isinstance(mv, bool):
                fail(p, f"expected '{lk}' to be a boolean")
            else:
                vals[lk] = mv
        elif lk == "verify_and_map":
            if not isinstance(mv, bool):
                fail(p, "expected 'verify_and_map' to be a boolean")
            elif mv:
                vals["verify"] = True
                vals["verify_and_map"] = True
        elif lk == "verify_cert_and_check_known_urls":
            if not isinstance(mv, bool):
                fail(p, "expected 'verify_cert_and_check_known_urls' to be a boolean")
            elif mv and context == "client":
                fail(p, "verify_cert_and_check_known_urls not supported in this context")
            elif mv:
                vals["verify"] = True
                vals["check_known_urls"] = True
        elif lk == "timeout":
            if isinstance(mv, bool) or not isinstance(mv, int | float | str):
                fail(p, "'timeout' wrong type")
                continue
            try:
                t = _parse_duration(mv) if isinstance(mv, str) else float(mv)
            except ValueError as e:
                fail(p, f"'timeout' {e}")
                continue
            if t < 0:
                fail(p, "'timeout' cannot be negative")
                continue
            vals["timeout"] = t or DEFAULT_TLS_TIMEOUT
            vals["timeout_set"] = t > 0
        elif lk == "min_version":
            if mv not in ("1.2", "1.3"):
                if mv in ("1.0", "1.1"):
                    fail(p, f"unsupported TLS version: TLS {mv}")
                else:
                    fail(p, f"unknown version: {mv}")
            else:
                vals["min_version"] = mv
        elif lk == "cipher_suites":
            if not isinstance(mv, list) or not mv:
                fail(p, "'cipher_suites' cannot be empty")
                continue
            names = []
            for i, name in enumerate(mv):
                ip = b.where(mv, i) or p
                known = isinstance(name, str) and (
                    name in _SECURE_SUITES or name in _INSECURE_SUITES or name in _TLS13_SUITES
                )
                if not known:
                    failed = True
                    b.error(ip, f"unrecognized cipher {name}")
                    continue
                names.append(name)
            vals["cipher_suites"] = tuple(names)
            vals["_cipher_pos"] = p
        elif lk in ("handshake_first", "first", "immediate"):
            hf = _handshake_first(mv)
            if hf is None:
                fail(p, f"field {mk!r}'s value {mv!r} is invalid")
            else:
                if context != "client" and hf[0]:
                    b.warn(p, f"{mk} only applies to client connections; ignored here")
                vals["handshake_first"], vals["handshake_first_fallback"] = hf
        elif lk == "pinned_certs":
            if not isinstance(mv, list):
                fail(
                    p,
                    "expected 'pinned_certs' to be a list of hex-encoded sha256 of DER "
                    "encoded SubjectPublicKeyInfo",
                )
                continue
            pins = set()
            for i, pin in enumerate(mv):
                if not isinstance(pin, str) or not _PIN_RE.match(pin):
                    failed = True
                    b.error(
                        b.where(mv, i) or p,
                        f"error parsing tls config: 'pinned_certs' key {pin} does not look "
                        "like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo",
                    )
                    continue
                pins.add(pin.lower())
            vals["pinned_certs"] = frozenset(pins)
        elif lk in _REFUSED:
            fail(p, _REFUSED[lk])
        elif isinstance(tm, Mapping) and hasattr(tm, "used") and mk in tm.used:
            continue  # only defined to be used as a $variable
        else:
            fail(p, f"unknown field {mk!r}")
    if failed or len(getattr(b, "errors", [])) > n_errors:
        return None
    cipher_pos = vals.pop("_cipher_pos", pos)
    cfg = TLSConfig(**vals)
    insecure = [n for n in cfg.cipher_suites if n in _INSECURE_SUITES]
    if insecure and not cfg.allow_insecure_cipher_suites:
        b.error(
            cipher_pos,
            "insecure cipher suites configured without 'allow_insecure_cipher_suites' option "
            f"set: {', '.join(insecure)}",
        )
        return None
    if cfg.insecure and context == "client":
        b.warn(pos, "tls 'insecure' only applies to routes and gateways that dial; ignored")
    if context != "remote gateway" and not (cfg.cert_file and cfg.key_file):
        missing = "key_file" if cfg.cert_file else "cert_file"
        b.error(pos, f"{context} tls: missing '{missing}' in TLS configuration")
        return None
    if (cfg.cert_file is None) != (cfg.key_file is None):
        missing = "key_file" if cfg.cert_file else "cert_file"
        b.error(pos, f"{context} tls: missing '{missing}' in TLS configuration")
        return None
    # The context builders live with the runtime TLS code (which imports this module).
    from ..tls import client_context, server_context

    try:
        if context == "remote gateway":
            client_context(cfg)
        else:
            server_context(cfg, force_verify=context != "client")
            if context != "client":
                client_context(cfg)
    except TLSFileError as e:
        b.error(pos, f"{context} tls: {e}")
        return None
    return cfg


def _handshake_first(v: Any) -> tuple[bool, float] | None:
    """(enabled, fallback delay) of a ``handshake_first`` value, None if invalid."""
    if isinstance(v, bool):
        return v, 0.0
    if not isinstance(v, str):
        return None
    lv = v.lower()
    if lv in ("true", "on"):
        return True, 0.0
    if lv in ("false", "off"):
        return False, 0.0
    if lv in ("auto", "auto_fallback"):
        return True, DEFAULT_HANDSHAKE_FIRST_FALLBACK
    try:
        return True, _parse_duration(v)
    except ValueError:
        return None

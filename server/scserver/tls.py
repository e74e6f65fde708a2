"""TLS for every listener and dialer: the ``tls {}`` block, SSL contexts, and the upgrade.

nats-server is the specification. ``tls {}`` blocks are parsed by ``scserver.options.tls`` into
a ``TLSConfig`` (re-exported here with ``parse_tls_block``); this module builds SSL contexts
from them and runs the upgrade.

Connections are plain asyncio Protocols. An accepting side never lets its protocol see a
socket before TLS is settled: ``TLSListener`` accepts sockets itself, ``accept_tls`` writes INFO
and sniffs the first byte on the raw socket (MSG_PEEK), then ``loop.connect_accepted_socket``
(with ``ssl=`` when TLS) gives the protocol a finished TLS transport; this works the same on
uvloop, where pausing a transport from ``connection_made`` does not hold (so an upgrade of a
live transport with ``loop.start_tls`` could let handshake bytes reach the protocol). A dialing
side (routes, gateways: handshake first) connects with ``create_connection(ssl=...)``.

API for listeners/dialers (clients here; routes and gateways in their modules):

- ``server_context(cfg, force_verify=False)`` / ``client_context(cfg)``: build an SSLContext.
  Routes and gateways pass ``force_verify=True`` (nats-server always verifies link peers) and
  use ``client_context`` for dialing (the ca_file is the root set; ``insecure`` skips checks).
- ``TLSContexts``: the contexts of one loaded config; ``Server.tls`` holds the current one and a
  reload swaps the whole object (new connections use it, established ones keep theirs).
- ``TLSListener.create(host, port, handle)`` + ``await accept_tls(sock, conn, ctx=..., cfg=...,
  info=..., allow_non_tls=...)``: the accepting side (clients here; routes/gateways alike with
  ``info=None``, letting ``on_open`` send INFO unless ``conn.info_sent``).
- ``Connection.connection_made`` calls ``check_peer`` for TLS transports (``conn.tls_info``,
  ``conn.tls_pins`` enforcement before ``on_open``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from .log import logger
from .options.tls import (
    DEFAULT_TLS_TIMEOUT,
    GO_SUITE_NAMES,
    TLS_HANDSHAKE_BYTE,
    TLSConfig,
    TLSFileError,
    parse_tls_block,
)

__all__ = [
    "DEFAULT_TLS_TIMEOUT",
    "TLSConfig",
    "TLSContexts",
    "TLSFileError",
    "TLSInfo",
    "client_context",
    "parse_tls_block",
    "accept_tls",
    "check_peer",
    "TLSListener",
    "server_context",
    "tls_info",
]


# --------------------------------------------------------------------------------------------
# contexts


def _base(ctx: ssl.SSLContext, cfg: TLSConfig) -> ssl.SSLContext:
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if cfg.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    if cfg.cipher_suites:
        ciphers = cfg.openssl_ciphers
        if ciphers is None:
            # Only TLS 1.3 suites listed: Go then has no TLS 1.2 suite left either.
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        else:
            try:
                ctx.set_ciphers(ciphers)
            except ssl.SSLError as e:
                raise TLSFileError(f"cipher_suites not available in this OpenSSL: {e}") from e
    return ctx


def _load_chain(ctx: ssl.SSLContext, cfg: TLSConfig) -> None:
    if not cfg.cert_file:
        return
    for f, what in ((cfg.cert_file, "cert_file"), (cfg.key_file, "key_file")):
        if f and not os.path.isfile(f):
            raise TLSFileError(f"{what} {f!r}: no such file")
    try:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    except ssl.SSLError as e:
        why = "private key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(e) else e
        raise TLSFileError(
            f"error parsing X509 certificate/key pair ({cfg.cert_file!r}, {cfg.key_file!r}): {why}"
        ) from e
    except OSError as e:
        raise TLSFileError(f"cannot read {cfg.cert_file!r}/{cfg.key_file!r}: {e}") from e


def _load_ca(ctx: ssl.SSLContext, cfg: TLSConfig, purpose: ssl.Purpose) -> None:
    if cfg.ca_file:
        if not os.path.isfile(cfg.ca_file):
            raise TLSFileError(f"ca_file {cfg.ca_file!r}: no such file")
        try:
            ctx.load_verify_locations(cafile=cfg.ca_file)
        except (ssl.SSLError, OSError) as e:
            raise TLSFileError(
                f"ca_file {cfg.ca_file!r}: failed to parse root ca certificate: {e}"
            ) from e
    else:
        ctx.load_default_certs(purpose)


def server_context(cfg: TLSConfig, *, force_verify: bool = False) -> ssl.SSLContext:
    """The context a listener accepts with. ``force_verify`` (routes, gateways) always
    requires a peer certificate signed by ``ca_file``, as nats-server does for links.
    Raises TLSFileError naming the file that cannot be used.
    """
    ctx = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cfg)
    _load_chain(ctx, cfg)
    if cfg.verify or force_verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_ca(ctx, cfg, ssl.Purpose.CLIENT_AUTH)
    elif cfg.ca_file:
        _load_ca(ctx, cfg, ssl.Purpose.CLIENT_AUTH)  # checked even when unused, as Go does
    return ctx


def client_context(cfg: TLSConfig) -> ssl.SSLContext:
    """The context a dialer connects with: verifies the server against ``ca_file`` (system
    roots without one) and its hostname, unless ``insecure``; presents ``cert_file`` if set.
    """
    ctx = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cfg)
    _load_chain(ctx, cfg)
    if cfg.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cfg.ca_file:
            _load_ca(ctx, cfg, ssl.Purpose.SERVER_AUTH)
    else:
        _load_ca(ctx, cfg, ssl.Purpose.SERVER_AUTH)
    return ctx


@dataclass(slots=True)
class TLSContexts:
    """The contexts of one loaded config. Built whole, then swapped whole on reload, so a new
    connection sees either the old set or the new one; established connections keep theirs.
    """

    client: ssl.SSLContext | None = None
    client_cfg: TLSConfig | None = None
    https: ssl.SSLContext | None = None
    route_server: ssl.SSLContext | None = None
    route_client: ssl.SSLContext | None = None
    route_cfg: TLSConfig | None = None
    gateway_server: ssl.SSLContext | None = None
    gateway_client: ssl.SSLContext | None = None
    gateway_cfg: TLSConfig | None = None
    #: Per remote gateway name: (context, config) from its own ``tls {}``.
    remote_gateways: dict[str, tuple[ssl.SSLContext, TLSConfig]] = field(default_factory=dict)

    @classmethod
    def build(cls, opts: Any) -> TLSContexts:
        """Build every context the options ask for. Raises TLSFileError (nothing swapped)."""
        out = cls()
        cfg: TLSConfig | None = getattr(opts, "tls", None)
        if cfg is not None:
            out.client = server_context(cfg)
            out.client_cfg = cfg
            if getattr(opts, "https_port", 0):
                # The monitor never asks for client certificates, as nats-server's https.
                out.https = server_context(_no_verify(cfg))
        cluster = getattr(opts, "cluster", None)
        rcfg = getattr(cluster, "tls", None) if cluster is not None else None
        if rcfg is not None:
            out.route_server, out.route_client = _link_contexts(rcfg)
            out.route_cfg = rcfg
        gw = getattr(opts, "gateway", None)
        gcfg = getattr(gw, "tls", None) if gw is not None else None
        if gcfg is not None:
            out.gateway_server, out.gateway_client = _link_contexts(gcfg)
            out.gateway_cfg = gcfg
        for remote in getattr(gw, "gateways", None) or []:
            rc = getattr(remote, "tls", None)
            if rc is not None:
                out.remote_gateways[remote.name] = (client_context(rc), rc)
        return out


def _link_contexts(cfg: TLSConfig) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A link block's (listener, dialler) contexts. Links are mutual TLS whatever ``verify``
    says (nats-server forces it for routes and gateways), so the listener always asks for the
    peer's certificate; the dialler presents the same certificate."""
    return server_context(cfg, force_verify=True), client_context(cfg)


def _no_verify(cfg: TLSConfig) -> TLSConfig:
    from dataclasses import replace

    return replace(cfg, verify=False, verify_and_map=False, pinned_certs=frozenset())


# --------------------------------------------------------------------------------------------
# the upgrade


@dataclass(slots=True, frozen=True)
class TLSInfo:
    """What monitoring and auth need from a finished handshake."""

    version: str  # "1.2" / "1.3", as nats-server's tlsVersion()
    cipher_suite: str  # Go's name, e.g. "TLS_AES_128_GCM_SHA256"
    peer_cert_der: bytes | None = None
    #: Set when the TLS handshake came before INFO (``handshake_first``): /connz tls_first.
    tls_first: bool = False

    @property
    def peer_spki_sha256(self) -> str | None:
        """Hex SHA-256 of the peer certificate's DER SubjectPublicKeyInfo (pinned_certs)."""
        return spki_sha256(self.peer_cert_der) if self.peer_cert_der else None

    def peer_certs_json(self) -> list[dict[str, str]]:
        """/connz ``tls_peer_certs`` (the leaf only: Python exposes no verified chain)."""
        if not self.peer_cert_der:
            return []
        from cryptography import x509

        cert = x509.load_der_x509_certificate(self.peer_cert_der)
        return [
            {
                "subject": cert.subject.rfc4514_string(),
                "spki_sha256": spki_sha256(self.peer_cert_der),
                "cert_sha256": hashlib.sha256(self.peer_cert_der).hexdigest(),
            }
        ]


def spki_sha256(der: bytes) -> str:
    """nats-server's pinned-cert key: sha256 of the certificate's raw SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def tls_info(transport: asyncio.BaseTransport, *, tls_first: bool = False) -> TLSInfo | None:
    """The TLSInfo of an upgraded transport, None for a plain one."""
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return None
    version = (obj.version() or "").removeprefix("TLSv")
    cipher = obj.cipher()
    name = cipher[0] if cipher else ""
    return TLSInfo(
        version=version,
        cipher_suite=GO_SUITE_NAMES.get(name, name),
        peer_cert_der=obj.getpeercert(binary_form=True),
        tls_first=tls_first,
    )


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for a failed handshake, in terms an operator can act on."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "TLS handshake timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        msg = exc.verify_message or str(exc)
        if exc.verify_code in (19, 20, 21):  # self-signed in chain / unknown issuer
            return f"certificate signed by unknown authority ({msg})"
        if exc.verify_code == 10:
            return "certificate has expired"
        if exc.verify_code == 62 or "Hostname mismatch" in msg or "IP address mismatch" in msg:
            return f"certificate is not valid for the host name ({msg})"
        return f"certificate verify failed: {msg}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        mapping = {
            "PEER_DID_NOT_RETURN_A_CERTIFICATE": "client did not provide a certificate",
            "CERTIFICATE_REQUIRED": "peer did not provide a certificate",
            "TLSV1_ALERT_UNKNOWN_CA": "peer rejected our certificate: unknown certificate authority",
            "SSLV3_ALERT_BAD_CERTIFICATE": "peer rejected our certificate (bad certificate)",
            "TLSV13_ALERT_CERTIFICATE_REQUIRED": "peer requires a client certificate",
            "SSLV3_ALERT_CERTIFICATE_EXPIRED": "peer rejected our certificate: expired",
            "WRONG_VERSION_NUMBER": "peer is not speaking TLS",
            "HTTP_REQUEST": "peer sent plain HTTP",
            "UNSUPPORTED_PROTOCOL": "no common TLS version",
            "NO_SHARED_CIPHER": "no shared cipher suite",
        }
        return mapping.get(reason, f"TLS error: {reason}")
    if isinstance(exc, ConnectionError | OSError):
        return f"connection lost during TLS handshake: {str(exc) or 'EOF'}"
    return f"TLS handshake error: {exc!r}"


def check_peer(conn: Any, transport: asyncio.BaseTransport) -> bool:
    """Record ``conn.tls_info`` for a TLS transport and enforce ``conn.tls_pins``.

    Called by Connection.connection_made before the protocol starts, so a connection whose
    certificate is not pinned never registers. Returns False after aborting the connection.
    """
    info = tls_info(transport, tls_first=bool(getattr(conn, "tls_first", False)))
    conn.tls_info = info
    pins: frozenset[str] = getattr(conn, "tls_pins", frozenset())
    if info is None or not pins:
        return True
    spki = info.peer_spki_sha256
    if spki in pins:
        return True
    why = "client did not provide a certificate" if spki is None else f"key id {spki}"
    logger.error("%s TLS handshake error: certificate not pinned (%s)", conn.label(), why)
    conn.close_reason = "TLS Handshake Failure"
    conn.closed = True
    transport.abort()
    return False


async def accept_tls(
    sock: socket.socket,
    conn: Any,
    *,
    ctx: ssl.SSLContext | None,
    cfg: TLSConfig | None,
    info: Any = None,
    allow_non_tls: bool = False,
) -> bool:
    """Run an accepted socket through nats-server's TLS sequence, then hand it to ``conn``.

    Order (nats-server's createClient): ``handshake_first`` does the handshake before INFO
    (with a fallback delay: INFO first if no ClientHello arrives in time); otherwise INFO is
    written in plaintext, and with ``allow_non_tls`` the first byte decides (0x16 = TLS).
    ``info() -> bytes`` builds the plaintext INFO (None: the protocol sends its own
    from ``on_open``; ``conn.info_sent`` tells it whether that already happened). The
    protocol's ``connection_made`` runs only with the final transport (TLS or plain), so no
    handshake byte is ever parsed as protocol. Returns False (socket closed, reason logged)
    on failure.
    """
    loop = asyncio.get_running_loop()
    label = f"{conn.host}:{conn.port} - cid:{conn.cid}"
    use_tls = ctx is not None and cfg is not None
    tls_first = use_tls and cfg is not None and cfg.handshake_first
    timeout = cfg.timeout if cfg is not None else DEFAULT_TLS_TIMEOUT
    try:
        if tls_first and cfg is not None and cfg.handshake_first_fallback > 0:
            pre = await peek_socket(sock, 1, cfg.handshake_first_fallback)
            if pre is None:
                sock.close()
                return False
            tls_first = bool(pre)
        if use_tls and not tls_first:
            if info is not None:
                await loop.sock_sendall(sock, info())
                conn.info_sent = True
            if allow_non_tls:
                pre = await peek_socket(sock, 1, timeout)
                if pre is None:
                    sock.close()
                    return False
                use_tls = bool(pre) and pre[0] == TLS_HANDSHAKE_BYTE
        conn.tls_first = tls_first
        if use_tls and cfg is not None:
            conn.tls_pins = cfg.pinned_certs
        await asyncio.wait_for(
            loop.connect_accepted_socket(
                lambda: conn,
                sock,
                ssl=ctx if use_tls else None,
                ssl_handshake_timeout=timeout if use_tls else None,
            ),
            timeout + 1.0,
        )
    except Exception as exc:  # noqa: BLE001 - every failure closes the socket the same way
        logger.error("%s TLS handshake error: %s", label, failure_reason(exc))
        with contextlib.suppress(OSError):
            sock.close()
        return False
    return not conn.closed


async def peek_socket(sock: socket.socket, n: int, timeout: float) -> bytes | None:
    """Up to ``n`` bytes waiting on ``sock``, left unread; b"" on timeout, None on EOF."""
    loop = asyncio.get_running_loop()

    def try_peek() -> bytes | None:
        try:
            return sock.recv(n, socket.MSG_PEEK) or None
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return None

    data = try_peek()
    if data == b"" and timeout > 0:
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(ready, timeout)
        finally:
            loop.remove_reader(sock.fileno())
        data = try_peek()
    return data


class TLSListener:
    """Listening sockets that accept themselves, so each connection can be run through
    ``accept_tls`` before its protocol sees it. Offers what the server uses of
    ``asyncio.Server``: ``sockets``, ``close``, ``is_serving``, ``wait_closed``.
    """

    def __init__(self, sock: socket.socket, handle: Any, *more: socket.socket) -> None:
        self._socks = [sock, *more]
        self._handle = handle
        self._tasks: set[asyncio.Task[Any]] = set()
        self._serving = True
        self._loop = asyncio.get_running_loop()
        self._accepting = [self._loop.create_task(self._accept_loop(s)) for s in self._socks]

    @classmethod
    async def create(cls, host: str | None, port: int, handle: Any, backlog: int = 1024):
        """Bind ``host:port`` (port 0/-1: any) and start accepting; ``handle(sock)`` is a
        coroutine function run once per accepted socket. No host means every address: an
        IPv4 socket and, where the host has IPv6, an IPv6-only one on the same port (as
        asyncio's create_server, so IPv4 peers keep plain IPv4 addresses)."""
        port = max(port, 0)
        if host and ":" in host:
            socks = [socket.create_server((host, port), family=socket.AF_INET6, backlog=backlog)]
        else:
            socks = [socket.create_server((host or "0.0.0.0", port), backlog=backlog)]
            if not host and socket.has_ipv6:
                port = socks[0].getsockname()[1]
                v6: socket.socket | None = None
                try:
                    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                    v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    v6.bind(("::", port))
                    v6.listen(backlog)
                    socks.append(v6)
                except OSError:  # no IPv6 on this host: IPv4 only
                    if v6 is not None:
                        v6.close()
        for s in socks:
            s.setblocking(False)
        return cls(*socks[:1], handle, *socks[1:])

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._socks) if self._serving else []

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        for task in self._accepting:
            task.cancel()
        for s in self._socks:
            s.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._accepting, return_exceptions=True)

    async def _accept_loop(self, listening: socket.socket) -> None:
        while self._serving:
            try:
                sock, _ = await self._loop.sock_accept(listening)
            except asyncio.CancelledError:
                raise
            except OSError as e:
                if not self._serving:
                    return
                logger.error("Error accepting connection: %s", e)
                await asyncio.sleep(0.05)  # EMFILE and friends: do not spin
                continue
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._handle(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def cert_not_after(path: str | None) -> str | None:
    """RFC 3339 expiry of the first certificate in ``path`` (/varz tls_cert_not_after)."""
    if not path:
        return None
    try:
        from cryptography import x509

        with open(path, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def varz_fields(opts: Any) -> dict[str, Any]:
    """/varz TLS fields for the client port, as nats-server reports them."""
    cfg: TLSConfig | None = getattr(opts, "tls", None)
    out: dict[str, Any] = {"tls_timeout": _num(cfg.timeout if cfg else DEFAULT_TLS_TIMEOUT)}
    if cfg is None:
        return out
    if not getattr(opts, "allow_non_tls", False):
        out["tls_required"] = True
    if cfg.verify:
        out["tls_verify"] = True
    not_after = cert_not_after(cfg.cert_file)
    if not_after:
        out["tls_cert_not_after"] = not_after
    return out


def connz_fields(info: TLSInfo, auth: bool) -> dict[str, Any]:
    """/connz TLS fields of one connection (peer certificates only with ``auth=true``)."""
    out: dict[str, Any] = {"tls_version": info.version, "tls_cipher_suite": info.cipher_suite}
    if auth and info.peer_cert_der:
        out["tls_peer_certs"] = info.peer_certs_json()
    if info.tls_first:
        out["tls_first"] = True
    return out


def map_login(auth: Any, info: TLSInfo | None) -> Any:
    """``verify_and_map``: the AuthResult of the user the client certificate names.

    nats-server's checkClientTLSCertSubject order: email SANs, DNS SANs and URI SANs as user
    names, then the subject DN, compared attribute by attribute (in order, then in any order)
    with every configured user name that parses as a DN. Passwords are not checked.
    """
    from .auth import AuthResult

    if info is None or not info.peer_cert_der:
        return AuthResult(False)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(info.peer_cert_der)
    users = auth.users
    for name in map_cert_identities(info.peer_cert_der):
        user = users.get(name)
        if user is not None:
            return AuthResult(True, user.account, user)
    subject = [(a.oid.dotted_string, a.value) for a in cert.subject]
    for name, user in users.items():
        if "=" not in name:
            continue
        try:
            dn = x509.Name.from_rfc4514_string(name)
        except ValueError:
            continue
        attrs = [(a.oid.dotted_string, a.value) for a in dn]
        if attrs == subject or sorted(attrs) == sorted(subject):
            return AuthResult(True, user.account, user)
    return AuthResult(False)


def map_cert_identities(der: bytes) -> list[str]:
    """Candidate user names a certificate offers to ``verify_and_map``, in nats-server's order:
    email addresses, DNS SANs, URI SANs, then the subject DN (RFC 4514, as Go prints it).
    """
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    out: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        out.extend(san.get_values_for_type(x509.RFC822Name))
        out.extend(san.get_values_for_type(x509.DNSName))
        out.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    out.append(cert.subject.rfc4514_string())
    return out

"""TLS on routes and gateways, in nats-server's order and with its checks.

What nats-server does (server/route.go createRoute, gateway.go createGateway, client.go
doTLSHandshake), and so what we do:

* TLS is decided by configuration only: ``cluster { tls {} }`` for routes, ``gateway { tls {} }``
  for gateway listeners and dialling, a ``gateways[]`` entry's own ``tls {}`` for dialling that
  remote (gateways learnt by gossip use the ``gateway`` block). A URL's scheme does not turn
  TLS on; nats-server even dials a ``tls://`` URL in plaintext when no block applies, which
  we refuse as a config error instead (options.py ``validate``).
* The handshake comes first, on both sides, before any INFO or CONNECT: a TLS listener writes
  nothing in plaintext, and a plaintext peer never gets an INFO from it.
* Mutual TLS always: the listener requires the dialler's certificate and verifies it against
  ``ca_file`` (``tls.server_context(force_verify=True)``); the dialler verifies the listener's
  certificate against ``ca_file`` and the URL's host (an IP URL checks the IP SANs, unless a
  hostname is known from another URL of the same peer set), unless ``insecure``.
* ``insecure`` skips the dialler's checks, with nats-server's start-up warning.
* A failure is logged at error level with the reason (``TLS route handshake error: ...``) and
  the link is not made; the dialler retries like after any other failed attempt. INFO and
  CONNECT carry ``tls_required``/``tls_verify``.

Listeners and dialers here hand a socket to its connection only once TLS is up (``ssl=`` on
``create_connection``/``connect_accepted_socket``; pausing a plain transport in
``connection_made`` is not enough under uvloop, which starts reading regardless), so a link's
``connection_made``/``on_open`` run unchanged on the TLS transport.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable
from typing import Any

from scserver.log import logger
from scserver.net.dial import connect_tcp
from scserver.protocol.parser import ROUTE
from scserver.tls import TLSConfig, TLSListener, failure_reason, map_cert_identities

__all__ = [
    "accept_context",
    "cert_authorized",
    "dial",
    "dial_context",
    "info_fields",
    "listen",
    "lost_reason",
    "monitor_fields",
    "remote_tls_timeout",
    "required",
    "tls_name",
    "varz_fields",
]

Picked = tuple[ssl.SSLContext, TLSConfig]


def _contexts(server: Any) -> Any:
    """The server's current ``tls.TLSContexts`` (swapped whole on reload), or None."""
    return getattr(server, "tls", None)


def _word(kind: int) -> str:
    return "route" if kind == ROUTE else "gateway"


def dial_context(server: Any, kind: int, remote: str = "") -> Picked | None:
    """What a dialled link uses: the cluster block's client context for routes; for a gateway
    the remote entry's own block if it has one, else the gateway block. None: plaintext."""
    tls = _contexts(server)
    if tls is None:
        return None
    if kind == ROUTE:
        return _picked(tls.route_client, tls.route_cfg)
    own = tls.remote_gateways.get(remote)
    if own is not None:
        return own
    return _picked(tls.gateway_client, tls.gateway_cfg)


def accept_context(server: Any, kind: int) -> Picked | None:
    """The listener's context (always requiring a peer certificate), or None: plaintext."""
    tls = _contexts(server)
    if tls is None:
        return None
    if kind == ROUTE:
        return _picked(tls.route_server, tls.route_cfg)
    return _picked(tls.gateway_server, tls.gateway_cfg)


def _picked(ctx: ssl.SSLContext | None, cfg: TLSConfig | None) -> Picked | None:
    """Both halves or nothing: a block whose context was not built means plaintext."""
    return (ctx, cfg) if ctx is not None and cfg is not None else None


def required(server: Any, conn: Any) -> bool:
    """Whether the current config says this link must run over TLS: the context a dial to
    its remote would use, or the listener's for an accepted link (see scserver.link_reload)."""
    if conn.outbound:
        return dial_context(server, conn.kind, getattr(conn, "gw_name", "")) is not None
    return accept_context(server, conn.kind) is not None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def tls_name(url: str, known: list[str]) -> str:
    """The name a dialler verifies the peer's certificate against (nats-server's tlsName):
    the URL's host, except that an IP host is replaced by the first hostname among ``known``
    URLs of the same peer set, when there is one."""
    from scserver.link import parse_url

    host = parse_url(url, 0)[0]
    if not _is_ip(host):
        return host
    for other in known:
        h = parse_url(str(other), 0)[0]
        if h and not _is_ip(h):
            return h
    return host


async def listen(
    server: Any, factory: Callable[[], Any], kind: int, host: str | None, port: int
) -> Any:
    """The route or gateway listener. Sockets are accepted here and each is handed to its
    connection only once TLS is up, when the contexts current at accept time ask for TLS
    (``_accept``): like nats-server, which decides per connection, a reload that turns link TLS
    on never leaves a listener taking plaintext peers."""
    _warn_insecure(server, kind)

    async def handle(sock: socket.socket) -> None:
        await _accept(server, factory, kind, sock)

    return TLSListener(_bind(host, max(port, 0)), handle)


def _bind(host: str | None, port: int) -> socket.socket:
    """The listening socket; no host means every address, IPv6 too where the host has it
    (as asyncio's create_server and Go's wildcard listeners do)."""
    sock = None
    if host is None and socket.has_dualstack_ipv6():
        with contextlib.suppress(OSError):
            sock = socket.create_server(
                ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024
            )
    if sock is None:
        sock = socket.create_server((host or "0.0.0.0", port), backlog=1024)
    sock.setblocking(False)
    return sock


def _warn_insecure(server: Any, kind: int) -> None:
    """nats-server's start-up warning when ``insecure`` turns off the dialler's checks."""
    tls = _contexts(server)
    if tls is None:
        return
    if kind == ROUTE:
        insecure = tls.route_cfg is not None and tls.route_cfg.insecure
    else:
        cfgs = [tls.gateway_cfg] + [cfg for _, cfg in tls.remote_gateways.values()]
        insecure = any(cfg is not None and cfg.insecure for cfg in cfgs)
    if insecure:
        logger.warning(
            "TLS certificate chain and hostname of solicited %ss will not be verified. "
            "DO NOT USE IN PRODUCTION!",
            _word(kind),
        )


async def _accept(server: Any, factory: Callable[[], Any], kind: int, sock: socket.socket) -> None:
    conn = factory()
    try:
        conn.host, conn.port = sock.getpeername()[:2]
    except OSError:
        sock.close()
        return
    picked = accept_context(server, kind)  # read now: a reload may have swapped the contexts
    if picked is not None:
        conn.tls_pins = picked[1].pinned_certs
        logger.debug("%s Starting TLS %s server handshake", conn.label(), _word(kind))
    try:
        await server.loop.connect_accepted_socket(
            lambda: conn,
            sock,
            ssl=picked[0] if picked else None,
            ssl_handshake_timeout=picked[1].timeout if picked else None,
        )
    except Exception as exc:  # noqa: BLE001 - every failure closes the socket the same way
        _log_failure(conn, kind, exc)
        with contextlib.suppress(OSError):
            sock.close()


async def dial(
    server: Any,
    factory: Callable[[], Any],
    kind: int,
    url: str,
    host: str,
    port: int,
    remote: str = "",
    known: list[str] | None = None,
) -> Any:
    """Connect a route or gateway; with TLS the handshake is complete before the connection's
    ``connection_made`` runs. Raises OSError when the peer cannot be reached or TLS fails (a
    TLS failure is logged here first, at error level, as nats-server does)."""
    picked = dial_context(server, kind, remote)
    sock = await connect_tcp(server.loop, host, port)
    if picked is None:
        try:
            _, proto = await server.loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise
        return proto
    ctx, cfg = picked
    made: list[Any] = []

    def make() -> Any:
        conn = factory()
        conn.tls_pins = cfg.pinned_certs
        made.append(conn)
        return conn

    try:
        _, proto = await server.loop.create_connection(
            make,
            sock=sock,
            ssl=ctx,
            server_hostname=tls_name(url, known or []),
            ssl_handshake_timeout=cfg.timeout,
        )
    except BaseException as exc:
        sock.close()
        if not isinstance(exc, Exception):
            raise
        if made:  # the protocol exists once the handshake began: TLS itself failed
            made[0].host, made[0].port = host, port
            _log_failure(made[0], kind, exc)
        if isinstance(exc, OSError):
            raise
        raise OSError(str(exc)) from exc
    return proto


def _log_failure(conn: Any, kind: int, exc: BaseException) -> None:
    logger.error("%s TLS %s handshake error: %s", conn.label(), _word(kind), failure_reason(exc))


def lost_reason(conn: Any, exc: BaseException | None) -> None:
    """Log why a TLS link dropped when TLS itself says so.

    With TLS 1.3 the dialler's handshake completes before the listener has checked the
    dialler's certificate; a refusal then arrives as an alert on the first read. Logging it
    names the reason on the dialling side too.
    """
    if getattr(conn, "tls_info", None) is None:
        return
    if isinstance(exc, ssl.SSLError):
        logger.error("%s TLS %s error: %s", conn.label(), _word(conn.kind), failure_reason(exc))
    elif conn.outbound and not conn.got_info:
        # Some event loops (uvloop) report the peer's alert as a plain close.
        logger.error(
            "%s TLS %s error: peer closed the link right after the TLS handshake, before its "
            "INFO (did it reject our certificate?)",
            conn.label(),
            _word(conn.kind),
        )


def info_fields(server: Any, kind: int) -> dict[str, Any]:
    """INFO fields of a route or gateway listener: nats-server sets both when TLS is on."""
    return {"tls_required": True, "tls_verify": True} if accept_context(server, kind) else {}


def monitor_fields(conn: Any) -> dict[str, Any]:
    """/gatewayz connection fields (nats-server's ConnInfo): TLS version and cipher suite."""
    info = getattr(conn, "tls_info", None)
    if info is None:
        return {}
    return {"tls_version": info.version, "tls_cipher_suite": info.cipher_suite}


def varz_fields(cfg: TLSConfig | None) -> dict[str, Any]:
    """/varz ``cluster``/``gateway`` TLS fields: links always verify, so both flags are set."""
    if cfg is None:
        return {}
    return {"tls_timeout": cfg.timeout, "tls_required": True, "tls_verify": True}


def remote_tls_timeout(remote: Any, gateway: Any) -> float:
    """/varz ``gateway.gateways[].tls_timeout``: the entry's own, else the gateway block's."""
    cfg = getattr(remote, "tls", None) or getattr(gateway, "tls", None)
    return cfg.timeout if cfg is not None else 2


def cert_authorized(server: Any, kind: int, conn: Any) -> bool | None:
    """nats-server's certificate authorization of an accepted link (isRouterAuthorized /
    isGatewayAuthorized), or None when the listener's ``tls {}`` asks for none (the caller
    then checks user and password as usual).

    With ``verify_cert_and_check_known_urls`` a DNS SAN of the peer's certificate must match
    the host of a configured route URL (gateways: of any remote's URL), a leading ``*`` label
    matching exactly one label; with ``verify_and_map`` one of the certificate's identities
    (email, DNS, URI SANs, subject DN) must equal the configured link username. Either is
    enough; without a certificate neither is.
    """
    picked = accept_context(server, kind)
    if picked is None:
        return None
    cfg = picked[1]
    if not (cfg.verify_and_map or cfg.check_known_urls):
        return None
    info = getattr(conn, "tls_info", None)
    der = info.peer_cert_der if info is not None else None
    if not der:
        return False
    opts = server.opts
    if kind == ROUTE:
        username = opts.cluster.username
        urls = [str(u) for u in opts.cluster.routes]
    else:
        username = opts.gateway.username
        urls = [str(u) for r in opts.gateway.gateways for u in r.urls]
    if cfg.check_known_urls and any(_dns_matches(n, urls) for n in _dns_sans(der)):
        return True
    return bool(cfg.verify_and_map and username and username in map_cert_identities(der))


def _dns_sans(der: bytes) -> list[str]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def _dns_matches(name: str, urls: list[str]) -> bool:
    """RFC 6125 6.4.3 as nats-server applies it: same number of labels, ``*`` only as the
    whole left-most label."""
    from scserver.link import parse_url

    labels = name.lower().split(".")
    for url in urls:
        host = parse_url(url, 0)[0].lower().split(".")
        if len(host) != len(labels):
            continue
        start = 1 if labels[0] == "*" else 0
        if labels[start:] == host[start:]:
            return True
    return False

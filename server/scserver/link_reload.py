"""What a config reload does to the routes and gateways that are already up.

Two questions are asked of every established link once the new options and SSL contexts are
in place (``Server.reload``):

* Does its login still hold? nats-server's ``reloadAuthorization`` checks every *accepted*
  route again with the CONNECT it sent (``isRouterAuthorized``: ``tls { verify_and_map /
  verify_cert_and_check_known_urls }`` first, else the ``cluster { authorization {} }`` user)
  and ends those that no longer pass with ``-ERR 'Authorization Violation'`` (close reason
  "Authentication Failure"). Links we dialled are not checked: we do not hold the peer's
  credentials. nats-server refuses any reload that changes the ``gateway`` block (only its TLS
  files may change); scserver applies gateway changes (remotes added and removed, see
  ``GatewayManager.reload``), so it applies a changed ``gateway { authorization {} }`` too and
  checks accepted gateways the same way (``isGatewayAuthorized``), rather than keep admitting
  credentials the config no longer lists.

* Does it run in plaintext where the new config asks for TLS? nats-server applies a changed
  ``cluster { tls {} }`` to new routes and keeps established plaintext ones (and refuses a
  ``gateway { tls {} }`` change). scserver applies both and closes the established plaintext
  links the new config says must be TLS: each side dials again, and only over TLS (a config
  that asks for security never keeps running without it). Links that already run TLS stay,
  whatever the reload changed (certificates rotated, TLS turned off): as in nats-server, new
  certificates are used by new links only. A link whose dial started before the reload and
  completes after it in plaintext is refused in ``LinkConnection.connection_made``
  (:func:`plaintext_refused`).
"""

from __future__ import annotations

from typing import Any

from scserver import link_tls
from scserver.log import logger
from scserver.protocol import errors as E
from scserver.protocol.parser import ROUTE

__all__ = ["apply", "plaintext_refused"]


def _word(conn: Any) -> str:
    return "route" if conn.kind == ROUTE else "gateway"


def _managers(server: Any) -> list[Any]:
    return [m for m in (server.routes, server.gateway) if m is not None]


def _links(manager: Any) -> list[Any]:
    """Registered and pending links of one manager, each once."""
    seen: dict[int, Any] = {}
    for c in list(manager.connections()) + list(manager.pending):
        seen[id(c)] = c
    return [c for c in seen.values() if not c.closed]


def apply(server: Any) -> None:
    """Run both checks over every link (after ``server.opts`` and ``server.tls`` are swapped)."""
    for manager in _managers(server):
        for conn in _links(manager):
            if _close_if_plaintext(server, conn):
                continue
            _recheck_login(manager, conn)


def _close_if_plaintext(server: Any, conn: Any) -> bool:
    if conn.tls_info is not None or not link_tls.required(server, conn):
        return False
    logger.info(
        "%s Config reload: closing plaintext %s link, the configuration now requires TLS",
        conn.label(),
        _word(conn),
    )
    conn.close("TLS Required")
    return True


def _recheck_login(manager: Any, conn: Any) -> None:
    """An accepted link whose CONNECT no longer passes is ended as an authorization violation."""
    if conn.outbound or not conn.got_connect:
        return  # dialled by us, or still in its handshake (checked when its CONNECT comes)
    if manager.authorized(conn.connect_opts, conn):
        return
    logger.error("%s %s authentication error after config reload", conn.label(), conn.log_kind)
    conn.close("Authentication Failure", E.AUTH_VIOLATION)


def plaintext_refused(conn: Any, transport: Any) -> bool:
    """True (and the transport aborted) when a link comes up in plaintext although the
    current config requires TLS for it: its dial or accept began before a reload."""
    if transport.get_extra_info("ssl_object") is not None:
        return False
    if not link_tls.required(conn.server, conn):
        return False
    peer = transport.get_extra_info("peername")
    if peer:
        conn.host, conn.port = peer[0], peer[1]
    logger.error(
        "%s Refusing plaintext %s link: the configuration was reloaded to require TLS",
        conn.label(),
        _word(conn),
    )
    transport.abort()
    return True

"""Config reload as a typed diff of options, each change applied where it lives.

``Server.reload`` reads the file again (keeping command-line flags on top) and hands the old and
new options here. :func:`diff` lists what changed as :class:`OptionChange` values that say what
kind of change each one is (nats-server's ``option`` interface with ``IsLogChange``,
``IsTraceLevelChange``, ``IsAuthChange``, ``IsTLSChange``: ``reload.go``); :func:`apply` then
refuses what cannot change at runtime and applies the rest:

* logging options reconfigure the logger, and a trace level change reaches every existing
  connection, which keeps its own ``trace`` snapshot for the hot path (as nats-server's clients
  store their trace level: "clients store trace level separately");
* TLS contexts are rebuilt on every reload (certificate files may have changed on disk under
  the same names); new connections use them, links that TLS now requires are checked again;
* accounts, users and imports are applied and every client is authorized again;
* a changed ``cluster {}``/``gateway {}`` block goes to its manager;
* limits reach connected clients from their next operation (no INFO push, as nats-server).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from scserver import imports, link_reload, log
from scserver.log import logger, trace_enabled
from scserver.tls import TLSContexts, TLSListener

#: Options a running server keeps (nats-server refuses to reload them); max_subscriptions as
#: nats-server: "config reload not supported for MaxSubs".
IMMUTABLE = (
    "host",
    "port",
    "http_port",
    "http_host",
    "https_port",
    "max_subscriptions",
    "server_name",
)
LOGGING = frozenset({"debug", "trace", "logtime", "log_file"})
TLS = frozenset({"tls", "allow_non_tls"})
AUTH = frozenset(
    {
        "users",
        "token",
        "accounts",
        "no_auth_user",
        "auth_block_defined",
        "auth_timeout",
        "system_account",
        "no_system_account",
        "mappings",
        "link_configs",
    }
)
LIMITS = frozenset({"max_payload", "max_control_line"})
#: Bookkeeping fields of Options, not settings.
_NOT_OPTIONS = frozenset({"config_file", "warnings", "flag_overrides"})


@dataclass(frozen=True, slots=True)
class OptionChange:
    """One option whose value differs between the running and the reloaded config."""

    name: str
    old: Any
    new: Any

    @property
    def immutable(self) -> bool:
        return self.name in IMMUTABLE

    @property
    def is_logging(self) -> bool:
        return self.name in LOGGING

    @property
    def is_trace_level(self) -> bool:
        """Tracing (or debug, which orders it) changed: connections' snapshots must follow."""
        return self.name in ("trace", "debug")

    @property
    def is_tls(self) -> bool:
        return self.name in TLS

    @property
    def is_auth(self) -> bool:
        return self.name in AUTH

    @property
    def is_limit(self) -> bool:
        return self.name in LIMITS


def diff(old: Any, new: Any) -> list[OptionChange]:
    """Every option that differs between ``old`` and ``new`` (in field order)."""
    out = []
    for f in fields(new):
        if f.name in _NOT_OPTIONS:
            continue
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before != after:
            out.append(OptionChange(f.name, before, after))
    return out


def apply(server: Any, old: Any, new: Any, why: str) -> bool:
    """Apply ``new`` over the running ``old`` options; False (nothing applied, logged) when
    the new config cannot be used as it is (certificates, TLS on a plaintext listener)."""
    tls = _tls_contexts(server, old, new)
    if tls is None:
        return False
    changes = diff(old, new)
    for c in changes:
        if c.immutable:
            logger.warning(
                "Config reload: option %r cannot be changed at runtime, kept as %r", c.name, c.old
            )
            setattr(new, c.name, c.old)
    changes = [c for c in changes if not c.immutable]
    new.flag_overrides = getattr(old, "flag_overrides", {})
    server.opts = new
    server.tls = tls  # new connections handshake with the new certificates from now on
    server.config_time = time.time()
    server.reloads += 1
    if any(c.is_logging for c in changes):
        log.configure(new.debug, new.trace, new.logtime, new.log_file)
        if any(c.is_trace_level for c in changes):
            refresh_trace(server)
    server.apply_accounts(new)
    server.reauthorize_clients()
    link_reload.apply(server)  # links: logins checked again, plaintext ones TLS now requires
    imports.apply(server, new)
    names = {c.name for c in changes}
    if "cluster" in names and server.routes is not None:
        server.routes.reload(old, new)
    if "gateway" in names:
        server.loop.create_task(_gateways(server, old, new))
    # New limits hold for connected clients from their next operation; nats-server does not
    # push them an INFO for it (only new clients see the new max_payload).
    server.info_changed(notify=False)
    if any(c.is_limit for c in changes):
        for client in server.clients.values():
            client.parser.max_payload = new.max_payload
            client.parser.max_control_line = new.max_control_line
    logger.info("Reloaded server configuration (%s)", why)
    return True


def refresh_trace(server: Any) -> None:
    """Give every connection (clients, registered and pending links) the current trace level."""
    on = trace_enabled()
    conns = list(server.all_connections())
    for manager in server.link_managers():
        conns.extend(manager.pending)
    for c in conns:
        c.set_trace(on)


def _tls_contexts(server: Any, old: Any, new: Any) -> TLSContexts | None:
    """The SSL contexts of a new config, or None (reload refused, old ones kept) when a
    certificate or key cannot be loaded, or when TLS would be added to a client listener
    started without it (that listener cannot hand sockets to a handshake: restart)."""
    try:
        tls = TLSContexts.build(new)
    except Exception as exc:  # noqa: BLE001 - any failure keeps the running contexts
        logger.error("Failed to reload server configuration: %s", exc)
        return None
    if new.tls is not None and old.tls is None and server.client_listener is not None:
        if not isinstance(server.client_listener, TLSListener):
            logger.error(
                "Failed to reload server configuration: adding a tls {} block to a "
                "server started without one needs a restart"
            )
            return None
    if bool(new.https_port) and old.https_port and tls.https is None:
        logger.error("Failed to reload server configuration: https_port needs tls {}")
        return None
    return tls


async def _gateways(server: Any, old: Any, new: Any) -> None:
    if server.gateway is None:
        from scserver.gateway import GatewayManager

        server.gateway = GatewayManager(server)
        await server.gateway.start()
    elif new.gateway is None:
        logger.warning("Config reload: removing the gateway block needs a restart")
    else:
        server.gateway.reload(old, new)


__all__ = ["OptionChange", "apply", "diff", "refresh_trace"]

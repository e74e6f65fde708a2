"""What the route and gateway managers share: the skeleton of a server-to-server endpoint.

Both listen on a port of their own (TLS per connection, ``link_tls``), dial peers with the
same error handling, keep a set of links still in their handshake, give accepted links the
same authorization timeout and certificate check, supervise a link by waiting for it to close
and dialling again after a jittered delay, and close everything on shutdown. Only what a kind
does with its registry, gossip and interest differs; that stays in ``route.py`` and
``gateway/manager.py``. A new link kind (leafnodes) subclasses :class:`LinkManager`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from scserver import auth, link_tls
from scserver.core.ports import LinkServices
from scserver.log import logger

#: Seconds between attempts to reach a configured peer again (plus up to JITTER).
RECONNECT_DELAY = 1.0
JITTER = 0.1
#: How often a supervisor looks whether its link has closed.
WATCH_INTERVAL = 0.25
DEFAULT_AUTH_TIMEOUT = 2.0


class LinkManager:
    """Listener, dialling, handshake limits and supervision of one link kind.

    Subclasses set ``kind`` (the parser kind id), ``default_port`` and ``what`` (the words in
    dial error logs, "route", "gateway") and implement ``opts`` and ``connections``.
    """

    kind: int
    default_port: int
    what = "link"

    def __init__(self, server: LinkServices) -> None:
        self.server = server
        self.listener: asyncio.base_events.Server | None = None
        #: Links whose handshake has not completed (not yet in the kind's registry).
        self.pending: set[Any] = set()
        self.stopping = False

    @property
    def opts(self) -> Any:  # pragma: no cover - overridden
        """This kind's option block (``cluster {}``, ``gateway {}``)."""
        raise NotImplementedError

    def connections(self) -> list[Any]:  # pragma: no cover - overridden
        """Registered links that are still open."""
        raise NotImplementedError

    # --- listener --------------------------------------------------------------------------

    async def listen(self, factory: Callable[[], Any], host: str, port: int) -> int:
        """Start this kind's listener (``0.0.0.0`` binds every address); returns the port."""
        self.listener = await link_tls.listen(
            self.server, factory, self.kind, None if host == "0.0.0.0" else host, port
        )
        self.server.listeners.append(self.listener)
        return int(self.listener.sockets[0].getsockname()[1])

    # --- dialling and supervision ------------------------------------------------------------

    async def dial_link(
        self,
        factory: Callable[[], Any],
        url: str,
        host: str,
        port: int,
        failed: str,
        **kw: Any,
    ) -> Any | None:
        """Dial one peer; None (logged at debug as ``failed``, with the error) when it cannot
        be reached or its TLS handshake fails (link_tls logs that one at error level)."""
        try:
            return await link_tls.dial(self.server, factory, self.kind, url, host, port, **kw)
        except OSError as exc:
            logger.debug("%s: %s", failed, exc)
            return None

    async def until_closed(self, conn: Any) -> None:
        """Wait while ``conn`` is open (a supervisor's watch)."""
        while not conn.closed:
            await asyncio.sleep(WATCH_INTERVAL)

    @staticmethod
    async def pause(base: float = RECONNECT_DELAY) -> None:
        """Sleep ``base`` plus a little jitter, so peers that lost each other do not redial
        in lockstep."""
        await asyncio.sleep(base + random.uniform(0, JITTER))

    async def retry(
        self, attempts: int, done: Callable[[], bool], dial: Callable[[], Awaitable[Any]]
    ) -> None:
        """Dial up to ``attempts`` times, a reconnect delay apart, until one succeeds or
        ``done()`` (the peer is registered by other means, or we are stopping)."""
        for attempt in range(attempts):
            if done() or self.stopping:
                return
            if await dial() is not None:
                return
            if attempt < attempts - 1:
                await asyncio.sleep(RECONNECT_DELAY)

    # --- handshake pieces --------------------------------------------------------------------

    def auth_timeout(self) -> float:
        """Seconds an accepted link has to send an acceptable CONNECT."""
        return float(self.opts.auth_timeout or DEFAULT_AUTH_TIMEOUT)  # 0: the default

    def authorized(self, opts: dict[str, Any], conn: Any = None) -> bool:
        """The peer's CONNECT credentials (or its certificate, where ``tls {}`` maps or checks
        certificates) against this kind's configured login."""
        verdict = link_tls.cert_authorized(self.server, self.kind, conn)
        if verdict is not None:
            return verdict  # the certificate decides (tls verify_and_map / check_known_urls)
        cfg = self.opts
        if not cfg.username:
            return True
        return auth.link_login_ok(opts, cfg.username, cfg.password)

    # --- shutdown ----------------------------------------------------------------------------

    def close_links(self, reason: str, match: Callable[[Any], bool] | None = None) -> None:
        """Close registered and pending links (those ``match`` accepts, or all)."""
        for c in self.connections() + list(self.pending):
            if match is None or match(c):
                c.close(reason)


__all__ = ["JITTER", "RECONNECT_DELAY", "LinkManager"]

"""The gateway manager: listener and dialling (configured, implicit and gossiped remotes),
registration of links, interest propagation to peers, interest barriers, and reload.

Where a message goes (which clusters, which queue groups, mapped replies) is decided by the
dispatcher, ``scserver.routing``; it reads ``out_sorted``, the hashes and ``should_map_reply``
here."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

from scserver import NATS_COMPAT_VERSION, link_tls
from scserver.core.ports import LinkServices
from scserver.gateway import monitor, relink
from scserver.gateway.conn import GatewayConnection
from scserver.gateway.interest import (
    CMD_ALL_SUBS_COMPLETE,
    CMD_ALL_SUBS_START,
    CMD_GOSSIP,
    DEFAULT_INTEREST_ONLY_THRESHOLD,
    INTEREST_ONLY,
    OPTIMISTIC,
    RECENT_SUB_WINDOW,
    TRANSITIONING,
    InAccount,
)
from scserver.gateway.replies import gw_hash, old_gw_hash
from scserver.gossip_limits import GatewayUrls, UrlBudget
from scserver.link import connect_line, parse_url
from scserver.link_manager import RECONNECT_DELAY, LinkManager
from scserver.log import logger
from scserver.net.addresses import local_ips
from scserver.protocol import encode
from scserver.protocol.models import ServerInfo
from scserver.protocol.parser import (
    GATEWAY,
)
from scserver.recent_subs import RecentSubs
from scserver.subjects import subject_matches

# Longest we hold gateway output for an interest barrier (GatewayManager.interest_barrier).
BARRIER_MAX = 0.25
SOLICIT_DELAY = 1.0
#: In lame duck mode without clients, how long we wait for peers to move their links to another
#: server of our cluster before exiting (they need one dial and one round trip).
LDM_LINK_WAIT = 2.0
#: Between attempts at an implicit (gossiped) gateway, which is forgotten after connect_retries.
IMPLICIT_RETRY_DELAY = 0.2


class RemoteGateway:
    """A remote cluster we know of, configured or discovered, with its gateway URLs (gossiped
    ones bounded: scserver.gossip_limits)."""

    def __init__(
        self, name: str, urls: list[str], configured: bool, budget: UrlBudget | None = None
    ) -> None:
        self.name = name
        self.urls = GatewayUrls(name, budget if budget is not None else UrlBudget())
        self.configured = configured
        #: URLs from our config (kept when the remote's INFO replaces the discovered ones)
        self.config_urls: list[str] = []
        self.add_urls(urls, configured)
        self.task: asyncio.Task | None = None
        #: url -> when a dial to it last failed (relink.dial_order tries it later)
        self.failed: dict[str, float] = {}

    def add_urls(self, urls: list[str], configured: bool = False) -> None:
        if configured:
            self.config_urls += [u for u in map(str, urls) if u not in self.config_urls]
        self.urls.add(urls, configured)

    def update_urls(self, urls: list[str]) -> None:
        """The remote cluster's current gateway URLs (INFO on our outbound link) replace the
        discovered ones."""
        self.urls.replace(self.config_urls, urls)


class GatewayManager(LinkManager):
    """Owns this server's gateway listener, its links, and the supercluster's interest state."""

    kind = GATEWAY
    default_port = 7222
    what = "gateway"

    def __init__(self, server: LinkServices) -> None:
        super().__init__(server)
        gw = server.opts.gateway
        self.name: str = gw.name
        self.port = gw.port
        self.remotes: dict[str, RemoteGateway] = {}
        self.url_budget = UrlBudget()
        self.outbound: dict[str, GatewayConnection] = {}
        self.out_sorted: list[GatewayConnection] = []
        self.inbound: dict[int, GatewayConnection] = {}
        self.cluster_urls: list[str] = []
        self.removed: set[str] = set()
        #: remote -> a link registered to replace one whose server is in lame duck mode
        self.standby: dict[str, GatewayConnection] = {}
        #: replacement dials in progress (relink.peer_lame_duck)
        self.relinks: set[asyncio.Task] = set()
        #: our server is in lame duck mode (INFO on inbound links says ``ldm``)
        self.lame_duck = False
        self.ldm_links_deadline = 0.0
        self.cluster_hash = gw_hash(self.name)
        self.old_cluster_hash = old_gw_hash(self.name)
        self.server_hash = gw_hash(server.server_id)
        self.recent_subs: dict[Any, RecentSubs] = {}
        # Interest barrier (see interest_barrier): route -> PING count whose PONG we await,
        # and the outbound links whose bytes are held until then.
        self.barrier: dict[Any, int] = {}
        self.held: set[GatewayConnection] = set()
        self.barrier_timer: asyncio.TimerHandle | None = None
        self.optimistic_inbound = gw.interest_mode == "optimistic"
        self.threshold = int(gw.interest_only_threshold or DEFAULT_INTEREST_ONLY_THRESHOLD)
        for r in gw.gateways:
            if r.name == self.name:
                continue
            self.remotes[r.name] = RemoteGateway(
                r.name, list(r.urls), configured=True, budget=self.url_budget
            )

    @property
    def opts(self) -> Any:
        return self.server.opts.gateway

    # --- start / stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        gw = self.opts
        host = gw.host or "0.0.0.0"
        self.port = await self.listen(
            lambda: GatewayConnection(self.server, self), host, gw.port if gw.port > 0 else 0
        )
        self.cluster_urls = [self.own_url()]
        logger.info("Gateway name is %s", self.name)
        logger.info("Listening for gateways connections on %s:%d", host, self.port)
        for name in list(self.remotes):
            self.solicit(name, delay=SOLICIT_DELAY)

    def stop(self) -> None:
        self.stopping = True
        for r in self.remotes.values():
            if r.task is not None:
                r.task.cancel()
        for task in list(self.relinks):
            task.cancel()
        self.close_links("Server Shutdown")

    def own_url(self) -> str:
        gw = self.opts
        if gw.advertise:
            host, port, _, _ = parse_url(gw.advertise, self.port)
            return f"{host}:{port}"
        host = gw.host or "0.0.0.0"
        if host in ("0.0.0.0", "::"):
            host = local_ips()[0]
        return f"{host}:{self.port}"

    def connections(self) -> list[GatewayConnection]:
        return [
            c for c in list(self.outbound.values()) + list(self.inbound.values()) if not c.closed
        ]

    # --- dialling --------------------------------------------------------------------------------

    def solicit(self, name: str, delay: float = 0.0) -> None:
        remote = self.remotes.get(name)
        if remote is None or name == self.name or self.stopping:
            return
        if remote.task is not None and not remote.task.done():
            return
        remote.task = self.server.loop.create_task(self._solicit_loop(remote, delay))

    async def _solicit_loop(self, remote: RemoteGateway, delay: float) -> None:
        """Keep one outbound link to the remote cluster; explicit ones retry forever."""
        if delay:
            await self.pause(delay)
        failures = 0
        retries = self.opts.connect_retries
        last: GatewayConnection | None = None
        while not self.stopping and self.remotes.get(remote.name) is remote:
            current = self.outbound.get(remote.name)
            if current is not None and not current.closed:
                last = current  # (a link that replaced ours: see peer_lame_duck)
                await asyncio.sleep(0.25)
                continue
            urls = relink.dial_order(remote, last)
            if not urls:
                return
            conn = None
            for url in urls:
                conn = await self.dial(remote.name, url)
                if conn is not None:
                    break
            if conn is not None:
                await self.until_closed(conn)
                if conn.registered:
                    failures = 0
                    last = conn
                    if time.time() - conn.start >= RECONNECT_DELAY:
                        # An established link closed: its server shut down (a pod replaced in
                        # a rolling update). Messages into that cluster from our clients have
                        # no way there until we relink, so dial the others now (jitter only),
                        # not after nats-server's one-second reconnect delay.
                        await self.pause(0.0)
                        continue
                else:
                    failures += 1
            else:
                failures += 1
            if not remote.configured and failures > retries and not self._has_inbound(remote.name):
                logger.info(
                    "Forgetting implicit gateway %r after %d failed attempt(s)",
                    remote.name,
                    failures,
                )
                self.remotes.pop(remote.name, None)
                remote.urls.release()
                return
            await self.pause(RECONNECT_DELAY if remote.configured else IMPLICIT_RETRY_DELAY)

    async def dial(
        self, name: str, url: str, replaces: GatewayConnection | None = None
    ) -> GatewayConnection | None:
        host, port, _, _ = parse_url(url, self.default_port)
        logger.debug("Connecting to explicit gateway %r (%s:%d)", name, host, port)
        remote = self.remotes.get(name)

        def factory() -> GatewayConnection:
            conn = GatewayConnection(self.server, self, name, url)
            conn.replaces = replaces  # known before its INFO can arrive
            return conn

        conn = await self.dial_link(
            factory,
            url,
            host,
            port,
            f"Error connecting to gateway {name!r} ({url})",
            remote=name,
            known=list(remote.urls) if remote is not None else [],
        )
        if remote is not None:
            if conn is None:
                remote.failed[url] = time.monotonic()
            else:
                remote.failed.pop(url, None)
        return conn

    def links_moved(self) -> bool:
        """In lame duck mode without clients: whether the servers that dialled us have moved
        their links elsewhere (or had LDM_LINK_WAIT seconds to), so we may exit now."""
        return not self._inbound_links() or time.monotonic() >= self.ldm_links_deadline

    def _has_inbound(self, name: str) -> bool:
        return any(c.gw_name == name and not c.closed for c in self.inbound.values())

    # --- handshake pieces --------------------------------------------------------------------

    def accepts(self, name: str) -> bool:
        if name == self.name:
            return True
        if name in self.removed:
            return False
        if self.opts.reject_unknown_cluster:
            return name in self.remotes and self.remotes[name].configured
        return True

    def info_fields(self) -> dict[str, Any]:
        server = self.server
        gw = self.opts
        url = self.own_url()
        host, _, port = url.rpartition(":")
        info: dict[str, Any] = {
            "server_id": server.server_id,
            "server_name": server.opts.server_name or "",
            "version": NATS_COMPAT_VERSION,
            "go": "",
            "proto": 1,
            "host": host,
            "port": int(port),
            "headers": True,
            "max_payload": server.opts.max_payload,
            "gateway": self.name,
            "gateway_url": url,
            "gateway_urls": self._advertised_urls(url),
            "gateway_nrp": True,
            "gateway_iom": not self.optimistic_inbound,
        }
        if gw.username:
            info["auth_required"] = True
        if self.lame_duck:
            info["ldm"] = True
        info.update(link_tls.info_fields(server, GATEWAY))
        return info

    def _advertised_urls(self, own: str) -> list[str]:
        """Our cluster's gateway URLs for INFO; in lame duck mode without our own (peers that
        replace the INFO's list stop dialling a server about to exit)."""
        urls = list(self.cluster_urls)
        if self.lame_duck and len(urls) > 1:
            urls = [u for u in urls if u != own]
        return urls

    def send_lame_duck(self, recheck: Callable[[], None]) -> None:
        """Tell the servers that dialled us (INFO ``ldm``), as nats-server tells routes and
        clients: scserver peers move their link to another server of ours before we exit;
        nats-server peers drop our URL from those they redial. ``recheck`` runs when the time
        for moving is up (``links_moved`` turns true then, whatever is still linked)."""
        self.lame_duck = True
        self.ldm_links_deadline = time.monotonic() + LDM_LINK_WAIT
        # (a little after the deadline: loop timers may fire up to a clock tick early)
        self.server.loop.call_later(LDM_LINK_WAIT + 0.05, recheck)
        data = self.info_proto()
        for c in self._inbound_links():
            c.queue(data)

    def info_proto(self) -> bytes:
        return encode.info(self.info_fields(), trailing_space=False)

    def connect_proto(self, url: str | None, tls: bool = False) -> bytes:
        gw = self.opts
        fields: dict[str, Any] = {
            "echo": False,
            "headers": False,
            "cluster": "",
            "gateway": self.name,
        }
        if tls:
            fields["tls_required"] = True
        return connect_line(self.server.server_id, fields, url, 7222, gw.username, gw.password)

    def _cmd_info(
        self, cmd: int, gw: str, payload: bytes | None = None, urls: list[str] | None = None
    ) -> bytes:
        fields: dict[str, Any] = {
            "server_id": self.server.server_id,
            "server_name": "",
            "version": "",
            "proto": 0,
            "go": "",
            "host": "",
            "port": 0,
            "headers": False,
            "max_payload": 0,
            "gateway": gw,
            "gateway_cmd": cmd,
        }
        if urls is not None:
            fields["gateway_urls"] = urls
        if payload is not None:
            fields["gateway_cmd_payload"] = base64.b64encode(payload).decode()
        return encode.info(fields, trailing_space=False)

    # --- registration ------------------------------------------------------------------------

    def register_outbound(self, conn: GatewayConnection) -> bool:
        existing = self.outbound.get(conn.gw_name)
        if existing is not None and not existing.closed:
            return relink.register_standby(self, conn, existing)
        self.pending.discard(conn)
        self.outbound[conn.gw_name] = conn
        conn.registered = True
        self.sort_outbound()
        logger.info(
            "%s Outbound gateway connection to %r (%s) registered",
            conn.label(),
            conn.gw_name,
            conn.name,
        )
        return True

    def register_inbound(self, conn: GatewayConnection, info: ServerInfo) -> None:
        name = conn.gw_name or info.gateway
        conn.gw_name = name
        self.pending.discard(conn)
        self.inbound[conn.cid] = conn
        conn.registered = True
        conn.accepts_msgs = True
        logger.info(
            "%s Inbound gateway connection from %r (%s) registered", conn.label(), name, conn.name
        )
        self.send_queue_subs(conn)
        self.implicit_gateway(name, info.gateway_urls or [])
        # Gossip every other gateway we know so the dialler can mesh with them too.
        for other, remote in self.remotes.items():
            if other != name and remote.urls:
                conn.queue(
                    self._cmd_info(
                        CMD_GOSSIP,
                        other,
                        urls=[
                            parse_url(u, 7222)[0] + ":" + str(parse_url(u, 7222)[1])
                            for u in remote.urls
                        ],
                    )
                )
        mode = OPTIMISTIC if self.optimistic_inbound else INTEREST_ONLY
        for account in list(self.server.accounts.values()):
            conn.in_accounts[account.name_b] = InAccount(OPTIMISTIC)
            if mode == INTEREST_ONLY:
                self.switch_to_interest_only(conn, account)

    def connection_closed(self, conn: GatewayConnection) -> None:
        self.pending.discard(conn)
        if self.standby.get(conn.gw_name) is conn:
            del self.standby[conn.gw_name]
        if conn.outbound:
            if self.outbound.get(conn.gw_name) is conn:
                del self.outbound[conn.gw_name]
                self.sort_outbound()
        else:
            self.inbound.pop(conn.cid, None)

    def sort_outbound(self) -> None:
        """Queue groups fail over to the lowest-RTT cluster first."""
        self.out_sorted = sorted(
            (c for c in self.outbound.values() if not c.closed),
            key=lambda c: c.rtt if c.rtt else float("inf"),
        )

    # --- discovery ---------------------------------------------------------------------------

    def implicit_gateway(self, name: str, urls: list[str]) -> None:
        if not name or name == self.name or name in self.removed:
            return
        remote = self.remotes.get(name)
        if remote is None:
            if self.opts.reject_unknown_cluster:
                return
            remote = RemoteGateway(name, list(urls), configured=False, budget=self.url_budget)
            self.remotes[name] = remote
            logger.info("Discovered implicit gateway %r", name)
        else:
            remote.add_urls(urls)
        self.solicit(name)

    def remote_urls(self, name: str, urls: list[str]) -> None:
        remote = self.remotes.get(name)
        if remote is not None:
            remote.update_urls(urls)

    def gossip_from_route(self, info: ServerInfo) -> None:
        """A route peer formed an outbound link to a gateway: make sure we have one too."""
        self.implicit_gateway(info.gateway, info.gateway_urls or [])

    def forward_gateway_to_routes(self, name: str, urls: list[str]) -> None:
        routes = self.server.routes
        if routes is None:
            return
        plain = [u.split("://", 1)[-1] for u in urls]
        fields = {
            "server_id": "GW" + self.server.server_id,
            "server_name": self.server.opts.server_name or "",
            "gateway": name,
            "gateway_urls": plain,
            "gateway_cmd": CMD_GOSSIP,
        }
        routes.broadcast_info(fields)

    def route_registered(self, route: Any) -> None:
        for name, conn in self.outbound.items():
            if conn.closed:
                continue
            remote = self.remotes.get(name)
            urls = [u.split("://", 1)[-1] for u in (remote.urls if remote else [])]
            fields = {
                "server_id": "GW" + self.server.server_id,
                "server_name": self.server.opts.server_name or "",
                "gateway": name,
                "gateway_urls": urls,
                "gateway_cmd": CMD_GOSSIP,
            }
            route.queue(encode.info(fields, trailing_space=False))

    def add_cluster_gateway_url(self, url: str) -> None:
        if url not in self.cluster_urls:
            self.cluster_urls.append(url)
            self._refresh_inbound_info()

    def remove_cluster_gateway_url(self, url: str) -> None:
        if url in self.cluster_urls and url != self.own_url():
            self.cluster_urls.remove(url)
            self._refresh_inbound_info()

    def _refresh_inbound_info(self) -> None:
        data = self.info_proto()
        for c in self.inbound.values():
            if not c.closed:
                c.queue(data)

    # --- interest we send on inbound links --------------------------------------------------------

    def _inbound_links(self) -> list[GatewayConnection]:
        return [c for c in self.inbound.values() if not c.closed and c.registered]

    def send_queue_subs(self, conn: GatewayConnection) -> None:
        parts = []
        for account in self.server.accounts.values():
            for (subject, queue), n in account.gw_interest.items():
                if queue is not None and n > 0:
                    parts.append(encode.rsub(account.name_b, subject, queue, 1))
        if parts:
            conn.queue(b"".join(parts))

    def switch_to_interest_only(self, conn: GatewayConnection, account: Any) -> None:
        """cmd 2, every plain subject of the account, cmd 3 (nats-server's sequence)."""
        acc = account.name_b
        ia = conn.in_accounts.get(acc)
        if ia is None:
            ia = InAccount(TRANSITIONING)
            conn.in_accounts[acc] = ia
        ia.mode = TRANSITIONING
        ia.ni = None
        ia.a_minus = False
        parts = [self._cmd_info(CMD_ALL_SUBS_START, self.name, acc)]
        for (subject, queue), n in account.gw_interest.items():
            if queue is None and n > 0:
                parts.append(encode.rsub(acc, subject))
        parts.append(self._cmd_info(CMD_ALL_SUBS_COMPLETE, self.name, acc))
        ia.mode = INTEREST_ONLY
        conn.queue(b"".join(parts))

    def account_registered(self, account: Any) -> None:
        for conn in self._inbound_links():
            if account.name_b not in conn.in_accounts:
                conn.in_accounts[account.name_b] = InAccount(OPTIMISTIC)
                if not self.optimistic_inbound:
                    self.switch_to_interest_only(conn, account)

    def interest_added(self, account: Any, sub: Any) -> None:
        key = (sub.subject, sub.queue)
        tally = account.gw_interest
        n = tally.get(key, 0) + 1
        tally[key] = n
        self._note_recent(account, sub.subject)
        if n != 1:
            return
        acc = account.name_b
        if sub.queue is not None:
            data = encode.rsub(acc, sub.subject, sub.queue, 1)
            for c in self._inbound_links():
                c.queue(data)
            return
        for c in self._inbound_links():
            ia = c.in_accounts.get(acc)
            if ia is None:
                continue
            if ia.mode == OPTIMISTIC:
                if ia.a_minus:
                    ia.a_minus = False
                    c.queue(b"A+ %b\r\n" % acc)
                if ia.ni:
                    covered = {
                        s for s in ia.ni if s == sub.subject or subject_matches(sub.subject, s)
                    }
                    if covered:
                        ia.ni -= covered
                        c.queue(encode.rsub(acc, sub.subject))
            else:
                c.queue(encode.rsub(acc, sub.subject))

    def interest_removed(self, account: Any, sub: Any) -> None:
        key = (sub.subject, sub.queue)
        tally = account.gw_interest
        n = tally.get(key, 0) - 1
        if n > 0:
            tally[key] = n
            return
        tally.pop(key, None)
        acc = account.name_b
        if sub.queue is not None:
            data = encode.runsub(acc, sub.subject, sub.queue)
            for c in self._inbound_links():
                c.queue(data)
            return
        for c in self._inbound_links():
            ia = c.in_accounts.get(acc)
            if ia is not None and ia.mode != OPTIMISTIC:
                c.queue(encode.runsub(acc, sub.subject))

    def no_interest_account(self, conn: GatewayConnection, acc: bytes) -> None:
        ia = conn.in_accounts.get(acc)
        if ia is None:
            ia = InAccount(OPTIMISTIC)
            conn.in_accounts[acc] = ia
        if ia.mode == OPTIMISTIC and not ia.a_minus:
            ia.a_minus = True
            conn.queue(b"A- %b\r\n" % acc)

    def no_interest_subject(
        self, conn: GatewayConnection, account: Any, ia: InAccount, subject: bytes
    ) -> None:
        assert ia.ni is not None
        if subject in ia.ni:
            return
        if len(ia.ni) >= self.threshold:
            logger.info(
                "%s Switching account %r to interest-only mode on gateway %r",
                conn.label(),
                account.name,
                conn.gw_name,
            )
            self.switch_to_interest_only(conn, account)
            return
        ia.ni.add(subject)
        conn.queue(encode.runsub(account.name_b, subject))

    def _note_recent(self, account: Any, subject: bytes) -> None:
        recent = self.recent_subs.get(account)
        if recent is None:
            recent = self.recent_subs[account] = RecentSubs(RECENT_SUB_WINDOW)
        recent.note(subject)

    def should_map_reply(self, account: Any, reply: bytes) -> bool:
        recent = self.recent_subs.get(account)
        return recent is not None and recent.matches(reply)

    # --- the interest barrier (routing.gateway_leg raises it for mapped replies) ---------

    def interest_barrier(self) -> None:
        """Hold outbound gateway bytes until route peers that cannot route a `_GR_.` reply
        to us by hash have read the interest we sent them.

        A request whose reply we map (a brand-new inbox) is answered from the other cluster
        through whichever of our cluster's servers its gateway lands on. A pooling
        nats-server there cannot find its route to us by server hash (see
        RouteConnection.finds_us_by_hash), so it forwards the reply only if the inbox's RS+
        from us already reached it, and that RS+ travels on the route while the reply comes
        in on a gateway: on a busy host the reply may win, and is dropped. So we PING each
        such route (behind the RS+ already queued there) and release the held gateway bytes,
        in order, once every PONG is back (or after BARRIER_MAX).
        """
        routes = self.server.routes
        if routes is None:
            return
        for r in routes.routes.values():
            if r.closed or r.finds_us_by_hash():
                continue
            r.send_barrier_ping()
            self.barrier[r] = r.pings_sent
        if self.barrier and self.barrier_timer is None:
            self.barrier_timer = self.server.loop.call_later(BARRIER_MAX, self.release_barrier)

    def barrier_pong(self, route: Any, closed: bool = False) -> None:
        want = self.barrier.get(route)
        if want is None or (not closed and route.pongs_in < want):
            return
        del self.barrier[route]
        if not self.barrier:
            self.release_barrier()

    def release_barrier(self) -> None:
        self.barrier.clear()
        if self.barrier_timer is not None:
            self.barrier_timer.cancel()
            self.barrier_timer = None
        held, self.held = self.held, set()
        for c in held:
            c.kick()

    # --- reload --------------------------------------------------------------------------------

    def reload(self, old: Any, new: Any) -> None:
        """Add and remove remote clusters without a restart."""
        new_gw = new.gateway
        if new_gw.name != self.name:
            logger.warning("Config reload: gateway name cannot change (%r kept)", self.name)
        wanted = {r.name: r for r in new_gw.gateways if r.name != self.name}
        for name, cfg in wanted.items():
            self.removed.discard(name)
            remote = self.remotes.get(name)
            if remote is None:
                logger.info("Config reload: adding gateway %r", name)
                self.remotes[name] = RemoteGateway(
                    name, list(cfg.urls), configured=True, budget=self.url_budget
                )
                self.solicit(name)
            else:
                remote.configured = True
                remote.config_urls = []
                remote.add_urls(list(cfg.urls), configured=True)
                self.solicit(name)
        old_names = {r.name for r in old.gateway.gateways} if old.gateway else set()
        for name in old_names - set(wanted) - {self.name}:
            self.forget(name)

    def forget(self, name: str) -> None:
        """A cluster left the supercluster: close its links and drop what it told us."""
        logger.info("Config reload: removing gateway %r", name)
        self.removed.add(name)
        remote = self.remotes.pop(name, None)
        if remote is not None:
            remote.urls.release()
            if remote.task is not None:
                remote.task.cancel()
        self.close_links("Gateway Removed", lambda c: c.gw_name == name)

    # --- monitoring ------------------------------------------------------------------------------

    def gatewayz(self, gw_name: str, accs: bool, acc_name: str, subs: bool) -> dict[str, Any]:
        """The /gatewayz document (scserver.gateway.monitor)."""
        return monitor.gatewayz(self, gw_name, accs, acc_name, subs)

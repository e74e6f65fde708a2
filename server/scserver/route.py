"""Cluster routes: the full mesh between the servers of one cluster.

We speak the route protocol as a nats-server peer without pooling, pinned accounts or
compression (all declined simply by not advertising them, which nats-server accepts as an
"old server"): one connection per peer carries every account, interest travels as RS+/RS-
with the account name, and messages as RMSG/HMSG with queue lists. A server that knows one
seed meets every peer through gossip of route INFOs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from scserver import NATS_COMPAT_VERSION, link_tls
from scserver.core import kinds
from scserver.core.ports import LinkServices
from scserver.link import LinkConnection, connect_line, link_closed, parse_url
from scserver.link_manager import RECONNECT_DELAY, LinkManager
from scserver.log import logger
from scserver.protocol import encode
from scserver.protocol import errors as E
from scserver.protocol.models import LinkConnect, ServerInfo
from scserver.protocol.parser import (
    CLIENT,
    GATEWAY,
    OP_RSUB,
    OP_RUNSUB,
    ROUTE,
    ROUTE_OPS,
)
from scserver.routing import GR_PREFIX, OLD_GR_PREFIX, process_msg, process_routed_reply
from scserver.subscription import Subscription

ROUTE_PROTO = 2


ROUTE_SPEC = kinds.register(
    kinds.KindSpec(
        kind=ROUTE,
        name="route",
        id_label="rid",
        label="Route",
        monitor_label="Router",
        fanout=kinds.FORWARD,
        ops=ROUTE_OPS,
        max_ping=30.0,
        slow_key="routes",
        pending_factor=4,
        on_closed=link_closed,
    )
)


class RouteConnection(LinkConnection):
    """One route, inbound (accepted) or outbound (solicited)."""

    kind = ROUTE
    spec = ROUTE_SPEC
    fanout = ROUTE_SPEC.fanout
    log_kind = "Router"

    def __init__(
        self,
        server: LinkServices,
        manager: RouteManager,
        url: str | None = None,
        explicit: bool = False,
    ) -> None:
        super().__init__(server, manager, outbound=url is not None)
        self.url = url
        self.explicit = explicit
        # Messages from a route we dialled are taken as they come (its INFO gates them in
        # the parser); an accepted route's only once its CONNECT is accepted.
        self.accepts_msgs = self.outbound
        self.headers = True
        self.remote_subs: dict[tuple[bytes, bytes, bytes | None], Subscription] = {}
        self.connect_urls: list[str] = []
        # PINGs sent and PONGs received, for the gateway's interest barrier (every PING
        # is answered in order, so PONG n means the peer has read all we sent before PING n).
        self.pings_sent = 0
        self.pongs_in = 0

    # --- lifecycle -------------------------------------------------------------------------

    def on_open(self) -> None:
        self.manager.pending.add(self)
        if self.outbound:
            logger.debug("%s Route connection created", self.label())
            self.queue(self.manager.connect_proto(self.url, tls=self.tls_info is not None))
            self.queue(self.manager.info_proto())
        else:
            logger.info("%s Route connection created", self.label())
            self.queue(self.manager.info_proto())
            self.arm_auth_timer(self.manager.auth_timeout())
        self.start_ping_timer()

    def on_close(self) -> None:
        super().on_close()
        if self.server.gateway is not None:
            self.server.gateway.barrier_pong(self, closed=True)

    def send_ping(self) -> None:
        self.pings_sent += 1
        super().send_ping()

    def send_barrier_ping(self) -> None:
        """A PING that only marks a point in the stream (gateway interest barrier).

        It is not a heartbeat: it must not count toward ping_max, or a burst of mapped
        requests could get a healthy route closed as stale by the next ping timer.
        """
        self.pings_sent += 1
        self.rtt_start = time.time()
        self.queue(encode.PING)

    def got_pong(self) -> None:
        super().got_pong()
        self.pongs_in += 1
        if self.server.gateway is not None:
            self.server.gateway.barrier_pong(self)

    def finds_us_by_hash(self) -> bool:
        """Whether the peer can route a `_GR_.` reply straight to us (nats-server §4.8).

        A pooling nats-server (``route_pool_size`` >= 1 in its INFO) stores us, a no-pool
        peer, under our bare ID hash but looks routes up under hash+pool index (or
        hash+account for pinned accounts such as `$SYS`), so it never finds us: it falls
        back to plain interest instead.
        """
        size = self.remote_info.get("route_pool_size") if self.remote_info else None
        return not (isinstance(size, int) and size >= 1)

    # --- inbound ---------------------------------------------------------------------------

    def handle_op(self, op: tuple) -> bool:
        """RS+/RS- change the peer's interest; +OK, A+/A- and LS+/LS- are read and ignored."""
        t = op[0]
        if t == OP_RSUB:
            self.process_rsub(op[1], op[2], op[3], op[4])
        elif t == OP_RUNSUB:
            self.process_runsub(op[1], op[2], op[3])
        return False

    def connect_accepted(self) -> None:
        self.accepts_msgs = True
        super().connect_accepted()

    def process_connect(self, raw: bytes) -> None:
        connect = self.load_json(raw, "CONNECT", LinkConnect)
        if connect is None:
            return
        if self.outbound or self.got_connect:
            return
        if connect.lang:
            self.close("Wrong Port", E.ROUTE_PORT, log_error=True)
            return
        if connect.gateway:
            text = f'Rejecting connection from gateway "{connect.gateway}" on the Route port'
            self.close("Wrong Gateway", text, log_error=True)
            return
        self.connect_opts = connect.wire()  # checked again on reload (link_reload)
        if not self.manager.authorized(self.connect_opts, self):
            logger.error("%s Route authentication error", self.label())
            self.close("Authentication Failure", E.AUTH_VIOLATION)
            return
        theirs = connect.cluster
        if not self.manager.cluster_names_agree(theirs, connect.dynamic or connect.cluster_dynamic):
            text = (
                f'Rejecting connection, cluster name "{theirs}" does not match '
                f'"{self.manager.cluster_name}"'
            )
            self.close("Cluster Name Conflict", text, log_error=True)
            return
        self.remote_id = connect.name
        self.headers = connect.headers
        self.connect_accepted()

    def process_info(self, raw: bytes) -> None:
        info = self.read_info(raw)
        if info is None:
            return
        if not self.got_info:
            self.first_info(info)
            return
        if info.gateway:
            if self.server.gateway is not None:
                self.server.gateway.gossip_from_route(info)
            return
        rid = info.server_id
        if rid and rid != self.remote_id:
            self.manager.implicit_route(info)
            return
        if info.ldm:
            self.connect_urls = []
            self.server.info_changed()

    def first_info(self, model: ServerInfo) -> None:
        manager = self.manager
        info = model.wire()
        rid = model.server_id
        if model.gateway:
            # A gateway gossip INFO before the route's own INFO is a protocol error.
            self.close("Protocol Violation")
            return
        if rid == self.server.server_id:
            logger.debug("%s Detected route to self, ignoring %s", self.label(), self.url)
            manager.self_urls.add(self.url or "")
            self.close("Route To Self")
            return
        theirs = model.cluster
        if not manager.cluster_names_agree(theirs, model.cluster_dynamic):
            text = (
                f'Rejecting connection, cluster name "{theirs}" does not match '
                f'"{manager.cluster_name}"'
            )
            self.close("Cluster Name Conflict", text if self.outbound else None, log_error=True)
            return
        if model.route_account:
            # A dedicated (pinned-account) connection from a pooling nats-server; we decline
            # pooling, so the peer closes it after reading our INFO. Never register it.
            self.got_info = True
            return
        self.got_info = True
        self.remote_id = rid
        self.name = model.server_name or rid
        self.remote_info = info
        self.headers = model.headers
        if not model.ip:
            info["ip"] = f"nats-route://{self.host}:{model.port}/"
        self.connect_urls = list(model.connect_urls or ())
        if self.outbound and not self.got_connect:
            self.got_connect = True
        if manager.is_duplicate_name(self):
            logger.error("%s Remote server has a duplicate name: %r", self.label(), self.name)
            self.close("Duplicate Server Name")
            return
        if not manager.register(self):
            logger.debug("%s Detected duplicate remote route %r", self.label(), rid)
            self.close("Duplicate Route")
            return
        if self.outbound:
            self.info_accepted()

    # --- interest ------------------------------------------------------------------------------

    def process_rsub(self, acc: bytes, subject: bytes, queue: bytes | None, weight: int) -> None:
        if self.trace:
            self.trace_rsub(acc, subject, queue)
        account = self.server.accounts.get(acc.decode(errors="replace"))
        if account is None:
            logger.debug("%s Unknown account %r for remote subject %r", self.label(), acc, subject)
            return
        key = (acc, subject, queue)
        sub = self.remote_subs.get(key)
        if sub is not None:
            if queue is not None:
                sub.weight = max(weight, 1)
            return
        sub = Subscription(
            subject,
            queue,
            b"%b %b %b" % key if queue else b"%b %b" % key[:2],
            self,
            account,
            max(weight, 1),
        )
        try:
            account.sublist.insert(sub)
        except ValueError:
            # nats-server answers an invalid RS+ with this -ERR and keeps the route.
            logger.error("%s Invalid remote subject %r", self.label(), subject)
            self.queue(encode.err("Invalid Subscription"))
            return
        self.remote_subs[key] = sub
        if self.server.gateway is not None:
            self.server.gateway.interest_added(account, sub)

    def process_runsub(self, acc: bytes, subject: bytes, queue: bytes | None) -> None:
        sub = self.remote_subs.pop((acc, subject, queue), None)
        if sub is None:
            return
        sub.account.sublist.remove(sub)
        if self.server.gateway is not None:
            self.server.gateway.interest_removed(sub.account, sub)

    def drop_remote_subs(self) -> None:
        """Forget everything this route told us; its server is gone from our view."""
        gateway = self.server.gateway
        for sub in self.remote_subs.values():
            sub.account.sublist.remove(sub)
            if gateway is not None:
                gateway.interest_removed(sub.account, sub)
        self.remote_subs.clear()

    # --- messages ------------------------------------------------------------------------------

    def process_rmsg(
        self,
        acc: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...] | None,
        hdr_len: int,
        msg: bytes,
    ) -> None:
        account = self.msg_account(acc, msg)
        if account is None:
            logger.debug("%s Unknown account %r for routed message", self.label(), acc)
            return
        if subject[:5] == GR_PREFIX or subject[:4] == OLD_GR_PREFIX:
            if process_routed_reply(self.server, self, account, subject, reply, hdr_len, msg):
                return
        process_msg(self.server, self, account, subject, reply, hdr_len, msg, queues)


class RouteManager(LinkManager):
    """Listens on the cluster port, dials routes, and keeps one registered route per peer."""

    kind = ROUTE
    default_port = 6222
    what = "route"

    def __init__(self, server: LinkServices) -> None:
        super().__init__(server)
        cl = server.opts.cluster
        self.configured_name = cl.name or (
            server.opts.gateway.name if server.opts.gateway else None
        )
        self.dynamic = not self.configured_name
        self.cluster_name = self.configured_name or secrets.token_hex(11)
        self.routes: dict[str, RouteConnection] = {}
        self.port = cl.port
        self.self_urls: set[str] = set()
        self.supervisors: dict[str, asyncio.Task] = {}
        self.implicit_dials: set[str] = set()

    @property
    def opts(self) -> Any:
        return self.server.opts.cluster

    @property
    def no_advertise(self) -> bool:
        return bool(self.opts.no_advertise)

    # --- start/stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        cl = self.opts
        host = cl.host or "0.0.0.0"
        self.port = await self.listen(lambda: RouteConnection(self.server, self), host, cl.port)
        logger.info("Cluster name is %s", self.cluster_name)
        logger.info("Listening for route connections on %s:%d", host, self.port)
        for url in cl.routes:
            self.ensure_supervisor(url)

    def stop(self) -> None:
        self.stopping = True
        for task in self.supervisors.values():
            task.cancel()
        self.supervisors.clear()
        self.close_links("Server Shutdown")

    def ensure_supervisor(self, url: str) -> None:
        if url not in self.supervisors:
            self.supervisors[url] = self.server.loop.create_task(self._supervise(url))

    async def _supervise(self, url: str) -> None:
        """Keep an explicit route connected for as long as it is configured."""
        await self.pause(0.0)
        known_id: str | None = None
        while not self.stopping and url not in self.self_urls:
            if known_id is not None and known_id in self.routes:
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            conn = await self.dial(url, explicit=True)
            if conn is not None:
                await self.until_closed(conn)
                if conn.remote_id:
                    known_id = conn.remote_id
            if url in self.self_urls or self.stopping:
                return
            await self.pause()

    async def dial(self, url: str, explicit: bool) -> RouteConnection | None:
        host, port, _, _ = parse_url(url, self.default_port)
        return await self.dial_link(
            lambda: RouteConnection(self.server, self, url, explicit),
            url,
            host,
            port,
            f"Error trying to connect to route ({url})",
            known=list(self.opts.routes),
        )

    # --- handshake pieces --------------------------------------------------------------------

    def cluster_names_agree(self, theirs: str, their_dynamic: bool) -> bool:
        if theirs == self.cluster_name:
            return True
        if self.dynamic and theirs and (not their_dynamic or theirs < self.cluster_name):
            logger.info("Cluster name updated to %s", theirs)
            self.cluster_name = theirs
            if not their_dynamic:
                self.dynamic = False
            self.server.info_changed(notify=False)
            return True
        return False

    def info_fields(self) -> dict[str, Any]:
        server = self.server
        cl = self.opts
        host, port = cl.host or "0.0.0.0", self.port
        info: dict[str, Any] = {
            "server_id": server.server_id,
            "server_name": server.name,
            "version": NATS_COMPAT_VERSION,
            "go": "",
            "proto": ROUTE_PROTO,
            "host": host,
            "port": port,
            "headers": True,
            "max_payload": server.opts.max_payload,
            "cluster": self.cluster_name,
        }
        if self.dynamic:
            info["cluster_dynamic"] = True
        if cl.username:
            info["auth_required"] = True
        if not cl.no_advertise:
            info["connect_urls"] = server.client_urls()
        if cl.advertise:
            ahost, aport, _, _ = parse_url(cl.advertise, port)
            info["host"], info["port"] = ahost, aport
            info["ip"] = f"nats-route://{ahost}:{aport}/"
        if server.gateway is not None:
            info["gateway_url"] = server.gateway.own_url()
        if server.lame_duck:
            info["ldm"] = True
        info.update(link_tls.info_fields(server, ROUTE))
        return info

    def info_proto(self) -> bytes:
        return encode.info(self.info_fields(), trailing_space=False)

    def connect_proto(self, url: str | None, tls: bool = False) -> bytes:
        cl = self.opts
        fields: dict[str, Any] = {
            "echo": True,
            "headers": True,
            "cluster": self.cluster_name,
            "dynamic": self.dynamic,
        }
        if tls:
            fields["tls_required"] = True
        return connect_line(self.server.server_id, fields, url, 6222, cl.username, cl.password)

    def is_duplicate_name(self, conn: RouteConnection) -> bool:
        name = str(conn.remote_info.get("server_name", ""))
        if not name or not self.server.opts.server_name:
            return False
        return name == self.server.name and conn.remote_id != self.server.server_id

    # --- registry ------------------------------------------------------------------------------

    def register(self, conn: RouteConnection) -> bool:
        """First connection to a peer wins; later ones are duplicates (nats-server's rule)."""
        existing = self.routes.get(conn.remote_id)
        if existing is not None and not existing.closed:
            return False
        self.routes[conn.remote_id] = conn
        self.pending.discard(conn)
        conn.registered = True
        logger.info(
            "%s Route connection registered (%s)",
            conn.label(),
            "solicited" if conn.outbound else "accepted",
        )
        self.send_all_interest(conn)
        self.gossip_new_route(conn)
        gateway = self.server.gateway
        if gateway is not None:
            url = conn.remote_info.get("gateway_url")
            if url:
                gateway.add_cluster_gateway_url(str(url))
            gateway.route_registered(conn)
        self.server.info_changed()
        return True

    def connection_closed(self, conn: RouteConnection) -> None:
        self.pending.discard(conn)
        if self.routes.get(conn.remote_id) is conn:
            del self.routes[conn.remote_id]
            conn.drop_remote_subs()
            gateway = self.server.gateway
            if gateway is not None:
                url = conn.remote_info.get("gateway_url")
                if url:
                    gateway.remove_cluster_gateway_url(str(url))
            self.server.info_changed()
            if not self.stopping and conn.outbound and not conn.explicit and conn.url:
                self.server.loop.create_task(self._redial_implicit(conn.url, conn.remote_id))

    async def _redial_implicit(self, url: str, remote_id: str) -> None:
        retries = self.opts.connect_retries
        for _ in range(retries + 1):
            await self.pause()
            if self.stopping or remote_id in self.routes:
                return
            conn = await self.dial(url, explicit=False)
            if conn is not None:
                return

    def connections(self) -> list[RouteConnection]:
        return [r for r in self.routes.values() if not r.closed]

    def all_client_urls(self) -> list[str]:
        urls = list(self.server.client_urls())
        for r in self.routes.values():
            for u in r.connect_urls:
                if u not in urls:
                    urls.append(u)
        return urls

    # --- gossip --------------------------------------------------------------------------------

    def gossip_new_route(self, conn: RouteConnection) -> None:
        """Tell every other peer about a new one so the mesh closes (implicit routes)."""
        info = dict(conn.remote_info)
        info.pop("nonce", None)
        data = encode.info(info, trailing_space=False)
        for r in self.routes.values():
            if r is not conn and not r.closed:
                r.queue(data)

    def implicit_route(self, info: ServerInfo) -> None:
        rid = info.server_id
        if not rid or rid == self.server.server_id or rid in self.routes:
            return
        ip = info.ip or f"nats-route://{info.host}:{info.port}/"
        host, port, _, _ = parse_url(ip, 6222)
        if not host:
            logger.error("Error parsing route URL %r from INFO of %r", ip, rid)
            return
        for url in self.opts.routes:
            h, p, _, _ = parse_url(url, 6222)
            if (h, p) == (host, port):
                return
        if any(c.remote_id == rid for c in self.pending):
            return
        url = f"nats-route://{host}:{port}/"
        cl = self.opts
        if info.auth_required and cl.username:
            url = f"nats-route://{cl.username}:{cl.password or ''}@{host}:{port}/"
        key = f"{rid}@{host}:{port}"
        if key in self.implicit_dials:
            return
        self.implicit_dials.add(key)

        async def go() -> None:
            try:
                await self.retry(
                    cl.connect_retries + 1,
                    lambda: rid in self.routes,
                    lambda: self.dial(url, explicit=False),
                )
            finally:
                self.implicit_dials.discard(key)

        self.server.loop.create_task(go())

    # --- interest ------------------------------------------------------------------------------

    def send_all_interest(self, conn: RouteConnection) -> None:
        parts: list[bytes] = []
        for account in self.server.accounts.values():
            name = account.name_b
            for (subject, queue), n in account.route_interest.items():
                if n > 0:
                    parts.append(encode.rsub(name, subject, queue, n))
        if parts:
            conn.queue(b"".join(parts))

    def local_interest_added(self, account: Any, sub: Any) -> None:
        kind = sub.conn.kind
        if kind == ROUTE or kind == GATEWAY:
            return
        key = (sub.subject, sub.queue)
        interest = account.route_interest
        n = interest.get(key, 0) + 1
        interest[key] = n
        if sub.queue is None and n > 1:
            return
        self._broadcast(encode.rsub(account.name_b, sub.subject, sub.queue, n))

    def local_interest_removed(self, account: Any, sub: Any) -> None:
        kind = sub.conn.kind
        if kind == ROUTE or kind == GATEWAY:
            return
        key = (sub.subject, sub.queue)
        interest = account.route_interest
        n = interest.get(key, 0) - 1
        if n <= 0:
            interest.pop(key, None)
            self._broadcast(encode.runsub(account.name_b, sub.subject, sub.queue))
        else:
            interest[key] = n
            if sub.queue is not None:
                self._broadcast(encode.rsub(account.name_b, sub.subject, sub.queue, n))

    def _broadcast(self, data: bytes) -> None:
        for r in self.routes.values():
            if not r.closed:
                r.queue(data)

    def broadcast_info(self, info: dict[str, Any]) -> None:
        self._broadcast(encode.info(info, trailing_space=False))

    def send_lame_duck(self) -> None:
        self._broadcast(self.info_proto())

    # --- reload ------------------------------------------------------------------------------

    def reload(self, old: Any, new: Any) -> None:
        """Add and remove explicit routes without a restart."""
        old_routes = set(old.cluster.routes) if old.cluster else set()
        new_routes = set(new.cluster.routes) if new.cluster else set()
        for url in new_routes - old_routes:
            logger.info("Config reload: adding route %s", url)
            self.ensure_supervisor(url)
        removed = old_routes - new_routes
        for url in removed:
            logger.info("Config reload: removing route %s", url)
            task = self.supervisors.pop(url, None)
            if task is not None:
                task.cancel()
            self.close_links("Route Removed", lambda r, url=url: r.url == url)

    # --- monitoring ------------------------------------------------------------------------------

    def routez(self, subs: bool) -> list[dict[str, Any]]:
        from scserver.monitor import go_duration, rfc3339, uptime

        now = time.time()
        out = []
        cfg = {parse_url(u, 6222)[:2] for u in self.opts.routes}
        for r in self.connections():
            item: dict[str, Any] = {
                "rid": r.cid,
                "remote_id": r.remote_id,
                "remote_name": r.name,
                "did_solicit": r.outbound,
                "is_configured": (r.host, r.remote_info.get("port", 0)) in cfg or r.explicit,
                "ip": r.host,
                "port": r.port,
                "start": rfc3339(r.start),
                "last_activity": rfc3339(r.last_activity),
                "rtt": go_duration(r.rtt),
                "uptime": uptime(now - r.start),
                "idle": uptime(now - r.last_activity),
                "pending_size": r.transport.get_write_buffer_size() if r.transport else 0,
                "in_msgs": r.in_msgs,
                "out_msgs": r.out_msgs,
                "in_bytes": r.in_bytes,
                "out_bytes": r.out_bytes,
                "subscriptions": len(r.remote_subs),
            }
            if subs:
                item["subscriptions_list"] = [
                    s.subject.decode(errors="replace") for s in r.remote_subs.values()
                ]
            out.append(item)
        return out


__all__ = ["RouteConnection", "RouteManager", "parse_url", "CLIENT"]

"""Gateways: the links between clusters that make a supercluster.

Every server dials one outbound connection to one server of each remote cluster and accepts any
number of inbound ones. Messages flow only on outbound links; interest (RS+/RS-, A+/A-) and
gateway commands flow back only on inbound links. Interest is per account: a link starts either
optimistic (send unless told "no interest") or interest-only (send only on known interest);
nats-server 2.9+ switches every account to interest-only as soon as a link forms, which is our
default too, while ``gateway { interest_mode: optimistic }`` keeps the classic optimistic mode
with its switch after ``interest_only_threshold`` no-interest subjects.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import time
from typing import Any

from scserver import NATS_COMPAT_VERSION, auth, link_tls
from scserver.core.ports import LinkServices
from scserver.gossip_limits import GatewayUrls, UrlBudget
from scserver.link import LinkConnection, connect_line, parse_url
from scserver.log import logger, tracef
from scserver.net.addresses import local_ips
from scserver.protocol import encode
from scserver.protocol import errors as E
from scserver.protocol.models import LinkConnect, ServerInfo
from scserver.protocol.parser import (
    GATEWAY,
    OP_ASUB,
    OP_AUNSUB,
    OP_CONNECT,
    OP_ERR,
    OP_ERROR,
    OP_INFO,
    OP_OK,
    OP_PING,
    OP_PONG,
    OP_RMSG,
    OP_RSUB,
    OP_RUNSUB,
    ROUTE,
)
from scserver.recent_subs import RecentSubs
from scserver.routing import GR_OFFSET, GR_PREFIX, OLD_GR_PREFIX, process_msg
from scserver.subjects import subject_matches
from scserver.sublist import Sublist
from scserver.subscription import Subscription

# First bytes of `_GR_.` and `$GR.`: one byte test keeps the prefix checks off the hot path.
_ROUTED_FIRST = frozenset(b"_$")

CMD_GOSSIP = 1
CMD_ALL_SUBS_START = 2
CMD_ALL_SUBS_COMPLETE = 3

OPTIMISTIC = "Optimistic"
TRANSITIONING = "Transitioning"
INTEREST_ONLY = "Interest-Only"

DEFAULT_INTEREST_ONLY_THRESHOLD = 1000
RECENT_SUB_WINDOW = 2.0
# Longest we hold gateway output for an interest barrier (GatewayManager.interest_barrier).
BARRIER_MAX = 0.25
SOLICIT_DELAY = 1.0
RECONNECT_DELAY = 1.0

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def gw_hash(name: str) -> bytes:
    """The 6-character hash nats-server uses in `_GR_.` reply prefixes."""
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(_DIGITS[b % 62] for b in digest[:6]).encode()


def old_gw_hash(name: str) -> bytes:
    return hashlib.sha256(name.encode()).hexdigest()[:4].encode()


class OutAccount:
    """What an inbound peer told our outbound link about one account's interest."""

    __slots__ = ("mode", "ni", "sl", "qsubs", "nil", "subs")

    def __init__(self, mode: str = OPTIMISTIC) -> None:
        self.mode = mode
        self.ni: set[bytes] | None = set() if mode == OPTIMISTIC else None
        self.sl: Sublist = Sublist()
        self.subs: dict[tuple[bytes, bytes | None], Subscription] = {}
        self.qsubs = 0
        self.nil = False


class InAccount:
    """What our inbound link told its peer about one account (optimistic bookkeeping)."""

    __slots__ = ("mode", "ni", "a_minus")

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.ni: set[bytes] | None = set() if mode == OPTIMISTIC else None
        self.a_minus = False


class RemoteGateway:
    """A remote cluster we know of, configured or discovered, with its gateway URLs (gossiped
    ones bounded: scserver.gossip_limits)."""

    def __init__(
        self, name: str, urls: list[str], configured: bool, budget: UrlBudget | None = None
    ) -> None:
        self.name = name
        self.urls = GatewayUrls(name, budget if budget is not None else UrlBudget())
        self.configured = configured
        self.add_urls(urls, configured)
        self.task: asyncio.Task | None = None

    def add_urls(self, urls: list[str], configured: bool = False) -> None:
        self.urls.add(urls, configured)


class GatewayConnection(LinkConnection):
    """One gateway link, outbound (we dialled) or inbound (they dialled)."""

    kind = GATEWAY
    log_kind = "Gateway"

    def __init__(
        self,
        server: LinkServices,
        manager: GatewayManager,
        remote: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(server, manager, outbound=remote is not None)
        self.gw_name = remote or ""
        # Messages flow only on inbound links, once registered: the hot-path guard.
        self.accepts_msgs = False
        self.url = url
        self.headers = False
        self.remote_iom = True
        self.remote_nrp = True
        self.out_accounts: dict[bytes, OutAccount | None] = {}
        self.in_accounts: dict[bytes, InAccount] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def on_open(self) -> None:
        self.manager.pending.add(self)
        if self.outbound:
            logger.debug(
                "%s Creating outbound gateway connection to %r", self.label(), self.gw_name
            )
            # Stale detection until the peer's INFO arrives; PINGs start after CONNECT.
            self.auth_timer = self.server.loop.call_later(
                self.manager.auth_timeout() * 2, self._no_info
            )
        else:
            logger.info("%s Processing inbound gateway connection", self.label())
            self.queue(self.manager.info_proto())
            self.arm_auth_timer(self.manager.auth_timeout())
            self.start_ping_timer()

    def _no_info(self) -> None:
        self.auth_timer = None
        if not self.got_info and not self.closed:
            logger.error("%s Gateway %r did not send INFO in time", self.label(), self.gw_name)
            self.close("Stale Connection")

    def output_held(self) -> bool:
        manager = self.manager
        if manager.barrier and self.outbound and not self.close_reason:
            # Interest barrier pending (GatewayManager.interest_barrier): keep the bytes.
            manager.held.add(self)
            return True
        return False

    def on_close(self) -> None:
        direction = "outbound" if self.outbound else "inbound"
        self.manager.held.discard(self)
        self.log_kind = f"Gateway ({direction} {self.gw_name!r})"
        super().on_close()

    # --- inbound bytes -------------------------------------------------------------------------

    def handle_data(self, data: bytes) -> None:
        self.last_activity = time.time()
        for op in self.parser.feed(data):
            if self.closed:
                return
            t = op[0]
            if t == OP_RMSG and self.accepts_msgs:
                self.take_rmsg(op)
                continue
            if self.run:
                self.flush_run()
                if self.closed:
                    return
            if self.refused_before_connect(op):
                return
            if t == OP_RMSG:
                if self.outbound or not self.registered:
                    logger.error("%s Gateway message on the wrong direction", self.label())
                    self.close("Protocol Violation")
                    return
                self.process_rmsg(op[1], op[2], op[3], op[4], op[5], op[6])
                continue
            if t == OP_PING:
                self.queue(encode.PONG)
            elif t == OP_PONG:
                self.got_pong()
                if self.outbound:
                    self.manager.sort_outbound()
            elif t == OP_INFO:
                self.process_info(op[1])
            elif t == OP_CONNECT:
                self.process_connect(op[1])
            elif t in (OP_RSUB, OP_RUNSUB, OP_ASUB, OP_AUNSUB):
                if not self.outbound:
                    logger.error(
                        "%s Received interest from gateway on inbound connection", self.label()
                    )
                    self.close("Protocol Violation")
                    return
                if t == OP_RSUB:
                    self.process_rsub(op[1], op[2], op[3])
                elif t == OP_RUNSUB:
                    self.process_runsub(op[1], op[2], op[3])
                elif t == OP_ASUB:
                    self.out_accounts.pop(op[1], None)
                else:
                    self.process_aunsub(op[1])
            elif t == OP_ERR:
                logger.error("%s Gateway Error %r", self.label(), op[1])
                self.close("Parse Error")
                return
            elif t == OP_OK:
                pass
            elif t == OP_ERROR:
                logger.error("%s Gateway protocol error: %s", self.label(), op[1])
                self.close("Protocol Violation", op[1] if op[2] else None)
                return
        if self.run and not self.closed:
            self.flush_run()

    def run_needs_singles(self, subject: bytes) -> bool:
        # Optimistic links answer "no interest" per subject: keep that per message.
        return subject[0] in _ROUTED_FIRST or self.manager.optimistic_inbound

    def process_connect(self, raw: bytes) -> None:
        connect = self.load_json(raw, "CONNECT", LinkConnect)
        if connect is None:
            return
        if self.outbound or self.got_connect:
            return
        name = connect.gateway
        if not name:
            self.close("Wrong Port", E.GATEWAY_PORT, log_error=True)
            return
        self.connect_opts = connect.wire()  # checked again on reload (link_reload)
        if not self.manager.authorized(self.connect_opts, self):
            logger.error("%s Gateway authentication error from %r", self.label(), name)
            self.close("Authentication Failure", E.AUTH_VIOLATION)
            return
        if not self.manager.accepts(name):
            text = f'Connection to gateway "{self.manager.name}" rejected'
            logger.error("%s Rejecting unknown gateway %r", self.label(), name)
            self.close("Gateway Rejected", text)
            return
        self.gw_name = name
        self.name = connect.name
        self.connect_accepted()

    def process_info(self, raw: bytes) -> None:
        model = self.load_json(raw, "INFO", ServerInfo)
        if model is None:
            return
        info = model.wire()
        if self.trace:
            tracef("%s <<- [INFO %s]", self.label(), raw.decode(errors="replace"))
        manager = self.manager
        first = not self.got_info
        self.got_info = True
        if not self.outbound:
            if first:
                self.remote_info = info
                self.name = model.server_id or self.name
                manager.register_inbound(self, model)
            return
        gw = model.gateway
        if not gw:
            self.close(
                "Wrong Port",
                f'Attempt to connect to gateway "{self.gw_name}" using wrong port',
                log_error=True,
            )
            return
        if gw != self.gw_name:
            if not first and model.gateway_cmd == CMD_GOSSIP:
                manager.implicit_gateway(gw, model.gateway_urls or [])
                return
            logger.error(
                "%s Failing connection to gateway %r, remote gateway name is %r",
                self.label(),
                self.gw_name,
                gw,
            )
            self.close(
                "Wrong Gateway",
                f'Connection from "{manager.name}" rejected, wanted to '
                f'connect to "{self.gw_name}", this is "{gw}"',
            )
            return
        if model.gateway_urls:
            manager.remote_urls(gw, model.gateway_urls)
        if first:
            self.cancel_auth_timer()
            self.remote_info = info
            self.name = model.server_id
            self.remote_iom = model.gateway_iom
            self.remote_nrp = model.gateway_nrp
            self.headers = model.headers
            self.queue(manager.connect_proto(self.url, tls=self.tls_info is not None))
            self.queue(manager.info_proto())
            if not manager.register_outbound(self):
                self.close("Duplicate Gateway")
                return
            self.info_accepted()
            self.start_ping_timer()
        else:
            cmd = model.gateway_cmd
            if cmd:
                payload = model.cmd_payload()
                if cmd == CMD_ALL_SUBS_START:
                    if payload is None:
                        self.close(
                            "Protocol Violation",
                            "Account absent from receive-all-subscriptions-start command",
                        )
                        return
                    self.all_subs_start(payload)
                elif cmd == CMD_ALL_SUBS_COMPLETE:
                    if payload is None:
                        self.close(
                            "Protocol Violation",
                            "Account absent from receive-all-subscriptions-complete command",
                        )
                        return
                    self.all_subs_complete(payload)
                else:
                    logger.warning("Received unknown command %r from gateway %r", cmd, gw)
                return
        manager.forward_gateway_to_routes(
            gw, manager.remotes[gw].urls if gw in manager.remotes else []
        )

    # --- interest received on an outbound link -------------------------------------------------

    def _out_account(self, acc: bytes, create: bool = True) -> OutAccount | None:
        st = self.out_accounts.get(acc)
        if st is None and create:
            st = OutAccount(OPTIMISTIC if not self.remote_iom else INTEREST_ONLY)
            self.out_accounts[acc] = st
        return st

    def all_subs_start(self, acc: bytes) -> None:
        st = self.out_accounts.get(acc)
        if st is None:
            st = OutAccount(TRANSITIONING)
            self.out_accounts[acc] = st
        st.mode = TRANSITIONING
        st.ni = None
        st.nil = False

    def all_subs_complete(self, acc: bytes) -> None:
        st = self.out_accounts.get(acc)
        if st is None:
            st = OutAccount(INTEREST_ONLY)
            self.out_accounts[acc] = st
        st.mode = INTEREST_ONLY
        st.ni = None

    def process_rsub(self, acc: bytes, subject: bytes, queue: bytes | None) -> None:
        if self.trace:
            tracef(
                "%s <<- [RS+ %s %s %s]",
                self.label(),
                acc.decode(errors="replace"),
                subject.decode(errors="replace"),
                (queue or b"").decode(errors="replace"),
            )
        st = self.out_accounts.get(acc)
        if queue is None:
            if st is None:
                if self.remote_iom:
                    return  # nats-server ignores plain RS+ for accounts it has no entry for
                return
            if st.nil:
                st.nil = False
            if st.mode == OPTIMISTIC and st.ni is not None:
                if st.ni:
                    st.ni = {s for s in st.ni if not subject_matches(subject, s)}
                    st.ni.discard(subject)
                return
        else:
            if st is None:
                st = self._out_account(acc)
                assert st is not None
        key = (subject, queue)
        if key in st.subs:
            return
        sub = Subscription(subject, queue, b"", self)
        try:
            st.sl.insert(sub)
        except ValueError:
            logger.error("%s Invalid gateway subject %r", self.label(), subject)
            return
        st.subs[key] = sub
        if queue is not None:
            st.qsubs += 1

    def process_runsub(self, acc: bytes, subject: bytes, queue: bytes | None) -> None:
        st = self.out_accounts.get(acc)
        if queue is None and (st is None or (st.mode == OPTIMISTIC and st.ni is not None)):
            if st is None:
                st = OutAccount(OPTIMISTIC)
                self.out_accounts[acc] = st
            assert st.ni is not None
            st.ni.add(subject)
            return
        if st is None:
            return
        sub = st.subs.pop((subject, queue), None)
        if sub is not None:
            st.sl.remove(sub)
            if queue is not None:
                st.qsubs -= 1

    def process_aunsub(self, acc: bytes) -> None:
        st = self.out_accounts.get(acc)
        if st is not None and st.qsubs > 0:
            if st.ni is not None:
                st.ni = set()
            return
        nil = OutAccount(OPTIMISTIC)
        nil.nil = True
        self.out_accounts[acc] = nil

    def interest(self, acc: bytes, subject: bytes) -> tuple[bool, list]:
        """(plain interest?, matching queue groups) for a message we might send."""
        st = self.out_accounts.get(acc)
        if st is None:
            return (not self.remote_iom), []
        if st.nil:
            return False, []
        if st.mode == OPTIMISTIC and st.ni is not None:
            psi = subject not in st.ni
            if st.qsubs:
                return psi, st.sl.match(subject).qsubs
            return psi, []
        r = st.sl.match(subject)
        return bool(r.psubs), r.qsubs

    # --- messages received on an inbound link --------------------------------------------------

    def process_rmsg(
        self,
        acc: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...] | None,
        hdr_len: int,
        msg: bytes,
    ) -> None:
        self.in_msgs += 1
        self.in_bytes += len(msg)
        manager = self.manager
        account = self.accounts_b.get(acc) or self.server.account_by_name_b(acc)
        if account is None:
            manager.no_interest_account(self, acc)
            return
        if subject[0] in _ROUTED_FIRST and (
            subject[:5] == GR_PREFIX or subject[:4] == OLD_GR_PREFIX
        ):
            if manager.handle_routed_reply(self, account, subject, reply, hdr_len, msg):
                return
        if manager.optimistic_inbound:
            ia = self.in_accounts.get(acc)
            if ia is not None and ia.mode == OPTIMISTIC:
                if not account.sublist.count():
                    manager.no_interest_account(self, acc)
                    if not queues:
                        return
                elif not account.sublist.match(subject).psubs:
                    manager.no_interest_subject(self, account, ia, subject)
                    if not queues:
                        return
        process_msg(self.server, self, account, subject, reply, hdr_len, msg, queues)


class GatewayManager:
    """Owns this server's gateway listener, its links, and the supercluster's interest state."""

    def __init__(self, server: LinkServices) -> None:
        self.server = server
        gw = server.opts.gateway
        self.name: str = gw.name
        self.port = gw.port
        self.listener: asyncio.base_events.Server | None = None
        self.remotes: dict[str, RemoteGateway] = {}
        self.url_budget = UrlBudget()
        self.outbound: dict[str, GatewayConnection] = {}
        self.out_sorted: list[GatewayConnection] = []
        self.inbound: dict[int, GatewayConnection] = {}
        self.pending: set[GatewayConnection] = set()
        self.cluster_urls: list[str] = []
        self.removed: set[str] = set()
        self.stopping = False
        self.cluster_hash = gw_hash(self.name)
        self.old_cluster_hash = old_gw_hash(self.name)
        self.server_hash = gw_hash(server.server_id)
        self.recent_subs: dict[Any, RecentSubs] = {}
        # Interest barrier (see interest_barrier): route -> PING count whose PONG we await,
        # and the outbound links whose bytes are held until then.
        self.barrier: dict[Any, int] = {}
        self.held: set[GatewayConnection] = set()
        self.barrier_timer: asyncio.TimerHandle | None = None
        self.optimistic_inbound = getattr(gw, "interest_mode", "") == "optimistic"
        self.threshold = int(
            getattr(gw, "interest_only_threshold", 0) or DEFAULT_INTEREST_ONLY_THRESHOLD
        )
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
        self.listener = await link_tls.listen(
            self.server,
            lambda: GatewayConnection(self.server, self),
            GATEWAY,
            None if host == "0.0.0.0" else host,
            gw.port if gw.port > 0 else 0,
        )
        self.port = self.listener.sockets[0].getsockname()[1]
        self.server.listeners.append(self.listener)
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
        for c in self.connections() + list(self.pending):
            c.close("Server Shutdown")

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
            await asyncio.sleep(delay + random.uniform(0, 0.1))
        failures = 0
        retries = int(self.opts.connect_retries or 0)
        while not self.stopping and self.remotes.get(remote.name) is remote:
            current = self.outbound.get(remote.name)
            if current is not None and not current.closed:
                await asyncio.sleep(0.25)
                continue
            urls = list(remote.urls)
            if not urls:
                return
            random.shuffle(urls)
            conn = None
            for url in urls:
                conn = await self._dial(remote.name, url)
                if conn is not None:
                    break
            if conn is not None:
                while not conn.closed:
                    await asyncio.sleep(0.25)
                if conn.registered:
                    failures = 0
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
            await asyncio.sleep(
                RECONNECT_DELAY + random.uniform(0, 0.1)
                if remote.configured
                else random.uniform(0, 0.1) + 0.2
            )

    async def _dial(self, name: str, url: str) -> GatewayConnection | None:
        host, port, _, _ = parse_url(url, 7222)
        logger.debug("Connecting to explicit gateway %r (%s:%d)", name, host, port)
        remote = self.remotes.get(name)
        try:
            proto = await link_tls.dial(
                self.server,
                lambda: GatewayConnection(self.server, self, name, url),
                GATEWAY,
                url,
                host,
                port,
                remote=name,
                known=list(remote.urls) if remote is not None else [],
            )
        except OSError as exc:
            logger.debug("Error connecting to gateway %r (%s): %s", name, url, exc)
            return None
        return proto  # type: ignore[return-value]

    def _has_inbound(self, name: str) -> bool:
        return any(c.gw_name == name and not c.closed for c in self.inbound.values())

    # --- handshake pieces --------------------------------------------------------------------

    def auth_timeout(self) -> float:
        return float(getattr(self.opts, "auth_timeout", None) or 2.0)

    def authorized(self, opts: dict[str, Any], conn: Any = None) -> bool:
        verdict = link_tls.cert_authorized(self.server, GATEWAY, conn)
        if verdict is not None:
            return verdict  # the certificate decides (tls verify_and_map / check_known_urls)
        gw = self.opts
        if not gw.username:
            return True
        return auth.link_login_ok(opts, gw.username, gw.password)

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
            "gateway_urls": list(self.cluster_urls),
            "gateway_nrp": True,
            "gateway_iom": not self.optimistic_inbound,
        }
        if gw.username:
            info["auth_required"] = True
        info.update(link_tls.info_fields(server, GATEWAY))
        return info

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
            return False
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
            remote.add_urls(urls)

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

    def _should_map_reply(self, account: Any, reply: bytes) -> bool:
        recent = self.recent_subs.get(account)
        return recent is not None and recent.matches(reply)

    # --- sending messages on outbound links -------------------------------------------------

    def send_msg(
        self,
        account: Any,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        msg: bytes,
        served: list[bytes] | None,
    ) -> bool:
        """Send a message that entered our cluster here to every interested remote cluster."""
        links = self.out_sorted
        if not links:
            return False
        if subject[0] in _ROUTED_FIRST and (
            subject[:5] == GR_PREFIX or subject[:4] == OLD_GR_PREFIX
        ):
            return self._send_routed(account, subject, reply, hdr_len, msg)
        acc = account.name_b
        sent = False
        mapped: bytes | None = None
        mapping_checked = False
        for c in links:
            if c.closed:
                continue
            st = c.out_accounts.get(acc)
            if st is not None and st.ni is None and not st.nil:
                # Interest-only (the usual mode): the peer's subscriptions decide.
                r = st.sl.match(subject)
                psi, qgroups = bool(r.psubs), r.qsubs
            else:
                psi, qgroups = c.interest(acc, subject)
            queues: list[bytes] | None = None
            if qgroups:
                for group in qgroups:
                    qname = group[0].queue
                    if served is not None and qname in served:
                        continue
                    if queues is None:
                        queues = [qname]
                    else:
                        queues.append(qname)
                    if served is None:
                        served = [qname]
                    else:
                        served.append(qname)
            if not psi and not queues:
                continue
            out_reply = reply
            if reply is not None:
                if not mapping_checked:
                    mapping_checked = True
                    if self._should_map_reply(account, reply):
                        mapped = (
                            GR_PREFIX + self.cluster_hash + b"." + self.server_hash + b"." + reply
                        )
                        self.interest_barrier()
                if mapped is not None:
                    out_reply = (
                        mapped if c.remote_nrp else (b"$GR." + self.old_cluster_hash + b"." + reply)
                    )
            c.send_msg(account, subject, out_reply, queues, hdr_len, msg)
            sent = True
        return sent

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

    def send_batch(self, account: Any, subject: bytes, msgs: list[bytes], total: int) -> None:
        """A run of plain messages on one subject: decide interest once per link."""
        links = self.out_sorted
        if not links:
            return
        if subject[0] in _ROUTED_FIRST and (
            subject[:5] == GR_PREFIX or subject[:4] == OLD_GR_PREFIX
        ):
            for m in msgs:
                self._send_routed(account, subject, None, -1, m)
            return
        acc = account.name_b
        targets = []
        for c in links:
            if c.closed:
                continue
            psi, qgroups = c.interest(acc, subject)
            if qgroups:
                # Remote queue groups are chosen per message: take the general path.
                for m in msgs:
                    self.send_msg(account, subject, None, -1, m, None)
                return
            if psi:
                targets.append(c)
        for c in targets:
            c.send_batch(account, subject, msgs, total)

    def _send_routed(
        self, account: Any, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes
    ) -> bool:
        """A `_GR_.` reply goes only to the cluster whose hash it names."""
        if subject[:5] == GR_PREFIX:
            target = subject[5:11]
            for c in self.out_sorted:
                if not c.closed and gw_hash(c.gw_name) == target:
                    c.send_msg(account, subject, reply, None, hdr_len, msg)
                    return True
        else:
            target = subject[4:8]
            for c in self.out_sorted:
                if not c.closed and old_gw_hash(c.gw_name) == target:
                    c.send_msg(account, subject, reply, None, hdr_len, msg)
                    return True
        return False

    def send_routed_reply(
        self, account: Any, routed: bytes, reply: bytes | None, hdr_len: int, msg: bytes
    ) -> None:
        """A client answers a request that came from another cluster: send it straight back."""
        if routed[: 5 + 6] == GR_PREFIX + self.cluster_hash:
            # The requester is in our own cluster after all: deliver as a normal message.
            self.handle_routed_reply(None, account, routed, reply, hdr_len, msg)
            return
        self._send_routed(account, routed, reply, hdr_len, msg)

    def handle_routed_reply(
        self, src: Any, account: Any, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes
    ) -> bool:
        """A `_GR_.<cluster>.<server>.<reply>` subject arrived; True when fully handled."""
        if subject[:4] == OLD_GR_PREFIX:
            if subject[4:8] != self.old_cluster_hash:
                return True
            real = subject[9:]
        else:
            if len(subject) <= GR_OFFSET or subject[5:11] != self.cluster_hash:
                return True
            real = subject[GR_OFFSET:]
            srv = subject[12:18]
            if src is not None and src.kind == GATEWAY and srv != self.server_hash:
                routes = self.server.routes
                if routes is not None:
                    for r in routes.connections():
                        if gw_hash(r.remote_id) == srv:
                            r.send_msg(account, subject, reply, None, hdr_len, msg)
                            return True
        origin = src if src is not None else _InternalOrigin()
        process_msg(self.server, origin, account, real, reply, hdr_len, msg, None, any_queue=True)
        if real[:4] != b"_R_.":
            self.send_msg(account, real, reply, hdr_len, msg, None)
        return True

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
        conn = self.outbound.get(name)
        if conn is not None:
            conn.close("Gateway Removed")
        for c in list(self.inbound.values()) + list(self.pending):
            if c.gw_name == name:
                c.close("Gateway Removed")

    # --- monitoring ------------------------------------------------------------------------------

    def gatewayz(self, gw_name: str, accs: bool, acc_name: str, subs: bool) -> dict[str, Any]:
        from scserver.monitor import conn_info

        url = self.own_url()
        host, _, port = url.rpartition(":")
        out: dict[str, Any] = {"name": self.name, "host": host, "port": int(port)}
        outbound: dict[str, Any] = {}
        for name, c in sorted(self.outbound.items()):
            if c.closed or (gw_name and name != gw_name):
                continue
            remote = self.remotes.get(name)
            entry: dict[str, Any] = {
                "configured": bool(remote and remote.configured),
                "connection": self._conn(conn_info(self.server, c), c),
            }
            if accs:
                entry["accounts"] = self._out_accounts(c, acc_name, subs)
            outbound[name] = entry
        inbound: dict[str, list[dict[str, Any]]] = {}
        for c in self.inbound.values():
            if c.closed or not c.registered or (gw_name and c.gw_name != gw_name):
                continue
            remote = self.remotes.get(c.gw_name)
            entry = {
                "configured": bool(remote and remote.configured),
                "connection": self._conn(conn_info(self.server, c), c),
            }
            if accs:
                entry["accounts"] = self._in_accounts(c, acc_name)
            inbound.setdefault(c.gw_name, []).append(entry)
        out["outbound_gateways"] = outbound
        out["inbound_gateways"] = inbound
        return out

    @staticmethod
    def _conn(info: dict[str, Any], c: GatewayConnection) -> dict[str, Any]:
        info["name"] = c.name
        info.pop("kind", None)
        info.pop("type", None)
        info.update(link_tls.monitor_fields(c))
        return info

    def _out_accounts(self, c: GatewayConnection, acc_name: str, subs: bool) -> list[dict]:
        items = []
        for acc, st in sorted(c.out_accounts.items()):
            name = acc.decode(errors="replace")
            if acc_name and name != acc_name:
                continue
            if st is None:
                continue
            item: dict[str, Any] = {
                "name": name,
                "interest_mode": st.mode,
                "no_interest_count": len(st.ni) if st.ni else 0,
                "interest_only_threshold": self.threshold,
                "num_subs": len(st.subs),
                "num_queue_subs": st.qsubs,
            }
            if subs:
                item["subscriptions_list"] = sorted(
                    (s.subject + (b" " + s.queue if s.queue else b"")).decode(errors="replace")
                    for s in st.subs.values()
                )
            items.append(item)
        return items

    def _in_accounts(self, c: GatewayConnection, acc_name: str) -> list[dict]:
        items = []
        for acc, ia in sorted(c.in_accounts.items()):
            name = acc.decode(errors="replace")
            if acc_name and name != acc_name:
                continue
            items.append(
                {
                    "name": name,
                    "interest_mode": ia.mode,
                    "no_interest_count": len(ia.ni) if ia.ni else 0,
                    "interest_only_threshold": self.threshold,
                }
            )
        return items


class _InternalOrigin:
    """Stands in as the source of a routed reply published by one of our own clients.

    It poses as a gateway so that ``process_msg`` delivers locally and to routes but leaves
    the onward gateway send to ``handle_routed_reply``.
    """

    kind = GATEWAY
    echo = True
    closed = False


__all__ = ["GatewayManager", "GatewayConnection", "gw_hash", "ROUTE"]

"""One gateway link: the GATEWAY protocol (CONNECT/INFO, RS+/RS-, A+/A-, RMSG) on top of
the shared link base, and the output hold of an interest barrier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scserver.core import kinds
from scserver.core.ports import LinkServices
from scserver.gateway import relink
from scserver.gateway.interest import (
    CMD_ALL_SUBS_COMPLETE,
    CMD_ALL_SUBS_START,
    CMD_GOSSIP,
    INTEREST_ONLY,
    OPTIMISTIC,
    TRANSITIONING,
    InAccount,
    OutAccount,
)
from scserver.gateway.replies import ROUTED_FIRST
from scserver.link import LinkConnection, link_closed
from scserver.log import logger
from scserver.protocol import errors as E
from scserver.protocol.models import LinkConnect
from scserver.protocol.parser import (
    GATEWAY,
    GATEWAY_OPS,
    OP_ASUB,
    OP_AUNSUB,
    OP_RMSG,
    OP_RSUB,
    OP_RUNSUB,
)
from scserver.routing import GR_PREFIX, OLD_GR_PREFIX, process_msg, process_routed_reply
from scserver.subjects import subject_matches
from scserver.subscription import Subscription

if TYPE_CHECKING:
    from scserver.gateway.manager import GatewayManager


GATEWAY_SPEC = kinds.register(
    kinds.KindSpec(
        kind=GATEWAY,
        name="gateway",
        id_label="gid",
        label="Gateway",
        monitor_label="Gateway",
        fanout=kinds.GATEWAY_LEG,
        ops=GATEWAY_OPS,
        max_ping=15.0,
        slow_key="gateways",
        pending_factor=4,
        on_closed=link_closed,
    )
)


class GatewayConnection(LinkConnection):
    """One gateway link, outbound (we dialled) or inbound (they dialled)."""

    kind = GATEWAY
    spec = GATEWAY_SPEC
    fanout = GATEWAY_SPEC.fanout
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
        # Messages flow only on inbound links, once registered (register_inbound sets
        # accepts_msgs, the hot-path guard).
        self.url = url
        self.headers = False
        self.remote_iom = True
        self.remote_nrp = True
        self.out_accounts: dict[bytes, OutAccount | None] = {}
        self.in_accounts: dict[bytes, InAccount] = {}
        #: outbound: the link to a lame duck server this one is to replace (manager.peer_lame_duck)
        self.replaces: GatewayConnection | None = None
        #: outbound: the server it reaches said it is in lame duck mode
        self.peer_ldm = False

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

    def handle_op(self, op: tuple) -> bool:
        """Messages flow only on inbound links, interest (RS+/RS-, A+/A-) only on outbound
        ones: the wrong direction is a protocol violation. +OK is ignored."""
        t = op[0]
        if t == OP_RMSG:
            if self.outbound or not self.registered:
                logger.error("%s Gateway message on the wrong direction", self.label())
                self.close("Protocol Violation")
                return True
            self.process_rmsg(op[1], op[2], op[3], op[4], op[5], op[6])
        elif t in (OP_RSUB, OP_RUNSUB, OP_ASUB, OP_AUNSUB):
            if not self.outbound:
                logger.error(
                    "%s Received interest from gateway on inbound connection", self.label()
                )
                self.close("Protocol Violation")
                return True
            if t == OP_RSUB:
                self.process_rsub(op[1], op[2], op[3])
            elif t == OP_RUNSUB:
                self.process_runsub(op[1], op[2], op[3])
            elif t == OP_ASUB:
                self.out_accounts.pop(op[1], None)
            else:
                self.process_aunsub(op[1])
        return False

    def got_pong(self) -> None:
        super().got_pong()
        if self.outbound:
            if self.replaces is not None:
                relink.standby_ready(self.manager, self)
            self.manager.sort_outbound()

    def run_needs_singles(self, subject: bytes) -> bool:
        # Optimistic links answer "no interest" per subject: keep that per message.
        return subject[0] in ROUTED_FIRST or self.manager.optimistic_inbound

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
        model = self.read_info(raw)
        if model is None:
            return
        info = model.wire()
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
            if self.replaces is not None and model.ldm:
                self.close("Server In Lame Duck Mode")  # no better than the link it replaces
                return
            self.queue(manager.connect_proto(self.url, tls=self.tls_info is not None))
            self.queue(manager.info_proto())
            if not manager.register_outbound(self):
                self.close("Duplicate Gateway")
                return
            self.info_accepted()
            self.start_ping_timer()
            if model.ldm:
                relink.peer_lame_duck(manager, self)
        else:
            if model.ldm:
                relink.peer_lame_duck(manager, self)
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
            self.trace_rsub(acc, subject, queue)
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
        manager = self.manager
        account = self.msg_account(acc, msg)
        if account is None:
            manager.no_interest_account(self, acc)
            return
        if subject[0] in ROUTED_FIRST and (
            subject[:5] == GR_PREFIX or subject[:4] == OLD_GR_PREFIX
        ):
            if process_routed_reply(self.server, self, account, subject, reply, hdr_len, msg):
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

"""The client connection: CONNECT, PUB/HPUB, SUB, UNSUB, PING, as nats-server answers them."""

from __future__ import annotations

import json
import time
from typing import Any

from scserver import routing
from scserver.auth import (
    Credentials,
    HashPending,
    check_password,
    login_credentials,
    new_nonce,
)
from scserver.connection import Connection, in_turns
from scserver.core import kinds
from scserver.core.ports import ClientServices
from scserver.log import logger, trace_enabled, tracef
from scserver.protocol import encode, models
from scserver.protocol import errors as E
from scserver.protocol.parser import (
    CLIENT,
    CLIENT_OPS,
    ERR_BEFORE_CONNECT,
    OP_CONNECT,
    OP_ERR,
    OP_ERROR,
    OP_INFO,
    OP_OK,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_SUB,
    OP_UNSUB,
    Parser,
)
from scserver.subjects import is_valid_literal_subject, is_valid_subject
from scserver.subscription import Subscription
from scserver.tls import map_login as tls_map_login

# First bytes of subjects that need a closer look on publish: `_GR_.`, `$GR.`, `_R_.`.
_SPECIAL_FIRST = frozenset(b"_$")
_RESERVED_REPLY_PREFIXES = (b"_GR_.", b"$GR.", b"_R_.", b"$JS.ACK.")
NO_RESPONDERS_HDR = b"NATS/1.0 503\r\n"
GW_REPLY_TTL = 2.0
#: Operations refused before an accepted CONNECT when the server requires auth.
_NEEDS_LOGIN = frozenset({OP_PUB, OP_SUB, OP_UNSUB, OP_PING})


def _client_closed(server: ClientServices, conn: Any) -> None:
    server.client_closed(conn)


CLIENT_SPEC = kinds.register(
    kinds.KindSpec(
        kind=CLIENT,
        name="client",
        id_label="cid",
        label="Client",
        monitor_label="Client",
        fanout=kinds.LOCAL,
        ops=CLIENT_OPS,
        first_ping=2.0,
        slow_key="clients",
        ping_idle_skip=True,
        on_closed=_client_closed,
    )
)


class ClientConnection(Connection):
    """A NATS client. Verbose and pedantic default to on until CONNECT says otherwise."""

    kind = CLIENT
    spec = CLIENT_SPEC
    fanout = CLIENT_SPEC.fanout
    server: ClientServices

    def __init__(self, server: ClientServices) -> None:
        super().__init__(server)
        self.account = server.global_account
        self.user: Any = None
        self.subs: dict[bytes, Subscription] = {}
        self.connected = False
        self.verbose = True
        self.pedantic = True
        self.echo = True
        self.headers = False
        self.no_responders = False
        self.protocol = 0
        self.lang = ""
        self.version = ""
        self.username = ""
        self.auth_timer: Any = None
        self.got_first_pong = False
        self.gw_replies: dict[bytes, tuple[bytes, float]] = {}
        self.permissions: Any = None
        #: What this client logged in with, checked again on every reload (scserver.auth).
        self.credentials = Credentials()
        self.nonce: bytes | None = None
        self.auth_cache: dict[str, bool] = {}
        #: Bytes that arrived while a bcrypt check ran off the loop (see _check_hash_off_loop).
        self.auth_backlog: list[bytes] | None = None
        self.trace = trace_enabled()
        self.slow_pub = True
        auth = server.auth
        if auth.required and not auth.no_auth_user:
            # As nats-server while it awaits authentication: only CONNECT is read (nothing
            # with a payload is buffered) until the login succeeds (see open_parser).
            opts = server.opts
            self.parser = Parser(CLIENT, opts.max_control_line, opts.max_payload, handshake=True)

    # --- lifecycle -------------------------------------------------------------------------

    def initial_info(self, tls_first: bool = False) -> bytes:
        """The first INFO; scserver.tls.accept_tls writes it before the TLS handshake.

        After a ``handshake_first`` handshake it says tls_required even when plain clients
        are allowed, as nats-server's does.
        """
        if self.server.auth.nonce_required and self.nonce is None:
            self.nonce = new_nonce().encode()
        info = self.info_fields()
        if tls_first:
            info["tls_required"] = True
        return encode.info(info)

    def _tls_map(self) -> bool:
        """Users come from the client certificate (tls { verify_and_map: true })."""
        cfg = self.server.tls.client_cfg
        return (
            self.tls_info is not None
            and cfg is not None
            and cfg.verify_and_map
            and self.server.auth.required
        )

    def on_open(self) -> None:
        server = self.server
        if not self.info_sent:
            self.info_sent = True
            self.queue(self.initial_info(tls_first=self.tls_first))
        max_conns = server.opts.max_connections
        if server.lame_duck or 0 <= max_conns <= len(server.clients):
            self.close("Maximum Connections Exceeded", E.MAX_CONNECTIONS)
            return
        server.clients[self.cid] = self
        if server.auth.required:
            self.auth_timer = server.loop.call_later(server.opts.auth_timeout, self._auth_timeout)
        logger.debug("%s Client connection created", self.label())
        self.start_ping_timer()

    def info_fields(self) -> dict[str, Any]:
        info = self.server.client_info_base()
        info["client_id"] = self.cid
        if self.nonce is not None:
            info["nonce"] = self.nonce.decode()
        if self.host:
            info["client_ip"] = self.host
        return info

    def _auth_timeout(self) -> None:
        self.auth_timer = None
        if not self.connected and not self.closed:
            self.close("Authentication Timeout", E.AUTH_TIMEOUT, log_error=True)

    def on_close(self) -> None:
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        server = self.server
        server.clients.pop(self.cid, None)
        account = self.account
        account.clients.discard(self)
        subs = list(self.subs.values())
        self.subs.clear()

        def drop(sub: Any) -> None:
            account.sublist.remove(sub)
            server.interest_removed(account, sub)

        # 200k subscriptions take seconds to drop: a few at a time, between other work.
        in_turns(server.loop, subs, drop)
        logger.debug("%s Client connection closed: %s", self.label(), self.close_reason)

    # --- inbound ---------------------------------------------------------------------------

    def handle_data(self, data: bytes) -> None:
        if self.auth_backlog is not None:
            self.auth_backlog.append(data)  # the login is still being decided
            return
        self.last_activity = time.time()
        server = self.server
        process_msg = routing.process_msg
        ops = self.parser.feed(data)
        # Consecutive plain publishes to one subject are routed as a run (routing.process_batch).
        run_subject: bytes | None = None
        run: list[bytes] = []
        run_total = 0
        for op in ops:
            if self.closed:
                return
            t = op[0]
            if t == OP_PUB and self.connected:
                _, subject, reply, hdr_len, msg = op
                if not (
                    self.slow_pub
                    or hdr_len >= 0
                    or subject[0] in _SPECIAL_FIRST
                    or reply is not None
                    or self.verbose
                ):
                    if subject != run_subject:
                        if run:
                            self._publish_run(run_subject, run, run_total)
                            run = []
                            run_total = 0
                        run_subject = subject
                    run.append(msg)
                    run_total += len(msg)
                    continue
            if run:
                self._publish_run(run_subject, run, run_total)
                run = []
                run_total = 0
                run_subject = None
                if self.closed:
                    return
            if not self.connected and t in _NEEDS_LOGIN and self.server.auth.required:
                # Before an accepted CONNECT, only CONNECT (and PONG/+OK/INFO) may come.
                self._auth_violation()
                return
            if t == OP_PUB:
                _, subject, reply, hdr_len, msg = op
                if (
                    self.slow_pub
                    or hdr_len >= 0
                    or subject[0] in _SPECIAL_FIRST
                    or (reply is not None and reply[0] in _SPECIAL_FIRST)
                    or (reply is not None and self.no_responders)
                ):
                    self.process_pub(subject, reply, hdr_len, msg)
                    continue
                # The common publish, inlined: count it, then route it.
                size = len(msg)
                self.in_msgs += 1
                self.in_bytes += size
                account = self.account
                account.in_msgs += 1
                account.in_bytes += size
                if self.verbose:
                    self.queue(encode.OK)
                process_msg(server, self, account, subject, reply, hdr_len, msg)
            elif t == OP_SUB:
                self.process_sub(op[1], op[2], op[3])
            elif t == OP_PING:
                self.queue(encode.PONG)
                if self.trace:
                    tracef("%s <<- [PING]", self.label())
            elif t == OP_UNSUB:
                self.process_unsub(op[1], op[2])
            elif t == OP_CONNECT:
                self.process_connect(op[1])
            elif t == OP_PONG:
                self.got_pong()
                self.got_first_pong = True
            elif t == OP_OK or t == OP_INFO:
                pass
            elif t == OP_ERR:
                # nats-server logs a client's -ERR and closes the connection without a reply.
                logger.error("%s Client Error %s", self.label(), op[1])
                self.close("Parse Error")
                return
            elif t == OP_ERROR:
                if op[1] == ERR_BEFORE_CONNECT:
                    self._auth_violation()
                    return
                self._parse_error(op[1], op[2])
                return
        if run and not self.closed:
            self._publish_run(run_subject, run, run_total)

    def _publish_run(self, subject: bytes | None, msgs: list[bytes], total: int) -> None:
        """Count and route a run of plain publishes to one subject."""
        assert subject is not None
        n = len(msgs)
        self.in_msgs += n
        self.in_bytes += total
        account = self.account
        account.in_msgs += n
        account.in_bytes += total
        if n == 1:
            routing.process_msg(self.server, self, account, subject, None, -1, msgs[0])
        else:
            routing.process_batch(self.server, self, account, subject, msgs, total)

    def _parse_error(self, text: str, send: bool) -> None:
        if text == E.MAX_PAYLOAD:
            self.close("Maximum Payload Exceeded", text, log_error=True)
        elif text == E.MAX_CONTROL_LINE:
            self.close("Maximum Control Line Exceeded", text, log_error=True)
        elif send:
            self.close("Protocol Violation", text, log_error=True)
        else:
            logger.error("%s %s", self.label(), text)
            self.close("Protocol Violation")

    def _auth_violation(self) -> None:
        self.server.auth_failures += 1
        self.close("Authentication Failure", E.AUTH_VIOLATION, log_error=True)

    def process_connect(self, raw: bytes) -> None:
        if self.connected and self.server.auth.required:
            # nats-server ignores a second CONNECT's credentials; accept options only.
            pass
        try:
            # Typed as nats-server's ClientOpts (a wrongly typed field fails, as in Go);
            # below, every field is present with its default and of its declared type.
            opts = models.parse(raw, models.ClientConnect).model_dump(by_alias=True)
        except models.WireError as exc:
            logger.error("%s Error parsing CONNECT: %s", self.label(), exc)
            self.close("Protocol Violation")
            return
        if self.trace:
            tracef("%s <<- [CONNECT %s]", self.label(), _redact(opts))
        self.verbose = bool(opts.get("verbose", True))
        self.pedantic = bool(opts.get("pedantic", True))
        self.echo = bool(opts.get("echo", True))
        self.headers = bool(opts.get("headers", False))
        self.no_responders = bool(opts.get("no_responders", False))
        self.lang = str(opts.get("lang", "") or "")
        self.version = str(opts.get("version", "") or "")
        self.name = str(opts.get("name", "") or "")
        proto = opts.get("protocol", 0)
        if not isinstance(proto, int) or proto < 0 or proto > 1:
            self.close("Bad Client Protocol", E.BAD_CLIENT_PROTOCOL, log_error=True)
            return
        self.protocol = proto
        if self.no_responders and not self.headers:
            self.close("Protocol Violation", E.NO_RESPONDERS_NEEDS_HEADERS, log_error=True)
            return
        if not self.connected:
            if opts.get("account") or opts.get("new_account"):
                self._auth_violation()
                return
            creds = Credentials.from_connect(opts)
            if self._tls_map():
                # verify_and_map: the client certificate names the user (scserver.tls).
                result = tls_map_login(self.server.auth, self.tls_info)
                if result.ok and result.user is not None:
                    creds = Credentials(user=result.user.username)
            else:
                try:
                    result = self.server.auth.authenticate(
                        creds, self.nonce, self.auth_cache, defer_hash=True
                    )
                except HashPending as pending:
                    self._check_hash_off_loop(raw, pending)
                    return
            if not result.ok:
                logger.error(
                    "%s authentication error - User %r",
                    self.label(),
                    creds.nkey or creds.user,
                )
                self._auth_violation()
                return
            if self.auth_timer is not None:
                self.auth_timer.cancel()
                self.auth_timer = None
            self.credentials = login_credentials(creds, result)
            self.user = result.user
            self.username = result.user.identity if result.user else ""
            self.permissions = self.server.compile_permissions(result.user)
            account = self.server.lookup_account(result.account)
            if account is None:
                self._auth_violation()
                return
            self.bind_account(account)
            self.connected = True
            self.open_parser()
            self.server.client_connected(self)
        self.update_pub_path()
        if self.verbose:
            self.queue(encode.OK)

    def _check_hash_off_loop(self, raw: bytes, pending: HashPending) -> None:
        """Run a bcrypt check in a worker thread, then process the same CONNECT again.

        bcrypt is slow on purpose; run on the event loop it would stall every connection. Until
        the verdict is in, reading stops and whatever still arrives is kept, in order, to be
        handled once the login is decided (the parser holds what came behind the CONNECT).
        """
        self.auth_backlog = []
        self._hold_reading()
        loop = self.server.loop
        future = loop.run_in_executor(None, check_password, pending.given, pending.configured)

        def decided(fut: Any) -> None:
            early = self.auth_backlog or []
            self.auth_backlog = None
            if self.closed:
                return
            try:
                ok = bool(fut.result())
            except Exception:  # noqa: BLE001 - a failed check is a refused login
                ok = False
            self.auth_cache[pending.configured] = ok
            self.process_connect(raw)  # the cache answers now
            if self.closed:
                return
            if early:
                self._backlog.insert(0, b"".join(early))
            self._continue()

        future.add_done_callback(decided)

    def login_again(self, auth: Any, defer_hash: bool = False) -> Any:
        """After a reload: the AuthResult this client's login gets from the new ``auth``.

        The same question as at CONNECT: the certificate for verify_and_map clients, else the
        credentials (and nonce) it logged in with. With ``defer_hash`` a bcrypt check the
        cache cannot answer raises ``HashPending`` (the server runs it off the loop).
        """
        if self._tls_map():
            return tls_map_login(auth, self.tls_info)
        return auth.authenticate(self.credentials, self.nonce, self.auth_cache, defer_hash)

    def reauthorized(self, user: Any, permissions: Any) -> None:
        """A reload kept this client: apply its (possibly new) permissions in place.

        Subscriptions the new permissions no longer allow are removed with an -ERR, as
        nats-server's ``processSubsOnConfigReload`` does.
        """
        self.user = user
        self.permissions = permissions
        if permissions is not None:
            for sub in list(self.subs.values()):
                queue = sub.queue
                if permissions.can_subscribe(sub.subject, queue):
                    continue
                self._remove_sub(sub)
                subject = sub.subject.decode(errors="replace")
                sid = sub.sid.decode(errors="replace")
                if queue:
                    q = queue.decode(errors="replace")
                    text = (
                        f'Permissions Violation for Subscription to "{subject}" '
                        f'using queue "{q}" (sid "{sid}")'
                    )
                else:
                    text = f'Permissions Violation for Subscription to "{subject}" (sid "{sid}")'
                self.queue(encode.err(text))
                logger.info(
                    "%s Removed sub %r (sid %r) - not authorized", self.label(), subject, sid
                )
        self.update_pub_path()

    def open_parser(self) -> None:
        """Logged in: the parser takes every client operation; what arrived behind the CONNECT
        is parsed from a fresh loop callback, ahead of the next read."""
        parser, opts = self.parser, self.server.opts
        if parser.handshake and parser.open(opts.max_control_line, opts.max_payload):
            self.server.loop.call_soon(self._parse_held)

    def _parse_held(self) -> None:
        if not self.closed:
            self.data_received(b"")

    def bind_account(self, account: Any) -> None:
        self.account.clients.discard(self)
        self.account = account
        account.clients.add(self)

    # --- PUB -------------------------------------------------------------------------------

    def process_pub(self, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes) -> None:
        if self.exchanges is not None:
            self.exchanges.published(subject, reply)
        size = len(msg)
        self.in_msgs += 1
        self.in_bytes += size
        account = self.account
        account.in_msgs += 1
        account.in_bytes += size
        if (
            self.slow_pub
            or hdr_len >= 0
            or subject[0] in _SPECIAL_FIRST
            or (reply is not None and reply[0] in _SPECIAL_FIRST)
        ):
            if account.mappings is not None:
                # Subject mappings apply once, where the message enters (scserver.mapping).
                mapped = account.mappings.select(subject)
                if mapped is None:
                    if self.verbose:
                        self.queue(encode.OK)
                    return
                subject = mapped
            if not self._check_pub(subject, reply, hdr_len, msg):
                return
        elif self.verbose:
            self.queue(encode.OK)
        delivered = routing.process_msg(self.server, self, account, subject, reply, hdr_len, msg)
        if not delivered and reply is not None and self.no_responders:
            self._send_no_responders(subject, reply)

    def set_trace(self, on: bool) -> None:
        """Tracing changed on reload: the publish path depends on it (update_pub_path)."""
        self.trace = on
        self.update_pub_path()

    def update_pub_path(self) -> None:
        """Decide once (not per message) whether publishes need the full checks."""
        self.slow_pub = bool(
            self.trace
            or self.pedantic
            or self.permissions is not None
            or self.gw_replies
            or self.account.mappings is not None
            or self.exchanges is not None
        )

    def _check_pub(self, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes) -> bool:
        """The full publish checks; False when the message must not be delivered."""
        account = self.account
        if self.trace:
            tracef(
                "%s <<- [PUB %s %s %d]",
                self.label(),
                subject.decode(errors="replace"),
                (reply or b"").decode(errors="replace"),
                len(msg),
            )
        if hdr_len >= 0 and not self.headers:
            # nats-server returns ErrMsgHeadersNotSupported from the parser: no -ERR, just close.
            logger.error("%s message headers not supported", self.label())
            self.close("Protocol Violation")
            return False
        if self.pedantic and not is_valid_literal_subject(subject):
            self.queue(encode.err(E.INVALID_PUB_SUBJECT))
        perms = self.permissions
        if perms is not None and not perms.can_publish(subject):
            self._permission_error(E.pub_permission(subject.decode(errors="replace")))
            return False
        if subject[:5] == routing.GR_PREFIX or subject[:4] == routing.OLD_GR_PREFIX:
            self._permission_error(E.pub_permission(subject.decode(errors="replace")))
            return False
        if reply is not None and reply.startswith(_RESERVED_REPLY_PREFIXES):
            self._permission_error(E.reply_permission(reply.decode(errors="replace")))
            return False
        # As in nats-server's processInboundClientMsg: +OK only once the publish passed the
        # permission checks, and after a pedantic -ERR.
        if self.verbose:
            self.queue(encode.OK)
        if self.gw_replies:
            routed = self._routed_reply(subject)
            if routed is not None:
                routing.send_routed_reply(self.server, account, routed, reply, hdr_len, msg)
                return False
        return True

    def _permission_error(self, text: str) -> None:
        logger.error("%s %s", self.label(), text)
        self.queue(encode.err(text))

    def _send_no_responders(self, subject: bytes, reply: bytes) -> None:
        """The 503 status message nats clients turn into a 'no responders' error."""
        if self.exchanges is not None:
            self.exchanges.awaiting.discard(reply)  # answered: nobody will
        for sub in self.account.sublist.match(reply).psubs:
            if sub.conn is self:
                hdr = NO_RESPONDERS_HDR + b"Nats-Subject: " + subject + b"\r\n\r\n"
                head = encode.msg_head(reply, sub.sid, None, len(hdr), len(hdr))
                self.queue(head + hdr + b"\r\n")
                return

    def track_gw_reply(self, routed: bytes) -> None:
        self.slow_pub = True
        now = time.monotonic()
        self.gw_replies[routed[routing.GR_OFFSET :]] = (routed, now + GW_REPLY_TTL)
        if len(self.gw_replies) > 64:
            self.gw_replies = {k: v for k, v in self.gw_replies.items() if v[1] > now}

    def _routed_reply(self, subject: bytes) -> bytes | None:
        entry = self.gw_replies.get(subject)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self.gw_replies[subject]
            return None
        return entry[0]

    # --- SUB / UNSUB -------------------------------------------------------------------------

    def process_sub(self, subject: bytes, queue: bytes | None, sid: bytes) -> None:
        if self.trace:
            tracef(
                "%s <<- [SUB %s %s %s]",
                self.label(),
                subject.decode(errors="replace"),
                (queue or b"").decode(errors="replace"),
                sid.decode(errors="replace"),
            )
        if sid in self.subs:
            if self.verbose:
                self.queue(encode.OK)
            return
        if not is_valid_subject(subject):
            logger.error("%s Invalid Subject %r", self.label(), subject)
            self.queue(encode.err(E.INVALID_SUBJECT))
            return
        perms = self.permissions
        if perms is not None and not perms.can_subscribe(subject, queue):
            self._permission_error(
                E.sub_permission(
                    subject.decode(errors="replace"),
                    queue.decode(errors="replace") if queue else None,
                )
            )
            return
        max_subs = self.server.opts.max_subscriptions
        if max_subs and len(self.subs) >= max_subs:
            logger.error("%s Maximum Subscriptions Exceeded (max=%d)", self.label(), max_subs)
            self.queue(encode.err(E.MAX_SUBS))
            return
        account = self.account
        sub = Subscription(subject, queue, sid, self, account)
        try:
            account.sublist.insert(sub)
        except ValueError:
            self.queue(encode.err(E.INVALID_SUBJECT))
            return
        self.subs[sid] = sub
        if self.verbose:
            self.queue(encode.OK)
        self.server.interest_added(account, sub)

    def process_unsub(self, sid: bytes, max_msgs: int) -> None:
        if self.trace:
            tracef("%s <<- [UNSUB %s %d]", self.label(), sid.decode(errors="replace"), max_msgs)
        sub = self.subs.get(sid)
        if sub is not None:
            if max_msgs > 0 and max_msgs > sub.delivered:
                sub.max = max_msgs
            else:
                self._remove_sub(sub)
        if self.verbose:
            self.queue(encode.OK)

    def auto_unsubscribe(self, sub: Subscription) -> None:
        self._remove_sub(sub)

    def _remove_sub(self, sub: Subscription) -> None:
        if self.subs.pop(sub.sid, None) is None:
            return
        self.account.sublist.remove(sub)
        self.server.interest_removed(self.account, sub)

    # --- server-initiated ---------------------------------------------------------------------

    def send_async_info(self, extra: dict[str, Any] | None = None) -> None:
        """Async INFO (connect_urls changes, lame duck) goes only to protocol>=1 clients."""
        if self.protocol < 1 or self.closed:
            return
        fields = self.info_fields()
        if extra:
            fields.update(extra)
        self.queue(encode.info(fields))


def _redact(opts: dict[str, Any]) -> str:
    shown = {
        k: ("[REDACTED]" if k in ("pass", "auth_token", "sig", "jwt") else v)
        for k, v in opts.items()
    }
    return json.dumps(shown)

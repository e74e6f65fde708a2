"""What routes and gateways share: a server-to-server link with a handshake and RMSG output.

Both kinds authenticate the peer's CONNECT under a timer, exchange JSON INFO/CONNECT lines,
register once the handshake completes, and send messages as RMSG/HMSG with the account name;
only what they do with interest and with their manager differs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

from scserver import link_reload, link_tls
from scserver.connection import Connection
from scserver.core.ports import LinkServices
from scserver.log import logger, trace_enabled, tracef
from scserver.protocol import encode, models
from scserver.protocol import errors as E
from scserver.protocol.parser import (
    OP_CONNECT,
    OP_ERR,
    OP_ERROR,
    OP_INFO,
    OP_PING,
    OP_PONG,
    OP_RMSG,
    Parser,
)
from scserver.routing import process_batch

M = TypeVar("M", bound=models.LinkConnect | models.ServerInfo)

# First bytes of subjects a run never batches: `_GR_.`/`$GR.` routed replies and the like.
_SPECIAL_FIRST = frozenset(b"_$")


def link_closed(server: LinkServices, conn: LinkConnection) -> None:
    """The close hook of every link kind (KindSpec.on_closed): its manager forgets it."""
    conn.manager.connection_closed(conn)


class LinkConnection(Connection):
    """Base of RouteConnection and GatewayConnection."""

    #: The word nats-server uses for this kind in log lines ("Router", "Gateway").
    log_kind = "Link"
    server: LinkServices

    def __init__(self, server: LinkServices, manager: Any, outbound: bool) -> None:
        super().__init__(server)
        self.manager = manager
        self.outbound = outbound
        if not outbound:
            # Nothing from an accepted peer is buffered beyond a client-sized control line
            # until its CONNECT is accepted (connect_accepted opens the link's own limits).
            self.parser = Parser(self.kind, server.opts.max_control_line, handshake=True)
        else:
            # The listener we dialled is not known yet either: until its INFO is accepted
            # (info_accepted), only INFO, PING, PONG, +OK and -ERR are read from it.
            self.parser = Parser(self.kind, server.opts.max_control_line, dialled=True)
        self.got_connect = False
        self.got_info = False
        self.registered = False
        #: Whether RMSG/HMSG from this peer go straight to the message path (hot-path guard):
        #: a route once its CONNECT is accepted (or we dialled it), a gateway once registered.
        self.accepts_msgs = False
        self.echo = True
        self.remote_info: dict[str, Any] = {}
        #: The accepted peer's CONNECT, checked again on every reload (scserver.link_reload).
        self.connect_opts: dict[str, Any] = {}
        self.auth_timer: asyncio.TimerHandle | None = None
        self.trace = trace_enabled()
        self.accounts_b: dict[bytes, Any] = server.wire_accounts
        # The run of plain messages on one (account, subject) being collected from one read.
        self.run_key: tuple[bytes, bytes] | None = None
        self.run: list[bytes] = []
        self.run_total = 0

    # --- transport -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A link that comes up in plaintext after a reload made TLS required is refused."""
        if link_reload.plaintext_refused(self, transport):
            return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """A TLS alert that ends the link is logged with its reason (link_tls.lost_reason)."""
        if not self.closed:
            link_tls.lost_reason(self, exc)
        super().connection_lost(exc)

    # --- handshake timers ------------------------------------------------------------------

    def arm_auth_timer(self, seconds: float) -> None:
        """An accepted link must send CONNECT within the authorization timeout."""
        self.auth_timer = self.server.loop.call_later(seconds, self._auth_timeout)

    def cancel_auth_timer(self) -> None:
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None

    def _auth_timeout(self) -> None:
        self.auth_timer = None
        if not self.got_connect and not self.closed:
            self.close("Authentication Timeout", E.AUTH_TIMEOUT, log_error=True)

    def on_close(self) -> None:
        self.cancel_auth_timer()
        self.manager.pending.discard(self)
        level = logger.info if self.registered else logger.debug
        level("%s %s connection closed: %s", self.label(), self.log_kind, self.close_reason)

    def connect_accepted(self) -> None:
        """The peer's CONNECT passed: stop the auth timer and let the parser take messages.

        The parser stopped right behind the CONNECT; whatever the peer sent after it in the
        same read (INFO, interest, messages) is parsed from a fresh loop callback, ahead of
        the next read from this socket.
        """
        self.got_connect = True
        self.cancel_auth_timer()
        if self.parser.open(self.server.opts.max_control_line):
            self.server.loop.call_soon(self._parse_held)

    def info_accepted(self) -> None:
        """The INFO of the listener we dialled passed: let the parser take messages, parsing
        what arrived behind the INFO from a fresh loop callback (as connect_accepted)."""
        if self.parser.handshake and self.parser.open(self.server.opts.max_control_line):
            self.server.loop.call_soon(self._parse_held)

    def _parse_held(self) -> None:
        if not self.closed:
            self.data_received(b"")

    def refused_before_connect(self, op: tuple) -> bool:
        """Like nats-server, an accepted link must start with CONNECT: anything else (messages,
        garbage) is an authorization violation. True when the link was closed for it."""
        if self.outbound or self.got_connect or op[0] == OP_CONNECT:
            return False
        if op[0] == OP_ERROR:
            logger.error(
                "%s %s parser error before CONNECT: %s", self.label(), self.log_kind, op[1]
            )
        self.close("Authentication Failure", E.AUTH_VIOLATION, log_error=True)
        return True

    # --- inbound bytes: the dispatch every link kind shares ----------------------------------

    def handle_data(self, data: bytes) -> None:
        """Parse and dispatch: messages join runs (take_rmsg) on the hot path; every other
        op first flushes the run, is refused before an accepted CONNECT, and is either one
        every link answers the same way (PING, PONG, INFO, CONNECT, -ERR, parser errors) or
        the kind's own (handle_op: interest, account and gateway-direction rules)."""
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
            if t == OP_PING:
                self.queue(encode.PONG)
            elif t == OP_PONG:
                self.got_pong()
            elif t == OP_INFO:
                self.process_info(op[1])
            elif t == OP_CONNECT:
                self.process_connect(op[1])
            elif t == OP_ERR:
                logger.error("%s %s Error %r", self.label(), self.log_kind, op[1])
                self.close("Parse Error")
                return
            elif t == OP_ERROR:
                logger.error("%s %s protocol error: %s", self.label(), self.spec.label, op[1])
                self.close("Protocol Violation", op[1] if op[2] else None)
                return
            elif self.handle_op(op):
                return
        if self.run and not self.closed:
            self.flush_run()

    def handle_op(self, op: tuple) -> bool:  # pragma: no cover - overridden
        """The kind's own operations; True when the link was closed for one."""
        return False

    def process_info(self, raw: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def process_connect(self, raw: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # --- JSON handshake lines ------------------------------------------------------------------

    def load_json(self, raw: bytes, what: str, model: type[M]) -> M | None:
        """Decode an INFO/CONNECT body into its typed model (scserver.protocol.models).

        Like nats-server, a body that does not decode into the typed fields (bad JSON, a
        wrongly typed field) is logged and closes the link without an -ERR; None is returned.
        """
        try:
            return models.parse(raw, model)
        except models.WireError as exc:
            logger.error("%s %s invalid %s: %s", self.label(), self.log_kind, what, exc)
            self.close("Protocol Violation")
            return None

    def read_info(self, raw: bytes) -> models.ServerInfo | None:
        """The peer's INFO as its model (traced when tracing), or None (link closed)."""
        info = self.load_json(raw, "INFO", models.ServerInfo)
        if info is not None and self.trace:
            tracef("%s <<- [INFO %s]", self.label(), raw.decode(errors="replace"))
        return info

    def trace_rsub(self, acc: bytes, subject: bytes, queue: bytes | None) -> None:
        tracef(
            "%s <<- [RS+ %s %s %s]",
            self.label(),
            acc.decode(errors="replace"),
            subject.decode(errors="replace"),
            (queue or b"").decode(errors="replace"),
        )

    # --- message runs ----------------------------------------------------------------------

    def msg_account(self, acc: bytes, msg: bytes) -> Any:
        """Count one message in and find its account (None: not one we know)."""
        self.in_msgs += 1
        self.in_bytes += len(msg)
        return self.accounts_b.get(acc) or self.server.account_by_name_b(acc)

    def take_rmsg(self, op: tuple) -> None:
        """RMSG/HMSG from an authenticated peer: plain ones join the current run."""
        if op[3] is None and op[4] is None and op[5] < 0:
            key = (op[1], op[2])
            if key != self.run_key:
                self.flush_run()
                self.run_key = key
            msg = op[6]
            self.run.append(msg)
            self.run_total += len(msg)
            return
        self.flush_run()
        self.process_rmsg(op[1], op[2], op[3], op[4], op[5], op[6])

    def flush_run(self) -> None:
        """Route the collected run (see routing.process_batch); called before any other op."""
        msgs = self.run
        if not msgs:
            return
        acc, subject = self.run_key  # type: ignore[misc]
        total = self.run_total
        self.run = []
        self.run_total = 0
        self.run_key = None
        account = self.accounts_b.get(acc) or self.server.account_by_name_b(acc)
        if len(msgs) == 1 or account is None or self.run_needs_singles(subject):
            for m in msgs:
                self.process_rmsg(acc, subject, None, None, -1, m)
            return
        self.in_msgs += len(msgs)
        self.in_bytes += total
        process_batch(self.server, self, account, subject, msgs, total)

    def run_needs_singles(self, subject: bytes) -> bool:
        """Whether a run must be routed message by message (routed replies, `$`/`_` subjects)."""
        return subject[0] in _SPECIAL_FIRST

    def process_rmsg(
        self,
        acc: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...] | None,
        hdr_len: int,
        msg: bytes,
    ) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # --- messages --------------------------------------------------------------------------

    def send_batch(self, account: Any, subject: bytes, msgs: list[bytes], total: int) -> None:
        """A run of plain messages on one subject as consecutive RMSGs, formatted once."""
        fmt = (
            b"RMSG "
            + account.name_b.replace(b"%", b"%%")
            + b" "
            + subject.replace(b"%", b"%%")
            + b" %d\r\n%b\r\n"
        )
        self.queue(b"".join([fmt % (len(m), m) for m in msgs]))
        self.out_msgs += len(msgs)
        self.out_bytes += total

    def send_msg(
        self,
        account: Any,
        subject: bytes,
        reply: bytes | None,
        queues: list[bytes] | None,
        hdr_len: int,
        msg: bytes,
    ) -> None:
        """RMSG/HMSG to the peer; headers are dropped for a peer that cannot take them."""
        if hdr_len >= 0 and not self.headers:
            msg = msg[hdr_len:]
            hdr_len = -1
        size = len(msg)
        if queues or hdr_len >= 0:
            head = encode.rmsg_head(account.name_b, subject, reply, queues, hdr_len, size)
            self.queue(head + msg + b"\r\n")
        elif reply:
            self.queue(b"RMSG %b %b %b %d\r\n%b\r\n" % (account.name_b, subject, reply, size, msg))
        else:
            self.queue(b"RMSG %b %b %d\r\n%b\r\n" % (account.name_b, subject, size, msg))
        self.out_msgs += 1
        self.out_bytes += size


def connect_line(
    server_id: str,
    fields: dict[str, Any],
    url: str | None,
    default_port: int,
    username: str | None,
    password: str | None,
) -> bytes:
    """CONNECT for a link we dial: never verbose or pedantic, named by our server id, with
    credentials from the URL's userinfo, else from the config."""
    line: dict[str, Any] = {
        "verbose": False,
        "pedantic": False,
        "tls_required": False,
        "name": server_id,
    }
    line.update(fields)
    _, _, url_user, url_pass = parse_url(url or "", default_port)
    user = url_user or username
    if user:
        line["user"] = user
        line["pass"] = (url_pass or password) or ""
    return encode.connect(line)


def parse_url(url: str, default_port: int) -> tuple[str, int, str | None, str | None]:
    """nats-route://user:pass@host:port → (host, port, user, password).

    Never raises: URLs also come from peers' gossip; one that does not parse (``http://[x``)
    gives an empty host, which callers skip.
    """
    if "://" not in url:
        url = "nats://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
    except ValueError:
        return "", default_port, None, None
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return host, port, parts.username, parts.password

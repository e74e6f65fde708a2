"""The transport half of every connection: buffering, flushing, pings, closing.

Clients, routes and gateways share this base; their protocol logic lives in ``client.py``,
``route.py`` and ``gateway.py``. Outbound bytes are queued in a list and written once per loop
iteration (all deliveries caused by one read leave in a single ``write``), and the transport's
buffer is watched so that a peer that stops reading is cut off at ``max_pending`` bytes or after
``write_deadline`` instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from scserver.log import logger
from scserver.protocol import encode
from scserver.protocol.parser import CLIENT, GATEWAY, ROUTE, Parser

if TYPE_CHECKING:
    from scserver.server import Server

SYSTEM = 3
KIND_NAMES = {CLIENT: "cid", ROUTE: "rid", GATEWAY: "gid", SYSTEM: "sys"}
KIND_LABELS = {CLIENT: "Client", ROUTE: "Route", GATEWAY: "Gateway", SYSTEM: "System"}

FIRST_CLIENT_PING = 2.0
FIRST_LINK_PING = 1.0
ROUTE_MAX_PING = 30.0
GATEWAY_MAX_PING = 15.0


class Connection(asyncio.Protocol):
    """State shared by every kind of connection; subclasses implement ``handle_ops``."""

    kind = CLIENT

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cid = server.next_cid()
        self.transport: asyncio.Transport | None = None
        self.parser: Parser = self.make_parser()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False
        self.close_reason = ""
        self.host = ""
        self.port = 0
        self.start = time.time()
        self.last_activity = self.start
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.pings_out = 0
        self.rtt = 0.0
        self.rtt_start = 0.0
        self.ping_timer: asyncio.TimerHandle | None = None
        self.paused_at = 0.0
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.name = ""
        self.remote_id = ""
        self.outbound = False
        #: TLS (scserver.tls): set once a handshake finished; while ``tls_pending`` the
        #: transport is being swapped and queued bytes wait (flush keeps them).
        self.tls_info: Any = None
        self.tls_pending = False
        self.tls_pins: frozenset[str] = frozenset()
        self.tls_first = False
        self.info_sent = False

    # --- lifecycle -------------------------------------------------------------------------

    def make_parser(self) -> Parser:
        opts = self.server.opts
        return Parser(
            self.kind,
            opts.max_control_line,
            opts.max_payload if self.kind == CLIENT else 64 * 1024 * 1024,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if transport.get_extra_info("ssl_object") is not None:
            from scserver.tls import check_peer

            if not check_peer(self, transport):
                return
        peer = transport.get_extra_info("peername")
        if peer:
            self.host, self.port = peer[0], peer[1]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=self.server.opts.max_pending // 4 or 65536)
        self.on_open()

    def on_open(self) -> None:  # pragma: no cover - overridden
        """Called once the transport exists: send INFO, arm timers."""

    def on_close(self) -> None:  # pragma: no cover - overridden
        """Called once when the connection goes away: drop subscriptions and registrations."""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            if not self.close_reason:
                self.close_reason = "Client Closed" if exc is None else "Read Error"
            self._teardown()

    def _teardown(self) -> None:
        if self.paused_at:
            self.paused_at = 0.0
            self.server.consumer_resumed(self)
        for timer in (self.ping_timer, self.deadline_timer):
            if timer is not None:
                timer.cancel()
        self.ping_timer = self.deadline_timer = None
        try:
            self.on_close()
        except Exception:  # noqa: BLE001 - one bad cleanup must not kill the server
            logger.exception("%s error while closing", self.label())
        self.server.connection_closed(self)

    def close(self, reason: str, err: str | None = None, *, log_error: bool = False) -> None:
        """Close after flushing what is queued (plus an optional -ERR)."""
        if self.closed:
            return
        if err is not None:
            self.queue(encode.err(err))
        if log_error:
            logger.error("%s %s", self.label(), err or reason)
        self.close_reason = reason
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._teardown()

    def abort(self, reason: str) -> None:
        """Drop the connection now, discarding whatever the peer has not read."""
        if self.closed:
            return
        self.close_reason = reason
        self.closed = True
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()
        self._teardown()

    def label(self) -> str:
        """nats-server's log prefix, e.g. ``127.0.0.1:52044 - cid:5``."""
        who = f' - "{self.name}"' if self.name and self.kind != CLIENT else ""
        return f"{self.host}:{self.port} - {KIND_NAMES[self.kind]}:{self.cid}{who}"

    # --- outbound --------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Queue bytes for the next flush; the flush happens once per loop iteration."""
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.server.schedule_flush(self)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.tls_pending and not self.closed:
            return  # scserver.tls.start_tls flushes once the TLS transport is in place
        if not self.out or self.closed or self.transport is None:
            self.out.clear()
            return
        data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
        self.out.clear()
        transport = self.transport
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.opts.max_pending:
            self.slow_consumer("SlowConsumerPendingBytes")

    def slow_consumer(self, why: str) -> None:
        """nats-server closes a slow consumer silently (no -ERR), counting it in /varz."""
        self.server.slow_consumers += 1
        logger.info("%s Slow Consumer Detected: %s", self.label(), why)
        self.abort(
            "Slow Consumer (Pending Bytes)"
            if "Pending" in why
            else "Slow Consumer (Write Deadline)"
        )

    def pause_writing(self) -> None:
        """The peer reads slower than we write: stall whoever feeds it (see Server.stall)."""
        self.paused_at = time.monotonic()
        self.server.paused_consumers.add(self)
        deadline = self.server.opts.write_deadline
        if deadline > 0 and self.deadline_timer is None:
            self.deadline_timer = self.server.loop.call_later(deadline, self._check_deadline)

    def resume_writing(self) -> None:
        self.paused_at = 0.0
        self.server.consumer_resumed(self)
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None

    def _check_deadline(self) -> None:
        self.deadline_timer = None
        if self.paused_at and not self.closed:
            self.slow_consumer("SlowConsumerWriteDeadline")

    # --- pings -----------------------------------------------------------------------------

    def ping_interval(self) -> float:
        interval = self.server.opts.ping_interval
        if self.kind == ROUTE:
            return min(interval, ROUTE_MAX_PING)
        if self.kind == GATEWAY:
            return min(interval, GATEWAY_MAX_PING)
        return interval

    def start_ping_timer(self, first: bool = True) -> None:
        if self.closed:
            return
        d = self.ping_interval()
        if first:
            d = min(d, FIRST_CLIENT_PING if self.kind == CLIENT else FIRST_LINK_PING)
            d += random.uniform(0, d / 5)
        if self.ping_timer is not None:
            self.ping_timer.cancel()
        self.ping_timer = self.server.loop.call_later(d, self._ping_timer_fired)

    def _ping_timer_fired(self) -> None:
        self.ping_timer = None
        if self.closed:
            return
        now = time.time()
        need_rtt = self.rtt == 0.0 or now - self.rtt_start > 60.0
        if self.kind == CLIENT and now - self.last_activity < self.ping_interval() and not need_rtt:
            self.start_ping_timer(first=False)
            return
        if self.pings_out + 1 > self.server.opts.ping_max:
            logger.debug("%s Stale Client Connection - Closing", self.label())
            self.close("Stale Connection", "Stale Connection")
            return
        self.send_ping()
        self.start_ping_timer(first=False)

    def send_ping(self) -> None:
        self.pings_out += 1
        self.rtt_start = time.time()
        self.queue(encode.PING)

    def got_pong(self) -> None:
        self.pings_out = 0
        if self.rtt_start:
            self.rtt = max(time.time() - self.rtt_start, 1e-6)

    # --- helpers for subclasses --------------------------------------------------------------

    def info_fields(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def stats_in(self, size: int) -> None:
        self.in_msgs += 1
        self.in_bytes += size

"""The transport half of every connection: buffering, flushing, pings, closing.

Clients, routes and gateways share this base; their protocol logic lives in ``client.py``,
``route.py`` and ``gateway.py``. Outbound bytes are queued in a list and written once per loop
iteration (all deliveries caused by one read leave in a single ``write``), and the transport's
buffer is watched so that a peer that stops reading is cut off at ``max_pending`` bytes or after
``write_deadline`` instead of growing the server's memory.

Flow control is per connection, as in nats-server (``queueOutbound``/``stalledWait``):

* Output has one owner: every frame goes through :meth:`Connection.queue`. A consumer whose
  unsent bytes pass 3/4 of ``max_pending`` opens its *stall gate*; a CLIENT producer that
  queues to a gated consumer waits a few milliseconds (bounded per read) before reading on.
  Routes and gateways never wait: a consumer that cannot keep up is that consumer's problem
  and is cut as a slow consumer, never a reason to hold back a link or an unrelated publisher.
* Input is handed to the protocol in slices (:data:`READ_SLICE`) with a time budget per loop
  turn (:data:`READ_BUDGET`): one huge read (200k SUBs, a flood of 1 MB PUBs) yields the loop
  to other connections (reading pauses meanwhile) instead of freezing it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scserver.core.kinds import KindSpec
from scserver.log import logger
from scserver.protocol import encode
from scserver.protocol.parser import CLIENT, LINK_MAX_PAYLOAD, Parser

if TYPE_CHECKING:
    from scserver.core.ports import ServerContext
    from scserver.exchanges import Exchanges

#: The kind id of internal subscribers (scserver.internal_client); its spec is registered there.
SYSTEM = 3

#: Bytes handed to ``handle_data`` at once adapt to what the bytes cost: a slice that took over
#: SLICE_TIME seconds (a few hundred SUBs cost that; a whole read of PUBs rarely does) makes the
#: next ones SLICE_TARGET seconds' worth.
READ_SLICE_MIN = 4 * 1024
READ_SLICE_MAX = 256 * 1024
#: A new connection starts here and doubles per cheap slice: an opening burst of SUBs (which
#: cost ~20x more per byte than PUBs) never runs as one 256 KiB slice.
READ_SLICE_FIRST = 16 * 1024
SLICE_TIME = 0.004
SLICE_TARGET = 0.002
#: Seconds of protocol work one connection may do per loop turn before yielding.
READ_BUDGET = 0.003
#: nats-server's stall bounds: a producer waits 2 ms on a gated consumer (5 ms once the
#: consumer is at max_pending), at most 10 ms in total per read.
STALL_MIN = 0.002
STALL_MAX = 0.005
STALL_TOTAL = 0.010

_perf = time.perf_counter


#: Items of a large cleanup handled between two looks at the clock (see in_turns).
TURN_ITEMS = 64


def in_turns(
    loop: asyncio.AbstractEventLoop, items: list[Any], fn: Callable[[Any], None], start: int = 0
) -> None:
    """Apply ``fn`` to ``items`` from ``start``: READ_BUDGET seconds' worth now, the rest on
    later loop turns.

    Dropping the 200k subscriptions of a closing connection in one go would freeze the loop
    for seconds; in turns, other connections are served in between. The share per turn is
    timed, not counted: what one item costs varies (a drop that sends RS- to every gateway
    costs more), and a fixed 1000 took 10-12 ms per turn under a SUB burst.
    """
    n = len(items)
    i = start
    deadline = _perf() + READ_BUDGET
    while i < n:
        for item in items[i : i + TURN_ITEMS]:
            try:
                fn(item)
            except Exception:  # noqa: BLE001 - one bad cleanup must not stop the others
                logger.exception("cleanup error")
        i += TURN_ITEMS
        if _perf() >= deadline:
            break
    if i < n:
        loop.call_soon(in_turns, loop, items, fn, i)


class Connection(asyncio.Protocol):
    """State shared by every kind of connection; subclasses implement ``handle_data``.

    Each subclass names its kind's registered :class:`~scserver.core.kinds.KindSpec` as
    ``spec`` (and its id as ``kind``, the int routing and the parser compare).
    """

    kind = CLIENT
    spec: KindSpec
    #: Whether this connection traces its protocol: a snapshot of the log level, read on the
    #: hot path, refreshed by a reload that changes tracing (scserver.reload.refresh_trace).
    trace = False
    #: The kind's routing class (``spec.fanout``), read by ``scserver.routing`` per delivery.
    fanout = 0
    #: In lame duck mode, a client's request/reply exchanges in flight (scserver.exchanges).
    exchanges: Exchanges | None = None

    def __init__(self, server: ServerContext) -> None:
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
        # Output accounting for the write deadline: bytes handed to the transport, and how
        # many of them the kernel had taken when the deadline timer was armed.
        self.bytes_flushed = 0
        self._deadline_mark = 0
        # Consumer side of the stall gate: open while the transport holds more than the
        # high-water mark (3/4 of max_pending); producers waiting for it to close.
        self.gated = False
        self.waiters: set[Connection] = set()
        # Producer side: gated consumers fed during the current slice, time spent waiting
        # during the current read, and the pending wake-up.
        self.stall_on: set[Connection] = set()
        self.stall_spent = 0.0
        self._stall_start = 0.0
        self._stall_timer: asyncio.Handle | None = None
        # Input not yet handed to the protocol (reading is paused while there is any).
        self._held = False
        self._backlog: list[bytes] = []
        self._slice = READ_SLICE_FIRST
        self.name = ""
        self.remote_id = ""
        self.outbound = False
        #: TLS (scserver.tls): set when the transport is TLS (checked in connection_made).
        self.tls_info: Any = None
        self.tls_pins: frozenset[str] = frozenset()
        self.tls_first = False
        self.info_sent = False

    # --- lifecycle -------------------------------------------------------------------------

    def make_parser(self) -> Parser:
        opts = self.server.opts
        return Parser(
            self.kind,
            opts.max_control_line,
            opts.max_payload if self.kind == CLIENT else LINK_MAX_PAYLOAD,
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
        max_pending = self.server.opts.max_pending or 64 * 1024 * 1024
        transport.set_write_buffer_limits(high=max_pending // 4 * 3, low=max_pending // 2)
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
        self.paused_at = 0.0
        self._open_gate()
        self._end_stall()
        self._backlog.clear()
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

    # --- inbound -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """asyncio's entry point: hand ``data`` to the protocol in fair slices (see _feed)."""
        if self._held:
            # Still working through an earlier read (or waiting on a gate): keep the order.
            self._backlog.append(data)
            return
        self.stall_spent = 0.0  # a fresh read: the stall allowance starts again
        if self._feed(data):
            self._hold_reading()

    def handle_data(self, data: bytes) -> None:  # pragma: no cover - overridden
        """Parse and act on bytes from the peer (subclasses)."""

    def _feed(self, data: bytes) -> bool:
        """Run ``handle_data`` over ``data`` slice by slice until done or out of budget.

        Returns True when the connection must wait (the rest is in ``_backlog`` and a
        continuation is scheduled: next loop turn, or when a stall ends).
        """
        server = self.server
        n = len(data)
        pos = 0
        began = _perf()
        deadline = began + READ_BUDGET
        while True:
            size = self._slice
            piece = data[pos : pos + size] if n - pos > size else data[pos:] if pos else data
            pos += len(piece)
            server.reader = self
            try:
                self.handle_data(piece)
            finally:
                server.reader = None
            if self.closed:
                return False
            now = _perf()
            took = now - began
            began = now
            if len(piece) >= READ_SLICE_MIN and took > SLICE_TIME:
                # Expensive bytes (SUB bursts, wide fan-out): cut the next slices finer.
                self._slice = min(
                    READ_SLICE_MAX, max(READ_SLICE_MIN, int(len(piece) * SLICE_TARGET / took))
                )
            elif took < SLICE_TIME / 4 and size < READ_SLICE_MAX:
                self._slice = min(READ_SLICE_MAX, size * 2)
            if self.stall_on or pos >= n or now >= deadline:
                break
        if pos < n:
            self._backlog.append(data[pos:])
        if self.stall_on:
            self._begin_stall()
            return True
        if pos < n:
            server.loop.call_soon(self._continue)
            return True
        return False

    def _continue(self) -> None:
        """Go on with held input (next loop turn, or after a stall)."""
        if self.closed or self._stall_timer is not None:
            return
        backlog = self._backlog
        data = b"".join(backlog) if len(backlog) > 1 else (backlog[0] if backlog else b"")
        backlog.clear()
        if not data or not self._feed(data):
            self._release_reading()

    def _hold_reading(self) -> None:
        if not self._held:
            self._held = True
            try:
                self.transport.pause_reading()  # type: ignore[union-attr]
            except (RuntimeError, AttributeError):
                pass

    def _release_reading(self) -> None:
        if self._held and not self.closed:
            self._held = False
            try:
                self.transport.resume_reading()  # type: ignore[union-attr]
            except (RuntimeError, AttributeError):
                pass

    # --- stalls (producer side) ------------------------------------------------------------

    def _begin_stall(self) -> None:
        """Wait for the gated consumers fed by this slice, as nats-server's stalledWait."""
        gates = self.stall_on
        allowance = STALL_TOTAL - self.stall_spent
        if allowance <= 0:
            gates.clear()
            self.server.loop.call_soon(self._continue)
            return
        limit = self.server.opts.max_pending
        ttl = STALL_MIN
        for g in gates:
            g.waiters.add(self)
            t = g.transport
            if limit and t is not None and t.get_write_buffer_size() >= limit:
                ttl = STALL_MAX
        self.server.stalls += 1
        self._stall_start = _perf()
        self._stall_timer = self.server.loop.call_later(min(ttl, allowance), self._stall_over)

    def _wake(self) -> None:
        """A gate this producer waits on closed: go on at the next loop turn."""
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = self.server.loop.call_soon(self._stall_over)

    def _stall_over(self) -> None:
        self._end_stall()
        self._continue()

    def _end_stall(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
            self.stall_spent += _perf() - self._stall_start
        for g in self.stall_on:
            g.waiters.discard(self)
        self.stall_on.clear()

    def label(self) -> str:
        """nats-server's log prefix, e.g. ``127.0.0.1:52044 - cid:5``."""
        who = f' - "{self.name}"' if self.name and self.kind != CLIENT else ""
        return f"{self.host}:{self.port} - {self.spec.id_label}:{self.cid}{who}"

    # --- outbound --------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Queue bytes for the next flush: the one way out for every frame to this peer.

        The flush happens once per loop iteration. While this consumer's stall gate is open,
        the CLIENT connection whose input is being processed (``server.reader``) is told to
        wait for it after the current slice (see _begin_stall); nobody else is.
        """
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.server.schedule_flush(self)
        if self.gated:
            src = self.server.reader
            if src is not None and src.kind == CLIENT and src is not self:
                src.stall_on.add(self)

    def output_held(self) -> bool:
        """Whether queued bytes must stay queued for now (the gateway interest barrier)."""
        return False

    def kick(self) -> None:
        """Schedule a flush of whatever is queued (after output was held)."""
        if self.out and not self.closed and not self.flush_scheduled:
            self.flush_scheduled = True
            self.server.schedule_flush(self)

    def flush(self) -> None:
        self.flush_scheduled = False
        if not self.out or self.closed or self.transport is None:
            self.out.clear()
            return
        if self.output_held():
            return
        data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
        self.out.clear()
        transport = self.transport
        transport.write(data)
        self.bytes_flushed += len(data)
        size = transport.get_write_buffer_size()
        if size:
            # The kernel did not take everything: bound what we hold, and start the clock.
            # max_pending is a client limit (nats-server cuts links only for the deadline);
            # a link still gets a bound, LINK_PENDING_FACTOR times larger, so memory stays
            # bounded when a peer server falls behind without stopping.
            limit = self.server.opts.max_pending * self.spec.pending_factor
            if size > limit:
                self.slow_consumer("SlowConsumerPendingBytes")
            elif self.deadline_timer is None:
                self._arm_deadline(size)

    def slow_consumer(self, why: str) -> None:
        """nats-server closes a slow consumer silently (no -ERR), counting it in /varz."""
        server = self.server
        server.slow_consumers += 1
        key = self.spec.slow_key
        if key is not None:
            server.slow_consumer_stats[key] += 1
        logger.info("%s Slow Consumer Detected: %s", self.label(), why)
        self.abort(
            "Slow Consumer (Pending Bytes)"
            if "Pending" in why
            else "Slow Consumer (Write Deadline)"
        )

    # --- stall gate (consumer side) and write deadline -------------------------------------

    def pause_writing(self) -> None:
        """Over the high-water mark (3/4 of max_pending): open the stall gate."""
        self.paused_at = time.monotonic()
        self.gated = True

    def resume_writing(self) -> None:
        """Drained below the low-water mark: close the gate, let waiting producers go on."""
        self.paused_at = 0.0
        self._open_gate()

    def _open_gate(self) -> None:
        self.gated = False
        if self.waiters:
            waiters = list(self.waiters)
            self.waiters.clear()
            for w in waiters:
                w._wake()

    def _arm_deadline(self, size: int) -> None:
        deadline = self.server.opts.write_deadline
        if deadline > 0:
            self._deadline_mark = self.bytes_flushed - size
            self.deadline_timer = self.server.loop.call_later(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        """A peer that took no byte for a whole write_deadline is a slow consumer."""
        self.deadline_timer = None
        if self.closed or self.transport is None:
            return
        size = self.transport.get_write_buffer_size()
        if not size:
            return
        if self.bytes_flushed - size == self._deadline_mark:
            self.slow_consumer("SlowConsumerWriteDeadline")
        else:
            self._arm_deadline(size)

    # --- pings -----------------------------------------------------------------------------

    def ping_interval(self) -> float:
        interval = self.server.opts.ping_interval
        cap = self.spec.max_ping
        return interval if cap is None else min(interval, cap)

    def start_ping_timer(self, first: bool = True) -> None:
        if self.closed:
            return
        d = self.ping_interval()
        if first:
            d = min(d, self.spec.first_ping)
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
        if (
            self.spec.ping_idle_skip
            and now - self.last_activity < self.ping_interval()
            and not need_rtt
        ):
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

    def set_trace(self, on: bool) -> None:
        """A reload turned tracing on or off (scserver.reload.refresh_trace)."""
        self.trace = on

    # --- helpers for subclasses --------------------------------------------------------------

    def info_fields(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def stats_in(self, size: int) -> None:
        self.in_msgs += 1
        self.in_bytes += size

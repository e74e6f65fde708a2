"""Where a message goes: local subscribers, routes, gateways.

The rules follow nats-server's ``processMsgResults``: plain subscribers each get a copy; each queue
group gets exactly one copy, drawn at random (route members weighted by their remote member
count); a message from a route is delivered only locally (one hop), and only to the queue groups
named in its RMSG; messages enter gateways only where they entered the cluster.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from scserver.connection import SYSTEM
from scserver.protocol.parser import CLIENT, GATEWAY, ROUTE

if TYPE_CHECKING:
    from scserver.accounts import Account
    from scserver.subscription import Subscription

GR_PREFIX = b"_GR_."
OLD_GR_PREFIX = b"$GR."
GR_OFFSET = 19  # len("_GR_.") + 6 (cluster hash) + 1 + 6 (server hash) + 1

_rand = random.random


def deliver(
    c: Any, sub: Subscription, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes
) -> bool:
    """Queue one MSG/HMSG to a client subscription; False when the client cannot take it.

    This is the innermost loop of fan-out, so it formats the control line inline; the frame
    leaves through ``Connection.queue`` like every other write (it owns the stall gate).
    """
    if c.closed:
        return False
    if hdr_len >= 0 and not c.headers:
        msg = msg[hdr_len:]
        hdr_len = -1
    size = len(msg)
    if reply:
        if reply[0] == 95 and reply[:5] == GR_PREFIX and len(reply) > GR_OFFSET:
            # The requester sits in another cluster: the client sees the plain reply, and its
            # answer is swapped back to the routed form when it publishes it.
            c.track_gw_reply(reply)
            reply = reply[GR_OFFSET:]
        if hdr_len >= 0:
            frame = b"HMSG %b %b %b %d %d\r\n%b\r\n" % (subject, sub.sid, reply, hdr_len, size, msg)
        else:
            frame = b"MSG %b %b %b %d\r\n%b\r\n" % (subject, sub.sid, reply, size, msg)
    elif hdr_len >= 0:
        frame = b"HMSG %b %b %d %d\r\n%b\r\n" % (subject, sub.sid, hdr_len, size, msg)
    else:
        # One formatting operation builds the whole frame: cheaper than concatenating.
        frame = b"MSG %b %b %d\r\n%b\r\n" % (subject, sub.sid, size, msg)
    c.queue(frame)
    c.out_msgs += 1
    c.out_bytes += size
    sub.delivered += 1
    if sub.max and sub.delivered >= sub.max:
        c.auto_unsubscribe(sub)
    return True


def _choose(group: list, src: Any, from_route: bool) -> Subscription | None:
    """Pick one member of a queue group, walking from a random (weighted) start."""
    n = len(group)
    if from_route:
        group = [s for s in group if s.conn.kind in (CLIENT, SYSTEM)]
        n = len(group)
        if n == 0:
            return None
    if n == 1:
        start = 0
    else:
        total = 0
        for s in group:
            total += s.weight
        if total == n:
            start = int(_rand() * n)
        else:
            r = _rand() * total
            start = 0
            for i, s in enumerate(group):
                r -= s.weight
                if r < 0:
                    start = i
                    break
    for i in range(n):
        sub = group[(start + i) % n]
        c = sub.conn
        if c.closed:
            continue
        if c is src and not c.echo:
            continue
        return sub
    return None


def process_msg(
    server: Any,
    src: Any,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    msg: bytes,
    queue_filter: tuple[bytes, ...] | None = None,
    any_queue: bool = False,
) -> bool:
    """Deliver a message that entered this server; True if anything (local or remote) took it.

    ``queue_filter`` is the RMSG queue list of a message from a route or gateway; ``any_queue``
    serves every queue group even without one (gateway-routed replies, as nats-server does).
    """
    result = account.sublist.match(subject)
    src_kind = src.kind
    delivered = False
    routes: dict[Any, list[bytes]] | None = None
    for sub in result.psubs:
        c = sub.conn
        k = c.kind
        if k == CLIENT:
            if c is src and not c.echo:
                continue
            if deliver(c, sub, subject, reply, hdr_len, msg):
                delivered = True
        elif k == ROUTE:
            if src_kind == ROUTE or c.closed:
                continue
            if routes is None:
                routes = {c: []}
            elif c not in routes:
                routes[c] = []
        elif k == SYSTEM:
            # Internal services, imports and shadow subscriptions (scserver.imports).
            if c.deliver_internal(sub, subject, reply, hdr_len, msg, src):
                delivered = True
    served: list[bytes] | None = None
    if result.qsubs and (src_kind == CLIENT or src_kind == SYSTEM or queue_filter or any_queue):
        from_route = src_kind == ROUTE
        for group in result.qsubs:
            qname = group[0].queue
            if queue_filter is not None and not any_queue and qname not in queue_filter:
                continue
            sub = _choose(group, src, from_route)
            if sub is None:
                continue
            c = sub.conn
            k = c.kind
            if k == CLIENT:
                if not deliver(c, sub, subject, reply, hdr_len, msg):
                    continue
            elif k == ROUTE:
                if routes is None:
                    routes = {c: [qname]}
                else:
                    routes.setdefault(c, []).append(qname)
            elif k == SYSTEM:
                if not c.deliver_internal(sub, subject, reply, hdr_len, msg, src):
                    continue
            delivered = True
            if served is None:
                served = [qname]
            else:
                served.append(qname)
    if routes:
        for c, queues in routes.items():
            c.send_msg(account, subject, reply, queues, hdr_len, msg)
        delivered = True
    if (src_kind == CLIENT or src_kind == SYSTEM) and server.gateway is not None:
        if server.gateway.send_msg(account, subject, reply, hdr_len, msg, served):
            delivered = True
    return delivered


__all__ = ["process_msg", "deliver", "GR_PREFIX", "GR_OFFSET", "OLD_GR_PREFIX", "GATEWAY"]


def _frame_format(prefix: bytes, subject: bytes, middle: bytes) -> bytes:
    """`<prefix> <subject> <middle> %d\\r\\n%b\\r\\n` with `%` in names escaped."""
    return (
        prefix
        + subject.replace(b"%", b"%%")
        + b" "
        + middle.replace(b"%", b"%%")
        + b" %d\r\n%b\r\n"
    )


def deliver_batch(c: Any, sub: Subscription, subject: bytes, msgs: list[bytes], total: int) -> None:
    """Queue a run of header-less, reply-less messages on one subject to one subscription."""
    if c.closed:
        return
    fmt = _frame_format(b"MSG ", subject, sub.sid)
    c.queue(b"".join([fmt % (len(m), m) for m in msgs]))
    c.out_msgs += len(msgs)
    c.out_bytes += total
    sub.delivered += len(msgs)


def process_batch(
    server: Any, src: Any, account: Account, subject: bytes, msgs: list[bytes], total: int
) -> None:
    """Deliver consecutive messages on one subject (no reply, no headers) from one source.

    Publishers often stream many messages to one subject; matching, interest checks and
    per-subscription bookkeeping then happen once per run instead of once per message. Runs
    that need per-message decisions (queue groups, auto-unsubscribe, internal subscribers)
    fall back to ``process_msg`` message by message, so behaviour is the same either way.
    """
    result = account.sublist.match(subject)
    psubs = result.psubs
    simple = not result.qsubs
    if simple:
        for sub in psubs:
            if sub.max or (sub.conn.kind == SYSTEM and not sub.conn.batches):
                simple = False
                break
    if not simple:
        for m in msgs:
            process_msg(server, src, account, subject, None, -1, m)
        return
    src_kind = src.kind
    routes: list[Any] | None = None
    for sub in psubs:
        c = sub.conn
        k = c.kind
        if k == CLIENT:
            if c is src and not c.echo:
                continue
            deliver_batch(c, sub, subject, msgs, total)
        elif k == SYSTEM:
            c.deliver_batch_internal(sub, subject, msgs, total)  # stream import shadows
        elif k == ROUTE:
            if src_kind == ROUTE or c.closed:
                continue
            if routes is None:
                routes = [c]
            elif c not in routes:
                routes.append(c)
    if routes:
        for c in routes:
            c.send_batch(account, subject, msgs, total)
    if (src_kind == CLIENT or src_kind == SYSTEM) and server.gateway is not None:
        server.gateway.send_batch(account, subject, msgs, total)

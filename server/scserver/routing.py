"""Where a message goes: local subscribers, routes, gateways. The one dispatcher.

The rules follow nats-server's ``processMsgResults``: plain subscribers each get a copy; each queue
group gets exactly one copy, drawn at random (route members weighted by their remote member
count); a message from a route is delivered only locally (one hop), and only to the queue groups
named in its RMSG; messages enter gateways only where they entered the cluster. Connections are told apart by
their kind's fanout class (``conn.fanout``, from its ``scserver.core.kinds.KindSpec``), so a
new kind that forwards like a route needs no edit here.

The gateway leg is decided here too (nats-server's ``sendMsgToGateways``): which remote clusters
get the message (their interest, as the gateway links keep it), which queue groups they may
still serve (not those already served here or by a faster cluster), and whether its reply is
mapped to the routed `_GR_.` form. Routed replies (`_GR_.<cluster>.<server>.`) are steered here
as well. Gateway code keeps only the protocol and the interest state it learned from it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from scserver.core.kinds import FORWARD, GATEWAY_LEG, INTERNAL, LOCAL
from scserver.replies import (
    GR_OFFSET,
    GR_PREFIX,
    OLD_GR_PREFIX,
    InternalOrigin,
    gw_hash,
    is_routed,
    old_gw_hash,
)

if TYPE_CHECKING:
    from scserver.accounts import Account
    from scserver.subscription import Subscription

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
    if c.exchanges is not None:  # lame duck mode (scserver.exchanges)
        c.exchanges.delivered(subject, reply)
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
        group = [s for s in group if s.conn.fanout in (LOCAL, INTERNAL)]
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
    src_class = src.fanout
    delivered = False
    routes: dict[Any, list[bytes]] | None = None
    for sub in result.psubs:
        c = sub.conn
        k = c.fanout
        if k == LOCAL:
            if c is src and not c.echo:
                continue
            if deliver(c, sub, subject, reply, hdr_len, msg):
                delivered = True
        elif k == FORWARD:
            if src_class == FORWARD or c.closed:
                continue
            if routes is None:
                routes = {c: []}
            elif c not in routes:
                routes[c] = []
        elif k == INTERNAL:
            # Internal services, imports and shadow subscriptions (scserver.imports).
            if c.deliver_internal(sub, subject, reply, hdr_len, msg, src):
                delivered = True
    served: list[bytes] | None = None
    if result.qsubs and (src_class == LOCAL or src_class == INTERNAL or queue_filter or any_queue):
        from_route = src_class == FORWARD
        for group in result.qsubs:
            qname = group[0].queue
            if queue_filter is not None and not any_queue and qname not in queue_filter:
                continue
            sub = _choose(group, src, from_route)
            if sub is None:
                continue
            c = sub.conn
            k = c.fanout
            if k == LOCAL:
                if not deliver(c, sub, subject, reply, hdr_len, msg):
                    continue
            elif k == FORWARD:
                if routes is None:
                    routes = {c: [qname]}
                else:
                    routes.setdefault(c, []).append(qname)
            elif k == INTERNAL:
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
    if (src_class == LOCAL or src_class == INTERNAL) and server.gateway is not None:
        if gateway_leg(server.gateway, account, subject, reply, hdr_len, msg, served):
            delivered = True
    return delivered


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
    if c.exchanges is not None:  # lame duck mode (scserver.exchanges)
        c.exchanges.delivered(subject, None)
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
            if sub.max or (sub.conn.fanout == INTERNAL and not sub.conn.batches):
                simple = False
                break
    if not simple:
        for m in msgs:
            process_msg(server, src, account, subject, None, -1, m)
        return
    src_class = src.fanout
    routes: list[Any] | None = None
    for sub in psubs:
        c = sub.conn
        k = c.fanout
        if k == LOCAL:
            if c is src and not c.echo:
                continue
            deliver_batch(c, sub, subject, msgs, total)
        elif k == INTERNAL:
            c.deliver_batch_internal(sub, subject, msgs, total)  # stream import shadows
        elif k == FORWARD:
            if src_class == FORWARD or c.closed:
                continue
            if routes is None:
                routes = [c]
            elif c not in routes:
                routes.append(c)
    if routes:
        for c in routes:
            c.send_batch(account, subject, msgs, total)
    if (src_class == LOCAL or src_class == INTERNAL) and server.gateway is not None:
        gateway_batch(server.gateway, account, subject, msgs, total)


# --- the gateway leg ----------------------------------------------------------------------------


def gateway_leg(
    gw: Any,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    msg: bytes,
    served: list[bytes] | None,
) -> bool:
    """Send a message that entered our cluster here to every interested remote cluster.

    ``gw`` is the gateway manager; ``served`` names the queue groups already served (here,
    or by a cluster earlier in RTT order), which no later cluster gets again.
    """
    links = gw.out_sorted
    if not links:
        return False
    if is_routed(subject):
        return _send_routed(gw, account, subject, reply, hdr_len, msg)
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
                if gw.should_map_reply(account, reply):
                    mapped = GR_PREFIX + gw.cluster_hash + b"." + gw.server_hash + b"." + reply
                    gw.interest_barrier()
            if mapped is not None:
                out_reply = (
                    mapped if c.remote_nrp else (b"$GR." + gw.old_cluster_hash + b"." + reply)
                )
        c.send_msg(account, subject, out_reply, queues, hdr_len, msg)
        sent = True
    return sent


def gateway_batch(gw: Any, account: Account, subject: bytes, msgs: list[bytes], total: int) -> None:
    """A run of plain messages on one subject: decide interest once per link."""
    links = gw.out_sorted
    if not links:
        return
    if is_routed(subject):
        for m in msgs:
            _send_routed(gw, account, subject, None, -1, m)
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
                gateway_leg(gw, account, subject, None, -1, m, None)
            return
        if psi:
            targets.append(c)
    for c in targets:
        c.send_batch(account, subject, msgs, total)


def _send_routed(
    gw: Any, account: Account, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes
) -> bool:
    """A `_GR_.` reply goes only to the cluster whose hash it names."""
    if subject[:5] == GR_PREFIX:
        target = subject[5:11]
        for c in gw.out_sorted:
            if not c.closed and gw_hash(c.gw_name) == target:
                c.send_msg(account, subject, reply, None, hdr_len, msg)
                return True
    else:
        target = subject[4:8]
        for c in gw.out_sorted:
            if not c.closed and old_gw_hash(c.gw_name) == target:
                c.send_msg(account, subject, reply, None, hdr_len, msg)
                return True
    return False


def send_routed_reply(
    server: Any, account: Account, routed: bytes, reply: bytes | None, hdr_len: int, msg: bytes
) -> None:
    """A client answers a request that came from another cluster: send it straight back."""
    gw = server.gateway
    if routed[: 5 + 6] == GR_PREFIX + gw.cluster_hash:
        # The requester is in our own cluster after all: deliver as a normal message.
        process_routed_reply(server, None, account, routed, reply, hdr_len, msg)
        return
    _send_routed(gw, account, routed, reply, hdr_len, msg)


_INTERNAL_ORIGIN = InternalOrigin()


def process_routed_reply(
    server: Any,
    src: Any,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    msg: bytes,
) -> bool:
    """A `_GR_.<cluster>.<server>.<reply>` subject arrived; True when fully handled (always,
    with gateways configured: a reply for another cluster or server is dropped or forwarded
    to that server's route; False without gateways, where it is an ordinary subject)."""
    gw = server.gateway
    if gw is None:
        return False
    if subject[:4] == OLD_GR_PREFIX:
        if subject[4:8] != gw.old_cluster_hash:
            return True
        real = subject[9:]
    else:
        if len(subject) <= GR_OFFSET or subject[5:11] != gw.cluster_hash:
            return True
        real = subject[GR_OFFSET:]
        srv = subject[12:18]
        if src is not None and src.fanout == GATEWAY_LEG and srv != gw.server_hash:
            routes = server.routes
            if routes is not None:
                for r in routes.connections():
                    if gw_hash(r.remote_id) == srv:
                        r.send_msg(account, subject, reply, None, hdr_len, msg)
                        return True
    origin = src if src is not None else _INTERNAL_ORIGIN
    process_msg(server, origin, account, real, reply, hdr_len, msg, None, any_queue=True)
    if real[:4] != b"_R_.":
        gateway_leg(gw, account, real, reply, hdr_len, msg, None)
    return True


__all__ = [
    "GR_OFFSET",
    "GR_PREFIX",
    "OLD_GR_PREFIX",
    "deliver",
    "gateway_batch",
    "gateway_leg",
    "process_batch",
    "process_msg",
    "process_routed_reply",
    "send_routed_reply",
]

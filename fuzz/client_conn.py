"""Fuzz a whole ClientConnection: parser, CONNECT, auth, SUB/UNSUB, PUB delivery, flow control.

Real Server objects (three configs: open; users with accounts, permissions, imports/exports and
route/gateway managers without peers; limits with a small max_pending), a fake transport whose
write buffer only drains now and then (so pausing, stalled producers and slow consumers are
reachable), bytes fed through ``data_received`` in random reads exactly as asyncio would.
Besides "nothing raises or logs a traceback" and "/connz, /subsz and /accountz render what the
client left" (subs=detail), after the peer hangs up the server must have forgotten the
connection: no client registered, no subscription left in any account.

Input layout: byte 0 picks the server (``% 3``) and the read split (``// 3``, see
common.chunks), the rest is the client's byte stream.
"""

from __future__ import annotations

import json
from typing import Any

from fuzz.common import FakeTransport, Finding, ServerPool, chunks, connect, finish, run_ready
from scserver import monitor
from scserver.client import ClientConnection

OPEN = """
host: 127.0.0.1
max_payload: 512
max_control_line: 128
"""

USERS = """
host: 127.0.0.1
accounts: {
  A: { users: [ {user: a, password: a} ], exports: [ {stream: "pub.>"}, {service: "svc.>"} ] }
  B: {
    users: [ {user: b, password: b, permissions: {
      publish: {allow: ["b.>", "_INBOX.>"], deny: ["b.secret"]},
      subscribe: ["b.*", "_INBOX.>"], allow_responses: true}} ]
    imports: [ {stream: {account: A, subject: "pub.>"}}, {service: {account: A, subject: "svc.>"}} ]
  }
  $SYS: { users: [ {user: sys, password: sys} ] }
}
system_account: "$SYS"
cluster: { name: east, host: 127.0.0.1, port: 6222 }
gateway: {
  name: east, host: 127.0.0.1, port: 7222
  gateways: [ {name: west, urls: ["nats://127.0.0.1:7223"]} ]
}
"""

LIMITS = """
host: 127.0.0.1
max_subscriptions: 5
max_payload: 64
max_pending: 4096
authorization: { token: "s3cr3t", timeout: 1 }
"""

_pools = [ServerPool(OPEN), ServerPool(USERS, links=True), ServerPool(LIMITS)]


def _check_forgotten(server: Any, conn: Any) -> None:
    if conn.cid in server.clients:
        raise Finding("closed client still registered in server.clients")
    for account in server.accounts.values():
        if conn in account.clients:
            raise Finding(f"closed client still bound to account {account.name}")
        for sub in account.sublist.all():
            if sub.conn is conn:
                raise Finding(f"closed client left subscription {sub.subject!r} in {account.name}")


def _monitor(server: Any) -> None:
    """What the client stored (subjects, sids, names) must render in /connz and /subsz."""
    for build, query in (
        (monitor.connz, {"subs": "detail", "auth": "1"}),
        (monitor.subsz, {"subs": "1"}),
        (monitor.accountz, {}),
    ):
        json.dumps(build(server, query))


def _session(server: Any, pieces: Any, keep: bool = False) -> tuple[Any, FakeTransport]:
    conn = ClientConnection(server)
    transport = connect(conn)
    if keep:
        transport.everything = []
    for i, piece in enumerate(pieces):
        if conn.closed:
            break
        conn.data_received(piece)
        if i % 4 == 3:
            # Let the loop flush what the reads queued; the peer drains its socket only now
            # and then, so the write buffer can cross the high-water mark (flow control).
            run_ready(1)
            if i % 16 == 15:
                transport.drain()
    _monitor(server)
    finish(conn)
    _check_forgotten(server, conn)
    return conn, transport


def _replies(transport: FakeTransport) -> list[bytes]:
    """What the server sent after its INFO line (which carries a per-connection client_id), one
    item per protocol line or message. A message's sid is left out: which member of a queue
    group gets a message is random, in nats-server too."""
    out = b"".join(transport.everything or [])
    items: list[bytes] = []
    pos = out.find(b"\r\n") + 2 if b"\r\n" in out else len(out)
    while pos < len(out):
        eol = out.find(b"\r\n", pos)
        if eol < 0:
            items.append(out[pos:])
            break
        line = out[pos:eol]
        pos = eol + 2
        args = line.split(b" ")
        if args[0] in (b"MSG", b"HMSG") and len(args) >= 4 and args[-1].isdigit():
            size = int(args[-1])
            items.append(b" ".join([args[0], args[1], *args[3:]]) + b"\r\n" + out[pos : pos + size])
            pos += size + 2
        else:
            items.append(line)
    return items


def _comparable(items: list[bytes]) -> list[bytes]:
    """Replies with each stretch of messages between two protocol lines sorted.

    NATS orders messages per subscription only: a run of publishes read together reaches each
    subscription as a run (A gets m1 m2, then B gets m1 m2), published one read at a time it
    goes out message by message (A m1, B m1, A m2, B m2). With sids dropped the two are the
    same multiset, and every protocol line (+OK, -ERR, PONG) must still come in the same place.
    """
    out: list[bytes] = []
    stretch: list[bytes] = []
    for item in items:
        if item.startswith((b"MSG ", b"HMSG ")):
            stretch.append(item)
            continue
        out.extend(sorted(stretch))
        stretch = []
        out.append(item)
    out.extend(sorted(stretch))
    return out


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    which = data[0] % 3
    server = _pools[which].get()
    split = data[0] // 3
    conn, transport = _session(server, chunks(data[1:], split), keep=which == 0)
    if which == 0 and split:
        # The open server has no flow-control limits in reach: the same bytes in one read
        # must get the same replies as in many (read boundaries are invisible to the protocol).
        _, whole = _session(server, [data[1:]], keep=True)
        if _comparable(_replies(whole)) != _comparable(_replies(transport)):
            raise Finding(
                "replies depend on read boundaries:\n"
                f" one read: {_replies(whole)[:40]!r}\n split: {_replies(transport)[:40]!r}"
            )

"""Frame encoders for what the server sends; kept apart from the parser so both stay small."""

from __future__ import annotations

import json
from typing import Any

CRLF = b"\r\n"
PING = b"PING\r\n"
PONG = b"PONG\r\n"
OK = b"+OK\r\n"


def info(fields: dict[str, Any], trailing_space: bool = True) -> bytes:
    """INFO line; clients get nats-server's trailing space before CRLF, server links do not."""
    body = json.dumps(fields, separators=(",", ":")).encode()
    return b"INFO " + body + (b" \r\n" if trailing_space else b"\r\n")


def connect(fields: dict[str, Any]) -> bytes:
    return b"CONNECT " + json.dumps(fields, separators=(",", ":")).encode() + CRLF


def err(text: str) -> bytes:
    """-ERR with the mandatory single quotes nats clients match on."""
    return b"-ERR '" + text.encode() + b"'\r\n"


def msg_head(subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, size: int) -> bytes:
    """MSG/HMSG control line for a client subscription."""
    if hdr_len >= 0:
        if reply:
            return b"HMSG %b %b %b %d %d\r\n" % (subject, sid, reply, hdr_len, size)
        return b"HMSG %b %b %d %d\r\n" % (subject, sid, hdr_len, size)
    if reply:
        return b"MSG %b %b %b %d\r\n" % (subject, sid, reply, size)
    return b"MSG %b %b %d\r\n" % (subject, sid, size)


def rmsg_head(
    account: bytes,
    subject: bytes,
    reply: bytes | None,
    queues: list[bytes] | tuple[bytes, ...] | None,
    hdr_len: int,
    size: int,
) -> bytes:
    """RMSG/HMSG control line for routes and gateways (account always present)."""
    if not queues and hdr_len < 0:
        if reply:
            return b"RMSG %b %b %b %d\r\n" % (account, subject, reply, size)
        return b"RMSG %b %b %d\r\n" % (account, subject, size)
    parts = [b"HMSG" if hdr_len >= 0 else b"RMSG", account, subject]
    if queues:
        if reply:
            parts.append(b"+")
            parts.append(reply)
        else:
            parts.append(b"|")
        parts.extend(queues)
    elif reply:
        parts.append(reply)
    if hdr_len >= 0:
        parts.append(b"%d" % hdr_len)
    parts.append(b"%d\r\n" % size)
    return b" ".join(parts)


def rsub(account: bytes, subject: bytes, queue: bytes | None = None, weight: int = 1) -> bytes:
    if queue:
        return b"RS+ %b %b %b %d\r\n" % (account, subject, queue, weight)
    return b"RS+ %b %b\r\n" % (account, subject)


def runsub(account: bytes, subject: bytes, queue: bytes | None = None) -> bytes:
    if queue:
        return b"RS- %b %b %b\r\n" % (account, subject, queue)
    return b"RS- %b %b\r\n" % (account, subject)

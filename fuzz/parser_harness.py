"""The wire parser for one connection kind, fed the same bytes whole and in random reads.

Checks, besides "never raises": every operation is well formed (the types and shapes the
connection code relies on), the kind's operation set is respected, the parser never buffers more
than one legal control line or message, and splitting the stream differently never changes the
operations it yields (a read boundary must not be visible to the protocol).

Input layout: byte 0 picks how the stream is split into reads (see common.chunks; seed files
start with a printable byte) and, for routes and gateways, whether the parser starts in
handshake mode (odd: as for an accepted link, until its CONNECT), the rest is the stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fuzz.common import Finding, chunks
from scserver.protocol import parser as P

# Small limits so the fuzzer reaches them with short inputs.
MAX_CONTROL_LINE = 64
MAX_PAYLOAD = 256

_ALLOWED = {
    P.CLIENT: {P.OP_PUB, P.OP_SUB, P.OP_UNSUB, P.OP_CONNECT, P.OP_INFO, P.OP_PING, P.OP_PONG}
    | {P.OP_OK, P.OP_ERR, P.OP_ERROR},
    P.ROUTE: {P.OP_RSUB, P.OP_RUNSUB, P.OP_RMSG, P.OP_ASUB, P.OP_AUNSUB, P.OP_LSUB, P.OP_LUNSUB}
    | {P.OP_CONNECT, P.OP_INFO, P.OP_PING, P.OP_PONG, P.OP_OK, P.OP_ERR, P.OP_ERROR},
    P.GATEWAY: {P.OP_RSUB, P.OP_RUNSUB, P.OP_RMSG, P.OP_ASUB, P.OP_AUNSUB}
    | {P.OP_CONNECT, P.OP_INFO, P.OP_PING, P.OP_PONG, P.OP_OK, P.OP_ERR, P.OP_ERROR},
}


def _token(v: Any, what: str) -> None:
    """Subjects, sids, accounts and queues: non-empty bytes without blanks or line ends."""
    if not isinstance(v, bytes) or not v or any(c in v for c in b" \t\r\n"):
        raise Finding(f"bad {what}: {v!r}")


def _opt_token(v: Any, what: str) -> None:
    if v is not None:
        _token(v, what)


def _check_op(kind: int, op: tuple, max_payload: int) -> None:
    t = op[0]
    if t not in _ALLOWED[kind]:
        raise Finding(f"op {t} not allowed on kind {kind}: {op!r}")
    if t == P.OP_PUB:
        _, subject, reply, hdr, msg = op
        _token(subject, "subject")
        _opt_token(reply, "reply")
        if not isinstance(msg, bytes) or len(msg) > max_payload:
            raise Finding(f"bad payload {op!r}")
        if not isinstance(hdr, int) or hdr < -1 or hdr > len(msg):
            raise Finding(f"bad header length {op!r}")
    elif t == P.OP_SUB:
        _, subject, queue, sid = op
        _token(subject, "subject")
        _opt_token(queue, "queue")
        _token(sid, "sid")
    elif t == P.OP_UNSUB:
        _token(op[1], "sid")
        if not isinstance(op[2], int) or op[2] < 0:
            raise Finding(f"bad UNSUB max {op!r}")
    elif t in (P.OP_CONNECT, P.OP_INFO):
        if not isinstance(op[1], bytes) or b"\n" in op[1]:
            raise Finding(f"bad JSON body {op!r}")
    elif t == P.OP_ERR:
        if not isinstance(op[1], str):
            raise Finding(f"bad -ERR text {op!r}")
    elif t == P.OP_RSUB:
        _, acc, subject, queue, weight = op
        _token(acc, "account")
        _token(subject, "subject")
        _opt_token(queue, "queue")
        if not isinstance(weight, int) or weight < 0 or (queue is None and weight != 0):
            raise Finding(f"bad RS+ weight {op!r}")
    elif t == P.OP_RUNSUB:
        _token(op[1], "account")
        _token(op[2], "subject")
        _opt_token(op[3], "queue")
    elif t == P.OP_RMSG:
        _, acc, subject, reply, queues, hdr, msg = op
        _token(acc, "account")
        _token(subject, "subject")
        _opt_token(reply, "reply")
        if queues is not None:
            if not isinstance(queues, tuple):
                raise Finding(f"bad queue list {op!r}")
            for q in queues:
                _token(q, "queue")
        if not isinstance(msg, bytes) or len(msg) > max_payload:
            raise Finding(f"bad payload {op!r}")
        if not isinstance(hdr, int) or hdr < -1 or hdr > len(msg):
            raise Finding(f"bad header length {op!r}")
    elif t in (P.OP_ASUB, P.OP_AUNSUB):
        _token(op[1], "account")
    elif t == P.OP_ERROR:
        if not isinstance(op[1], str) or not isinstance(op[2], bool):
            raise Finding(f"bad error op {op!r}")


def _parser(kind: int, handshake: bool) -> P.Parser:
    if handshake:
        return P.Parser(kind, MAX_CONTROL_LINE, MAX_PAYLOAD, handshake=True)
    return P.Parser(kind, MAX_CONTROL_LINE, MAX_PAYLOAD)


def _parse(kind: int, pieces: Iterable[bytes], handshake: bool) -> list[tuple]:
    """Feed ``pieces`` as successive reads; in handshake mode accept the first CONNECT the way a
    link does (``open()`` with the link limits, then parse what waited behind it)."""
    p = _parser(kind, handshake)
    out: list[tuple] = []
    for piece in pieces:
        ops = p.feed(piece)
        out.extend(ops)
        while getattr(p, "handshake", False) and any(op[0] == P.OP_CONNECT for op in ops):
            waiting = p.open(MAX_CONTROL_LINE, MAX_PAYLOAD)
            ops = p.feed(b"") if waiting else []
            out.extend(ops)
        held = p.buffered() if hasattr(p, "buffered") else len(p._buf)
        if held > max(p.max_control_line + 1, p.max_payload + 2):
            raise Finding(
                f"parser holds {held} bytes (line limit {p.max_control_line}, "
                f"payload limit {p.max_payload})"
            )
    return out


def run(kind: int, data: bytes) -> list[tuple]:
    """Parse ``data`` (see module doc for the layout); raise Finding on a broken invariant."""
    if not data:
        return []
    seed, stream = data[0], data[1:]
    # Route and gateway parsers start in handshake mode when the parser has one (odd seeds).
    handshake = kind != P.CLIENT and seed & 1 == 1 and hasattr(P.Parser, "open")
    expected = _parse(kind, [stream], handshake)
    got = _parse(kind, chunks(stream, seed or 1), handshake)
    max_payload = _parser(kind, False).max_payload
    for ops in (expected, got):
        for i, op in enumerate(ops):
            _check_op(kind, op, max_payload)
            if op[0] == P.OP_ERROR and i != len(ops) - 1:
                raise Finding(f"operations after an error: {ops[i:]!r}")
    if not _agree(expected, got):
        raise Finding(f"read boundaries changed the result:\n whole: {expected!r}\n split: {got!r}")
    return expected


def _is_line_limit(ops: list[tuple]) -> bool:
    return bool(ops) and ops[-1][0] == P.OP_ERROR and ops[-1][1] == P.ERR_MAX_CONTROL_LINE


def _agree(a: list[tuple], b: list[tuple]) -> bool:
    """Whether two parses of one stream agree whatever the read boundaries.

    The exact byte at which an over-long line is refused depends on when the parser gets to
    look at it (nats-server's own check is "not exact at all"): when either parse ends in a
    control-line overflow, the operations before it must agree up to where the shorter one stops.
    """
    if a == b:
        return True
    if not (_is_line_limit(a) or _is_line_limit(b)):
        return False
    a = [op for op in a if op[0] != P.OP_ERROR]
    b = [op for op in b if op[0] != P.OP_ERROR]
    n = min(len(a), len(b))
    return a[:n] == b[:n]

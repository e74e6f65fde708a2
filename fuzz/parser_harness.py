"""The wire parser for one connection kind, fed the same bytes whole and in random reads.

Checks, besides "never raises": every operation is well formed (the types and shapes the
connection code relies on), the kind's operation set is respected, the parser never buffers more
than one legal control line or message, and splitting the stream differently never changes the
operations it yields (a read boundary must not be visible to the protocol).

Input layout: byte 0 picks how the stream is split into reads (see common.chunks; seed files
start with a printable byte) and, for routes and gateways, the parser's mode (``seed % 3``: open;
handshake, as for an accepted link until its CONNECT; dialled, as for a link we dialled until
the listener's INFO), the rest is the stream.
"""

from __future__ import annotations

import inspect
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


def _parser(kind: int, mode: str) -> P.Parser:
    if mode == "handshake":
        return P.Parser(kind, MAX_CONTROL_LINE, MAX_PAYLOAD, handshake=True)
    if mode == "dialled":
        return P.Parser(kind, MAX_CONTROL_LINE, MAX_PAYLOAD, dialled=True)
    return P.Parser(kind, MAX_CONTROL_LINE, MAX_PAYLOAD)


def _modes() -> tuple[str, ...]:
    """The link parser modes this tree's Parser has (handshake: accepted link until CONNECT;
    dialled: a link we dialled, until the listener's INFO)."""
    params = inspect.signature(P.Parser).parameters
    return ("open",) + tuple(m for m in ("handshake", "dialled") if m in params)


def _parse(kind: int, pieces: Iterable[bytes], mode: str) -> list[tuple]:
    """Feed ``pieces`` as successive reads; in a handshake mode accept the gating line (CONNECT,
    or INFO when dialled) the way a link does: ``open()`` with the link limits, then parse what
    waited behind it."""
    p = _parser(kind, mode)
    gate = P.OP_INFO if mode == "dialled" else P.OP_CONNECT
    out: list[tuple] = []
    for piece in pieces:
        ops = p.feed(piece)
        out.extend(ops)
        while getattr(p, "handshake", False) and any(op[0] == gate for op in ops):
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
    # Route and gateway parsers start in a handshake mode when the parser has them.
    modes = _modes() if kind != P.CLIENT else ("open",)
    mode = modes[seed % len(modes)]
    expected = _parse(kind, [stream], mode)
    got = _parse(kind, chunks(stream, seed or 1), mode)
    max_payload = _parser(kind, "open").max_payload
    for ops in (expected, got):
        for i, op in enumerate(ops):
            _check_op(kind, op, max_payload)
            if op[0] == P.OP_ERROR and i != len(ops) - 1:
                raise Finding(f"operations after an error: {ops[i:]!r}")
    if not _agree(expected, got):
        raise Finding(f"read boundaries changed the result:\n whole: {expected!r}\n split: {got!r}")
    return expected


def _agree(a: list[tuple], b: list[tuple]) -> bool:
    """Whether two parses of one stream agree: exactly, whatever the read boundaries."""
    return a == b

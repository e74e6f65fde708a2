"""The sans-IO protocol parser (``scserver.protocol.parser``): unit cases and properties.

Properties: any split of a valid stream into chunks yields the same operations as one feed;
random garbage never raises, always terminates, and never makes the parser hold more than one
control line plus one payload.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scserver.protocol.parser import (
    CLIENT,
    ERR_BEFORE_CONNECT,
    ERR_BEFORE_INFO,
    ERR_MAX_CONTROL_LINE,
    GATEWAY,
    OP_CONNECT,
    OP_ERR,
    OP_ERROR,
    OP_INFO,
    OP_OK,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_RMSG,
    OP_RSUB,
    OP_RUNSUB,
    OP_SUB,
    OP_UNSUB,
    ROUTE,
    Parser,
)

# --------------------------------------------------------------------------------------------
# unit cases
# --------------------------------------------------------------------------------------------


def test_basic_client_ops() -> None:
    p = Parser(CLIENT)
    ops = p.feed(
        b'CONNECT {"verbose": false}\r\nSUB foo q 1\r\nSUB bar 2\r\nPUB foo r 2\r\nhi\r\n'
        b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nok\r\nUNSUB 1 5\r\nUNSUB 2\r\nPING\r\nPONG\r\n"
        b"+OK\r\n-ERR 'oops'\r\nINFO {}\r\n"
    )
    assert ops == [
        (OP_CONNECT, b'{"verbose": false}'),
        (OP_SUB, b"foo", b"q", b"1"),
        (OP_SUB, b"bar", None, b"2"),
        (OP_PUB, b"foo", b"r", -1, b"hi"),
        (OP_PUB, b"foo", None, 12, b"NATS/1.0\r\n\r\nok"),
        (OP_UNSUB, b"1", 5),
        (OP_UNSUB, b"2", 0),
        (OP_PING,),
        (OP_PONG,),
        (OP_OK,),
        (OP_ERR, "oops"),
        (OP_INFO, b"{}"),
    ]
    assert not p.dead


def test_payload_may_contain_crlf_and_protocol_text() -> None:
    payload = b"PING\r\nPUB x 1\r\n"
    ops = Parser().feed(b"PUB a %d\r\n%b\r\nPING\r\n" % (len(payload), payload))
    assert ops == [(OP_PUB, b"a", None, -1, payload), (OP_PING,)]


def test_unknown_op_is_sent_error() -> None:
    p = Parser()
    assert p.feed(b"PING\r\nFOO\r\nPING\r\n") == [
        (OP_PING,),
        (OP_ERROR, "Unknown Protocol Operation", True),
    ]
    assert p.dead
    assert p.feed(b"PING\r\n") == []


def test_arg_op_needs_a_space() -> None:
    assert Parser().feed(b"SUB\r\n") == [(OP_ERROR, "Unknown Protocol Operation", True)]
    # With a space, the missing args are a silent protocol violation, as in nats-server.
    (op,) = Parser().feed(b"SUB \r\n")
    assert op[0] == OP_ERROR and op[2] is False


def test_ping_ignores_rest_of_line() -> None:
    assert Parser().feed(b"PINGX\r\nPONG junk\r\n+OKAY\r\n") == [(OP_PING,), (OP_PONG,), (OP_OK,)]


def test_control_line_limit_across_chunks() -> None:
    p = Parser(max_control_line=64)
    assert p.feed(b"SUB " + b"a" * 40) == []
    ops = p.feed(b"b" * 40)
    assert ops == [(OP_ERROR, "maximum control line exceeded", True)]
    assert p._buf == b""


def test_control_line_limit_is_16x_for_routes() -> None:
    line = b"RS+ $G " + b"a" * 5000 + b"\r\n"
    assert Parser(ROUTE).feed(line) == [(OP_RSUB, b"$G", b"a" * 5000, None, 0)]
    assert Parser(CLIENT).feed(b"SUB " + b"a" * 5000 + b" 1\r\n")[0][0] == OP_ERROR


def test_max_payload_checked_on_the_control_line() -> None:
    p = Parser(max_payload=10)
    assert p.feed(b"PUB foo 11\r\n") == [(OP_ERROR, "Maximum Payload Violation", True)]
    assert Parser(max_payload=10).feed(b"PUB foo 10\r\n0123456789\r\n")[0][0] == OP_PUB


def test_bad_sizes_are_silent_errors() -> None:
    for line in (b"PUB foo -1\r\n", b"PUB foo +1\r\n", b"PUB foo 1_0\r\n", b"HPUB foo 5 4\r\n"):
        (op,) = Parser().feed(line)
        assert op[0] == OP_ERROR and op[2] is False, line


def test_unsub_bad_max_means_now() -> None:
    assert Parser().feed(b"UNSUB 1 x\r\nUNSUB 2 -3\r\n") == [
        (OP_UNSUB, b"1", 0),
        (OP_UNSUB, b"2", 0),
    ]


def test_route_ops() -> None:
    p = Parser(ROUTE)
    ops = p.feed(
        b"RS+ $G foo\r\nRS+ $G foo q 3\r\nRS- $G foo q\r\nRMSG $G foo 2\r\nhi\r\n"
        b"RMSG $G foo + r q1 q2 2\r\nhi\r\nRMSG $G foo | q1 2\r\nhi\r\n"
        b"HMSG $G foo r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    )
    assert ops == [
        (OP_RSUB, b"$G", b"foo", None, 0),
        (OP_RSUB, b"$G", b"foo", b"q", 3),
        (OP_RUNSUB, b"$G", b"foo", b"q"),
        (OP_RMSG, b"$G", b"foo", None, None, -1, b"hi"),
        (OP_RMSG, b"$G", b"foo", b"r", (b"q1", b"q2"), -1, b"hi"),
        (OP_RMSG, b"$G", b"foo", None, (b"q1",), -1, b"hi"),
        (OP_RMSG, b"$G", b"foo", b"r", None, 12, b"NATS/1.0\r\n\r\nhi"),
    ]


def test_kinds_reject_each_others_ops() -> None:
    assert Parser(CLIENT).feed(b"RMSG $G foo 1\r\n")[0][:2] == (
        OP_ERROR,
        "Unknown Protocol Operation",
    )
    assert Parser(ROUTE).feed(b"PUB foo 1\r\n")[0][:2] == (OP_ERROR, "Unknown Protocol Operation")
    assert Parser(GATEWAY).feed(b"LS+ $G foo\r\n")[0][:2] == (
        OP_ERROR,
        "Unknown Protocol Operation",
    )


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-$", min_size=1, max_size=8)
_subject = st.lists(_token, min_size=1, max_size=4).map(".".join)
_sid = st.integers(min_value=1, max_value=10**6).map(str)
_payload = st.binary(max_size=300)


def _enc(s: str) -> bytes:
    return s.encode()


@st.composite
def client_op(draw) -> tuple[bytes, tuple]:
    """One valid client operation: (wire bytes, expected parsed op)."""
    kind = draw(
        st.sampled_from(["pub", "hpub", "sub", "unsub", "ping", "pong", "connect", "ok", "info"])
    )
    sp = draw(st.sampled_from([" ", "\t", "  "]))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    if kind in ("pub", "hpub"):
        subj = draw(_subject)
        reply = draw(st.none() | _subject)
        payload = draw(_payload)
        r = f"{reply}{sp}" if reply else ""
        if kind == "pub":
            line = f"PUB{sp}{subj}{sp}{r}{len(payload)}{eol}"
            return _enc(line) + payload + b"\r\n", (
                OP_PUB,
                _enc(subj),
                _enc(reply) if reply else None,
                -1,
                payload,
            )
        hdr = b"NATS/1.0\r\nK: " + draw(st.binary(max_size=20)).replace(b"\r", b"") + b"\r\n\r\n"
        msg = hdr + payload
        line = f"HPUB{sp}{subj}{sp}{r}{len(hdr)}{sp}{len(msg)}{eol}"
        return _enc(line) + msg + b"\r\n", (
            OP_PUB,
            _enc(subj),
            _enc(reply) if reply else None,
            len(hdr),
            msg,
        )
    if kind == "sub":
        subj, sid = draw(_subject), draw(_sid)
        queue = draw(st.none() | _token)
        q = f"{queue}{sp}" if queue else ""
        return _enc(f"SUB{sp}{subj}{sp}{q}{sid}{eol}"), (
            OP_SUB,
            _enc(subj),
            _enc(queue) if queue else None,
            _enc(sid),
        )
    if kind == "unsub":
        sid = draw(_sid)
        mx = draw(st.none() | st.integers(min_value=0, max_value=1000))
        m = f"{sp}{mx}" if mx is not None else ""
        return _enc(f"UNSUB{sp}{sid}{m}{eol}"), (OP_UNSUB, _enc(sid), mx or 0)
    if kind == "connect":
        body = json.dumps({"verbose": draw(st.booleans()), "name": draw(_token)})
        return _enc(f"CONNECT{sp}{body}{eol}"), (OP_CONNECT, _enc(body))
    if kind == "info":
        body = json.dumps({"server_id": draw(_token)})
        return _enc(f"INFO{sp}{body}{eol}"), (OP_INFO, _enc(body))
    word = {"ping": "PING", "pong": "PONG", "ok": "+OK"}[kind]
    word = draw(st.sampled_from([word, word.lower()]))
    parsed = {"ping": (OP_PING,), "pong": (OP_PONG,), "ok": (OP_OK,)}[kind]
    return _enc(f"{word}{eol}"), parsed


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(client_op(), min_size=1, max_size=12), cuts=st.lists(st.integers(0, 10**6)))
def test_any_chunking_of_a_valid_stream_gives_the_same_ops(ops, cuts) -> None:
    data = b"".join(wire for wire, _ in ops)
    expected = [parsed for _, parsed in ops]
    assert Parser().feed(data) == expected
    p = Parser()
    got: list = []
    for chunk in _chunks(data, cuts):
        got.extend(p.feed(chunk))
    assert got == expected
    assert p.buffered() == 0 and p._pending is None and not p.dead


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_random_garbage_never_raises_and_stays_bounded(data, cuts) -> None:
    for kind in (CLIENT, ROUTE, GATEWAY):
        p = Parser(kind, max_control_line=256, max_payload=512)
        errors = 0
        for chunk in _chunks(data, cuts):
            ops = p.feed(chunk)
            for i, op in enumerate(ops):
                assert isinstance(op, tuple) and op
                if op[0] == OP_ERROR:
                    errors += 1
                    assert i == len(ops) - 1, "nothing is parsed after an error"
            # Never more than one control line plus one payload (and its CRLF) is held.
            assert p.buffered() <= p.max_control_line + p.max_payload + 2 + 1
        assert errors <= 1
        if p.dead:
            assert p.feed(b"PING\r\n") == []


@settings(max_examples=100, deadline=None)
@given(
    prefix=st.lists(client_op(), max_size=5),
    junk=st.binary(max_size=50).map(lambda b: b + b"\n"),
)
def test_valid_prefix_is_parsed_before_garbage(prefix, junk) -> None:
    data = b"".join(w for w, _ in prefix)
    p = Parser()
    ops = p.feed(data + junk)
    expected = [parsed for _, parsed in prefix]
    assert ops[: len(expected)] == expected


@settings(max_examples=100, deadline=None)
@given(size=st.integers(min_value=0, max_value=5000), cuts=st.lists(st.integers(0, 10**6)))
def test_large_payload_is_held_until_complete(size, cuts) -> None:
    payload = bytes(i % 251 for i in range(size))
    data = b"PUB big %d\r\n%b\r\n" % (size, payload)
    p = Parser()
    got: list = []
    chunks = _chunks(data, cuts)
    for chunk in chunks[:-1]:
        got.extend(p.feed(chunk))
    got.extend(p.feed(chunks[-1]))
    assert got == [(OP_PUB, b"big", None, -1, payload)]


def test_byte_that_starts_no_operation_is_rejected_before_a_line_end() -> None:
    """nats-server's state machine fails on the first impossible byte; so do we."""
    from scserver.protocol.parser import CLIENT, OP_ERROR, ROUTE, Parser

    ops = Parser(CLIENT).feed(b"\x00\x01\x02")
    assert ops and ops[-1][0] == OP_ERROR and ops[-1][1] == "Unknown Protocol Operation"
    # A partial but possible operation keeps waiting for the rest of its line.
    assert Parser(CLIENT).feed(b"PU") == []
    assert Parser(ROUTE).feed(b"RMS") == []
    assert Parser(ROUTE).feed(b"XYZ")[-1][0] == OP_ERROR


# --------------------------------------------------------------------------------------------
# limits: sizes, payload ceilings, handshake mode for links that have not sent CONNECT
# --------------------------------------------------------------------------------------------


def test_rmsg_fast_path_checks_max_payload_before_buffering() -> None:
    for line in (b"RMSG $G foo 11\r\n", b"RMSG $G foo reply 11\r\n"):
        p = Parser(ROUTE, max_payload=10)
        assert p.feed(line + b"x" * 5) == [(OP_ERROR, "Maximum Payload Violation", False)]
        assert p.dead and p.buffered() == 0
    # The general path (queue lists, headers) applies the same limit.
    p = Parser(GATEWAY, max_payload=10)
    assert p.feed(b"RMSG $G foo | q 11\r\n")[-1][:2] == (OP_ERROR, "Maximum Payload Violation")
    assert Parser(ROUTE, max_payload=10).feed(b"RMSG $G foo 10\r\n0123456789\r\n") == [
        (OP_RMSG, b"$G", b"foo", None, None, -1, b"0123456789")
    ]


def test_sizes_longer_than_nine_digits_are_bad_sizes_as_in_nats_server() -> None:
    """nats-server's parseSize reads at most 9 digits: a 10-digit size is 'Bad or Missing Size'
    (logged, closed without -ERR), not a payload violation, on every path."""
    cases = [
        (CLIENT, b"PUB foo 99999999999\r\n", "processPub Bad or Missing Size"),
        (CLIENT, b"pub foo r 99999999999\r\n", "processPub Bad or Missing Size"),
        (ROUTE, b"RMSG $G foo 99999999999\r\n", "processRoutedMsgArgs Bad or Missing Size"),
        (GATEWAY, b"RMSG $G foo | q 99999999999\r\n", "processRoutedMsgArgs Bad or Missing"),
        (ROUTE, b"HMSG $G foo 1 99999999999\r\n", "processRoutedHeaderMsgArgs Bad or Missing"),
    ]
    for kind, line, text in cases:
        (op,) = Parser(kind).feed(line)
        assert op[0] == OP_ERROR and op[1].startswith(text) and op[2] is False, (line, op)
    # A size of thousands of digits never reaches int() (which refuses > 4300 digits).
    (op,) = Parser(ROUTE).feed(b"RMSG $G foo " + b"9" * 5000 + b"\r\n")
    assert op[0] == OP_ERROR and "Bad or Missing Size" in op[1]


def test_large_payload_arriving_in_many_reads_is_joined_once() -> None:
    """A payload is collected as chunks; the held bytes never exceed one message."""
    size = 4 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    p = Parser(ROUTE, max_payload=size)
    data = b"RMSG $G big %d\r\n%b\r\nPING\r\n" % (size, payload)
    got: list = []
    for i in range(0, len(data), 4096):
        got.extend(p.feed(data[i : i + 4096]))
        assert p.buffered() <= size + 2 + 4096
    assert got == [(OP_RMSG, b"$G", b"big", None, None, -1, payload), (OP_PING,)]
    assert p.buffered() == 0


def test_large_payload_costs_one_copy() -> None:
    """A 4 MB payload fed in 64 KiB reads is copied once, into the payload itself: the parser
    never allocates a second payload-sized buffer (a join of the reads and then a slice of the
    join would peak at twice the size)."""
    import tracemalloc

    size = 4 * 1024 * 1024
    for kind, line in ((CLIENT, b"PUB big %d\r\n"), (ROUTE, b"RMSG $G big %d\r\n")):
        data = line % size + b"p" * size + b"\r\nPING\r\n"
        reads = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        p = Parser(kind, max_payload=size)
        got: list = []
        tracemalloc.start()
        try:
            for r in reads:
                got.extend(p.feed(r))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [op[0] for op in got] == [OP_PUB if kind == CLIENT else OP_RMSG, OP_PING]
        assert got[0][-1] == b"p" * size and type(got[0][-1]) is bytes
        assert peak < size * 1.25, (kind, peak)


def test_payload_whose_crlf_straddles_two_reads() -> None:
    p = Parser()
    assert p.feed(b"PUB a 3\r\nabc\r") == []
    assert p.feed(b"\nPING\r\n") == [(OP_PUB, b"a", None, -1, b"abc"), (OP_PING,)]
    # Split inside a long payload: the CR ends one read, the LF starts the next.
    p = Parser()
    assert p.feed(b"PUB a 5\r\nab") == [] and p.feed(b"cde\r") == []
    assert p.feed(b"\n") == [(OP_PUB, b"a", None, -1, b"abcde")]
    assert p.buffered() == 0
    # A payload not followed by CRLF is an error however the reads fall.
    for cut in range(10, 16):
        p = Parser()
        data = b"PUB a 3\r\nabcXY\r\n"
        ops = p.feed(data[:cut]) + p.feed(data[cut:])
        assert ops == [(OP_ERROR, "Unknown Protocol Operation", True)], cut
        assert p.dead and p.buffered() == 0


def test_control_line_over_many_reads_is_kept_until_its_line_end() -> None:
    """A long control line dribbled in one byte per read (a route may send up to 64 KiB) is
    collected, not re-copied per read; its limit and first-byte checks still apply."""
    line = b"RS+ $G " + b"a" * 60000 + b"\r\n"
    p = Parser(ROUTE)
    got: list = []
    for i in range(len(line)):
        got.extend(p.feed(line[i : i + 1]))
        assert p.buffered() == (i + 1) % len(line)
    assert got == [(OP_RSUB, b"$G", b"a" * 60000, None, 0)]
    # Over the limit in small reads: refused once the held part passes it, nothing kept.
    p = Parser(ROUTE, max_control_line=256)  # 4096 for a route
    ops: list = []
    for i in range(0, 5000, 100):
        ops.extend(p.feed(b"RS+ $G " if i == 0 else b"b" * 100))
        if ops:
            break
    assert ops == [(OP_ERROR, "maximum control line exceeded", True)]
    assert p.dead and p.buffered() == 0
    # Operations before and after the dribbled line are parsed as usual.
    p = Parser()
    assert p.feed(b"PING\r\nSU") == [(OP_PING,)]
    assert p.feed(b"B foo") == [] and p.feed(b" 1") == []
    assert p.feed(b"\r\nPUB foo 2\r\nhi\r\nPO") == [
        (OP_SUB, b"foo", None, b"1"),
        (OP_PUB, b"foo", None, -1, b"hi"),
    ]
    assert p.feed(b"NG\r\n") == [(OP_PONG,)]


def test_handshake_mode_refuses_messages_before_any_payload() -> None:
    """An accepted link (or a client when authentication is required) before CONNECT: as in
    nats-server, an operation not starting with C is an error at its first byte, with nothing
    buffered, whatever size the peer announces; CONNECT's line is client-sized."""
    for kind in (CLIENT, ROUTE, GATEWAY):
        for data in (
            b"RMSG $G foo 99999999999\r\n" + b"x" * 65536,
            b"PUB foo 1048576\r\n" + b"x" * 65536,
            b"SUB foo 1\r\n",
            b"RMSG $G foo 5\r\nhello\r\n",
            b"HMSG $G foo 1 5\r\n",
            b"RS+ $G foo\r\n",
            b"A+ $G\r\n",
            b"RMSG",
            b"PING\r\n",
            b"INFO {}\r\n",
        ):
            p = Parser(kind, handshake=True)
            ops = p.feed(data)
            assert ops == [(OP_ERROR, ERR_BEFORE_CONNECT, False)], (kind, data, ops)
            assert p.dead and p.buffered() == 0
        # A control line is client-sized (4096 here), not the link's 16x.
        p = Parser(kind, 4096, handshake=True)
        assert p.feed(b"CONNECT {" + b" " * 5000)[-1][:2] == (
            OP_ERROR,
            "maximum control line exceeded",
        )


def test_handshake_mode_stops_behind_connect_until_opened() -> None:
    p = Parser(ROUTE, 4096, handshake=True)
    stream = b'CONNECT {"name":"N"}\r\nINFO {}\r\nRS+ $G foo\r\nRMSG $G foo 2\r\nhi\r\n'
    assert p.feed(stream) == [(OP_CONNECT, b'{"name":"N"}')]
    assert p.buffered() > 0
    assert p.open(4096) is True
    assert p.feed(b"") == [
        (OP_INFO, b"{}"),
        (OP_RSUB, b"$G", b"foo", None, 0),
        (OP_RMSG, b"$G", b"foo", None, None, -1, b"hi"),
    ]
    assert p.max_control_line == 4096 * 16
    # Not opened (the CONNECT was refused but the caller kept reading): still handshake rules.
    q = Parser(GATEWAY, handshake=True)
    assert q.feed(b"CONNECT {}\r\nRMSG $G foo 2\r\nhi\r\n") == [(OP_CONNECT, b"{}")]
    assert q.feed(b"")[-1][0] == OP_ERROR


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_handshake_mode_never_holds_more_than_a_client_line(data, cuts) -> None:
    for kind in (CLIENT, ROUTE, GATEWAY):
        p = Parser(kind, max_control_line=256, handshake=True)
        for chunk in _chunks(b"CONNECT " + data if data[:1] == b"C" else data, cuts):
            for op in p.feed(chunk):
                assert op[0] in (OP_CONNECT, OP_ERROR)
            assert p.buffered() <= 256 + len(chunk)


def test_dialled_mode_reads_only_info_ping_pong_ok_err_until_opened() -> None:
    """A link we dial: the listener's INFO (with the link's line limit), PING, PONG, +OK and
    -ERR are read; anything else is refused at its first byte with nothing buffered, and the
    parser stops behind the first INFO until the link has accepted it."""
    for kind in (ROUTE, GATEWAY):
        p = Parser(kind, 4096, dialled=True)
        stream = b'PING\r\n+OK\r\nPONG\r\nINFO {"a":1}\r\nRS+ $G foo\r\nRMSG $G foo 2\r\nhi\r\n'
        assert p.feed(stream) == [(OP_PING,), (OP_OK,), (OP_PONG,), (OP_INFO, b'{"a":1}')]
        assert p.buffered() > 0
        assert p.open(4096) is True
        assert p.feed(b"") == [
            (OP_RSUB, b"$G", b"foo", None, 0),
            (OP_RMSG, b"$G", b"foo", None, None, -1, b"hi"),
        ]
        assert Parser(kind, dialled=True).feed(b"-ERR 'Authorization Violation'\r\n") == [
            (OP_ERR, "Authorization Violation")
        ]
        # An INFO as long as a link's control line may be (URL lists) is fine.
        long_info = b'INFO {"connect_urls":["' + b"u" * 60000 + b'"]}\r\n'
        assert Parser(kind, 4096, dialled=True).feed(long_info)[0][0] == OP_INFO
        for data in (
            b"RMSG $G foo 99999999\r\n" + b"x" * 65536,
            b"RMSG $G foo 5\r\nhello\r\n",
            b"HMSG $G foo 1 5\r\n",
            b"RS+ $G foo\r\n",
            b"A+ $G\r\n",
            b"LS+ $G foo\r\n",
            b"CONNECT {}\r\n",
            b"GARBAGE\r\n",
            b"\x16\x03\x01\x00",
        ):
            p = Parser(kind, dialled=True)
            assert p.feed(data) == [(OP_ERROR, ERR_BEFORE_INFO, False)], (kind, data)
            assert p.dead and p.buffered() == 0
        # Operation words that start like an allowed one are refused at their line end.
        (op,) = Parser(kind, dialled=True).feed(b"PUB foo 5\r\n")
        assert op[0] == OP_ERROR and not Parser(kind, dialled=True).feed(b"PUB foo 5")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_dialled_mode_never_holds_more_than_a_line(data, cuts) -> None:
    for kind in (ROUTE, GATEWAY):
        p = Parser(kind, max_control_line=64, dialled=True)
        for chunk in _chunks(b"INFO " + data if data[:1] == b"I" else data, cuts):
            for op in p.feed(chunk):
                assert op[0] in (OP_INFO, OP_PING, OP_PONG, OP_OK, OP_ERR, OP_ERROR)
            assert p.buffered() <= 64 * 16 + len(chunk)


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        (CLIENT, b"PUB foo 1"),  # fast path
        (CLIENT, b"pub foo 1"),  # general path
        (ROUTE, b"RMSG $G foo 1"),  # link fast path
        (ROUTE, b"rmsg $G foo 1"),  # link general path
    ],
)
def test_control_line_limit_counts_the_line_without_its_crlf(kind: int, line: bytes) -> None:
    """A line exactly max_control_line long is taken, one byte longer is refused, on every path
    (nats-server counts the line without its CRLF; the fast paths once counted it too)."""
    exact = Parser(kind, max_payload=64)
    exact.max_control_line = len(line)  # the effective limit (links get 16x the configured one)
    assert exact.feed(line + b"\r\nx\r\n")[0][0] != OP_ERROR
    over = Parser(kind, max_payload=64)
    over.max_control_line = len(line) - 1
    op = over.feed(line + b"\r\nx\r\n")[0]
    assert op[0] == OP_ERROR and op[1] == ERR_MAX_CONTROL_LINE

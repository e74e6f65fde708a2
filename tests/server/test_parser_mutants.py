"""Exact error texts, size boundaries and limits of the protocol parser.

The main parser tests check which operations come out; these pin what a peer is told and where
each limit sits (``make mutate`` found them loose): nats-server's error texts with the
offending arguments (bounded, never raising on odd bytes), the 9-digit size rule on every path,
``max_payload`` inclusive, silent (not -ERR) errors on links, and kinds registering op sets.
"""

from __future__ import annotations

import pytest

from scserver.protocol import parser as P
from scserver.protocol.parser import (
    CLIENT,
    GATEWAY,
    OP_ERROR,
    OP_PING,
    OP_PUB,
    OP_RMSG,
    OP_RSUB,
    OP_SUB,
    ROUTE,
    ParseError,
    Parser,
    register_ops,
)


def err(kind: int, data: bytes, **kw: int) -> tuple:
    (op,) = Parser(kind, **kw).feed(data)
    assert op[0] == OP_ERROR, op
    return op


def test_parse_error_carries_its_text() -> None:
    e = ParseError("boom")
    assert str(e) == "boom" and e.text == "boom" and e.send is True
    assert ParseError("quiet", send=False).send is False


@pytest.mark.parametrize("line", [b"HPUB foo x 5\r\n", b"hpub foo 2 x\r\n"])
def test_header_sizes_must_be_digits(line: bytes) -> None:
    assert err(CLIENT, line) == (OP_ERROR, "invalid size b'x'", False)


def test_size_errors_show_at_most_32_bytes_of_the_token() -> None:
    tok = b"y" * 40
    assert err(CLIENT, b"HPUB foo " + tok + b" 5\r\n") == (
        OP_ERROR,
        "invalid size " + repr(tok[:32]),
        False,
    )


def test_nine_digit_sizes_are_sizes_ten_are_not() -> None:
    # nine digits parse (and then hit max_payload); ten are a bad size, on every path
    assert err(CLIENT, b"HPUB foo 1 123456789\r\n") == (OP_ERROR, P.ERR_MAX_PAYLOAD, True)
    assert err(CLIENT, b"HPUB foo 1 1234567890\r\n") == (
        OP_ERROR,
        "invalid size b'1234567890'",
        False,
    )
    assert err(CLIENT, b"pub foo 123456789\r\n") == (OP_ERROR, P.ERR_MAX_PAYLOAD, True)
    assert err(CLIENT, b"pub foo 1234567890\r\n") == (
        OP_ERROR,
        "processPub Bad or Missing Size: 'foo 1234567890'",
        False,
    )
    assert Parser(ROUTE).feed(b"RS+ $G foo q 123456789\r\n") == [
        (OP_RSUB, b"$G", b"foo", b"q", 123456789)
    ]
    assert err(ROUTE, b"RS+ $G foo q 1234567890\r\n")[1:] == ("invalid size b'1234567890'", False)


def test_bad_size_message_is_bounded_and_survives_odd_bytes() -> None:
    long_subject = b"s" * 300
    (_, text, send) = err(CLIENT, b"pub " + long_subject + b" x\r\n")
    assert text == "processPub Bad or Missing Size: " + repr("s" * 256 + "...")
    assert send is False
    exact = b"t" * 254  # "t..t x" is exactly 256 bytes: shown whole
    (_, text, _) = err(CLIENT, b"pub " + exact + b" x\r\n")
    assert text == "processPub Bad or Missing Size: " + repr("t" * 254 + " x")
    (_, text, _) = err(CLIENT, b"pub f\xffo x\r\n")
    assert text == "processPub Bad or Missing Size: " + repr("f\ufffdo x")


def test_max_payload_is_inclusive_on_the_general_path() -> None:
    assert Parser(max_payload=3).feed(b"pub foo 3\r\nabc\r\n") == [
        (OP_PUB, b"foo", None, -1, b"abc")
    ]
    assert err(CLIENT, b"pub foo 4\r\n", max_payload=3) == (OP_ERROR, P.ERR_MAX_PAYLOAD, True)
    assert Parser(max_payload=3).feed(b"HPUB foo 1 3\r\nabc\r\n") == [
        (OP_PUB, b"foo", None, 1, b"abc")
    ]


@pytest.mark.parametrize("kind", [ROUTE, GATEWAY])
def test_links_are_told_nothing_about_their_payload_errors(kind: int) -> None:
    assert err(kind, b"HMSG $G foo 1 11\r\n", max_payload=10) == (
        OP_ERROR,
        P.ERR_MAX_PAYLOAD,
        False,
    )
    assert err(kind, b"RMSG $G foo + r q 11\r\n", max_payload=10)[2] is False


def test_client_payload_overflow_is_reported() -> None:
    assert err(CLIENT, b"HPUB foo 1 11\r\n", max_payload=10) == (OP_ERROR, P.ERR_MAX_PAYLOAD, True)


def test_lower_case_operations_are_operations() -> None:
    assert Parser().feed(b"ping\r\nsub foo 1\r\n") == [(OP_PING,), (OP_SUB, b"foo", None, b"1")]
    assert Parser(ROUTE).feed(b"rmsg $G foo 1\r\nx\r\n") == [
        (OP_RMSG, b"$G", b"foo", None, None, -1, b"x")
    ]


def test_a_registered_kind_parses_its_own_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    kind = 77
    monkeypatch.setitem(P._OPS_BY_KIND, kind, frozenset())
    monkeypatch.setitem(P._FIRST_BYTES, kind, frozenset())
    register_ops(kind, frozenset({b"PING", b"LS+"}))
    p = Parser(kind)
    assert p.feed(b"ping\r\nls+ $G foo\r\nPING\r\n") == [
        (OP_PING,),
        (P.OP_LSUB, b"$G", b"foo"),
        (OP_PING,),
    ]
    assert Parser(kind).feed(b"SUB foo 1\r\n") == [(OP_ERROR, P.ERR_UNKNOWN_OP, True)]


H = {"handshake": True}
D = {"dialled": True}

# (kind, parser options, input, operations out): nats-server's texts name the operation and
# show the control line; argument-count errors on links are silent (no -ERR back).
CASES = [
    (CLIENT, {}, b"PUB foo\r\n", [(OP_ERROR, "processPub Parse Error: b'PUB foo'", False)]),
    (CLIENT, {}, b"PUB a b c d\r\n", [(OP_ERROR, "processPub Parse Error: b'PUB a b c d'", False)]),
    (
        CLIENT,
        {},
        b"HPUB foo 1\r\n",
        [(OP_ERROR, "processHeaderPub Parse Error: b'HPUB foo 1'", False)],
    ),
    (
        CLIENT,
        {},
        b"HPUB a b c d e\r\n",
        [(OP_ERROR, "processHeaderPub Parse Error: b'HPUB a b c d e'", False)],
    ),
    (
        CLIENT,
        {},
        b"HPUB foo 5 4\r\n",
        [(OP_ERROR, "processHeaderPub Bad or Missing Header Size", False)],
    ),
    (CLIENT, {}, b"SUB foo\r\n", [(OP_ERROR, "processSub Parse Error: b'SUB foo'", False)]),
    (CLIENT, {}, b"SUB a b c d\r\n", [(OP_ERROR, "processSub Parse Error: b'SUB a b c d'", False)]),
    (CLIENT, {}, b"UNSUB\t\r\n", [(OP_ERROR, "processUnsub Parse Error: b'UNSUB\\t'", False)]),
    (
        CLIENT,
        {},
        b"UNSUB 1 2 3\r\n",
        [(OP_ERROR, "processUnsub Parse Error: b'UNSUB 1 2 3'", False)],
    ),
    (CLIENT, {}, b"\r\n", [(OP_ERROR, P.ERR_UNKNOWN_OP, True)]),
    (CLIENT, {}, b" PING\r\n", [(OP_ERROR, P.ERR_UNKNOWN_OP, True)]),
    (ROUTE, {}, b"RS+ $G\r\n", [(OP_ERROR, "processRemoteSub Parse Error: b'RS+ $G'", False)]),
    (
        ROUTE,
        {},
        b"RS+ $G foo q\r\n",
        [(OP_ERROR, "processRemoteSub Parse Error: b'RS+ $G foo q'", False)],
    ),
    (ROUTE, {}, b"RS- $G\r\n", [(OP_ERROR, "processRemoteUnsub Parse Error: b'RS- $G'", False)]),
    (
        ROUTE,
        {},
        b"RS- $G foo q x\r\n",
        [(OP_ERROR, "processRemoteUnsub Parse Error: b'RS- $G foo q x'", False)],
    ),
    (ROUTE, {}, b"RS- $G foo\r\n", [(P.OP_RUNSUB, b"$G", b"foo", None)]),
    (ROUTE, {}, b"RS- $G foo q\r\n", [(P.OP_RUNSUB, b"$G", b"foo", b"q")]),
    (ROUTE, {}, b"A+ \r\n", [(OP_ERROR, "processAccountSub Parse Error: b'A+ '", False)]),
    (ROUTE, {}, b"A- \r\n", [(OP_ERROR, "processAccountUnsub Parse Error: b'A- '", False)]),
    (ROUTE, {}, b"A+ acc\r\n", [(P.OP_ASUB, b"acc")]),
    (ROUTE, {}, b"A- acc\r\n", [(P.OP_AUNSUB, b"acc")]),
    (
        ROUTE,
        {},
        b"RMSG $G\r\n",
        [(OP_ERROR, "processRoutedMsgArgs Parse Error: b'RMSG $G'", False)],
    ),
    (
        ROUTE,
        {},
        b"HMSG $G foo 1\r\n",
        [(OP_ERROR, "processRoutedMsgArgs Parse Error: b'HMSG $G foo 1'", False)],
    ),
    (
        ROUTE,
        {},
        b"RMSG $G foo x r 1\r\n",
        [(OP_ERROR, "processRoutedMsgArgs Bad or Missing Reply Indicator", False)],
    ),
    (
        ROUTE,
        {},
        b"HMSG $G foo 5 4\r\n",
        [(OP_ERROR, "processRoutedHeaderMsgArgs Bad or Missing Header Size", False)],
    ),
    (
        ROUTE,
        {},
        b"RMSG $G foo r xx\r\n",
        [(OP_ERROR, "processRoutedMsgArgs Bad or Missing Size: '$G foo r xx'", False)],
    ),
    (
        ROUTE,
        {},
        b"HMSG $G foo r 3 xx\r\n",
        [(OP_ERROR, "processRoutedHeaderMsgArgs Bad or Missing Size: '$G foo r 3 xx'", False)],
    ),
    (ROUTE, {}, b"LMSG $G foo 1\r\n", [(OP_ERROR, P.ERR_UNKNOWN_OP, False)]),
    (ROUTE, {}, b"LS- $G foo\r\n", [(P.OP_LUNSUB, b"$G", b"foo")]),
    (CLIENT, {}, b"-ERR 'x'\r\n", [(P.OP_ERR, "x")]),
    (CLIENT, {}, b"-ERR '\r\n", [(P.OP_ERR, "'")]),
    (CLIENT, {}, b"-ERR ''\r\n", [(P.OP_ERR, "")]),
    (CLIENT, {}, b"-ERR 'a\r\n", [(P.OP_ERR, "'a")]),
    (CLIENT, {}, b"-ERR a'\r\n", [(P.OP_ERR, "a'")]),
    (CLIENT, {}, b"-ERR \xff\r\n", [(P.OP_ERR, "\ufffd")]),
    (CLIENT, {}, b"-ERR  'Auth'  \r\n", [(P.OP_ERR, "Auth")]),
    (CLIENT, {}, b"-ERRx\r\n", [(OP_ERROR, P.ERR_UNKNOWN_OP, True)]),
    (CLIENT, H, b"PING\r\n", [(OP_ERROR, P.ERR_BEFORE_CONNECT, False)]),
    (CLIENT, H, b"SUB foo 1\r\n", [(OP_ERROR, P.ERR_BEFORE_CONNECT, False)]),
    (CLIENT, H, b"CONNEXT {}\r\n", [(OP_ERROR, P.ERR_UNKNOWN_OP, True)]),
    (ROUTE, D, b"RS+ $G foo\r\n", [(OP_ERROR, P.ERR_BEFORE_INFO, False)]),
    (ROUTE, D, b"CONNECT {}\r\n", [(OP_ERROR, P.ERR_BEFORE_INFO, False)]),
    (CLIENT, {}, b"SUB foo\x0bbar 1\r\n", [(OP_SUB, b"foo\x0bbar", None, b"1")]),
    (CLIENT, {}, b"SUB foo\x0cbar 1\r\n", [(OP_SUB, b"foo\x0cbar", None, b"1")]),
    (CLIENT, {}, b'CONNECT\t{"a": 1}  \r\n', [(P.OP_CONNECT, b'{"a": 1}')]),
    (CLIENT, {}, b"INFO {}\r\n", [(P.OP_INFO, b"{}")]),
]


@pytest.mark.parametrize(("kind", "opts", "data", "ops"), CASES)
def test_operation_or_error_text(kind: int, opts: dict, data: bytes, ops: list) -> None:
    assert Parser(kind, **opts).feed(data) == ops


def test_a_registered_kinds_op_before_connect_is_refused_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind = 78
    monkeypatch.setitem(P._OPS_BY_KIND, kind, frozenset())
    monkeypatch.setitem(P._FIRST_BYTES, kind, frozenset())
    register_ops(kind, frozenset({b"CONNECT", b"CX+"}))
    assert Parser(kind, handshake=True).feed(b"CX+ foo\r\n") == [
        (OP_ERROR, P.ERR_BEFORE_CONNECT, False)
    ]


def test_header_block_may_be_the_whole_message() -> None:
    assert Parser().feed(b"HPUB foo 2 2\r\nab\r\n") == [(OP_PUB, b"foo", None, 2, b"ab")]
    assert Parser(ROUTE).feed(b"HMSG $G foo 2 2\r\nab\r\n") == [
        (OP_RMSG, b"$G", b"foo", None, None, 2, b"ab")
    ]


def test_ops_behind_a_split_control_line_come_out_in_the_same_read() -> None:
    p = Parser()
    assert p.feed(b"PI") == []
    assert p.feed(b"NG\r\nPONG\r\nSUB a 1\r\n") == [
        (OP_PING,),
        (P.OP_PONG,),
        (OP_SUB, b"a", None, b"1"),
    ]
    assert p.buffered() == 0


@pytest.mark.parametrize(
    ("kind", "head", "send"), [(CLIENT, b"PUB foo 3", True), (ROUTE, b"RMSG $G foo 3", False)]
)
def test_payload_collected_over_reads_must_end_in_crlf(kind: int, head: bytes, send: bool) -> None:
    p = Parser(kind)
    assert p.feed(head + b"\r\nab") == []
    assert p.feed(b"cX") == []
    assert p.feed(b"\nPING\r\n") == [(OP_ERROR, P.ERR_UNKNOWN_OP, send)]
    assert p.dead and p.feed(b"PING\r\n") == [] and p.buffered() == 0


def test_payload_collected_over_reads_with_crlf_split() -> None:
    p = Parser()
    assert p.feed(b"PUB foo 3\r\nab") == []
    assert p.feed(b"c\r") == []
    assert p.feed(b"\nPING\r\n") == [(OP_PUB, b"foo", None, -1, b"abc"), (OP_PING,)]


def test_default_limits_are_4096_line_bytes_and_one_mebibyte() -> None:
    line = b"SUB " + b"a" * (4096 - 6) + b" 1"
    assert len(line) == 4096
    assert Parser().feed(line + b"\r\n")[0][0] == OP_SUB
    assert Parser().feed(b"SUB " + b"a" * (4097 - 6) + b" 1\r\n") == [
        (OP_ERROR, P.ERR_MAX_CONTROL_LINE, True)
    ]
    assert Parser().feed(b"HPUB foo 1 1048576\r\n") == []  # accepted, payload awaited
    assert Parser().feed(b"HPUB foo 1 1048577\r\n") == [(OP_ERROR, P.ERR_MAX_PAYLOAD, True)]


def test_size_error_with_a_reply_shows_the_arguments() -> None:
    assert err(CLIENT, b"pub foo r x\r\n") == (
        OP_ERROR,
        "processPub Bad or Missing Size: 'foo r x'",
        False,
    )


def test_long_argument_lists_are_cut_at_256_bytes() -> None:
    args = b"u" * 255 + b" x"  # 257 bytes: cut, with an ellipsis
    (_, text, _) = err(CLIENT, b"pub " + args + b"\r\n")
    assert text == "processPub Bad or Missing Size: " + repr("u" * 255 + " ...")


def test_line_limit_applies_per_line_not_per_read() -> None:
    stream = b"PING\r\n" * 10 + b"PUB foo 1\r\nx\r\n"
    assert Parser(max_control_line=20).feed(stream)[-1] == (OP_PUB, b"foo", None, -1, b"x")
    routed = b"PING\r\n" * 10 + b"RMSG $G foo 1\r\nx\r\n"
    assert Parser(ROUTE, max_control_line=2).feed(routed)[-1] == (
        OP_RMSG,
        b"$G",
        b"foo",
        None,
        None,
        -1,
        b"x",
    )


@pytest.mark.parametrize(
    ("kind", "data", "send"),
    [(CLIENT, b"HPUB foo 1 3\r\nabcX\r\n", True), (ROUTE, b"HMSG $G foo 1 3\r\nabcX\r\n", False)],
)
def test_payload_without_its_crlf_in_one_read(kind: int, data: bytes, send: bool) -> None:
    assert Parser(kind).feed(data) == [(OP_ERROR, P.ERR_UNKNOWN_OP, send)]


def test_buffered_counts_a_payload_being_collected() -> None:
    p = Parser()
    p.feed(b"PUB foo 10\r\nabc")
    assert p.buffered() == 3
    p.feed(b"def")
    assert p.buffered() == 6
    p.feed(b"ghij\r\n")
    assert p.buffered() == 0


@pytest.mark.parametrize(
    ("reads", "ops"),
    [
        ([b"SUB a", b"bc 12\r", b"\n"], [(OP_SUB, b"abc", None, b"12")]),  # exactly the limit
        ([b"SUB a", b"bc 123\r", b"\n"], [(OP_ERROR, P.ERR_MAX_CONTROL_LINE, True)]),
        ([b"SUB a", b"bc 12", b"\r\n"], [(OP_SUB, b"abc", None, b"12")]),
    ],
)
def test_line_limit_over_many_reads_ignores_a_trailing_cr(reads: list, ops: list) -> None:
    p = Parser(max_control_line=10)
    out: list = []
    for r in reads:
        out += p.feed(r)
    assert out == ops


def test_handshake_split_connect_keeps_what_follows_for_open() -> None:
    p = Parser(handshake=True)
    assert p.feed(b"CONN") == []
    assert p.feed(b'ECT {"v":1}\r\nPING\r\nSUB a 1\r\n') == [(P.OP_CONNECT, b'{"v":1}')]
    assert p.buffered() > 0
    assert p.open(4096, 1024) is True
    assert p.feed(b"") == [(OP_PING,), (OP_SUB, b"a", None, b"1")]
    assert p.feed(b"PING\r\n") == [(OP_PING,)]
    assert p.buffered() == 0


def test_after_open_a_second_connect_does_not_stop_the_parser() -> None:
    p = Parser(handshake=True)
    assert p.feed(b"CONNECT {}\r\n") == [(P.OP_CONNECT, b"{}")]
    assert p.open(4096, 1024) is False  # nothing was waiting
    assert p.feed(b"CONNECT {}\r\nPING\r\n") == [(P.OP_CONNECT, b"{}"), (OP_PING,)]


def test_fast_path_size_rule_and_message_match_the_general_path() -> None:
    assert err(CLIENT, b"PUB foo 123456789\r\n") == (OP_ERROR, P.ERR_MAX_PAYLOAD, True)
    bad = (OP_ERROR, "processPub Bad or Missing Size: 'foo 1234567890'", False)
    assert err(CLIENT, b"PUB foo 1234567890\r\n") == bad
    assert Parser().feed(b"PING\r\nPUB foo 1234567890\r\n") == [(OP_PING,), bad]
    routed = (OP_ERROR, "processRoutedMsgArgs Bad or Missing Size: '$G foo 1234567890'", False)
    assert Parser(ROUTE).feed(b"PING\r\nRMSG $G foo 1234567890\r\n") == [(OP_PING,), routed]
    assert err(ROUTE, b"RMSG $G foo 123456789\r\n") == (OP_ERROR, P.ERR_MAX_PAYLOAD, False)


def test_plain_rmsg_without_its_crlf_is_a_silent_error() -> None:
    assert Parser(ROUTE).feed(b"RMSG $G foo 3\r\nabcX\r\n") == [(OP_ERROR, P.ERR_UNKNOWN_OP, False)]
    assert Parser(GATEWAY).feed(b"RMSG $G foo r 3\r\nabcX\r\n") == [
        (OP_ERROR, P.ERR_UNKNOWN_OP, False)
    ]


def test_consecutive_plain_rmsgs_in_one_read() -> None:
    assert Parser(ROUTE).feed(b"RMSG $G a 1\r\nx\r\nRMSG $G b r 2\r\nyz\r\n") == [
        (OP_RMSG, b"$G", b"a", None, None, -1, b"x"),
        (OP_RMSG, b"$G", b"b", b"r", None, -1, b"yz"),
    ]


@pytest.mark.parametrize(
    ("first", "ops"),
    [
        (b"PING\r\nSUB abc 12\r", [(OP_PING,), (OP_SUB, b"abc", None, b"12")]),  # at the limit
        (b"PING\r\nSUB abc 123\r", [(OP_PING,), (OP_ERROR, P.ERR_MAX_CONTROL_LINE, True)]),
    ],
)
def test_line_limit_of_a_partial_line_ignores_its_trailing_cr(first: bytes, ops: list) -> None:
    p = Parser(max_control_line=10)
    out = p.feed(first)
    out += p.feed(b"\n")
    assert out == ops


def test_partial_line_behind_other_ops_is_counted_alone() -> None:
    p = Parser()
    assert p.feed(b"PING\r\nSU") == [(OP_PING,)]
    assert p.buffered() == 2
    assert p.feed(b"B a 1\r\n") == [(OP_SUB, b"a", None, b"1")]


def test_a_failure_on_a_line_split_over_reads_keeps_nothing() -> None:
    p = Parser()
    assert p.feed(b"SUB") == []
    assert p.feed(b" x\r\nPING\r\n") == [(OP_ERROR, "processSub Parse Error: b'SUB x'", False)]
    assert p.dead and p.buffered() == 0

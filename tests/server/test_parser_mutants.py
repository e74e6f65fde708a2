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

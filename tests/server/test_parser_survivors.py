"""Parser behaviour pinned after mutation testing (issue 16): the mutants that survived it.

nats-server's ``overMaxControlLineLimit`` (server/parser.go) reports an over-long control line
with ``sendErr`` for every connection kind (links only get 16x the configured limit), then
closes the connection.  The RMSG fast path once failed silently (``send=False``) while the
general path and the partial-line path sent ``-ERR``; every path now agrees.
"""

from __future__ import annotations

import pytest

from scserver.protocol.parser import (
    CLIENT,
    ERR_MAX_CONTROL_LINE,
    GATEWAY,
    OP_ERROR,
    ROUTE,
    Parser,
)

_PATHS = [
    (CLIENT, b"PUB foo 1", b"\r\nx\r\n"),  # PUB fast path
    (CLIENT, b"pub foo 1", b"\r\nx\r\n"),  # general path
    (ROUTE, b"RMSG $G foo 1", b"\r\nx\r\n"),  # link RMSG fast path
    (ROUTE, b"rmsg $G foo 1", b"\r\nx\r\n"),  # link general path
    (GATEWAY, b"RMSG $G foo 1", b"\r\nx\r\n"),  # gateway RMSG fast path
    (ROUTE, b"RMSG $G foo q1 q2 1", b"\r\nx\r\n"),  # RMSG with a queue list (general path)
    (ROUTE, b"RMSG $G foo 1", b""),  # no line end yet: the partial-line check
]


@pytest.mark.parametrize(("kind", "line", "rest"), _PATHS)
def test_over_long_control_line_is_sent_as_err_on_every_path(
    kind: int, line: bytes, rest: bytes
) -> None:
    """One byte over the limit: the error is ``maximum control line exceeded`` sent as -ERR
    (``send`` is True), for clients and links alike, whichever path parsed the line."""
    p = Parser(kind, max_payload=64)
    p.max_control_line = len(line) - 1  # the effective limit (links get 16x the configured one)
    ops = p.feed(line + rest)
    assert ops == [(OP_ERROR, ERR_MAX_CONTROL_LINE, True)]
    assert p.dead and p.buffered() == 0


@pytest.mark.parametrize("kind", [ROUTE, GATEWAY])
def test_link_fast_and_general_paths_report_the_same_error(kind: int) -> None:
    """The same over-long RMSG line, upper case (fast path) and lower case (general path),
    gives the identical error tuple."""
    got = []
    for line in (
        b"RMSG $G " + b"s" * 300 + b" 1\r\nx\r\n",
        b"rmsg $G " + b"s" * 300 + b" 1\r\nx\r\n",
    ):
        p = Parser(kind, max_control_line=16)  # 256 for a link
        got.append(p.feed(line))
    assert got[0] == got[1] == [(OP_ERROR, ERR_MAX_CONTROL_LINE, True)]

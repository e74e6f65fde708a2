"""Malformed client input over raw sockets, checked differentially against nats-server.

Every case is sent on a fresh connection to both implementations; what comes back (ignoring
INFO and server PINGs) must be identical and equal to the expected transcript: the right
``-ERR`` text, or a silent close, or normal replies. After each case a long-lived client on the
same server must still get its own messages.
"""

from __future__ import annotations

import pytest
from tests.server.conftest import EOF, IMPLS, RawClient

UNKNOWN = "-ERR 'Unknown Protocol Operation'"

# (id, bytes sent on a fresh connection before CONNECT, expected transcript)
# Cases that keep the connection open end with PING so the transcript ends at PONG.
CASES: list[tuple[str, bytes, list[str]]] = [
    ("unknown-op", b"FOO\r\n", [UNKNOWN, EOF]),
    ("bare-crlf", b"\r\n", [UNKNOWN, EOF]),
    ("single-letter", b"P\r\n", [UNKNOWN, EOF]),
    ("binary", b"\x00\x01\x02\r\n", [UNKNOWN, EOF]),
    ("longer-op-word", b"PUBLISH foo 1\r\n", [UNKNOWN, EOF]),
    ("subx", b"SUBX foo 1\r\n", [UNKNOWN, EOF]),
    ("leading-space", b" PING\r\n", [UNKNOWN, EOF]),
    ("sub-no-args", b"SUB\r\n", [UNKNOWN, EOF]),
    ("unsub-no-args", b"UNSUB\r\n", [UNKNOWN, EOF]),
    ("pub-no-args", b"PUB\r\n", [UNKNOWN, EOF]),
    ("route-op-from-client", b"RS+ $G foo\r\n", [UNKNOWN, EOF]),
    ("rmsg-from-client", b"RMSG $G foo 1\r\nx\r\n", [UNKNOWN, EOF]),
    ("msg-from-client", b"MSG foo 1 2\r\nhi\r\n", [UNKNOWN, EOF]),
    ("payload-too-long", b"PUB foo 3\r\nabcde\r\n", [UNKNOWN, EOF]),
    ("payload-bad-terminator", b"PUB foo 2\r\nhiXX", [UNKNOWN, EOF]),
    ("pub-missing-size", b"PUB foo\r\n", [EOF]),
    ("pub-negative-size", b"PUB foo -1\r\n", [EOF]),
    ("pub-size-not-number", b"PUB foo abc\r\n", [EOF]),
    ("pub-too-many-args", b"PUB foo bar baz 2\r\n", [EOF]),
    ("sub-missing-sid", b"SUB foo\r\n", [EOF]),
    ("sub-too-many-args", b"SUB foo q 1 2\r\n", [EOF]),
    ("hpub-header-bigger-than-total", b"HPUB foo 10 5\r\n", [EOF]),
    ("hpub-without-headers-connect", b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n", [EOF]),
    ("connect-bad-json", b"CONNECT {bad json\r\n", [EOF]),
    ("connect-empty", b"CONNECT\r\n", [EOF]),
    ("connect-array", b"CONNECT []\r\n", [EOF]),
    ("connect-bool-as-string", b'CONNECT {"echo":"x"}\r\nPING\r\n', [EOF]),
    ("connect-protocol-2", b'CONNECT {"protocol":2}\r\n', ["-ERR 'invalid client protocol'", EOF]),
    (
        "connect-no-responders-without-headers",
        b'CONNECT {"no_responders":true}\r\n',
        ["-ERR 'no responders requires headers support'", EOF],
    ),
    ("client-sends-err", b"-ERR 'x'\r\nPING\r\n", [EOF]),
    (
        "control-line-too-long",
        b"PUB " + b"a" * 5000 + b" 1\r\n",
        ["-ERR 'maximum control line exceeded'", EOF],
    ),
    ("max-payload", b"PUB foo 2000000\r\n", ["-ERR 'Maximum Payload Violation'", EOF]),
    # --- not fatal -------------------------------------------------------------------------
    ("invalid-sub-subject", b"SUB foo.. 1\r\nPING\r\n", ["-ERR 'Invalid Subject'", "PONG"]),
    ("gt-not-last", b"SUB foo.>.bar 1\r\nPING\r\n", ["-ERR 'Invalid Subject'", "PONG"]),
    ("ping-with-junk", b"PING foo\r\n", ["PONG"]),
    ("pingx", b"PINGX\r\n", ["PONG"]),
    ("lowercase-ping", b"ping\r\n", ["PONG"]),
    ("client-ok-pong-info", b"+OK\r\nPONG\r\nINFO {}\r\nPING\r\n", ["PONG"]),
    ("unsub-unknown-sid", b"UNSUB 99\r\nPING\r\n", ["+OK", "PONG"]),
    (
        "unsub-bad-max-removes-now",
        b"SUB a 1\r\nUNSUB 1 x\r\nPUB a 1\r\nz\r\nPING\r\n",
        ["+OK", "+OK", "+OK", "PONG"],
    ),
    ("pub-zero-payload", b"PUB foo 0\r\n\r\nPING\r\n", ["+OK", "PONG"]),
    ("pub-trailing-space", b"PUB foo 2 \r\nhi\r\nPING\r\n", ["+OK", "PONG"]),
    (
        "pedantic-by-default-wildcard-publish",
        b"PUB foo.* 2\r\nhi\r\nPING\r\n",
        ["-ERR 'Invalid Publish Subject'", "+OK", "PONG"],
    ),
    (
        "lowercase-and-tabs",
        b"sub\tfoo\t 1\r\npub  foo\t2\r\nhi\r\nping\r\n",
        ["+OK", "+OK", "MSG foo 1 2", "b'hi'", "PONG"],
    ),
    (
        "lf-only-line-endings",
        b"SUB foo 1\nPUB foo 2\nhi\r\nPING\n",
        ["+OK", "+OK", "MSG foo 1 2", "b'hi'", "PONG"],
    ),
    (
        "verbose-sequence",
        b'CONNECT {"verbose":true}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nPING\r\n',
        ["+OK", "+OK", "+OK", "MSG foo 1 2", "b'hi'", "+OK", "PONG"],
    ),
    (
        "duplicate-sid-is-noop",
        b"SUB foo 1\r\nSUB bar 1\r\nPUB bar 1\r\nx\r\nPUB foo 1\r\ny\r\nPING\r\n",
        ["+OK", "+OK", "+OK", "+OK", "MSG foo 1 1", "b'y'", "PONG"],
    ),
    (
        "split-ops-one-write",
        b"SUB x 9\r\nPUB x 5\r\nhello\r\nPUB x 0\r\n\r\nPING\r\n",
        ["+OK", "+OK", "MSG x 9 5", "b'hello'", "+OK", "MSG x 9 0", "b''", "PONG"],
    ),
]


@pytest.fixture(scope="module")
def pair(module_servers):
    """Both implementations with default options, each with a healthy pub/sub client."""
    out = {}
    for impl in IMPLS:
        sp = module_servers.start(impl)
        watcher = RawClient(sp.port)
        watcher.connect()
        assert watcher.exchange("SUB health 1\r\nPING\r\n") == ["PONG"]
        out[impl] = (sp, watcher)
    yield out
    for _, watcher in out.values():
        watcher.close()


def _transcript(port: int, data: bytes) -> list[str]:
    with RawClient(port) as c:
        c.send(data)
        return c.lines(timeout=4.0)


def _still_serving(sp, watcher: RawClient, n: int) -> None:
    """The server is alive and the long-lived client still gets its messages."""
    assert sp.alive(), sp.log_tail()
    payload = f"ok{n}"
    got = watcher.exchange(f"PUB health {len(payload)}\r\n{payload}\r\nPING\r\n")
    assert got == [f"MSG health 1 {len(payload)}", repr(payload.encode()), "PONG"]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_matches_nats_server(pair, data: bytes, expected: list[str]) -> None:
    results = {}
    for impl in IMPLS:
        sp, watcher = pair[impl]
        results[impl] = _transcript(sp.port, data)
        _still_serving(sp, watcher, len(data))
    assert results["scserver"] == results["nats-server"], results
    assert results["scserver"] == expected


def test_byte_at_a_time_delivery(pair) -> None:
    """A stream dribbled one byte per write parses the same as in one write."""
    data = (
        b'CONNECT {"verbose":false,"headers":true}\r\nSUB a.b 7\r\n'
        b"HPUB a.b 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n"
    )
    for impl in IMPLS:
        sp, _ = pair[impl]
        with RawClient(sp.port) as c:
            for i in range(len(data)):
                c.send(data[i : i + 1])
            assert c.lines(timeout=4.0) == [
                "HMSG a.b 7 12 14",
                repr(b"NATS/1.0\r\n\r\nhi"),
                "PONG",
            ], impl


def test_many_bad_clients_then_good_client(pair) -> None:
    """A burst of connections that each send garbage does not disturb the server."""
    for impl in IMPLS:
        sp, watcher = pair[impl]
        clients = [RawClient(sp.port) for _ in range(20)]
        for i, c in enumerate(clients):
            c.send(b"\xff\xfe garbage %d\r\n" % i)
        for c in clients:
            assert c.lines(timeout=4.0) == [UNKNOWN, EOF], impl
            c.close()
        _still_serving(sp, watcher, 99)

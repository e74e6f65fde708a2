"""Inputs the fuzzers (or issue 9's robustness list) found, replayed through the same harness.

Each case runs ``python -m fuzz.replay <harness> <file>`` in a fresh process: the harness's
TestOneInput with all its checks (no exception, no logged traceback, state cleaned up), without
atheris instrumentation. A case whose fix has not landed is marked xfail with the crash it shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fuzz.fuzz_helpers import run_module

DEEP = 3000  # nesting depth that exhausts Python's recursion in json.loads

# (id, harness, input). Input layouts are documented in each fuzz/<harness>.py.
CASES: list[tuple[str, str, bytes]] = [
    # Parser: a CR (or other blank) before the operation name was stripped by bytes.split(), so
    # "\rPUB" parsed as PUB in one read but was refused when the CR arrived alone (found by
    # client_parser's whole-vs-split check). nats-server refuses it: fixed in parser._control.
    ("stray-cr-before-op", "client_parser", b"A\rPUB foo 5\r\nh\rf"),
    ("blank-before-op-split", "route_parser", b"\x01\x0bRS+ $G foo\r\n"),
    # Parser: a line of garbage longer than max_control_line got "maximum control line exceeded"
    # in one read but "Unknown Protocol Operation" when its first byte came alone (found by
    # client_parser; nats-server refuses the first byte). Fixed: the first byte is checked first.
    (
        "garbage-long-line-one-error",
        "client_parser",
        b"\xa5" * 64 + b"A\xffU\n\xff\n",
    ),
    (
        "garbage-long-line-client-replies",
        "client_conn",
        b"\x03SUB foo 1\r\n" + b"\xff" * 200 + b"\r\n",
    ),
    # Parser: a line of exactly max_control_line bytes was refused when a read ended right after
    # its CR (the CR was counted), accepted in one read (found by client_parser/route_parser).
    (
        "line-limit-cr-at-read-end",
        "client_parser",
        b"\x01SUB " + b"x" * 58 + b" 1\r\nPING\r\n",
    ),
    (
        "line-limit-cr-at-read-end-handshake",
        "route_parser",
        b'\x01CONNECT {"a":"' + b"x" * 48 + b'"}\r\nPING\r\n',
    ),
    # Config: an include path with a NUL byte raised a bare ValueError from os.path (found by
    # config). Fixed: a located ConfigError.
    ("include-nul-byte", "config", b"include inc\x00.conf\n"),
    # Issue 9: CONNECT nested 3000 deep exhausted the recursion of json.loads (RecursionError,
    # not ValueError) on the client, route and gateway ports.
    ("client-connect-deep", "connect_info", b"\x00" + b"[" * DEEP),
    ("route-connect-deep", "connect_info", b"\x01" + b"[" * DEEP),
    ("gateway-connect-deep", "connect_info", b"\x04" + b'{"a":' * DEEP),
    ("route-info-deep", "connect_info", b"\x03" + b"[" * DEEP),
    ("client-conn-connect-deep", "client_conn", b"\x01CONNECT " + b"[" * DEEP + b"\r\nPING\r\n"),
    # Issue 9: route INFO gossip with a non-list gateway_urls iterated an int (TypeError).
    (
        "route-gossip-gateway-urls-int",
        "connect_info",
        b'\x02{"server_id":"NOTHER","gateway":"south","gateway_urls":7}',
    ),
    (
        "registered-route-gossip-gateway-urls-int",
        "connect_info",
        b'\x07\x00INFO {"server_id":"NROUTEPEER","gateway":"south","gateway_urls":7}\r\nPING\r\n',
    ),
    ("gateway-info-gateway-urls-int", "connect_info", b'\x05{"gateway":"west","gateway_urls":7}'),
    (
        "gateway-out-info-urls-int",
        "connect_info",
        b'\x06{"gateway":"south","gateway_cmd":1,"gateway_urls":7}',
    ),
    # A remote subject that is not UTF-8 broke /routez?subs=1 (UnicodeDecodeError; found by
    # connect_info in seconds on the tree before the hardening, fixed in HEAD).
    ("routez-non-utf8-remote-subject", "connect_info", b"\x07\x00RS+ $G foo\xff\r\nPING\r\n"),
    # A gossiped gateway URL that urlsplit refuses ("Invalid IPv6 URL") killed the solicit task,
    # so that gateway was never dialed (found by connect_info on the pre-hardening tree).
    (
        "gateway-gossip-unparsable-url",
        "connect_info",
        b'\x05{"server_id":"NW","gateway":"west","gateway_urls":["127.0.0.1]:7223","[::1"]}',
    ),
    # Not a server bug: two publishes read together reach each subscription as a run (sub 2
    # gets both, then the queue sub gets both), read apart they go out message by message.
    # NATS orders per subscription only, so client_conn compares each stretch of messages as
    # a multiset (found by client_conn's 15 s smoke run; the exact-order check failed at random).
    (
        "publish-run-order-across-subscriptions",
        "client_conn",
        b"\x18CONNECT {}\r\nSUB > 1S\nPUB a. 3\r\nabc\r\n"
        b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
        b"SUB foo 2\r\nSUB foo q 2\r\nPUB foo 5\r\nhello\r\nPUB foo 0\r\n\r\n"
        b"HPUBINFO  foo _IOBOX.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1\r\nUNSUB 1 2\r\n"
        b"PUB x 1\r\nx\r\nPUB \x1c\x1c\x1c" + b"\xff" * 70 + b"\x1c\x1cx 1\r\nx\r\nPING\r\n",
    ),
    # Issue 9: a subject that is not UTF-8 must not break /connz?subs=detail or /subsz (also
    # found by client_conn on the tree before the hardening).
    (
        "sub-invalid-utf8",
        "client_conn",
        b'\x00CONNECT {"verbose":false}\r\nSUB \xff\xfe.bad 1\r\nSUB ok \xff 2\r\nPING\r\n',
    ),
]

XFAIL: dict[str, str] = {}


@pytest.mark.parametrize(
    ("harness", "data"),
    [
        pytest.param(
            h,
            d,
            id=i,
            marks=[pytest.mark.xfail(reason=XFAIL[i], strict=True)] if i in XFAIL else [],
        )
        for i, h, d in CASES
    ],
)
def test_fuzz_regression(harness: str, data: bytes, tmp_path: Path) -> None:
    case = tmp_path / "input"
    case.write_bytes(data)
    proc = run_module(["fuzz.replay", harness, str(case)], timeout=60)
    assert proc.returncode == 0, proc.stderr[-4000:]

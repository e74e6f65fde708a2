"""The same raw-socket scenarios against nats-server and scserver; clients must see the same.

Known, deliberate difference: nats-server 2.12+ sends an extra ``INFO`` with
``connect_info:true`` right after the first PONG to protocol-1 clients. scserver reports version
2.10.29 and behaves like 2.10 (no such INFO); clients ignore it either way. See
``test_post_ping_info``.
"""

from __future__ import annotations

import pytest
from tests.server.conftest import EOF, IMPLS, SERVER_ID_RE, RawClient


@pytest.fixture(scope="module")
def ports(module_servers) -> dict[str, int]:
    return {impl: module_servers.start(impl).port for impl in IMPLS}


def both(ports: dict[str, int], scenario) -> dict[str, object]:
    """Run ``scenario(port)`` on each implementation; return {impl: result}."""
    return {impl: scenario(port) for impl, port in ports.items()}


def same(results: dict[str, object]) -> object:
    assert results["scserver"] == results["nats-server"], results
    return results["scserver"]


# --- INFO and handshake -------------------------------------------------------------------


def test_info_fields_clients_use(ports) -> None:
    infos = both(ports, lambda p: RawClient(p).info)
    for impl, info in infos.items():
        assert SERVER_ID_RE.match(info["server_id"]), (impl, info["server_id"])
        assert info["server_name"]
        assert info["proto"] == 1
        assert info["headers"] is True
        assert info["max_payload"] == 1048576
        assert isinstance(info["client_id"], int) and info["client_id"] > 0
        assert info["client_ip"] == "127.0.0.1"
        assert info["host"] == "127.0.0.1" and info["port"] == ports[impl]
        assert isinstance(info["version"], str) and info["version"].count(".") == 2
        assert "auth_required" not in info  # no auth configured
        assert "connect_urls" not in info  # standalone
    assert infos["scserver"]["go"].startswith("python")


def test_client_ids_increase(ports) -> None:
    def scenario(port: int) -> bool:
        a, b = RawClient(port), RawClient(port)
        ok = b.info["client_id"] > a.info["client_id"]
        a.close()
        b.close()
        return ok

    assert same(both(ports, scenario)) is True


def test_pong_is_first_after_connect_ping(ports) -> None:
    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            c.send(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\nPING\r\n')
            return [c.readline()]

    assert same(both(ports, scenario)) == ["PONG"]


def test_post_ping_info(ports) -> None:
    """nats-server 2.15 sends INFO{connect_info} after the first PONG; scserver (2.10) does not."""

    def scenario(port: int) -> list[dict]:
        with RawClient(port) as c:
            c.connect()
            assert c.exchange("PING\r\n") == ["PONG"]
            return c.infos

    res = both(ports, scenario)
    (ns_info,) = res["nats-server"]
    assert ns_info.get("connect_info") is True and ns_info.get("remote_account") == "$G"
    assert res["scserver"] == []


def test_verbose_ok_sequence(ports) -> None:
    data = (
        b'CONNECT {"verbose":true,"pedantic":false}\r\nSUB v 1\r\nSUB v q 2\r\n'
        b"PUB v 1\r\na\r\nUNSUB 1\r\nUNSUB 2 5\r\nPUB v.* 1\r\nb\r\nPING\r\n"
    )
    res = same(both(ports, lambda p: RawClient(p).exchange(data)))
    assert res == [
        "+OK",
        "+OK",
        "+OK",
        "+OK",
        "MSG v 1 1",
        "b'a'",
        "MSG v 2 1",
        "b'a'",
        "+OK",
        "+OK",
        "+OK",
        "PONG",
    ]


def test_pedantic_publish_to_wildcard(ports) -> None:
    data = (
        b'CONNECT {"verbose":false,"pedantic":true}\r\nSUB p.> 1\r\n'
        b"PUB p.* 1\r\nx\r\nPUB p.> 1\r\ny\r\nPUB p..q 1\r\nz\r\nPING\r\n"
    )
    res = same(both(ports, lambda p: RawClient(p).exchange(data)))
    # The -ERR is sent but the message is still processed (nats-server's processPub).
    assert res == [
        "-ERR 'Invalid Publish Subject'",
        "MSG p.* 1 1",
        "b'x'",
        "-ERR 'Invalid Publish Subject'",
        "MSG p.> 1 1",
        "b'y'",
        "-ERR 'Invalid Publish Subject'",
        "PONG",
    ]


def test_invalid_sub_subject_is_not_fatal(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        return c.exchange(
            "SUB a..b 1\r\nSUB .a 2\r\nSUB a. 3\r\nSUB a.>.c 4\r\nSUB ok.* 5\r\n"
            "PUB ok.1 1\r\nx\r\nPING\r\n"
        )

    assert same(both(ports, scenario)) == ["-ERR 'Invalid Subject'"] * 4 + [
        "MSG ok.1 5 1",
        "b'x'",
        "PONG",
    ]


def test_order_per_subscription_with_mixed_subs(ports) -> None:
    def scenario(port: int) -> list[str]:
        sub, pub = RawClient(port), RawClient(port)
        sub.connect()
        pub.connect()
        sub.exchange("SUB o.* 1\r\nSUB o.> 2\r\nSUB o.a 3\r\nPING\r\n")
        pub.exchange(
            "".join(f"PUB o.{s} {len(str(i))}\r\n{i}\r\n" for i, s in enumerate("abab"))
            + "PING\r\n"
        )
        return sub.exchange("PING\r\n")

    res = same(both(ports, scenario))
    # Each subscription sees its messages in publish order; per message, the server's sublist
    # order decides the interleaving, which we do not require to match -- compare per sid.
    per_sid: dict[str, list[str]] = {}
    for head, payload in zip(res[:-1:2], res[1:-1:2], strict=True):
        per_sid.setdefault(head.split()[2], []).append(f"{head.split()[1]}={payload}")
    assert per_sid == {
        "1": ["o.a=b'0'", "o.b=b'1'", "o.a=b'2'", "o.b=b'3'"],
        "2": ["o.a=b'0'", "o.b=b'1'", "o.a=b'2'", "o.b=b'3'"],
        "3": ["o.a=b'0'", "o.a=b'2'"],
    }


def test_unsub_with_max(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        out = c.exchange(
            "SUB m 1\r\nUNSUB 1 2\r\n" + "PUB m 1\r\nx\r\n" * 4 + "SUB m2 2\r\nPUB m2 1\r\ny\r\n"
            "UNSUB 2 1\r\nPUB m2 1\r\nz\r\nPING\r\n"
        )
        return out

    # UNSUB with max <= delivered removes at once.
    assert same(both(ports, scenario)) == [
        "MSG m 1 1",
        "b'x'",
        "MSG m 1 1",
        "b'x'",
        "MSG m2 2 1",
        "b'y'",
        "PONG",
    ]


def test_echo_false(ports) -> None:
    def scenario(port: int) -> tuple[list[str], list[str]]:
        a, b = RawClient(port), RawClient(port)
        a.connect(echo=False)
        b.connect()
        a.exchange("SUB e 1\r\nPING\r\n")
        b.exchange("SUB e 1\r\nPING\r\n")
        a.exchange("PUB e 4\r\nfrom\r\nPING\r\n")
        return a.exchange("PING\r\n"), b.exchange("PING\r\n")

    assert same(both(ports, scenario)) == (["PONG"], ["MSG e 1 4", "b'from'", "PONG"])


def test_headers_to_header_and_plain_subscribers(ports) -> None:
    def scenario(port: int) -> tuple[list[str], list[str]]:
        h, plain = RawClient(port), RawClient(port)
        h.connect(headers=True)
        plain.connect(headers=False)
        h.exchange("SUB hd 1\r\nPING\r\n")
        plain.exchange("SUB hd 1\r\nPING\r\n")
        own = h.exchange("HPUB hd r 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nok\r\nPING\r\n")
        return own, plain.exchange("PING\r\n")

    res = same(both(ports, scenario))
    assert res == (
        ["HMSG hd 1 r 18 20", repr(b"NATS/1.0\r\nA: b\r\n\r\nok"), "PONG"],
        # A subscriber that did not negotiate headers gets MSG with the headers stripped.
        ["MSG hd 1 r 2", "b'ok'", "PONG"],
    )


def test_no_responders_status(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect(headers=True, no_responders=True)
        lines = c.exchange("SUB _INBOX.x 1\r\nPUB nobody _INBOX.x 1\r\n?\r\nPING\r\n")
        return lines

    res = both(ports, scenario)
    for impl, lines in res.items():
        assert lines[0].startswith("HMSG _INBOX.x 1 "), (impl, lines)
        assert "NATS/1.0 503" in lines[1], (impl, lines)
        assert lines[-1] == "PONG"
    same(res)  # scserver uses 2.12+'s form with the Nats-Subject header, like 2.15


def test_no_responders_needs_flag(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect(headers=True)
        return c.exchange("SUB _INBOX.y 1\r\nPUB nobody _INBOX.y 1\r\n?\r\nPING\r\n")

    assert same(both(ports, scenario)) == ["PONG"]


def test_second_connect_is_accepted(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        return c.exchange('CONNECT {"verbose":true}\r\nPING\r\n')

    assert same(both(ports, scenario)) == ["+OK", "PONG"]


def test_queue_subscriber_with_reply(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        return c.exchange("SUB svc grp 1\r\nPUB svc reply.to 2\r\nhi\r\nPING\r\n")

    assert same(both(ports, scenario)) == ["MSG svc 1 reply.to 2", "b'hi'", "PONG"]


def test_idle_connection_stays_open(ports) -> None:
    """Nothing unsolicited arrives on an idle connection and it stays open: our PING's PONG is
    the next line (a sentinel, where a fixed window only hoped to see whatever came)."""

    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        return c.exchange("PING\r\n")

    assert same(both(ports, scenario)) == ["PONG"]


def test_close_by_client_is_clean(ports) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        c.sock.shutdown(1)  # half-close: the server sees EOF and closes its side
        return c.lines(until=None, timeout=3)

    assert same(both(ports, scenario)) == [EOF]


# --- hostile CONNECT bodies, subjects and sizes (issue 9) -------------------------------------


@pytest.mark.parametrize(
    "connect",
    [
        b"CONNECT " + b"[" * 3000 + b"\r\n",
        b'CONNECT {"verbose":false,"name":5}\r\n',
        b'CONNECT {"verbose":false,"user":5}\r\n',
        b'CONNECT {"verbose":false,"protocol":"1"}\r\n',
        b'CONNECT {"verbose":false,"protocol":1.0}\r\n',
        b'CONNECT {"verbose":false,"lang":[1]}\r\n',
        b'CONNECT {"verbose":"false"}\r\n',
        b"CONNECT [1]\r\n",
        b"CONNECT \xff\xfe\r\n",
        b'CONNECT {"verbose":false}x\r\n',
    ],
)
def test_connect_that_does_not_decode_closes_silently(ports, connect: bytes) -> None:
    """nats-server decodes CONNECT into typed ClientOpts; a JSON error (nesting, a wrongly
    typed field, not an object) closes the connection without an -ERR."""

    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            return c.exchange(connect + b"PING\r\n")

    assert same(both(ports, scenario)) == [EOF]


@pytest.mark.parametrize(
    "connect",
    [
        b'CONNECT {"verbose":false,"zzz":[[{"a":1}]],"name":"\xff\xfe"}\r\n',
        b'CONNECT {"verbose":null,"Verbose":false,"name":"\\ud800"}\r\n',
        b'CONNECT {"verbose":false,"name":null,"user":null}\r\n',
    ],
)
def test_connect_go_decoding_rules(ports, connect: bytes) -> None:
    """Unknown fields and null are ignored, keys match case-insensitively, and bad UTF-8 in a
    string is replaced, as Go's encoding/json does: the client is connected."""

    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            return c.exchange(connect + b"PING\r\n")

    assert same(both(ports, scenario)) == ["PONG"]


def test_non_utf8_subjects_are_accepted(ports) -> None:
    """nats-server validates subjects by their separators and whitespace, not UTF-8: a
    subscription on bytes that are not UTF-8 works like any other."""

    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            c.connect(pedantic=True)
            return c.exchange(b"SUB \xff\xfe.bad 1\r\nPUB \xff\xfe.bad 2\r\nhi\r\nPING\r\n")

    assert same(both(ports, scenario)) == ["MSG \ufffd\ufffd.bad 1 2", "b'hi'", "PONG"]


def test_vertical_tab_belongs_to_the_subject(ports) -> None:
    """nats-server splits arguments on blanks and tabs only: VT is a subject byte, not a
    separator (Python's bytes.split() would make "foo\x0bbar 1" a queue subscription)."""

    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            c.connect()
            return c.exchange(b"SUB foo\x0bbar 1\r\nPUB foo\x0bbar 2\r\nhi\r\nPING\r\n")

    assert same(both(ports, scenario)) == ["MSG foo\x0bbar 1 2", "b'hi'", "PONG"]


@pytest.mark.parametrize(
    "line",
    [b"PUB foo 99999999999\r\n", b"PUB foo reply 1234567890\r\n", b"pub foo  99999999999\r\n"],
)
def test_size_of_ten_digits_closes_silently(ports, line: bytes) -> None:
    """nats-server reads at most 9 size digits: more is 'Bad or Missing Size' (no -ERR),
    not a payload violation."""

    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            c.connect()
            return c.exchange(line + b"x" * 100)

    assert same(both(ports, scenario)) == [EOF]


def test_size_over_max_payload_is_a_payload_violation(ports) -> None:
    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            c.connect()
            return c.exchange(b"PUB foo 999999999\r\n" + b"x" * 100)

    assert same(both(ports, scenario)) == ["-ERR 'Maximum Payload Violation'", EOF]


@pytest.fixture(scope="module")
def auth_ports(module_servers) -> dict[str, int]:
    conf = "authorization { user: a, password: b }\n"
    return {impl: module_servers.start(impl, conf).port for impl in IMPLS}


@pytest.mark.parametrize(
    "data",
    [
        b"PUB foo 1048576\r\n" + b"x" * 65536,
        b"PUB foo 99999999999\r\n" + b"x" * 65536,
        b"HPUB foo 12 1000\r\n",
        b"SUB foo 1\r\n",
        b"PING\r\n",
        b"\x16\x03\x01\x00",
    ],
)
def test_nothing_but_connect_before_login(auth_ports, data: bytes) -> None:
    """With authentication required, nats-server refuses any operation but CONNECT at its
    first byte (Authorization Violation): no payload of an unauthenticated client is read."""

    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            return c.exchange(data)

    assert same(both(auth_ports, scenario)) == ["-ERR 'Authorization Violation'", EOF]


def test_operations_behind_the_login_in_one_write(auth_ports) -> None:
    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            return c.exchange(
                b'CONNECT {"verbose":false,"pedantic":false,"user":"a","pass":"b"}\r\n'
                b"SUB w 1\r\nPUB w 2\r\nhi\r\nPING\r\n"
            )

    assert same(both(auth_ports, scenario)) == ["MSG w 1 2", "b'hi'", "PONG"]


def test_wrong_login_then_payload(auth_ports) -> None:
    def scenario(port: int) -> list[str]:
        with RawClient(port) as c:
            return c.exchange(
                b'CONNECT {"verbose":false,"user":"a","pass":"nope"}\r\nPUB w 1048576\r\n'
                + b"x" * 65536
            )

    assert same(both(auth_ports, scenario)) == ["-ERR 'Authorization Violation'", EOF]

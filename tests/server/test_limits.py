"""Limits: max_payload, max_control_line, max_subscriptions, max_connections, slow consumers,
stale connections. Raw-socket checks run against scserver and nats-server and must agree."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.errors import MaxPayloadError
from tests.server.conftest import EOF, IMPLS, RawClient
from tests.tools import LOOPBACK, http_get_json, wait_for

LIMITS_CONF = """
max_payload: 1024
max_control_line: 512
max_subscriptions: 3
"""

MAX_CONN_CONF = """
max_connections: 2
"""

SLOW_CONF = """
max_pending: 65536
max_payload: 8192
write_deadline: "1s"
"""

PING_CONF = """
ping_interval: "300ms"
ping_max: 1
"""


@pytest.fixture(scope="module")
def started(module_servers):
    confs = {"limits": LIMITS_CONF, "maxconn": MAX_CONN_CONF, "ping": PING_CONF}
    out = {}
    for impl in IMPLS:
        for name, conf in confs.items():
            out[(impl, name)] = module_servers.start(impl, conf)
        out[(impl, "slow")] = module_servers.start(impl, SLOW_CONF, http=True)
    return out


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    return request.param


def _both(started, conf: str, scenario) -> object:
    res = {impl: scenario(started[(impl, conf)].port) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    return res["scserver"]


# --- max_payload / max_control_line ---------------------------------------------------------


def test_max_payload_in_info(started) -> None:
    assert _both(started, "limits", lambda p: RawClient(p).info["max_payload"]) == 1024


def test_max_payload_violation_raw(started) -> None:
    def scenario(port: int) -> tuple[list[str], list[str]]:
        ok = RawClient(port)
        ok.connect()
        fits = ok.exchange(b"SUB big 1\r\nPUB big 1024\r\n" + b"x" * 1024 + b"\r\nPING\r\n")
        bad = RawClient(port)
        bad.connect()
        bad.send(b"PUB big 1025\r\n" + b"x" * 1025 + b"\r\n")
        return fits[:1] + fits[2:], bad.lines(timeout=4)

    assert _both(started, "limits", scenario) == (
        ["MSG big 1 1024", "PONG"],
        ["-ERR 'Maximum Payload Violation'", EOF],
    )


async def test_max_payload_refused_by_nats_py(started, impl) -> None:
    nc = await nats.connect(started[(impl, "limits")].url, allow_reconnect=False)
    try:
        assert nc.max_payload == 1024
        with pytest.raises(MaxPayloadError):
            await nc.publish("big", b"x" * 1025)
        await nc.publish("big", b"x" * 1024)
        await nc.flush()
        assert nc.is_connected
    finally:
        await nc.close()


def test_max_control_line(started) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        c.send(f"SUB {'a' * 600} 1\r\n")
        return c.lines(timeout=4)

    assert _both(started, "limits", scenario) == ["-ERR 'maximum control line exceeded'", EOF]


# --- max_subscriptions ---------------------------------------------------------------------


def test_max_subscriptions(started) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        return c.exchange(
            "SUB s.1 1\r\nSUB s.2 2\r\nSUB s.3 3\r\nSUB s.4 4\r\nPUB s.4 1\r\nx\r\n"
            "UNSUB 1\r\nSUB s.5 5\r\nPUB s.5 1\r\ny\r\nPING\r\n"
        )

    # Not fatal: the 4th SUB is refused, and after an UNSUB there is room again.
    assert _both(started, "limits", scenario) == [
        "-ERR 'maximum subscriptions exceeded'",
        "MSG s.5 5 1",
        "b'y'",
        "PONG",
    ]


# --- max_connections -----------------------------------------------------------------------


def _admitted(port: int, timeout: float = 10.0) -> RawClient:
    """A client the server admits, retried while the slots are taken (a readiness probe of the
    fixture, or a client whose close the server has not processed yet, still counts)."""
    got: list[RawClient] = []

    def admit() -> bool:
        c = RawClient(port)
        reply = c.exchange('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        if reply[-1:] == ["PONG"]:
            got.append(c)
            return True
        c.close()
        return False

    wait_for(admit, timeout, 0.05, f"a connection slot on port {port}")
    return got[0]


def test_max_connections(started) -> None:
    def scenario(port: int) -> list[str]:
        a = _admitted(port)
        b = _admitted(port)
        third = RawClient(port)
        refused = third.lines(timeout=4)
        a.close()
        again = _admitted(port)  # the slot `a` held is given back
        after = again.exchange("PING\r\n")
        b.close()
        again.close()
        return refused + after

    assert _both(started, "maxconn", scenario) == [
        "-ERR 'maximum connections exceeded'",
        EOF,
        "PONG",
    ]


# --- slow consumer -------------------------------------------------------------------------


def _slow_consumer(port: int, http_port: int) -> tuple[list[str], int]:
    slow = RawClient(port, rcvbuf=4096)
    slow.connect()
    assert slow.exchange("SUB flood 1\r\nPING\r\n") == ["PONG"]
    pub = RawClient(port)
    pub.connect()
    chunk = b"PUB flood 4096\r\n" + b"x" * 4096 + b"\r\n"
    deadline = time.monotonic() + 20
    sent = 0
    # Publish until the server gives up on the subscriber that never reads.
    while time.monotonic() < deadline:
        pub.send(chunk * 256)
        sent += 256
        assert pub.exchange("PING\r\n") == ["PONG"], "the publisher must stay connected"
        if http_get_json(LOOPBACK, http_port, "/varz")["slow_consumers"] >= 1:
            break
    varz = http_get_json(LOOPBACK, http_port, "/varz")
    # What the slow consumer still receives ends in a close, never in an -ERR.
    got = slow.lines(until=None, timeout=10)
    errs = [line for line in got if line.startswith("-ERR")]
    return errs + [got[-1]], varz["slow_consumers"]


def test_slow_consumer_is_disconnected_without_err(started) -> None:
    for impl in IMPLS:
        sp = started[(impl, "slow")]
        tail, count = _slow_consumer(sp.port, sp.http_port)
        assert tail == [EOF], impl
        assert count >= 1, impl
        # The server stays healthy.
        c = RawClient(sp.port)
        c.connect()
        assert c.exchange("SUB ok 1\r\nPUB ok 2\r\nhi\r\nPING\r\n") == [
            "MSG ok 1 2",
            "b'hi'",
            "PONG",
        ], impl
        wait_for(lambda sp=sp: http_get_json(LOOPBACK, sp.http_port, "/connz")["total"] == 1, 5)


# --- pings / stale connections -------------------------------------------------------------


def test_stale_connection(started) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        return c.lines(until=None, timeout=5, answer_pings=False)

    assert _both(started, "ping", scenario) == ["PING", "-ERR 'Stale Connection'", EOF]


def _answer_pings(c: RawClient, n: int) -> list[str]:
    """Wait for ``n`` server PINGs, answering each; what came (only PINGs, if all is well)."""
    got: list[str] = []
    for _ in range(n):
        got += c.lines(until="PING", timeout=10, answer_pings=False)
        c.send("PONG\r\n")
    return got


def test_client_answering_pings_stays(started) -> None:
    def scenario(port: int) -> list[str]:
        c = RawClient(port)
        c.connect()
        # ping_max 1: a client that missed one PONG would be cut by the third PING; after
        # four answered PINGs our own PING is still answered (the sentinel that nothing else came)
        return _answer_pings(c, 4) + c.exchange("PING\r\n")

    assert _both(started, "ping", scenario) == ["PING"] * 4 + ["PONG"]


async def test_nats_py_survives_short_ping_interval(started, impl) -> None:
    nc = await nats.connect(started[(impl, "ping")].url, allow_reconnect=False)
    try:
        sub = await nc.subscribe("p")
        await nc.flush()
        # The server PINGs every client at the same interval: once an observer has seen four
        # PINGs, nats-py has been through several too (and had to answer them to stay).
        observer = RawClient(started[(impl, "ping")].port)
        observer.connect()
        try:
            assert await asyncio.to_thread(_answer_pings, observer, 4) == ["PING"] * 4
        finally:
            observer.close()
        await nc.publish("p", b"still here")
        assert (await sub.next_msg(timeout=3)).data == b"still here"
        assert nc.is_connected
    finally:
        await nc.close()

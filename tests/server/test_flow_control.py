"""Back-pressure is per consumer: a subscriber that never reads is its own problem.

A stuck subscriber (a socket that never reads) is fed on its subject while other clients, in
its account and in another one, do round trips on other subjects: they must not be held back
(nats-server stalls only the CLIENT producers of that very consumer, a few ms at a time). The
stuck subscriber is cut as a slow consumer once it holds ``max_pending`` bytes, and counted in
``/varz``. Every scenario runs against scserver and nats-server alike.

The tests assert that the round trips complete while the backlog is there; how fast they are
is a benchmark's figure (``make bench-robustness``, "stuck consumer": p99 latency of an
unrelated subject beside a stuck subscriber, both servers side by side).
"""

from __future__ import annotations

import pytest
from tests.feeder import Feeder
from tests.server.conftest import IMPLS, RawClient
from tests.tools import LOOPBACK, http_get_json, wait_for

ACCOUNTS = """
accounts: {
  A: { users: [{user: a, password: a}] }
  B: { users: [{user: b, password: b}] }
}
"""

#: Room for tens of MB behind the stuck subscriber, no write-deadline cut during the test.
STUCK_CONF = ACCOUNTS + 'write_deadline: "60s"\n'
#: A small max_pending: the stuck subscriber is cut for pending bytes, not by the deadline.
CUT_CONF = ACCOUNTS + 'max_pending: 1048576\nwrite_deadline: "60s"\n'

ROUND_TRIPS = 150


def stuck_subscriber(port: int, subject: str, user: str) -> RawClient:
    """Subscribes, then never reads again (tiny receive buffer: the server's buffer fills)."""
    c = RawClient(port, rcvbuf=4096)
    c.connect(user=user, **{"pass": user})
    assert c.exchange(f"SUB {subject} 1\r\nPING\r\n") == ["PONG"]
    return c


def pending_of(http_port: int, cid: int) -> int | None:
    """The stuck subscriber's pending bytes in /connz; None once it is gone."""
    for c in http_get_json(LOOPBACK, http_port, "/connz?limit=1000")["connections"]:
        if c["cid"] == cid:
            return int(c["pending_bytes"])
    return None


def round_trips(port: int, user: str, subject: str, n: int) -> int:
    """``n`` sequential publish→deliver→PONG round trips (each must come back: the socket's
    10 s timeout only guards against a hang); returns how many completed."""
    c = RawClient(port, timeout=10)
    done = 0
    try:
        c.connect(user=user, **{"pass": user})
        assert c.exchange(f"SUB {subject} 9\r\nPING\r\n") == ["PONG"]
        for i in range(n):
            got = c.exchange(f"PUB {subject} {len(str(i))}\r\n{i}\r\nPING\r\n")
            assert got == [f"MSG {subject} 9 {len(str(i))}", repr(str(i).encode()), "PONG"], got
            done += 1
        return done
    finally:
        c.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_stuck_subscriber_holds_back_no_other_publisher(servers, impl: str) -> None:
    sp = servers.start(impl, STUCK_CONF, http=True)
    stuck = stuck_subscriber(sp.port, "flood", "a")
    cid = stuck.info["client_id"]
    feeder = Feeder(sp.port, "flood", "a")
    try:
        # Past the point where a server-wide stall would kick in (16 MB behind).
        wait_for(lambda: (pending_of(sp.http_port, cid) or 0) > 20 << 20, 30, 0.1, "a backlog")
        same_account = round_trips(sp.port, "a", "other", ROUND_TRIPS)
        other_account = round_trips(sp.port, "b", "flood", ROUND_TRIPS)
        still = pending_of(sp.http_port, cid)
    finally:
        feeder.close()
        stuck.close()
    assert still is not None, "the stuck subscriber must still be there while the others ran"
    assert same_account == ROUND_TRIPS, "same account, other subject"
    assert other_account == ROUND_TRIPS, "other account, same subject name"


def test_stuck_subscriber_is_cut_at_max_pending_and_counted(servers) -> None:
    """scserver only: nats-server's writer blocks in the socket write until write_deadline,
    so with a 60 s deadline it keeps the subscriber for a minute (its cut comes from the
    deadline, tested with a short deadline in test_limits)."""
    sp = servers.start("scserver", CUT_CONF, http=True)
    stuck = stuck_subscriber(sp.port, "flood", "a")
    cid = stuck.info["client_id"]
    feeder = Feeder(sp.port, "flood", "a")
    try:
        wait_for(lambda: pending_of(sp.http_port, cid) is None, 30, 0.1, "the slow consumer cut")
        # The publisher that fed it is still served.
        assert round_trips(sp.port, "a", "after", 3) < 30
    finally:
        feeder.close()
        stuck.close()
    varz = http_get_json(LOOPBACK, sp.http_port, "/varz")
    assert varz["slow_consumers"] >= 1, varz
    assert varz["slow_consumer_stats"]["clients"] >= 1, varz["slow_consumer_stats"]
    closed = http_get_json(LOOPBACK, sp.http_port, "/connz?state=closed")["connections"]
    reasons = {c["cid"]: c.get("reason") for c in closed}
    assert reasons.get(cid) == "Slow Consumer (Pending Bytes)", reasons

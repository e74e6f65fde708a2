"""Runs of publishes to one subject in one read are routed together (routing.process_batch).

The batch path must be indistinguishable from message-by-message routing: order per
subscription, auto-unsubscribe after max, echo, queue groups, interleaved SUB/UNSUB/PING and
subjects changing mid-run. Each scenario is one write, so the server sees it in one read, and
runs against nats-server too.
"""

from __future__ import annotations

from typing import Any

import pytest

IMPLS = ["scserver", "nats-server"]


def _payloads(lines: list[str], sid: str) -> list[str]:
    """Payloads delivered to one sid, in order."""
    out = []
    for i, line in enumerate(lines):
        parts = line.split()
        if parts and parts[0] == "MSG" and parts[2] == sid:
            out.append(lines[i + 1])
    return out


@pytest.mark.parametrize("impl", IMPLS)
def test_run_order_max_echo_and_interleaved_ops(impl: str, servers: Any, raw: Any) -> None:
    sp = servers.start(impl)
    sub = raw(sp.port)
    sub.connect()
    sub.exchange(b"SUB foo 1\r\nSUB foo 2\r\nUNSUB 2 5\r\nSUB bar 3\r\nSUB foo q 4\r\nPING\r\n")
    pub = raw(sp.port)
    pub.connect(echo=False)
    pub.exchange(b"SUB foo 9\r\nPING\r\n")
    stream = b"".join(b"PUB foo %d\r\nm%d\r\n" % (len(b"m%d" % i), i) for i in range(40))
    stream += b"PUB bar 2\r\nb1\r\nPING\r\n"
    stream += b"".join(b"PUB foo %d\r\nn%d\r\n" % (len(b"n%d" % i), i) for i in range(10))
    got_pub = pub.exchange(stream)
    assert got_pub == ["PONG"], got_pub  # echo:false: the publisher's own sub gets nothing
    got = sub.exchange(b"PING\r\n", timeout=5)
    expected = [repr(b"m%d" % i) for i in range(40)] + [repr(b"n%d" % i) for i in range(10)]
    assert _payloads(got, "1") == expected
    assert _payloads(got, "2") == expected[:5]  # auto-unsubscribed after 5
    assert _payloads(got, "3") == [repr(b"b1")]
    assert _payloads(got, "4") == expected  # the only member of queue group q gets all


@pytest.mark.parametrize("impl", IMPLS)
def test_run_shared_by_queue_members_exactly_once(impl: str, servers: Any, raw: Any) -> None:
    sp = servers.start(impl)
    members = [raw(sp.port) for _ in range(3)]
    for i, m in enumerate(members):
        m.connect()
        m.exchange(b"SUB work grp %d\r\nPING\r\n" % i)
    pub = raw(sp.port)
    pub.connect()
    n = 300
    pub.exchange(b"".join(b"PUB work 4\r\n%04d\r\n" % i for i in range(n)) + b"PING\r\n")
    seen: list[str] = []
    for i, m in enumerate(members):
        seen += _payloads(m.exchange(b"PING\r\n", timeout=5), str(i))
    assert sorted(seen) == sorted(repr(b"%04d" % i) for i in range(n))

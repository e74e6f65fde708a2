"""Bad input on route and gateway ports, and a misnamed gateway.

Cluster X is an scserver (X1, the target) and a nats-server (X2) with cluster and gateway
authorization; cluster Y is one scserver. Raw sockets send garbage and wrong handshakes to X1's
route and gateway ports. Each is refused (an -ERR where nats-server sends one), logged with the
peer's ip:port, and X1 keeps serving clients, its route and its gateways.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest
from tests.cluster.helpers import close_all, connect, reach, subscribe, unique
from tests.cluster.topology import GO, SC, Node, Topology, build, running
from tests.tools import LOOPBACK, wait_for

CLUSTER_AUTH = "  authorization { user: ruser, password: rpass }"
GATEWAY_AUTH = "  authorization { user: guser, password: gpass }"


@pytest.fixture(scope="module")
def guarded():
    with running(
        {"X": [SC, GO], "Y": [SC]},
        cluster_extra={"X": CLUSTER_AUTH},
        gateway_extra={"*": GATEWAY_AUTH},
    ) as topo:
        yield topo


class Peer:
    """A raw TCP connection to a server port that records what the server sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=3)
        self.local = f"{LOOPBACK}:{self.sock.getsockname()[1]}"
        self.buf = b""

    def read_until(self, predicate, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not predicate(self.buf) and time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            self.buf += chunk
        return self.buf

    def info(self) -> bytes:
        return self.read_until(lambda b: b"\r\n" in b)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """Read until EOF; True if the server closed the connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self) -> None:
        self.sock.close()


def logged_error(node: Node, peer: Peer, pattern: str, timeout: float = 3.0) -> str:
    """The [ERR] log line that names the peer's ip:port and matches ``pattern``."""
    rx = re.compile(rf"\[ERR\] {re.escape(peer.local)} .*{pattern}", re.IGNORECASE)
    found: list[str] = []

    def seen() -> bool:
        found[:] = [line for line in node.log().splitlines() if rx.search(line)]
        return bool(found)

    try:
        wait_for(seen, timeout, 0.05, f"log line for {peer.local} matching {pattern!r}")
    except TimeoutError:
        tail = "\n".join(line for line in node.log().splitlines() if peer.local in line)
        raise AssertionError(
            f"no [ERR] line naming {peer.local} /{pattern}/; lines: {tail}"
        ) from None
    return found[0]


def route_connect(**fields) -> bytes:
    import json

    base = {"echo": True, "verbose": False, "pedantic": False, "tls_required": False}
    base.update(fields)
    return b"CONNECT " + json.dumps(base).encode() + b"\r\n"


AUTH_ERR = b"-ERR 'Authorization Violation'"
TLS_HELLO = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" * 4

# Anything but CONNECT first is an authorization violation (as in nats-server); binary bytes
# without a line end are cut off by the authentication timeout (2 s by default).
CASES_ROUTE = {
    "garbage": (b"GARBAGE hello\r\n", AUTH_ERR, r"Authorization Violation"),
    "binary-line": (TLS_HELLO + b"\r\n", AUTH_ERR, r"Authorization Violation"),
    "binary": (TLS_HELLO, None, r"Authentication Timeout|Authorization Violation"),
    "client-connect": (
        route_connect(lang="python3", version="2.7.0", user="ruser", **{"pass": "rpass"}),
        b"-ERR 'attempted to connect to route port'",
        r"attempted to connect to route port",
    ),
    "wrong-cluster": (
        route_connect(user="ruser", name="NFAKE", cluster="Y", headers=True, **{"pass": "rpass"}),
        b'-ERR \'Rejecting connection, cluster name "Y" does not match "X"\'',
        r"cluster name \"Y\" does not match \"X\"",
    ),
    "wrong-credentials": (
        route_connect(user="ruser", name="NFAKE", cluster="X", **{"pass": "nope"}),
        AUTH_ERR,
        r"(authentication|authorization)",
    ),
    "ping-before-connect": (b"PING\r\n", AUTH_ERR, r"Authorization Violation"),
}


@pytest.mark.parametrize("case", list(CASES_ROUTE))
def test_route_port_rejects(guarded: Topology, case: str) -> None:
    node = guarded.node("X1")
    data, reply, pattern = CASES_ROUTE[case]
    peer = Peer(node.cluster_port)
    try:
        assert peer.info().startswith(b"INFO {"), peer.buf
        peer.send(data)
        assert peer.closed_by_server(), f"server kept the connection open: {peer.buf[-200:]!r}"
        if reply is not None:
            assert reply in peer.buf, peer.buf
        logged_error(node, peer, pattern)
    finally:
        peer.close()


def gw_connect(**fields) -> bytes:
    import json

    base = {"echo": False, "verbose": False, "pedantic": False, "tls_required": False}
    base.update(fields)
    return b"CONNECT " + json.dumps(base).encode() + b"\r\n"


CASES_GATEWAY = {
    "garbage": (b"GARBAGE hello\r\n", AUTH_ERR, r"Authorization Violation"),
    "binary-line": (TLS_HELLO + b"\r\n", AUTH_ERR, r"Authorization Violation"),
    "binary": (TLS_HELLO, None, r"Authentication Timeout|Authorization Violation"),
    "client-connect": (
        gw_connect(lang="python3", version="2.7.0", user="guser", **{"pass": "gpass"}),
        b"-ERR 'attempted to connect to gateway port'",
        r"attempted to connect to gateway port",
    ),
    "route-connect": (
        route_connect(user="guser", name="NFAKE", cluster="X", **{"pass": "gpass"}),
        b"-ERR 'attempted to connect to gateway port'",
        r"attempted to connect to gateway port",
    ),
    "wrong-credentials": (
        gw_connect(user="guser", name="NFAKE", gateway="Y", **{"pass": "nope"}),
        AUTH_ERR,
        r"(authentication|authorization)",
    ),
    "msg-before-connect": (b"RMSG $G foo 2\r\nhi\r\n", AUTH_ERR, r"Authorization Violation"),
}


@pytest.mark.parametrize("case", list(CASES_GATEWAY))
def test_gateway_port_rejects(guarded: Topology, case: str) -> None:
    node = guarded.node("X1")
    data, reply, pattern = CASES_GATEWAY[case]
    peer = Peer(node.gateway_port)
    try:
        assert peer.info().startswith(b"INFO {"), peer.buf
        assert b'"gateway":"X"' in peer.buf.replace(b" ", b"")
        peer.send(data)
        assert peer.closed_by_server(), f"server kept the connection open: {peer.buf[-200:]!r}"
        if reply is not None:
            assert reply in peer.buf, peer.buf
        logged_error(node, peer, pattern)
    finally:
        peer.close()


async def test_route_port_does_not_deliver_unauthenticated_messages(guarded: Topology) -> None:
    node = guarded.node("X1")
    subject = unique("inject")
    nc = await connect(node.url)
    try:
        box = await subscribe(nc, subject)
        await nc.flush()
        peer = Peer(node.cluster_port)
        peer.info()
        peer.send(f"RMSG $G {subject} 6\r\nforged\r\n".encode())
        assert peer.closed_by_server()
        assert AUTH_ERR in peer.buf, peer.buf
        peer.close()
        await nc.flush()
        await asyncio.sleep(0.2)
        assert box.data() == [], "a message from an unauthenticated route peer was delivered"
        logged_error(node, peer, r"Authorization Violation")
    finally:
        await close_all(nc)


async def test_still_serving_after_bad_input(guarded: Topology) -> None:
    """Run last in the module: X1 still has its route and gateways, and traffic flows."""
    for case in CASES_ROUTE:
        peer = Peer(guarded.node("X1").cluster_port)
        peer.info()
        peer.send(CASES_ROUTE[case][0])
        peer.close()
    for case in CASES_GATEWAY:
        peer = Peer(guarded.node("X1").gateway_port)
        peer.info()
        peer.send(CASES_GATEWAY[case][0])
        peer.close()
    guarded.wait_ready(10)
    x1 = guarded.node("X1")
    assert x1.proc is not None and x1.proc.alive()
    assert x1.get("/healthz")["status"] == "ok"
    subject = unique("alive")
    subs = {n: await connect(guarded.node(n).url) for n in ("X1", "X2", "Y1")}
    pub = await connect(x1.url)
    try:
        for name, nc in subs.items():
            box = await subscribe(nc, subject + "." + name)
            await reach(pub, [(subject + "." + name, box)], timeout=5)
    finally:
        await close_all(pub, *subs.values())


# --- a gateway that names itself wrongly ---------------------------------------------------


@pytest.fixture(scope="module")
def misnamed():
    """P (scserver) and R (nats-server) list cluster "Z" at the URL of Q, which is cluster Q."""
    topo = build({"P": [SC], "R": [GO], "Q": [SC]})
    q = topo.node("Q1")
    for cl in ("P", "R", "Q"):
        topo.gateway_view[cl] = [cl]
    for cl in ("P", "R"):
        topo.gateway_entries[cl] = [f'{{name: "Z", urls: ["{q.gateway_url}"]}}']
    topo.start()
    try:
        yield topo
    finally:
        topo.stop()


def test_misnamed_gateway_detected(misnamed: Topology) -> None:
    p, r, q = misnamed.node("P1"), misnamed.node("R1"), misnamed.node("Q1")
    where = re.escape(f"[ERR] {LOOPBACK}:{q.gateway_port} ")
    patterns = [
        (p, where + r".*Failing connection to gateway 'Z', remote gateway name is 'Q'"),
        (r, where + r'.*Failing connection to gateway "Z", remote gateway name is "Q"'),
    ]
    for node, pattern in patterns:
        wait_for(
            lambda node=node, pattern=pattern: re.search(pattern, node.log()) is not None,
            10,
            0.1,
            f"{node.name} ({node.impl}) to log that gateway 'Z' is really 'Q'",
        )
    time.sleep(1.0)
    for node in (p, r, q):
        gwz = node.get("/gatewayz")
        assert not gwz["outbound_gateways"], (node.name, gwz["outbound_gateways"])
        assert not gwz["inbound_gateways"], (node.name, gwz["inbound_gateways"])
    assert q.proc is not None and q.proc.alive()

"""Bad input on route and gateway ports, and a misnamed gateway.

Cluster X is an scserver (X1, the target) and a nats-server (X2) with cluster and gateway
authorization; cluster Y is one scserver. Raw sockets send garbage and wrong handshakes to X1's
route and gateway ports. Each is refused (an -ERR where nats-server sends one), logged with the
peer's ip:port, and X1 keeps serving clients, its route and its gateways.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from tests.cluster.helpers import close_all, connect, eventually, reach, subscribe, unique
from tests.cluster.topology import GO, SC, Node, Topology, build, running
from tests.tools import LOOPBACK, http_get, wait_for

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
    # A message before CONNECT is refused at its control line: nothing of it is buffered.
    # (The -ERR may be lost to a reset: the peer is still sending when the server closes.)
    "rmsg-before-connect": (
        b"RMSG $G foo 99999999999\r\n" + b"x" * 200_000,
        None,
        r"Authorization Violation",
    ),
    # Like nats-server: a CONNECT that is not the typed JSON object closes without an -ERR.
    "deep-connect": (b"CONNECT " + b"[" * 3000 + b"\r\n", None, r"invalid CONNECT: JSON nested"),
    "typed-connect": (
        route_connect(user="ruser", name=5, cluster="X", **{"pass": "rpass"}),
        None,
        r"invalid CONNECT: name",
    ),
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
    "rmsg-before-connect": (
        b"RMSG $G foo 99999999999\r\n" + b"x" * 200_000,
        None,
        r"Authorization Violation",
    ),
    "deep-connect": (b"CONNECT " + b"{" * 3000 + b"\r\n", None, r"invalid CONNECT: JSON nested"),
    "typed-connect": (
        gw_connect(user="guser", name="NFAKE", gateway=5, **{"pass": "gpass"}),
        None,
        r"invalid CONNECT: gateway",
    ),
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
        # a sentinel on the same subscription, published after the server closed the peer: a
        # forged delivery would have been queued to us before it
        await nc.publish(subject, b"sentinel")
        await nc.flush()
        await eventually(lambda: box.count() >= 1, 10, "the sentinel")
        assert box.data() == [b"sentinel"], "a message from an unauthenticated route peer"
        logged_error(node, peer, r"Authorization Violation")
    finally:
        await close_all(nc)


# --- unauthenticated floods ----------------------------------------------------------------


def rss_mb(node: Node) -> float:
    assert node.proc is not None and node.proc.pid is not None
    with open(f"/proc/{node.proc.pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Pinger:
    """A connected client whose every PING must be answered (how fast is a benchmark's
    figure: ``make bench-robustness``, "pre-auth flood: worst PING")."""

    def __init__(self, port: int) -> None:
        self.peer = Peer(port)
        self.peer.info()
        self.peer.send(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        self.answered = 0
        self.ping()

    def ping(self) -> None:
        """One PING, its PONG awaited (the 10 s only guards against a hang)."""
        self.peer.buf = b""
        self.peer.send(b"PING\r\n")
        self.peer.read_until(lambda b: b"PONG\r\n" in b, timeout=10)
        assert b"PONG\r\n" in self.peer.buf, self.peer.buf
        self.answered += 1


def flood(peer: Peer, megabytes: int) -> None:
    """Announce an enormous message and stream its 'payload' until the server closes."""
    chunk = b"x" * 65536
    try:
        peer.sock.sendall(b"RMSG $G foo 99999999999\r\n")
        for _ in range(megabytes * 16):
            peer.sock.sendall(chunk)
    except OSError:
        pass  # reset or timed out: the server stopped taking bytes


@pytest.mark.parametrize("name", ["X1", "X2"])
def test_unauthenticated_flood_is_refused_at_once(guarded: Topology, name: str) -> None:
    """Eight unauthenticated peers on the route and gateway ports each announce a message of
    ~100 GB and stream 8 MB: each is closed at its first line, the server's memory (peak RSS
    while they send) does not grow with what they send, and a client's PING is still answered
    (X2 is nats-server, for comparison)."""
    import threading

    node = guarded.node(name)
    pinger = Pinger(node.port)
    before = rss_mb(node)
    peers = [Peer(node.gateway_port if i % 2 else node.cluster_port) for i in range(8)]
    try:
        for peer in peers:
            assert peer.info().startswith(b"INFO {"), peer.buf
        threads = [threading.Thread(target=flood, args=(peer, 8)) for peer in peers]
        for t in threads:
            t.start()
        peak = before
        while any(t.is_alive() for t in threads):
            pinger.ping()  # served while the peers flood
            peak = max(peak, rss_mb(node))
        for t in threads:
            t.join()
        for peer in peers:
            assert peer.closed_by_server(timeout=5), f"{name} kept {peer.local} open"
        pinger.ping()
        growth = max(peak, rss_mb(node)) - before
        assert growth < 30, f"{name} RSS grew by {growth:.1f} MB"
        assert pinger.answered >= 2
    finally:
        for peer in peers:
            peer.close()
        pinger.peer.close()


# --- authenticated peers sending wrongly typed or invalid things ------------------------------

FAKE_ROUTE = route_connect(user="ruser", name="NFAKEROUTE", cluster="X", headers=True,
                           **{"pass": "rpass"})  # fmt: skip
FAKE_GATEWAY = gw_connect(user="guser", name="NFAKEGW", gateway="Y", **{"pass": "gpass"})


@pytest.mark.parametrize("name", ["X1", "X2"])
@pytest.mark.parametrize(
    ("port", "connect", "info", "pattern"),
    [
        (
            "cluster_port",
            FAKE_ROUTE,
            b'{"server_id":"NFAKEROUTE","port":"abc","cluster":"X"}',
            r"invalid INFO: port",
        ),
        (
            "cluster_port",
            FAKE_ROUTE,
            b'{"server_id":"NFAKEROUTE","port":1,"cluster":"X","gateway_urls":7}',
            r"invalid INFO: gateway_urls",
        ),
        (
            "gateway_port",
            FAKE_GATEWAY,
            b'{"server_id":"NFAKEGW","gateway":"Y","gateway_urls":"ab:1","port":1}',
            r"invalid INFO: gateway_urls",
        ),
        (
            "gateway_port",
            FAKE_GATEWAY,
            b'{"server_id":"NFAKEGW","gateway":"Y","gateway_cmd":"1","port":1}',
            r"invalid INFO: gateway_cmd",
        ),
    ],
)
def test_wrongly_typed_info_closes_the_link(
    guarded: Topology, name: str, port: str, connect: bytes, info: bytes, pattern: str
) -> None:
    """Smell 4: a typed field of the wrong JSON type closes the link (nats-server: a JSON
    error, 'Protocol Violation'), and nothing of it is used ("ab:1" never becomes URLs)."""
    node = guarded.node(name)
    peer = Peer(getattr(node, port))
    try:
        peer.info()
        peer.send(connect + b"INFO " + info + b"\r\n")
        assert peer.closed_by_server(), f"{name} kept the link open: {peer.buf[-200:]!r}"
        if node.impl == SC:
            logged_error(node, peer, pattern)
    finally:
        peer.close()
    gwz = node.get("/gatewayz")
    assert set(gwz["outbound_gateways"]) <= {"Y"}, gwz["outbound_gateways"]


@pytest.mark.parametrize("name", ["X1", "X2"])
def test_invalid_remote_subscription_is_answered_and_the_route_kept(
    guarded: Topology, name: str
) -> None:
    """RS+ with an invalid subject: -ERR 'Invalid Subscription', the route stays (as
    nats-server); a non-UTF-8 but valid subject is accepted."""
    node = guarded.node(name)
    peer = Peer(node.cluster_port)
    try:
        peer.info()
        peer.buf = b""
        peer.send(FAKE_ROUTE + b"RS+ $G foo..bar\r\nRS+ $G \xff\xfe.ok\r\nPING\r\n")
        peer.read_until(lambda b: b"PONG\r\n" in b)
        lines = [ln for ln in peer.buf.split(b"\r\n") if ln and not ln.startswith(b"INFO")]
        assert lines[:2] == [b"-ERR 'Invalid Subscription'", b"PONG"], lines
    finally:
        peer.close()


ENDPOINTS = [
    "/varz",
    "/connz",
    "/connz?subs=1",
    "/connz?subs=detail",
    "/subsz?subs=1",
    "/routez?subs=1",
    "/gatewayz",
    "/gatewayz?accs=1&subs=1",
    "/accountz",
    "/accountz?acc=$G",
    "/healthz",
]


async def test_monitoring_never_fails_on_what_clients_sent(guarded: Topology) -> None:
    """Subjects and queue names that are not UTF-8 are legal on the wire (nats-server takes
    them); every monitoring endpoint of every server still answers 200 while their clients
    stay, showing the bytes as U+FFFD as nats-server's JSON does."""
    hostile = []
    try:
        for name in ("X1", "X2"):
            peer = Peer(guarded.node(name).port)
            peer.info()
            peer.buf = b""
            peer.send(
                b'CONNECT {"verbose":false,"pedantic":false,"name":"\xff\xfe"}\r\n'
                b"SUB \xff\xfe.bad 1\r\nSUB q.\xff \xfe 2\r\nPING\r\n"
            )
            peer.read_until(lambda b: b"PONG\r\n" in b)
            assert peer.buf.endswith(b"PONG\r\n"), (name, peer.buf)
            hostile.append(peer)
        x1 = guarded.node("X1")
        # X2's subscriptions reach X1 as RS+ over the route, the queue ones reach Y over
        # the gateways: wait for X1 to list them under its route.
        wait_for(
            lambda: any(
                "\ufffd\ufffd.bad" in r.get("subscriptions_list", [])
                for r in x1.get("/routez?subs=1")["routes"]
            ),
            10,
            0.1,
            "X2's subscription on X1's route",
        )
        for node in guarded.nodes:
            for path in ENDPOINTS:
                status, body = http_get(LOOPBACK, node.http_port, path, timeout=3)
                assert status == 200, (node.name, node.impl, path, body[:300])
        shown = {}
        for name in ("X1", "X2"):
            conns = guarded.node(name).get("/connz?subs=1")["connections"]
            shown[name] = sorted(
                s for c in conns if c.get("name") == "\ufffd\ufffd" for s in c["subscriptions_list"]
            )
        assert shown["X1"] == shown["X2"] == ["q.\ufffd", "\ufffd\ufffd.bad"], shown
    finally:
        for peer in hostile:
            peer.close()


def test_no_tracebacks_logged(guarded: Topology) -> None:
    """Everything above was refused by design, never by an exception."""
    for node in guarded.nodes:
        if node.impl == SC:
            log = node.log()
            at = log.find("Traceback")
            assert at < 0, log[max(at - 500, 0) : at + 2500]


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
    # they keep dialling: once each has failed once more, no link may have formed meanwhile
    for node, pattern in patterns:
        seen = len(re.findall(pattern, node.log()))
        wait_for(
            lambda node=node, pattern=pattern, seen=seen: (
                len(re.findall(pattern, node.log())) > seen
            ),
            30,
            0.1,
            f"{node.name} ({node.impl}) to fail gateway 'Z' again",
        )
    for node in (p, r, q):
        gwz = node.get("/gatewayz")
        assert not gwz["outbound_gateways"], (node.name, gwz["outbound_gateways"])
        assert not gwz["inbound_gateways"], (node.name, gwz["inbound_gateways"])
    assert q.proc is not None and q.proc.alive()


# --- links we dial: the listener is not trusted before its INFO -----------------------------
#
# nats-server reads whatever the listener it dialled sends, messages included, before that
# listener's INFO. A listening nats-server sends its INFO first and nothing else before it, so
# scserver reads only INFO, PING, PONG, +OK and -ERR there: anything else (messages, interest,
# garbage) drops the link at its first byte, with nothing buffered.


class FakeListener:
    """A raw TCP listener that the server under test dials as a route or gateway.

    Each accepted connection runs ``behave(conn)`` (set by the test) in a thread and queues what
    it returns in ``results``; with no ``behave`` a connection is closed at once.
    """

    def __init__(self) -> None:
        import queue
        import threading

        self.sock = socket.create_server((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.behave = None
        self.results: queue.Queue = queue.Queue()
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        import threading

        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            behave = self.behave
            if behave is None:
                conn.close()
                continue
            threading.Thread(target=self._run, args=(behave, conn), daemon=True).start()

    def _run(self, behave, conn: socket.socket) -> None:
        try:
            self.results.put(behave(conn))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self.results.put(exc)
        finally:
            conn.close()

    def next_result(self, timeout: float = 15.0):
        """What ``behave`` returned for the next connection the server made."""
        result = self.results.get(timeout=timeout)
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        self.stopped = True
        self.thread.join()
        self.sock.close()


def closed_by_dialler(conn: socket.socket, timeout: float = 5.0) -> bool:
    """Read until EOF or reset; True when the dialler closed the link within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not conn.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


@pytest.fixture(scope="module")
def dialler():
    """An scserver D1 that dials one fake route listener and one fake gateway listener "F"."""
    from tests.tools import ServerProcess, free_ports, require_binary, scserver_command

    route, gateway = FakeListener(), FakeListener()
    port, http, cluster, gw = free_ports(4)
    config = "\n".join(
        [
            "server_name: D1",
            f'listen: "{LOOPBACK}:{port}"',
            f'http: "{LOOPBACK}:{http}"',
            "cluster {",
            "  name: D",
            f'  listen: "{LOOPBACK}:{cluster}"',
            f'  routes: ["nats-route://{LOOPBACK}:{route.port}"]',
            "}",
            "gateway {",
            "  name: D",
            f'  listen: "{LOOPBACK}:{gw}"',
            f'  gateways: [{{name: "F", urls: ["nats://{LOOPBACK}:{gateway.port}"]}}]',
            "}",
        ]
    )
    cmd = list(require_binary(scserver_command(), "scserver not found"))
    proc = ServerProcess(cmd, config=config, name="D1", port=port, http_port=http)
    proc.start(timeout=20)
    try:
        yield proc, {"route": route, "gateway": gateway}
    finally:
        proc.stop()
        route.close()
        gateway.close()


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def hostile(first: bytes, then: bytes = b"", megabytes: int = 0):
    """A listener that sends ``first`` (and then ``then`` for ``megabytes``) instead of its
    INFO; returns whether the dialler closed the link."""

    def behave(conn: socket.socket) -> bool:
        conn.settimeout(5)
        try:
            conn.sendall(first)
            for _ in range(megabytes * (1 << 20) // max(len(then), 1)):
                conn.sendall(then)
        except OSError:
            pass  # the dialler stopped taking bytes: what we want
        return closed_by_dialler(conn)

    return behave


HOSTILE_LISTENERS = {
    "rmsg-flood": (b"RMSG $G foo 99999999\r\n", b"x" * 65536, 16),
    "rmsg-small": (b'RMSG $G foo 2\r\nhi\r\nINFO {"server_id":"NFAKE"}\r\n', b"", 0),
    "interest-flood": (b"RS+ $G foo.bar\r\n" * 4096, b"RS+ $G foo.baz\r\n" * 4096, 8),
    "connect": (b'CONNECT {"verbose":false}\r\n', b"", 0),
    "binary": (TLS_HELLO, b"\x00\xff" * 32768, 8),
}


@pytest.mark.parametrize("kind", ["route", "gateway"])
@pytest.mark.parametrize("case", sorted(HOSTILE_LISTENERS))
def test_dialled_listener_must_send_info_first(dialler, kind: str, case: str) -> None:
    """The listener we dialled floods messages, interest or garbage instead of its INFO: the
    link is dropped at the first byte (logged with the listener's address), memory does not
    grow with what it sends, and clients are still served."""
    proc, fakes = dialler
    fake = fakes[kind]
    first, then, megabytes = HOSTILE_LISTENERS[case]
    pinger = Pinger(proc.port)
    before = proc_rss_mb(proc.pid)
    fake.behave = hostile(first, then, megabytes)
    try:
        assert fake.next_result() is True, f"{kind} link kept open after {case}"
    finally:
        fake.behave = None
    pinger.ping()
    growth = proc_rss_mb(proc.pid) - before
    assert growth < 30, f"RSS grew by {growth:.1f} MB"
    word = "Route" if kind == "route" else "Gateway"
    pattern = re.compile(
        rf"\[ERR\] {LOOPBACK}:{fake.port} .*{word} protocol error: Protocol operation before INFO"
    )
    wait_for(lambda: pattern.search(proc.log_text()) is not None, 5, 0.05, pattern.pattern)
    pinger.peer.close()


def test_gossiped_gateway_urls_are_capped(dialler) -> None:
    """The gateway listener we dialled is a genuine-looking peer that lists 1,100 URLs for its
    cluster in each of ten INFOs (each replaces the last, as nats-server's ``updateURLs``, so
    the list cannot grow by repetition either): D1 keeps 1,024 and logs the cap once."""
    import json

    from scserver.gossip_limits import MAX_URLS_PER_REMOTE

    proc, fakes = dialler
    fake = fakes["gateway"]
    base = {"server_id": "NFAKEGW", "gateway": "F", "port": fake.port, "headers": True}

    def info(batch: int) -> bytes:
        # Distinct URL strings that all lead back to the fake listener.
        urls = [f"nats://u{batch}x{i}@{LOOPBACK}:{fake.port}" for i in range(1100)]
        return b"INFO " + json.dumps(dict(base, gateway_urls=urls)).encode() + b"\r\n"

    def behave(conn: socket.socket) -> bytes:
        conn.settimeout(5)
        conn.sendall(info(0))
        got = b""
        while b"CONNECT " not in got or b"INFO " not in got:
            got += conn.recv(65536)
        for batch in range(1, 10):
            conn.sendall(info(batch))
        conn.sendall(b"PING\r\n")
        while b"PONG\r\n" not in got:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

    fake.behave = behave
    try:
        assert b"PONG\r\n" in fake.next_result()
    finally:
        fake.behave = None
    lines = [line for line in proc.log_text().splitlines() if "reached the cap" in line]
    assert len(lines) == 1, lines
    assert "'F'" in lines[0] and str(MAX_URLS_PER_REMOTE) in lines[0], lines


def test_dialler_logged_no_tracebacks(dialler) -> None:
    proc, _ = dialler
    log = proc.log_text()
    at = log.find("Traceback")
    assert at < 0, log[max(at - 500, 0) : at + 2500]

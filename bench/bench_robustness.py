"""Robustness under hostile or stuck peers: scserver and nats-server side by side (issue 9 item 7).

Usage::

    python -m bench.bench_robustness [--impl nats-server|scserver] [--keep-logs]

Both servers run in one invocation, one after the other, each as a seed-shaped supercluster
(``east`` and ``west``: one server per cluster joined by gateways, ``include sys.conf`` where only
``$SYS`` has users, like examples/seed/; plus a cluster port so routes can be probed) on free
loopback ports. The same checks run against each and are printed as one Markdown table with the
ratio scserver / nats-server for numeric rows (lower is better for times and memory, higher for
throughput):

1. reload: an anonymous nats-py client on east, then SIGHUP, then an edit of the included
   ``sys.conf`` (+ SIGHUP, which scserver's file watcher would also catch): client kept?
2. stuck consumer: a subscriber that never reads its socket while a load generator publishes
   10k msgs/s of 1 KiB on its subject; p99 latency and throughput of an unrelated subject vs a
   baseline with the same load but no stuck subscriber; the same across the gateway (publisher
   on east, subscribers -- stuck and probe -- on west).
3. pre-auth flood: 8 unauthenticated connections to east's gateway port, each sending
   ``RMSG $G foo 99999999999`` and then streaming; the server's RSS growth (/proc) and the
   worst PING round trip of a normal client meanwhile.
4. hostile input: ``CONNECT`` nested 3000 deep on the client, route and gateway ports, a route
   INFO gossip with ``"gateway_urls":7``, ``SUB \\xff\\xfe.bad 1``; tracebacks (or Go panics) in
   the server log and the HTTP status of /connz?subs=1 and /subsz?subs=1.
5. subscription flood: 200k SUBs on one connection while another client makes requests:
   worst request RTT and request timeouts (1 s).

Everything is bounded in time (the whole run takes well under 3 minutes), uses loopback only,
and stops every process it starts. JSON goes to ``bench/results/robustness-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from tests.tools import LOOPBACK, free_ports, http_get

from bench.servers import (
    Implementation,
    RunningTopology,
    Topology,
    Unavailable,
    implementations,
    start_topology,
    supercluster_topology,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The load generator runs in its own process so its pacing does not share our GIL.
LOADGEN = r"""
import socket, sys, time
host, port, subject, rate, size, seconds = sys.argv[1:7]
rate, size, seconds = int(rate), int(size), float(seconds)
s = socket.create_connection((host, int(port)))
s.recv(65536)
s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"loadgen"}\r\n')
line = b"PUB " + subject.encode() + b" %d\r\n" % size + b"x" * size + b"\r\n"
tick = 0.01
batch = line * max(1, int(rate * tick))
end = time.monotonic() + seconds
nxt = time.monotonic()
s.setblocking(True)
sent = 0
start = time.monotonic()
while time.monotonic() < end:
    s.sendall(batch)
    sent += len(batch) // len(line)
    nxt += tick
    if int((nxt - start) * 100) % 50 == 0:
        print(sent, round(time.monotonic() - start, 3), flush=True)
    delay = nxt - time.monotonic()
    if delay > 0:
        time.sleep(delay)
s.close()
"""

# 200k SUBs on one connection, from its own process; prints the seconds until the PONG.
SUBFLOOD = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.recv(65536)
s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"subflood"}\r\n')
t0 = time.monotonic()
n = int(sys.argv[3])
for base in range(0, n, 5000):
    s.sendall(b"".join(b"SUB bench.flood.%d %d\r\n" % (i, i) for i in range(base, min(n, base + 5000))))
s.sendall(b"PING\r\n")
buf = b""
s.settimeout(60)
while b"PONG" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(round(time.monotonic() - t0, 3) if b"PONG" in buf else "no PONG", flush=True)
s.close()
"""


class CheckError(Exception):
    """A check could not be measured (server gone, client could not connect)."""


@dataclass
class Row:
    """One line of the table: a key, a label, whether numbers are better high or low."""

    key: str
    label: str
    better: str = ""  # "low", "high" or "" (not a number)


ROWS: list[Row] = [
    Row("reload_sighup_kept", "seed config: anonymous client kept after SIGHUP"),
    Row("reload_edit_kept", "seed config: client kept after editing included sys.conf (+SIGHUP)"),
    Row("stuck_base_p99_ms", "stuck consumer: probe p99 ms, baseline (load, no stuck sub)", "low"),
    Row("stuck_p99_ms", "stuck consumer: probe p99 ms, with stuck sub", "low"),
    Row("stuck_base_tput", "stuck consumer: probe msgs/s, baseline", "high"),
    Row("stuck_tput", "stuck consumer: probe msgs/s, with stuck sub", "high"),
    Row("stuck_load_rate", "stuck consumer: load generator msgs/s achieved (target 10k)"),
    Row("stuck_slow", "stuck consumer: slow consumers cut off during the probe (/varz)"),
    Row("gw_stuck_base_p99_ms", "stuck consumer across gateway: east→west p99 ms, baseline", "low"),
    Row("gw_stuck_p99_ms", "stuck consumer across gateway: east→west p99 ms, stuck sub", "low"),
    Row("gw_stuck_load_rate", "stuck consumer across gateway: load msgs/s achieved"),
    Row("gw_stuck_slow", "stuck consumer across gateway: slow consumers cut off (west /varz)"),
    Row("gw_stuck_lost", "stuck consumer across gateway: probe msgs lost (of 300)", "low"),
    Row("flood_rss_mib", "8 pre-auth `RMSG $G foo 99999999999` floods: RSS growth MiB", "low"),
    Row("flood_ping_max_ms", "8 pre-auth floods: other client's worst PING ms", "low"),
    Row("flood_bytes_mib", "8 pre-auth floods: MiB the flooders got to send", "low"),
    Row("hostile_tracebacks", "deep CONNECT ×3 ports, gateway_urls:7, bad SUB: tracebacks/panics"),
    Row("hostile_alive", "hostile input: server still answers PING"),
    Row("connz_status", "hostile input: /connz?subs=1 HTTP status"),
    Row("subsz_status", "hostile input: /subsz?subs=1 HTTP status"),
    Row("subs_flood_s", "200k SUBs on one connection: seconds until PONG", "low"),
    Row("subs_req_max_ms", "200k SUBs: other client's worst request RTT ms", "low"),
    Row("subs_req_timeouts", "200k SUBs: request timeouts (1 s)", "low"),
]


# --------------------------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------------------------


def robustness_topology() -> tuple[Topology, dict[str, int]]:
    """The seed's east/west supercluster with sys.conf, plus a cluster (route) port per node."""
    topo = supercluster_topology(system_account=True)
    route_ports = dict(zip([n.name for n in topo.nodes], free_ports(len(topo.nodes)), strict=True))
    for node in topo.nodes:
        node.config += (
            f'cluster: {{\n  name: {node.name},\n  host: "{LOOPBACK}",\n'
            f"  port: {route_ports[node.name]}\n}}\n"
        )
    return topo, route_ports


# --------------------------------------------------------------------------------------------
# raw socket helpers
# --------------------------------------------------------------------------------------------


def raw_client(port: int, lines: bytes, rcvbuf: int | None = None) -> socket.socket:
    """A bare connection that sends ``lines`` after reading INFO and waits for its PONG."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((LOOPBACK, port))
    s.recv(65536)
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + lines + b"PING\r\n")
    _read_until(s, b"PONG\r\n", 5)
    return s


def _read_until(s: socket.socket, needle: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        if time.monotonic() > deadline:
            raise CheckError(f"no {needle!r} within {timeout}s (got {buf[-200:]!r})")
        s.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            raise CheckError(f"closed before {needle!r} (got {buf[-200:]!r})")
        buf += chunk
    return buf


def hostile(port: int, payload: bytes, wait: float = 0.5) -> bytes:
    """Send ``payload`` to ``port`` and return whatever comes back within ``wait`` seconds."""
    got = b""
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=2) as s:
        s.sendall(payload)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
    return got


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


class Checks:
    """Every check against one running topology."""

    def __init__(self, running: RunningTopology, route_ports: dict[str, int]) -> None:
        self.running = running
        self.topo = running.topology
        self.route_ports = route_ports
        self.east = self.topo.node("east")
        self.west = self.topo.node("west")
        self.proc = running.procs["east"]
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []

    async def connect(self, node: Any, **kw: Any) -> Any:
        return await nats.connect(
            node.url, connect_timeout=3, max_reconnect_attempts=3, reconnect_time_wait=0.5, **kw
        )

    # 1 -- reload keeps the anonymous client ---------------------------------------------------

    async def reload(self) -> None:
        events: list[str] = []

        async def disconnected() -> None:
            events.append("disconnected")

        async def on_error(exc: Exception) -> None:
            events.append(f"error: {exc}")

        nc = await self.connect(self.east, disconnected_cb=disconnected, error_cb=on_error)
        try:
            await nc.flush(timeout=2)
            self.proc.signal(signal.SIGHUP)
            await asyncio.sleep(1.5)
            self.results["reload_sighup_kept"] = await self._kept(nc, events)
            sys_conf = self.proc.workdir / "sys.conf"
            sys_conf.write_text(sys_conf.read_text() + "# edited by bench_robustness\n")
            self.proc.signal(signal.SIGHUP)
            await asyncio.sleep(2.0)  # scserver's watcher also looks once a second
            self.results["reload_edit_kept"] = await self._kept(nc, events)
            if events:
                self.notes.append(f"reload: client saw {events[:3]}")
        finally:
            await nc.close()

    async def _kept(self, nc: Any, events: list[str]) -> str:
        try:
            await nc.flush(timeout=2)
        except Exception:  # noqa: BLE001 - any failure means the client was not kept
            return "no"
        return "no" if any(e == "disconnected" for e in events) else "yes"

    # 2 -- stuck consumer -------------------------------------------------------------------------

    async def probe(self, pub_node: Any, sub_node: Any, tag: str) -> tuple[float, float, int]:
        """p99 latency (ms) of 300 paced messages, throughput (msgs/s) of 20k, lost count."""
        pub = await self.connect(pub_node)
        sub = await self.connect(sub_node)
        try:
            lat: list[float] = []
            done = asyncio.Event()
            subject = f"probe.{tag}.lat"

            async def on_lat(msg: Any) -> None:
                if msg.data != b"warm":
                    lat.append(time.perf_counter() - float(msg.data))

            await sub.subscribe(subject, cb=on_lat)
            await sub.flush()
            await self._interest(pub, sub, subject)
            n = 300
            for _ in range(n):
                await pub.publish(subject, repr(time.perf_counter()).encode())
                await asyncio.sleep(0.003)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._until(lambda: len(lat) >= n), 3)
            lost = n - len(lat)
            p99 = _pct(lat, 99) * 1000 if lat else float("nan")

            total = 20000
            got = [0, 0.0]
            tsubject = f"probe.{tag}.tput"

            async def on_tput(msg: Any) -> None:
                got[0] += 1
                got[1] = time.perf_counter()
                if got[0] >= total:
                    done.set()

            await sub.subscribe(tsubject, cb=on_tput)
            await sub.flush()
            await self._interest(pub, sub, tsubject)
            got[0] = 0
            body = b"y" * 128
            start = time.perf_counter()
            for _ in range(total):
                await pub.publish(tsubject, body)
            await pub.flush(timeout=5)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), 5)
            end = got[1] if got[0] >= total else time.perf_counter()
            tput = got[0] / max(end - start, 1e-6)
            return p99, tput, lost
        finally:
            await pub.close()
            await sub.close()

    async def _interest(self, pub: Any, sub: Any, subject: str) -> None:
        """Across a gateway interest takes a moment: publish until one message arrives."""
        seen = asyncio.Event()

        async def on_warm(msg: Any) -> None:
            seen.set()

        s = await sub.subscribe(subject + ".warm", cb=on_warm)
        await sub.flush()
        for _ in range(50):
            await pub.publish(subject + ".warm", b"warm")
            await pub.flush()
            try:
                await asyncio.wait_for(seen.wait(), 0.1)
                break
            except TimeoutError:
                continue
        await s.unsubscribe()

    @staticmethod
    async def _until(pred: Callable[[], bool]) -> None:
        while not pred():
            await asyncio.sleep(0.01)

    def loadgen(self, node: Any, subject: str, seconds: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", LOADGEN, LOOPBACK, str(node.port), subject, "10000", "1024"]
            + [str(seconds)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def varz(self, node: Any, key: str) -> Any:
        status, body = http_get(LOOPBACK, node.http_port, "/varz", 2.0)
        return json.loads(body).get(key) if status == 200 else None

    async def stuck(self, gateway: bool) -> None:
        pub_node = self.east
        sub_node = self.west if gateway else self.east
        prefix = "gw_" if gateway else ""
        for with_stuck in (False, True):
            subject = f"stuck.{prefix}{int(with_stuck)}"
            sock = None
            if with_stuck:
                sock = raw_client(sub_node.port, f"SUB {subject} 1\r\n".encode(), rcvbuf=4096)
                await asyncio.sleep(0.3 if not gateway else 0.6)  # interest reaches east
            slow_before = await asyncio.to_thread(self.varz, sub_node, "slow_consumers")
            gen = self.loadgen(pub_node, subject, 8.0)
            try:
                await asyncio.sleep(1.5)  # the stuck subscriber's buffers fill up
                if gen.poll() is not None:
                    raise CheckError("load generator exited early")
                p99, tput, lost = await self.probe(pub_node, sub_node, f"{prefix}{with_stuck}")
            finally:
                gen.kill()
                out = gen.communicate()[0].split()
                if sock is not None:
                    sock.close()
            if with_stuck:
                # How hard the stuck subscriber was pushed, and whether it was cut off meanwhile.
                rate = int(out[-2]) / float(out[-1]) if len(out) >= 2 and float(out[-1]) else 0
                self.results[f"{prefix}stuck_load_rate"] = round(rate)
                slow_after = await asyncio.to_thread(self.varz, sub_node, "slow_consumers")
                if isinstance(slow_before, int) and isinstance(slow_after, int):
                    self.results[f"{prefix}stuck_slow"] = slow_after - slow_before
            key = "stuck" if with_stuck else "stuck_base"
            self.results[f"{prefix}{key}_p99_ms"] = round(p99, 2)
            if not gateway:
                self.results[f"{key}_tput"] = round(tput)
            elif with_stuck:
                self.results["gw_stuck_lost"] = lost
            await asyncio.sleep(0.3)

    # 3 -- pre-auth flood on the gateway port -----------------------------------------------------

    async def flood(self) -> None:
        pid = self.proc.pid
        assert pid is not None and self.east.gateway_port is not None
        before = rss_bytes(pid)
        peak = before
        stop = threading.Event()
        sent = [0] * 8

        def stream(i: int) -> None:
            with contextlib.suppress(OSError):
                s = socket.create_connection((LOOPBACK, self.east.gateway_port), timeout=2)
                with s:
                    s.settimeout(2)
                    s.sendall(b"RMSG $G foo 99999999999\r\n")
                    chunk = b"x" * 65536
                    while not stop.is_set():
                        s.sendall(chunk)
                        sent[i] += len(chunk)

        threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(8)]
        nc = await self.connect(self.east)
        pings: list[float] = []
        try:
            for t in threads:
                t.start()
            end = time.monotonic() + 4.0
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    await nc.flush(timeout=3)
                    pings.append(time.perf_counter() - t0)
                except Exception:  # noqa: BLE001 - a lost PING counts as the timeout
                    pings.append(3.0)
                peak = max(peak, rss_bytes(pid))
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await nc.close()
            for t in threads:
                t.join(timeout=3)
        self.results["flood_rss_mib"] = round((peak - before) / 2**20, 1)
        self.results["flood_ping_max_ms"] = round(max(pings) * 1000, 1) if pings else None
        self.results["flood_bytes_mib"] = round(sum(sent) / 2**20, 1)

    # 4 -- hostile input ------------------------------------------------------------------------

    async def hostile_input(self) -> None:
        deep = b"CONNECT " + b"[" * 3000 + b"\r\nPING\r\n"
        route_port = self.route_ports["east"]
        gw_port = self.east.gateway_port
        assert gw_port is not None
        await asyncio.to_thread(hostile, self.east.port, deep)
        await asyncio.to_thread(hostile, route_port, deep)
        await asyncio.to_thread(hostile, gw_port, deep)
        # A route that passes CONNECT, then gossips an INFO with a non-list gateway_urls.
        connect = json.dumps(
            {"verbose": False, "pedantic": False, "name": "NBENCHROUTE", "cluster": "east"}
            | {"headers": True, "protocol": 1, "tls_required": False}
        ).encode()
        info = json.dumps(
            {"server_id": "NBENCHROUTE", "server_name": "bench-route", "cluster": "east"}
            | {"headers": True, "port": 1, "proto": 1}
        ).encode()
        gossip = b'{"server_id":"NBENCHROUTE","gateway":"west","gateway_urls":7}'
        await asyncio.to_thread(
            hostile,
            route_port,
            b"CONNECT " + connect + b"\r\nINFO " + info + b"\r\nPING\r\nINFO " + gossip + b"\r\n",
            1.0,
        )
        bad = socket.create_connection((LOOPBACK, self.east.port), timeout=3)
        try:
            bad.recv(65536)
            bad.sendall(b'CONNECT {"verbose":false}\r\nSUB \xff\xfe.bad 1\r\nPING\r\n')
            with contextlib.suppress(CheckError, OSError):
                _read_until(bad, b"PONG\r\n", 2)
            for key, path in (("connz_status", "/connz?subs=1"), ("subsz_status", "/subsz?subs=1")):
                try:
                    status, _ = await asyncio.to_thread(
                        http_get, LOOPBACK, self.east.http_port, path, 3.0
                    )
                except OSError as exc:
                    status = f"error: {exc}"
                self.results[key] = status
        finally:
            bad.close()
        await asyncio.sleep(0.3)
        try:
            nc = await self.connect(self.east)
            await nc.flush(timeout=2)
            await nc.close()
            self.results["hostile_alive"] = "yes"
        except Exception:  # noqa: BLE001 - any failure means the server is not answering
            self.results["hostile_alive"] = "no"

    # 5 -- subscription flood ---------------------------------------------------------------------

    async def subs_flood(self) -> None:
        responder = await self.connect(self.east)
        requester = await self.connect(self.east)

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("bench.svc", cb=echo)
        await responder.flush()
        rtts: list[float] = []
        timeouts = 0
        flood: subprocess.Popen[str] | None = None
        try:
            for _ in range(3):  # warm up
                await requester.request("bench.svc", b"x", timeout=1)
            flood = subprocess.Popen(
                [sys.executable, "-c", SUBFLOOD, LOOPBACK, str(self.east.port), "200000"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            deadline = time.monotonic() + 60
            tail_end: float | None = None
            while time.monotonic() < deadline:
                if flood.poll() is not None and tail_end is None:
                    tail_end = time.monotonic() + 1.0  # the close (200k unsubs) as well
                if tail_end is not None and time.monotonic() > tail_end:
                    break
                t0 = time.perf_counter()
                try:
                    await requester.request("bench.svc", b"x", timeout=1)
                    rtts.append(time.perf_counter() - t0)
                except Exception:  # noqa: BLE001 - timeouts and no-responders both count
                    timeouts += 1
                await asyncio.sleep(0.02)
        finally:
            out = ""
            if flood is not None:
                if flood.poll() is None:
                    flood.kill()
                out = (flood.communicate()[0] or "").strip()
            await requester.close()
            await responder.close()
        try:
            self.results["subs_flood_s"] = float(out)
        except ValueError:
            self.results["subs_flood_s"] = out or "no PONG"
        self.results["subs_req_max_ms"] = round(max(rtts) * 1000, 1) if rtts else None
        self.results["subs_req_timeouts"] = timeouts

    # -- all -------------------------------------------------------------------------------------

    async def run_all(self) -> None:
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("reload", self.reload),
            ("stuck", lambda: self.stuck(gateway=False)),
            ("stuck across gateway", lambda: self.stuck(gateway=True)),
            ("pre-auth flood", self.flood),
            ("hostile input", self.hostile_input),
            ("subscription flood", self.subs_flood),
        ]
        for name, step in steps:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(step(), 75)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next check
                self.notes.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
            print(f"    {name}: {time.monotonic() - t0:.1f}s", file=sys.stderr)
        log = self.proc.log_text() + self.running.procs["west"].log_text()
        self.results["hostile_tracebacks"] = log.count("Traceback") + log.count("panic:")


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str
    reason: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_impl(impl: Implementation, keep_logs: bool) -> Outcome:
    t0 = time.monotonic()
    print(f"== {impl.name}", file=sys.stderr)
    topo, route_ports = robustness_topology()
    workdir = Path(tempfile.mkdtemp(prefix=f"scrobust-{impl.name}-"))
    try:
        running = start_topology(impl, topo, workdir)
    except Unavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return Outcome("unavailable", str(exc))
    checks = Checks(running, route_ports)
    try:
        asyncio.run(checks.run_all())
    finally:
        running.stop()
        if keep_logs:
            print(f"   logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return Outcome("ok", results=checks.results, notes=checks.notes, seconds=time.monotonic() - t0)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(outcomes: dict[str, Outcome]) -> str:
    ref, cand = "nats-server", "scserver"
    lines = [
        f"| check | {ref} | {cand} | ratio |",
        "|---|---:|---:|---:|",
    ]
    for row in ROWS:
        vals = []
        for name in (ref, cand):
            o = outcomes.get(name)
            if o is None:
                vals.append("not run")
            elif o.status != "ok":
                vals.append("unavailable")
            else:
                vals.append(o.results.get(row.key, "error"))
        ratio = ""
        a, b = vals
        if row.better and isinstance(a, int | float) and isinstance(b, int | float) and a:
            ratio = f"{b / a:.2f}"
        lines.append(f"| {row.label} | {_fmt(a)} | {_fmt(b)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--impl", choices=["nats-server", "scserver"], help="run only this one")
    ap.add_argument("--keep-logs", action="store_true", help="keep server configs and logs")
    args = ap.parse_args(argv)
    outcomes: dict[str, Outcome] = {}
    started = time.monotonic()
    for impl in implementations():
        if args.impl and impl.name != args.impl:
            continue
        outcomes[impl.name] = run_impl(impl, args.keep_logs)
    print(table(outcomes))
    for name, o in outcomes.items():
        if o.status != "ok":
            print(f"\n{name}: {o.status}: {o.reason}")
        for note in o.notes:
            print(f"\n{name}: {note}")
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host_cpus": os.cpu_count(),
        "outcomes": {
            k: {"status": o.status, "reason": o.reason, "results": o.results, "notes": o.notes}
            | {"seconds": round(o.seconds, 1)}
            for k, o in outcomes.items()
        },
    }
    (RESULTS_DIR / "robustness-latest.json").write_text(json.dumps(doc, indent=2))
    ref = outcomes.get("nats-server")
    return 0 if ref is None or ref.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

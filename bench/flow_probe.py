"""Robustness probe: what one misbehaving client costs everybody else (issue 9 items 2 and 5).

For each implementation (nats-server, then scserver) in the same run:

* ``stuck``: a subscriber that never reads its socket is fed 10k msgs/s of 1 KiB; meanwhile an
  unrelated subject's pub→sub latency (p50/p99) and an unrelated publisher's throughput are
  measured, on one server (``single``) and across a gateway (``gateway``: publishers on east,
  subscribers and the stuck consumer on west). Throughput is compared with the same
  measurement without the stuck consumer.
* ``subs200k``: one connection sends 200k SUBs in a burst while another client makes requests
  (RTT max, timeouts).
* ``flood1mb``: one connection publishes 1 MB payloads as fast as it can while another client
  makes requests (RTT max, timeouts).

Both loads run in a child process, so they do not compete with the prober for the GIL.

Usage: ``.venv/bin/python -m bench.flow_probe [--only stuck,subs200k,flood1mb] [--impl scserver]``.
Numbers are printed as a Markdown table; targets: p99 < 5 ms, throughput >= 90 % of baseline,
RTT < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import nats  # noqa: E402
from tests.tools import LOOPBACK  # noqa: E402

from bench.servers import (  # noqa: E402
    Implementation,
    implementations,
    single_topology,
    start_topology,
    supercluster_topology,
)

PAYLOAD = b"x" * 1024


class StuckConsumer:
    """A raw client that subscribes and then never reads its socket."""

    def __init__(self, port: int, subject: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((LOOPBACK, port))
        self.sock.settimeout(5)
        buf = b""
        while b"\r\n" not in buf:
            buf += self.sock.recv(4096)
        self.sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB %b 1\r\nPING\r\n' % subject.encode()
        )
        buf = b""
        while b"PONG" not in buf:
            buf += self.sock.recv(4096)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


async def _stuck_feeder(url: str, subject: str, stop: asyncio.Event) -> None:
    """10k msgs/s of 1 KiB on ``subject`` (100 every 10 ms)."""
    nc = await nats.connect(url, allow_reconnect=False, pending_size=64 * 1024 * 1024)
    try:
        nxt = time.monotonic()
        while not stop.is_set():
            for _ in range(100):
                await nc.publish(subject, PAYLOAD)
            nxt += 0.01
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
    except Exception:  # noqa: BLE001 - the server may cut us; the probe goes on
        pass
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _latency(pub_url: str, sub_url: str, seconds: float, rate: int = 500) -> list[float]:
    """One-way pub→sub latencies (ms) on an unrelated subject."""
    sub_nc = await nats.connect(sub_url, allow_reconnect=False)
    pub_nc = await nats.connect(pub_url, allow_reconnect=False)
    lats: list[float] = []

    async def on_msg(msg: Any) -> None:
        (sent,) = struct.unpack("d", msg.data[:8])
        lats.append((time.perf_counter() - sent) * 1000)

    await sub_nc.subscribe("lat.probe", cb=on_msg)
    await sub_nc.flush()
    await asyncio.sleep(0.3)  # interest reaches the other cluster
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await pub_nc.publish("lat.probe", struct.pack("d", time.perf_counter()) + b"y" * 120)
        await pub_nc.flush(timeout=10)
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(0.5)
    await pub_nc.close()
    await sub_nc.close()
    return lats


def _throughput(port: int, sub_port: int, seconds: float) -> float:
    """Messages/s a raw publisher gets through to a raw subscriber on an unrelated subject."""
    sub = socket.create_connection((LOOPBACK, sub_port))
    sub.recv(4096)
    sub.sendall(b'CONNECT {"verbose":false}\r\nSUB thr.probe 1\r\nPING\r\n')
    buf = b""
    while b"PONG" not in buf:
        buf += sub.recv(4096)
    time.sleep(0.3)
    counted = [0]
    done = threading.Event()

    def reader() -> None:
        sub.settimeout(0.5)
        n = 0
        while not done.is_set():
            try:
                data = sub.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                break
            n += data.count(b"MSG thr.probe")
        counted[0] = n

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    pub = socket.create_connection((LOOPBACK, port))
    pub.recv(4096)
    pub.sendall(b'CONNECT {"verbose":false}\r\n')
    chunk = (b"PUB thr.probe 128\r\n" + b"z" * 128 + b"\r\n") * 200
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pub.sendall(chunk)
    pub.sendall(b"PING\r\n")
    pub.settimeout(30)
    buf = b""
    while b"PONG" not in buf:
        buf += pub.recv(65536)
    time.sleep(0.5)
    done.set()
    t.join()
    pub.close()
    sub.close()
    return counted[0] / seconds


async def scenario_stuck(
    impl: Implementation, gateway: bool, seconds: float = 3.0
) -> dict[str, Any]:
    topo = supercluster_topology() if gateway else single_topology()
    with start_topology(impl, topo) as run:
        if gateway:
            pub_node, sub_node = run.topology.node("east"), run.topology.node("west")
        else:
            pub_node = sub_node = run.topology.nodes[0]
        base = await asyncio.to_thread(_throughput, pub_node.port, sub_node.port, seconds)
        stuck = StuckConsumer(sub_node.port, "stuck.subject")
        stop = asyncio.Event()
        feeder = asyncio.create_task(_stuck_feeder(pub_node.url, "stuck.subject", stop))
        await asyncio.sleep(1.0)
        lats = await _latency(pub_node.url, sub_node.url, seconds)
        thr = await asyncio.to_thread(_throughput, pub_node.port, sub_node.port, seconds)
        stop.set()
        await feeder
        stuck.close()
    lats.sort()
    return {
        "p50_ms": statistics.median(lats) if lats else float("nan"),
        "p99_ms": lats[int(len(lats) * 0.99) - 1] if lats else float("nan"),
        "max_ms": lats[-1] if lats else float("nan"),
        "thr_ratio": thr / base if base else float("nan"),
        "base_msgs_s": base,
    }


async def _rtt_watch(url: str, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """Requests to a responder (1 s timeout) and PING round trips, until ``stop``."""
    nc = await nats.connect(url, allow_reconnect=False)
    resp = await nats.connect(url, allow_reconnect=False)

    async def answer(msg: Any) -> None:
        await msg.respond(b"ok")

    await resp.subscribe("svc.probe", cb=answer)
    await resp.flush()
    rtts: list[float] = []
    timeouts = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            await nc.request("svc.probe", b"q", timeout=1.0)
            await nc.flush(timeout=5)
        except Exception:  # noqa: BLE001 - a timeout is what we count
            timeouts += 1
        rtts.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.005)
    out["rtt_max_ms"] = max(rtts) if rtts else float("nan")
    out["rtt_p99_ms"] = sorted(rtts)[int(len(rtts) * 0.99) - 1] if rtts else float("nan")
    out["timeouts"] = timeouts
    out["requests"] = len(rtts)
    await nc.close()
    await resp.close()


def _sub_burst(port: int, n: int) -> float:
    s = socket.create_connection((LOOPBACK, port))
    s.recv(4096)
    data = b'CONNECT {"verbose":false}\r\n' + b"".join(
        b"SUB burst.%d.x %d\r\n" % (i, i) for i in range(n)
    )
    t0 = time.monotonic()
    s.sendall(data + b"PING\r\n")
    s.settimeout(120)
    buf = b""
    while b"PONG" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if b"PING\r\n" in buf:
            s.sendall(b"PONG\r\n")
            buf = buf.replace(b"PING\r\n", b"")
    took = time.monotonic() - t0
    s.close()
    return took


def _flood(port: int, seconds: float) -> int:
    s = socket.create_connection((LOOPBACK, port))
    s.recv(4096)
    s.sendall(b'CONNECT {"verbose":false}\r\n')
    frame = b"PUB flood.big 1000000\r\n" + b"f" * 1_000_000 + b"\r\n"
    n = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        s.sendall(frame)
        n += 1
    s.close()
    return n


async def scenario_burst(impl: Implementation, kind: str) -> dict[str, Any]:
    topo = supercluster_topology()
    out: dict[str, Any] = {}
    with start_topology(impl, topo) as run:
        node = run.topology.node("east")
        stop = asyncio.Event()
        watcher = asyncio.create_task(_rtt_watch(node.url, stop, out))
        await asyncio.sleep(0.5)
        # The load runs in its own process: it must not compete with the prober for the GIL.
        load = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.flow_probe",
            "--load",
            kind,
            "--port",
            str(node.port),
            cwd=_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await load.communicate()
        out["burst_s" if kind == "subs200k" else "frames"] = float(stdout.decode().strip() or "nan")
        await asyncio.sleep(0.5)
        stop.set()
        await watcher
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="stuck,subs200k,flood1mb")
    ap.add_argument("--impl", default="")
    ap.add_argument("--load", default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        result = (
            _sub_burst(args.port, 200_000) if args.load == "subs200k" else _flood(args.port, 3.0)
        )
        print(result)
        return
    only = args.only.split(",")
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for impl in implementations():
        if args.impl and impl.name != args.impl:
            continue
        if "stuck" in only:
            for gw in (False, True):
                name = "stuck/" + ("gateway" if gw else "single")
                r = await scenario_stuck(impl, gw)
                print(impl.name, name, r, file=sys.stderr, flush=True)
                rows.append((impl.name, name, r))
        for kind in ("subs200k", "flood1mb"):
            if kind in only:
                r = await scenario_burst(impl, kind)
                print(impl.name, kind, r, file=sys.stderr, flush=True)
                rows.append((impl.name, kind, r))
    print("| impl | scenario | results |\n|---|---|---|")
    for impl_name, name, r in rows:
        cells = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
        )
        print(f"| {impl_name} | {name} | {cells} |")


if __name__ == "__main__":
    asyncio.run(main())

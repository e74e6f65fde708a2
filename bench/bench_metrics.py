"""What one ``/metrics`` scrape costs scserver, by number of client connections (issue 13).

Usage::

    python -m bench.bench_metrics [--connections 0,1000,5000] [--rounds 30]

The collector reads live state at scrape time (no counters on the message path), so its cost
grows with the connections it walks. Prometheus scrapes every 15-60 s: this measures what that
takes from the server. One scserver on loopback gets N raw client connections (CONNECT, one SUB
and one PUB each); once ``/varz`` counts them all, ``--rounds`` GETs of each endpoint are timed.
The server's own CPU time per GET is read from ``/proc/<pid>/stat`` (utime + stime), which other
load on the machine does not inflate the way wall time is inflated; wall time is printed too.
``/varz`` and ``/connz`` (one 1,024-connection page) are the baseline the exporter would scrape.

Prints a Markdown table; JSON goes to ``bench/results/metrics-latest.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

from tests.tools import (
    LOOPBACK,
    ServerProcess,
    free_ports,
    http_get_json,
    scserver_command,
    wait_for,
)

RESULTS = Path(__file__).resolve().parent / "results"
ENDPOINTS = ("/metrics", "/metrics?connz_detailed=true", "/varz", "/connz?limit=1024")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(url: str, pid: int, rounds: int) -> dict[str, float]:
    """Median wall ms per GET, the server's CPU ms per GET (mean over the rounds), body bytes."""
    walls: list[float] = []
    size = 0
    cpu0 = cpu_seconds(pid)
    for _ in range(rounds):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (loopback)
            size = len(resp.read())
        walls.append(time.perf_counter() - t0)
    cpu = (cpu_seconds(pid) - cpu0) / rounds
    return {"wall_ms": statistics.median(walls) * 1000, "cpu_ms": cpu * 1000, "bytes": size}


def open_clients(socks: list[socket.socket], port: int, count: int) -> None:
    """Grow `socks` to `count` logged-in clients, each with one subscription and one publish."""
    while len(socks) < count:
        s = socket.create_connection((LOOPBACK, port), timeout=10)
        s.recv(4096)  # INFO
        i = len(socks)
        s.sendall(f"CONNECT {{}}\r\nSUB cost.{i} 1\r\nPUB cost.{i} 2\r\nhi\r\nPING\r\n".encode())
        socks.append(s)


def measure(counts: list[int], rounds: int) -> list[dict[str, float]]:
    """One row per connection count, endpoints as columns."""
    command = scserver_command()
    if command is None:
        raise SystemExit("scserver is not runnable here (see tests/tools.scserver_command)")
    port, http = free_ports(2)
    config = f'listen: "{LOOPBACK}:{port}"\nhttp: "{LOOPBACK}:{http}"\nmax_connections: 200000\n'
    rows: list[dict[str, float]] = []
    socks: list[socket.socket] = []
    with ServerProcess(
        command, config=config, name="metrics-cost", port=port, http_port=http
    ) as sp:
        assert sp.proc is not None
        pid = sp.proc.pid
        try:
            for n in counts:
                open_clients(socks, port, n)
                wait_for(
                    lambda n=n: http_get_json(LOOPBACK, http, "/varz")["connections"] >= n,
                    120,
                    0.2,
                    f"{n} connections",
                )
                row: dict[str, float] = {"connections": n}
                for endpoint in ENDPOINTS:
                    got = timed(f"http://{LOOPBACK}:{http}{endpoint}", pid, rounds)
                    row.update({f"{endpoint} {k}": v for k, v in got.items()})
                rows.append(row)
        finally:
            for s in socks:
                s.close()
    return rows


def table(rows: list[dict[str, float]]) -> str:
    """Markdown: server CPU ms per GET for each endpoint, with /metrics wall ms and size."""
    head = ["connections", "/metrics wall ms", "/metrics bytes"]
    head += [f"{e} CPU ms" for e in ENDPOINTS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['connections']:.0f}", f"{r['/metrics wall_ms']:.1f}"]
        cells.append(f"{r['/metrics bytes']:.0f}")
        cells += [f"{r[f'{e} cpu_ms']:.1f}" for e in ENDPOINTS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="0,1000,5000", help="comma-separated counts")
    parser.add_argument("--rounds", type=int, default=30, help="GETs per endpoint and count")
    args = parser.parse_args(argv)
    try:
        counts = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    except ValueError:
        parser.error(f"--connections takes whole numbers: {args.connections!r}")
    if not counts or counts[0] < 0 or args.rounds < 1:
        parser.error("--connections needs counts >= 0 and --rounds at least 1")
    rows = measure(counts, args.rounds)
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metrics-latest.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

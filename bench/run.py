"""Benchmark scserver against the Go nats-server, side by side, with the Go ``nats bench``.

Usage::

    python -m bench.run [--quick] [--only NAME[,NAME...]] [--impl nats-server|scserver]
                        [--robustness]

Both servers are started in the same run, as subprocesses on free loopback ports; each scenario
is measured on one, then the other. Load comes from the Go ``nats`` CLI (``nats bench``, installed
by ``hack/install-natscli.sh`` into ``$SC_CACHE/bin``), so the load generator is not the
bottleneck. Message counts are sized from a short probe run so that each measurement lasts about
``--target-seconds``; ``--repeats`` measurements are taken and their medians reported.

Prints a Markdown table (both servers' figures and the ratio scserver / nats-server) and writes
JSON to ``bench/results/`` (git-ignored). An implementation that is missing, fails to start, or
whose gateways never connect is reported as ``unavailable`` (with the reason) and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as _dt
import fnmatch
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.tools import natscli_binary

from bench.servers import (
    TLS_CA_BY_URL,
    Implementation,
    RunningTopology,
    Topology,
    Unavailable,
    implementations,
    single_accounts_topology,
    single_tls_topology,
    single_topology,
    start_topology,
    supercluster_tls_topology,
    supercluster_topology,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE = "nats-server"
CANDIDATE = "scserver"


class BenchError(Exception):
    """A measurement failed (timeout, lost messages, client error)."""


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One measurement: ``kind`` is ``pubsub`` or ``reqrep``; nodes name topology members.

    For ``pubsub`` the publisher connects to ``pub_node`` and the ``subs`` subscribers to
    ``sub_node``; for ``reqrep`` the requester connects to ``pub_node`` and the responder
    (``nats bench service serve``) to ``sub_node``. ``None`` means the topology's first node.
    """

    name: str
    title: str
    topology: str
    kind: str
    size: int
    subs: int = 1
    pub_node: str | None = None
    sub_node: str | None = None
    #: ``user:password`` of the publisher/requester and of the subscribers/responder, if any.
    pub_creds: str = ""
    sub_creds: str = ""


SCENARIOS: list[Scenario] = [
    Scenario("pubsub_16b", "1 pub → 1 sub, 16 B", "single", "pubsub", 16),
    Scenario("pubsub_1k", "1 pub → 1 sub, 1 KiB", "single", "pubsub", 1024),
    Scenario("fanout10_16b", "1 pub → 10 subs, 16 B", "single", "pubsub", 16, subs=10),
    Scenario("reqrep_128b", "request/reply RTT, 128 B", "single", "reqrep", 128),
    Scenario("tls_pubsub_16b", "TLS client port, 1 pub → 1 sub, 16 B", "single_tls", "pubsub", 16),
    Scenario(
        "tls_pubsub_1k", "TLS client port, 1 pub → 1 sub, 1 KiB", "single_tls", "pubsub", 1024
    ),
    Scenario(
        "tls_reqrep_128b", "TLS client port, request/reply RTT, 128 B", "single_tls", "reqrep", 128
    ),
    Scenario(
        "gw_pubsub_16b",
        "cross-cluster 1 pub (east) → 1 sub (west), 16 B",
        "supercluster",
        "pubsub",
        16,
        pub_node="east",
        sub_node="west",
    ),
    Scenario(
        "gw_reqrep_128b",
        "cross-cluster request (west) → reply (east), 128 B",
        "supercluster",
        "reqrep",
        128,
        pub_node="west",
        sub_node="east",
    ),
    Scenario(
        "gw_tls_pubsub_16b",
        "cross-cluster over mutual-TLS gateways, 1 pub (east) → 1 sub (west), 16 B",
        "supercluster_tls",
        "pubsub",
        16,
        pub_node="east",
        sub_node="west",
    ),
    Scenario(
        "gw_tls_reqrep_128b",
        "cross-cluster over mutual-TLS gateways, request (west) → reply (east), 128 B",
        "supercluster_tls",
        "reqrep",
        128,
        pub_node="west",
        sub_node="east",
    ),
    Scenario(
        "imp_stream_16b",
        "stream import: 1 pub (account SVC) → 1 sub (account CLI), 16 B",
        "single_accounts",
        "pubsub",
        16,
        pub_creds="svc:svc",
        sub_creds="cli:cli",
    ),
    Scenario(
        "imp_reqrep_128b",
        "service import: request (account CLI) → reply (account SVC), 128 B",
        "single_accounts",
        "reqrep",
        128,
        pub_creds="cli:cli",
        sub_creds="svc:svc",
    ),
]

TOPOLOGIES: dict[str, Callable[[], Topology]] = {
    "single": single_topology,
    "single_tls": single_tls_topology,
    "supercluster": supercluster_topology,
    "supercluster_tls": supercluster_tls_topology,
    "single_accounts": single_accounts_topology,
}

# (metric key, label, higher is better)
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "pubsub": [
        ("sub_msgs_per_s", "msgs/s received", True),
        ("pub_msgs_per_s", "msgs/s sent", True),
    ],
    "reqrep": [
        ("p50_us", "RTT p50 µs", False),
        ("p99_us", "RTT p99 µs", False),
        ("req_per_s", "requests/s", True),
    ],
}


@dataclass
class Settings:
    """Run parameters."""

    nats: Path
    quick: bool
    target_seconds: float
    repeats: int
    settle: float

    @classmethod
    def make(cls, nats: Path, quick: bool, target: float | None, repeats: int | None) -> Settings:
        """Defaults: full ≈ 1 s × 3 repeats per measurement; quick ≈ 0.4 s × 1."""
        return cls(
            nats=nats,
            quick=quick,
            target_seconds=target if target is not None else (0.4 if quick else 1.0),
            repeats=repeats if repeats is not None else (1 if quick else 3),
            settle=0.3,
        )


@dataclass
class Outcome:
    """Result of one scenario on one implementation."""

    status: str  # ok | unavailable | error
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    runs: list[dict[str, float]] = field(default_factory=list)
    msgs: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# nats bench drivers
# --------------------------------------------------------------------------------------------


def _nats(settings: Settings, url: str, *args: str) -> list[str]:
    tls = ["--tlsca", TLS_CA_BY_URL[url]] if url in TLS_CA_BY_URL else []
    return [str(settings.nats), "--no-context", "--server", url, *tls, *args]


def _wait_output(
    path: Path, needle: str, count: int, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if text.count(needle) >= count:
            return
        if proc.poll() is not None:
            raise BenchError(f"nats bench exited early ({proc.returncode}): {_tail(text)}")
        if time.monotonic() >= deadline:
            raise BenchError(f"nats bench not ready after {timeout:.0f}s: {_tail(text)}")
        time.sleep(0.02)


def _tail(text: str, n: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise BenchError(f"nats bench wrote no CSV ({path.name})")
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("#"):
        lines[0] = lines[0][1:]
    return list(csv.DictReader(lines))


_RATE_RE = re.compile(r"aggregated stats: ([\d,]+) msgs/sec")


def _aggregate_rate(out: str, rows: list[dict[str, str]]) -> float:
    """Aggregate msgs/s: natscli's 'aggregated stats' line, else the single client's rate."""
    m = _RATE_RE.search(out)
    if m:
        return float(m.group(1).replace(",", ""))
    if len(rows) == 1:
        return float(rows[0]["MsgsPerSec"])
    total = sum(int(r["MsgCount"]) for r in rows)
    return total / max(float(r["DurationSecs"]) for r in rows)


def run_pubsub(
    settings: Settings, pub_url: str, sub_url: str, size: int, subs: int, msgs: int, timeout: float
) -> dict[str, float]:
    """One ``nats bench sub`` (``subs`` clients) + ``nats bench pub`` run of ``msgs`` messages."""
    subject = f"bench.{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="scbench-") as tmp:
        d = Path(tmp)
        sub_log = d / "sub.out"
        common = ["--msgs", str(msgs), "--size", str(size), "--no-progress"]
        with open(sub_log, "wb") as out:
            sub = subprocess.Popen(
                _nats(settings, sub_url, "bench", "sub", subject, "--clients", str(subs), *common)
                + ["--csv", str(d / "sub.csv")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=d,
            )
        try:
            _wait_output(sub_log, "expecting", subs, sub, timeout=10)
            time.sleep(settings.settle)  # "expecting" is logged just before SUB + flush
            start = time.monotonic()
            try:
                pub = subprocess.run(
                    _nats(settings, pub_url, "bench", "pub", subject, *common)
                    + ["--csv", str(d / "pub.csv")],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    cwd=d,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired as exc:
                raise BenchError(
                    f"publisher did not finish {msgs} msgs within {timeout:.0f}s"
                ) from exc
            if pub.returncode != 0:
                raise BenchError(f"nats bench pub failed: {_tail(pub.stdout + pub.stderr)}")
            remaining = max(1.0, timeout - (time.monotonic() - start))
            try:
                sub.wait(timeout=remaining)
            except subprocess.TimeoutExpired as exc:
                raise BenchError(
                    f"subscribers did not receive {msgs} msgs each within {timeout:.0f}s "
                    "(messages dropped?)"
                ) from exc
            sub_out = sub_log.read_text(errors="replace")
            if sub.returncode != 0:
                raise BenchError(f"nats bench sub failed: {_tail(sub_out)}")
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        sub_rows = _read_csv(d / "sub.csv")
        pub_rows = _read_csv(d / "pub.csv")
        return {
            "sub_msgs_per_s": _aggregate_rate(sub_out, sub_rows),
            "pub_msgs_per_s": float(pub_rows[0]["MsgsPerSec"]),
            "duration_s": max(float(r["DurationSecs"]) for r in sub_rows),
        }


def run_reqrep(
    settings: Settings, req_url: str, srv_url: str, size: int, msgs: int, timeout: float
) -> dict[str, float]:
    """``nats bench service serve`` on ``srv_url`` + ``service request`` of ``msgs`` requests."""
    subject = f"bench.svc.{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="scbench-") as tmp:
        d = Path(tmp)
        srv_log = d / "serve.out"
        with open(srv_log, "wb") as out:
            srv = subprocess.Popen(
                _nats(settings, srv_url, "bench", "service", "serve", subject, "--no-progress"),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=d,
            )
        try:
            _wait_output(srv_log, "hit control-c", 1, srv, timeout=10)
            time.sleep(settings.settle)
            argv = _nats(
                settings,
                req_url,
                "bench",
                "service",
                "request",
                subject,
                "--msgs",
                str(msgs),
                "--size",
                str(size),
                "--no-progress",
                "--csv",
                str(d / "req.csv"),
            )
            try:
                req = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    cwd=d,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired as exc:
                raise BenchError(f"{msgs} requests did not finish within {timeout:.0f}s") from exc
            if req.returncode != 0:
                raise BenchError(
                    f"nats bench service request failed: {_tail(req.stdout + req.stderr)}"
                )
        finally:
            srv.terminate()
            try:
                srv.wait(timeout=5)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
        row = _read_csv(d / "req.csv")[0]
        return {
            "p50_us": float(row["P50LatencyMicroSecs"]),
            "p99_us": float(row["P99LatencyMicroSecs"]),
            "req_per_s": float(row["MsgsPerSec"]),
            "duration_s": float(row["DurationSecs"]),
        }


# --------------------------------------------------------------------------------------------
# measuring a scenario
# --------------------------------------------------------------------------------------------


def _measure_once(
    settings: Settings, sc: Scenario, rt: RunningTopology, msgs: int, timeout: float
) -> dict[str, float]:
    pub_url, sub_url = rt.url(sc.pub_node), rt.url(sc.sub_node)
    if sc.pub_creds:
        pub_url = pub_url.replace("://", f"://{sc.pub_creds}@", 1)
    if sc.sub_creds:
        sub_url = sub_url.replace("://", f"://{sc.sub_creds}@", 1)
    if sc.kind == "pubsub":
        return run_pubsub(settings, pub_url, sub_url, sc.size, sc.subs, msgs, timeout)
    return run_reqrep(settings, pub_url, sub_url, sc.size, msgs, timeout)


def measure(settings: Settings, sc: Scenario, rt: RunningTopology) -> Outcome:
    """Probe, size the run to ``target_seconds``, measure ``repeats`` times, take medians."""
    t0 = time.monotonic()
    if sc.kind == "pubsub":
        probe_n, lo, hi = (20_000 if settings.quick else 50_000), 5_000, 5_000_000
    else:
        probe_n, lo, hi = 300, 200, 200_000
    try:
        probe = _retry(lambda: _measure_once(settings, sc, rt, probe_n, timeout=30))
        per_msg = max(probe["duration_s"], 1e-6) / probe_n
        msgs = int(min(hi, max(lo, settings.target_seconds / per_msg)))
        expected = msgs * per_msg
        timeout = max(10.0, 5 * expected + 5)
        runs = [
            _retry(lambda: _measure_once(settings, sc, rt, msgs, timeout))
            for _ in range(settings.repeats)
        ]
    except BenchError as exc:
        return Outcome("error", str(exc), seconds=time.monotonic() - t0)
    keys = [k for k, _, _ in METRICS[sc.kind]]
    medians = {k: statistics.median(r[k] for r in runs) for k in keys}
    return Outcome("ok", metrics=medians, runs=runs, msgs=msgs, seconds=time.monotonic() - t0)


def _retry(fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run ``fn``; on a BenchError try once more (e.g. interest not yet propagated)."""
    try:
        return fn()
    except BenchError:
        time.sleep(0.5)
        return fn()


# --------------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "–"
    if key.endswith("_us"):
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{value:,.0f}"


def markdown_table(results: dict[str, dict[str, Outcome]], impl_names: list[str]) -> str:
    """The results as a Markdown table: one row per scenario metric, ratio last."""
    cols = [*impl_names]
    ratio = REFERENCE in cols and CANDIDATE in cols
    header = ["scenario", "metric", *cols] + ([f"{CANDIDATE}/{REFERENCE}"] if ratio else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []
    for sc in SCENARIOS:
        if sc.name not in results:
            continue
        per_impl = results[sc.name]
        for key, label, _higher in METRICS[sc.kind]:
            row = [f"`{sc.name}` {sc.title}", label]
            for name in cols:
                oc = per_impl.get(name)
                if oc is None:
                    row.append("–")
                elif oc.status != "ok":
                    row.append(oc.status)
                else:
                    row.append(_fmt(oc.metrics.get(key), key))
            if ratio:
                a, b = per_impl.get(CANDIDATE), per_impl.get(REFERENCE)
                if a and b and a.status == "ok" and b.status == "ok" and b.metrics.get(key):
                    row.append(f"{a.metrics[key] / b.metrics[key]:.2f}")
                else:
                    row.append("–")
            lines.append("| " + " | ".join(row) + " |")
        for name in cols:
            oc = per_impl.get(name)
            if oc is not None and oc.status != "ok":
                notes.append(f"- `{sc.name}` on {name}: {oc.status}: {oc.reason}")
    out = "\n".join(lines)
    if notes:
        out += "\n\n" + "\n".join(dict.fromkeys(notes))
    return out


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
    }


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def select_scenarios(only: list[str]) -> list[Scenario]:
    """Scenarios whose name matches one of the (comma-separated, glob) patterns in ``only``."""
    if not only:
        return list(SCENARIOS)
    pats = [p.strip() for item in only for p in item.split(",") if p.strip()]
    chosen = [sc for sc in SCENARIOS if any(fnmatch.fnmatchcase(sc.name, p) for p in pats)]
    if not chosen:
        names = ", ".join(sc.name for sc in SCENARIOS)
        raise SystemExit(f"--only {','.join(pats)} matches no scenario (have: {names})")
    return chosen


def run(
    settings: Settings,
    scenarios: list[Scenario],
    impls: list[Implementation],
    logdir: Path | None = None,
    keep_logs: bool = False,
) -> dict[str, Any]:
    """Run ``scenarios`` on every implementation; return the JSON-able report.

    Server working directories (configs and logs) go under ``logdir``; a topology's directory
    is removed afterwards unless ``keep_logs`` or one of its measurements did not succeed.
    """
    results: dict[str, dict[str, Outcome]] = {sc.name: {} for sc in scenarios}
    started = time.monotonic()
    logdir = logdir or Path(tempfile.mkdtemp(prefix="scbench-"))
    for topo_name in dict.fromkeys(sc.topology for sc in scenarios):
        topo_scenarios = [sc for sc in scenarios if sc.topology == topo_name]
        running: dict[str, RunningTopology] = {}
        restarts = 0
        try:
            for impl in impls:
                _log(f"[{topo_name}] starting {impl.name} ...")
                workdir = logdir / f"{impl.name}-{topo_name}"
                try:
                    running[impl.name] = start_topology(impl, TOPOLOGIES[topo_name](), workdir)
                except Unavailable as exc:
                    _log(f"[{topo_name}] {impl.name} unavailable: {exc} (logs: {workdir})")
                    for sc in topo_scenarios:
                        results[sc.name][impl.name] = Outcome("unavailable", str(exc))
            for sc in topo_scenarios:
                for impl in impls:
                    rt = _latest(running, impl.name)
                    if rt is None:
                        continue
                    dead = [p for p in rt.procs.values() if not p.alive()]
                    oc: Outcome | None = None
                    if dead:
                        # a server died during an earlier scenario: report, restart, go on
                        why = ", ".join(f"{p.name} exited {p.returncode}" for p in dead)
                        _log(f"  {impl.name}: {why} earlier in the run; restarting {topo_name}")
                        rt.stop()
                        restarts += 1
                        workdir = logdir / f"{impl.name}-{topo_name}-restart{restarts}"
                        try:
                            rt = start_topology(impl, TOPOLOGIES[topo_name](), workdir)
                            running[f"{impl.name}#{restarts}"] = rt
                        except Unavailable as exc:
                            oc = Outcome("error", f"server died earlier ({why}); restart: {exc}")
                    if oc is None:
                        oc = measure(settings, sc, rt)
                        dead = [p for p in rt.procs.values() if not p.alive()]
                        if dead and oc.status == "error":
                            tail = " | ".join(dead[0].log_tail(2).splitlines())
                            oc.reason += f" [server {dead[0].name} died: {tail}]"
                    results[sc.name][impl.name] = oc
                    _log(f"  {sc.name:<16} {impl.name:<12} {_summary(sc, oc)}")
        finally:
            for name, rt in running.items():
                died = any(not p.alive() for p in rt.procs.values())
                rt.stop()
                impl_name = name.split("#", 1)[0]
                failed = died or any(
                    results[sc.name].get(impl_name, Outcome("ok")).status != "ok"
                    for sc in topo_scenarios
                )
                if failed or keep_logs:
                    _log(f"[{topo_name}] {name} server logs kept in {rt.workdir}")
                else:
                    shutil.rmtree(rt.workdir, ignore_errors=True)
    return {
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "quick": settings.quick,
            "target_seconds": settings.target_seconds,
            "repeats": settings.repeats,
            "natscli": str(settings.nats),
            "natscli_version": _natscli_version(settings.nats),
        },
        "implementations": {
            i.name: {
                "command": list(i.command or []),
                "version": i.version() if i.available else None,
                "unavailable_reason": i.unavailable_reason,
            }
            for i in impls
        },
        "scenarios": {sc.name: asdict(sc) for sc in scenarios},
        "results": {
            name: {impl: asdict(oc) for impl, oc in per.items()} for name, per in results.items()
        },
        "elapsed_s": round(time.monotonic() - started, 1),
        "_outcomes": results,
    }


def _latest(running: dict[str, RunningTopology], impl: str) -> RunningTopology | None:
    """The most recently started topology of ``impl`` (restarts are keyed ``impl#N``)."""
    found = None
    for key, rt in running.items():
        if key.split("#", 1)[0] == impl:
            found = rt
    return found


def _summary(sc: Scenario, oc: Outcome) -> str:
    if oc.status != "ok":
        return f"{oc.status}: {oc.reason}"
    parts = [f"{label} {_fmt(oc.metrics[k], k)}" for k, label, _ in METRICS[sc.kind]]
    return f"{', '.join(parts)}  ({oc.msgs:,} msgs × {len(oc.runs)}, {oc.seconds:.1f}s)"


def _natscli_version(nats: Path) -> str:
    try:
        out = subprocess.run([str(nats), "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench.run``."""
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs, one repeat (< 1 min)")
    ap.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="scenario name(s)/glob(s)"
    )
    ap.add_argument(
        "--impl", action="append", default=[], choices=[REFERENCE, CANDIDATE], help="limit servers"
    )
    ap.add_argument("--repeats", type=int, help="measurements per scenario (default 3, quick 1)")
    ap.add_argument("--target-seconds", type=float, help="length of one measurement")
    ap.add_argument("--json", type=Path, help="write the JSON report here too")
    ap.add_argument("--keep-logs", action="store_true", help="keep server configs and logs")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument(
        "--robustness",
        action="store_true",
        help="then run the robustness checks too (bench/bench_robustness.py, < 3 min)",
    )
    args = ap.parse_args(argv)

    if args.list:
        for sc in SCENARIOS:
            print(f"{sc.name:<16} {sc.title}")
        return 0
    nats = natscli_binary()
    if nats is None:
        _log("nats CLI not found: run `make natscli` (hack/install-natscli.sh)")
        return 2
    settings = Settings.make(nats, args.quick, args.target_seconds, args.repeats)
    scenarios = select_scenarios(args.only)
    impls = [i for i in implementations() if not args.impl or i.name in args.impl]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logdir = RESULTS_DIR / "logs" / stamp
    report = run(settings, scenarios, impls, logdir, args.keep_logs)
    outcomes = report.pop("_outcomes")
    with contextlib.suppress(OSError):
        logdir.rmdir()  # empty when every topology's logs were removed
        logdir.parent.rmdir()

    table = markdown_table(outcomes, [i.name for i in impls])
    print(f"\n## scserver vs nats-server ({'quick' if settings.quick else 'full'} run)\n")
    print(
        f"Machine: {report['machine']['cpu']} × {report['machine']['cpu_count']}; "
        f"load: nats bench ({report['settings']['natscli_version']}); "
        f"medians of {settings.repeats} run(s) of ~{settings.target_seconds:g}s; "
        "ratio > 1 is better for msgs/s, worse for latency.\n"
    )
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"bench-{stamp}.json"
    text = json.dumps(report, indent=2) + "\n"
    out.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    print(f"\nJSON: {out} (total {report['elapsed_s']}s)")
    ref_ok = all(
        oc.status == "ok" for per in outcomes.values() for n, oc in per.items() if n == REFERENCE
    )
    if args.robustness:
        from bench import bench_robustness

        print("\n## Robustness (bench/bench_robustness.py)\n")
        rob_args = ["--keep-logs"] if args.keep_logs else []
        if len(args.impl) == 1:
            rob_args += ["--impl", args.impl[0]]
        ref_ok = bench_robustness.main(rob_args) == 0 and ref_ok
    return 0 if ref_ok else 1


if __name__ == "__main__":
    sys.exit(main())

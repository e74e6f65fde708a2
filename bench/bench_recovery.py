"""Recovery and reload times: scserver and nats-server side by side (issue 16, item 4).

Usage::

    python -m bench.bench_recovery [--repeats N] [--impl nats-server|scserver]

The functional tests wait for conditions and never assert on elapsed time; the figures they used
to bound live here, measured on both servers (medians of ``--repeats`` runs, default 3) and
printed as one Markdown table with the ratio scserver / nats-server (lower is better):

* ``gateway_restart_ready_s`` / ``gateway_restart_traffic_s`` — west (one server of the seed's
  east/west supercluster) is SIGKILLed and started again on the same ports: seconds until it
  answers ``INFO``, and until a message published on east reaches a subscriber on west
  (tests/cluster/test_gateway_recovery.py).
* ``reload_new_user_s`` — SIGHUP after adding a user: seconds until that user can log in.
* ``lame_duck_info_s`` / ``lame_duck_closed_s`` / ``lame_duck_exit_s`` — SIGUSR2 with a 1 s grace
  period: seconds until a client gets the ``ldm`` INFO, until it is closed, until the process
  exits (tests/server/test_lifecycle.py).
* ``bcrypt_reload_ping_worst_ms`` — a reload re-hashes 16 clients' bcrypt passwords (cost 11):
  the worst PING round trip of another client meanwhile (tests/server/test_reload_links.py).
* ``probe_live_ms`` / ``probe_dead_ms`` — the operator's probe of a server's monitor port
  (healthz, varz, gatewayz), and of a port where nothing listens (tests/operator/test_observe.py;
  the probe timeout is 1 s).

Everything runs on loopback on free ports and stops every process it starts. JSON goes to
``bench/results/recovery-latest.json`` (git-ignored). An implementation that cannot run is
reported as unavailable with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from tests.tools import LOOPBACK, ServerProcess, free_port, free_ports, read_info

from bench.servers import (
    Implementation,
    Unavailable,
    implementations,
    start_topology,
    supercluster_topology,
)

RESULTS = Path(__file__).resolve().parent / "results"
BCRYPT_CLIENTS = 16
BCRYPT_COST = 11

Measure = Callable[[Implementation, Path], Awaitable[dict[str, float]]]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _server(impl: Implementation, workdir: Path, config: str, name: str) -> ServerProcess:
    """A standalone server of ``impl`` with ``config`` (``listen``/``http`` are added)."""
    port, http_port = free_ports(2)
    assert impl.command is not None
    head = f'listen: "{LOOPBACK}:{port}"\nhttp: "{LOOPBACK}:{http_port}"\n'
    return ServerProcess(
        list(impl.command),
        config=head + config,
        name=name,
        port=port,
        http_port=http_port,
        workdir=workdir / name,
        env=impl.env,
        config_name=f"scbench-{impl.name}-{name}.conf",
    )


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll the async ``pred`` until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await pred():
                return time.monotonic()
        except Exception:  # noqa: BLE001 - polling: anything means "not yet"
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f}s")
        await asyncio.sleep(0.01)


async def _quiet(exc: Exception) -> None:
    """nats-py error callback: a server going away is what these measurements do."""


async def _connect(url: str, **kw: Any) -> Any:
    return await nats.connect(url, allow_reconnect=False, error_cb=_quiet, **kw)


# --------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------


async def gateway_restart(impl: Implementation, workdir: Path) -> dict[str, float]:
    """Kill west, start it again on the same ports: until INFO, until traffic east->west."""
    topo = supercluster_topology()
    running = start_topology(impl, topo, workdir / "gw")
    try:
        west = running.procs["west"]
        west.kill()
        west.proc = None  # the same ServerProcess (same config file and ports) starts again
        t0 = time.monotonic()
        west.start(wait=False)
        ready = await _until(
            lambda: asyncio.to_thread(read_info, LOOPBACK, topo.node("west").port, 0.5), 30, "INFO"
        )
        pub = await _connect(topo.node("east").url)
        sub_nc = await _connect(topo.node("west").url)
        try:
            sub = await sub_nc.subscribe("recovery.probe")
            await sub_nc.flush()

            async def arrived() -> bool:
                await pub.publish("recovery.probe", b"x")
                await pub.flush()
                try:
                    await sub.next_msg(timeout=0.02)
                except nats.errors.TimeoutError:
                    return False
                return True

            flows = await _until(arrived, 60, "message across the gateway")
        finally:
            await pub.close()
            await sub_nc.close()
        return {"gateway_restart_ready_s": ready - t0, "gateway_restart_traffic_s": flows - t0}
    finally:
        running.cleanup()


async def reload_new_user(impl: Implementation, workdir: Path) -> dict[str, float]:
    """SIGHUP after adding a user: until that user can log in."""
    users = "authorization { users: [ {user: a, password: a}%s ] }\n"
    sp = _server(impl, workdir, users % "", "reload")
    sp.start()
    try:
        assert sp.config_path is not None
        text = sp.config_path.read_text()
        sp.config_path.write_text(text.replace(users % "", users % ", {user: b, password: b}"))

        async def login() -> bool:
            nc = await _connect(f"nats://b:b@{LOOPBACK}:{sp.port}", connect_timeout=1)
            await nc.close()
            return True

        t0 = time.monotonic()
        sp.signal(signal.SIGHUP)
        done = await _until(login, 30, "login of the new user")
        return {"reload_new_user_s": done - t0}
    finally:
        sp.stop()


async def lame_duck(impl: Implementation, workdir: Path) -> dict[str, float]:
    """SIGUSR2 with a 1 s grace period: ldm INFO, client closed, process exit."""
    conf = 'lame_duck_duration: "30s"\nlame_duck_grace_period: "1s"\n'
    sp = _server(impl, workdir, conf, "ldm")
    sp.start()
    try:
        ldm = asyncio.Event()
        closed = asyncio.Event()
        marks: dict[str, float] = {}

        async def on_ldm() -> None:
            marks.setdefault("info", time.monotonic())
            ldm.set()

        async def on_closed() -> None:
            marks.setdefault("closed", time.monotonic())
            closed.set()

        nc = await _connect(sp.url, lame_duck_mode_cb=on_ldm, closed_cb=on_closed)
        t0 = time.monotonic()
        sp.signal(signal.SIGUSR2)
        await asyncio.wait_for(ldm.wait(), 30)
        await asyncio.wait_for(closed.wait(), 60)
        assert nc.is_closed

        async def exited() -> bool:
            return not sp.alive()

        gone = await _until(exited, 60, "process exit")
        return {
            "lame_duck_info_s": marks["info"] - t0,
            "lame_duck_closed_s": marks["closed"] - t0,
            "lame_duck_exit_s": gone - t0,
        }
    finally:
        sp.stop()


async def bcrypt_reload_ping(impl: Implementation, workdir: Path) -> dict[str, float]:
    """A reload re-hashes 16 clients' passwords: worst PING round trip of another client."""
    import bcrypt

    def hashed(pw: str) -> str:
        return bcrypt.hashpw(pw.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()

    def users(many: str) -> str:
        return (
            f"authorization {{ users: [ {{user: many, password: '{many}'}}, "
            "{user: probe, password: plain} ] }\n"
        )

    sp = _server(impl, workdir, users(hashed("pw")), "bcrypt")
    sp.start()
    clients: list[Any] = []
    try:
        for _ in range(BCRYPT_CLIENTS):
            clients.append(await _connect(f"nats://many:pw@{LOOPBACK}:{sp.port}"))
        reader, writer = await asyncio.open_connection(LOOPBACK, sp.port)
        await reader.readline()
        writer.write(b'CONNECT {"user":"probe","pass":"plain","verbose":false}\r\nPING\r\n')
        assert await asyncio.wait_for(reader.readline(), 20) == b"PONG\r\n"
        assert sp.config_path is not None
        head = sp.config_path.read_text().split("authorization")[0]
        sp.config_path.write_text(head + users(hashed("pw")))
        reloads = sp.log_text().count("Reloaded server configuration")
        sp.signal(signal.SIGHUP)
        worst = 0.0
        rounds = 0
        # until the reload is logged and for 20 round trips more (the checks may still run)
        while sp.log_text().count("Reloaded server configuration") == reloads or rounds < 20:
            start = time.monotonic()
            writer.write(b"PING\r\n")
            while (line := await asyncio.wait_for(reader.readline(), 30)) != b"PONG\r\n":
                if not line:
                    raise ConnectionError("probe closed")
            worst = max(worst, time.monotonic() - start)
            rounds += 1
            await asyncio.sleep(0.02)
        writer.close()
        return {"bcrypt_reload_ping_worst_ms": worst * 1000}
    finally:
        for nc in clients:
            await nc.close()
        sp.stop()


async def operator_probe(impl: Implementation, workdir: Path) -> dict[str, float]:
    """The operator's probe of a live server and of a dead port (1 s probe timeout)."""
    import aiohttp

    from scoperator.observe import probe_server

    sp = _server(impl, workdir, "", "probe")
    sp.start()
    try:
        async with aiohttp.ClientSession() as http:
            t0 = time.monotonic()
            live = await probe_server(http, "p-0", f"{LOOPBACK}:{sp.http_port}", timeout=1.0)
            t1 = time.monotonic()
            dead = await probe_server(http, "d-0", f"{LOOPBACK}:{free_port()}", timeout=1.0)
            t2 = time.monotonic()
        if not live.healthy or dead.healthy:
            raise RuntimeError(f"unexpected probe results: {live.error!r}, {dead.error!r}")
        return {"probe_live_ms": (t1 - t0) * 1000, "probe_dead_ms": (t2 - t1) * 1000}
    finally:
        sp.stop()


MEASUREMENTS: list[Measure] = [
    gateway_restart,
    reload_new_user,
    lame_duck,
    bcrypt_reload_ping,
    operator_probe,
]


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


async def run_impl(impl: Implementation, repeats: int) -> dict[str, Any]:
    """Every measurement ``repeats`` times on ``impl``: medians, runs, errors."""
    runs: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=f"scbench-recovery-{impl.name}-") as tmp:
        for measure in MEASUREMENTS:
            for i in range(repeats):
                print(f"[{impl.name}] {measure.__name__} {i + 1}/{repeats}", file=sys.stderr)
                try:
                    got = await measure(impl, Path(tmp) / f"{measure.__name__}-{i}")
                except (Unavailable, OSError, TimeoutError, RuntimeError, AssertionError) as exc:
                    errors[measure.__name__] = f"{type(exc).__name__}: {exc}"
                    break
                for key, value in got.items():
                    runs.setdefault(key, []).append(value)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    return {"medians": medians, "runs": runs, "errors": errors}


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per figure, both servers, ratio scserver / nats-server."""
    names = sorted({k for r in results.values() for k in r.get("medians", {})})
    impls = list(results)
    lines = [
        "| figure | " + " | ".join(impls) + " | scserver / nats-server |",
        "|---|" + "---|" * (len(impls) + 1),
    ]
    for name in names:
        vals = [results[i].get("medians", {}).get(name) for i in impls]
        cells = [f"{v:.3f}" if v is not None else "—" for v in vals]
        ref = results.get("nats-server", {}).get("medians", {}).get(name)
        ours = results.get("scserver", {}).get("medians", {}).get(name)
        ratio = f"{ours / ref:.2f}" if ref and ours is not None else "—"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    for impl, r in results.items():
        for what, err in r.get("errors", {}).items():
            lines.append(f"\n{impl} {what}: unavailable ({err})")
        if r.get("unavailable"):
            lines.append(f"\n{impl}: unavailable ({r['unavailable']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write JSON; exit 1 when a nats-server measurement failed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impl", choices=["nats-server", "scserver"])
    args = ap.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    for impl in implementations():
        if args.impl and impl.name != args.impl:
            continue
        if not impl.available:
            results[impl.name] = {"unavailable": impl.unavailable_reason}
            continue
        results[impl.name] = asyncio.run(run_impl(impl, args.repeats))
        results[impl.name]["version"] = impl.version()
    print(table(results))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recovery-latest.json").write_text(json.dumps(results, indent=2))
    return 1 if results.get("nats-server", {}).get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())

"""What requests across gateways see while the link credentials rotate (scoperator local).

    .venv/bin/python -m bench.bench_link_rotation [--server scserver|nats-server] [--spread 5]

A 2x2 supercluster (examples/supercluster.yaml with two servers per cluster, mutual TLS as by
default) on loopback; a requester in `west` asks a queue group in `east` every 50 ms (0.5 s
timeout). Then new route and gateway passwords are written to `east`'s servers, and `--spread`
seconds later to `west`'s (in Kubernetes each pod's kubelet refreshes the mounted Secret on its
own schedule, up to about a minute apart). scserver reloads them (file watcher + SIGHUP);
nats-server refuses a reload that changes the gateway block, so for it the files are written
everywhere and the servers restarted one by one (`rolling_restart`), SIGTERM, not lame duck.
Prints answered / failed requests, the longest gap without an answer, and how long after the
first rewrite every link was up again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.operator.test_local_rotation import make_local
from tests.tools import nats_server_binary, scserver_command

from scoperator.local import LocalSupercluster

INTERVAL = 0.05
TIMEOUT = 0.5


async def _load(
    local: LocalSupercluster, stop: asyncio.Event, log: list[tuple[float, bool]]
) -> None:
    import nats

    east = next(s for s in local.servers if s.address.cluster == "east").address.client_url
    west = next(s for s in local.servers if s.address.cluster == "west").address.client_url

    async def quiet(exc: Exception) -> None:
        """A restarted server (nats-server's rolling restart) is expected: no traceback."""

    replier = await nats.connect(east, name="rotation-replier", error_cb=quiet)
    requester = await nats.connect(west, name="rotation-requester", error_cb=quiet)

    async def reply(msg) -> None:  # type: ignore[no-untyped-def]
        await msg.respond(b"ok")

    await replier.subscribe("rot", queue="q", cb=reply)
    await replier.flush()
    try:
        while not stop.is_set():
            try:
                await requester.request("rot", b"", timeout=TIMEOUT)
                log.append((time.monotonic(), True))
            except Exception:  # noqa: BLE001 - a failed request is the measurement
                log.append((time.monotonic(), False))
            await asyncio.sleep(INTERVAL)
    finally:
        await requester.close()
        await replier.close()


async def _measure(local: LocalSupercluster, server: str, spread: float) -> dict[str, float]:
    log: list[tuple[float, bool]] = []
    stop = asyncio.Event()
    load = asyncio.create_task(_load(local, stop, log))
    await asyncio.sleep(2.0)  # baseline: everything answered
    started = time.monotonic()
    if server == "nats-server":
        local.rotate_credentials()
        await local.rolling_restart()
    else:
        local.rotate_credentials(["east"])
        await asyncio.sleep(spread)
        local.rotate_credentials(["west"], new=False)
        await asyncio.sleep(2.5)  # scserver's watcher applies a change after two stable polls
    await local.wait_ready(120)
    relinked = time.monotonic() - started
    await asyncio.sleep(3.0)  # and afterwards
    stop.set()
    await load
    ok = [t for t, good in log if good]
    gaps = [b - a for a, b in zip(ok, ok[1:], strict=False)]
    return {
        "answered": sum(1 for _, good in log if good),
        "failed": sum(1 for _, good in log if not good),
        "longest_gap_s": round(max(gaps, default=0.0), 2),
        "relinked_after_s": round(relinked, 2),
        "tail_failed": sum(1 for t, good in log if not good and t > started + relinked),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=["scserver", "nats-server"], default="scserver")
    parser.add_argument("--spread", type=float, default=5.0, help="seconds between clusters")
    args = parser.parse_args(argv)
    if args.server == "nats-server":
        binary = nats_server_binary()
        if binary is None:
            print("nats-server not installed", file=sys.stderr)
            return 2
        command = [str(binary)]
    else:
        command = scserver_command()
        if command is None:
            print("scserver not installed", file=sys.stderr)
            return 2
        command = list(command)
    with tempfile.TemporaryDirectory(prefix="rotation-") as tmp:
        local = make_local(command, Path(tmp))
        local.plan()
        local.start()
        try:
            asyncio.run(local.wait_ready(60))
            result = asyncio.run(_measure(local, args.server, args.spread))
        finally:
            local.stop()
    spread = "rolling restart" if args.server == "nats-server" else f"spread {args.spread:g} s"
    print(f"{args.server} ({spread}): " + ", ".join(f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

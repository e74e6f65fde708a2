"""What requests across gateways see during a lame duck rolling restart, scserver vs nats-server.

    .venv/bin/python -m bench.bench_rolling_restart [--rounds 3] [--only scserver|nats-server]

A 2x2 supercluster on loopback (every server scserver, or every server nats-server); a replier
in `east` and a requester in `west` (nats-py, default reconnect behaviour, both clusters' URLs)
ask `bench.rr` one request at a time, every 50 ms, 2 s timeout, asking again on "no responders"
within the timeout, as tests/e2e/pod/reqstream.py does on real pods. Then both clusters restart
together as a StatefulSet rolls them: east2 and west2 get SIGUSR2 (lame duck, 1 s grace), are
started again once they exit and are back in the mesh, then east1 and west1. Prints per round:
answered, failed (timeouts), "no responders" asked again, the longest time without an answer;
and the medians side by side. Failures are replies or requests lost in flight: nats-server
breaks a gateway link when the server it reaches exits and redials after that; scserver moves
the link to another server while the first one is in lame duck mode.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import time
from dataclasses import dataclass, field

import nats
from nats.errors import NoRespondersError, TimeoutError
from tests.cluster.topology import GO, SC, Topology, build

SUBJECT = "bench.rr"
INTERVAL = 0.05
TIMEOUT = 2.0
LAME_DUCK = "lame_duck_duration: 30s\nlame_duck_grace_period: 1s"


@dataclass
class Tally:
    answered: int = 0
    failed: int = 0
    retried: int = 0
    last_ok: float = field(default_factory=time.monotonic)
    longest_gap: float = 0.0
    started: float = field(default_factory=time.monotonic)
    #: what happened when (seconds since the start): restarts, reconnects, failures
    events: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.2f} {what}")

    def ok(self) -> None:
        now = time.monotonic()
        self.longest_gap = max(self.longest_gap, now - self.last_ok)
        self.last_ok = now
        self.answered += 1


async def _stream(topo: Topology, stop: asyncio.Event, tally: Tally) -> None:
    east = [n.url for n in topo.clusters["east"]] + [n.url for n in topo.clusters["west"]]
    west = [n.url for n in topo.clusters["west"]] + [n.url for n in topo.clusters["east"]]

    def callbacks(role: str) -> dict[str, object]:
        async def disconnected() -> None:
            tally.note(f"{role} disconnected")

        async def reconnected() -> None:
            tally.note(f"{role} reconnected")

        async def error(exc: Exception) -> None:
            pass  # disconnects are counted above; nats-py would print them

        return {"disconnected_cb": disconnected, "reconnected_cb": reconnected, "error_cb": error}

    rep = await nats.connect(
        servers=east, max_reconnect_attempts=-1, dont_randomize=True, **callbacks("replier")
    )
    req = await nats.connect(
        servers=west, max_reconnect_attempts=-1, dont_randomize=True, **callbacks("requester")
    )

    async def answer(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await rep.subscribe(SUBJECT, cb=answer)
    await rep.flush()
    n = 0
    try:
        while not stop.is_set():
            n += 1
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    await req.request(SUBJECT, b"%d" % n, timeout=deadline - time.monotonic())
                    tally.ok()
                    break
                except NoRespondersError:
                    if deadline - time.monotonic() <= INTERVAL:
                        tally.failed += 1
                        tally.note(f"request {n} failed: no responders")
                        break
                    tally.retried += 1
                    await asyncio.sleep(INTERVAL)
                except TimeoutError:
                    tally.failed += 1
                    tally.note(f"request {n} timed out (sent {TIMEOUT:g} s before)")
                    break
            await asyncio.sleep(INTERVAL)
    finally:
        await req.close()
        await rep.close()


async def _lame_duck_restart(topo: Topology, names: list[str], tally: Tally) -> None:
    nodes = [topo.node(n) for n in names]
    tally.note(f"lame duck: {' '.join(names)}")
    for node in nodes:
        assert node.proc is not None
        node.proc.signal(signal.SIGUSR2)
    while any(n.proc is not None and n.proc.alive() for n in nodes):
        await asyncio.sleep(0.05)
    tally.note("exited; starting again")
    await asyncio.to_thread(topo.start, nodes)
    await asyncio.to_thread(topo.wait_ready, 30)
    tally.note("back in the mesh")


async def one_round(impl: str) -> Tally:
    topo = build({"east": [impl, impl], "west": [impl, impl]})
    topo.top_extra = {"*": LAME_DUCK}
    topo.start()
    tally = Tally()
    try:
        topo.wait_ready(30)
        stop = asyncio.Event()
        stream = asyncio.create_task(_stream(topo, stop, tally))
        await asyncio.sleep(2.0)  # steady first
        for wave in (["east2", "west2"], ["east1", "west1"]):
            await _lame_duck_restart(topo, wave, tally)
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        stop.set()
        await stream
    finally:
        topo.stop()
    return tally


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["scserver", "nats-server"])
    ap.add_argument("--events", action="store_true", help="print each round's timeline")
    args = ap.parse_args()
    impls = {"scserver": SC, "nats-server": GO}
    results: dict[str, list[Tally]] = {}
    for r in range(args.rounds):
        for label, impl in impls.items():  # alternating, so load drifts hit both
            if args.only and label != args.only:
                continue
            t = await one_round(impl)
            results.setdefault(label, []).append(t)
            print(
                f"round {r + 1} {label:12s} answered {t.answered:4d}  failed {t.failed:2d}  "
                f"no-responders asked again {t.retried:3d}  longest gap {t.longest_gap:.2f} s",
                flush=True,
            )
            if args.events or t.failed:
                print("    " + "\n    ".join(t.events), flush=True)
    print("\nmedians over rounds:")
    for label, tallies in results.items():
        failed = statistics.median(t.failed for t in tallies)
        gap = statistics.median(t.longest_gap for t in tallies)
        print(f"  {label:12s} failed {failed:g}  longest gap {gap:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())

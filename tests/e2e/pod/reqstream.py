"""A steady request stream inside the cluster, with nats-py's own reconnect behaviour.

Run in a pod (the project image's Python with nats-py on PYTHONPATH):

    python reqstream.py replier   --servers nats://east:4222,nats://west:4222 --stats FILE
    python reqstream.py requester --servers nats://west:4222,nats://east:4222 --stats FILE

The replier answers ``e2e.stream`` requests with ``re:<payload>``; the requester sends one request
at a time (``--interval`` apart, ``--timeout`` each) and checks every answer. Both rewrite FILE
(atomically) twice a second with their counts, so the test reads where the stream stands with
``kubectl exec ... cat FILE``: ``ok``, ``failed`` (timeouts, no responders, wrong answers, by
kind in ``errors``), ``no_responders_retried`` (a "no responders" asked again within the
request's timeout), ``disconnects``/``reconnects`` (nats-py's callbacks) and ``connected_url``.
nats-py is used with its defaults for reconnecting (server pool, buffered publishes while
disconnected), so a failed request here is one a nats-py application would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import nats
from nats.errors import NoRespondersError, TimeoutError

SUBJECT = "e2e.stream"
# Pause before asking again after "no responders" (the replier is resubscribing elsewhere).
RETRY_PAUSE = 0.05


class Stats:
    """Counts written to a JSON file, the test's window into the stream."""

    def __init__(self, role: str, path: str) -> None:
        self.path = path
        self.doc: dict[str, Any] = {
            "role": role,
            "ok": 0,
            "failed": 0,
            "errors": {},
            "disconnects": 0,
            "reconnects": 0,
            "connected_url": "",
            "last_error": "",
            "started": time.time(),
            # a short timeline: disconnects, reconnects (where to), first/last of each error run
            "events": [],
        }
        self._erroring = ""

    def event(self, what: str) -> None:
        events = self.doc["events"]
        if len(events) < 200:
            events.append(
                f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {what}"
            )

    def ok(self) -> None:
        self.doc["ok"] += 1
        if self._erroring:
            self.event(f"ok again after {self._erroring} (failed so far {self.doc['failed']})")
            self._erroring = ""

    def retried(self, kind: str, detail: str) -> None:
        key = f"{kind}_retried"
        if not self.doc.get(key):
            self.event(f"first {kind} retried: {detail}")
        self.doc[key] = self.doc.get(key, 0) + 1

    def error(self, kind: str, detail: str) -> None:
        if self._erroring != kind:
            self.event(f"first {kind}: {detail}")
            self._erroring = kind
        self.doc["failed"] += 1
        self.doc["errors"][kind] = self.doc["errors"].get(kind, 0) + 1
        self.doc["last_error"] = f"{time.strftime('%H:%M:%S')} {kind}: {detail}"[:300]

    def write(self) -> None:
        self.doc["ts"] = time.time()
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.doc, fh)
        os.replace(tmp, self.path)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["replier", "requester"])
    ap.add_argument("--servers", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    stats = Stats(args.role, args.stats)

    async def disconnected() -> None:
        stats.doc["disconnects"] += 1
        stats.event(f"disconnected from {stats.doc['connected_url']}")

    async def reconnected() -> None:
        stats.doc["reconnects"] += 1
        stats.doc["connected_url"] = str(nc.connected_url.netloc if nc.connected_url else "")
        stats.event(f"reconnected to {stats.doc['connected_url']}")

    async def lame_duck() -> None:
        stats.event(f"lame duck notice from {stats.doc['connected_url']}")

    async def error(exc: Exception) -> None:
        stats.doc["last_error"] = f"{time.strftime('%H:%M:%S')} error_cb: {exc!r}"[:300]

    nc = await nats.connect(
        servers=args.servers.split(","),
        name=f"e2e-{args.role}",
        dont_randomize=True,
        max_reconnect_attempts=-1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        lame_duck_mode_cb=lame_duck,
    )
    stats.doc["connected_url"] = str(nc.connected_url.netloc if nc.connected_url else "")

    async def writer() -> None:
        while True:
            stats.write()
            await asyncio.sleep(0.5)

    asyncio.get_running_loop().create_task(writer())

    if args.role == "replier":

        async def answer(msg: Any) -> None:
            await msg.respond(b"re:" + msg.data)
            stats.ok()

        await nc.subscribe(SUBJECT, cb=answer)
        await nc.flush()
        stats.doc["subscribed"] = True
        while True:
            await asyncio.sleep(3600)

    n = 0
    while True:
        n += 1
        payload = str(n).encode()
        try:
            reply = await request_retrying_no_responders(nc, stats, payload, n, args.timeout)
        except TimeoutError:
            stats.error("timeout", f"request {n}")
        except NoRespondersError:
            stats.error("no_responders", f"request {n}")
        except Exception as exc:  # noqa: BLE001 - every other failure is counted by its type
            stats.error(type(exc).__name__, f"request {n}: {exc!r}")
        else:
            if reply.data == b"re:" + payload:
                stats.ok()
            else:
                stats.error("wrong_answer", f"request {n}: {reply.data[:60]!r}")
        await asyncio.sleep(args.interval)


async def request_retrying_no_responders(
    nc: Any, stats: Stats, payload: bytes, n: int, timeout: float
) -> Any:
    """One request, asked again while the answer is "no responders", within its timeout.

    "No responders" is an answer, not a loss: the only replier was between two servers (lame
    duck closed it on one, it subscribes again on the next, a few milliseconds later), and
    applications retry it as they retry a timeout. Every retry is counted (``no_responders_
    retried``) and in the timeline; the request fails only when the timeout is used up.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return await nc.request(SUBJECT, payload, timeout=max(left, 0.001))
        except NoRespondersError:
            if deadline - time.monotonic() <= RETRY_PAUSE:
                raise
            stats.retried("no_responders", f"request {n}")
            await asyncio.sleep(RETRY_PAUSE)


if __name__ == "__main__":
    asyncio.run(main())

"""Garbage-collector policy: keep full collections from freezing the event loop.

CPython's cyclic collector scans every tracked object in a full (generation 2) collection. A
server holding hundreds of thousands of subscriptions has millions of tracked objects (each
subscription brings its sublist nodes and dicts), and during a burst that adds them (200k SUBs
on one connection) the collector runs a dozen full collections of up to ~200 ms each: every
other client's round trip waits for them. Measured in-process: 1.2 s of a 2 s burst was GC,
and the worst single loop turn 210 ms.

The policy: after every automatic collection of generation 1 or 2, ``gc.freeze()`` the
survivors, so later collections scan only objects that appeared since. Freezing after full
collections alone was not enough: CPython starts a full collection once the objects promoted
since the last one pass a quarter of those it kept, so each full collection still scanned a
quarter of a growing heap (25 pauses of up to 43 ms, 477 ms in all, during one 200k-SUB burst
on a loaded machine; with gen-1 survivors frozen too: 1 pause of 8 ms, the burst's worst
request round trip 59-89 ms -> 33-78 ms). Frozen objects are still freed by reference counting
(a closed connection leaves no cycle behind); only cycles that die after being frozen wait,
for :data:`THAW_INTERVAL` seconds, until a periodic thaw (``gc.unfreeze()`` + a full
collection, then freeze again) reclaims them. That one pause per interval is the price of
bounded memory.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

#: The youngest generation whose collections freeze their survivors.
FREEZE_FROM = 1
#: Seconds between thaws (full collections over everything, including frozen objects).
THAW_INTERVAL = 300.0

_installed = False


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation", 0) >= FREEZE_FROM:
        gc.freeze()


def _thaw(loop: asyncio.AbstractEventLoop) -> None:
    gc.unfreeze()
    gc.collect()  # the callback freezes the survivors again
    loop.call_later(THAW_INTERVAL, _thaw, loop)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Apply the policy to this process (once; later calls do nothing)."""
    global _installed
    if _installed:
        return
    _installed = True
    gc.callbacks.append(_after_collection)
    gc.collect()  # the startup heap (modules, config) is frozen once, before any client
    loop.call_later(THAW_INTERVAL, _thaw, loop)

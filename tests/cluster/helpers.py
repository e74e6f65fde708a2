"""Client-side helpers for supercluster tests (nats-py).

Interest takes a moment to travel across routes and gateways. Instead of sleeping, tests put a
*sentinel*: a plain subscription on a unique subject made on the same connection right after the
subscriptions under test. A server forwards one connection's interest in order over the same
route and gateway links, so once a publisher's message reaches the sentinel, the interest made
before it has reached the publisher's server too (:func:`reach`). The same trick after an
unsubscribe shows that the removal has travelled. Counts are taken behind markers
(:func:`through`): "nothing else arrived" is proven by a message sent after, never by a sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterable
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

_counter = itertools.count()


def unique(prefix: str = "t") -> str:
    """A subject token unique to this test run."""
    return f"{prefix}.{uuid.uuid4().hex[:8]}.{next(_counter)}"


async def connect(url: str, name: str = "", **kw) -> Client:
    """A client that fails fast instead of reconnecting for ages."""
    opts = dict(
        servers=[url],
        name=name or url,
        connect_timeout=2,
        allow_reconnect=False,
    )
    opts.update(kw)
    return await nats.connect(**opts)


class Inbox:
    """Collects the messages of one subscription (a nats-py callback)."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.msgs: list[Msg] = []
        self.event = asyncio.Event()

    async def cb(self, msg: Msg) -> None:
        self.msgs.append(msg)
        self.event.set()

    def data(self, prefix: bytes = b"") -> list[bytes]:
        return [m.data for m in self.msgs if m.data.startswith(prefix)]

    def count(self, prefix: bytes = b"") -> int:
        return len(self.data(prefix))


async def subscribe(nc: Client, subject: str, queue: str = "", label: str = "") -> Inbox:
    box = Inbox(label or subject)
    await nc.subscribe(subject, queue=queue, cb=box.cb)
    return box


async def sentinel(nc: Client) -> tuple[str, Inbox]:
    """Subscribe a unique plain subject after the subscriptions under test (see module doc)."""
    subj = unique("sentinel")
    box = await subscribe(nc, subj)
    await nc.flush()
    return subj, box


async def reach(pub: Client, sentinels: Iterable[tuple[str, Inbox]], timeout: float = 10.0):
    """Publish to each sentinel until it receives: the interest before it has propagated."""
    deadline = time.monotonic() + timeout
    for subj, box in sentinels:
        while not box.msgs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"interest for {subj} never reached the publisher")
            await pub.publish(subj, b"probe")
            await pub.flush()
            try:
                await asyncio.wait_for(box.event.wait(), 0.1)
            except TimeoutError:
                pass


MARKER = b"~marker"


async def through(pubs: Iterable[Client], subject: str, box: Inbox, timeout: float = 15.0) -> None:
    """Send a marker on ``subject`` from each publisher and wait until ``box`` has them all.

    Messages from one publisher on one subject arrive in order, so once a publisher's marker is
    in, everything it sent before on ``subject`` is in too: a count taken then is final, where a
    fixed sleep only hoped so (a duplicate sent ahead of the marker is counted too). Markers
    start with :data:`MARKER`; count the rest with :func:`unmarked`.
    """
    pubs = list(pubs)
    before = box.count(MARKER)
    for i, pub in enumerate(pubs):
        await pub.publish(subject, MARKER + b"-%d" % i)
        await pub.flush()
    await eventually(
        lambda: box.count(MARKER) >= before + len(pubs), timeout, f"markers on {subject}"
    )


def unmarked(box: Inbox) -> list[bytes]:
    """Payloads of ``box`` without the markers :func:`through` sent."""
    return [d for d in box.data() if not d.startswith(MARKER)]


async def eventually(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Await until ``predicate()`` (sync) is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def close_all(*clients: Client) -> None:
    for c in clients:
        try:
            await c.close()
        except Exception:  # noqa: BLE001 - closing after a server died
            pass


def layout_params(layouts: Iterable[str]) -> list[object]:
    """pytest params for layout names; every layout but the all-scserver one ("scserver")
    runs nats-server too, so it carries the nats_server mark."""
    return [
        pytest.param(name, marks=[pytest.mark.nats_server] if name != "scserver" else [])
        for name in layouts
    ]


class WatchedClient:
    """A nats-py client that records a disconnect instead of reconnecting: tests that a reload
    or an update drops no client assert that ``lost`` stays empty."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lost: list[str] = []
        self.nc: Any = None  # set by connect()

    async def connect(self, url: str, login: dict[str, str] | None = None) -> WatchedClient:
        """Connect to ``url`` (with ``user``/``password`` from ``login``, if any)."""

        async def lost() -> None:
            self.lost.append("disconnected")

        async def error(e: Exception) -> None:
            self.lost.append(f"error: {e}")

        self.nc = await nats.connect(
            url,
            name=self.name,
            allow_reconnect=False,
            connect_timeout=5,
            disconnected_cb=lost,
            closed_cb=lost,
            error_cb=error,
            **(login or {}),
        )
        return self

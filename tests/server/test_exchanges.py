"""scserver.exchanges on its own: what settles an exchange, the bound on tracking, and when a
lame duck close happens (a stand-in client; the real thing is in
tests/cluster/test_lame_duck_exchanges.py)."""

from __future__ import annotations

import asyncio
import time

from scserver.exchanges import MAX_TRACKED, Exchanges, close_between_exchanges


class Client:
    def __init__(self) -> None:
        self.exchanges: Exchanges | None = Exchanges()
        self.last_activity = time.time()
        self.closed = False

    def close(self, reason: str) -> None:
        self.closed = True


def test_requests_and_answers_settle() -> None:
    ex = Exchanges()
    assert ex.settled()
    ex.published(b"svc", b"_INBOX.1")
    assert not ex.settled()
    ex.delivered(b"_INBOX.other", None)
    assert not ex.settled()
    ex.delivered(b"_INBOX.1", None)
    assert ex.settled()
    ex.delivered(b"svc", b"_INBOX.9")  # a request to answer
    assert ex.owed == {b"_INBOX.9"}
    ex.published(b"_INBOX.9", None)
    assert ex.settled()


def test_tracking_is_bounded() -> None:
    ex = Exchanges()
    for i in range(MAX_TRACKED + 10):
        ex.delivered(b"svc", b"_INBOX.%d" % i)
    assert len(ex.owed) == MAX_TRACKED and ex.overflow
    for i in range(MAX_TRACKED + 10):
        ex.published(b"_INBOX.%d" % i, None)
    assert not ex.settled()  # what was not tracked is not known to be answered


async def test_close_waits_for_the_answer_and_a_quiet_moment() -> None:
    c = Client()
    assert c.exchanges is not None
    c.exchanges.published(b"svc", b"_INBOX.1")

    async def answer_later() -> None:
        await asyncio.sleep(0.05)
        assert not c.closed  # still waiting for the answer
        c.exchanges.delivered(b"_INBOX.1", None)
        c.last_activity = time.time()

    task = asyncio.create_task(answer_later())
    await close_between_exchanges(c, "Server Shutdown")
    await task  # (it checked that the client was still open when the answer came)
    assert c.closed


async def test_close_gives_up_after_the_wait() -> None:
    c = Client()
    assert c.exchanges is not None
    c.exchanges.published(b"svc", b"_INBOX.never")
    await close_between_exchanges(c, "Server Shutdown", wait=0.05)
    assert c.closed and not c.exchanges.settled()  # closed unanswered: it did not wait forever

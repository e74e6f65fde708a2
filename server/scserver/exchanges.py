"""Lame duck mode closes a client between its request/reply exchanges, not in the middle of one.

Lame duck mode closes every client so that it reconnects to another server. A requester closed
while its request is unanswered loses the answer (it comes back to this server after the
close); a replier closed while it holds a request it has not answered yet loses its answer too.
Applications see both as timeouts although nothing failed (a rolling update of real pods lost a
request that way in about one run of four). nats-server closes clients regardless.

So in lame duck mode every client tracks the replies it awaits (the reply subjects of requests
it published, until a message on that subject is delivered to it) and the replies it owes (the
reply subjects of messages delivered to it, until it publishes to that subject), and is closed
once both are settled and it has sent nothing for ``QUIET`` seconds, or after ``EXCHANGE_WAIT``
seconds at most (a request nobody answers, a
subscriber that never replies). Outside lame duck mode nothing is tracked: the publish path
stays as it is, and delivery pays one attribute check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

#: Longest a client waits for its exchanges in flight to settle before it is closed anyway.
EXCHANGE_WAIT = 0.5
#: How often a closing client's exchanges are looked at.
POLL = 0.002
#: How long the client must have sent nothing before it is closed: a request it wrote just
#: now may still be on its way, unread, and would be lost with the connection.
QUIET = 0.005
#: Replies owed or awaited tracked per client at most (a busy subscriber of requests it never
#: answers): beyond that the client just waits EXCHANGE_WAIT.
MAX_TRACKED = 1024


class Exchanges:
    """The replies one client awaits and owes, while its server is in lame duck mode."""

    __slots__ = ("awaiting", "owed", "overflow")

    def __init__(self) -> None:
        self.awaiting: set[bytes] = set()
        self.owed: set[bytes] = set()
        self.overflow = False

    def published(self, subject: bytes, reply: bytes | None) -> None:
        """The client published to ``subject`` (perhaps answering), maybe asking for a reply."""
        self.owed.discard(subject)
        if reply is not None:
            self._add(self.awaiting, reply)

    def delivered(self, subject: bytes, reply: bytes | None) -> None:
        """A message on ``subject`` (perhaps an awaited answer) went to the client."""
        self.awaiting.discard(subject)
        if reply:
            self._add(self.owed, reply)

    def _add(self, which: set[bytes], subject: bytes) -> None:
        if len(which) >= MAX_TRACKED:
            self.overflow = True
            return
        which.add(subject)

    def settled(self) -> bool:
        return not self.awaiting and not self.owed and not self.overflow


def track(clients: Iterable[Any]) -> None:
    """Lame duck mode began: start tracking the exchanges of these clients."""
    for c in clients:
        c.exchanges = Exchanges()
        c.update_pub_path()  # publishes take the path that records them


async def close_between_exchanges(c: Any, reason: str, wait: float = EXCHANGE_WAIT) -> float:
    """Close client ``c`` once its exchanges in flight are settled (``wait`` seconds at most);
    returns how long it waited."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    ex = c.exchanges
    while ex is not None and not c.closed and loop.time() - start < wait:
        if ex.settled() and time.time() - c.last_activity >= QUIET:
            break
        await asyncio.sleep(POLL)
    c.close(reason)
    return loop.time() - start


__all__ = ["EXCHANGE_WAIT", "Exchanges", "close_between_exchanges", "track"]

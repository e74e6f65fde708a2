"""Subscriptions made in the last few seconds, per account (gateway reply mapping).

A request whose reply subject matches a subscription made within the window gets its reply
mapped (``_GR_.``) when it crosses a gateway, because the remote cluster may not have the
brand-new interest yet. A burst of 200k SUBs puts 200k entries in the window, so both noting a
subscription and asking about a reply must stay O(1) in it (apart from wildcard
subscriptions, which have to be matched one by one): exact subjects are kept in a dict with
their newest time, expiry walks a deque from the oldest end.
"""

from __future__ import annotations

import time
from collections import deque

from scserver.subjects import subject_matches

_WILD = frozenset(b"*>")


class RecentSubs:
    """The subjects subscribed within the last ``window`` seconds."""

    __slots__ = ("window", "_order", "_exact", "_wild")

    def __init__(self, window: float) -> None:
        self.window = window
        self._order: deque[tuple[float, bytes]] = deque()
        self._exact: dict[bytes, float] = {}
        self._wild: deque[tuple[float, bytes]] = deque()

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        order = self._order
        exact = self._exact
        while order and order[0][0] < cutoff:
            ts, subject = order.popleft()
            if exact.get(subject) == ts:
                del exact[subject]
        wild = self._wild
        while wild and wild[0][0] < cutoff:
            wild.popleft()

    def note(self, subject: bytes) -> None:
        now = time.monotonic()
        self._expire(now)
        if _WILD.isdisjoint(subject):
            self._exact[subject] = now
            self._order.append((now, subject))
        else:
            self._wild.append((now, subject))

    def matches(self, reply: bytes) -> bool:
        """Whether a subscription made within the window covers ``reply``."""
        now = time.monotonic()
        self._expire(now)
        if reply in self._exact:
            return True
        return any(subject_matches(subject, reply) for _, subject in self._wild)

"""A subscription: what the sublist stores for clients, routes, gateways and internal services."""

from __future__ import annotations

import time
from typing import Any


class Subscription:
    """One interest registration. ``conn`` is whoever receives matching messages.

    For a route-learned queue subscription ``weight`` is the remote member count from RS+, so a
    remote server with three members draws three times as often as one local member.
    """

    __slots__ = (
        "subject",
        "queue",
        "sid",
        "conn",
        "max",
        "delivered",
        "weight",
        "created",
        "account",
    )

    def __init__(
        self,
        subject: bytes,
        queue: bytes | None,
        sid: bytes,
        conn: Any,
        account: Any = None,
        weight: int = 1,
    ) -> None:
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.conn = conn
        self.max = 0
        self.delivered = 0
        self.weight = weight
        self.created = time.monotonic()
        self.account = account

    def __repr__(self) -> str:
        q = f" {self.queue.decode(errors='replace')}" if self.queue else ""
        subject, sid = self.subject.decode(errors="replace"), self.sid.decode(errors="replace")
        return f"Sub({subject}{q} sid={sid})"

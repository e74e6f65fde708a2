"""Gateway interest bookkeeping: per account, what a peer told us (``OutAccount``, on our
outbound link) and what we told a peer (``InAccount``, on an inbound link), in optimistic or
interest-only mode, plus the gateway command codes that carry the mode switch."""

from __future__ import annotations

from scserver.sublist import Sublist
from scserver.subscription import Subscription

CMD_GOSSIP = 1
CMD_ALL_SUBS_START = 2
CMD_ALL_SUBS_COMPLETE = 3

OPTIMISTIC = "Optimistic"
TRANSITIONING = "Transitioning"
INTEREST_ONLY = "Interest-Only"

DEFAULT_INTEREST_ONLY_THRESHOLD = 1000
RECENT_SUB_WINDOW = 2.0


class OutAccount:
    """What an inbound peer told our outbound link about one account's interest."""

    __slots__ = ("mode", "ni", "sl", "qsubs", "nil", "subs")

    def __init__(self, mode: str = OPTIMISTIC) -> None:
        self.mode = mode
        self.ni: set[bytes] | None = set() if mode == OPTIMISTIC else None
        self.sl: Sublist = Sublist()
        self.subs: dict[tuple[bytes, bytes | None], Subscription] = {}
        self.qsubs = 0
        self.nil = False


class InAccount:
    """What our inbound link told its peer about one account (optimistic bookkeeping)."""

    __slots__ = ("mode", "ni", "a_minus")

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.ni: set[bytes] | None = set() if mode == OPTIMISTIC else None
        self.a_minus = False

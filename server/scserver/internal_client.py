"""The server's own subscribers: connections without a socket whose messages go to callbacks.

The `$SYS` services (``scserver.system``) and every account's import machinery
(``scserver.imports``) subscribe like clients do, so their interest travels over routes and
gateways like any other. Routing tells them apart by ``kind == SYSTEM`` and hands them a
message through ``deliver_internal`` instead of writing frames. What they share -- the
connection attributes routing reads and the bookkeeping that keeps the account's sublist and
the interest propagation in step with the handler table -- lives here once; what a delivery
does (answer later, or re-publish now) stays with each subclass.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from scserver.connection import SYSTEM
from scserver.core import kinds
from scserver.subscription import Subscription

H = TypeVar("H")


SYSTEM_SPEC = kinds.register(
    kinds.KindSpec(
        kind=SYSTEM,
        name="system",
        id_label="sys",
        label="System",
        monitor_label="System",
        fanout=kinds.INTERNAL,
    )
)


class InternalClient(Generic[H]):
    """Subscriptions of one account owned by the server itself, each with a handler ``H``."""

    kind = SYSTEM
    spec = SYSTEM_SPEC
    fanout = SYSTEM_SPEC.fanout
    echo = False
    closed = False
    headers = True
    #: Whether runs of messages may be handed over at once (``deliver_batch_internal``):
    #: services answer per message, stream-import shadows take runs.
    batches = False

    def __init__(self, server: Any, account: Any) -> None:
        self.server = server
        self.account = account
        self.cid = 0
        self.handlers: dict[Subscription, H] = {}
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0

    def add_subscription(self, sub: Subscription, handler: H, propagate: bool = True) -> None:
        """Insert ``sub`` into the account and, unless ``propagate`` is false, tell the links
        (routes, gateways) about the new interest, as a client's SUB would."""
        self.account.sublist.insert(sub)
        self.handlers[sub] = handler
        if propagate:
            self.server.interest_added(self.account, sub)

    def unsubscribe(self, sub: Subscription) -> None:
        """Drop one of our subscriptions (a no-op for one already gone)."""
        if self.handlers.pop(sub, None) is None:
            return
        self.account.sublist.remove(sub)
        self.server.interest_removed(self.account, sub)

    def unsubscribe_all(self) -> None:
        for sub in list(self.handlers):
            self.unsubscribe(sub)

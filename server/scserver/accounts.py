"""Accounts: each owns its own subscription index.

That is all the isolation NATS accounts need: a message published in one account is matched
only against that account's sublist. Users and logins live in :mod:`scserver.auth`.
"""

from __future__ import annotations

from typing import Any

from scserver.auth import Authenticator, AuthResult, User, check_password
from scserver.sublist import Sublist

__all__ = [
    "GLOBAL_ACCOUNT",
    "SYSTEM_ACCOUNT",
    "Account",
    "AuthResult",
    "Authenticator",
    "User",
    "check_password",
]

GLOBAL_ACCOUNT = "$G"
SYSTEM_ACCOUNT = "$SYS"


class Account:
    """A namespace of subjects with its own sublist and the interest it shares with peers."""

    __slots__ = (
        "name",
        "name_b",
        "sublist",
        "clients",
        "route_interest",
        "gw_interest",
        "gw_state",
        "in_msgs",
        "in_bytes",
        "out_msgs",
        "out_bytes",
        "is_system",
        "gw_reply_map",
        "links",
        "mappings",
    )

    def __init__(self, name: str, is_system: bool = False) -> None:
        self.name = name
        self.name_b = name.encode()
        self.sublist = Sublist()
        self.clients: set[Any] = set()
        # Local (non-route) interest count per (subject, queue): drives RS+/RS- to routes.
        self.route_interest: dict[tuple[bytes, bytes | None], int] = {}
        # Cluster-wide interest count per (subject, queue): drives RS+/RS- to gateways.
        self.gw_interest: dict[tuple[bytes, bytes | None], int] = {}
        # Per-gateway-link state for this account, owned by the gateway module.
        self.gw_state: dict[Any, Any] = {}
        # original reply -> (routed reply, expiry) for replies that arrived through a gateway.
        self.gw_reply_map: dict[bytes, tuple[bytes, float]] = {}
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.is_system = is_system
        #: Exports, imports and pending responses (scserver.imports.Links), None if none.
        self.links: Any = None
        #: Subject mappings applied where a client's publish enters (scserver.mapping).
        self.mappings: Any = None

    def __repr__(self) -> str:
        return f"Account({self.name!r})"

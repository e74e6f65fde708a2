"""Accounts, users and authentication.

Each account owns its own subscription index, which is all the isolation NATS accounts need:
a message published in one account is matched only against that account's sublist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from scserver.sublist import Sublist

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

    def __repr__(self) -> str:
        return f"Account({self.name!r})"


@dataclass(slots=True)
class User:
    """A configured user; ``account`` names the account its connections join."""

    username: str
    password: str | None
    account: str = GLOBAL_ACCOUNT
    permissions: dict[str, Any] | None = None


@dataclass(slots=True)
class AuthResult:
    ok: bool
    account: str = GLOBAL_ACCOUNT
    user: User | None = None


@dataclass
class Authenticator:
    """Checks a client's CONNECT credentials against the configured users and token.

    Built fresh from options on every reload, so a removed user is refused from then on.
    """

    users: dict[str, User] = field(default_factory=dict)
    token: str | None = None
    no_auth_user: str | None = None
    #: Where clients without credentials go when only the system account has users
    #: (nats-server's implicit no-auth user for `$G`); INFO still says auth_required.
    anonymous_account: str | None = None

    @property
    def required(self) -> bool:
        return bool(self.users or self.token)

    @property
    def advertise_required(self) -> bool:
        """INFO.auth_required: false when anonymous clients map to `no_auth_user`."""
        return self.required and not self.no_auth_user

    def authenticate(self, opts: dict[str, Any]) -> AuthResult:
        if not self.required:
            return AuthResult(True)
        username = opts.get("user")
        password = opts.get("pass")
        token = opts.get("auth_token")
        if self.token is not None:
            if isinstance(token, str) and _secure_eq(token, self.token):
                return AuthResult(True)
            if not self.users:
                return AuthResult(False)
        if not username and not token and self.anonymous_account is not None:
            return AuthResult(True, self.anonymous_account)
        if not username and not token and self.no_auth_user:
            user = self.users.get(self.no_auth_user)
            if user is not None:
                return AuthResult(True, user.account, user)
        if not isinstance(username, str):
            return AuthResult(False)
        user = self.users.get(username)
        if user is None:
            return AuthResult(False)
        if user.password is not None and not check_password(password, user.password):
            return AuthResult(False)
        return AuthResult(True, user.account, user)


def _secure_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_password(given: object, configured: str) -> bool:
    """Plain or bcrypt (`$2a$...`) passwords, as nats-server accepts both."""
    if not isinstance(given, str):
        return False
    if configured.startswith("$2"):
        try:
            import bcrypt  # type: ignore[import-not-found]
        except ImportError:  # pragma: no cover - reported at config load
            return False
        try:
            return bcrypt.checkpw(given.encode(), configured.encode())
        except ValueError:
            return False
    return _secure_eq(given, configured)

"""The narrow services a connection gets from the server, as typing Protocols.

Connections used to hold ``server: Any`` and reach for whatever they liked, which is how the
server module and the connection modules came to import each other. Each kind now names the
services it uses: ``ServerContext`` is what every connection needs (the loop, the options,
ids, flush scheduling, the registry and flow-control counters); clients add accounts, auth and
interest propagation (``ClientServices``); routes and gateways add the link-facing identity
and the other managers (``LinkServices``). ``scserver.server.Server`` provides all of them;
a test (``tests/server/test_layering.py``) checks that it does and that the connection
modules use no other server attribute, so a new need shows up here, on purpose.

Only this module's names are imported by connection modules; the concrete classes named in
annotations are imported for type checking only, so ``core`` imports nothing at run time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from scserver.accounts import Account, Authenticator, User
    from scserver.client import ClientConnection
    from scserver.connection import Connection
    from scserver.subscription import Subscription
    from scserver.tls import TLSContexts

__all__ = [
    "AccountDirectory",
    "ClientServices",
    "InterestListener",
    "LinkServices",
    "ServerContext",
]


@runtime_checkable
class ServerContext(Protocol):
    """What every connection needs: where it runs, what it was configured with, and the
    server-wide bookkeeping of its output (one flush per loop turn, per-consumer stalls)."""

    loop: asyncio.AbstractEventLoop
    opts: Any
    #: The connection whose input is being processed: a gated consumer stalls this producer.
    reader: Connection | None
    stalls: int
    slow_consumers: int
    slow_consumer_stats: dict[str, int]

    def next_cid(self) -> int:
        """A new connection id, unique in this process."""
        ...

    def schedule_flush(self, conn: Connection) -> None:
        """Write ``conn``'s queued bytes once, at the end of this loop turn."""
        ...

    def connection_closed(self, conn: Connection) -> None:
        """Forget ``conn`` in the registry (and its kind's manager)."""
        ...


@runtime_checkable
class InterestListener(Protocol):
    """Told about every local subscription change, so routes, gateways and imports follow."""

    def interest_added(self, account: Account, sub: Subscription) -> None: ...

    def interest_removed(self, account: Account, sub: Subscription) -> None: ...


@runtime_checkable
class AccountDirectory(Protocol):
    """Accounts by name, including the wire form links read on every message."""

    accounts: dict[str, Account]
    global_account: Account

    def lookup_account(self, name: str) -> Account | None: ...

    def account_by_name_b(self, name: bytes) -> Account | None: ...

    @property
    def wire_accounts(self) -> dict[bytes, Account]:
        """The cache behind ``account_by_name_b``, read directly on the RMSG hot path."""
        ...


@runtime_checkable
class ClientServices(ServerContext, InterestListener, AccountDirectory, Protocol):
    """What a client connection uses: login (auth, TLS identity, permissions), the client
    registry and INFO. (Replies that crossed a gateway are steered by ``scserver.routing``.)"""

    auth: Authenticator
    auth_failures: int
    clients: dict[int, ClientConnection]
    lame_duck: bool
    tls: TLSContexts

    def compile_permissions(self, user: User | None) -> Any: ...

    def client_info_base(self) -> dict[str, Any]: ...

    def client_connected(self, client: ClientConnection) -> None: ...

    def client_closed(self, client: ClientConnection) -> None: ...


@runtime_checkable
class LinkServices(ServerContext, AccountDirectory, Protocol):
    """What routes and gateways (connections and their managers) use: this server's
    identity as peers see it, the listener list, and each other's manager."""

    server_id: str
    lame_duck: bool
    listeners: list[Any]
    #: scserver.route.RouteManager or None.
    routes: Any
    #: scserver.gateway.GatewayManager or None.
    gateway: Any

    @property
    def name(self) -> str: ...

    def client_urls(self) -> list[str]: ...

    def info_changed(self, notify: bool = True) -> None: ...

"""The options model: typed dataclasses holding nats-server's defaults, the only place
defaults live (parsing fills them in, validation checks them, the server reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..conf import ConfigError
from .tls import TLSConfig

GLOBAL_ACCOUNT = "$G"
SYSTEM_ACCOUNT = "$SYS"


# --------------------------------------------------------------------------------------------
# data


@dataclass(slots=True)
class User:
    """A client user. ``password`` may be a bcrypt hash (``$2a$...``): compare accordingly."""

    username: str
    password: str | None = None
    account: str = GLOBAL_ACCOUNT
    permissions: dict[str, Any] | None = None
    #: An NKey user's public key (``U...``); such a user has no name or password.
    nkey: str | None = None


@dataclass(slots=True)
class Account:
    """An account; exports/imports and other settings are kept raw for the accounts layer."""

    name: str
    users: list[User] = field(default_factory=list)
    exports: list[Any] = field(default_factory=list)
    imports: list[Any] = field(default_factory=list)
    mappings: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ClusterOpts:
    """The ``cluster {}`` block: where routes listen and which routes to dial."""

    name: str | None = None
    host: str = "0.0.0.0"
    port: int = 0
    advertise: str | None = None
    no_advertise: bool = False
    routes: list[str] = field(default_factory=list)
    username: str | None = None
    password: str | None = None
    auth_timeout: float = 2.0
    connect_retries: int = 0
    pool_size: int = 3
    pinned_accounts: list[str] = field(default_factory=list)
    compression: str = "accept"
    ping_interval: float | None = None
    ping_max: int | None = None
    tls: TLSConfig | None = None


@dataclass(slots=True)
class RemoteGateway:
    """One entry of ``gateway.gateways``: a remote cluster's name and its seed URLs."""

    name: str
    urls: list[str] = field(default_factory=list)
    tls: TLSConfig | None = None


@dataclass(slots=True)
class GatewayOpts:
    """The ``gateway {}`` block: this cluster's gateway name, listener and known remotes."""

    name: str | None = None
    host: str = "0.0.0.0"
    port: int = 0
    advertise: str | None = None
    gateways: list[RemoteGateway] = field(default_factory=list)
    username: str | None = None
    password: str | None = None
    auth_timeout: float = 2.0
    reject_unknown_cluster: bool = False
    connect_retries: int = 0
    #: scserver extensions (not nats-server options): the mode our inbound links start in,
    #: and after how many no-interest subjects an optimistic link switches to interest-only.
    interest_mode: str = "interest_only"
    interest_only_threshold: int = 1000
    tls: TLSConfig | None = None


@dataclass(slots=True)
class Options:
    """Everything the server needs from its configuration, with nats-server's defaults."""

    @property
    def monitor_host(self) -> str:
        """Where monitoring listens: ``http``/``https``'s host, else the client listener's (so
        ``listen: 127.0.0.1:4222`` keeps monitoring on loopback too, as nats-server)."""
        return self.http_host if self.http_host is not None else self.host

    config_file: str | None = None
    server_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 4222
    client_advertise: str | None = None
    #: None: the client listener's host (nats-server's default), see ``monitor_host``
    http_host: str | None = None
    http_port: int = 0
    https_port: int = 0
    #: The top-level ``tls {}`` (clients, and the monitor when ``https_port`` is set).
    tls: TLSConfig | None = None
    #: With ``tls``: plain clients may still connect (INFO says tls_available).
    allow_non_tls: bool = False
    max_payload: int = 1048576
    max_control_line: int = 4096
    max_connections: int = 65536
    max_subscriptions: int = 0
    max_pending: int = 67108864
    ping_interval: float = 120.0
    ping_max: int = 2
    write_deadline: float = 10.0
    auth_timeout: float = 2.0
    debug: bool = False
    trace: bool = False
    logtime: bool = True
    log_file: str | None = None
    pid_file: str | None = None
    lame_duck_duration: float = 120.0
    lame_duck_grace_period: float = 10.0
    no_auth_user: str | None = None
    users: list[User] = field(default_factory=list)
    token: str | None = None
    accounts: dict[str, Account] = field(default_factory=dict)
    system_account: str = SYSTEM_ACCOUNT
    no_system_account: bool = False
    cluster: ClusterOpts | None = None
    gateway: GatewayOpts | None = None
    warnings: list[str] = field(default_factory=list)
    #: An `authorization {}` block was present (nats-server then never lets anonymous
    #: clients into `$G` on its own).
    auth_block_defined: bool = False
    #: The flags apply_flags laid over the file, kept so a reload can lay them again.
    flag_overrides: dict[str, Any] = field(default_factory=dict)
    #: Top-level ``mappings {}`` (they belong to the global account), raw.
    mappings: Any = None
    #: Per account: exports, imports and mappings, checked (scserver.imports.LinkConfig).
    link_configs: dict[str, Any] = field(default_factory=dict)

    @property
    def cluster_name(self) -> str | None:
        """The effective cluster name: explicit, else the gateway name (as nats-server does)."""
        if self.cluster is not None and self.cluster.name:
            return self.cluster.name
        if self.gateway is not None and self.gateway.name:
            return self.gateway.name
        return None

    def find_user(self, username: str) -> User | None:
        """The configured user with this name (or NKey public key), if any."""
        for user in self.users:
            if user.username == username or (user.nkey and user.nkey == username):
                return user
        return None


class OptionsError(ConfigError):
    """One or more option faults. Located at the first; ``errors`` holds all of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.column)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)

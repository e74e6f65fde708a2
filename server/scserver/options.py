"""Typed server options: a parsed config (``scserver.conf``) turned into checked dataclasses.

Defaults equal nats-server's so a config written for nats-server means the same thing here. The
checks mirror what ``nats-server -t`` rejects (wrong types, unknown fields, duplicate users,
reserved account names, user/token conflicts, ...) and add the checks nats-server only makes when
it starts (port ranges, gateway name and port, ``no_auth_user`` and ``system_account`` naming
something that exists): failing at load time with ``file:line:col`` beats failing later.

Options that nats-server knows but this server does not implement (``jetstream``,
``leafnodes``, ...) are accepted and listed in ``Options.warnings``, so one config can serve both
servers, unless ignoring them would lower security (``tls {}`` blocks are parsed by ``tls.py``,
which refuses what it cannot honour; ``refused.py`` lists the other security options, which are
config errors); a key nats-server does not know either is an error, as it
is there. Keys that were only defined to be used as ``$variables`` are not options and are skipped, as nats-server does.

All faults are collected; ``load``/``from_dict`` raise one ``OptionsError`` (a ``ConfigError``)
located at the first and listing all of them.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import imports as links
from .auth import is_valid_public_user_key
from .conf import ConfDict, ConfigError, ConfList, Pos, parse_file
from .refused import (
    REFUSED_ACCOUNT,
    REFUSED_AUTHORIZATION,
    REFUSED_CLUSTER,
    REFUSED_TOP,
    refusal,
    refused_user_option,
)
from .tls import TLSConfig, parse_tls_block

__all__ = [
    "Account",
    "ClusterOpts",
    "GatewayOpts",
    "GLOBAL_ACCOUNT",
    "Options",
    "OptionsError",
    "RemoteGateway",
    "SYSTEM_ACCOUNT",
    "User",
    "apply_flags",
    "from_dict",
    "load",
    "parse_duration",
]

GLOBAL_ACCOUNT = "$G"
SYSTEM_ACCOUNT = "$SYS"
MAX_PAYLOAD_WARN = 8 * 1024 * 1024
_INT32_MAX = 2**31 - 1
COMPRESSION_MODES = frozenset(
    {"off", "accept", "s2_fast", "s2_better", "s2_best", "s2_auto", "s2_uncompressed"}
)


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

    config_file: str | None = None
    server_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 4222
    client_advertise: str | None = None
    http_host: str = "0.0.0.0"
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


# --------------------------------------------------------------------------------------------
# durations

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # noqa: RUF001 - Go accepts the micro sign
    "μs": 1e-6,  # noqa: RUF001 - and the Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")  # noqa: RUF001


def parse_duration(value: str | int | float) -> float:
    """Seconds from a Go duration string (``"2s"``, ``"1m30s"``, ``"500ms"``) or a number of
    seconds (the legacy integer form nats-server still accepts). Raises ValueError otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    text = value.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"invalid duration {value!r}")
    total = 0.0
    at = 0
    while at < len(text):
        m = _DURATION_PART.match(text, at)
        if m is None:
            rest = text[at:]
            if re.match(r"(\d+\.?\d*|\.\d+)$", rest):
                raise ValueError(f"missing unit in duration {value!r}")
            unit = re.match(r"[\d.]*(\D*)", rest)
            if unit and unit.group(1):
                raise ValueError(f"unknown unit {unit.group(1)!r} in duration {value!r}")
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        at = m.end()
    return sign * total


# --------------------------------------------------------------------------------------------
# entry points


def load(path: str) -> Options:
    """Parse and check a config file. Raises ConfigError (OptionsError for option faults)."""
    return from_dict(parse_file(path), source=path)


def from_dict(d: Mapping[str, Any], source: str = "<dict>") -> Options:
    """Build Options from a parsed config (a ConfDict keeps positions; a plain dict works too).

    ``source`` names the origin in messages about values that carry no position.
    """
    return _Builder(source).build(d)


def apply_flags(opts: Options, **overrides: Any) -> Options:
    """Lay command-line flags over file options; ``None`` means "flag not given".

    Accepted: port, host, http_port, server_name, client_advertise, debug, trace, logtime,
    log_file, pid_file, user, password (one user in the global account), token, cluster (a URL
    such as ``nats://0.0.0.0:6222``, credentials allowed), cluster_name, routes (comma-separated
    URLs or a list). Returns a new Options whose ``flag_overrides`` records the flags given;
    ``opts`` is left as it was. Raises ConfigError for a bad value or an unknown flag.
    """
    out = copy.deepcopy(opts)
    given = {k: v for k, v in overrides.items() if v is not None}
    out.flag_overrides = {**out.flag_overrides, **given}
    simple = {
        "port": int,
        "host": str,
        "http_port": int,
        "server_name": str,
        "client_advertise": str,
        "debug": bool,
        "trace": bool,
        "logtime": bool,
        "log_file": str,
        "pid_file": str,
        "token": str,
    }
    for name, value in given.items():
        if name in simple:
            kind = simple[name]
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"flag {name}: expected an integer, got {value!r}", "<flags>")
            if not isinstance(value, kind):
                raise ConfigError(
                    f"flag {name}: expected {kind.__name__}, got {value!r}", "<flags>"
                )
            if name in ("port", "http_port") and not -1 <= value <= 65535:
                raise ConfigError(f"flag {name}: port {value} is out of range", "<flags>")
            if name == "server_name" and " " in value:
                raise ConfigError("flag server_name: server name cannot contain spaces", "<flags>")
            setattr(out, name, value)
        elif name not in ("user", "password", "cluster", "cluster_name", "routes"):
            raise ConfigError(f"unknown flag {name!r}", "<flags>")

    if "user" in given or "password" in given:
        username = given.get("user")
        if not username:
            raise ConfigError("flag password needs a user flag too", "<flags>")
        if out.token is not None:
            raise ConfigError("flag user: cannot combine a user with a token", "<flags>")
        out.users = [u for u in out.users if u.username != username]
        out.users.append(User(username, given.get("password"), GLOBAL_ACCOUNT))

    if "cluster" in given:
        url = given["cluster"]
        host_port = _cluster_url(url) if isinstance(url, str) else None
        if host_port is None:
            raise ConfigError(
                f"flag cluster: expected a URL like nats://host:port, got {url!r}", "<flags>"
            )
        host, port, username, password = host_port
        if out.cluster is None:
            out.cluster = ClusterOpts()
        out.cluster.host = host
        out.cluster.port = port
        if username:
            out.cluster.username = username
            out.cluster.password = password

    if "cluster_name" in given:
        name = given["cluster_name"]
        if not isinstance(name, str) or not name or " " in name:
            raise ConfigError(f"flag cluster_name: invalid cluster name {name!r}", "<flags>")
        if out.cluster is None:
            out.cluster = ClusterOpts()
        out.cluster.name = name

    if "routes" in given:
        routes = given["routes"]
        items = routes.split(",") if isinstance(routes, str) else list(routes)
        urls = [r.strip() for r in items if r.strip()]
        for url in urls:
            reason = _url_problem(url)
            if reason:
                raise ConfigError(f"flag routes: {reason}", "<flags>")
        if out.cluster is None:
            out.cluster = ClusterOpts()
        out.cluster.routes = urls
    return out


# --------------------------------------------------------------------------------------------
# building

# Top-level keys nats-server understands that this server does not implement: accepted with a
# warning so a config shared with nats-server still loads.
_UNSUPPORTED_TOP = frozenset(
    """
    trace_verbose trace_headers logtime_utc disable_sublist_cache no_sublist_cache
    http_base_path leaf leafnodes store_dir storedir jetstream
    logfile_size_limit log_size_limit logfile_max_num log_max_num syslog remote_syslog
    ports_file_dir prof_port prof_block_rate proxy_protocol max_traced_msg_len max_sub_tokens
    max_subscription_tokens write_timeout no_header_support
    connect_error_reports reconnect_error_reports websocket ws mqtt server_tags server_metadata
    feature_flags default_js_domain no_fast_producer_stall max_closed_clients proxies
    """.split()  # noqa: SIM905 - a word list reads better than 60 quoted strings
)
_UNSUPPORTED_CLUSTER = frozenset({"connect_backoff", "write_deadline", "write_timeout"})
_UNSUPPORTED_GATEWAY = frozenset({"connect_backoff", "write_deadline", "write_timeout"})
_UNSUPPORTED_ACCOUNT = frozenset(
    {
        "nkey",
        "jetstream",
        "limits",
        "msg_trace",
        "trace_dest",
    }
)


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "array"
    return type(v).__name__


def _url_problem(url: Any) -> str | None:
    """Why ``url`` is not a usable route/gateway URL, or None if it is."""
    if not isinstance(url, str):
        return f"expected a URL string, got {_type_name(url)}"
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        return f"invalid URL {url!r}: {e}"
    if not parts.scheme or not parts.hostname:
        return f"invalid URL {url!r}: expected scheme://host:port"
    if port is None:
        return f"invalid URL {url!r}: no port"
    return None


def _cluster_url(url: str) -> tuple[str, int, str | None, str | None] | None:
    """(host, port, user, password) of a ``-cluster`` URL; port -1 (random) is allowed."""
    m = re.fullmatch(
        r"([a-z][a-z0-9+.-]*)://(?:([^:@/]*)(?::([^@/]*))?@)?(\[[^\]]*\]|[^:/@]+):(-1|\d+)/?",
        url,
        re.I,
    )
    if m is None:
        return None
    _, user, password, host, port = m.groups()
    host = host.strip("[]")
    unq = urllib.parse.unquote
    return host, int(port), (unq(user) if user else None), (unq(password) if password else None)


def _split_host_port(v: str) -> tuple[str, int] | None:
    """Go's net.SplitHostPort for ``host:port`` / ``[v6]:port`` strings (None if malformed)."""
    m = re.fullmatch(r"\[([^\]]*)\]:(\d+)|([^:\[\]]*):(\d+)", v)
    if m is None:
        return None
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = m.group(2) or m.group(4)
    return host, int(port)


class _Builder:
    """Walks a parsed config once, collecting every error and warning with its position."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[ConfigError] = []
        self.opts = Options()
        self.usernames: set[str] = set()
        self.single_user: User | None = None
        self.import_pos: dict[str, Pos | None] = {}
        self.link_pos: dict[tuple[str, str], Pos | None] = {}

    # -- reporting ------------------------------------------------------------------------------

    def where(self, container: Any, key: Any) -> Pos | None:
        if isinstance(container, ConfDict | ConfList):
            return container.pos_of(key)
        return None

    def error(self, pos: Pos | None, message: str) -> None:
        if pos is None:
            self.errors.append(ConfigError(message, self.source))
        else:
            self.errors.append(ConfigError.at(pos, message))

    def warn(self, pos: Pos | None, message: str) -> None:
        self.opts.warnings.append(f"{pos or self.source}: {message}")

    # -- typed getters (None after reporting a fault) -----------------------------------------

    def get(self, d: Mapping[str, Any], key: str, kind: str, name: str) -> Any:
        v = d[key]
        ok = {
            "int": isinstance(v, int) and not isinstance(v, bool),
            "str": isinstance(v, str),
            "bool": isinstance(v, bool),
            "map": isinstance(v, dict),
            "list": isinstance(v, list),
        }[kind]
        if ok:
            return v
        wanted = {
            "int": "an integer",
            "str": "a string",
            "bool": "a boolean",
            "map": "a map",
            "list": "an array",
        }[kind]
        shown = f" {v!r}" if isinstance(v, str | int | float) else ""
        self.error(self.where(d, key), f"{name}: expected {wanted}, got {_type_name(v)}{shown}")
        return None

    def port(self, d: Mapping[str, Any], key: str, name: str) -> int | None:
        v = self.get(d, key, "int", name)
        if v is None:
            return None
        if not -1 <= v <= 65535:
            self.error(
                self.where(d, key),
                f"{name}: port {v} is out of range (0-65535, or -1 for a random port)",
            )
            return None
        return v

    def listen(self, d: Mapping[str, Any], key: str, name: str) -> tuple[str | None, int] | None:
        """``listen``/``http``: a port number or a ``host:port`` string."""
        v = d[key]
        pos = self.where(d, key)
        if isinstance(v, int) and not isinstance(v, bool):
            host, port = None, v
        elif isinstance(v, str):
            hp = _split_host_port(v)
            if hp is None:
                self.error(pos, f"{name}: could not parse address string {v!r} (want host:port)")
                return None
            host, port = hp
        else:
            self.error(pos, f"{name}: expected port or host:port, got {_type_name(v)}")
            return None
        if not -1 <= port <= 65535:
            self.error(pos, f"{name}: port {port} is out of range (0-65535, or -1 for random)")
            return None
        return host, port

    def duration(self, d: Mapping[str, Any], key: str, name: str, *, strict: bool) -> float | None:
        """A Go duration string; ``strict=False`` also takes integer seconds, with a warning."""
        v = d[key]
        pos = self.where(d, key)
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except ValueError as e:
                self.error(pos, f"error parsing {name}: {e}")
                return None
        if not strict and isinstance(v, int) and not isinstance(v, bool):
            self.warn(pos, f"{name} should be converted to a duration (seconds assumed)")
            return float(v)
        wanted = 'a duration string like "2m"' + ("" if strict else " or integer seconds")
        self.error(pos, f"{name}: expected {wanted}, got {_type_name(v)}")
        return None

    def name_without_spaces(self, d: Mapping[str, Any], key: str, name: str) -> str | None:
        v = self.get(d, key, "str", name)
        if v is not None and " " in v:
            self.error(self.where(d, key), f"{name} cannot contain spaces")
            return None
        return v

    def unknown(self, d: Mapping[str, Any], key: str, where: str) -> None:
        """An unknown field is an error, unless it only exists to be used as a variable."""
        if isinstance(d, ConfDict) and key in d.used:
            return
        self.error(self.where(d, key), f'unknown field "{key}"{where}')

    # -- top level -----------------------------------------------------------------------------

    def build(self, d: Mapping[str, Any]) -> Options:
        o = self.opts
        o.config_file = self.source if isinstance(d, ConfDict) else None
        if not d:
            self.warn(self.where(d, ""), "config has no values or is empty")
        lowered = [(k, k.lower()) for k in d]
        # Accounts first, so that authorization can see their users, as nats-server checks
        # conflicts in either order.
        for k, lk in lowered:
            if lk == "accounts":
                self.accounts(d, k)
        for k, lk in lowered:
            if lk == "authorization":
                self.authorization(d, k)
        for k, lk in lowered:
            if lk not in ("accounts", "authorization"):
                self.top(d, k, lk)
        self.validate(d)
        if self.errors:
            raise OptionsError(self.errors)
        return o

    def top(self, d: Mapping[str, Any], k: str, lk: str) -> None:
        o = self.opts
        pos = self.where(d, k)
        handlers: dict[str, Callable[[], None]] = {
            "listen": lambda: self.top_listen(d, k),
            "port": lambda: self.set_if(o, "port", self.port(d, k, k)),
            "host": lambda: self.set_if(o, "host", self.get(d, k, "str", k)),
            "net": lambda: self.set_if(o, "host", self.get(d, k, "str", k)),
            "client_advertise": lambda: self.set_if(
                o, "client_advertise", self.get(d, k, "str", k)
            ),
            "server_name": lambda: self.set_if(
                o, "server_name", self.name_without_spaces(d, k, "server name")
            ),
            "http": lambda: self.top_http(d, k),
            "http_port": lambda: self.set_if(o, "http_port", self.port(d, k, k)),
            "monitor_port": lambda: self.set_if(o, "http_port", self.port(d, k, k)),
            "debug": lambda: self.set_if(o, "debug", self.get(d, k, "bool", k)),
            "trace": lambda: self.set_if(o, "trace", self.get(d, k, "bool", k)),
            "logtime": lambda: self.set_if(o, "logtime", self.get(d, k, "bool", k)),
            "logfile": lambda: self.set_if(o, "log_file", self.get(d, k, "str", k)),
            "log_file": lambda: self.set_if(o, "log_file", self.get(d, k, "str", k)),
            "pidfile": lambda: self.set_if(o, "pid_file", self.get(d, k, "str", k)),
            "pid_file": lambda: self.set_if(o, "pid_file", self.get(d, k, "str", k)),
            "max_control_line": lambda: self.limit(d, k, "max_control_line"),
            "max_payload": lambda: self.limit(d, k, "max_payload"),
            "max_pending": lambda: self.set_if(o, "max_pending", self.get(d, k, "int", k)),
            "max_connections": lambda: self.max_connections(d, k),
            "max_conn": lambda: self.max_connections(d, k),
            "max_subscriptions": lambda: self.set_if(
                o, "max_subscriptions", self.get(d, k, "int", k)
            ),
            "max_subs": lambda: self.set_if(o, "max_subscriptions", self.get(d, k, "int", k)),
            "ping_interval": lambda: self.set_if(
                o, "ping_interval", self.duration(d, k, k, strict=False)
            ),
            "ping_max": lambda: self.set_if(o, "ping_max", self.get(d, k, "int", k)),
            "write_deadline": lambda: self.set_if(
                o, "write_deadline", self.duration(d, k, k, strict=False)
            ),
            "lame_duck_duration": lambda: self.lame_duck(d, k, minimum=30.0),
            "lame_duck_grace_period": lambda: self.lame_duck(d, k, minimum=0.0),
            "no_auth_user": lambda: self.set_if(o, "no_auth_user", self.get(d, k, "str", k)),
            "system_account": lambda: self.set_if(
                o, "system_account", self.get(d, k, "str", "system account name")
            ),
            "system": lambda: self.set_if(
                o, "system_account", self.get(d, k, "str", "system account name")
            ),
            "no_system_account": lambda: self.set_if(
                o, "no_system_account", self.get(d, k, "bool", k)
            ),
            "no_system": lambda: self.set_if(o, "no_system_account", self.get(d, k, "bool", k)),
            "no_sys_acc": lambda: self.set_if(o, "no_system_account", self.get(d, k, "bool", k)),
            "cluster": lambda: self.cluster(d, k),
            "gateway": lambda: self.gateway(d, k),
            "tls": lambda: self.set_if(o, "tls", parse_tls_block(self, d, k, context="client")),
            "allow_non_tls": lambda: self.set_if(o, "allow_non_tls", self.get(d, k, "bool", k)),
            "https_port": lambda: self.set_if(o, "https_port", self.port(d, k, k)),
            "https": lambda: self.top_https(d, k),
            "mappings": lambda: self.top_mappings(d, k),
            "maps": lambda: self.top_mappings(d, k),
        }
        handler = handlers.get(lk)
        if handler is not None:
            handler()
        elif lk in REFUSED_TOP:
            # Fail closed (scserver.refused): security we cannot give is not a warning.
            self.error(pos, refusal("", k, REFUSED_TOP[lk]))
        elif lk in _UNSUPPORTED_TOP:
            self.warn(pos, f'option "{k}" is not supported by this server and is ignored')
        else:
            self.unknown(d, k, "")

    def top_mappings(self, d: Mapping[str, Any], k: str) -> None:
        value = self.get(d, k, "map", k)
        if value is not None:
            self.opts.mappings = _plain(value)
            self.link_pos[(GLOBAL_ACCOUNT, "mappings")] = self.where(d, k)

    @staticmethod
    def set_if(target: Any, attr: str, value: Any) -> None:
        if value is not None:
            setattr(target, attr, value)

    def top_listen(self, d: Mapping[str, Any], k: str) -> None:
        hp = self.listen(d, k, k)
        if hp is not None:
            host, self.opts.port = hp
            if host is not None:
                self.opts.host = host

    def top_http(self, d: Mapping[str, Any], k: str) -> None:
        hp = self.listen(d, k, k)
        if hp is not None:
            host, self.opts.http_port = hp
            if host is not None:
                self.opts.http_host = host

    def top_https(self, d: Mapping[str, Any], k: str) -> None:
        hp = self.listen(d, k, k)
        if hp is not None:
            host, self.opts.https_port = hp
            if host is not None:
                self.opts.http_host = host

    def limit(self, d: Mapping[str, Any], k: str, attr: str) -> None:
        v = self.get(d, k, "int", k)
        if v is None:
            return
        if v > _INT32_MAX:
            self.error(self.where(d, k), f"{k} value is too big")
            return
        if v <= 0:
            self.error(self.where(d, k), f"{k} must be positive")
            return
        if attr == "max_payload" and v > MAX_PAYLOAD_WARN:
            self.warn(self.where(d, k), f"max_payload of {v} bytes is above 8MB, not recommended")
        setattr(self.opts, attr, v)

    def max_connections(self, d: Mapping[str, Any], k: str) -> None:
        v = self.get(d, k, "int", k)
        if v is not None:
            # nats-server reads 0 as "no limit", stored as -1.
            self.opts.max_connections = -1 if v == 0 else v

    def lame_duck(self, d: Mapping[str, Any], k: str, minimum: float) -> None:
        v = self.duration(d, k, k, strict=True)
        if v is None:
            return
        if v < minimum:
            if minimum:
                msg = f"invalid {k} of {d[k]}, minimum is {minimum:g} seconds"
            else:
                msg = f"invalid {k}, needs to be positive"
            self.error(self.where(d, k), msg)
            return
        setattr(self.opts, k.lower(), v)

    # -- users and accounts --------------------------------------------------------------------

    def users(self, d: Mapping[str, Any], k: str, account: str) -> list[User]:
        """Parse a ``users`` array; each user is checked for duplicates across the config."""
        arr = self.get(d, k, "list", "users")
        if arr is None:
            return []
        out: list[User] = []
        for i, entry in enumerate(arr):
            pos = self.where(arr, i)
            if not isinstance(entry, dict):
                self.error(pos, f"expected user entry to be a map, got {_type_name(entry)}")
                continue
            user = User("", None, account)
            nkey: str | None = None
            for uk in entry:
                luk = uk.lower()
                if luk in ("user", "username"):
                    self.set_if(user, "username", self.get(entry, uk, "str", uk))
                elif luk in ("pass", "password"):
                    self.set_if(user, "password", self.get(entry, uk, "str", uk))
                elif luk in ("permission", "permissions", "authorization"):
                    perms = self.get(entry, uk, "map", uk)
                    if perms is not None:
                        user.permissions = _plain(perms)
                elif luk == "nkey":
                    nkey = self.get(entry, uk, "str", uk) or ""
                elif luk in (
                    "allowed_connection_types",
                    "connection_types",
                    "clients",
                    "proxy_required",
                ):
                    why = refused_user_option(uk, _plain(entry[uk]))
                    if why is not None:
                        self.error(self.where(entry, uk), refusal("user ", uk, why))
                else:
                    self.unknown(entry, uk, " in user entry")
            if nkey is not None:
                # As nats-server: an nkey entry takes no name or password, and must be a user
                # public key; a duplicate of any user or nkey is an error.
                if not is_valid_public_user_key(nkey):
                    self.error(pos, "not a valid public nkey for a user")
                elif user.username or user.password:
                    self.error(pos, "nkey users do not take usernames or passwords")
                elif nkey in self.usernames:
                    self.error(pos, f'duplicate nkey "{nkey}" detected')
                else:
                    self.usernames.add(nkey)
                    user.nkey = nkey
                    out.append(user)
                continue
            if not user.username:
                self.error(pos, "user entry requires a user")
                continue
            if user.username in self.usernames:
                self.error(pos, f'duplicate user "{user.username}" detected')
                continue
            self.usernames.add(user.username)
            out.append(user)
        return out

    def authorization(self, d: Mapping[str, Any], k: str) -> None:
        auth = self.get(d, k, "map", k)
        if auth is None:
            return
        o = self.opts
        o.auth_block_defined = True
        pos = self.where(d, k)
        single = User("", None, GLOBAL_ACCOUNT)
        token: str | None = None
        users: list[User] | None = None
        default_perms: dict[str, Any] | None = None
        for ak in auth:
            lak = ak.lower()
            if lak in ("user", "username"):
                self.set_if(single, "username", self.get(auth, ak, "str", ak))
            elif lak in ("pass", "password"):
                self.set_if(single, "password", self.get(auth, ak, "str", ak))
            elif lak == "token":
                token = self.get(auth, ak, "str", ak)
            elif lak == "timeout":
                t = self.auth_timeout(auth, ak)
                if t is not None:
                    o.auth_timeout = t
            elif lak == "users":
                users = self.users(auth, ak, GLOBAL_ACCOUNT)
            elif lak in ("default_permission", "default_permissions", "permissions"):
                perms = self.get(auth, ak, "map", ak)
                if perms is not None:
                    default_perms = _plain(perms)
            elif lak in REFUSED_AUTHORIZATION:
                self.error(
                    self.where(auth, ak), refusal("authorization ", ak, REFUSED_AUTHORIZATION[lak])
                )
            else:
                self.unknown(auth, ak, " in authorization")
        has_single = bool(single.username or single.password)
        if has_single and token:
            self.error(pos, "cannot have a user/pass and a token")
            return
        account_users = any(a.users for a in o.accounts.values())
        if users is not None or account_users:
            if single.username:
                self.error(pos, "cannot have a single user/pass and a users array")
                return
            if token:
                what = "a users array" if users is not None else "accounts with users"
                self.error(pos, f"cannot have a token and {what}")
                return
        if users:
            for u in users:
                if u.permissions is None and default_perms is not None:
                    u.permissions = copy.deepcopy(default_perms)
            o.users.extend(users)
        if has_single:
            if single.username in self.usernames:
                self.error(pos, f'duplicate user "{single.username}" detected')
                return
            self.usernames.add(single.username)
            single.permissions = copy.deepcopy(default_perms)
            self.single_user = single
            o.users.append(single)
        o.token = token

    def auth_timeout(self, d: Mapping[str, Any], k: str, name: str = "timeout") -> float | None:
        """Seconds as a number, or a duration string; over a minute earns a warning."""
        v = d[k]
        pos = self.where(d, k)
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            self.error(pos, f"error parsing authorization config, '{name}' wrong type")
            return None
        if isinstance(v, str):
            try:
                seconds = parse_duration(v)
            except ValueError as e:
                self.error(pos, f"error parsing authorization config, '{name}' {e}")
                return None
        else:
            seconds = float(v)
        if seconds > 60:
            self.warn(pos, f"{name} of {v} ({seconds:g} seconds) is high, keep it under 60")
        return seconds

    def accounts(self, d: Mapping[str, Any], k: str) -> None:
        v = d[k]
        o = self.opts
        if isinstance(v, list):
            for i, name in enumerate(v):
                pos = self.where(v, i)
                if not isinstance(name, str):
                    self.error(pos, f"account name must be a string, got {_type_name(name)}")
                elif name == GLOBAL_ACCOUNT:
                    self.error(pos, f'"{name}" is a reserved account')
                elif name in o.accounts:
                    self.error(pos, f"duplicate account entry: {name}")
                else:
                    o.accounts[name] = Account(name)
            return
        if not isinstance(v, dict):
            self.error(
                self.where(d, k), f"accounts: expected a map or an array, got {_type_name(v)}"
            )
            return
        for name in v:
            pos = self.where(v, name)
            if isinstance(v, ConfDict) and name in v.used:
                continue  # a variable defined inside the accounts block, not an account
            body = v[name]
            if not isinstance(body, dict):
                self.error(pos, f"expected map entries for accounts (account {name!r})")
                continue
            if name == GLOBAL_ACCOUNT:
                self.error(pos, f'"{name}" is a reserved account')
                continue
            acc = Account(name)
            o.accounts[name] = acc
            for ak in body:
                lak = ak.lower()
                if lak == "users":
                    acc.users = self.users(body, ak, name)
                elif lak in ("exports", "imports"):
                    items = self.get(body, ak, "list", ak)
                    if items is not None:
                        setattr(acc, lak, _plain(items))
                        if lak == "imports":
                            self.import_pos[name] = self.where(body, ak)
                        self.link_pos[(name, lak)] = self.where(body, ak)
                elif lak in ("mappings", "maps"):
                    acc.mappings = _plain(body[ak])
                    self.link_pos[(name, "mappings")] = self.where(body, ak)
                elif lak in REFUSED_ACCOUNT:
                    self.error(self.where(body, ak), refusal("account ", ak, REFUSED_ACCOUNT[lak]))
                elif lak in _UNSUPPORTED_ACCOUNT:
                    acc.extra[ak] = _plain(body[ak])
                    self.warn(
                        self.where(body, ak), f'account option "{ak}" is not supported; ignored'
                    )
                else:
                    self.unknown(body, ak, f" in account {name!r}")
            o.users.extend(acc.users)

    # -- cluster and gateway -------------------------------------------------------------------

    def route_auth(self, d: Mapping[str, Any], k: str, what: str) -> tuple[Any, Any, Any] | None:
        """Cluster/gateway ``authorization``: a single user only. (user, password, timeout)."""
        auth = self.get(d, k, "map", f"{what} authorization")
        if auth is None:
            return None
        user = password = timeout = None
        for ak in auth:
            lak = ak.lower()
            if lak in ("user", "username"):
                user = self.get(auth, ak, "str", ak)
            elif lak in ("pass", "password"):
                password = self.get(auth, ak, "str", ak)
            elif lak == "timeout":
                timeout = self.auth_timeout(auth, ak)
            elif lak == "users":
                self.error(self.where(d, k), f"{what} authorization does not allow multiple users")
                return None
            elif lak == "token":
                self.error(self.where(d, k), f"{what} authorization does not support tokens")
                return None
            elif lak in ("auth_callout", "auth_hook"):
                self.error(self.where(d, k), f"{what} authorization does not support callouts")
                return None
            elif lak in ("permissions", "default_permissions", "default_permission"):
                self.warn(self.where(auth, ak), f"{what} permissions are not supported; ignored")
            else:
                self.unknown(auth, ak, f" in {what.lower()} authorization")
        return user, password, timeout

    def url_list(self, arr: list[Any], what: str, pos: Pos | None = None) -> list[str]:
        """Check URLs; duplicates are dropped with a warning, as nats-server does.

        ``pos`` locates elements of a plain list (a single ``url`` wrapped in a list).
        """
        out: list[str] = []
        for i, url in enumerate(arr):
            pos = self.where(arr, i) if isinstance(arr, ConfList) else pos
            problem = _url_problem(url)
            if problem:
                self.error(pos, f"{what} url: {problem}")
                continue
            url = url.strip()
            if url in out:
                self.warn(pos, f"duplicate {what} entry {url!r} ignored")
                continue
            out.append(url)
        return out

    def cluster(self, d: Mapping[str, Any], k: str) -> None:
        cm = self.get(d, k, "map", "cluster")
        if cm is None:
            return
        c = ClusterOpts()
        self.opts.cluster = c
        for ck in cm:
            lck = ck.lower()
            if lck == "name":
                self.set_if(c, "name", self.name_without_spaces(cm, ck, "cluster name"))
            elif lck == "listen":
                hp = self.listen(cm, ck, "cluster listen")
                if hp is not None:
                    host, c.port = hp
                    if host is not None:
                        c.host = host
            elif lck == "port":
                self.set_if(c, "port", self.port(cm, ck, "cluster port"))
            elif lck in ("host", "net"):
                self.set_if(c, "host", self.get(cm, ck, "str", ck))
            elif lck == "authorization":
                auth = self.route_auth(cm, ck, "Cluster")
                if auth is not None:
                    c.username, c.password, timeout = auth
                    if timeout is not None:
                        c.auth_timeout = timeout
            elif lck == "routes":
                arr = self.get(cm, ck, "list", "routes")
                if arr is not None:
                    c.routes = self.url_list(arr, "route")
            elif lck in ("cluster_advertise", "advertise"):
                self.set_if(c, "advertise", self.get(cm, ck, "str", ck))
            elif lck == "no_advertise":
                self.set_if(c, "no_advertise", self.get(cm, ck, "bool", ck))
            elif lck == "connect_retries":
                self.set_if(c, "connect_retries", self.get(cm, ck, "int", ck))
            elif lck == "pool_size":
                self.set_if(c, "pool_size", self.get(cm, ck, "int", ck))
            elif lck == "accounts":
                arr = self.get(cm, ck, "list", "cluster accounts")
                if arr is not None:
                    names = [a for a in arr if isinstance(a, str)]
                    if len(names) != len(arr):
                        self.error(self.where(cm, ck), "cluster accounts must be strings")
                    c.pinned_accounts = names
            elif lck == "compression":
                self.compression(cm, ck, c)
            elif lck == "ping_interval":
                self.set_if(c, "ping_interval", self.duration(cm, ck, ck, strict=False))
            elif lck == "ping_max":
                self.set_if(c, "ping_max", self.get(cm, ck, "int", ck))
            elif lck == "tls":
                c.tls = parse_tls_block(self, cm, ck, context="cluster")
            elif lck in REFUSED_CLUSTER:
                self.error(self.where(cm, ck), refusal("cluster ", ck, REFUSED_CLUSTER[lck]))
            elif lck in _UNSUPPORTED_CLUSTER:
                self.warn(self.where(cm, ck), f'cluster option "{ck}" is not supported; ignored')
            else:
                self.unknown(cm, ck, " in cluster")

    def compression(self, d: Mapping[str, Any], k: str, c: ClusterOpts) -> None:
        v = d[k]
        pos = self.where(d, k)
        if isinstance(v, bool):
            c.compression = "s2_fast" if v else "off"
            return
        if isinstance(v, dict):
            mode = next((v[mk] for mk in v if mk.lower() == "mode"), None)
            for mk in v:
                if mk.lower() not in ("mode", "rtt_thresholds", "thresholds", "rtts", "rtt"):
                    self.unknown(v, mk, " in compression")
            v = mode if mode is not None else "accept"
        if not isinstance(v, str):
            self.error(pos, f'field "{k}" should be a boolean or a structure, got {_type_name(v)}')
            return
        mode = v.lower()
        aliases = {
            "on": "s2_fast",
            "enabled": "s2_fast",
            "true": "s2_fast",
            "disabled": "off",
            "false": "off",
            "uncompressed": "s2_uncompressed",
            "fast": "s2_fast",
            "better": "s2_better",
            "best": "s2_best",
            "auto": "s2_auto",
            "s2_auto": "s2_auto",
        }
        mode = aliases.get(mode, mode)
        if mode not in COMPRESSION_MODES:
            self.error(pos, f"unsupported compression mode {v!r}")
            return
        c.compression = mode

    def gateway(self, d: Mapping[str, Any], k: str) -> None:
        gm = self.get(d, k, "map", "gateway")
        if gm is None:
            return
        g = GatewayOpts()
        self.opts.gateway = g
        for gk in gm:
            lgk = gk.lower()
            if lgk == "name":
                self.set_if(g, "name", self.name_without_spaces(gm, gk, "gateway name"))
            elif lgk == "listen":
                hp = self.listen(gm, gk, "gateway listen")
                if hp is not None:
                    host, g.port = hp
                    if host is not None:
                        g.host = host
            elif lgk == "port":
                self.set_if(g, "port", self.port(gm, gk, "gateway port"))
            elif lgk in ("host", "net"):
                self.set_if(g, "host", self.get(gm, gk, "str", gk))
            elif lgk == "authorization":
                auth = self.route_auth(gm, gk, "Gateway")
                if auth is not None:
                    g.username, g.password, timeout = auth
                    if timeout is not None:
                        g.auth_timeout = timeout
            elif lgk == "advertise":
                self.set_if(g, "advertise", self.get(gm, gk, "str", gk))
            elif lgk == "connect_retries":
                self.set_if(g, "connect_retries", self.get(gm, gk, "int", gk))
            elif lgk in ("reject_unknown", "reject_unknown_cluster"):
                self.set_if(g, "reject_unknown_cluster", self.get(gm, gk, "bool", gk))
            elif lgk == "gateways":
                self.remote_gateways(gm, gk, g)
            elif lgk == "tls":
                g.tls = parse_tls_block(self, gm, gk, context="gateway")
            elif lgk == "interest_mode":
                # scserver extension: how our inbound links start (nats-server 2.9+ always
                # switches to interest-only at once; "optimistic" keeps the classic mode).
                mode = self.get(gm, gk, "str", gk)
                if mode is not None and mode not in ("interest_only", "optimistic"):
                    self.error(
                        self.where(gm, gk),
                        f'gateway interest_mode must be "interest_only" or "optimistic", '
                        f"got {mode!r}",
                    )
                elif mode is not None:
                    g.interest_mode = mode
            elif lgk == "interest_only_threshold":
                threshold = self.get(gm, gk, "int", gk)
                if threshold is not None and threshold < 1:
                    self.error(self.where(gm, gk), "gateway interest_only_threshold must be >= 1")
                elif threshold is not None:
                    g.interest_only_threshold = threshold
            elif lgk in _UNSUPPORTED_GATEWAY:
                self.warn(self.where(gm, gk), f'gateway option "{gk}" is not supported; ignored')
            else:
                self.unknown(gm, gk, " in gateway")

    def remote_gateways(self, gm: Mapping[str, Any], gk: str, g: GatewayOpts) -> None:
        arr = self.get(gm, gk, "list", "gateways")
        if arr is None:
            return
        seen: set[str] = set()
        for i, entry in enumerate(arr):
            pos = self.where(arr, i)
            if not isinstance(entry, dict):
                self.error(pos, f"expected gateway entry to be a map, got {_type_name(entry)}")
                continue
            name: str | None = None
            urls: list[str] = []
            tls: TLSConfig | None = None
            for ek in entry:
                lek = ek.lower()
                if lek == "name":
                    name = self.get(entry, ek, "str", "gateway entry name")
                elif lek == "url":
                    single = self.url_list([entry[ek]], "gateway", self.where(entry, ek))
                    urls.extend(u for u in single if u not in urls)
                elif lek == "urls":
                    items = self.get(entry, ek, "list", ek)
                    if items is not None:
                        urls.extend(u for u in self.url_list(items, "gateway") if u not in urls)
                elif lek == "tls":
                    tls = parse_tls_block(self, entry, ek, context="remote gateway")
                else:
                    self.unknown(entry, ek, " in gateway entry")
            if not name:
                self.error(pos, "gateway entry needs a name")
                continue
            if not urls:
                self.error(pos, f"gateway entry {name!r} needs at least one url")
                continue
            if name in seen:
                self.error(pos, f"duplicate gateway entry {name!r}")
                continue
            seen.add(name)
            g.gateways.append(RemoteGateway(name, urls, tls))

    # -- cross-field checks (nats-server makes these when it starts) ---------------------------

    def validate(self, d: Mapping[str, Any]) -> None:
        o = self.opts
        g = o.gateway
        key_of = {k.lower(): k for k in d}
        if o.max_pending > 0 and o.max_payload > o.max_pending:
            self.error(
                self.where(d, key_of.get("max_payload", key_of.get("max_pending", ""))),
                f"max_payload ({o.max_payload}) cannot be higher than max_pending "
                f"({o.max_pending})",
            )
        if g is not None and (g.name or g.port):
            pos = self.where(d, key_of.get("gateway", ""))
            if not g.name:
                self.error(pos, "gateway has no name")
            elif not g.port:
                self.error(pos, f'gateway "{g.name}" has no port specified (select -1 for random)')
        if (
            g is not None
            and g.name
            and o.cluster is not None
            and o.cluster.name
            and o.cluster.name != g.name
        ):
            self.error(
                self.where(d, key_of.get("cluster", "")),
                f"cluster name {o.cluster.name!r} conflicts with gateway name {g.name!r}",
            )
        # A tls:// URL asks for TLS; without a tls {} block that applies to it, nats-server
        # would dial it in plaintext (it ignores the scheme). Refused instead (link_tls.py).
        if o.cluster is not None and o.cluster.tls is None:
            for u in o.cluster.routes:
                if str(u).lower().startswith("tls://"):
                    self.error(
                        self.where(d, key_of.get("cluster", "")),
                        f"cluster route {u!r} is a tls:// URL but cluster has no tls {{}} block",
                    )
        if g is not None and g.tls is None:
            for r in g.gateways:
                bad = [u for u in r.urls if str(u).lower().startswith("tls://")]
                if bad and r.tls is None and r.name != g.name:
                    self.error(
                        self.where(d, key_of.get("gateway", "")),
                        f"gateway {r.name!r} url {bad[0]!r} is a tls:// URL but neither the "
                        "entry nor gateway has a tls {} block",
                    )
        auth_block = d.get(key_of.get("authorization", ""))
        if o.tls is not None and not (
            isinstance(auth_block, Mapping) and any(k.lower() == "timeout" for k in auth_block)
        ):
            # nats-server's default auth timeout with TLS: the TLS timeout plus one second.
            o.auth_timeout = o.tls.timeout + 1.0
        if o.https_port and o.http_port:
            self.error(
                self.where(d, key_of.get("https_port", key_of.get("https", ""))),
                f"can't specify both HTTP ({o.http_port}) and HTTPs ({o.https_port}) ports",
            )
        if o.https_port and o.tls is None:
            self.error(
                self.where(d, key_of.get("https_port", key_of.get("https", ""))),
                "https_port requires a tls {} block with cert_file and key_file",
            )
        if o.no_auth_user is not None and o.find_user(o.no_auth_user) is None:
            self.error(
                self.where(d, key_of.get("no_auth_user", "")),
                f"no_auth_user: user {o.no_auth_user!r} is not configured",
            )
        sys_key = key_of.get("system_account", key_of.get("system"))
        if sys_key is not None and not o.no_system_account:
            name = o.system_account
            if name not in o.accounts and name != SYSTEM_ACCOUNT:
                self.error(
                    self.where(d, sys_key),
                    f"system_account: account {name!r} is not defined in accounts",
                )
        if o.cluster is not None and o.cluster.pinned_accounts:
            for name in o.cluster.pinned_accounts:
                if name not in o.accounts and name not in (GLOBAL_ACCOUNT, SYSTEM_ACCOUNT):
                    self.error(
                        self.where(d, key_of.get("cluster", "")),
                        f"cluster accounts: account {name!r} is not defined",
                    )
        self.check_imports()

    def check_imports(self) -> None:
        """Imports must name accounts that exist (nats-server rejects this at -t time)."""
        o = self.opts
        for acc in o.accounts.values():
            for entry in acc.imports:
                if not isinstance(entry, dict):
                    continue
                for kind in ("stream", "service"):
                    spec = entry.get(kind)
                    if isinstance(spec, dict):
                        other = spec.get("account")
                        if isinstance(other, str) and other not in o.accounts:
                            self.error(
                                self.import_pos.get(acc.name),
                                f"{other!r} account not defined for {kind} import "
                                f"(in account {acc.name!r})",
                            )
        for name, block, message in links.check_options(o):
            self.error(self.link_pos.get((name, block)), f"account {name!r}: {message}")


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts/lists, so later layers never depend on conf types."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

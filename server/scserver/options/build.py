"""The conf walk: a parsed config (``scserver.conf``) into the options model, every fault
collected with its position. Link blocks and cross-field checks are mixins in ``links.py`` and
``validate.py``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ..auth import is_valid_public_user_key
from ..conf import ConfDict, ConfigError, ConfList, Pos
from ..refused import (
    REFUSED_ACCOUNT,
    REFUSED_AUTHORIZATION,
    REFUSED_TOP,
    refusal,
    refused_user_option,
)
from .links import _LinkBlocks
from .model import GLOBAL_ACCOUNT, Account, Options, OptionsError, User
from .tls import parse_tls_block
from .validate import _Checks
from .values import (
    _INT32_MAX,
    _UNSUPPORTED_ACCOUNT,
    _UNSUPPORTED_TOP,
    MAX_PAYLOAD_WARN,
    _plain,
    _split_host_port,
    _type_name,
    parse_duration,
)


class _Builder(_LinkBlocks, _Checks):
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

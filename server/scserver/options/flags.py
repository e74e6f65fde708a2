"""Command-line flags laid over file options (one copy of the flag checks)."""

from __future__ import annotations

import copy
from typing import Any

from ..conf import ConfigError
from .model import GLOBAL_ACCOUNT, ClusterOpts, Options, User
from .values import _cluster_url, _url_problem


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

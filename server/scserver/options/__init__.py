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

The package is parse → model → validate: ``model`` holds the dataclasses and the only defaults,
``build`` walks the conf into them (``links`` for the cluster and gateway blocks, ``tls`` for
``tls {}`` blocks), ``validate`` runs the cross-field checks, ``flags`` lays command-line flags
over the result, and ``values`` parses durations, URLs and ``host:port`` pairs for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conf import ConfigError, parse_file
from .build import _Builder
from .flags import apply_flags
from .model import (
    GLOBAL_ACCOUNT,
    SYSTEM_ACCOUNT,
    Account,
    ClusterOpts,
    GatewayOpts,
    Options,
    OptionsError,
    RemoteGateway,
    User,
)
from .values import parse_duration

__all__ = [
    "Account",
    "ClusterOpts",
    "ConfigError",
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


def load(path: str) -> Options:
    """Parse and check a config file. Raises ConfigError (OptionsError for option faults)."""
    return from_dict(parse_file(path), source=path)


def from_dict(d: Mapping[str, Any], source: str = "<dict>") -> Options:
    """Build Options from a parsed config (a ConfDict keeps positions; a plain dict works too).

    ``source`` names the origin in messages about values that carry no position.
    """
    return _Builder(source).build(d)

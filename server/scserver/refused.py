"""Options nats-server knows that scserver refuses rather than ignores: failing closed.

A config that asks for a security property this server cannot give (JWT/operator logins, auth
callouts, OCSP, permissions on routes or per account, connection-type limits) must not start in
a weaker mode with a warning nobody reads. Each entry names why it is refused; ``options.py``
turns it into a located config error (file:line, option named) so ``scserver -t`` fails.

What stays a warning: options that open a listener we never open (``leafnodes``, ``websocket``,
``mqtt``: a port that does not exist lets nobody in), and options that do not change who may
connect or how traffic is protected (``jetstream``, log rotation, ...). TLS options are handled
by ``tls.py``.
"""

from __future__ import annotations

from typing import Any

_JWT = "operator (JWT) mode is not implemented; only users in the config file can log in"
_RESOLVER = "account JWT resolvers are not implemented (operator mode)"

#: Top-level keys, lower case.
REFUSED_TOP: dict[str, str] = {
    "operator": _JWT,
    "operators": _JWT,
    "root_operator": _JWT,
    "root_operators": _JWT,
    "root": _JWT,
    "roots": _JWT,
    "trusted": _JWT,
    "trusted_keys": _JWT,
    "default_sentinel": _JWT,
    "resolver": _RESOLVER,
    "account_resolver": _RESOLVER,
    "accounts_resolver": _RESOLVER,
    "resolver_preload": _RESOLVER,
    "resolver_tls": _RESOLVER,
    "resolver_pinned_accounts": _RESOLVER,
    "ocsp": "OCSP certificate status checking is not implemented",
    "ocsp_cache": "OCSP certificate status checking is not implemented",
}

#: Keys of the top-level ``authorization {}`` block.
REFUSED_AUTHORIZATION: dict[str, str] = {
    "auth_callout": "auth callout (delegated authentication) is not implemented",
    "auth_hook": "auth callout (delegated authentication) is not implemented",
    "proxy_required": "trusted proxies are not implemented",
}

#: Keys of an account in ``accounts {}``.
REFUSED_ACCOUNT: dict[str, str] = {
    "default_permissions": (
        "account default permissions are not implemented; the account's users would have "
        "no permission limits"
    ),
}

#: Keys of the ``cluster {}`` block.
REFUSED_CLUSTER: dict[str, str] = {
    "permissions": "route import/export permissions are not implemented",
}

#: Connection types a user limited to them could use here (scserver has plain clients only).
_SERVED_CONNECTION_TYPES = frozenset({"STANDARD"})


def refused_user_option(key: str, value: Any) -> str | None:
    """Why a user entry option must be refused, or None when it is honoured as it stands."""
    lk = key.lower()
    if lk == "proxy_required":
        return "trusted proxies are not implemented" if value is not False else None
    if lk in ("allowed_connection_types", "connection_types", "clients"):
        types = [value] if isinstance(value, str) else value
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            return "expected a list of connection type names"
        if types and not _SERVED_CONNECTION_TYPES & {t.upper() for t in types}:
            # The user may only use connection types this server does not serve: ignoring the
            # limit would let them in as a plain client.
            return (
                f"connection types {sorted(set(types))} are not served here "
                f"(only {sorted(_SERVED_CONNECTION_TYPES)})"
            )
        return None
    return None


def refusal(where: str, key: str, reason: str) -> str:
    """The config error text for a refused option."""
    return f'{where}option "{key}" is not supported by this server and is refused: {reason}'

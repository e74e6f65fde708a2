"""Values shared by the options loader and the flags: Go durations, ``-cluster`` URLs, route and
gateway URLs, and the collected-faults error. Pins ``scserver.options.values`` and
``OptionsError`` through their public entry points (see docs/mutation.md)."""

from __future__ import annotations

import pytest
from tests.server.options_helpers import opts

from scserver.conf import ConfigError
from scserver.options import Options, OptionsError, apply_flags, from_dict, parse_duration

# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1ns", 1e-9),
        ("1us", 1e-6),
        ("1µs", 1e-6),  # noqa: RUF001 - Go accepts the micro sign
        ("1μs", 1e-6),  # noqa: RUF001 - and the Greek mu
        ("1ms", 1e-3),
        ("1s", 1.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1h2m3s", 3723.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("2m500ms", 120.5),
        (" 3s ", 3.0),
        ("+4s", 4.0),
        ("-4s", -4.0),
        ("-1m30s", -90.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("+0", 0.0),
        (" 0 ", 0.0),
        ("0s", 0.0),
        ("10ms20us", 0.01002),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("value", "seconds"), [(3, 3.0), (0, 0.0), (0.25, 0.25), (-2, -2.0)])
def test_numbers_are_seconds(value: float, seconds: float) -> None:
    got = parse_duration(value)
    assert got == seconds and type(got) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid duration ''"),
        ("-", "invalid duration '-'"),
        ("+", "invalid duration '+'"),
        ("  ", "invalid duration '  '"),
        ("5", "missing unit in duration '5'"),
        ("1s5", "missing unit in duration '1s5'"),
        ("1.5", "missing unit in duration '1.5'"),
        (".5", "missing unit in duration '.5'"),
        ("1d", "unknown unit 'd' in duration '1d'"),
        ("3days", "unknown unit 'days' in duration '3days'"),
        ("s", "unknown unit 's' in duration 's'"),
        ("1s..", "invalid duration '1s..'"),
        ("--1s", "unknown unit '-' in duration '--1s'"),
        (True, "expected a duration, got True"),
        (False, "expected a duration, got False"),
        (None, "expected a duration, got NoneType"),
        ([1], "expected a duration, got list"),
    ],
)
def test_bad_durations_say_why(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(info.value) == message


# -- the -cluster flag's URL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "password"),
    [
        ("nats://0.0.0.0:6222", "0.0.0.0", 6222, None, None),
        ("nats://127.0.0.1:6222/", "127.0.0.1", 6222, None, None),
        ("NATS-Route://h:-1", "h", -1, None, None),
        ("nats://[::1]:6333", "::1", 6333, None, None),
        ("nats://u:p@h:1", "h", 1, "u", "p"),
        ("nats://u%40x:p%3Aw@h:1", "h", 1, "u@x", "p:w"),
        ("nats://u@h:1", "h", 1, "u", None),
        ("nats://u:@h:1", "h", 1, "u", None),
        ("tls://h:2", "h", 2, None, None),
        ("nats://HOSTX:3", "HOSTX", 3, None, None),
        ("nats://[XX::1]:4", "XX::1", 4, None, None),
    ],
)
def test_cluster_flag_urls(
    url: str, host: str, port: int, user: str | None, password: str | None
) -> None:
    o = apply_flags(Options(), cluster=url)
    assert o.cluster is not None
    assert (o.cluster.host, o.cluster.port) == (host, port)
    assert (o.cluster.username, o.cluster.password) == (user, password)


@pytest.mark.parametrize(
    "url", ["h:1", "nats://h", "nats://h:x", "nats://h:1/x", "1nats://h:1", "nats://h:1:2", ""]
)
def test_bad_cluster_flag_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_flags(Options(), cluster=url)
    assert str(info.value) == (
        f"<flags>: flag cluster: expected a URL like nats://host:port, got {url!r}"
    )


def test_cluster_flag_without_credentials_keeps_the_files() -> None:
    base = opts("cluster { port: 1, authorization { user: ru, password: rp } }")
    o = apply_flags(base, cluster="nats://10.0.0.1:7")
    assert o.cluster is not None
    assert (o.cluster.host, o.cluster.port, o.cluster.username, o.cluster.password) == (
        "10.0.0.1",
        7,
        "ru",
        "rp",
    )


# -- route and gateway URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["nats://h:1", "nats-route://u:p@h:2", "tls://h:3", " nats://h:4 ", "nats://[::1]:5"],
)
def test_good_route_urls(url: str) -> None:
    o = apply_flags(Options(), routes=[url])
    assert o.cluster is not None and o.cluster.routes == [url.strip()]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("nats://h", "invalid URL 'nats://h': no port"),
        ("h:1", "invalid URL 'h:1': expected scheme://host:port"),
        ("nats://:1", "invalid URL 'nats://:1': expected scheme://host:port"),
        ("//h:1", "invalid URL '//h:1': expected scheme://host:port"),
        ("nats://h:x", "invalid URL 'nats://h:x': Port could not be cast to integer value as 'x'"),
        ("nats://h:70000", "invalid URL 'nats://h:70000': Port out of range 0-65535"),
        ("nats://[::1:1", "invalid URL 'nats://[::1:1': Invalid IPv6 URL"),
    ],
)
def test_bad_route_urls(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_flags(Options(), routes=url)
    assert str(info.value) == f"<flags>: flag routes: {why}"


def test_route_urls_that_are_not_strings() -> None:
    with pytest.raises(ConfigError) as info:
        opts("cluster { routes: [1.5, true, {a: 1}] }")
    assert str(info.value).splitlines() == [
        "t.conf:1:20: route url: expected a URL string, got float",
        "t.conf:1:25: route url: expected a URL string, got boolean",
        "t.conf:1:31: route url: expected a URL string, got map",
    ]


# -- the collected-faults error --------------------------------------------------------------


def test_options_error_is_located_at_the_first_fault_and_lists_all() -> None:
    with pytest.raises(OptionsError) as info:
        opts("port: 1\ndebug: 1\ntrace: 2")
    e = info.value
    assert (e.message, e.file, e.line, e.column) == (
        "debug: expected a boolean, got integer 1",
        "t.conf",
        2,
        1,
    )
    assert [x.message for x in e.errors] == [
        "debug: expected a boolean, got integer 1",
        "trace: expected a boolean, got integer 2",
    ]
    assert str(e) == (
        "t.conf:2:1: debug: expected a boolean, got integer 1\n"
        "t.conf:3:1: trace: expected a boolean, got integer 2"
    )
    assert isinstance(e, ConfigError)


def test_options_error_without_positions() -> None:
    with pytest.raises(OptionsError) as info:
        from_dict({"debug": 1}, source="src")
    e = info.value
    assert (e.file, e.line, e.column) == ("src", None, None)
    assert str(e) == "src: debug: expected a boolean, got integer 1"

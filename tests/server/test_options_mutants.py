"""Command-line flags over file options: every check names the flag and the bad value.

``make mutate`` found ``apply_flags`` loosely covered; these pin its contract in-process: the
type and range checks with their exact messages, flags that leave the input untouched, users
replaced by name, cluster URLs with credentials, and route lists (string or list).
"""

from __future__ import annotations

import pytest

from scserver.options import ClusterOpts, ConfigError, Options, User, apply_flags, from_dict


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"port": "1"}, "flag port: expected an integer, got '1'"),
        ({"port": True}, "flag port: expected an integer, got True"),
        ({"http_port": 1.5}, "flag http_port: expected an integer, got 1.5"),
        ({"debug": 1}, "flag debug: expected bool, got 1"),
        ({"host": 5}, "flag host: expected str, got 5"),
        ({"port": 65536}, "flag port: port 65536 is out of range"),
        ({"http_port": -2}, "flag http_port: port -2 is out of range"),
        ({"server_name": "a b"}, "flag server_name: server name cannot contain spaces"),
        ({"bogus": 1}, "unknown flag 'bogus'"),
        ({"password": "x"}, "flag password needs a user flag too"),
        ({"user": "", "password": "x"}, "flag password needs a user flag too"),
        ({"user": "u", "token": "t"}, "flag user: cannot combine a user with a token"),
        ({"cluster": "x"}, "flag cluster: expected a URL like nats://host:port, got 'x'"),
        ({"cluster": 5}, "flag cluster: expected a URL like nats://host:port, got 5"),
        ({"cluster_name": "a b"}, "flag cluster_name: invalid cluster name 'a b'"),
        ({"cluster_name": ""}, "flag cluster_name: invalid cluster name ''"),
        ({"cluster_name": 3}, "flag cluster_name: invalid cluster name 3"),
        (
            {"routes": "nats://a:1, ,bad"},
            "flag routes: invalid URL 'bad': expected scheme://host:port",
        ),
        ({"routes": ["nats://a:1", "ftp://x"]}, "flag routes: invalid URL 'ftp://x': no port"),
    ],
)
def test_bad_flags_are_refused_by_name(flags: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_flags(Options(), **flags)
    assert str(info.value) == "<flags>: " + message


@pytest.mark.parametrize("port", [-1, 0, 65535])
def test_port_range_ends_are_accepted(port: int) -> None:
    out = apply_flags(Options(), port=port, http_port=port)
    assert (out.port, out.http_port) == (port, port)


def test_every_simple_flag_lands_on_its_option() -> None:
    given = {
        "port": 4333,
        "host": "127.0.0.2",
        "http_port": 8333,
        "server_name": "n1",
        "client_advertise": "x.example:4222",
        "debug": True,
        "trace": True,
        "logtime": False,
        "log_file": "/tmp/l",
        "pid_file": "/tmp/p",
        "token": "s3cret",
    }
    out = apply_flags(Options(), **given)
    for name, value in given.items():
        assert getattr(out, name) == value, name
    assert out.flag_overrides == given


def test_flags_not_given_change_nothing_and_input_stays() -> None:
    base = from_dict({"port": 4223, "cluster": {"name": "c", "port": 6222}})
    out = apply_flags(base, port=None, cluster_name=None, routes=None)
    assert out.port == 4223 and out.flag_overrides == {}
    out2 = apply_flags(base, cluster_name="d", routes="nats://r:1")
    assert base.cluster is not None and base.cluster.name == "c" and base.cluster.routes == []
    assert out2.cluster is not None and (out2.cluster.name, out2.cluster.port) == ("d", 6222)
    assert out2.cluster.routes == ["nats://r:1"]
    assert apply_flags(out2, port=1).flag_overrides == {
        "cluster_name": "d",
        "routes": "nats://r:1",
        "port": 1,
    }


def test_user_flag_replaces_a_user_of_that_name() -> None:
    base = Options()
    base.users = [User("bob", "old", "A"), User("amy", "x", "$G")]
    out = apply_flags(base, user="bob", password="pw")
    assert out.users == [User("amy", "x", "$G"), User("bob", "pw", "$G")]
    assert [u.username for u in base.users] == ["bob", "amy"]
    assert apply_flags(Options(), user="solo").users == [User("solo", None, "$G")]


def test_cluster_flag_sets_listen_address_and_credentials() -> None:
    out = apply_flags(Options(), cluster="nats://u:p@1.2.3.4:6223")
    assert isinstance(out.cluster, ClusterOpts)
    c = out.cluster
    assert (c.host, c.port, c.username, c.password) == ("1.2.3.4", 6223, "u", "p")
    plain = apply_flags(
        from_dict({"cluster": {"port": 1, "authorization": {"user": "a", "password": "b"}}}),
        cluster="nats://0.0.0.0:7",
    )
    assert plain.cluster is not None
    assert (plain.cluster.host, plain.cluster.port) == ("0.0.0.0", 7)
    assert (plain.cluster.username, plain.cluster.password) == ("a", "b")


@pytest.mark.parametrize("flag", ["cluster_name", "routes"])
def test_cluster_flags_create_the_cluster_block(flag: str) -> None:
    value = "c1" if flag == "cluster_name" else ["nats://a:1", " nats://b:2 ", ""]
    out = apply_flags(Options(), **{flag: value})
    assert out.cluster is not None
    if flag == "cluster_name":
        assert out.cluster.name == "c1"
    else:
        assert out.cluster.routes == ["nats://a:1", "nats://b:2"]

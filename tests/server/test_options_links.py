"""``cluster {}`` and ``gateway {}`` blocks as the options loader reads them: every key lands on
its field, every alias works, every fault has its exact ``file:line:col`` message. Pins the
behaviour of ``scserver.options.links`` key by key (see docs/mutation.md)."""

from __future__ import annotations

import pytest
from tests.server.options_helpers import errors, opts

from scserver.options import ClusterOpts, GatewayOpts, RemoteGateway


def block(kind: str, *lines: str) -> str:
    """``kind {`` on line 1, then ``lines`` one per line from line 2, column 3."""
    return kind + " {\n" + "\n".join(f"  {x}" for x in lines) + "\n}"


def cluster(*lines: str) -> ClusterOpts:
    c = opts(block("cluster", *lines)).cluster
    assert c is not None
    return c


def gateway(*lines: str) -> GatewayOpts:
    g = opts(block("gateway", "name: A", "port: 7222", *lines)).gateway
    assert g is not None
    return g


# -- cluster ---------------------------------------------------------------------------------


def test_an_empty_cluster_block_has_nats_server_defaults() -> None:
    assert cluster() == ClusterOpts()
    c = ClusterOpts()
    assert (c.host, c.port, c.pool_size, c.compression, c.auth_timeout) == (
        "0.0.0.0",
        0,
        3,
        "accept",
        2.0,
    )


def test_every_cluster_key_lands_on_its_field() -> None:
    c = cluster(
        "Name: C1",
        "Host: 10.0.0.1",
        "Port: 6333",
        'Cluster_Advertise: "c:1"',
        "No_Advertise: true",
        "Connect_Retries: 7",
        "Pool_Size: 5",
        'Ping_Interval: "30s"',
        "Ping_Max: 4",
    )
    assert (c.name, c.host, c.port, c.advertise, c.no_advertise) == (
        "C1",
        "10.0.0.1",
        6333,
        "c:1",
        True,
    )
    assert (c.connect_retries, c.pool_size, c.ping_interval, c.ping_max) == (7, 5, 30.0, 4)
    assert cluster("net: 10.0.0.2").host == "10.0.0.2"
    assert cluster('advertise: "d:2"').advertise == "d:2"


def test_cluster_listen_forms() -> None:
    c = cluster('listen: "127.0.0.1:6444"')
    assert (c.host, c.port) == ("127.0.0.1", 6444)
    c = cluster("listen: 6555")
    assert (c.host, c.port) == ("0.0.0.0", 6555)
    c = cluster('listen: ":6666"')
    assert (c.host, c.port) == ("", 6666)
    assert errors(block("cluster", 'listen: "nohost"')) == [
        "t.conf:2:3: cluster listen: could not parse address string 'nohost' (want host:port)"
    ]
    assert errors(block("cluster", "listen: 70000")) == [
        "t.conf:2:3: cluster listen: port 70000 is out of range (0-65535, or -1 for random)"
    ]


def test_cluster_ping_interval_takes_integer_seconds_with_a_warning() -> None:
    o = opts(block("cluster", "ping_interval: 9"))
    assert o.cluster is not None and o.cluster.ping_interval == 9.0
    assert o.warnings == [
        "t.conf:2:3: ping_interval should be converted to a duration (seconds assumed)"
    ]


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("name: 1", "cluster name: expected a string, got integer 1"),
        ('name: "a b"', "cluster name cannot contain spaces"),
        ('port: "x"', "cluster port: expected an integer, got string 'x'"),
        (
            "port: 65536",
            "cluster port: port 65536 is out of range (0-65535, or -1 for a random port)",
        ),
        ("host: 1", "host: expected a string, got integer 1"),
        ("no_advertise: 1", "no_advertise: expected a boolean, got integer 1"),
        ("connect_retries: x", "connect_retries: expected an integer, got string 'x'"),
        ("pool_size: true", "pool_size: expected an integer, got boolean True"),
        ("ping_max: 1.5", "ping_max: expected an integer, got float 1.5"),
        ("routes: x", "routes: expected an array, got string 'x'"),
        ("accounts: x", "cluster accounts: expected an array, got string 'x'"),
        ("accounts: [1]", "cluster accounts must be strings"),
        (
            "permissions: {}",
            'cluster option "permissions" is not supported by this server and is refused: '
            "route import/export permissions are not implemented",
        ),
        ("bogus: 1", 'unknown field "bogus" in cluster'),
        ("listen: true", "cluster listen: expected port or host:port, got boolean"),
    ],
)
def test_cluster_faults(line: str, msg: str) -> None:
    assert errors(block("cluster", line)) == [f"t.conf:2:3: {msg}"]


def test_cluster_block_must_be_a_map() -> None:
    assert errors("cluster: 1") == ["t.conf:1:1: cluster: expected a map, got integer 1"]


@pytest.mark.parametrize("key", ["connect_backoff", "write_deadline", "Write_Timeout"])
def test_cluster_options_we_ignore_warn(key: str) -> None:
    o = opts(block("cluster", f"{key}: 1"))
    assert o.warnings == [f't.conf:2:3: cluster option "{key}" is not supported; ignored']


def test_cluster_routes_are_checked_deduplicated_and_stripped() -> None:
    o = opts(
        block(
            "cluster",
            "routes: [",
            '  " nats://a:1 "',
            '  "nats://a:1"',
            '  "nats://b:2"',
            "]",
        )
    )
    assert o.cluster is not None and o.cluster.routes == ["nats://a:1", "nats://b:2"]
    assert o.warnings == ["t.conf:4:5: duplicate route entry 'nats://a:1' ignored"]
    assert errors(block("cluster", "routes: [", "  1", '  "a:1"', '  "nats://h"', "]")) == [
        "t.conf:3:5: route url: expected a URL string, got integer",
        "t.conf:4:5: route url: invalid URL 'a:1': expected scheme://host:port",
        "t.conf:5:5: route url: invalid URL 'nats://h': no port",
    ]
    (line,) = errors(block("cluster", 'routes: ["nats://h:99999"]'))
    assert line.startswith("t.conf:2:12: route url: invalid URL 'nats://h:99999': ")


def test_cluster_accounts_are_pinned() -> None:
    o = opts(block("cluster", "accounts: [A, B]") + "\naccounts: [A, B]")
    assert o.cluster is not None and o.cluster.pinned_accounts == ["A", "B"]


# -- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("true", "s2_fast"),
        ("false", "off"),
        ("on", "s2_fast"),
        ('"on"', "s2_fast"),
        ('"ON"', "s2_fast"),
        ('"off"', "off"),
        ("enabled", "s2_fast"),
        ('"true"', "s2_fast"),
        ("disabled", "off"),
        ('"false"', "off"),
        ("uncompressed", "s2_uncompressed"),
        ("fast", "s2_fast"),
        ("better", "s2_better"),
        ("best", "s2_best"),
        ("auto", "s2_auto"),
        ("S2_Auto", "s2_auto"),
        ("off", "off"),
        ("accept", "accept"),
        ("s2_fast", "s2_fast"),
        ("s2_better", "s2_better"),
        ("s2_best", "s2_best"),
        ("s2_uncompressed", "s2_uncompressed"),
        ("BEST", "s2_best"),
        ("{mode: fast}", "s2_fast"),
        ("{Mode: s2_best, rtt_thresholds: [10ms]}", "s2_best"),
        ("{rtt_thresholds: [10ms], thresholds: 1, rtts: 1, RTT: 1}", "accept"),
        ("{}", "accept"),
    ],
)
def test_compression_modes(value: str, mode: str) -> None:
    assert cluster(f"compression: {value}").compression == mode


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("1", 'field "Compression" should be a boolean or a structure, got integer'),
        ("[fast]", 'field "Compression" should be a boolean or a structure, got array'),
        ("{mode: 1}", 'field "Compression" should be a boolean or a structure, got integer'),
        ("{mode: true}", 'field "Compression" should be a boolean or a structure, got boolean'),
        ("s2", "unsupported compression mode 's2'"),
        ("{mode: Nope}", "unsupported compression mode 'Nope'"),
    ],
)
def test_compression_faults(value: str, msg: str) -> None:
    assert errors(block("cluster", f"Compression: {value}")) == [f"t.conf:2:3: {msg}"]


def test_compression_unknown_keys_are_located() -> None:
    assert errors(block("cluster", "compression {", "  mode: fast", "  level: 3", "}")) == [
        't.conf:4:5: unknown field "level" in compression'
    ]


# -- link authorization ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cluster", "gateway"])
def test_link_authorization_fields(kind: str) -> None:
    head = ["name: A", "port: 7222"] if kind == "gateway" else []
    text = block(kind, *head, "authorization { Username: u1, Password: p1, Timeout: 3 }")
    link = getattr(opts(text), kind)
    assert (link.username, link.password, link.auth_timeout) == ("u1", "p1", 3.0)
    text = block(kind, *head, 'authorization { user: u2, pass: p2, timeout: "1500ms" }')
    link = getattr(opts(text), kind)
    assert (link.username, link.password, link.auth_timeout) == ("u2", "p2", 1.5)
    link = getattr(opts(block(kind, *head, "authorization { user: u3 }")), kind)
    assert (link.username, link.password, link.auth_timeout) == ("u3", None, 2.0)


@pytest.mark.parametrize(("kind", "what"), [("cluster", "Cluster"), ("gateway", "Gateway")])
@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ("users: []", "{what} authorization does not allow multiple users"),
        ("token: t", "{what} authorization does not support tokens"),
        ("auth_callout: {}", "{what} authorization does not support callouts"),
        ("Auth_Hook: {}", "{what} authorization does not support callouts"),
    ],
)
def test_link_authorization_refusals(kind: str, what: str, body: str, msg: str) -> None:
    head = ["name: A", "port: 7222"] if kind == "gateway" else []
    line = 2 + len(head)
    text = block(kind, *head, "authorization {", f"  user: u, {body}", "}")
    assert errors(text) == [f"t.conf:{line}:3: " + msg.format(what=what)]
    # The refusal stops the block: the link keeps no credentials.


@pytest.mark.parametrize(("kind", "what"), [("cluster", "Cluster"), ("gateway", "Gateway")])
def test_link_authorization_permissions_warn_and_unknowns_fail(kind: str, what: str) -> None:
    head = ["name: A", "port: 7222"] if kind == "gateway" else []
    line = 3 + len(head)
    for key in ("permissions", "default_permissions", "Default_Permission"):
        o = opts(block(kind, *head, "authorization {", f"  user: u, {key}: {{}}", "}"))
        assert o.warnings == [f"t.conf:{line}:14: {what} permissions are not supported; ignored"]
        assert getattr(o, kind).username == "u"
    assert errors(block(kind, *head, "authorization {", "  bogus: 1", "}")) == [
        f't.conf:{line}:5: unknown field "bogus" in {what.lower()} authorization'
    ]
    assert errors(block(kind, *head, "authorization: 1")) == [
        f"t.conf:{line - 1}:3: {what} authorization: expected a map, got integer 1"
    ]
    assert errors(block(kind, *head, "authorization {", "  user: 1, password: [x]", "}")) == [
        f"t.conf:{line}:5: user: expected a string, got integer 1",
        f"t.conf:{line}:14: password: expected a string, got array",
    ]


def test_link_authorization_timeout_faults_and_warning() -> None:
    assert errors(block("cluster", "authorization { timeout: true }")) == [
        "t.conf:2:19: error parsing authorization config, 'timeout' wrong type"
    ]
    assert errors(block("cluster", 'authorization { timeout: "3" }')) == [
        "t.conf:2:19: error parsing authorization config, 'timeout' missing unit in duration '3'"
    ]
    o = opts(block("cluster", "authorization { timeout: 61 }"))
    assert o.cluster is not None and o.cluster.auth_timeout == 61.0
    assert o.warnings == ["t.conf:2:19: timeout of 61 (61 seconds) is high, keep it under 60"]
    assert opts(block("cluster", "authorization { timeout: 60 }")).warnings == []


# -- gateway ---------------------------------------------------------------------------------


def test_every_gateway_key_lands_on_its_field() -> None:
    g = gateway(
        "Host: 10.1.1.1",
        'Advertise: "g:1"',
        "Connect_Retries: 3",
        "Reject_Unknown_Cluster: true",
        "Interest_Mode: optimistic",
        "Interest_Only_Threshold: 1",
    )
    assert (g.name, g.port, g.host, g.advertise, g.connect_retries) == (
        "A",
        7222,
        "10.1.1.1",
        "g:1",
        3,
    )
    assert (g.reject_unknown_cluster, g.interest_mode, g.interest_only_threshold) == (
        True,
        "optimistic",
        1,
    )
    assert gateway("net: 10.2.2.2").host == "10.2.2.2"
    assert gateway("reject_unknown: true").reject_unknown_cluster is True
    assert gateway("interest_mode: interest_only").interest_mode == "interest_only"
    d = gateway()
    assert (d.host, d.interest_mode, d.interest_only_threshold, d.reject_unknown_cluster) == (
        "0.0.0.0",
        "interest_only",
        1000,
        False,
    )


def test_gateway_listen_forms() -> None:
    g = opts(block("gateway", "name: A", 'listen: "127.0.0.2:7333"')).gateway
    assert g is not None and (g.host, g.port) == ("127.0.0.2", 7333)
    g = opts(block("gateway", "name: A", "listen: 7444")).gateway
    assert g is not None and (g.host, g.port) == ("0.0.0.0", 7444)
    assert errors(block("gateway", "name: A", "listen: x")) == [
        "t.conf:3:3: gateway listen: could not parse address string 'x' (want host:port)",
        't.conf:1:1: gateway "A" has no port specified (select -1 for random)',
    ]


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("host: 1", "host: expected a string, got integer 1"),
        ("advertise: 1", "advertise: expected a string, got integer 1"),
        ("connect_retries: x", "connect_retries: expected an integer, got string 'x'"),
        ("reject_unknown_cluster: 1", "reject_unknown_cluster: expected a boolean, got integer 1"),
        (
            "interest_mode: classic",
            'gateway interest_mode must be "interest_only" or "optimistic", got \'classic\'',
        ),
        ("interest_mode: 1", "interest_mode: expected a string, got integer 1"),
        ("interest_only_threshold: 0", "gateway interest_only_threshold must be >= 1"),
        (
            "interest_only_threshold: x",
            "interest_only_threshold: expected an integer, got string 'x'",
        ),
        ("gateways: x", "gateways: expected an array, got string 'x'"),
        ("bogus: 1", 'unknown field "bogus" in gateway'),
    ],
)
def test_gateway_faults(line: str, msg: str) -> None:
    assert errors(block("gateway", "name: A", "port: 1", line)) == [f"t.conf:4:3: {msg}"]


def test_gateway_port_faults_leave_the_gateway_without_a_port() -> None:
    no_port = 't.conf:1:1: gateway "A" has no port specified (select -1 for random)'
    assert errors(block("gateway", "name: A", "port: x")) == [
        "t.conf:3:3: gateway port: expected an integer, got string 'x'",
        no_port,
    ]
    assert errors(block("gateway", "name: A", "port: -2")) == [
        "t.conf:3:3: gateway port: port -2 is out of range (0-65535, or -1 for a random port)",
        no_port,
    ]


def test_gateway_name_faults() -> None:
    assert errors(block("gateway", 'name: "a b"', "port: 1")) == [
        "t.conf:2:3: gateway name cannot contain spaces",
        "t.conf:1:1: gateway has no name",
    ]
    assert errors(block("gateway", "name: 1", "port: 1")) == [
        "t.conf:2:3: gateway name: expected a string, got integer 1",
        "t.conf:1:1: gateway has no name",
    ]
    assert errors("gateway: []") == ["t.conf:1:1: gateway: expected a map, got array"]


@pytest.mark.parametrize("key", ["connect_backoff", "write_deadline", "write_timeout"])
def test_gateway_options_we_ignore_warn(key: str) -> None:
    o = opts(block("gateway", "name: A", "port: 1", f"{key}: 1"))
    assert o.warnings == [f't.conf:4:3: gateway option "{key}" is not supported; ignored']


# -- remote gateways -------------------------------------------------------------------------


def test_remote_gateway_entries() -> None:
    g = gateway(
        "gateways: [",
        '  {Name: B, URL: " nats://b:1 ", URLs: ["nats://b:1", "nats://b:2", "nats://b:2"]}',
        '  {name: C, urls: ["nats://c:1"], url: "nats://c:1"}',
        "]",
    )
    assert g.gateways == [
        RemoteGateway("B", ["nats://b:1", "nats://b:2"]),
        RemoteGateway("C", ["nats://c:1"]),
    ]


def test_remote_gateway_duplicate_urls_warn_at_the_element() -> None:
    o = opts(
        block(
            "gateway",
            "name: A",
            "port: 1",
            "gateways: [",
            "  {name: B, urls: [",
            '    "nats://b:1"',
            '    "nats://b:1"',
            "  ]}",
            "]",
        )
    )
    assert o.warnings == ["t.conf:7:7: duplicate gateway entry 'nats://b:1' ignored"]


def test_remote_gateway_faults() -> None:
    assert errors(
        block(
            "gateway",
            "name: A",
            "port: 1",
            "gateways: [",
            "  x",
            '  {url: "nats://h:1"}',
            "  {name: B}",
            '  {name: C, url: "nats://c:1"}',
            '  {name: C, url: "nats://c:2"}',
            '  {name: D, url: "c:1"}',
            "  {name: E, url: 1}",
            '  {name: F, url: "nats://f:1", bogus: 1}',
            '  {name: 1, url: "nats://g:1"}',
            "  {name: H, urls: x}",
            "]",
        )
    ) == [
        "t.conf:5:5: expected gateway entry to be a map, got string",
        "t.conf:6:5: gateway entry needs a name",
        "t.conf:7:5: gateway entry 'B' needs at least one url",
        "t.conf:9:5: duplicate gateway entry 'C'",
        "t.conf:10:15: gateway url: invalid URL 'c:1': expected scheme://host:port",
        "t.conf:10:5: gateway entry 'D' needs at least one url",
        "t.conf:11:15: gateway url: expected a URL string, got integer",
        "t.conf:11:5: gateway entry 'E' needs at least one url",
        't.conf:12:34: unknown field "bogus" in gateway entry',
        "t.conf:13:6: gateway entry name: expected a string, got integer 1",
        "t.conf:13:5: gateway entry needs a name",
        "t.conf:14:15: urls: expected an array, got string 'x'",
        "t.conf:14:5: gateway entry 'H' needs at least one url",
    ]


def test_remote_gateway_url_lists_locate_each_element() -> None:
    assert errors(
        block("gateway", "name: A", "port: 1", "gateways: [{name: B, urls: [", '  "x:1"', "]}]")
    ) == [
        "t.conf:5:5: gateway url: invalid URL 'x:1': expected scheme://host:port",
        "t.conf:4:14: gateway entry 'B' needs at least one url",
    ]

"""Cross-field checks the options loader makes after the walk (those nats-server makes when it
starts): gateway name and port, cluster/gateway name agreement, ``tls://`` URLs without a
``tls {}`` block, pinned cluster accounts, and where each fault is located. Pins
``scserver.options.validate`` (see docs/mutation.md)."""

from __future__ import annotations

import pytest
from tests.server.options_helpers import errors, opts
from tests.tls.link_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("validate"))


def test_gateway_needs_a_name_and_a_port() -> None:
    assert errors("port: 1\ngateway { port: 7222 }") == ["t.conf:2:1: gateway has no name"]
    assert errors("port: 1\nGateway { name: A }") == [
        't.conf:2:1: gateway "A" has no port specified (select -1 for random)'
    ]
    g = opts("gateway { name: A, port: -1 }").gateway
    assert g is not None and g.port == -1
    # An empty gateway block asks for nothing, so nothing is missing.
    assert opts("gateway {}").gateway is not None


def test_cluster_and_gateway_names_must_agree() -> None:
    assert errors("port: 1\nCluster { name: C }\ngateway { name: G, port: 1 }") == [
        "t.conf:2:1: cluster name 'C' conflicts with gateway name 'G'"
    ]
    o = opts("cluster { name: G }\ngateway { name: G, port: 1 }")
    assert o.cluster_name == "G"
    o = opts("cluster { port: 1 }\ngateway { name: G, port: 1 }")
    assert o.cluster_name == "G"  # the gateway name names the cluster, as nats-server
    assert opts("cluster { name: C }").cluster_name == "C"
    assert opts("port: 1").cluster_name is None


def test_tls_route_urls_need_a_cluster_tls_block(pki: Pki) -> None:
    assert errors('port: 1\ncluster { routes: ["nats://a:1", "TLS://b:2", "tls://c:3"] }') == [
        "t.conf:2:1: cluster route 'TLS://b:2' is a tls:// URL but cluster has no tls {} block",
        "t.conf:2:1: cluster route 'tls://c:3' is a tls:// URL but cluster has no tls {} block",
    ]
    o = opts(f'cluster {{ routes: ["tls://b:2"], {pki.tls_block()} }}')
    assert o.cluster is not None and o.cluster.routes == ["tls://b:2"]


def test_tls_gateway_urls_need_a_tls_block(pki: Pki) -> None:
    gw = 'gateway {{ name: A, port: 1, gateways: [{{name: {n}, urls: ["nats://x:1", "{u}"]{t}}}]{g} }}'
    assert errors("port: 1\n" + gw.format(n="B", u="Tls://b:1", t="", g="")) == [
        "t.conf:2:1: gateway 'B' url 'Tls://b:1' is a tls:// URL but neither the entry nor "
        "gateway has a tls {} block"
    ]
    # The entry's own tls block, the gateway's, or the entry being ourselves: all fine.
    entry_tls = f', tls {{ ca_file: "{pki.path("ca.pem")}" }}'
    assert opts(gw.format(n="B", u="tls://b:1", t=entry_tls, g="")).gateway is not None
    assert opts(gw.format(n="B", u="tls://b:1", t="", g=", " + pki.tls_block())).gateway
    assert opts(gw.format(n="A", u="tls://a:1", t="", g="")).gateway is not None


def test_pinned_cluster_accounts_must_exist() -> None:
    assert errors(
        "port: 1\ncluster { accounts: [A, Z, $G, $SYS] }\naccounts: [A]".replace(
            "$G, $SYS", '"$G", "$SYS"'
        )
    ) == ["t.conf:2:1: cluster accounts: account 'Z' is not defined"]
    o = opts('cluster { accounts: ["$G", "$SYS", A] }\naccounts: [A]')
    assert o.cluster is not None and o.cluster.pinned_accounts == ["$G", "$SYS", "A"]


def test_system_account_checks() -> None:
    assert errors("port: 1\nsystem: X") == [
        "t.conf:2:1: system_account: account 'X' is not defined in accounts"
    ]
    assert opts("accounts: [X]\nsystem: X").system_account == "X"
    assert opts("no_system_account: true\nsystem_account: X").system_account == "X"


def test_max_payload_against_max_pending_is_located_at_either_key() -> None:
    assert errors("port: 1\nMax_Payload: 2048\nmax_pending: 1024") == [
        "t.conf:2:1: max_payload (2048) cannot be higher than max_pending (1024)"
    ]
    assert errors("port: 1\nMax_Pending: 1024") == [
        "t.conf:2:1: max_payload (1048576) cannot be higher than max_pending (1024)"
    ]
    assert opts("max_payload: 1025\nmax_pending: 0").max_payload == 1025


def test_https_faults_are_located_at_the_https_key(pki: Pki) -> None:
    assert errors("port: 1\nHttps_Port: 8443") == [
        "t.conf:2:1: https_port requires a tls {} block with cert_file and key_file"
    ]
    assert errors("port: 1\nmonitor_port: 2\nhttps_port: 3\n" + pki.tls_block()) == [
        "t.conf:3:1: can't specify both HTTP (2) and HTTPs (3) ports"
    ]
    assert errors("port: 1\nhttp: 2\nHttps: 3\n" + pki.tls_block()) == [
        "t.conf:3:1: can't specify both HTTP (2) and HTTPs (3) ports"
    ]
    assert errors('port: 1\nhttps: "h:3"') == [
        "t.conf:2:1: https_port requires a tls {} block with cert_file and key_file"
    ]
    o = opts("https_port: 3\n" + pki.tls_block())
    assert (o.https_port, o.http_port) == (3, 0)


def test_the_auth_timeout_follows_the_tls_timeout_unless_authorization_sets_one(
    pki: Pki,
) -> None:
    block = pki.tls_block(extra="timeout: 4").replace("timeout: 2, ", "")
    assert opts(block).auth_timeout == 5.0
    assert opts(block + "\nauthorization { user: a }").auth_timeout == 5.0
    assert opts(block + "\nauthorization { Timeout: 1 }").auth_timeout == 1.0
    assert opts("authorization { timeout: 3 }").auth_timeout == 3.0
    assert opts("port: 1").auth_timeout == 2.0


def test_no_auth_user_must_name_a_configured_user() -> None:
    assert errors("port: 1\nNo_Auth_User: x") == [
        "t.conf:2:1: no_auth_user: user 'x' is not configured"
    ]
    o = opts("accounts { A { users: [{user: x}] } }\nno_auth_user: x")
    assert o.no_auth_user == "x"


def test_import_faults_are_located_at_the_imports_key() -> None:
    assert errors(
        "accounts {\n"
        "  A {\n"
        '    imports: [{stream: {account: Z, subject: "s"}}, 1, {stream: "x"}]\n'
        "  }\n"
        "}"
    ) == [
        "t.conf:3:5: 'Z' account not defined for stream import (in account 'A')",
        "t.conf:3:5: account 'A': Import Items should be a map with type entry, got int",
        "t.conf:3:5: account 'A': Stream entry should be an account map, got str",
    ]


def test_mapping_faults_are_located_at_their_block() -> None:
    (line,) = errors("accounts {\n  A {\n    mappings: { a: 1 }\n  }\n}")
    assert line.startswith("t.conf:3:5: account 'A': ")

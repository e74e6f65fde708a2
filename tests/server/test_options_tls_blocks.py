"""``tls {}`` blocks as the options loader reads them: every key's accepted forms, the model they
produce, and each fault's exact ``file:line:col`` message (nats-server's wording where it has
one). Written to pin the behaviour of ``scserver.options.tls.parse_tls_block`` key by key, so a
changed default, alias, message or context rule fails here (see docs/mutation.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.server.options_helpers import errors, opts
from tests.tls.link_certs import Pki, make_pki

from scserver.options.tls import TLSConfig

PIN = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls-blocks"))


def client(pki: Pki, *lines: str, cert: str = "good") -> str:
    """A top-level block: certificate on lines 2-3, ``lines`` from line 4 on, column 3."""
    body = [f'  cert_file: "{pki.path(cert + ".pem")}"', f'  key_file: "{pki.path(cert + ".key")}"']
    return "tls {\n" + "\n".join(body + [f"  {x}" for x in lines]) + "\n}"


def client_tls(pki: Pki, *lines: str) -> TLSConfig:
    t = opts(client(pki, *lines)).tls
    assert t is not None
    return t


def cluster(pki: Pki, *lines: str) -> str:
    """A cluster block with its tls block opening on line 3 (extra lines from line 6, col 5)."""
    return "cluster {\n  port: 6222\n  " + client(pki, *lines).replace("\n", "\n  ") + "\n}"


def cluster_tls(pki: Pki, *lines: str) -> TLSConfig:
    o = opts(cluster(pki, *lines))
    assert o.cluster is not None and o.cluster.tls is not None
    return o.cluster.tls


def bad(line: int, msg: str, col: int = 3) -> str:
    return f"t.conf:{line}:{col}: error parsing tls config: {msg}"


# -- the block itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "got"), [("1", "int"), ("[1]", "array"), ('"x"', "str"), ("true", "bool")]
)
def test_a_block_that_is_not_a_map_names_what_it_got(value: str, got: str) -> None:
    assert errors(f"tls: {value}") == [f"t.conf:1:1: client tls: expected a map, got {got}"]
    assert errors(f"cluster {{ port: 1, tls: {value} }}") == [
        f"t.conf:1:20: cluster tls: expected a map, got {got}"
    ]


def test_a_minimal_block_has_nats_server_defaults(pki: Pki) -> None:
    assert client_tls(pki) == TLSConfig(
        cert_file=pki.path("good.pem"), key_file=pki.path("good.key")
    )
    t = client_tls(pki)
    assert t.timeout == 2.0 and not t.timeout_set and not t.verify and t.pinned_certs == set()
    assert t.openssl_ciphers is None


# -- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["cert_file", "key_file", "ca_file", "CA_File"])
@pytest.mark.parametrize("value", ['""', "1", "[a]"])
def test_file_keys_need_a_filename(pki: Pki, key: str, value: str) -> None:
    e = errors(client(pki, f"{key}: {value}"))
    assert e == [bad(4, f"expected '{key.lower()}' to be a filename")]


def test_ca_file_is_kept_and_loaded(pki: Pki) -> None:
    t = client_tls(pki, f'ca_file: "{pki.path("ca.pem")}"')
    assert t.ca_file == pki.path("ca.pem")
    assert errors(client(pki, 'ca_file: "/nonexistent/ca.pem"')) == [
        "t.conf:1:1: client tls: ca_file '/nonexistent/ca.pem': no such file"
    ]


def test_a_key_that_does_not_match_its_certificate_is_an_error(pki: Pki) -> None:
    text = f'tls {{ cert_file: "{pki.path("good.pem")}", key_file: "{pki.path("other.key")}" }}'
    (line,) = errors(text)
    assert line.startswith("t.conf:1:1: client tls: error parsing X509 certificate/key pair")
    assert line.endswith("private key does not match the certificate")


@pytest.mark.parametrize(
    ("context", "text", "missing"),
    [
        ("client", "tls {{ {ca} }}", "cert_file"),
        ("client", "tls {{ {cert} }}", "key_file"),
        ("client", "tls {{ {key} }}", "cert_file"),
        ("cluster", "cluster {{ port: 1, tls {{ {cert} }} }}", "key_file"),
        ("gateway", "gateway {{ name: a, port: 1, tls {{ {key} }} }}", "cert_file"),
        (
            "remote gateway",
            'gateway {{ name: a, port: 1, gateways: [{{name: b, url: "nats://h:1", '
            "tls {{ {cert} }} }}] }}",
            "key_file",
        ),
        (
            "remote gateway",
            'gateway {{ name: a, port: 1, gateways: [{{name: b, url: "nats://h:1", '
            "tls {{ {key} }} }}] }}",
            "cert_file",
        ),
    ],
)
def test_a_missing_half_of_the_key_pair_is_named(
    pki: Pki, context: str, text: str, missing: str
) -> None:
    text = text.format(
        ca=f'ca_file: "{pki.path("ca.pem")}"',
        cert=f'cert_file: "{pki.path("good.pem")}"',
        key=f'key_file: "{pki.path("good.key")}"',
    )
    (line,) = errors(text)
    assert line.endswith(f": {context} tls: missing '{missing}' in TLS configuration")


def test_a_remote_gateway_block_may_carry_a_full_key_pair(pki: Pki) -> None:
    o = opts(
        'gateway { name: a, port: 1, gateways: [{name: b, url: "nats://h:1", '
        f'tls {{ cert_file: "{pki.path("good.pem")}", key_file: "{pki.path("good.key")}", '
        f'ca_file: "{pki.path("ca.pem")}", insecure: true }} }}] }}'
    )
    assert o.gateway is not None
    t = o.gateway.gateways[0].tls
    assert t is not None and t.insecure and t.cert_file == pki.path("good.pem")
    assert o.warnings == []


def test_a_remote_gateway_file_fault_is_reported_for_the_remote(pki: Pki) -> None:
    (line,) = errors(
        'gateway { name: a, port: 1, gateways: [{name: b, url: "nats://h:1", '
        'tls { ca_file: "/nonexistent/ca.pem" } }] }'
    )
    assert line.endswith("remote gateway tls: ca_file '/nonexistent/ca.pem': no such file")


def test_a_link_block_loads_its_files_as_client_too(pki: Pki) -> None:
    (line,) = errors(cluster(pki, 'ca_file: "/nonexistent/ca.pem"'))
    assert line == "t.conf:3:3: cluster tls: ca_file '/nonexistent/ca.pem': no such file"


# -- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["verify", "insecure", "allow_insecure_cipher_suites"])
def test_boolean_keys_are_kept_and_checked(pki: Pki, key: str) -> None:
    assert getattr(cluster_tls(pki, f"{key}: true"), key) is True
    assert getattr(cluster_tls(pki, f"{key.upper()}: false"), key) is False
    assert errors(client(pki, f'{key}: "yes"')) == [bad(4, f"expected '{key}' to be a boolean")]


def test_verify_and_map_implies_verify(pki: Pki) -> None:
    t = client_tls(pki, "verify_and_map: true")
    assert t.verify and t.verify_and_map
    off = client_tls(pki, "verify_and_map: false")
    assert not off.verify and not off.verify_and_map
    assert errors(client(pki, "verify_and_map: 1")) == [
        bad(4, "expected 'verify_and_map' to be a boolean")
    ]


def test_verify_cert_and_check_known_urls_is_for_links_only(pki: Pki) -> None:
    t = cluster_tls(pki, "verify_cert_and_check_known_urls: true")
    assert t.verify and t.check_known_urls and not t.verify_and_map
    off = cluster_tls(pki, "verify_cert_and_check_known_urls: false")
    assert not off.verify and not off.check_known_urls
    assert not client_tls(pki, "verify_cert_and_check_known_urls: false").check_known_urls
    assert errors(client(pki, "verify_cert_and_check_known_urls: true")) == [
        bad(4, "verify_cert_and_check_known_urls not supported in this context")
    ]
    assert errors(cluster(pki, 'verify_cert_and_check_known_urls: "x"')) == [
        bad(6, "expected 'verify_cert_and_check_known_urls' to be a boolean", col=5)
    ]


def test_insecure_warns_only_where_it_does_nothing(pki: Pki) -> None:
    o = opts(client(pki, "insecure: true"))
    assert o.warnings == [
        "t.conf:1:1: tls 'insecure' only applies to routes and gateways that dial; ignored"
    ]
    assert opts(cluster(pki, "insecure: true")).warnings == []
    assert opts(client(pki, "insecure: false")).warnings == []


# -- timeout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds", "written"),
    [("3", 3.0, True), ("0.5", 0.5, True), ('"1500ms"', 1.5, True), ("0", 2.0, False)],
)
def test_timeout_forms(pki: Pki, value: str, seconds: float, written: bool) -> None:
    t = client_tls(pki, f"timeout: {value}")
    assert (t.timeout, t.timeout_set) == (seconds, written)


def test_timeout_sets_the_auth_timeout_only_when_written(pki: Pki) -> None:
    # nats-server: with TLS and no authorization timeout, auth_timeout = TLS timeout + 1 s.
    assert opts(client(pki, "timeout: 5")).auth_timeout == 6.0
    assert opts(client(pki, "timeout: 0")).auth_timeout == 3.0
    assert opts(client(pki, "timeout: 5") + "\nauthorization { timeout: 1 }").auth_timeout == 1.0


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("true", "'timeout' wrong type"),
        ("[1]", "'timeout' wrong type"),
        ("{a: 1}", "'timeout' wrong type"),
        ('"soon"', "'timeout' unknown unit 'soon' in duration 'soon'"),
        ('"5"', "'timeout' missing unit in duration '5'"),
        ("-1", "'timeout' cannot be negative"),
        ('"-2s"', "'timeout' cannot be negative"),
    ],
)
def test_bad_timeouts(pki: Pki, value: str, msg: str) -> None:
    assert errors(client(pki, f"timeout: {value}")) == [bad(4, msg)]


# -- versions and ciphers --------------------------------------------------------------------


def test_min_version(pki: Pki) -> None:
    assert client_tls(pki, 'min_version: "1.2"').min_version == "1.2"
    assert client_tls(pki, 'min_version: "1.3"').min_version == "1.3"
    assert errors(client(pki, 'min_version: "1.0"')) == [bad(4, "unsupported TLS version: TLS 1.0")]
    assert errors(client(pki, 'min_version: "1.1"')) == [bad(4, "unsupported TLS version: TLS 1.1")]
    assert errors(client(pki, 'min_version: "1.4"')) == [bad(4, "unknown version: 1.4")]
    assert errors(client(pki, "min_version: 1.2")) == [bad(4, "unknown version: 1.2")]


def test_cipher_suites_keep_their_order_and_map_to_openssl(pki: Pki) -> None:
    t = client_tls(
        pki,
        "cipher_suites: [",
        '  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"',
        '  "TLS_AES_256_GCM_SHA384"',
        '  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"',
        "]",
    )
    assert t.cipher_suites == (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    )
    assert t.openssl_ciphers == "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA"


def test_cipher_suite_faults_are_located_at_the_element(pki: Pki) -> None:
    assert errors(client(pki, "cipher_suites: [", '  "TLS_NOPE"', "  7", "]")) == [
        "t.conf:5:5: unrecognized cipher TLS_NOPE",
        "t.conf:6:5: unrecognized cipher 7",
    ]
    assert errors(client(pki, "cipher_suites: []")) == [bad(4, "'cipher_suites' cannot be empty")]
    assert errors(client(pki, 'cipher_suites: "TLS_AES_128_GCM_SHA256"')) == [
        bad(4, "'cipher_suites' cannot be empty")
    ]


def test_insecure_cipher_suites_need_the_allow_flag(pki: Pki) -> None:
    suites = 'cipher_suites: ["TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_AES_128_GCM_SHA256", ' + (
        '"TLS_ECDHE_RSA_WITH_RC4_128_SHA"]'
    )
    assert errors(client(pki, "verify: true", suites)) == [
        "t.conf:5:3: insecure cipher suites configured without 'allow_insecure_cipher_suites' "
        "option set: TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_RC4_128_SHA"
    ]
    t = client_tls(pki, suites, "allow_insecure_cipher_suites: true")
    assert t.allow_insecure_cipher_suites
    assert t.openssl_ciphers == "AES128-SHA:ECDHE-RSA-RC4-SHA"


# -- handshake_first -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "enabled", "fallback"),
    [
        ("true", True, 0.0),
        ("false", False, 0.0),
        ('"TRUE"', True, 0.0),
        ('"on"', True, 0.0),
        ('"False"', False, 0.0),
        ('"off"', False, 0.0),
        ('"auto"', True, 0.05),
        ('"Auto_Fallback"', True, 0.05),
        ('"250ms"', True, 0.25),
    ],
)
@pytest.mark.parametrize("key", ["handshake_first", "first", "Immediate"])
def test_handshake_first_forms(
    pki: Pki, key: str, value: str, enabled: bool, fallback: float
) -> None:
    t = client_tls(pki, f"{key}: {value}")
    assert (t.handshake_first, t.handshake_first_fallback) == (enabled, pytest.approx(fallback))


@pytest.mark.parametrize(("value", "shown"), [('"soon"', "'soon'"), ("3", "3"), ("[1]", "[1]")])
def test_handshake_first_bad_values(pki: Pki, value: str, shown: str) -> None:
    assert errors(client(pki, f"first: {value}")) == [
        bad(4, f"field 'first''s value {shown} is invalid")
    ]


def test_handshake_first_on_a_link_warns_and_off_does_not(pki: Pki) -> None:
    o = opts(cluster(pki, "handshake_first: true"))
    assert o.warnings == [
        "t.conf:6:5: handshake_first only applies to client connections; ignored here"
    ]
    assert opts(cluster(pki, "handshake_first: false")).warnings == []
    assert opts(client(pki, "handshake_first: true")).warnings == []


# -- pinned certificates ---------------------------------------------------------------------


def test_pinned_certs_are_lower_cased_and_deduplicated(pki: Pki) -> None:
    t = client_tls(pki, f'pinned_certs: ["{PIN.upper()}", "{PIN}", "{"f" * 64}"]')
    assert t.pinned_certs == frozenset({PIN, "f" * 64})


def test_pinned_cert_faults(pki: Pki) -> None:
    assert errors(client(pki, f'pinned_certs: "{PIN}"')) == [
        bad(
            4,
            "expected 'pinned_certs' to be a list of hex-encoded sha256 of DER encoded "
            "SubjectPublicKeyInfo",
        )
    ]
    assert errors(client(pki, "pinned_certs: [", f'  "{PIN[:-1]}"', f'  "{PIN}0"', "  1", "]")) == [
        f"t.conf:{line}:5: error parsing tls config: 'pinned_certs' key {key} does not look "
        "like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"
        for line, key in ((5, PIN[:-1]), (6, PIN + "0"), (7, 1))
    ]
    assert errors(client(pki, f'pinned_certs: ["{"g" * 64}"]')) == [
        "t.conf:4:18: error parsing tls config: 'pinned_certs' key "
        + "g" * 64
        + " does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"
    ]


# -- keys refused, unknown, or only variables ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("cert_store", "cert_store is Windows-only and not supported by scserver"),
        ("cert_match_by", "cert_match_by is Windows-only and not supported by scserver"),
        ("cert_match", "cert_match is Windows-only and not supported by scserver"),
        ("cert_match_skip_invalid", "cert_match_skip_invalid is Windows-only and not supported"),
        ("ca_certs_match", "ca_certs_match is Windows-only and not supported by scserver"),
        ("ocsp_peer", "ocsp_peer (OCSP peer verification) is not supported by scserver"),
        ("certs", "multiple certificates ('certs') are not supported by scserver; use cert_file"),
        ("certificates", "multiple certificates are not supported by scserver; use cert_file"),
        (
            "curve_preferences",
            "curve_preferences cannot be honoured (Python's ssl module has no group list); "
            "remove it",
        ),
        ("connection_rate_limit", "connection_rate_limit is not supported by scserver"),
    ],
)
def test_keys_scserver_cannot_honour_are_refused(pki: Pki, key: str, reason: str) -> None:
    assert errors(client(pki, f"{key.upper()}: 1")) == [bad(4, reason)]


def test_unknown_keys_are_errors_and_variables_are_not(pki: Pki) -> None:
    assert errors(client(pki, "bogus: 1")) == [bad(4, "unknown field 'bogus'")]
    o = opts(client(pki, "t: 7", "timeout: $t"))
    assert o.tls is not None and o.tls.timeout == 7.0


def test_every_fault_in_a_block_is_reported(pki: Pki) -> None:
    assert errors(client(pki, "verify: 1", "insecure: 2", "min_version: x")) == [
        bad(4, "expected 'verify' to be a boolean"),
        bad(5, "expected 'insecure' to be a boolean"),
        bad(6, "unknown version: x"),
    ]


def test_a_good_block_after_an_earlier_fault_still_counts(pki: Pki, tmp_path: Path) -> None:
    # The earlier fault is the only one: the block itself parsed, so https_port has its tls.
    text = "port: x\nhttps_port: 8443\n" + client(pki)
    assert errors(text) == ["t.conf:1:1: port: expected an integer, got string 'x'"]


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("timeout: true", "'timeout' wrong type"),
        ('timeout: "x"', "'timeout' unknown unit 'x' in duration 'x'"),
        ("timeout: -1", "'timeout' cannot be negative"),
        ("cipher_suites: []", "'cipher_suites' cannot be empty"),
        (
            "pinned_certs: 1",
            "expected 'pinned_certs' to be a list of hex-encoded sha256 of DER "
            "encoded SubjectPublicKeyInfo",
        ),
        ("verify: 1", "expected 'verify' to be a boolean"),
    ],
)
def test_a_faulty_key_does_not_hide_the_keys_after_it(pki: Pki, line: str, msg: str) -> None:
    assert errors(client(pki, line, "bogus: 1")) == [bad(4, msg), bad(5, "unknown field 'bogus'")]


def test_a_missing_key_file_is_located_at_the_block(pki: Pki) -> None:
    cert = f'cert_file: "{pki.path("good.pem")}"'
    assert errors(f"port: 1\ntls {{ {cert} }}") == [
        "t.conf:2:1: client tls: missing 'key_file' in TLS configuration"
    ]
    gw = f'gateway {{ name: a, port: 1, gateways: [{{name: b, url: "nats://h:1", tls {{ {cert} }} }}] }}'
    assert errors("port: 1\n" + gw) == [
        "t.conf:2:69: remote gateway tls: missing 'key_file' in TLS configuration"
    ]

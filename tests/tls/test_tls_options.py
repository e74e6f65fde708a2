"""Parsing of ``tls {}`` blocks (scserver.tls.parse_tls_block through options.from_dict).

Fast checks of what the blocks turn into; the end-to-end behaviour (and nats-server's view of
the same configs) is in test_client_tls.py and the link tests.
"""

from __future__ import annotations

import ssl

import pytest
from tests.tls.link_certs import Pki

from scserver.conf import ConfigError, parse_string
from scserver.options import Options, from_dict
from scserver.tls import TLSContexts, map_cert_identities


def opts(text: str) -> Options:
    return from_dict(parse_string(text, "t.conf", env={}), source="t.conf")


def fails(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        opts(text)
    return info.value


def block(pki: Pki, extra: str = "", cert: str = "good") -> str:
    return (
        f'cert_file: "{pki.path(cert + ".pem")}", key_file: "{pki.path(cert + ".key")}", '
        f'ca_file: "{pki.path("ca.pem")}"' + (f", {extra}" if extra else "")
    )


def test_client_block_fields(pki: Pki) -> None:
    o = opts(
        "tls { "
        + block(
            pki,
            'verify_and_map: true, timeout: "3s", min_version: "1.3", '
            'handshake_first: "300ms", pinned_certs: ["' + "AB" * 32 + '"]',
        )
        + " }\nallow_non_tls: true"
    )
    t = o.tls
    assert t is not None and o.allow_non_tls
    assert t.verify and t.verify_and_map  # verify_and_map implies verify, as nats-server
    assert t.timeout == 3.0 and t.min_version == "1.3"
    assert t.handshake_first and t.handshake_first_fallback == pytest.approx(0.3)
    assert t.pinned_certs == frozenset({"ab" * 32})
    assert o.auth_timeout == 4.0  # TLS timeout + 1 s when authorization sets none


def test_handshake_first_auto_and_booleans(pki: Pki) -> None:
    auto = opts("tls { " + block(pki, 'handshake_first: "auto"') + " }").tls
    assert auto is not None and auto.handshake_first and auto.handshake_first_fallback == 0.05
    off = opts("tls { " + block(pki, "handshake_first: false") + " }").tls
    assert off is not None and not off.handshake_first


def test_cipher_suites_map_to_openssl_names(pki: Pki) -> None:
    t = opts(
        "tls { "
        + block(
            pki,
            'cipher_suites: ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", '
            '"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"]',
        )
        + " }"
    ).tls
    assert t is not None
    assert t.openssl_ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"
    only13 = opts("tls { " + block(pki, 'cipher_suites: ["TLS_AES_128_GCM_SHA256"]') + " }").tls
    assert only13 is not None and only13.openssl_ciphers is None
    ctx = TLSContexts.build(Options(tls=only13)).client
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_3


def test_errors_are_located_and_all_reported(pki: Pki) -> None:
    e = fails("port: 1\ntls {\n  bogus: 1\n  verify: 3\n  cipher_suites: []\n}")
    text = str(e)
    assert "t.conf:3:3: error parsing tls config: unknown field 'bogus'" in text
    assert "t.conf:4:3: error parsing tls config: expected 'verify' to be a boolean" in text
    assert "'cipher_suites' cannot be empty" in text


def test_a_server_block_needs_a_certificate_and_a_remote_does_not(pki: Pki) -> None:
    e = fails(f'cluster {{ port: 6222, tls {{ ca_file: "{pki.path("ca.pem")}" }} }}')
    assert "cluster tls: missing 'cert_file'" in e.message
    o = opts(
        "gateway { name: a, port: 7222, gateways: [ "
        f'{{name: b, url: "nats://127.0.0.1:7223", tls: {{ ca_file: "{pki.path("ca.pem")}" }}}}'
        " ] }"
    )
    assert o.gateway is not None and o.gateway.gateways[0].tls is not None
    ctxs = TLSContexts.build(o)
    assert "b" in ctxs.remote_gateways


def test_insecure_and_handshake_first_where_they_do_nothing_warn(pki: Pki) -> None:
    o = opts(
        "tls { "
        + block(pki, "insecure: true")
        + " }\n"
        + "cluster { port: 6222, tls { "
        + block(pki, "handshake_first: true")
        + " } }"
    )
    assert any("'insecure' only applies" in w for w in o.warnings)
    assert any("handshake_first only applies to client connections" in w for w in o.warnings)


def test_https_needs_tls_and_excludes_http(pki: Pki) -> None:
    assert "https_port requires a tls" in fails("https_port: 8443").message
    e = fails("http_port: 8222\nhttps_port: 8443\ntls { " + block(pki) + " }")
    assert "can't specify both HTTP (8222) and HTTPs (8443) ports" in e.message
    o = opts('https: "127.0.0.1:8443"\ntls { ' + block(pki) + " }")
    assert o.https_port == 8443 and o.http_host == "127.0.0.1"
    assert TLSContexts.build(o).https is not None


def test_cert_identities_for_verify_and_map(pki: Pki) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(pki.path("alice.pem"), "rb") as fh:
        der = x509.load_pem_x509_certificate(fh.read()).public_bytes(serialization.Encoding.DER)
    assert map_cert_identities(der) == ["alice@example.com", "CN=alice,O=Acme"]


def test_wrongly_typed_values_are_errors_not_crashes(pki: Pki) -> None:
    e = fails(
        "tls { "
        + block(pki, "cipher_suites: [[1], {a: 1}, 3], pinned_certs: [[1]], timeout: [1]")
        + " }\ncluster { port: 1, tls: [1] }"
    )
    text = str(e)
    assert text.count("unrecognized cipher") == 3
    assert "'pinned_certs' key [1] does not look like" in text
    assert "'timeout' wrong type" in text
    assert "t.conf:2:20: cluster tls: expected a map, got array" in text

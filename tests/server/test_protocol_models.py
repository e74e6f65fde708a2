"""Typed CONNECT/INFO models (``scserver.protocol.models``): Go's decoding rules, and properties.

Properties: for any JSON value and any bytes, :func:`parse` returns a model or raises
:class:`WireError` -- never anything else -- and whatever it accepts can be encoded again (no
lone surrogates reach logs, gossip or monitoring).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scserver.protocol.models import (
    MAX_DEPTH,
    ClientConnect,
    LinkConnect,
    ServerInfo,
    WireError,
    json_depth,
    parse,
)

MODELS = (ClientConnect, LinkConnect, ServerInfo)


def test_client_connect_defaults_are_nats_servers() -> None:
    c = parse(b"{}", ClientConnect)
    assert (c.verbose, c.pedantic, c.echo, c.headers, c.protocol) == (True, True, True, False, 0)
    c = parse(b'{"verbose":false,"user":"u","pass":"p","protocol":1,"import":{"allow":["a"]}}',
              ClientConnect)  # fmt: skip
    assert c.wire() == {
        "verbose": False,
        "user": "u",
        "pass": "p",
        "protocol": 1,
        "import": {"allow": ["a"]},
    }


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ClientConnect, b'{"verbose":1}', "verbose"),
        (ClientConnect, b'{"verbose":"true"}', "verbose"),
        (ClientConnect, b'{"name":5}', "name"),
        (ClientConnect, b'{"protocol":"1"}', "protocol"),
        (ClientConnect, b'{"protocol":1.0}', "protocol"),
        (ClientConnect, b'{"protocol":true}', "protocol"),
        (ClientConnect, b'{"lang":[1]}', "lang"),
        (LinkConnect, b'{"cluster":5}', "cluster"),
        (LinkConnect, b'{"gateway":{}}', "gateway"),
        (ServerInfo, b'{"port":"abc"}', "port"),
        (ServerInfo, b'{"gateway_urls":7}', "gateway_urls"),
        (ServerInfo, b'{"gateway_urls":"ab:1"}', "gateway_urls"),
        (ServerInfo, b'{"gateway_urls":[1]}', "gateway_urls"),
        (ServerInfo, b'{"connect_urls":"x"}', "connect_urls"),
        (ServerInfo, b'{"max_payload":2147483648}', "max_payload"),
        (ServerInfo, b'{"gateway_cmd":256}', "gateway_cmd"),
        (ServerInfo, b'{"gateway_cmd_payload":"!!"}', "gateway_cmd_payload"),
        (ServerInfo, b'{"route_pool_size":"3"}', "route_pool_size"),
    ],
)
def test_wrongly_typed_fields_are_refused_by_name(model, body, field) -> None:
    """As Go's json.Unmarshal into nats-server's typed structs: no coercion."""
    with pytest.raises(WireError, match=field):
        parse(body, model)


@pytest.mark.parametrize(
    "body", [b"[1]", b'"x"', b"5", b"", b"{", b'{"a":1} x', b"\xff\xfe", b"[" * 3000]
)
def test_not_an_object_is_refused(body) -> None:
    for model in MODELS:
        with pytest.raises(WireError):
            parse(body, model)


def test_go_decoding_rules() -> None:
    # null leaves the default; unknown fields are ignored; key names match case-insensitively.
    c = parse(b'{"verbose":null,"zzz":[[1]],"Pedantic":false,"ECHO":false}', ClientConnect)
    assert (c.verbose, c.pedantic, c.echo) == (True, False, False)
    assert parse(b"null", ClientConnect) == parse(b"{}", ClientConnect)
    # Invalid UTF-8 and lone surrogates become U+FFFD (Go does the same) and stay encodable.
    c = parse(b'{"name":"\xff\xfe","lang":"\\ud800x"}', ClientConnect)
    assert c.name == "\ufffd\ufffd" and c.lang == "\ufffdx"
    assert parse(b'{"server_id":"\\ud83d\\ude00"}', ServerInfo).server_id == "\U0001f600"
    assert parse(b'{"gateway_cmd_payload":"JEc="}', ServerInfo).cmd_payload() == b"$G"


def test_depth_is_checked_before_json_parsing() -> None:
    assert json_depth(b'{"a":"[[[[{{{{","b":[[1]]}') == 3
    assert json_depth(b'{"a":"\\"[[["}') == 1
    ok = b'{"x":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert parse(ok, ClientConnect).verbose is True
    for deep in (b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        with pytest.raises(WireError, match="nested"):
            parse(deep, ClientConnect)


def test_route_info_gossip_fields_are_typed() -> None:
    info = parse(
        b'{"server_id":"N1","port":6222,"ip":"nats-route://h:1/","connect_urls":["a:1"],'
        b'"gateway":"B","gateway_urls":["h:7222"],"gateway_cmd":1,"extra":{"x":[1]}}',
        ServerInfo,
    )
    assert info.port == 6222 and info.gateway_urls == ["h:7222"] and info.connect_urls == ["a:1"]
    assert "extra" not in info.wire()


# --- properties -----------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_field_names = st.sampled_from(
    sorted({f.alias or n for m in MODELS for n, f in m.model_fields.items()}) + ["zzz", "PORT"]
)
_docs = st.dictionaries(_field_names, _json, max_size=8)


def _check(raw: bytes) -> None:
    for model in MODELS:
        try:
            value = parse(raw, model)
        except WireError as exc:
            assert str(exc)
            continue
        assert isinstance(value, model)
        json.dumps(value.wire()).encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_json | _docs)
def test_any_json_value_gives_a_model_or_a_wire_error(doc) -> None:
    _check(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_give_a_model_or_a_wire_error(raw) -> None:
    _check(raw)


@settings(max_examples=100, deadline=None)
@given(raw=st.text(alphabet='[]{}",:\\ud0 ', max_size=400).map(str.encode))
def test_bracket_soup_gives_a_model_or_a_wire_error(raw) -> None:
    _check(raw)

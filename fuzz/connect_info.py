"""Fuzz the JSON of CONNECT and INFO on every connection kind, through real connections.

Input layout: byte 0 picks the scenario (below), the rest is the JSON body, which is also decoded
directly with every model of scserver.protocol.models (only WireError may escape). Scenarios 7-9
are established links (inbound route, inbound and outbound gateway) instead: there the rest is
the peer's byte stream after the handshake (its byte 0 picks the read split, see common.chunks),
so RS+/RS-/A+/A-/RMSG/HMSG handling and routing behind the link parser are covered too. The body is sent as
``CONNECT <body>\\r\\n`` / ``INFO <body>\\r\\n`` to a ClientConnection, RouteConnection or
GatewayConnection of an in-process server (fake transport, no network), after whatever
handshake the scenario needs to reach that code. Besides "nothing raises or logs a traceback",
the harness checks that a closed connection is gone from every registry.
"""

from __future__ import annotations

import json
from typing import Any

from fuzz.common import Finding, ServerPool, chunks, connect, finish
from scserver import monitor
from scserver.client import ClientConnection
from scserver.gateway import GatewayConnection
from scserver.route import RouteConnection

try:  # the typed CONNECT/INFO models (scserver.protocol.models), where present
    from scserver.protocol import models as _models
except ImportError:  # pragma: no cover - older trees decode with json.loads in the connections
    _models = None

CONF = """
server_name: fuzz-east-1
host: 127.0.0.1
port: 4222
accounts: {
  A: { users: [ {user: a, password: a} ] }
  B: { users: [ {user: b, password: b, permissions: {publish: ["b.>"], subscribe: ["b.>"]}} ] }
  $SYS: { users: [ {user: sys, password: sys} ] }
}
system_account: "$SYS"
cluster: { name: east, host: 127.0.0.1, port: 6222 }
gateway: {
  name: east, host: 127.0.0.1, port: 7222
  gateways: [ {name: east, urls: ["nats://127.0.0.1:7222"]},
              {name: west, urls: ["nats://127.0.0.1:7223"]} ]
}
"""

ROUTE_CONNECT = b'CONNECT {"name":"NROUTEPEER","cluster":"east","headers":true}\r\n'
GW_CONNECT = b'CONNECT {"gateway":"west","name":"NWESTPEER","headers":true}\r\n'

_pool = ServerPool(CONF, links=True)


def _client(server: Any, body: bytes) -> Any:
    conn = ClientConnection(server)
    connect(conn)
    conn.data_received(b"CONNECT " + body + b"\r\nPING\r\nSUB a.b 1\r\nPUB a.b 1\r\nx\r\n")
    return conn


def _route(server: Any, body: bytes, verb: bytes, outbound: bool) -> Any:
    url = "nats-route://127.0.0.1:6223" if outbound else None
    conn = RouteConnection(server, server.routes, url=url, explicit=True)
    connect(conn)
    if verb == b"INFO" and not outbound:
        conn.data_received(ROUTE_CONNECT)
    conn.data_received(verb + b" " + body + b"\r\n")
    if verb == b"INFO":
        # A second INFO takes the gossip / implicit route / lame duck paths.
        conn.data_received(b"INFO " + body + b"\r\nRS+ $G a.b\r\nRMSG $G a.b 1\r\nx\r\nPING\r\n")
    return conn


def _gateway(server: Any, body: bytes, verb: bytes, outbound: bool) -> Any:
    if outbound:
        conn = GatewayConnection(server, server.gateway, "west", "nats://127.0.0.1:7223")
    else:
        conn = GatewayConnection(server, server.gateway)
    connect(conn)
    if verb == b"INFO" and not outbound:
        conn.data_received(GW_CONNECT)
    conn.data_received(verb + b" " + body + b"\r\n")
    if verb == b"INFO":
        tail = b"RS+ $G a.b\r\nA- $G\r\n" if outbound else b"RMSG $G a.b 1\r\nx\r\n"
        conn.data_received(b"INFO " + body + b"\r\n" + tail + b"PING\r\n")
    return conn


ROUTE_INFO = (
    b'INFO {"server_id":"NROUTEPEER","server_name":"peer","cluster":"east","headers":true,'
    b'"port":6223}\r\n'
)
GW_INFO = (
    b'INFO {"server_id":"NWESTPEER","gateway":"west","gateway_urls":["127.0.0.1:7223"],'
    b'"headers":true}\r\n'
)


def _link_stream(server: Any, stream: bytes, kind: str) -> Any:
    """An established link (handshake done), then the input as the peer's byte stream."""
    if kind == "route":
        conn = RouteConnection(server, server.routes)
        connect(conn)
        conn.data_received(ROUTE_CONNECT + ROUTE_INFO)
    elif kind == "gw-in":
        conn = GatewayConnection(server, server.gateway)
        connect(conn)
        conn.data_received(GW_CONNECT + GW_INFO)
    else:
        conn = GatewayConnection(server, server.gateway, "west", "nats://127.0.0.1:7223")
        connect(conn)
        conn.data_received(GW_INFO)
    if stream:
        for piece in chunks(stream[1:], stream[0]):
            if conn.closed:
                break
            conn.data_received(piece)
    return conn


SCENARIOS = (
    lambda s, b: _client(s, b),
    lambda s, b: _route(s, b, b"CONNECT", outbound=False),
    lambda s, b: _route(s, b, b"INFO", outbound=False),
    lambda s, b: _route(s, b, b"INFO", outbound=True),
    lambda s, b: _gateway(s, b, b"CONNECT", outbound=False),
    lambda s, b: _gateway(s, b, b"INFO", outbound=False),
    lambda s, b: _gateway(s, b, b"INFO", outbound=True),
    lambda s, b: _link_stream(s, b, "route"),
    lambda s, b: _link_stream(s, b, "gw-in"),
    lambda s, b: _link_stream(s, b, "gw-out"),
)


def _check_gone(server: Any, conn: Any) -> None:
    """A closed connection must not stay registered anywhere."""
    if conn.cid in server.clients:
        raise Finding("closed client still in server.clients")
    routes, gw = server.routes, server.gateway
    if conn in routes.pending or conn in routes.routes.values():
        raise Finding("closed route still registered")
    if conn in gw.pending or conn in gw.inbound.values() or conn in gw.outbound.values():
        raise Finding("closed gateway still registered")
    for account in server.accounts.values():
        for sub in account.sublist.all():
            if sub.conn is conn:
                raise Finding("closed connection left a subscription behind")


def _check_models(body: bytes) -> None:
    """Every model decodes the body or raises WireError; what it keeps can be sent again."""
    if _models is None:
        return
    for model in (_models.ClientConnect, _models.LinkConnect, _models.ServerInfo):
        try:
            doc = _models.parse(body, model)
        except _models.WireError as err:
            if not str(err):
                raise Finding(f"WireError without a reason for {model.__name__}") from err
            continue
        json.dumps(doc.wire()).encode("utf-8")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    _check_models(data[1:])
    server = _pool.get()
    conn = SCENARIOS[data[0] % len(SCENARIOS)](server, data[1:])
    # What the peer told us (names, urls, INFO fields) must render in the monitoring pages.
    for build in (monitor.routez, monitor.gatewayz, monitor.connz):
        json.dumps(build(server, {"subs": "1", "accs": "1"}))
    json.dumps(monitor.varz(server))
    finish(conn)
    _check_gone(server, conn)

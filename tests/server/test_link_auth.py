"""Route and gateway ports with ``authorization`` refuse peers without the right credentials.

One server (scserver and nats-server alike) with a cluster and a gateway listener that require
a user and password; a raw socket plays the peer.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from tests.server.conftest import IMPLS, Servers
from tests.tools import LOOPBACK, free_port

AUTH_ERR = b"-ERR 'Authorization Violation'"


def link_conf(cluster_port: int, gateway_port: int) -> str:
    return (
        f"server_name: guarded\n"
        f"cluster {{\n  name: X\n  listen: {LOOPBACK}:{cluster_port}\n"
        f"  authorization {{ user: ruser, password: rpass }}\n}}\n"
        f"gateway {{\n  name: X\n  listen: {LOOPBACK}:{gateway_port}\n"
        f"  authorization {{ user: guser, password: gpass }}\n}}\n"
    )


@pytest.fixture(params=IMPLS)
def guarded(request: pytest.FixtureRequest, servers: Servers):
    cport, gport = free_port(), free_port()
    sp = servers.start(request.param, link_conf(cport, gport))
    return sp, cport, gport


def exchange(port: int, connect: dict, wait: float = 1.5) -> tuple[bytes, bool]:
    """Send CONNECT + PING after the INFO; what came back, and whether the server closed."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        buf = b""
        while b"\r\n" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"INFO "), buf
        s.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        deadline = time.monotonic() + wait
        closed = False
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        return buf, closed


def route_connect(**creds: str) -> dict:
    return {
        "echo": True,
        "verbose": False,
        "pedantic": False,
        "tls_required": False,
        "name": "NPEERSERVERID",
        "cluster": "X",
        "headers": True,
        **creds,
    }


def gateway_connect(**creds: str) -> dict:
    return {
        "echo": False,
        "verbose": False,
        "pedantic": False,
        "tls_required": False,
        "name": "NPEERSERVERID",
        "gateway": "Y",
        **creds,
    }


BAD = {
    "no-credentials": {},
    "wrong-password": {"user": "{u}", "pass": "nope"},
    "wrong-user": {"user": "someone", "pass": "{p}"},
    "token-instead": {"auth_token": "{p}"},
}


def _fill(creds: dict, user: str, password: str) -> dict:
    return {k: v.format(u=user, p=password) for k, v in creds.items()}


@pytest.mark.parametrize("case", list(BAD))
def test_route_port_refuses(guarded, case: str) -> None:
    _, cport, _ = guarded
    buf, closed = exchange(cport, route_connect(**_fill(BAD[case], "ruser", "rpass")))
    assert AUTH_ERR in buf and closed, buf


@pytest.mark.parametrize("case", list(BAD))
def test_gateway_port_refuses(guarded, case: str) -> None:
    _, _, gport = guarded
    buf, closed = exchange(gport, gateway_connect(**_fill(BAD[case], "guser", "gpass")))
    assert AUTH_ERR in buf and closed, buf


def test_route_port_accepts_the_right_credentials(guarded) -> None:
    _, cport, _ = guarded
    buf, _ = exchange(cport, route_connect(user="ruser", **{"pass": "rpass"}), wait=1.0)
    assert AUTH_ERR not in buf, buf
    assert b"PONG" in buf or b"INFO" in buf.split(b"\r\n", 1)[1], buf


@pytest.mark.parametrize("impl", IMPLS)
def test_bcrypt_route_password(servers: Servers, impl: str) -> None:
    """A bcrypt hash as the cluster password (nats-server compares it as for clients)."""
    import bcrypt

    hashed = bcrypt.hashpw(b"rpass", bcrypt.gensalt(4)).decode().replace("$2b$", "$2a$", 1)
    cport = free_port()
    servers.start(
        impl,
        f"cluster {{\n  name: X\n  listen: {LOOPBACK}:{cport}\n"
        f"  authorization {{ user: ruser, password: '{hashed}' }}\n}}\n",
    )
    buf, _ = exchange(cport, route_connect(user="ruser", **{"pass": "rpass"}), wait=1.0)
    assert AUTH_ERR not in buf, buf
    buf, closed = exchange(cport, route_connect(user="ruser", **{"pass": hashed}))
    assert AUTH_ERR in buf and closed, buf

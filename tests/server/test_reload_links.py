"""What a config reload does to established routes, gateways and logins (scserver.link_reload,
``Server.reauthorize_clients``), checked on real processes and against nats-server.

* Routes: nats-server's ``reloadAuthorization`` checks every accepted route again with the
  CONNECT it sent; one whose credentials no longer pass is ended (``-ERR 'Authorization
  Violation'``) and stays out while its peer dials with the old credentials.
* Gateways: nats-server refuses a reload that changes ``gateway { authorization {} }``
  ("config reload not supported for Gateway"); scserver applies gateway changes and so checks
  accepted gateways the same way as routes.
* A user whose bcrypt hash changes has its clients' passwords hashed again in worker threads:
  other clients are answered meanwhile.
* A client whose user moves to another account is closed ("Client Closed", no -ERR) and can
  log in again into the new account, as nats-server does.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from typing import Any

import bcrypt
import pytest
from tests.server.conftest import EOF, IMPLS, RawClient, Servers
from tests.tools import LOOPBACK, ServerProcess, free_port, http_get_json

pytestmark = pytest.mark.nats_server

RELOADED = "Reloaded server configuration"  # both implementations log this line


def _reloads(sp: ServerProcess) -> int:
    return sp.log_text().count(RELOADED)


def _reload(sp: ServerProcess, config: str) -> None:
    """Rewrite the config body (keeping the listen/http head) and SIGHUP; wait for the log."""
    assert sp.config_path is not None
    head = "".join(
        line + "\n"
        for line in sp.config_path.read_text().splitlines()
        if re.match(r"^(listen|http):", line)
    )
    before = _reloads(sp)
    sp.config_path.write_text(head + config)
    sp.signal(signal.SIGHUP)
    _wait(lambda: _reloads(sp) > before, 10, f"{sp.name} reloaded")


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _refusals(sp: ServerProcess) -> int:
    """Link logins ``sp`` has refused so far (both implementations log each one)."""
    return len(re.findall(r"authentication error", sp.log_text(), re.IGNORECASE))


def _stays_after_refusals(sp: ServerProcess, pred: Any, what: str, more: int = 2) -> None:
    """ "Stays out" without a clock: once ``sp`` has refused ``more`` further logins from the
    peer that keeps dialling with the old credentials, ``pred`` must still hold."""
    start = _refusals(sp)
    _wait(lambda: _refusals(sp) >= start + more, 30, f"{more} more refused logins ({what})")
    assert pred(), what


def _route_carries(s1: ServerProcess, s2: ServerProcess, subject: str = "probe.route") -> None:
    """A message published on S2 reaches a subscriber on S1: the route is up and forwarding
    after the reload (a sentinel: the reload's re-check of that route is behind it)."""
    sub, pub = RawClient(s1.port), RawClient(s2.port)
    try:
        sub.connect()
        assert sub.exchange(f"SUB {subject} 1\r\nPING\r\n") == ["PONG"]
        pub.connect()

        def crossed() -> bool:
            assert pub.exchange(f"PUB {subject} 2\r\nok\r\nPING\r\n") == ["PONG"]
            return f"MSG {subject} 1 2" in sub.lines(until=None, timeout=0.2)

        _wait(crossed, 15, "a message across the route")
    finally:
        sub.close()
        pub.close()


def _get(sp: ServerProcess, path: str) -> Any:
    assert sp.http_port is not None
    return http_get_json(LOOPBACK, sp.http_port, path)


def _num_routes(sp: ServerProcess) -> int:
    return int(_get(sp, "/routez")["num_routes"])


# --- routes -----------------------------------------------------------------------------------


def _cluster(port: int, password: str | None, routes: str = "") -> str:
    auth = f"authorization {{ user: r, password: {password} }}" if password else ""
    return (
        f'server_name: S{port}\ncluster {{\n  name: C\n  listen: "{LOOPBACK}:{port}"\n'
        f"  {auth}\n  routes: [{routes}]\n}}\n"
    )


ROUTE_CHANGES = {
    # changed password: the accepted route fails the new check and is ended
    "password-changed": ("p2", False),
    # authorization removed: every route passes
    "authorization-removed": (None, True),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("change", list(ROUTE_CHANGES))
def test_accepted_route_login_checked_again_on_reload(servers: Servers, impl: str, change: str):
    """S1 only accepts; S2 dials it with user r / password p1. A reload of S1 that changes the
    cluster authorization ends the route when p1 no longer passes, and it stays out while S2
    dials with p1; once S2 uses the new password the route comes back."""
    new_password, kept = ROUTE_CHANGES[change]
    p1, p2 = free_port(), free_port()
    s1 = servers.start(impl, _cluster(p1, "p1"), http=True)
    url = f'"nats-route://r:p1@{LOOPBACK}:{p1}"'
    s2 = servers.start(impl, _cluster(p2, "p1", url), http=True)
    _wait(lambda: _num_routes(s1) > 0 and _num_routes(s2) > 0, 15, "route S2 -> S1")
    rids = {r["rid"] for r in _get(s1, "/routez")["routes"]}

    _reload(s1, _cluster(p1, new_password))
    if kept:
        _route_carries(s1, s2)
        assert {r["rid"] for r in _get(s1, "/routez")["routes"]} == rids, "route kept"
        return
    _wait(lambda: _num_routes(s1) == 0, 10, "S1 ends the route S2 logged in with p1")
    _stays_after_refusals(s1, lambda: _num_routes(s1) == 0, "S2 dials with p1, must stay out")
    if impl == "scserver":
        assert "authentication error after config reload" in s1.log_text(), s1.log_tail()

    new_url = f'"nats-route://r:{new_password}@{LOOPBACK}:{p1}"'
    _reload(s2, _cluster(p2, new_password, new_url))
    _wait(lambda: _num_routes(s1) > 0 and _num_routes(s2) > 0, 15, "route back with p2")


# --- gateways ---------------------------------------------------------------------------------


def _gateway(name: str, port: int, password: str, remotes: dict[str, int]) -> str:
    entries = ", ".join(
        f'{{name: {n}, urls: ["nats://{LOOPBACK}:{p}"]}}' for n, p in remotes.items()
    )
    return (
        f'server_name: {name}1\ngateway {{\n  name: {name}\n  listen: "{LOOPBACK}:{port}"\n'
        f"  authorization {{ user: g, password: {password} }}\n  gateways: [{entries}]\n}}\n"
    )


def _gw_links(sp: ServerProcess) -> tuple[set[str], dict[str, int]]:
    gwz = _get(sp, "/gatewayz")
    inbound = {k: len(v) for k, v in (gwz.get("inbound_gateways") or {}).items()}
    return set(gwz.get("outbound_gateways") or {}), inbound


def test_gateway_login_checked_again_on_reload(servers: Servers):
    """A and B dial each other with their gateway block's user g. A reload of A to password
    p2 ends B's link into A (B still sends p1) and keeps it out; once B also moves to p2, B
    ends A's old link (logged in with p1), A dials again with p2, and both links come back."""
    ga, gb = free_port(), free_port()
    remotes = {"A": ga, "B": gb}
    a = servers.start("scserver", _gateway("A", ga, "p1", remotes), http=True)
    b = servers.start("scserver", _gateway("B", gb, "p1", remotes), http=True)
    both = ({"B"}, {"B": 1}), ({"A"}, {"A": 1})
    _wait(lambda: (_gw_links(a), _gw_links(b)) == both, 15, "gateways A <-> B")

    _reload(a, _gateway("A", ga, "p2", remotes))
    _wait(lambda: not _gw_links(a)[1], 10, "A ends B's inbound link (p1)")
    _stays_after_refusals(a, lambda: not _gw_links(a)[1], "B dials with p1, must stay out")
    assert re.search(r"Gateway authentication error after config reload", a.log_text())
    assert _gw_links(a)[0] == {"B"}, "A's own outbound link is not checked (B holds the creds)"

    _reload(b, _gateway("B", gb, "p2", remotes))
    _wait(lambda: (_gw_links(a), _gw_links(b)) == both, 15, "gateways back with p2")
    assert "Gateway authentication error after config reload" in b.log_text(), b.log_tail()


@pytest.mark.parametrize("impl", IMPLS)
def test_gateway_authorization_reload(servers: Servers, impl: str):
    """The one deliberate difference: nats-server refuses the reload, scserver applies it."""
    port = free_port()
    sp = servers.start(impl, _gateway("A", port, "p1", {"A": port}), http=True)
    assert sp.config_path is not None
    head = sp.config_path.read_text().split("server_name")[0]
    sp.config_path.write_text(head + _gateway("A", port, "p2", {"A": port}))
    sp.signal(signal.SIGHUP)
    if impl == "nats-server":
        _wait(lambda: "not supported for Gateway" in sp.log_text(), 10, "refusal")
    else:
        _wait(lambda: _reloads(sp) > 0, 10, "reload")
        assert "Failed to reload" not in sp.log_text()


# --- bcrypt re-checks stay off the event loop -------------------------------------------------

CLIENTS = 16
COST = 11  # ~0.1-0.2 s per check here: 16 on the loop would stall it for seconds


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(COST)).decode()


def _users(many_hash: str, moved_hash: str) -> str:
    return (
        "authorization { users: [\n"
        f"  {{user: many, password: '{many_hash}'}}\n"
        f"  {{user: moved, password: '{moved_hash}'}}\n"
        "  {user: probe, password: plain}\n] }\n"
    )


async def _login(port: int, user: str, password: str) -> tuple[Any, Any]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    await reader.readline()  # INFO
    connect = {"user": user, "pass": password, "verbose": False, "pedantic": False}
    writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
    line = await asyncio.wait_for(reader.readline(), 20)
    assert line == b"PONG\r\n", line
    return reader, writer


async def _pong(reader: Any, writer: Any) -> None:
    """PING, and its PONG must come back (the 30 s only guards against a hang)."""
    writer.write(b"PING\r\n")
    while (line := await asyncio.wait_for(reader.readline(), 30)) != b"PONG\r\n":
        assert line, "connection closed"


async def test_bcrypt_rehash_on_reload_keeps_other_clients_served(servers: Servers):
    """A reload gives user `many` a new hash of the same password (a new salt: every client's
    password must be hashed again) and user `moved` a hash of another password. While those
    checks run, a third client's PINGs are answered; afterwards the `many` clients are still
    served and the `moved` client is closed as an authorization violation. How promptly the
    PINGs are answered is a benchmark's figure (``python -m bench.bench_recovery``)."""
    sp = servers.start("scserver", _users(_hash("pw"), _hash("old")))
    port = sp.port
    assert port is not None
    many = [await _login(port, "many", "pw") for _ in range(CLIENTS)]
    moved_r, _moved_w = await _login(port, "moved", "old")
    probe = await _login(port, "probe", "plain")

    assert sp.config_path is not None
    head = sp.config_path.read_text().split("authorization")[0]
    sp.config_path.write_text(head + _users(_hash("pw"), _hash("new")))
    sp.signal(signal.SIGHUP)
    moved_closed = asyncio.ensure_future(moved_r.read())

    async def probe_until_moved_closed() -> None:
        while not moved_closed.done():  # the probe is served while the checks run
            await _pong(*probe)

    await asyncio.wait_for(probe_until_moved_closed(), 60)
    assert b"Authorization Violation" in moved_closed.result()
    await _pong(*probe)
    for reader, writer in many:
        await _pong(reader, writer)
        writer.close()
    probe[1].close()


# --- a user that moves to another account -----------------------------------------------------


def _accounts(b_user_in: str) -> str:
    users = {"A": ["{user: a, password: a1}"], "B": []}
    users[b_user_in].append("{user: b, password: b1}")
    return (
        "accounts {\n"
        + "".join(f"  {k}: {{ users: [{', '.join(v)}] }}\n" for k, v in users.items())
        + "}\n"
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_client_whose_user_moves_account_is_closed(servers: Servers, impl: str):
    """nats-server closes it (clientHasMovedToDifferentAccount: "Client Closed", no -ERR) and
    lets it reconnect into its new account: so does scserver."""
    sp = servers.start(impl, _accounts("B"), http=True)
    assert sp.port is not None
    c = RawClient(sp.port)
    c.send('CONNECT {"user":"b","pass":"b1","verbose":false}\r\nPING\r\n')
    assert c.lines()[-1] == "PONG"
    a = RawClient(sp.port)
    a.send('CONNECT {"user":"a","pass":"a1","verbose":false}\r\nSUB moved.> 1\r\nPING\r\n')
    assert a.lines()[-1] == "PONG"

    _reload(sp, _accounts("A"))
    rest = c.lines(until=None, timeout=5)
    assert rest[-1] == EOF and not any(line.startswith("-ERR") for line in rest), rest
    closed = _get(sp, "/connz?state=closed&auth=1")["connections"]
    assert [x["reason"] for x in closed if x.get("authorized_user") == "b"] == ["Client Closed"]

    again = RawClient(sp.port)  # b logs in again, now in account A: a sees its messages
    again.send(
        'CONNECT {"user":"b","pass":"b1","verbose":false}\r\nPUB moved.x 2\r\nhi\r\nPING\r\n'
    )
    assert again.lines()[-1] == "PONG"
    got = a.lines(until="MSG moved.x 1 2", timeout=10)  # until the message arrives
    assert got[-2:] == ["MSG moved.x 1 2", "b'hi'"], got


# --- a link dialled or accepted across a reload that turned TLS on ----------------------------


class _Transport:
    def __init__(self, tls: bool) -> None:
        self.extra = {"ssl_object": object() if tls else None, "peername": ("127.0.0.1", 7)}
        self.aborted = False

    def get_extra_info(self, key: str) -> Any:
        return self.extra.get(key)

    def abort(self) -> None:
        self.aborted = True


def _link(kind: str, outbound: bool, remote: str = "") -> Any:
    """A link as link_reload sees it, on a server whose cluster block and gateway entry `B`
    have TLS (gateway entry `C` and the gateway block have none)."""
    from types import SimpleNamespace

    from scserver.protocol.parser import GATEWAY, ROUTE

    tls = SimpleNamespace(
        route_client=object(),
        route_server=object(),
        route_cfg=object(),
        gateway_client=None,
        gateway_server=None,
        gateway_cfg=None,
        remote_gateways={"B": (object(), object())},
    )
    return SimpleNamespace(
        server=SimpleNamespace(tls=tls),
        kind=ROUTE if kind == "route" else GATEWAY,
        outbound=outbound,
        gw_name=remote,
        host="",
        port=0,
        label=lambda: "link",
    )


@pytest.mark.parametrize(
    ("kind", "outbound", "remote", "tls", "refused"),
    [
        ("route", True, "", False, True),  # dialled in plaintext, cluster TLS now on
        ("route", False, "", False, True),  # accepted in plaintext
        ("route", True, "", True, False),  # came up over TLS
        ("gateway", True, "B", False, True),  # B's entry has its own tls {}
        ("gateway", True, "C", False, False),  # C's has none, nor the gateway block
        ("gateway", False, "", False, False),  # the gateway listener has no TLS
    ],
)
def test_plaintext_link_refused_once_tls_is_required(
    kind: str, outbound: bool, remote: str, tls: bool, refused: bool
) -> None:
    """A dial or accept that began before a reload and comes up in plaintext after it is
    aborted before anything is written (LinkConnection.connection_made)."""
    from scserver import link_reload

    transport = _Transport(tls)
    assert link_reload.plaintext_refused(_link(kind, outbound, remote), transport) is refused
    assert transport.aborted is refused

"""A reload keeps the clients of a clustered server, and they keep delivering and receiving.

tests/server/test_reload_auth.py checks single servers: every auth mode and way of reloading,
and which clients a reload drops. Here the reloaded server is one of a cluster joined to
another cluster by a gateway, in the seed's shapes: anonymous clients in ``$G`` (only ``$SYS``
has users), users in an application account, and ``no_auth_user``. Clients on A1 subscribe
before the reload, A1 reloads on SIGHUP (once unchanged, once after a user was added to the
clients' account, which makes the server check every client's login again), and then:

* none of A1's clients saw a disconnect (the check runs before the server logs the reload, so a
  close sent by it arrives before the answer to the flush that follows);
* messages published on A2 (route) and B1 (gateway) reach the subscriptions made before the
  reload, plain and queue, and what A1's clients publish reaches subscribers on A2 and B1;
* the same clients (client ids) are still in A1's /connz.

Run with scserver, with nats-server (the reference), and with a mixed cluster.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

import pytest
from tests.cluster.helpers import (
    Inbox,
    WatchedClient,
    close_all,
    eventually,
    layout_params,
    reach,
    sentinel,
    subscribe,
    unique,
)
from tests.cluster.topology import GO, SC, Topology, running

SYS = "  $SYS: { users: [{user: sys, password: sys}] }\n"
SYS_MORE = "  $SYS: { users: [{user: sys, password: sys}, {user: s2, password: s2}] }\n"
APP = "  APP: { users: [{user: app, password: p}] }\n"
APP_MORE = "  APP: { users: [{user: app, password: p}, {user: other, password: o}] }\n"
APP_LOGIN = {"user": "app", "password": "p"}


@dataclass(frozen=True)
class Mode:
    """Accounts before and after the edit (a user added where nats-server keeps the clients),
    extra top-level lines, and the logins of A1's clients."""

    before: str
    after: str
    extra: str
    logins: tuple[dict[str, str], ...]


MODES: dict[str, Mode] = {
    # anonymous clients land in $G while only $SYS has users; a user added elsewhere would
    # turn auth on for them (nats-server drops them then: tests/server/test_reload_auth.py)
    "anonymous-G": Mode(SYS, SYS_MORE, "", ({},)),
    "users": (Mode(SYS + APP, SYS + APP_MORE, "", (APP_LOGIN,))),
    "no-auth-user": Mode(SYS + APP, SYS + APP_MORE, "no_auth_user: app", ({}, APP_LOGIN)),
}

LAYOUTS = {
    "scserver": {"A": [SC, SC], "B": [SC]},
    "mixed": {"A": [SC, GO], "B": [GO]},
    "nats-server": {"A": [GO, GO], "B": [GO]},
}


def auth_conf(accounts: str, extra: str) -> str:
    return f"accounts {{\n{accounts}}}\n{extra}"


def reloads(topo: Topology, name: str) -> int:
    return topo.node(name).log().count("Reloaded server configuration")


async def sighup(topo: Topology, name: str) -> None:
    """Rewrite ``name``'s config from the plan, SIGHUP it, wait until it logged the reload."""
    node = topo.node(name)
    before = reloads(topo, name)
    topo.write_config(node)
    assert node.proc is not None
    node.proc.signal(signal.SIGHUP)
    await eventually(lambda: reloads(topo, name) > before, 10, f"{name} reloaded")


async def all_have(boxes: list[Inbox], prefix: str, n: int) -> None:
    """Wait until every inbox holds ``n`` messages starting with ``prefix``."""
    await eventually(lambda: all(len(b.data(prefix.encode())) >= n for b in boxes), 10)


def client_ids(topo: Topology, name: str) -> set[int]:
    conns = topo.node(name).get("/connz?limit=1000")["connections"] or []
    return {c["cid"] for c in conns}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("layout", layout_params(LAYOUTS))
async def test_reload_keeps_clients_delivering_and_receiving(layout: str, mode: str) -> None:
    m = MODES[mode]
    with running(LAYOUTS[layout], top_extra={"*": auth_conf(m.before, m.extra)}) as topo:
        await _scenario(topo, m)


async def _scenario(topo: Topology, m: Mode) -> None:
    logins = m.logins
    a1 = topo.node("A1").url
    peer_login = logins[-1]
    peers = {
        n: await WatchedClient(f"peer-{n}").connect(topo.node(n).url, peer_login)
        for n in ("A2", "B1")
    }
    clients = [await WatchedClient(f"a1-{i}").connect(a1, login) for i, login in enumerate(logins)]
    try:
        to_a1, from_a1 = unique("to-a1"), unique("from-a1")
        plain: list[Inbox] = []
        queued: list[Inbox] = []
        for c in clients:
            plain.append(await subscribe(c.nc, to_a1))
            queued.append(await subscribe(c.nc, f"{to_a1}.q", queue=f"workers-{c.name}"))
        a1_sentinels = [await sentinel(c.nc) for c in clients]
        got = {n: await subscribe(p.nc, from_a1) for n, p in peers.items()}
        peer_sentinels = [await sentinel(p.nc) for p in peers.values()]
        for p in peers.values():
            await reach(p.nc, a1_sentinels)
        for c in clients:
            await reach(c.nc, peer_sentinels)
        ids = client_ids(topo, "A1")

        for edit in ("unchanged", "user-added"):
            if edit == "user-added":
                topo.top_extra["*"] = auth_conf(m.after, m.extra)
            await sighup(topo, "A1")
            for c in clients:
                # a close sent by the reload would come before this PONG
                await c.nc.flush(timeout=5)
                assert not c.lost and c.nc.is_connected, (edit, c.name, c.lost)
            assert ids <= client_ids(topo, "A1"), (edit, ids, client_ids(topo, "A1"))
            # through the route and the gateway into the subscriptions made before the reload
            for n, p in peers.items():
                await p.nc.publish(to_a1, f"{edit}-{n}".encode())
                await p.nc.publish(f"{to_a1}.q", f"{edit}-{n}".encode())
                await p.nc.flush()
            want = sorted(f"{edit}-{n}".encode() for n in peers)
            boxes = plain + queued
            try:
                await all_have(boxes, edit, len(peers))
            except TimeoutError:
                raise AssertionError(
                    f"after {edit} reload: {[b.data() for b in boxes]}\n{topo.logs()}"
                ) from None
            for b in boxes:
                assert sorted(b.data(edit.encode())) == want, (edit, b.label, b.data())
            # and out of them, to the other servers
            for c in clients:
                await c.nc.publish(from_a1, f"{edit}-{c.name}".encode())
                await c.nc.flush()
            sent = sorted(f"{edit}-{c.name}".encode() for c in clients)
            await all_have(list(got.values()), edit, len(sent))
            for n, b in got.items():
                assert sorted(b.data(edit.encode())) == sent, (edit, n, b.data())
        for c in clients:
            assert not c.lost, (c.name, c.lost)
    finally:
        await close_all(*(c.nc for c in clients), *(p.nc for p in peers.values()))

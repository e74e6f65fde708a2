"""`scoperator local`: a supercluster as local server processes on loopback.

The configs are rendered by the same template as in Kubernetes; only the target differs
(`LocalTarget`: 127.0.0.1 and a block of ports per server, a literal server name), so running
locally exercises exactly what the operator deploys. Each server gets a directory with its
`scserver.conf` (and `auth.conf` when accounts have users) and a log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp

from scoperator.models import Cluster, Ports, ResourceSet, SuperCluster
from scoperator.naming import (
    CONFIG_FILE,
    LocalTarget,
    ServerAddress,
    Topology,
    server_name,
)
from scoperator.render import render_configs
from scoperator.secrets import SecretValues, secrets_from_objects

DEFAULT_TIMEOUT = 60.0


class LocalError(RuntimeError):
    """The local supercluster could not be started or did not converge."""


def default_server_cmd() -> list[str]:
    """`scserver` run by this Python, so the local tree is used without installation."""
    return [sys.executable, "-m", "scserver"]


def resolve_command(command: list[str]) -> list[str]:
    """Make the executable absolute: servers run in their own directories."""
    exe = command[0]
    if os.sep in exe:
        return [str(Path(exe).absolute()), *command[1:]]
    found = shutil.which(exe)
    if not found:
        raise LocalError(f"server command {exe!r} not found on PATH")
    return [str(Path(found).absolute()), *command[1:]]


def allocate_ports(names: Sequence[str], port_base: int | None = None) -> dict[str, Ports]:
    """Four ports per server: `port_base + k`, `+1000`, `+2000`, `+3000`, or free ports.

    Free ports come from binding port 0 with every socket held open until all are picked, so
    one allocation never hands out the same port twice.
    """
    if port_base is not None:
        return {
            name: Ports(
                client=port_base + k,
                cluster=port_base + 1000 + k,
                gateway=port_base + 2000 + k,
                monitor=port_base + 3000 + k,
            )
            for k, name in enumerate(names)
        }
    socks = []
    try:
        for _ in range(4 * len(names)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        ports = [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
    return {
        name: Ports(
            client=ports[4 * k],
            cluster=ports[4 * k + 1],
            gateway=ports[4 * k + 2],
            monitor=ports[4 * k + 3],
        )
        for k, name in enumerate(names)
    }


@dataclass
class LocalServer:
    """One running (or planned) server process."""

    address: ServerAddress
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """Server name, e.g. east-0."""
        return self.address.name

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.directory / "server.log"

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of the log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalSupercluster:
    """Plans, starts, waits for and stops the processes of one supercluster."""

    supercluster: SuperCluster
    clusters: list[Cluster]
    secrets: SecretValues
    server_cmd: list[str]
    workdir: Path
    port_base: int | None = None
    servers: list[LocalServer] = field(default_factory=list)
    topology: Topology | None = None

    def plan(self) -> None:
        """Allocate ports, render every server's config and write it to its directory."""
        names = [server_name(c.name, i) for c in self.clusters for i in range(c.spec.replicas)]
        target = LocalTarget(allocate_ports(names, self.port_base))
        self.topology = Topology.build(self.supercluster, self.clusters, target)
        units = render_configs(self.topology, self.secrets)
        self.servers = []
        for address in self.topology.all_servers():
            directory = self.workdir / address.name
            directory.mkdir(parents=True, exist_ok=True)
            for filename, text in units[address.name].items():
                path = directory / filename
                path.write_text(text)
                path.chmod(0o600)
            self.servers.append(LocalServer(address, directory))

    def start(self) -> None:
        """Start one process per server (each in its own session: we decide when it stops)."""
        env = dict(os.environ)
        server_src = Path(__file__).resolve().parents[2] / "server"
        if (server_src / "scserver").is_dir():
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(server_src), env.get("PYTHONPATH", "")) if p
            )
        command = resolve_command(self.server_cmd)
        for server in self.servers:
            log = server.log_path.open("wb")
            try:
                server.process = subprocess.Popen(
                    [*command, "-c", str(server.directory / CONFIG_FILE)],
                    cwd=server.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise LocalError(f"cannot start {self.server_cmd[0]}: {exc}") from exc
            finally:
                log.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every server, then SIGKILL whatever is still alive after `timeout`."""
        running = [s.process for s in self.servers if s.process and s.process.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _check_alive(self) -> None:
        for server in self.servers:
            if server.process and server.process.poll() is not None:
                raise LocalError(
                    f"server {server.name} exited with {server.process.returncode}:\n"
                    f"{server.log_tail()}"
                )

    async def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until every server is healthy, routed to its peers and gatewayed to every member.

        External gateways are not waited for: they are somewhere else and usually unreachable
        from a laptop.
        """
        assert self.topology is not None
        members = {c.name for c in self.topology.clusters}
        deadline = time.monotonic() + timeout
        pending = list(self.servers)
        last: dict[str, str] = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while pending:
                self._check_alive()
                still = []
                for server in pending:
                    problem = await _server_problem(http, server, members, self.topology)
                    if problem:
                        last[server.name] = problem
                        still.append(server)
                pending = still
                if not pending:
                    return
                if time.monotonic() > deadline:
                    details = "; ".join(f"{s.name}: {last.get(s.name)}" for s in pending)
                    raise LocalError(f"supercluster not ready after {timeout:.0f}s: {details}")
                await asyncio.sleep(0.2)

    def describe(self) -> str:
        """How to reach each cluster, for humans."""
        assert self.topology is not None
        lines = [
            f"SuperCluster {self.supercluster.name}: {len(self.topology.clusters)} clusters, "
            f"{len(self.servers)} servers, gateways connected."
        ]
        for cluster in self.topology.clusters:
            servers = [s for s in self.servers if s.address.cluster == cluster.name]
            urls = ",".join(s.address.client_url for s in servers)
            lines.append(f"  {cluster.name}: {urls}")
            for s in servers:
                lines.append(f"    {s.name}: monitor {s.address.monitor_url}  log {s.log_path}")
        externals = self.supercluster.spec.external_gateways
        if externals:
            names = ", ".join(g.name for g in externals)
            lines.append(f"  external gateways (dialled, not waited for): {names}")
        lines.append(f"Configs and logs: {self.workdir}")
        return "\n".join(lines)


async def _server_problem(
    http: aiohttp.ClientSession, server: LocalServer, members: set[str], topology: Topology
) -> str | None:
    """Why `server` is not ready yet, or None when it is."""
    base = server.address.monitor_url
    cluster = topology.cluster(server.address.cluster)
    try:
        async with http.get(f"{base}/healthz") as resp:
            if resp.status != 200:
                return f"/healthz answered {resp.status}"
        async with http.get(f"{base}/routez") as resp:
            routez = await resp.json(content_type=None)
        async with http.get(f"{base}/gatewayz") as resp:
            gatewayz = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return f"monitoring not answering ({exc.__class__.__name__})"
    routes = int(routez.get("num_routes") or 0)
    peers = cluster.spec.replicas - 1
    if routes < peers:
        return f"{routes}/{peers} routes"
    outbound = set((gatewayz.get("outbound_gateways") or {}).keys())
    others = members - {cluster.name}
    # Each server dials one server of every other cluster, so outbound links are what every
    # server must have; inbound ones land on whichever server the remote side picked.
    if not others <= outbound:
        return f"no outbound gateway to {sorted(others - outbound)}"
    return None


# --------------------------------------------------------------------------------------- demo


def demo_credentials(supercluster: SuperCluster, secrets: SecretValues) -> dict[str, str]:
    """Client credentials for the demo: none when anonymous clients are accepted.

    Anonymous clients are accepted when no account other than the system account has users, or
    when `noAuthUser` is set; otherwise the demo logs in as the first such user.
    """
    spec = supercluster.spec
    if spec.config.no_auth_user:
        return {}
    for account in spec.accounts:
        if account.name == spec.system_account:
            continue
        for user in account.users:
            ref = user.password_secret_ref
            return {"user": user.user, "password": secrets[ref.name][ref.key]}
    return {}


async def run_demo(
    local: LocalSupercluster, clusters: list[Cluster], out: TextIO, timeout: float = 10.0
) -> int:
    """The seed's scenario: a service in the first cluster answers a request from the last."""
    import nats
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    first, last = clusters[0].name, clusters[-1].name
    replier_url = next(s for s in local.servers if s.address.cluster == first).address.client_url
    requester_url = next(s for s in local.servers if s.address.cluster == last).address.client_url
    creds = demo_credentials(local.supercluster, local.secrets)
    options = {"allow_reconnect": False, "connect_timeout": 5, **creds}
    answer = f"hello from {first}".encode()
    replier = await nats.connect(replier_url, name=f"demo-replier-{first}", **options)
    requester = await nats.connect(requester_url, name=f"demo-requester-{last}", **options)
    try:

        async def reply(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(answer)

        await replier.subscribe("greet", queue="NATS-RPLY-22", cb=reply)
        await replier.flush()
        print(f'Listening on "greet" in group "NATS-RPLY-22" ({first}: {replier_url})', file=out)
        # Queue interest crosses the gateway asynchronously: retry until it has arrived.
        deadline = time.monotonic() + timeout
        while True:
            print(f'Sending request on "greet" from {last} ({requester_url})', file=out)
            started = time.perf_counter()
            try:
                msg = await requester.request("greet", b"", timeout=1.0)
            except (NoRespondersError, NatsTimeout) as exc:
                if time.monotonic() > deadline:
                    print(f"no reply from {first} within {timeout:.0f}s: {exc!r}", file=out)
                    return 1
                await asyncio.sleep(0.2)
                continue
            rtt = time.perf_counter() - started
            print(f"Received with rtt {rtt * 1e6:.3f}µs", file=out)
            print(msg.data.decode(), file=out)
            return 0 if msg.data == answer else 1
    finally:
        await requester.close()
        await replier.close()


# ------------------------------------------------------------------------------------ command


def pick_supercluster(resources: ResourceSet, name: str | None) -> SuperCluster:
    """The SuperCluster to run: the named one, or the only one in the file."""
    if name:
        for sc in resources.superclusters:
            if sc.name == name:
                return sc
        raise LocalError(f"no SuperCluster {name!r} in the file")
    if len(resources.superclusters) != 1:
        raise LocalError(
            f"the file has {len(resources.superclusters)} SuperClusters; pick one with "
            "--supercluster"
        )
    return resources.superclusters[0]


def run_local(
    resources: ResourceSet,
    *,
    server_cmd: list[str] | None = None,
    demo: bool = False,
    port_base: int | None = None,
    workdir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    supercluster: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Run until Ctrl-C (or, with `demo`, until the demo request is answered)."""
    out = out or sys.stdout
    try:
        sc = pick_supercluster(resources, supercluster)
        clusters = resources.members(sc)
        if not clusters:
            raise LocalError(f"SuperCluster {sc.name} has no Clusters in the file")
    except LocalError as exc:
        print(f"scoperator local: {exc}", file=sys.stderr)
        return 1
    keep = workdir is not None
    directory = workdir or Path(tempfile.mkdtemp(prefix="scoperator-local-"))
    directory.mkdir(parents=True, exist_ok=True)
    local = LocalSupercluster(
        sc,
        clusters,
        secrets_from_objects(resources.secrets),
        server_cmd or default_server_cmd(),
        directory,
        port_base,
    )
    try:
        local.plan()
        local.start()
        asyncio.run(local.wait_ready(timeout))
        print(local.describe(), file=out, flush=True)
        if demo:
            return asyncio.run(run_demo(local, clusters, out))
        print("Press Ctrl-C to stop.", file=out, flush=True)
        _wait_forever(local)
        return 0
    except KeyboardInterrupt:
        return 0
    except LocalError as exc:
        print(f"scoperator local: {exc}", file=sys.stderr)
        return 1
    finally:
        local.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _wait_forever(local: LocalSupercluster) -> None:
    """Block until Ctrl-C or SIGTERM; a server that dies is reported and ends the run."""
    stop = False

    def _terminate(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while not stop:
            local._check_alive()
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)

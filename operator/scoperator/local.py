"""`scoperator local`: a supercluster as local server processes on loopback.

The configs are rendered by the same template as in Kubernetes; only the target differs
(`LocalTarget`: 127.0.0.1 and a block of ports per server, a literal server name), so running
locally exercises exactly what the operator deploys. Each server gets a directory with its
`scserver.conf`, its credentials include `auth.conf` and a log file.

Security is on as in Kubernetes: random route and gateway credentials, and, when the
SuperCluster asks for TLS (the default), a CA and one certificate per cluster made with the
code of the operator's Managed mode (certs.py) and written to each server's `tls/` directory:
routes and gateways use mutual TLS. `--tls on` (the default) refuses to run when the server
command does not accept TLS configs (`-t` on a probe config) rather than run plaintext;
`--tls auto` falls back to plaintext links with a note, `--tls off` renders plaintext links.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp

from scoperator import certs, links
from scoperator.models import Cluster, Ports, ResourceSet, SuperCluster
from scoperator.naming import (
    CONFIG_FILE,
    TLS_CA,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    LocalTarget,
    ServerAddress,
    Topology,
    certificate_names,
    credentials_secret_name,
    server_name,
)
from scoperator.render import cert_secret, monitor_scheme, render_configs
from scoperator.secrets import SecretValues, secrets_from_objects

DEFAULT_TIMEOUT = 60.0
TLS_MODES = ("auto", "on", "off")
# Lifetimes of local certificates: a local supercluster lives for a demo or a test run.
LOCAL_CA_LIFETIME = datetime.timedelta(days=7)
LOCAL_CERT_LIFETIME = datetime.timedelta(days=2)

_PROBE_CONFIG = """
listen: "127.0.0.1:{port}"
cluster {{
  name: "probe"
  listen: "127.0.0.1:{route}"
  tls {{ cert_file: "tls/tls.crt", key_file: "tls/tls.key", ca_file: "tls/ca.crt", verify: true, timeout: 2 }}
  routes: []
}}
gateway {{
  name: "probe"
  listen: "127.0.0.1:{gateway}"
  tls {{ cert_file: "tls/tls.crt", key_file: "tls/tls.key", ca_file: "tls/ca.crt", verify: true, timeout: 2 }}
  gateways: []
}}
"""
# Words a server that parses but does not implement an option prints with `-t`.
_NOT_IMPLEMENTED = ("not supported", "unsupported", "ignored", "not implemented")


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


def write_tls_files(directory: Path, pair: certs.KeyPair, ca_bundle: str) -> None:
    """tls/tls.crt, tls/tls.key and tls/ca.crt under `directory` (key readable by us only)."""
    tls_dir = directory / TLS_DIR
    tls_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((TLS_CERT, pair.cert_pem), (TLS_KEY, pair.key_pem), (TLS_CA, ca_bundle)):
        path = tls_dir / name
        path.write_text(text)
        path.chmod(0o600)


def _replace_file(path: Path, text: str) -> None:
    """Write `path` atomically (readable by us only), and not at all when it is unchanged."""
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_tls_problem(command: list[str], workdir: Path) -> str | None:
    """Why `command` cannot run routes and gateways with mutual TLS (None: it can).

    Asks the server itself: `-t` on a config with TLS route and gateway blocks must pass
    without the server saying it ignores or does not support them.
    """
    probe = workdir / "tls-probe"
    probe.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = certs.make_ca("scoperator local probe", now, datetime.timedelta(hours=1))
    pair = certs.make_server_cert(ca, "probe", ["127.0.0.1"], now, datetime.timedelta(hours=1))
    write_tls_files(probe, pair, ca.cert_pem)
    ports = allocate_ports(["probe"])["probe"]
    (probe / CONFIG_FILE).write_text(
        _PROBE_CONFIG.format(port=ports.client, route=ports.cluster, gateway=ports.gateway)
    )
    try:
        proc = subprocess.run(
            [*resolve_command(command), "-t", "-c", str(probe / CONFIG_FILE)],
            cwd=probe,
            env=_server_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired, LocalError) as exc:
        return f"cannot run {command[0]} -t: {exc}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return f"{command[0]} rejects TLS route/gateway configs: {output[-300:]}"
    lowered = output.lower()
    if any(word in lowered for word in _NOT_IMPLEMENTED):
        return f"{command[0]} does not implement TLS for routes and gateways: {output[-300:]}"
    return None


def _server_env() -> dict[str, str]:
    """The environment servers run with: this tree's server package first on PYTHONPATH."""
    env = dict(os.environ)
    server_src = Path(__file__).resolve().parents[2] / "server"
    if (server_src / "scserver").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(server_src), env.get("PYTHONPATH", "")) if p
        )
    return env


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
    tls: bool = True
    servers: list[LocalServer] = field(default_factory=list)
    topology: Topology | None = None
    ca: certs.KeyPair | None = None
    #: Each cluster's server certificate, issued once and kept across re-renders.
    pairs: dict[str, certs.KeyPair] = field(default_factory=dict)

    @property
    def tls_enabled(self) -> bool:
        """Whether routes and gateways run mutual TLS (the spec asks and `tls` allows)."""
        return self.tls and self.supercluster.spec.tls.enabled

    def plan(self) -> None:
        """Allocate ports, issue certificates, render every server's config and write it."""
        names = [server_name(c.name, i) for c in self.clusters for i in range(c.spec.replicas)]
        self.servers = self._render(allocate_ports(names, self.port_base))

    def _render(
        self, ports: dict[str, Ports], only: Collection[str] | None = None
    ) -> list[LocalServer]:
        """Render `self.clusters` on `ports` and write every server's files (with `only`, just
        those of the servers of these clusters).

        The route/gateway credentials, the CA and each cluster's certificate are made once and
        kept, so rendering again (update) changes only what the spec change asks for. Files are
        replaced atomically, includes before the main config, so a server watching them never
        reads half a file. Returns the servers of the new topology (new ones not started).
        """
        target = LocalTarget(ports)
        sc = self.supercluster
        if not self.tls_enabled and sc.spec.tls.enabled:
            sc = sc.model_copy(deep=True)
            sc.spec.tls.mode = "Disabled"
            sc.spec.tls.clients.enabled = False
        self.topology = Topology.build(sc, self.clusters, target)
        secrets = {name: dict(keys) for name, keys in self.secrets.items()}
        own = credentials_secret_name(sc.name)
        if not all(k in secrets.get(own, {}) for k in links.CREDENTIAL_KEYS):
            secrets[own] = links.generate_credentials()
        if self.tls_enabled:
            now = datetime.datetime.now(datetime.UTC)
            if self.ca is None:
                self.ca = certs.make_ca(f"scoperator local {sc.name}", now, LOCAL_CA_LIFETIME)
            for cluster in self.topology.clusters:
                if cluster.name not in self.pairs:
                    self.pairs[cluster.name] = certs.make_server_cert(
                        self.ca,
                        cluster.name,
                        certificate_names(self.topology, cluster.name),
                        now,
                        LOCAL_CERT_LIFETIME,
                    )
                secret = cert_secret(self.topology, cluster.name)
                assert secret is not None
                secrets.setdefault(secret, {})[TLS_CA] = self.ca.cert_pem
        self.secrets = secrets
        units = render_configs(self.topology, secrets)
        running = {s.name: s for s in self.servers}
        servers = []
        for address in self.topology.all_servers():
            directory = self.workdir / address.name
            directory.mkdir(parents=True, exist_ok=True)
            previous = running.get(address.name)
            if only is not None and address.cluster not in only:
                servers.append(
                    LocalServer(address, directory, previous.process if previous else None)
                )
                continue
            files = units[address.name]
            # The main config last: it is what names the includes.
            for filename in sorted(files, key=lambda f: f == CONFIG_FILE):
                _replace_file(directory / filename, files[filename])
            if address.cluster in self.pairs and previous is None:
                assert self.ca is not None
                write_tls_files(directory, self.pairs[address.cluster], self.ca.cert_pem)
            servers.append(LocalServer(address, directory, previous.process if previous else None))
        return servers

    def update(self, clusters: list[Cluster]) -> None:
        """Re-render a running supercluster for a new list of member Clusters.

        What the operator does in Kubernetes when a Cluster is added or deleted: servers of a
        removed Cluster stop, new ones start, and the servers that stay get their rewritten
        configs (new gateway lists) and a SIGHUP, so they reload without dropping a client.
        New servers get free ports; those that stay keep theirs.
        """
        assert self.topology is not None, "plan() first"
        kept_names = {server_name(c.name, i) for c in clusters for i in range(c.spec.replicas)}
        for server in self.servers:
            if server.name not in kept_names:
                _stop_process(server.process)
                server.process = None
        ports = {s.name: s.address.ports for s in self.servers if s.name in kept_names}
        new_names = [
            server_name(c.name, i)
            for c in clusters
            for i in range(c.spec.replicas)
            if server_name(c.name, i) not in ports
        ]
        ports.update(allocate_ports(new_names))
        self.clusters = list(clusters)
        self.servers = self._render(ports)
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGHUP)
        self.start(only_new=True)

    def rotate_credentials(
        self, clusters: Collection[str] | None = None, *, new: bool = True
    ) -> dict[str, str]:
        """Replace the route and gateway credentials of a running supercluster.

        What deleting the `<supercluster>-credentials` Secret makes the operator do: new random
        credentials, every Cluster's credentials include re-rendered, and each server reloads
        it (here: the files are rewritten and the server gets a SIGHUP). A server accepts one
        route and one gateway password at a time, so servers that have reloaded and servers
        that have not cannot link until both have. `clusters` limits the rewrite to the
        servers of those clusters; call again with `new=False` for the others, to reproduce
        the pods of Kubernetes getting their files at different times. Returns the
        credentials now rendered.
        """
        assert self.topology is not None, "plan() first"
        own = credentials_secret_name(self.supercluster.name)
        if new:
            self.secrets = {k: dict(v) for k, v in self.secrets.items() if k != own}
        ports = {s.name: s.address.ports for s in self.servers}
        self.servers = self._render(ports, only=None if clusters is None else set(clusters))
        for server in self.servers:
            if clusters is not None and server.address.cluster not in clusters:
                continue
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGHUP)
        return dict(self.secrets[own])

    def switch_tls(self, on: bool) -> None:
        """Switch mutual TLS for routes and gateways on or off on a running supercluster.

        What the operator does in Kubernetes: new configs and mounted certificates, then a
        rolling restart (TLS listeners cannot be added by a reload), one server at a time,
        highest ordinal first; see `rolling_restart`.
        """
        assert self.topology is not None, "plan() first"
        self.tls = on
        ports = {s.name: s.address.ports for s in self.servers}
        self.servers = self._render(ports)
        if self.tls_enabled:
            assert self.ca is not None
            for server in self.servers:
                write_tls_files(server.directory, self.pairs[server.address.cluster],
                                self.ca.cert_pem)  # fmt: skip

    async def rolling_restart(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Restart every server, one at a time (highest ordinal first in each cluster), each
        after the previous one answers its health check again: a StatefulSet's RollingUpdate."""
        order = sorted(self.servers, key=lambda s: (s.address.cluster, -s.address.ordinal))
        connector = aiohttp.TCPConnector(ssl=self.monitor_tls() or True)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=2), connector=connector
        ) as http:
            for server in order:
                _stop_process(server.process)
                server.process = None
                self.start(only_new=True)
                deadline = time.monotonic() + timeout
                while True:
                    self._check_alive()
                    try:
                        async with http.get(f"{self.monitor_url(server)}/healthz") as resp:
                            if resp.status == 200:
                                break
                    except (TimeoutError, aiohttp.ClientError):
                        pass
                    if time.monotonic() > deadline:
                        raise LocalError(f"{server.name} not healthy after its restart")
                    await asyncio.sleep(0.1)

    def start(self, only_new: bool = False) -> None:
        """Start one process per server (each in its own session: we decide when it stops).

        `only_new`: start just the servers without a process (after `update`).
        """
        env = _server_env()
        command = resolve_command(self.server_cmd)
        for server in self.servers:
            if only_new and server.process is not None:
                continue
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
        connector = aiohttp.TCPConnector(ssl=self.monitor_tls() or True)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=2), connector=connector
        ) as http:
            while pending:
                self._check_alive()
                still = []
                for server in pending:
                    problem = await _server_problem(
                        http, server, members, self.topology, self.monitor_url(server)
                    )
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

    def monitor_url(self, server: LocalServer) -> str:
        """Base URL of a server's monitoring endpoint (https when the spec asks for it)."""
        assert self.topology is not None
        url = server.address.monitor_url
        if monitor_scheme(self.topology.supercluster) == "https":
            url = "https://" + url.removeprefix("http://")
        return url

    def monitor_tls(self) -> ssl.SSLContext | None:
        """Client context trusting the local CA (https monitoring, TLS clients)."""
        if self.ca is None:
            return None
        return ssl.create_default_context(cadata=self.ca.cert_pem)

    def describe(self) -> str:
        """How to reach each cluster, for humans."""
        assert self.topology is not None
        security = (
            "routes and gateways with mutual TLS and credentials"
            if self.tls_enabled
            else "routes and gateways with credentials, no TLS"
        )
        lines = [
            f"SuperCluster {self.supercluster.name}: {len(self.topology.clusters)} clusters, "
            f"{len(self.servers)} servers, gateways connected ({security})."
        ]
        for cluster in self.topology.clusters:
            servers = [s for s in self.servers if s.address.cluster == cluster.name]
            urls = ",".join(s.address.client_url for s in servers)
            lines.append(f"  {cluster.name}: {urls}")
            for s in servers:
                lines.append(f"    {s.name}: monitor {self.monitor_url(s)}  log {s.log_path}")
        externals = self.supercluster.spec.external_gateways
        if externals:
            names = ", ".join(g.name for g in externals)
            lines.append(f"  external gateways (dialled, not waited for): {names}")
        lines.append(f"Configs and logs: {self.workdir}")
        return "\n".join(lines)


async def _server_problem(
    http: aiohttp.ClientSession,
    server: LocalServer,
    members: set[str],
    topology: Topology,
    base: str | None = None,
) -> str | None:
    """Why `server` is not ready yet, or None when it is."""
    base = base or server.address.monitor_url
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
    options: dict = {"allow_reconnect": False, "connect_timeout": 5, **creds}
    if local.tls_enabled and local.supercluster.spec.tls.clients.enabled:
        options["tls"] = local.monitor_tls()
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
    tls: str = "on",
) -> int:
    """Run until Ctrl-C (or, with `demo`, until the demo request is answered).

    `tls`: on (TLS when the spec asks; refuse to run if the server cannot), auto (fall back to
    plaintext links when the server cannot), off (plaintext links).
    """
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
    command = server_cmd or default_server_cmd()
    use_tls = tls != "off" and sc.spec.tls.enabled
    if use_tls:
        problem = server_tls_problem(command, directory)
        if problem is not None:
            if tls == "on":
                print(f"scoperator local: TLS asked for (--tls on) but {problem}", file=sys.stderr)
                if not keep:
                    shutil.rmtree(directory, ignore_errors=True)
                return 1
            print(f"note: links without TLS: {problem.splitlines()[0][:200]}", file=out)
            use_tls = False
    local = LocalSupercluster(
        sc,
        clusters,
        secrets_from_objects(resources.secrets),
        command,
        directory,
        port_base,
        tls=use_tls,
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

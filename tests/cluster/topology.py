"""Superclusters on loopback for tests: N clusters x M servers, each scserver or nats-server.

A :class:`Topology` is a plan: cluster names, and for every server its implementation
(``"sc"`` for scserver, ``"go"`` for the real nats-server) and its free ports. It renders one
config per server (every listener and URL on 127.0.0.1), starts the processes in parallel and
waits until the route mesh and the gateway links are complete, checked on ``/routez`` and
``/gatewayz`` of every server.

Use :func:`build` to make a plan, then :meth:`Topology.start` / :meth:`Topology.stop`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tools import (
    LOOPBACK,
    ServerProcess,
    free_ports,
    http_get_json,
    nats_server_binary,
    require_binary,
    scserver_command,
    wait_for,
)

SC = "sc"
GO = "go"


@dataclass
class Node:
    """One server of the plan."""

    name: str
    cluster: str
    impl: str
    port: int
    http_port: int
    cluster_port: int
    gateway_port: int
    proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats-route://{LOOPBACK}:{self.cluster_port}"

    @property
    def gateway_url(self) -> str:
        return f"nats://{LOOPBACK}:{self.gateway_port}"

    def get(self, path: str, timeout: float = 2.0) -> Any:
        """GET a monitoring endpoint of this server as JSON."""
        return http_get_json(LOOPBACK, self.http_port, path, timeout=timeout)

    def log(self) -> str:
        return self.proc.log_text() if self.proc is not None else ""


@dataclass
class Topology:
    """A supercluster plan plus, once started, its processes."""

    clusters: dict[str, list[Node]]
    workdir: Path
    #: extra lines inside ``gateway {}`` / ``cluster {}`` / at top level, per node name or "*"
    gateway_extra: dict[str, str] = field(default_factory=dict)
    cluster_extra: dict[str, str] = field(default_factory=dict)
    top_extra: dict[str, str] = field(default_factory=dict)
    #: which clusters each cluster lists in its ``gateways`` block (default: all)
    gateway_view: dict[str, list[str]] = field(default_factory=dict)
    #: per cluster: extra raw entries for the ``gateways`` list (e.g. a misnamed remote)
    gateway_entries: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: per node name: extra environment variables
    node_env: dict[str, dict[str, str]] = field(default_factory=dict)
    #: per node name: the peers it lists in ``cluster.routes`` (default: every other one)
    route_view: dict[str, list[str]] = field(default_factory=dict)

    # --- plan ------------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        return [n for nodes in self.clusters.values() for n in nodes]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def config(self, node: Node) -> str:
        """The config text of one server."""
        peers = self.clusters[node.cluster]
        lines = [
            f"server_name: {node.name}",
            f'listen: "{LOOPBACK}:{node.port}"',
            f'http: "{LOOPBACK}:{node.http_port}"',
            self._extra(self.top_extra, node),
        ]
        if len(peers) > 1 or self._extra(self.cluster_extra, node):
            listed = self.route_view.get(node.name)
            routes = ", ".join(
                f'"{p.route_url}"'
                for p in peers
                if p is not node and (listed is None or p.name in listed)
            )
            lines += [
                "cluster {",
                f"  name: {node.cluster}",
                f'  listen: "{LOOPBACK}:{node.cluster_port}"',
                f"  routes: [{routes}]",
                self._extra(self.cluster_extra, node),
                "}",
            ]
        view = self.gateway_view.get(node.cluster, list(self.clusters))
        entries = []
        for cl in view:
            urls = ", ".join(f'"{n.gateway_url}"' for n in self.clusters[cl])
            entries.append(f'    {{name: "{cl}", urls: [{urls}]}}')
        entries += [f"    {e}" for e in self.gateway_entries.get(node.cluster, [])]
        lines += [
            "gateway {",
            f"  name: {node.cluster}",
            f'  listen: "{LOOPBACK}:{node.gateway_port}"',
            self._extra(self.gateway_extra, node),
            "  gateways: [",
            *entries,
            "  ]",
            "}",
        ]
        return "\n".join(line for line in lines if line) + "\n"

    @staticmethod
    def _extra(table: Mapping[str, str], node: Node) -> str:
        return "\n".join(v for k, v in table.items() if k in ("*", node.name, node.cluster))

    def write_config(self, node: Node) -> Path:
        """(Re)write a node's config file in place (for reload tests)."""
        path = self.workdir / node.name / f"{node.name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.config(node))
        return path

    # --- processes ---------------------------------------------------------------------------

    def make_process(self, node: Node) -> ServerProcess:
        if node.impl == GO:
            cmd = [str(require_binary(nats_server_binary(), "nats-server binary not found"))]
        else:
            cmd = list(require_binary(scserver_command(), "scserver not found"))
        path = self.write_config(node)
        env = dict(os.environ)
        env.update(self.env)
        env.update(self.node_env.get(node.name, {}))
        return ServerProcess(
            cmd,
            args=["-c", str(path)],
            name=node.name,
            port=node.port,
            http_port=node.http_port,
            workdir=path.parent,
            env=env,
        )

    def start(self, nodes: Iterable[Node] | None = None, timeout: float = 20.0) -> Topology:
        """Start servers in parallel and wait until each answers (INFO and /healthz)."""
        todo = list(nodes) if nodes is not None else self.nodes
        try:
            for n in todo:
                n.proc = self.make_process(n)
                n.proc.start(wait=False)
            for n in todo:
                assert n.proc is not None
                n.proc.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, node: Node, timeout: float = 20.0) -> None:
        """Start a stopped or killed node again on the same ports and config."""
        if node.proc is not None:
            node.proc.kill()
        self.start([node], timeout)

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.stop(timeout=5)
                except Exception:  # noqa: BLE001 - best-effort cleanup
                    n.proc.kill()

    def logs(self) -> str:
        """Every log tail, for assertion messages."""
        out = []
        for n in self.nodes:
            if n.proc is not None:
                out.append(f"--- {n.name} ({n.impl}) ---\n{n.proc.log_tail(25)}")
        return "\n".join(out)

    # --- readiness ---------------------------------------------------------------------------

    def expected_gateways(self, cluster: str) -> set[str]:
        """The remote clusters a server of ``cluster`` should end up linked with."""
        reach: set[str] = set()
        for cl, view in ((c, self.gateway_view.get(c, list(self.clusters))) for c in self.clusters):
            if cl == cluster:
                reach.update(view)
            elif cluster in view:
                reach.add(cl)
        reach.discard(cluster)
        return reach

    def mesh_ready(self) -> bool:
        for n in self.nodes:
            peers = {p.name for p in self.clusters[n.cluster] if p is not n}
            if peers:
                routez = n.get("/routez")
                names = {r.get("remote_name") for r in routez.get("routes") or []}
                if not peers <= names:
                    return False
            gwz = n.get("/gatewayz")
            want = self.expected_gateways(n.cluster)
            out = set(gwz.get("outbound_gateways") or {})
            if out != want:
                return False
        for cl in self.clusters:
            totals = self.inbound_by_remote(cl)
            for remote in self.expected_gateways(cl):
                if totals.get(remote, 0) != len(self.clusters[remote]):
                    return False
        return True

    def inbound_by_remote(self, cluster: str) -> dict[str, int]:
        """Inbound gateway connections into ``cluster``, summed over its servers, per remote."""
        totals: dict[str, int] = {}
        for n in self.clusters[cluster]:
            gwz = n.get("/gatewayz")
            for remote, conns in (gwz.get("inbound_gateways") or {}).items():
                totals[remote] = totals.get(remote, 0) + len(conns)
        return totals

    def wait_ready(self, timeout: float = 20.0) -> None:
        try:
            wait_for(self.mesh_ready, timeout, 0.1, "route mesh and gateway links")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from None


def build(
    spec: Mapping[str, Sequence[str]],
    workdir: Path | None = None,
    prefix: str = "",
) -> Topology:
    """A plan from ``{"A": ["sc", "sc"], "B": ["go"], ...}``; server names are ``<cluster><i>``."""
    count = sum(len(v) for v in spec.values())
    ports = iter(free_ports(4 * count))
    clusters: dict[str, list[Node]] = {}
    for cl, impls in spec.items():
        clusters[cl] = [
            Node(
                f"{prefix}{cl}{i + 1}",
                cl,
                impl,
                next(ports),
                next(ports),
                next(ports),
                next(ports),
            )
            for i, impl in enumerate(impls)
        ]
    wd = workdir or Path(tempfile.mkdtemp(prefix="sc-cluster-"))
    return Topology(clusters, wd)


def wait_until(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """`wait_for` with a shorter poll (tests check fast-changing state)."""
    wait_for(predicate, timeout, 0.05, what)


def elapsed(start: float) -> float:
    return time.monotonic() - start


@contextlib.contextmanager
def running(
    spec: Mapping[str, Sequence[str]], ready_timeout: float = 25.0, **plan: Any
) -> Iterator[Topology]:
    """Build, start and wait for a topology; stop it afterwards (keeps logs on failure)."""
    topo = build(spec)
    for key, value in plan.items():
        setattr(topo, key, value)
    topo.start()
    try:
        topo.wait_ready(ready_timeout)
        yield topo
    finally:
        topo.stop()

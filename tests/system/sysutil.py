"""Superclusters with a `$SYS` account, and the Go `nats` CLI pointed at them.

:class:`Supercluster` plans N clusters x M servers (each ``"sc"`` for scserver or ``"go"`` for
nats-server), writes one config per server in the shape of the seed example (``include
sys.conf``, a ``gateway`` block naming every cluster, a ``cluster`` block with routes when a
cluster has more than one server), all on 127.0.0.1 and free ports, starts them and waits until
routes and gateways are complete.

:class:`NatsCli` runs the CLI with an isolated ``HOME``/``XDG_CONFIG_HOME`` so no context of the
machine is used, and always with an explicit ``--server`` (or a context saved in that home).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.topology import Node as TopologyNode
from tests.tools import (
    LOOPBACK,
    ServerProcess,
    free_ports,
    nats_server_binary,
    require_binary,
    scserver_command,
    wait_for,
)

SC = "sc"
GO = "go"
SYS_USER = "sys"
SYS_PASS = "sys"

SYS_CONF = """accounts: {
  $SYS: {
    users: [{user: sys, password: sys}]
  }
}
"""


@dataclass
class Node(TopologyNode):
    """A server of the plan, as in tests/cluster, plus its system-account URL."""

    @property
    def sys_url(self) -> str:
        return f"nats://{SYS_USER}:{SYS_PASS}@{LOOPBACK}:{self.port}"


@dataclass
class Supercluster:
    clusters: dict[str, list[Node]]
    workdir: Path
    sys_conf: str = SYS_CONF
    extra: str = ""
    #: cluster -> the only servers whose gateway URLs the others are given (default: all)
    gateway_seeds: dict[str, list[str]] = field(default_factory=dict)
    started: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [n for ns in self.clusters.values() for n in ns]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def config(self, node: Node) -> str:
        peers = self.clusters[node.cluster]
        lines = [
            f'listen: "{LOOPBACK}:{node.port}"',
            f'http: "{LOOPBACK}:{node.http_port}"',
            f"server_name: {node.name}",
            "include sys.conf",
            self.extra,
        ]
        if len(peers) > 1:
            routes = ", ".join(
                f'"nats-route://{LOOPBACK}:{p.cluster_port}"' for p in peers if p is not node
            )
            lines += [
                "cluster: {",
                f"  name: {node.cluster},",
                f'  listen: "{LOOPBACK}:{node.cluster_port}",',
                f"  routes: [{routes}]",
                "}",
            ]
        lines += [
            "gateway: {",
            f"  name: {node.cluster},",
            f'  listen: "{LOOPBACK}:{node.gateway_port}",',
            "  gateways: [",
        ]
        for cl, members in self.clusters.items():
            if cl in self.gateway_seeds:
                members = [self.node(name) for name in self.gateway_seeds[cl]]
            urls = ", ".join(f'"nats://{LOOPBACK}:{m.gateway_port}"' for m in members)
            lines.append(f'    {{name: "{cl}", urls: [{urls}]}},')
        lines += ["  ]", "}"]
        return "\n".join(line for line in lines if line) + "\n"

    def start(self, timeout: float = 20.0) -> Supercluster:
        try:
            for n in self.nodes:
                if n.impl == GO:
                    cmd = [str(require_binary(nats_server_binary(), "nats-server not found"))]
                else:
                    cmd = list(require_binary(scserver_command(), "scserver not found"))
                n.proc = ServerProcess(
                    cmd,
                    config=self.config(n),
                    name=n.name,
                    port=n.port,
                    http_port=n.http_port,
                    workdir=self.workdir / n.name,
                    extra_files={"sys.conf": self.sys_conf},
                )
                n.proc.start(wait=False)
                self.started.append(n)
            for n in self.nodes:
                assert n.proc is not None
                n.proc.wait_ready(timeout)
            try:
                wait_for(self.mesh_ready, timeout, 0.1, "routes and gateways")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}\n{self.logs()}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def mesh_ready(self) -> bool:
        names = set(self.clusters)
        inbound: dict[tuple[str, str], int] = {}
        for n in self.nodes:
            peers = {p.name for p in self.clusters[n.cluster] if p is not n}
            if peers:
                routes = n.get("/routez").get("routes") or []
                if not peers <= {r.get("remote_name") for r in routes}:
                    return False
            gwz = n.get("/gatewayz")
            if set(gwz.get("outbound_gateways") or {}) != names - {n.cluster}:
                return False
            for remote, conns in (gwz.get("inbound_gateways") or {}).items():
                key = (n.cluster, remote)
                inbound[key] = inbound.get(key, 0) + len(conns)
        # every server has one outbound link into each other cluster, which lands on one of
        # that cluster's servers (not necessarily on each)
        return all(
            inbound.get((cl, remote), 0) == len(self.clusters[remote])
            for cl in names
            for remote in names - {cl}
        )

    def stop(self) -> None:
        for n in self.started:
            if n.proc is not None:
                try:
                    n.proc.stop(timeout=5)
                except Exception:  # noqa: BLE001 - best-effort cleanup
                    n.proc.kill()
        self.started.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {n.name} ({n.impl}) ---\n{n.proc.log_tail(25)}" for n in self.nodes if n.proc
        )


def plan(
    spec: Mapping[str, Sequence[tuple[str, str]]], workdir: Path | None = None
) -> Supercluster:
    """``{"east": [("n1", "sc")], "west": [("n2", "go")]}`` → a :class:`Supercluster` plan."""
    count = sum(len(v) for v in spec.values())
    ports = iter(free_ports(4 * count))
    clusters = {
        cl: [Node(name, cl, impl, *(next(ports) for _ in range(4))) for name, impl in members]
        for cl, members in spec.items()
    }
    return Supercluster(clusters, workdir or Path(tempfile.mkdtemp(prefix="sc-system-")))


def seed_spec(east: str = SC, west: str = SC) -> dict[str, list[tuple[str, str]]]:
    """The seed's shape: east = n1, west = n2, one server each."""
    return {"east": [("n1", east)], "west": [("n2", west)]}


def routed_spec(impl: str) -> dict[str, list[tuple[str, str]]]:
    """2 clusters x 2 servers with routes."""
    return {"east": [("e1", impl), ("e2", impl)], "west": [("w1", impl), ("w2", impl)]}


# --- the nats CLI ------------------------------------------------------------------------------


class NatsCli:
    """The Go ``nats`` CLI with its own config home (contexts saved here stay here)."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.home = home
        (home / ".config").mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")} | {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "NO_COLOR": "1",
        }

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), *args]

    def run(
        self, *args: str, timeout: float = 20.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(  # noqa: S603 - our own binary
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"nats {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, timeout: float = 20.0) -> Any:
        return json.loads(self.run(*args, timeout=timeout).stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603 - our own binary
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )


def wait_sys_ready(cli: NatsCli, sc: Supercluster, timeout: float = 15.0) -> None:
    """Wait until `server list` from every server sees all of them, each counting all of them.

    ``active_servers`` counts the STATSZ heartbeats a server has received, so this also waits
    until every server has heard every other one.
    """
    want = {n.name for n in sc.nodes}

    def ready() -> bool:
        for n in sc.nodes:
            out = cli.run(
                "--server",
                n.sys_url,
                "server",
                "list",
                str(len(want)),
                "--json",
                "--timeout",
                "2s",
                check=False,
            )
            if out.returncode != 0:
                return False
            docs = json.loads(out.stdout)
            if {d["server"]["name"] for d in docs} != want:
                return False
            if any(d["statsz"].get("active_servers") != len(want) for d in docs):
                return False
        return True

    try:
        wait_for(ready, timeout, 0.2, "every server answering $SYS pings")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{sc.logs()}") from None


def parse_tables(text: str) -> list[dict[str, Any]]:
    """The CLI's box-drawn tables: ``[{"title", "header", "rows", "footer"}]``, cells stripped."""
    tables: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("╭"):
            cur = {"title": "", "header": [], "rows": [], "footer": []}
            tables.append(cur)
            section = "title"
        elif cur is None:
            continue
        elif line.startswith("├"):
            section = {"title": "header", "header": "rows", "rows": "footer"}.get(section, section)
        elif line.startswith("╰"):
            cur = None
        elif line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if section == "title":
                cur["title"] = cells[0]
            elif section == "header":
                cur["header"] = cells
            else:
                cur[section].append(dict(zip(cur["header"], cells, strict=False)))
    return tables


def table(text: str, title: str) -> dict[str, Any]:
    """The table whose title starts with ``title``."""
    for t in parse_tables(text):
        if t["title"].startswith(title):
            return t
    raise AssertionError(f"no table {title!r} in:\n{text}")


class RawClient:
    """A minimal NATS client on a plain socket: connects, stays connected until closed."""

    def __init__(self, node: Node, name: str, user: str | None = None, password: str = "") -> None:
        self.sock = socket.create_connection((LOOPBACK, node.port), timeout=5)
        self._read_until(b"\r\n")
        connect: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "name": name,
            "lang": "raw",
            "version": "0.0.1",
            "protocol": 1,
        }
        if user is not None:
            connect.update(user=user, **{"pass": password})
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        buf = self._read_until(b"PONG\r\n")
        if b"-ERR" in buf:
            raise AssertionError(f"{name}: {buf!r}")

    def _read_until(self, end: bytes) -> bytes:
        buf = b""
        while end not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed: {buf!r}")
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()

"""Shared helpers for the operator's render/model/local tests (no pytest fixtures here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from scoperator.models import ResourceSet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"


def load_example(name: str) -> ResourceSet:
    """The resources of examples/<name>.yaml."""
    return ResourceSet.from_documents(list(yaml.safe_load_all((EXAMPLES / name).read_text())))


def example_names() -> list[str]:
    """Every example file (the seed's, 3x3, multi-kube, accounts)."""
    return sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def check_config(command: list[str], directory: Path, files: dict[str, str], env: dict) -> str:
    """Write config files to `directory` and run `command -t -c scserver.conf` there.

    Returns the combined output; raises AssertionError with it when the server rejects the file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    proc = subprocess.run(
        [*command, "-t", "-c", str(directory / "scserver.conf")],
        cwd=directory,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{command[0]} -t rejected {directory}:\n{output}"
    return output


def fixed_credentials(supercluster: str) -> dict[str, dict[str, str]]:
    """Deterministic link credentials (the operator generates random ones)."""
    from scoperator.naming import credentials_secret_name

    return {
        credentials_secret_name(supercluster): {
            "route-user": "route",
            "route-password": "route-pass",
            "gateway-user": "gateway",
            "gateway-password": "gateway-pass",
        }
    }


def example_secrets(resources: ResourceSet, ca_pem: str | None = None) -> dict[str, dict[str, str]]:
    """The Secrets of an example file, completed for every other key rendering needs with a
    visible placeholder (what `scoperator render` shows), CA bundles with `ca_pem` if given."""
    from scoperator.naming import KubeTarget, Topology
    from scoperator.render import required_refs
    from scoperator.secrets import secrets_from_objects

    values = secrets_from_objects(resources.secrets)
    for sc in resources.superclusters:
        topology = Topology.build(sc, resources.members(sc), KubeTarget(sc.namespace))
        for cluster in topology.clusters:
            for ref in required_refs(topology, cluster.name):
                text = f"<from secret {ref.name}/{ref.key}>"
                if ca_pem is not None and ref.key == "ca.crt":
                    text = ca_pem
                values.setdefault(ref.name, {}).setdefault(ref.key, text)
    return values


def local_topology(example: str, servers_per_cluster: int) -> tuple[Any, list[Any]]:
    """The example's supercluster on the local target, each server with a block of fixed
    ports (client 10000+i, cluster 11000+i, gateway 12000+i, monitor 13000+i): (topology,
    members)."""
    from scoperator.models import Ports
    from scoperator.naming import LocalTarget, Topology, server_name

    resources = load_example(example)
    (sc,) = resources.superclusters
    members = resources.members(sc)
    ports = {
        server_name(c.name, i): Ports(
            client=10000 + i, cluster=11000 + i, gateway=12000 + i, monitor=13000 + i
        )
        for c in members
        for i in range(servers_per_cluster)
    }
    return Topology.build(sc, members, LocalTarget(ports=ports)), members

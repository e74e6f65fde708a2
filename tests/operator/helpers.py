"""Shared helpers for the operator's render/model/local tests (no pytest fixtures here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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

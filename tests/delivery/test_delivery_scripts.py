"""Every hack/*.sh parses (`bash -n`) and passes shellcheck; the e2e script exits 3 (skip) with a
reason when its prerequisites are missing; hack/check-chart.sh passes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from delivery_helpers import HACK, REPO, run, tool

SCRIPTS = sorted(HACK.glob("*.sh"))


def test_scripts_found() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"e2e-kind.sh", "check-chart.sh", "install-hadolint.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    run(["bash", "-n", str(script)])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    res = run([tool("shellcheck"), "--severity=style", "--format=gcc", str(script)], check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_shellcheck_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    res = run([tool("shellcheck"), str(bad)], check=False)
    assert res.returncode != 0 and "SC2086" in res.stdout


def test_e2e_script_skips_without_docker(tmp_path: Path) -> None:
    """With no usable docker on PATH the script exits 3 and says why (no cluster is touched)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    docker = fake / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin", "SC_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        ["bash", str(HACK / "e2e-kind.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 3, res.stderr
    assert "no Docker engine" in res.stderr


def test_check_chart_script() -> None:
    tool("helm")
    tool("hadolint")
    tool("shellcheck")
    res = run(["bash", str(HACK / "check-chart.sh")], check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "check-chart.sh: ok" in res.stdout
    assert (REPO / "charts" / "supercluster-operator" / "crds").is_dir()

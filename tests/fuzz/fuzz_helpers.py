"""Running the fuzz harnesses (fuzz/) as subprocesses from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fuzz_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "server")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_module(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` from the repository root at low priority (the machine is shared)."""
    return subprocess.run(
        ["nice", "-n", "10", sys.executable, "-m", *args],
        cwd=ROOT,
        env=fuzz_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )

"""The only skips and xfails a CI run may have.

Under CI (:func:`tests.tools.in_ci`) the rule in ``tests/skip_rule.py`` turns every other skip or
xfail into a failure. Each entry names:

* ``reason`` — why the tests it covers cannot run on some machines;
* ``tests`` — the node ids it covers (``fnmatch`` patterns, relative to the repository root);
* ``probe`` — a function that proves the reason on *this* machine: it returns the evidence (a
  short sentence) when the reason holds here, ``None`` when it does not. A test skips through
  :func:`tests.skip_rule.allowed_skip` only when the probe returns evidence; when it returns
  ``None`` the test runs (so a machine that can run the tier does run it).

Keep this list short: a missing tool is not a reason (``make test`` installs every tool), so
only things a test run cannot provide for itself belong here.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Allowance:
    """One allowed skip (or xfail): its reason, the tests it covers and the probe proving it."""

    key: str
    reason: str
    tests: tuple[str, ...]
    probe: Callable[[], str | None]
    xfail: bool = False


def _run(argv: list[str], timeout: float = 30) -> tuple[int, str]:
    """Exit status and combined output of a short command (127 when it cannot be started)."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return res.returncode, (res.stdout + res.stderr).strip()


def kind_cluster_unavailable() -> str | None:
    """Why ``kind`` cannot create a cluster on this machine, or ``None`` when it can try.

    kind runs each Kubernetes node as a privileged container of a Docker engine. Evidence, first
    found wins: no ``docker`` CLI; no engine answering ``docker info``; the engine refuses
    privileged containers (``docker info`` reports rootless mode or a security option that
    forbids them). Without a ``kind`` binary ``hack/e2e-kind.sh`` installs it with Go, so that is
    evidence only when Go is missing too.
    """
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    rc, out = _run(["docker", "info", "--format", "{{json .SecurityOptions}}"])
    if rc != 0:
        last = out.splitlines()[-1] if out else f"exit status {rc}"
        return f"no Docker engine answers `docker info`: {last}"
    if "rootless" in out:
        return f"the Docker engine runs rootless, kind needs privileged containers: {out}"
    if shutil.which("kind") is None and shutil.which("go") is None:
        return "no kind binary and no Go toolchain to install it"
    return None


#: key -> allowance. Order does not matter; keys are what tests pass to ``allowed_skip``.
ALLOWED: dict[str, Allowance] = {
    a.key: a
    for a in (
        Allowance(
            key="kind-e2e",
            reason="kind cannot create a Kubernetes cluster on this machine",
            tests=("tests/e2e/*",),
            probe=kind_cluster_unavailable,
        ),
    )
}

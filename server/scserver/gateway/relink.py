"""Keeping an outbound gateway link up while the remote cluster's servers come and go.

Our clients' messages into a remote cluster (requests, and replies to requests from there) go
over our one outbound link to it; while it is down they are dropped. Two things keep that time
short when the remote's servers restart one by one (a StatefulSet rolling update):

* which URL to dial (`dial_order`): the servers the remote's latest INFO listed first, its
  configured seeds next (a seed's pod may be the one restarting), the server whose link just
  closed last. nats-server dials them in random order, and every address that is gone costs a
  whole dial timeout;
* make before break (`peer_lame_duck`): a server that enters lame duck mode says ``ldm`` in the
  INFO on its inbound gateway links (only scserver does). We dial another server of that
  cluster, register the new link as a standby (`register_standby`) and move over at its first
  PONG (`standby_ready`), which comes after the interest the remote sent when it registered us;
  then the old link is closed. nats-server keeps the link until the remote server exits and
  redials afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from scserver.link_manager import WATCH_INTERVAL
from scserver.log import logger
from scserver.protocol import encode

if TYPE_CHECKING:
    from scserver.gateway.conn import GatewayConnection
    from scserver.gateway.manager import GatewayManager, RemoteGateway


#: Seconds a URL that could not be dialled goes after the configured seeds (an address the
#: remote advertises but we cannot reach, e.g. pod IPs seen from another Kubernetes cluster).
FAILED_BACKOFF = 60.0


def host_port(url: str) -> str:
    """``host:port`` of a gateway URL (no scheme, no credentials): how URLs are compared."""
    return url.split("://", 1)[-1].rpartition("@")[2]


def dial_order(remote: RemoteGateway, last: Any = None, now: float | None = None) -> list[str]:
    """The remote's URLs in the order to try them: the servers its latest INFO listed
    (shuffled), the configured seeds (shuffled), URLs that failed within FAILED_BACKOFF, and
    the server whose link just closed (``last``: shutting down or restarting) at the end.
    A listed URL for the same address as a configured one is left out (the configured one
    carries the credentials)."""
    now = time.monotonic() if now is None else now
    gone: set[str] = set()
    if last is not None:
        gone.add(host_port(str(last.url)))
        own = str((last.remote_info or {}).get("gateway_url") or "")
        if own:
            gone.add(host_port(own))
    configured = set(remote.config_urls)
    seed_addresses = {host_port(u) for u in configured}
    live, seeds, failed, closing = [], [], [], []
    for url in remote.urls:
        address = host_port(url)
        if address in gone:
            closing.append(url)
        elif url in configured:
            seeds.append(url)
        elif address in seed_addresses:
            continue
        elif now - remote.failed.get(url, -FAILED_BACKOFF) < FAILED_BACKOFF:
            failed.append(url)
        else:
            live.append(url)
    for group in (live, seeds, failed):
        random.shuffle(group)
    return live + seeds + failed + closing


def peer_lame_duck(manager: GatewayManager, old: GatewayConnection) -> None:
    """The server our outbound link ``old`` reaches entered lame duck mode: link to another
    server of that cluster now, and move over before it exits."""
    if old.peer_ldm or manager.stopping or manager.outbound.get(old.gw_name) is not old:
        return
    old.peer_ldm = True
    logger.info(
        "%s Gateway %r server %s entered lame duck mode: linking to another of its servers",
        old.label(),
        old.gw_name,
        old.name,
    )
    task = manager.server.loop.create_task(_replace(manager, old))
    manager.relinks.add(task)  # referenced until done; cancelled by manager.stop
    task.add_done_callback(manager.relinks.discard)


async def _replace(manager: GatewayManager, old: GatewayConnection) -> None:
    remote = manager.remotes.get(old.gw_name)
    if remote is None:
        return
    for url in dial_order(remote, old):
        if old.closed or manager.stopping or manager.outbound.get(old.gw_name) is not old:
            return
        conn = await manager.dial(remote.name, url, replaces=old)
        if conn is None:
            continue
        while not conn.closed and manager.outbound.get(old.gw_name) is old:
            await asyncio.sleep(WATCH_INTERVAL / 5)
        if not conn.closed:
            return  # moved over (or the old link closed and the solicit loop took over)
    logger.info(
        "%s No other server of gateway %r answered: keeping the link until it closes",
        old.label(),
        old.gw_name,
    )


def register_standby(
    manager: GatewayManager, conn: GatewayConnection, existing: GatewayConnection
) -> bool:
    """``conn`` completed its handshake while ``existing`` is still our link to that cluster:
    keep it as the standby if it was dialled to replace ``existing`` and reaches another
    server; False (a duplicate) otherwise."""
    if conn.replaces is not existing or conn.name == existing.name:
        return False  # a duplicate, or the lame duck server itself again
    # Still in manager.pending until promoted: stop() and forget() close it with the rest.
    conn.registered = True
    manager.standby[conn.gw_name] = conn
    conn.queue(encode.PING)  # its PONG: standby_ready
    return True


def standby_ready(manager: GatewayManager, conn: GatewayConnection) -> None:
    """The first PONG on a standby link: move our outbound link over and close the old one."""
    name = conn.gw_name
    if manager.standby.get(name) is not conn:
        return
    del manager.standby[name]
    replaced, conn.replaces = conn.replaces, None  # (no chain of old links kept alive)
    old = manager.outbound.get(name)
    if manager.stopping or name not in manager.remotes:
        conn.close("Gateway Removed")
        return
    if old is not None and old is not replaced and not old.closed:
        # The old link closed first and the solicit loop has linked again meanwhile: keep
        # that one.
        conn.close("Duplicate Gateway")
        return
    manager.pending.discard(conn)
    manager.outbound[name] = conn
    manager.sort_outbound()
    logger.info(
        "%s Outbound gateway connection to %r moved to %s (%s is in lame duck mode)",
        conn.label(),
        name,
        conn.name,
        replaced.name if replaced is not None else "the old server",
    )
    if old is not None and old is not conn and not old.closed:
        old.close("Gateway Replaced")


__all__ = ["dial_order", "peer_lame_duck", "register_standby", "standby_ready"]

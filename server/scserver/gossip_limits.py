"""Bounds on what gossip from peers can make us remember: gateway URLs of remote clusters.

An authenticated gateway or route peer tells us the gateway URLs of remote clusters in INFO
gossip, and nats-server keeps every one of them without a cap. A peer (buggy, or compromised)
that gossips new URLs in every INFO would then grow our memory, and the list each solicit loop
dials through, without bound. We keep at most :data:`MAX_URLS_PER_REMOTE` URLs per remote
cluster and :data:`MAX_URLS_TOTAL` over all of them -- far more than any real supercluster
has -- drop the excess, and log once per cap when it is first reached. URLs from our own
config are always kept (and counted).
"""

from __future__ import annotations

from collections.abc import Iterable

from scserver.log import logger

#: Gossiped gateway URLs kept for one remote cluster.
MAX_URLS_PER_REMOTE = 1024
#: Gossiped gateway URLs kept over all remote clusters.
MAX_URLS_TOTAL = 8192


class UrlBudget:
    """Counts the gateway URLs kept for all remote clusters of one server, and says whether
    one more may be kept; shared by the server's :class:`GatewayUrls` lists."""

    def __init__(self, per_remote: int = MAX_URLS_PER_REMOTE, total: int = MAX_URLS_TOTAL) -> None:
        self.per_remote = per_remote
        self.total = total
        self.used = 0
        # Caps already logged: a remote's name, or "" for the total.
        self._logged: set[str] = set()

    def admit(self, remote: str, have: int) -> bool:
        """Whether remote ``remote``, which keeps ``have`` URLs, may keep one more gossiped URL."""
        if have >= self.per_remote:
            self._log_once(
                remote,
                "Gateway URLs gossiped for %r reached the cap of %d; further ones are ignored",
                remote,
                self.per_remote,
            )
            return False
        if self.used >= self.total:
            self._log_once(
                "",
                "Gateway URLs gossiped for all remote gateways reached the cap of %d; "
                "further ones are ignored (last for %r)",
                self.total,
                remote,
            )
            return False
        return True

    def _log_once(self, key: str, fmt: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(fmt, *args)


class GatewayUrls(list[str]):
    """The URLs of one remote cluster, in the order learnt, without duplicates, bounded by a
    :class:`UrlBudget`. It is a plain list for everyone who reads it (dialling, monitoring)."""

    def __init__(self, remote: str, budget: UrlBudget) -> None:
        super().__init__()
        self.remote = remote
        self.budget = budget
        self._seen: set[str] = set()

    def add(self, urls: Iterable[object], configured: bool = False) -> None:
        """Add ``urls`` (``host:port`` gets ``nats://``); configured ones bypass the caps."""
        budget = self.budget
        for u in urls:
            url = str(u)
            if "://" not in url:
                url = "nats://" + url
            if url in self._seen:
                continue
            if not configured and not budget.admit(self.remote, len(self)):
                return
            self._seen.add(url)
            self.append(url)
            budget.used += 1

    def replace(self, configured: Iterable[object], urls: Iterable[object]) -> None:
        """The remote's own list (its INFO) replaces what was learnt before, configured URLs
        kept, as nats-server's ``updateURLs``: the addresses of servers that left (pods gone
        in a rolling update) are not dialled again, each for a whole dial timeout."""
        self.release()
        self.add(configured, configured=True)
        self.add(urls)

    def release(self) -> None:
        """The remote cluster is forgotten: its URLs no longer count toward the total."""
        self.budget.used -= len(self)
        self._seen.clear()
        self.clear()

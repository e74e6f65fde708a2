"""Reply subjects across gateways: re-exported from :mod:`scserver.replies`, where the
dispatcher (``scserver.routing``) reads them too."""

from __future__ import annotations

from scserver.replies import (
    GR_OFFSET,
    GR_PREFIX,
    OLD_GR_PREFIX,
    ROUTED_FIRST,
    InternalOrigin,
    gw_hash,
    is_routed,
    old_gw_hash,
)

__all__ = [
    "GR_OFFSET",
    "GR_PREFIX",
    "OLD_GR_PREFIX",
    "ROUTED_FIRST",
    "InternalOrigin",
    "gw_hash",
    "is_routed",
    "old_gw_hash",
]

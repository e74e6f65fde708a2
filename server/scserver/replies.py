"""Reply subjects across gateways: the ``_GR_.<cluster hash>.<server hash>.`` prefix
nats-server puts on replies so an answer finds its way back to the cluster (and server) the
request came from.

A low module (no scserver imports but the parser's kind ids): the dispatcher
(``scserver.routing``) and the gateway package both read it.
"""

from __future__ import annotations

import hashlib

from scserver.core.kinds import GATEWAY_LEG
from scserver.protocol.parser import GATEWAY

GR_PREFIX = b"_GR_."
OLD_GR_PREFIX = b"$GR."
GR_OFFSET = 19  # len("_GR_.") + 6 (cluster hash) + 1 + 6 (server hash) + 1

# First bytes of `_GR_.` and `$GR.`: one byte test keeps the prefix checks off the hot path.
ROUTED_FIRST = frozenset(b"_$")

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def gw_hash(name: str) -> bytes:
    """The 6-character hash nats-server uses in `_GR_.` reply prefixes."""
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(_DIGITS[b % 62] for b in digest[:6]).encode()


def old_gw_hash(name: str) -> bytes:
    return hashlib.sha256(name.encode()).hexdigest()[:4].encode()


def is_routed(subject: bytes) -> bool:
    """Whether ``subject`` is a routed reply (`_GR_.` or the old `$GR.` form)."""
    return subject[0] in ROUTED_FIRST and (subject[:5] == GR_PREFIX or subject[:4] == OLD_GR_PREFIX)


class InternalOrigin:
    """Stands in as the source of a routed reply published by one of our own clients.

    It has the gateway fanout class, so that ``process_msg`` delivers locally and to routes
    but leaves the onward gateway send to ``routing.process_routed_reply``.
    """

    kind = GATEWAY
    fanout = GATEWAY_LEG
    echo = True
    closed = False


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

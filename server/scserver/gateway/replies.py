"""Reply subjects across gateways: the ``_GR_.<cluster hash>.<server hash>.`` prefix
nats-server puts on replies so an answer finds its way back to the cluster (and server) the
request came from, and the stand-in origin of a routed reply our own client published."""

from __future__ import annotations

import hashlib

from scserver.protocol.parser import GATEWAY

# First bytes of `_GR_.` and `$GR.`: one byte test keeps the prefix checks off the hot path.
ROUTED_FIRST = frozenset(b"_$")

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def gw_hash(name: str) -> bytes:
    """The 6-character hash nats-server uses in `_GR_.` reply prefixes."""
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(_DIGITS[b % 62] for b in digest[:6]).encode()


def old_gw_hash(name: str) -> bytes:
    return hashlib.sha256(name.encode()).hexdigest()[:4].encode()


class InternalOrigin:
    """Stands in as the source of a routed reply published by one of our own clients.

    It poses as a gateway so that ``process_msg`` delivers locally and to routes but leaves
    the onward gateway send to ``handle_routed_reply``.
    """

    kind = GATEWAY
    echo = True
    closed = False

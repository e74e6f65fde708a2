"""Connection kinds as specs, registered in one place.

A kind used to be spread over the parser tables, the label dicts and ping caps of
``connection.py``, the monitor's kind names, the server's close chain and ``routing.py``'s kind
tests. Each connection module now describes its kind once, with a :class:`KindSpec`, and
registers it here (``spec = kinds.register(KindSpec(...))`` as a class attribute of the
connection class). A new kind (leafnodes) is one new module with its spec.

Routing branches on the *fanout class* (:data:`LOCAL`, :data:`FORWARD`, :data:`GATEWAY_LEG`,
:data:`INTERNAL`), not on kind ids: nats-server treats a leafnode like a route there. The class
values equal the kind ids of the kinds that exist today, so the hot path compares plain ints.

This module imports only the sans-IO parser (for op sets); it sits below every connection module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scserver.protocol import parser

#: Fanout classes (see module docstring): a client (delivered to; what it publishes goes
#: everywhere), a link that forwards one hop (routes, later leafnodes), a gateway (a message
#: enters gateways only where it entered the cluster), an internal subscriber ($SYS, imports).
LOCAL = 0
FORWARD = 1
GATEWAY_LEG = 2
INTERNAL = 3


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What the server needs to know about one connection kind.

    * ``kind``: the id the parser and the connections carry (``protocol.parser.CLIENT``...).
    * ``name``: lower-case name (``"client"``, ``"route"``).
    * ``id_label``: the log-prefix tag nats-server uses (``cid``, ``rid``, ``gid``).
    * ``label``: the word in protocol log lines (``Client``, ``Route``, ``Gateway``).
    * ``monitor_label``: the ``kind`` shown in /connz (``Client``, ``Router``, ``Gateway``).
    * ``fanout``: its routing class (LOCAL/FORWARD/GATEWAY_LEG/INTERNAL).
    * ``ops``: operation names its peers may send (the parser's op set); None for internal.
    * ``max_ping``: cap on the configured ping interval (None: the interval as configured).
    * ``first_ping``: longest wait for the first PING after the link comes up.
    * ``slow_key``: its key in /varz ``slow_consumer_stats`` (None: not counted).
    * ``pending_factor``: multiple of ``max_pending`` held for it before it is cut.
    * ``ping_idle_skip``: skip a PING while the peer was active within the interval (clients).
    * ``on_closed``: the close hook, called by the server's registry as
      ``on_closed(server, conn)`` after the common bookkeeping (manager registries, events).
    """

    kind: int
    name: str
    id_label: str
    label: str
    monitor_label: str
    fanout: int
    ops: frozenset[bytes] | None = None
    max_ping: float | None = None
    first_ping: float = 1.0
    slow_key: str | None = None
    pending_factor: int = 1
    ping_idle_skip: bool = False
    on_closed: Callable[[Any, Any], None] | None = None


_REGISTRY: dict[int, KindSpec] = {}


def register(spec: KindSpec) -> KindSpec:
    """Add ``spec`` to the registry (idempotent for the same spec; a different spec under a
    taken kind id is a programming error)."""
    have = _REGISTRY.get(spec.kind)
    if have is not None and have != spec:
        raise ValueError(f"connection kind {spec.kind} already registered as {have.name!r}")
    _REGISTRY[spec.kind] = spec
    if spec.ops is not None:
        parser.register_ops(spec.kind, spec.ops)
    return spec


def spec_of(kind: int) -> KindSpec | None:
    """The registered spec of ``kind`` (None for an unknown kind)."""
    return _REGISTRY.get(kind)


def registered() -> list[KindSpec]:
    """Every registered kind, by kind id."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


__all__ = [
    "FORWARD",
    "GATEWAY_LEG",
    "INTERNAL",
    "LOCAL",
    "KindSpec",
    "register",
    "registered",
    "spec_of",
]

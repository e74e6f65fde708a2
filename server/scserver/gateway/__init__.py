"""Gateways: the links between clusters that make a supercluster.

Every server dials one outbound connection to one server of each remote cluster and accepts any
number of inbound ones. Messages flow only on outbound links; interest (RS+/RS-, A+/A-) and
gateway commands flow back only on inbound links. Interest is per account: a link starts either
optimistic (send unless told "no interest") or interest-only (send only on known interest);
nats-server 2.9+ switches every account to interest-only as soon as a link forms, which is our
default too, while ``gateway { interest_mode: optimistic }`` keeps the classic optimistic mode
with its switch after ``interest_only_threshold`` no-interest subjects.

The package splits the concerns: ``conn`` (one link's protocol), ``manager`` (discovery,
dialling, registry, sending, barriers, reload), ``interest`` (per-account interest state and
modes), ``replies`` (``_GR_.`` reply prefixes) and ``monitor`` (``/gatewayz``). The names other
modules and tests use are re-exported here.
"""

from __future__ import annotations

from scserver.gateway.conn import GatewayConnection
from scserver.gateway.interest import (
    INTEREST_ONLY,
    OPTIMISTIC,
    TRANSITIONING,
    InAccount,
    OutAccount,
)
from scserver.gateway.manager import GatewayManager, RemoteGateway
from scserver.gateway.replies import gw_hash, old_gw_hash
from scserver.protocol.parser import ROUTE

__all__ = [
    "INTEREST_ONLY",
    "OPTIMISTIC",
    "ROUTE",
    "TRANSITIONING",
    "GatewayConnection",
    "GatewayManager",
    "InAccount",
    "OutAccount",
    "RemoteGateway",
    "gw_hash",
    "old_gw_hash",
]

"""Account exports and imports: the only way a message crosses from one account to another.

This follows nats-server (``accounts.go``, ``client.go``) in shape, so a supercluster that mixes
both servers agrees on what travels where:

* A **service import** is an internal subscription in the importing account on the local subject
  (``addServiceImportSub``). A request published there is re-published, at the server where it
  entered, into the exporting account on the export subject, with its reply replaced by a fresh
  ``_R_.<prefix>.<id>`` subject. That reply is tracked in the exporter (a *response import*,
  ``addRespServiceImport``) behind one wildcard subscription ``_R_.<prefix>.>``, whose interest
  travels over routes and gateways like any other, so an answer from anywhere comes back to this
  server and is delivered in the requester's account on the original reply subject. Singleton
  responses end the tracking after the first answer; streamed and chunked ones keep it until the
  export's response threshold passes without an answer (chunked also ends on an empty message).
  Requests that arrive over a route or gateway are never imported again: the server where they
  entered already did that.
* A **stream import** is a set of *shadow subscriptions*: when a client of the importing account
  subscribes to a subject the import covers, a subscription on the matching export subject is
  added to the exporting account (``addShadowSubscriptions``). Its interest propagates like any
  other, a message published in the exporter anywhere in the supercluster reaches it, and it is
  delivered to the client with the subject rewritten (prefix or ``to``).
* Every account except the system account gets nats-server's implicit service imports from
  ``$SYS`` (``registerSystemImports``): ``$SYS.REQ.ACCOUNT.PING.CONNZ``, ``…PING.STATZ``,
  ``$SYS.REQ.SERVER.PING.CONNZ`` and ``$SYS.REQ.USER.INFO``, answered for that account only.

Configuration faults (unknown accounts, imports of subjects not exported to the importer,
cycles, bad prefixes, bad mappings) are refused at load with nats-server's wording.

The package keeps one concept per module, and this module re-exports their public names:
``config`` (the blocks as data, and the load-time checks), ``runtime`` (every account's links,
service imports and response tracking), ``shadows`` (stream imports' shadow subscriptions)
and ``request_info`` (the ``Nats-Request-Info`` header and USER.INFO's permissions).
"""

from __future__ import annotations

from scserver.imports.config import (
    CHUNKED,
    DEFAULT_RESPONSE_THRESHOLD,
    SINGLETON,
    STREAMED,
    Export,
    Import,
    LinkConfig,
    check_config,
    check_options,
    parse_config,
)
from scserver.imports.runtime import (
    REPLY_PREFIX,
    AccountClient,
    Links,
    Response,
    Runtime,
    ServiceImport,
    apply,
    client_sub_added,
    client_sub_removed,
)
from scserver.imports.shadows import ShadowConnection, StreamImport, shadow_targets

__all__ = [
    "CHUNKED",
    "DEFAULT_RESPONSE_THRESHOLD",
    "REPLY_PREFIX",
    "SINGLETON",
    "STREAMED",
    "AccountClient",
    "Export",
    "Import",
    "LinkConfig",
    "Links",
    "Response",
    "Runtime",
    "ServiceImport",
    "ShadowConnection",
    "StreamImport",
    "apply",
    "check_config",
    "check_options",
    "client_sub_added",
    "client_sub_removed",
    "parse_config",
    "shadow_targets",
]

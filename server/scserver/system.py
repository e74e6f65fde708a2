"""The `$SYS` account: the request services and events `nats server ...` commands rely on.

Every service is an ordinary subscription of an internal connection in the system account, so
its interest travels over routes and gateways like any other; one `$SYS.REQ.SERVER.PING`
therefore reaches every server of the supercluster once, and each answers from here with the
same documents the HTTP monitor serves.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from scserver import NATS_COMPAT_VERSION, monitor
from scserver.internal_client import InternalClient
from scserver.log import logger
from scserver.routing import process_msg
from scserver.subscription import Subscription

STATSZ_INTERVAL = 10.0
ACCOUNT_CONNS_INTERVAL = 30.0
REMOTE_SERVER_TTL = 150.0
ZENDPOINTS = (
    "IDZ",
    "STATSZ",
    "VARZ",
    "SUBSZ",
    "CONNZ",
    "ROUTEZ",
    "GATEWAYZ",
    "LEAFZ",
    "ACCOUNTZ",
    "JSZ",
    "HEALTHZ",
)
FILTER_KEYS = ("server_name", "cluster", "host", "exact_match", "tags", "domain")

Handler = Callable[[bytes, bytes | None, bytes], None]


class InternalConnection(InternalClient[Handler]):
    """The system client: owns internal subscriptions and publishes into the system account."""

    def subscribe(self, subject: str, handler: Handler) -> Subscription:
        sub = Subscription(subject.encode(), None, b"sys", self, self.account)
        self.add_subscription(sub, handler)
        return sub

    def deliver_internal(
        self,
        sub: Subscription,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        msg: bytes,
        src: Any = None,
    ) -> bool:
        handler = self.handlers.get(sub)
        if handler is None:
            return False
        self.in_msgs += 1
        body = msg[hdr_len:] if hdr_len >= 0 else msg
        # Answer after the current delivery loop so a reply never re-enters it.
        self.server.loop.call_soon(self._run, handler, subject, reply, body)
        return True

    @staticmethod
    def _run(handler: Handler, subject: bytes, reply: bytes | None, body: bytes) -> None:
        try:
            handler(subject, reply, body)
        except Exception:  # noqa: BLE001 - a bad request must not break the service
            logger.exception("System service error on %s", subject.decode(errors="replace"))

    def publish(self, subject: bytes, payload: bytes, reply: bytes | None = None) -> None:
        self.out_msgs += 1
        self.out_bytes += len(payload)
        process_msg(self.server, self, self.account, subject, reply, -1, payload)


class SystemServices:
    """Request handlers, advisories and the STATSZ heartbeat of one server."""

    def __init__(self, server: Any, account: Any) -> None:
        self.server = server
        self.account = account
        self.client = InternalConnection(server, account)
        self.seq = 0
        self.remote_servers: dict[str, tuple[int, float]] = {}
        self._timer: Any = None
        self._interval = 0.25
        #: account name -> heartbeat timer of its account_connections advisory
        self._acc_timers: dict[str, Any] = {}
        self.started = False

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        sid = self.server.server_id
        sub = self.client.subscribe
        sub("$SYS.REQ.SERVER.PING", self._ping_statsz)
        sub("$SYS.REQ.SERVER.PING.*", self._z_request)
        sub(f"$SYS.REQ.SERVER.{sid}.*", self._z_request)
        sub("$SYS.REQ.ACCOUNT.*.*", self._account_request)
        sub("$SYS.SERVER.*.STATSZ", self._remote_statsz)
        sub("$SYS.SERVER.*.SHUTDOWN", self._remote_shutdown)
        self.started = True
        self._schedule_heartbeat()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for timer in self._acc_timers.values():
            timer.cancel()
        self._acc_timers.clear()
        if self.started:
            self.client.publish(
                f"$SYS.SERVER.{self.server.server_id}.SHUTDOWN".encode(),
                self._json(self.server_info()),
            )
            self.client.unsubscribe_all()
            self.started = False

    def lame_duck(self) -> None:
        self.client.publish(
            f"$SYS.SERVER.{self.server.server_id}.LAMEDUCK".encode(), self._json(self.server_info())
        )

    def _schedule_heartbeat(self) -> None:
        self._timer = self.server.loop.call_later(self._interval, self._heartbeat)

    def _heartbeat(self) -> None:
        self._timer = None
        if not self.started:
            return
        self.client.publish(
            f"$SYS.SERVER.{self.server.server_id}.STATSZ".encode(), self._json(self.statsz_msg())
        )
        self._interval = min(self._interval * 2, STATSZ_INTERVAL)
        self._schedule_heartbeat()

    # --- documents -----------------------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        server = self.server
        self.seq += 1
        info: dict[str, Any] = {
            "name": server.name,
            "host": server.opts.host,
            "id": server.server_id,
            "ver": NATS_COMPAT_VERSION,
            "jetstream": False,
            "flags": 0,
            "seq": self.seq,
            "time": monitor.rfc3339(time.time()),
        }
        cluster = server.gateway.name if server.gateway is not None else server.cluster_name
        if cluster:
            info["cluster"] = cluster
        return info

    def statsz(self) -> dict[str, Any]:
        server = self.server
        in_m, in_b, out_m, out_b = server.totals()
        now = time.monotonic()
        self.remote_servers = {
            k: v for k, v in self.remote_servers.items() if now - v[1] < REMOTE_SERVER_TTL
        }
        stats: dict[str, Any] = {
            "start": monitor.rfc3339(server.start_time),
            "mem": monitor.rss_bytes(),
            "cores": monitor.os.cpu_count() or 1,
            "cpu": monitor._cpu.read(),
            "connections": len(server.clients),
            "total_connections": server.total_connections,
            "active_accounts": sum(1 for a in server.accounts.values() if a.clients),
            "subscriptions": server.num_subscriptions(),
            "sent": {"msgs": out_m, "bytes": out_b},
            "received": {"msgs": in_m, "bytes": in_b},
            "slow_consumers": server.slow_consumers,
            "slow_consumer_stats": dict(server.slow_consumer_stats),
            "active_servers": len(self.remote_servers) + 1,
        }
        if server.routes is not None:
            stats["routes"] = [
                {
                    "rid": r.cid,
                    "name": r.name,
                    "sent": {"msgs": r.out_msgs, "bytes": r.out_bytes},
                    "received": {"msgs": r.in_msgs, "bytes": r.in_bytes},
                    "pending": r.transport.get_write_buffer_size() if r.transport else 0,
                }
                for r in server.routes.connections()
            ]
        if server.gateway is not None:
            gw = server.gateway
            inbound: dict[str, int] = {}
            for c in gw.inbound.values():
                if not c.closed and c.registered:
                    inbound[c.gw_name] = inbound.get(c.gw_name, 0) + 1
            stats["gateways"] = [
                {
                    "gwid": c.cid,
                    "name": name,
                    "sent": {"msgs": c.out_msgs, "bytes": c.out_bytes},
                    "received": {"msgs": c.in_msgs, "bytes": c.in_bytes},
                    "inbound_connections": inbound.get(name, 0),
                }
                for name, c in sorted(gw.outbound.items())
                if not c.closed
            ]
        return stats

    def statsz_msg(self) -> dict[str, Any]:
        return {"server": self.server_info(), "statsz": self.statsz()}

    # --- request handling ----------------------------------------------------------------------

    @staticmethod
    def _json(doc: Any) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode()

    def _reply(self, reply: bytes | None, doc: Any) -> None:
        if reply:
            self.client.publish(reply, self._json(doc))

    def _parse_options(self, body: bytes) -> dict[str, Any] | str:
        if not body.strip():
            return {}
        try:
            opts = json.loads(body)
        except ValueError as exc:
            return f"invalid request: {exc}"
        if not isinstance(opts, dict):
            return "invalid request: not a JSON object"
        return opts

    def _matches(self, opts: dict[str, Any]) -> bool:
        """nats-server's EventFilterOptions: a server that does not match stays silent."""
        exact = bool(opts.get("exact_match"))
        info = {
            "server_name": self.server.name,
            "host": self.server.opts.host,
            "cluster": (
                self.server.gateway.name
                if self.server.gateway is not None
                else self.server.cluster_name
            ),
            "domain": "",
        }
        for key in ("server_name", "cluster", "host", "domain"):
            want = opts.get(key)
            if not want:
                continue
            have = info[key] or ""
            if exact and have != want or not exact and str(want) not in have:
                return False
        tags = opts.get("tags")
        return not tags

    def _ping_statsz(self, subject: bytes, reply: bytes | None, body: bytes) -> None:
        opts = self._parse_options(body)
        if isinstance(opts, str) or not self._matches(opts):
            return
        self._reply(reply, self.statsz_msg())

    def _z_request(self, subject: bytes, reply: bytes | None, body: bytes) -> None:
        kind = subject.rsplit(b".", 1)[-1].decode(errors="replace")
        opts = self._parse_options(body)
        if isinstance(opts, str):
            self._reply(
                reply, {"server": self.server_info(), "error": {"code": 400, "description": opts}}
            )
            return
        if not self._matches(opts):
            return
        if kind == "STATSZ":
            self._reply(reply, self.statsz_msg())
            return
        if kind == "IDZ":
            self._reply(
                reply,
                {
                    "name": self.server.name,
                    "host": self.server.opts.host,
                    "id": self.server.server_id,
                },
            )
            return
        query = zquery(kind, opts)
        try:
            data = self._zdata(kind, query)
        except monitor.BadRequest as exc:
            self._reply(
                reply,
                {"server": self.server_info(), "error": {"code": 400, "description": str(exc)}},
            )
            return
        if data is None:
            self._reply(
                reply,
                {
                    "server": self.server_info(),
                    "error": {"code": 404, "description": f"{kind} not supported"},
                },
            )
            return
        self._reply(reply, {"server": self.server_info(), "data": data})

    def _zdata(self, kind: str, query: dict[str, str]) -> Any:
        server = self.server
        if kind == "VARZ":
            return monitor.varz(server)
        if kind == "CONNZ":
            return monitor.connz(server, query)
        if kind == "SUBSZ":
            return monitor.subsz(server, query)
        if kind == "ROUTEZ":
            return monitor.routez(server, query)
        if kind == "GATEWAYZ":
            return monitor.gatewayz(server, query)
        if kind == "ACCOUNTZ":
            return monitor.accountz(server, query)
        if kind == "HEALTHZ":
            status, doc = monitor.healthz(server, query)
            doc["status_code"] = status
            return doc
        if kind == "LEAFZ":
            return {
                "server_id": server.server_id,
                "now": monitor.rfc3339(time.time()),
                "leafnodes": 0,
                "leafs": [],
            }
        return None

    def _account_request(self, subject: bytes, reply: bytes | None, body: bytes) -> None:
        parts = subject.decode(errors="replace").split(".")
        if len(parts) != 5:
            return
        acc, kind = parts[3], parts[4]
        opts = self._parse_options(body)
        if isinstance(opts, str):
            self._reply(
                reply, {"server": self.server_info(), "error": {"code": 400, "description": opts}}
            )
            return
        if kind not in ("CONNZ", "SUBSZ", "STATZ", "INFO", "CONNS"):
            return
        if acc == "PING":
            if kind != "CONNZ" and kind != "STATZ":
                return
            names = [a.name for a in self.server.accounts.values() if a.clients]
        else:
            if acc not in self.server.accounts:
                return
            names = [acc]
        if kind == "STATZ" and not opts.get("include_unused"):
            # nats-server stays silent about accounts without local connections.
            names = [n for n in names if self.server.accounts[n].clients]
            if not names:
                return
        if kind == "CONNZ":
            try:
                query = zquery(kind, opts)
            except monitor.BadRequest as exc:
                self._reply(
                    reply,
                    {"server": self.server_info(), "error": {"code": 400, "description": str(exc)}},
                )
                return
            docs = []
            for name in names:
                q = dict(query)
                q["acc"] = name
                docs.append(monitor.connz(self.server, q))
            data: Any = (
                docs[0]
                if len(docs) == 1
                else {
                    "server_id": self.server.server_id,
                    "now": monitor.rfc3339(time.time()),
                    "num_connections": sum(d["num_connections"] for d in docs),
                    "total": sum(d["total"] for d in docs),
                    "offset": 0,
                    "limit": 1024,
                    "connections": [c for d in docs for c in d["connections"]],
                }
            )
        elif kind == "SUBSZ":
            data = monitor.subsz(self.server, {"acc": names[0], "subs": "1"})
        elif kind in ("STATZ", "CONNS"):
            data = {
                "server_id": self.server.server_id,
                "now": monitor.rfc3339(time.time()),
                "account_statz": [self._account_stat(n) for n in names],
            }
        else:
            data = monitor.accountz(self.server, {"acc": names[0]})["account_detail"]
        self._reply(reply, {"server": self.server_info(), "data": data})

    def _account_stat(self, name: str) -> dict[str, Any]:
        acc = self.server.accounts[name]
        return {
            "acc": name,
            "name": name,
            "conns": len(acc.clients),
            "leafnodes": 0,
            "total_conns": len(acc.clients),
            "num_subscriptions": acc.sublist.count(),
            "sent": {"msgs": acc.out_msgs, "bytes": acc.out_bytes},
            "received": {"msgs": acc.in_msgs, "bytes": acc.in_bytes},
            "slow_consumers": 0,
        }

    # --- other servers ---------------------------------------------------------------------------

    def _remote_statsz(self, subject: bytes, reply: bytes | None, body: bytes) -> None:
        try:
            info = json.loads(body).get("server", {})
        except (ValueError, AttributeError):
            return
        sid = info.get("id")
        if not sid or sid == self.server.server_id:
            return
        seq = int(info.get("seq", 0) or 0)
        prev = self.remote_servers.get(sid)
        if prev is not None and seq <= prev[0]:
            return
        self.remote_servers[sid] = (seq, time.monotonic())

    def _remote_shutdown(self, subject: bytes, reply: bytes | None, body: bytes) -> None:
        parts = subject.decode(errors="replace").split(".")
        if len(parts) == 4:
            self.remote_servers.pop(parts[2], None)

    # --- advisories ------------------------------------------------------------------------------

    def _client_info(self, c: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "start": monitor.rfc3339(c.start),
            "host": c.host,
            "id": c.cid,
            "acc": c.account.name,
            "name": c.name,
            "lang": c.lang,
            "ver": c.version,
            "rtt": monitor.go_duration(c.rtt),
            "server": self.server.name,
            "kind": "Client",
            "client_type": "nats",
        }
        if c.username:
            info["user"] = c.username
        cluster = self.server.cluster_name
        if cluster:
            info["cluster"] = cluster
        return info

    def client_connected(self, c: Any) -> None:
        if not self.started:
            return
        doc = {
            "type": "io.nats.server.advisory.v1.client_connect",
            "id": _nuid(),
            "timestamp": monitor.rfc3339(time.time()),
            "server": self.server_info(),
            "client": self._client_info(c),
        }
        self.client.publish(f"$SYS.ACCOUNT.{c.account.name}.CONNECT".encode(), self._json(doc))
        self.account_conns(c.account)

    def client_disconnected(self, c: Any) -> None:
        if not self.started:
            return
        info = self._client_info(c)
        info["stop"] = monitor.rfc3339(time.time())
        doc = {
            "type": "io.nats.server.advisory.v1.client_disconnect",
            "id": _nuid(),
            "timestamp": monitor.rfc3339(time.time()),
            "server": self.server_info(),
            "client": info,
            # as nats-server: what the client sent (our inbound) and received (our outbound)
            "sent": {"msgs": c.in_msgs, "bytes": c.in_bytes},
            "received": {"msgs": c.out_msgs, "bytes": c.out_bytes},
            "reason": c.close_reason,
        }
        self.client.publish(f"$SYS.ACCOUNT.{c.account.name}.DISCONNECT".encode(), self._json(doc))
        self.account_conns(c.account)

    def account_conns(self, acc: Any) -> None:
        """The account_connections advisory (``sendAccConnsUpdate``): on every connect and
        disconnect, then every 30s while the account has local connections."""
        if not self.started or acc.name == "$G" or acc.name not in self.server.accounts:
            return
        timers = self._acc_timers
        old = timers.pop(acc.name, None)
        if old is not None:
            old.cancel()
        doc = {
            "type": "io.nats.server.advisory.v1.account_connections",
            "id": _nuid(),
            "timestamp": monitor.rfc3339(time.time()),
            "server": self.server_info(),
            **self._account_stat(acc.name),
        }
        body = self._json(doc)
        self.client.publish(f"$SYS.SERVER.ACCOUNT.{acc.name}.CONNS".encode(), body)
        self.client.publish(f"$SYS.ACCOUNT.{acc.name}.SERVER.CONNS".encode(), body)
        if acc.clients:
            timers[acc.name] = self.server.loop.call_later(
                ACCOUNT_CONNS_INTERVAL, self.account_conns, acc
            )


# The request bodies carry nats-server's option structs (ConnzOptions, SubszOptions, ...) as JSON;
# their field names differ from the HTTP query parameters the monitor builders read.
_CONN_STATES = {0: "open", 1: "closed", 2: "all"}
_RENAMES: dict[str, dict[str, str]] = {
    "CONNZ": {
        "sort": "sort",
        "auth": "auth",
        "offset": "offset",
        "limit": "limit",
        "cid": "cid",
        "user": "user",
        "acc": "acc",
        "filter_subject": "filter_subject",
        "mqtt_client": "mqtt_client",
    },
    "SUBSZ": {
        "offset": "offset",
        "limit": "limit",
        "subscriptions": "subs",
        "account": "acc",
        "test": "test",
    },
    "GATEWAYZ": {"name": "gw_name", "accounts": "accs", "account_name": "acc_name"},
    "ACCOUNTZ": {"account": "acc"},
}


def zquery(kind: str, opts: dict[str, Any]) -> dict[str, str]:
    """Translate a `*Z` request's JSON options into the monitor's query parameters.

    Empty values (``""``, ``0``, ``false``, ``null``) are Go's zero values, i.e. "not set".
    """
    opts = {k: v for k, v in opts.items() if k not in FILTER_KEYS}
    query: dict[str, str] = {}
    if kind == "HEALTHZ":
        return {k: _as_query(v) for k, v in opts.items() if v not in (None, "", False)}
    for key, name in _RENAMES.get(kind, {}).items():
        value = opts.get(key)
        if value in (None, "", False) or (value == 0 and key in ("cid", "limit", "offset")):
            continue
        query[name] = _as_query(value)
    if kind in ("CONNZ", "ROUTEZ", "GATEWAYZ"):
        if opts.get("subscriptions_detail") and kind != "GATEWAYZ":
            query["subs"] = "detail"
        elif opts.get("subscriptions"):
            query["subs"] = "1"
    if kind == "CONNZ":
        state = opts.get("state")
        if isinstance(state, bool) or state not in (None, *_CONN_STATES, *_CONN_STATES.values()):
            raise monitor.BadRequest(f"Invalid connection state: {state}")
        if state is not None:
            query["state"] = _CONN_STATES.get(state, state)  # type: ignore[arg-type]
    return query


def _as_query(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _nuid() -> str:
    return secrets.token_urlsafe(16)[:22]

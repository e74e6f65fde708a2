"""Monitoring over HTTP with nats-server's endpoints and JSON field names.

The builders (``varz``, ``connz``, ...) are plain functions of the server so that the `$SYS`
request services answer with exactly the same documents as the HTTP endpoints.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import ssl
import sys
import time
from typing import Any

from aiohttp import web

from scserver import NATS_COMPAT_VERSION, link_tls, tls
from scserver.log import logger
from scserver.protocol.parser import CLIENT, GATEWAY, ROUTE

KIND_STR = {CLIENT: "Client", ROUTE: "Router", GATEWAY: "Gateway"}


# --- formatting helpers (Go's representations) ----------------------------------------------


def rfc3339(ts: float) -> str:
    d = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    frac = f"{d.microsecond:06d}".rstrip("0")
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 1.5s, 2m3.1s, 922.083µs, 0s."""
    if seconds <= 0:
        return "0s"
    ns = int(round(seconds * 1e9))
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(f"{ns / 1000:.3f}") + "µs"
    if ns < 1_000_000_000:
        return _trim(f"{ns / 1e6:.6f}") + "ms"
    total = ns / 1e9
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    return out + _trim(f"{s:.9f}") + "s"


def _trim(num: str) -> str:
    return num.rstrip("0").rstrip(".") if "." in num else num


def uptime(seconds: float) -> str:
    """nats-server's uptime format: 1d2h3m4s, 3m4s, 5s."""
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h}h{m}m{s}s"
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class CpuMeter:
    """CPU percent of this process since the previous reading, as /varz reports it."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())
        self.value = 0.0

    def read(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        wall = now - self._last[0]
        if wall >= 0.5:
            self.value = round(100.0 * (cpu - self._last[1]) / wall, 2)
            self._last = (now, cpu)
        return self.value


_cpu = CpuMeter()


# --- documents -----------------------------------------------------------------------------


def varz(server: Any) -> dict[str, Any]:
    opts = server.opts
    now = time.time()
    in_m, in_b, out_m, out_b = server.totals()
    info = server.client_info_base()
    doc: dict[str, Any] = {
        "server_id": server.server_id,
        "server_name": server.name,
        "version": NATS_COMPAT_VERSION,
        "proto": 1,
        "go": info["go"],
        "host": opts.host,
        "port": server.client_port,
        "auth_required": server.auth.advertise_required or None,
        "max_connections": opts.max_connections,
        "ping_interval": int(opts.ping_interval * 1e9),
        "ping_max": opts.ping_max,
        "http_host": opts.monitor_host,
        "http_port": opts.http_port,
        "http_base_path": "",
        "https_port": opts.https_port,
        "auth_timeout": opts.auth_timeout,
        "max_control_line": opts.max_control_line,
        "max_payload": opts.max_payload,
        "max_pending": opts.max_pending,
        **tls.varz_fields(opts),
        "write_deadline": int(opts.write_deadline * 1e9),
        "start": rfc3339(server.start_time),
        "now": rfc3339(now),
        "uptime": uptime(now - server.start_time),
        "mem": rss_bytes(),
        "cores": os.cpu_count() or 1,
        "gomaxprocs": os.cpu_count() or 1,
        "cpu": _cpu.read(),
        "connections": len(server.clients),
        "total_connections": server.total_connections,
        "routes": len(server.routes.connections()) if server.routes is not None else 0,
        "remotes": len(server.routes.connections()) if server.routes is not None else 0,
        "leafnodes": 0,
        "in_msgs": in_m,
        "out_msgs": out_m,
        "in_bytes": in_b,
        "out_bytes": out_b,
        "slow_consumers": server.slow_consumers,
        "subscriptions": server.num_subscriptions(),
        "http_req_stats": dict(server.monitor.req_stats) if server.monitor else {},
        "config_load_time": rfc3339(server.config_time),
        "system_account": server.system_account.name if server.system_account else "",
        "slow_consumer_stats": dict(server.slow_consumer_stats),
        "python": sys.version.split()[0],
    }
    if doc["auth_required"] is None:
        del doc["auth_required"]
    if info.get("connect_urls"):  # omitempty in nats-server's Varz
        doc["connect_urls"] = info["connect_urls"]
    if opts.cluster is not None:
        cl = opts.cluster
        doc["cluster"] = {
            "name": server.cluster_name,
            "addr": cl.host,
            "cluster_port": server.routes.port if server.routes else cl.port,
            "auth_timeout": cl.auth_timeout if getattr(cl, "auth_timeout", None) else 2,
            "urls": [_strip_scheme(u) for u in cl.routes],
            "tls_timeout": 2,
        }
        doc["cluster"].update(link_tls.varz_fields(cl.tls))
    else:
        doc["cluster"] = {}
    if opts.gateway is not None:
        gw = opts.gateway
        doc["gateway"] = {
            "name": gw.name,
            "host": gw.host,
            "port": server.gateway.port if server.gateway else gw.port,
            "auth_timeout": 2,
            "tls_timeout": 2,
            "advertise": gw.advertise or "",
            "connect_retries": gw.connect_retries or 0,
            "gateways": [
                {
                    "name": r.name,
                    "tls_timeout": link_tls.remote_tls_timeout(r, gw),
                    "urls": _remote_gateway_urls(server, r),
                }
                for r in gw.gateways
            ],
            "reject_unknown": bool(gw.reject_unknown_cluster),
        }
        doc["gateway"].update(link_tls.varz_fields(gw.tls))
    else:
        doc["gateway"] = {}
    doc["leaf"] = {}
    doc["mqtt"] = {}
    doc["websocket"] = {}
    doc["jetstream"] = {}
    return doc


def _strip_scheme(url: str) -> str:
    """``host:port`` of a URL, as nats-server shows them: no scheme, never credentials."""
    return url.split("://", 1)[-1].rpartition("@")[2]


def _remote_gateway_urls(server: Any, remote: Any) -> list[str]:
    """A configured remote cluster's URLs as its gateway link knows them now: the configured
    ones plus what the remote's INFO lists, as nats-server's /varz (not the config's alone)."""
    live = server.gateway.remotes.get(remote.name) if server.gateway else None
    urls = live.urls if live is not None else remote.urls
    return [_strip_scheme(str(u)) for u in urls]


def conn_info(
    server: Any, c: Any, closed: bool = False, subs: str | None = None, auth: bool = False
) -> dict[str, Any]:
    now = time.time()
    info: dict[str, Any] = {
        "cid": c.cid,
        "kind": KIND_STR.get(c.kind, "Client"),
        "type": "nats",
        "ip": c.host,
        "port": c.port,
        "start": rfc3339(c.start),
        "last_activity": rfc3339(c.last_activity),
        "rtt": go_duration(c.rtt),
        "uptime": uptime(now - c.start),
        "idle": uptime(now - c.last_activity),
        "pending_bytes": c.transport.get_write_buffer_size() if c.transport and not closed else 0,
        "in_msgs": c.in_msgs,
        "out_msgs": c.out_msgs,
        "in_bytes": c.in_bytes,
        "out_bytes": c.out_bytes,
        "subscriptions": len(getattr(c, "subs", {}) or {}),
    }
    if c.kind == CLIENT:
        if c.name:
            info["name"] = c.name
        if c.lang:
            info["lang"] = c.lang
        if c.version:
            info["version"] = c.version
        # As nats-server: user and account only with `auth`, and never the global account.
        if auth and c.username:
            info["authorized_user"] = c.username
        if auth and c.account.name != "$G":
            info["account"] = c.account.name
    if c.kind == CLIENT and c.tls_info is not None:
        info.update(tls.connz_fields(c.tls_info, auth))
    if closed:
        info["stop"] = rfc3339(now)
        info["reason"] = c.close_reason
    if subs and c.kind == CLIENT:
        if subs == "detail":
            # nats-server's newClientSubDetail: no account; qgroup and max are omitempty.
            info["subscriptions_list_detail"] = [
                _sub_detail(s, c.cid, None) for s in c.subs.values()
            ]
        else:
            info["subscriptions_list"] = [_text(s.subject) for s in c.subs.values()]
    return info


def _sub_detail(s: Any, cid: int, account: str | None) -> dict[str, Any]:
    """nats-server's SubDetail; ``qgroup`` and ``max`` are omitted when empty."""
    d: dict[str, Any] = {}
    if account is not None:
        d["account"] = account
    d["subject"] = _text(s.subject)
    if s.queue:
        d["qgroup"] = _text(s.queue)
    d["sid"] = _text(s.sid)
    d["msgs"] = s.delivered
    if s.max:
        d["max"] = s.max
    d["cid"] = cid
    return d


_CONNZ_SORTS = {
    "cid": lambda c: c["cid"],
    "start": lambda c: c["start"],
    "subs": lambda c: -c["subscriptions"],
    "pending": lambda c: -c["pending_bytes"],
    "msgs_to": lambda c: -c["out_msgs"],
    "msgs_from": lambda c: -c["in_msgs"],
    "bytes_to": lambda c: -c["out_bytes"],
    "bytes_from": lambda c: -c["in_bytes"],
    "last": lambda c: c["last_activity"],
    "idle": lambda c: c["last_activity"],
    "uptime": lambda c: c["start"],
    "stop": lambda c: c.get("stop", ""),
    "reason": lambda c: c.get("reason", ""),
    "rtt": lambda c: c["rtt"],
}


class BadRequest(ValueError):
    """A monitoring query parameter nats-server would refuse with HTTP 400."""


def parse_bool(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    v = value.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise BadRequest(f'Error decoding boolean for "{name}": {value}')


def parse_int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(
            f"Error decoding int for '{name}': strconv.Atoi: parsing \"{value}\": invalid syntax"
        ) from None


def connz(server: Any, q: dict[str, str]) -> dict[str, Any]:
    sort = q.get("sort", "cid") or "cid"
    if sort not in _CONNZ_SORTS:
        raise BadRequest(f"invalid sorting option: {sort}")
    subs_param = q.get("subs", "")
    subs = (
        "detail" if subs_param == "detail" else ("list" if parse_bool(subs_param, "subs") else None)
    )
    auth = parse_bool(q.get("auth"), "auth")
    offset = max(parse_int(q.get("offset"), "offset", 0), 0)
    limit = parse_int(q.get("limit"), "limit", 1024)
    if limit <= 0:
        limit = 1024
    state = q.get("state", "open") or "open"
    if state not in ("open", "closed", "any", "all"):
        raise BadRequest(f"Invalid connection state: {state}")
    cid = parse_int(q.get("cid"), "cid", 0)
    acc = q.get("acc", "")
    user = q.get("user", "")
    conns: list[dict[str, Any]] = []
    if state in ("open", "any", "all"):
        for c in server.clients.values():
            if acc and c.account.name != acc or user and c.username != user:
                continue
            conns.append(conn_info(server, c, False, subs, auth))
    if state in ("closed", "any", "all"):
        for c in server.closed_conns:
            closed = dict(c)
            acc_name = closed.pop("_account", "$G")
            user_name = closed.pop("_user", "")
            if acc and acc_name != acc or user and user_name != user:
                continue
            if auth:
                if user_name:
                    closed["authorized_user"] = user_name
                if acc_name != "$G":
                    closed["account"] = acc_name
            conns.append(closed)
    if cid:
        conns = [c for c in conns if c["cid"] == cid]
    if (sort in ("stop", "reason")) and state == "open":
        raise BadRequest(f"sort by {sort} only valid on closed connections")
    conns.sort(key=_CONNZ_SORTS[sort])
    total = len(conns)
    page = conns[offset : offset + limit]
    return {
        "server_id": server.server_id,
        "now": rfc3339(time.time()),
        "num_connections": len(page),
        "total": total,
        "offset": offset,
        "limit": limit,
        "connections": page,
    }


def subsz(server: Any, q: dict[str, str]) -> dict[str, Any]:
    detail = parse_bool(q.get("subs"), "subs")
    offset = max(parse_int(q.get("offset"), "offset", 0), 0)
    limit = parse_int(q.get("limit"), "limit", 1024)
    acc_name = q.get("acc", "")
    test = q.get("test", "")
    accounts = [a for a in server.accounts.values() if not acc_name or a.name == acc_name]
    total_subs = sum(a.sublist.count() for a in accounts)
    num_cache = sum(a.sublist.cache_count() for a in accounts)
    doc: dict[str, Any] = {
        "server_id": server.server_id,
        "now": rfc3339(time.time()),
        "num_subscriptions": total_subs,
        "num_cache": num_cache,
        "num_inserts": sum(a.sublist.stats().get("inserts", 0) for a in accounts),
        "num_removes": sum(a.sublist.stats().get("removes", 0) for a in accounts),
        "num_matches": sum(a.sublist.stats().get("matches", 0) for a in accounts),
        "cache_hit_rate": 0.0,
        "max_fanout": 0,
        "avg_fanout": 0.0,
    }
    if detail or test:
        items = []
        for a in accounts:
            subs = a.sublist.all()
            if test:
                result = a.sublist.match(test.encode())
                subs = list(result.psubs) + [s for g in result.qsubs for s in g]
            for s in subs:
                if getattr(s.conn, "kind", CLIENT) != CLIENT:
                    continue
                items.append(_sub_detail(s, s.conn.cid, a.name))
        doc["total"] = len(items)
        doc["offset"] = offset
        doc["limit"] = limit
        doc["subscriptions_list"] = items[offset : offset + limit]
    return doc


def accountz(server: Any, q: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "server_id": server.server_id,
        "now": rfc3339(time.time()),
        "system_account": server.system_account.name if server.system_account else "",
    }
    name = q.get("acc", "")
    if name:
        acc = server.accounts.get(name)
        if acc is None:
            raise BadRequest(f"Account {name} does not exist")
        doc["account_detail"] = {
            "account_name": acc.name,
            "update_time": rfc3339(server.config_time),
            "is_system": acc.is_system,
            "expired": False,
            "complete": True,
            "jetstream_enabled": False,
            "leafnode_connections": 0,
            "client_connections": len(acc.clients),
            "subscriptions": acc.sublist.count(),
            **_account_links(server, acc),
            "sublist_stats": {
                "num_subscriptions": acc.sublist.count(),
                "num_cache": acc.sublist.cache_count(),
            },
        }
    else:
        doc["accounts"] = sorted(server.accounts)
    return doc


def _account_links(server: Any, acc: Any) -> dict[str, Any]:
    """Mappings, exports, imports and pending responses, omitted when empty as nats-server does."""
    runtime = getattr(server, "links_runtime", None)
    return runtime.account_detail(acc) if runtime is not None else {}


def routez(server: Any, q: dict[str, str]) -> dict[str, Any]:
    subs = parse_bool(q.get("subs"), "subs") or q.get("subs") == "detail"
    routes = server.routes.routez(subs) if server.routes is not None else []
    return {
        "server_id": server.server_id,
        "server_name": server.name,
        "now": rfc3339(time.time()),
        "num_routes": len(routes),
        "routes": routes,
    }


def gatewayz(server: Any, q: dict[str, str]) -> dict[str, Any]:
    accs = parse_bool(q.get("accs"), "accs")
    subs = parse_bool(q.get("subs"), "subs")
    gw_name = q.get("gw_name", "")
    acc_name = q.get("acc_name", "")
    doc: dict[str, Any] = {
        "server_id": server.server_id,
        "server_name": server.name,
        "now": rfc3339(time.time()),
    }
    if server.gateway is None:
        doc.update({"outbound_gateways": {}, "inbound_gateways": {}})
        return doc
    doc.update(server.gateway.gatewayz(gw_name, accs or bool(acc_name), acc_name, subs))
    return doc


def healthz(server: Any, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
    if server.shutting_down:
        return 503, {"status": "unavailable", "error": "server is shutting down"}
    if server.client_listener is None or not server.client_listener.is_serving():
        if server.lame_duck:
            return 503, {"status": "unavailable", "error": "server is in lame duck mode"}
        return 500, {"status": "error", "error": "Client connections are not ready"}
    if q.get("js-enabled-only") or q.get("js-server-only"):
        return 503, {"status": "unavailable", "error": "JetStream not enabled (10076)"}
    return 200, {"status": "ok"}


# --- HTTP ----------------------------------------------------------------------------------


class Monitor:
    """The aiohttp application serving the monitoring endpoints."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.req_stats: dict[str, int] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._registries: dict[str, Any] = {}

    def _json(self, path: str, build: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            self.req_stats[path] = self.req_stats.get(path, 0) + 1
            try:
                doc = build(self.server, dict(request.query))
            except BadRequest as exc:
                return web.Response(status=400, text=str(exc))
            return _respond(200, doc, request)

        return handler

    async def _healthz(self, request: web.Request) -> web.Response:
        self.req_stats["/healthz"] = self.req_stats.get("/healthz", 0) + 1
        status, doc = healthz(self.server, dict(request.query))
        return _respond(status, doc, request)

    async def _metrics(self, request: web.Request) -> web.Response:
        """Prometheus metrics (scserver.metrics), built from live state on each scrape."""
        from scserver import metrics  # prometheus_client is loaded only if someone scrapes

        self.req_stats["/metrics"] = self.req_stats.get("/metrics", 0) + 1
        try:
            system = metrics.check_prefix(request.query.get("prefix"))
            detailed = parse_bool(request.query.get("connz_detailed"), "connz_detailed")
        except (ValueError, BadRequest) as exc:
            return web.Response(status=400, text=str(exc))
        key = f"{system}/{detailed}"
        registry = self._registries.get(key)
        if registry is None:
            if len(self._registries) >= 8:  # bounded: one per variant in use, never per request
                self._registries.clear()
            registry = metrics.registry_for(self.server, system, detailed)
            self._registries[key] = registry
        body, content_type = metrics.render(registry, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _root(self, request: web.Request) -> web.Response:
        links = "".join(
            f'<a href="{p}">{p}</a><br/>'
            for p in (
                "/varz",
                "/connz",
                "/routez",
                "/gatewayz",
                "/subsz",
                "/accountz",
                "/healthz",
                "/metrics",
            )  # fmt: skip
        )
        return web.Response(
            text=f"<html><body><h3>scserver</h3>{links}</body></html>", content_type="text/html"
        )

    def _https_context(self) -> ssl.SSLContext:
        """The context the https site starts with. It follows reloads: each handshake picks
        the server's current https context (SNI callback), so a renewed certificate is
        served to new connections without restarting the monitor."""
        first = self.server.tls.https
        if first is None:
            raise RuntimeError("https_port needs a tls {} block")

        def current(obj: Any, _name: str | None, _ctx: ssl.SSLContext) -> None:
            now = self.server.tls.https
            if now is not None and obj.context is not now:
                obj.context = now

        first.sni_callback = current
        return first

    async def start(self, host: str, port: int, https: bool = False) -> None:
        app = web.Application()
        app.router.add_get("/", self._root)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        for path, build in (
            ("/varz", lambda s, q: varz(s)),
            ("/connz", connz),
            ("/subsz", subsz),
            ("/subscriptionsz", subsz),
            ("/accountz", accountz),
            ("/routez", routez),
            ("/gatewayz", gatewayz),
        ):
            app.router.add_get(path, self._json(path, build))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(
            self.runner,
            host if host not in ("", "0.0.0.0") else None,
            port if port > 0 else 0,  # -1: any free port, as nats-server (RANDOM_PORT)
            reuse_address=True,
            ssl_context=self._https_context() if https else None,
        )
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else port
        logger.info("Starting %s monitor on %s:%d", "https" if https else "http", host, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _respond(status: int, doc: Any, request: web.Request) -> web.Response:
    body = json.dumps(doc, indent=2)
    callback = request.query.get("callback")
    if callback:
        return web.Response(
            status=status,
            text=f"{callback}({body})",
            content_type="application/javascript",
            headers={"Access-Control-Allow-Origin": "*"},
        )
    return web.Response(
        status=status,
        text=body,
        content_type="application/json",
        headers={"Access-Control-Allow-Origin": "*"},
    )


def _text(raw: bytes) -> str:
    """Peer-chosen bytes (subjects, sids) for a JSON document: nats-server accepts any bytes
    in them, and Go's JSON encoder shows invalid UTF-8 as U+FFFD, so do we (never a 500)."""
    return raw.decode("utf-8", "replace")

"""``/metrics``: Prometheus metrics with prometheus-nats-exporter's names and labels.

Teams already run the exporter (the NATS Helm chart puts it beside every server) and have
dashboards and alerts on its names, so scserver serves the same families itself instead of
needing a sidecar: ``gnatsd_varz_*``, ``gnatsd_connz_*``, ``gnatsd_routez_*``,
``gnatsd_subsz_*``, ``gnatsd_healthz_*`` and ``gnatsd_gatewayz_*``, each labelled
``server_id`` with the server's own ID (what the chart's ``-use_internal_server_id`` gives).

The collector reads the server's live state when Prometheus scrapes, so the hot path keeps
no extra counters: every value is something the server already tracks for ``/varz``,
``/connz``, ``/routez`` and ``/gatewayz``. Like the exporter, every family is a gauge (the
exporter declares them so; a Prometheus counter type would rename them with ``_total`` and
break existing dashboards).

The varz and subsz families are produced by the exporter's own rule (flatten the JSON
document: numbers become ``<prefix>_<path>``, a few string keys become a ``value`` label,
timestamps become epoch milliseconds), applied to the very documents ``/varz`` and ``/subsz``
serve, so a field is named exactly as the exporter would name it. Connection-level families
are built straight from the connection objects: formatting a full ``/connz`` document per
scrape would cost far more than reading a few integers per connection.

scserver additions (the exporter has no equivalent): ``gnatsd_routez_route_*`` per route.
``/metrics?connz_detailed=true`` adds the exporter's per-connection ``-connz_detailed`` series.
``/metrics?prefix=nats`` names the families as the exporter's ``-prefix=nats`` does (what the
NATS Helm chart runs): ``nats_varz_*``, ``nats_gatewayz_*``, ...
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.samples import Sample

from scserver import monitor

SYSTEM = "gnatsd"

#: Flattened names the exporter never turns into metrics (collector.go ``skipFQN``).
SKIP_FQN = frozenset(
    {
        "leaf",
        "trusted_operators_claim",
        "cluster_tls_timeout",
        "cluster_cluster_port",
        "cluster_auth_timeout",
        "gateway_port",
        "gateway_auth_timeout",
        "gateway_tls_timeout",
        "gateway_connect_retries",
    }
)
#: String keys the exporter keeps: as a ``value`` label on a gauge of 1, or (timestamps) as
#: epoch milliseconds (collector.go ``labelKeys``).
LABEL_KEYS = frozenset(
    {"server_id", "server_name", "version", "domain", "leader", "name", "start", "config_load_time"}
)

#: Help text for the families dashboards use most (the exporter's help is the bare name).
HELP = {
    "varz_connections": "Open client connections.",
    "varz_total_connections": "Client connections accepted since the server started.",
    "varz_in_msgs": "Messages received from clients, routes and gateways.",
    "varz_out_msgs": "Messages sent to clients, routes and gateways.",
    "varz_in_bytes": "Payload bytes received.",
    "varz_out_bytes": "Payload bytes sent.",
    "varz_slow_consumers": "Connections closed as slow consumers since the start.",
    "varz_subscriptions": "Subscriptions in every account.",
    "varz_routes": "Open route connections.",
    "varz_remotes": "Open route connections (remote servers).",
    "varz_mem": "Resident memory in bytes.",
    "varz_cpu": "CPU percent since the previous reading.",
    "varz_slow_consumer_stats_clients": "Client connections cut as slow consumers.",
    "varz_slow_consumer_stats_routes": "Route connections cut as slow consumers.",
    "varz_slow_consumer_stats_gateways": "Gateway connections cut as slow consumers.",
    "varz_slow_consumer_stats_leafs": "Leafnode connections cut as slow consumers.",
    "varz_cluster_name": "The server's cluster name (value label), always 1.",
    "varz_gateway_name": "The server's gateway (supercluster member) name, always 1.",
}

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def fq_name(path: Iterable[str]) -> str:
    """collector.go ``fqName``: join with ``_``, ``/`` becomes ``_``, runs of ``_`` collapse.
    Anything else a metric name cannot hold also becomes ``_`` (never an invalid scrape)."""
    fqn = "_".join(path).replace("/", "_").strip("_")
    while "__" in fqn:
        fqn = fqn.replace("__", "_")
    return _INVALID.sub("_", fqn)


def _epoch_ms(text: str) -> float | None:
    """An RFC 3339 timestamp as epoch milliseconds (the exporter's ``parseDateString``)."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return float(int(when.timestamp() * 1000))


def flatten(
    doc: Mapping[str, Any], system: str, endpoint: str, server_id: str
) -> Iterator[GaugeMetricFamily]:
    """The exporter's generic collector (``objectToMetrics``) applied to one JSON document:
    numbers (not booleans, which Go's JSON never decodes as numbers) become gauges, nested
    objects recurse with their key as prefix, lists are skipped, and the string keys of
    :data:`LABEL_KEYS` become epoch-ms gauges (timestamps) or ``value``-labelled gauges."""
    for path, value in _leaves(doc, ()):
        fqn = fq_name(path)
        if fqn in SKIP_FQN or any(fq_name(path[:i]) in SKIP_FQN for i in range(1, len(path))):
            continue
        name = f"{system}_{endpoint}_{fqn}"
        help_text = HELP.get(f"{endpoint}_{fqn}", fqn)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            yield _gauge(name, help_text, ["server_id"], [([server_id], float(value))])
        elif isinstance(value, str) and path[-1] in LABEL_KEYS:
            ms = _epoch_ms(value)
            if ms is not None:
                yield _gauge(name, help_text, ["server_id"], [([server_id], ms)])
            else:
                yield _gauge(name, help_text, ["server_id", "value"], [([server_id, value], 1.0)])


def _leaves(doc: Mapping[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[tuple, Any]]:
    for key, value in doc.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            yield from _leaves(value, path)
        elif not isinstance(value, list):
            yield path, value


def _gauge(
    name: str, help_text: str, labels: list[str], samples: Iterable[tuple[list[str], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


# --- connection-level families ------------------------------------------------------------------


def _pending(c: Any) -> int:
    transport = getattr(c, "transport", None)
    return transport.get_write_buffer_size() if transport is not None else 0


def connz_families(
    server: Any, system: str = SYSTEM, detailed: bool = False
) -> Iterator[GaugeMetricFamily]:
    """The exporter's ``-connz`` summary: open client connections and their sums. The
    exporter sums the first ``/connz`` page (1,024 connections by default); here the sums
    cover every open client connection, so paging's ``offset``/``limit`` have no equivalent.

    ``detailed`` adds the exporter's ``-connz_detailed`` series: one per client connection in
    the same families (labels :data:`DETAIL_LABELS`) plus ``start``, ``last_activity`` (epoch
    ms), ``rtt`` (µs), ``uptime`` and ``idle`` (ms). Opt-in, as with the exporter: a series
    set per connection is a cardinality cost for Prometheus, and a CPU cost here — about
    0.13 ms per connection per scrape, mostly prometheus_client formatting 11 samples of 14
    labels each (``bench/bench_metrics.py``: 670 ms at 5,000 connections against 3 ms without),
    all of it on the event loop, and about 2.4 KB of body per connection (12 MB at 5,000)."""
    sid = server.server_id
    pending = subs = in_b = out_b = in_m = out_m = 0
    conns = list(server.clients.values())
    for c in conns:
        pending += _pending(c)
        subs += len(c.subs)
        in_b += c.in_bytes
        out_b += c.out_bytes
        in_m += c.in_msgs
        out_m += c.out_msgs
    families: dict[str, GaugeMetricFamily] = {}
    for field, help_text, value in (
        ("num_connections", "Open client connections.", len(conns)),
        ("total", "Open client connections (connz total).", len(conns)),
        ("pending_bytes", "Bytes queued to clients, not yet written.", pending),
        ("subscriptions", "Subscriptions of open client connections.", subs),
        ("in_bytes", "Bytes received from open client connections.", in_b),
        ("out_bytes", "Bytes sent to open client connections.", out_b),
        ("in_msgs", "Messages received from open client connections.", in_m),
        ("out_msgs", "Messages sent to open client connections.", out_m),
    ):
        families[field] = _gauge(
            f"{system}_connz_{field}", help_text, ["server_id"], [([sid], value)]
        )
    if detailed:
        _add_details(families, system, sid, conns)
    yield from families.values()


#: connz.go's detailed label set (``account_id`` repeats ``account``, as the exporter does).
DETAIL_LABELS = (
    "server_id", "cid", "kind", "type", "ip", "port", "name", "name_tag", "account",
    "account_id", "lang", "version", "tls_version", "tls_cipher_suite",
)  # fmt: skip
DETAIL_ONLY = (
    ("start", "Epoch milliseconds the connection started."),
    ("last_activity", "Epoch milliseconds of the connection's last activity."),
    ("rtt", "Round-trip time in microseconds."),
    ("uptime", "Milliseconds since the connection started."),
    ("idle", "Milliseconds since the connection's last activity."),
)


def _add_details(
    families: dict[str, GaugeMetricFamily], system: str, sid: str, conns: list[Any]
) -> None:
    for field, help_text in DETAIL_ONLY:
        families[field] = GaugeMetricFamily(f"{system}_connz_{field}", help_text)
    now = time.time()
    for c in conns:
        account = c.account.name if c.account.name != "$G" else ""  # as /connz?auth=true
        tls_info = getattr(c, "tls_info", None)
        values = (
            sid, str(c.cid), "Client", "nats", c.host or "", str(c.port), c.name or "", "",
            account, account, c.lang or "", c.version or "",
            tls_info.version if tls_info is not None else "",
            tls_info.cipher_suite if tls_info is not None else "",
        )  # fmt: skip
        labels = dict(zip(DETAIL_LABELS, values, strict=True))
        for field, value in (
            ("pending_bytes", _pending(c)),
            ("subscriptions", len(c.subs)),
            ("in_bytes", c.in_bytes),
            ("out_bytes", c.out_bytes),
            ("in_msgs", c.in_msgs),
            ("out_msgs", c.out_msgs),
            ("start", int(c.start * 1000)),
            ("last_activity", int(c.last_activity * 1000)),
            ("rtt", int(c.rtt * 1e6)),
            ("uptime", int((now - c.start) * 1000)),
            ("idle", int((now - c.last_activity) * 1000)),
        ):
            family = families[field]
            family.samples.append(Sample(family.name, labels, float(value)))


ROUTE_LABELS = ["server_id", "rid", "remote_id", "remote_name"]


def routez_families(server: Any, system: str = SYSTEM) -> Iterator[GaugeMetricFamily]:
    """``gnatsd_routez_num_routes`` (the exporter's) and, as a scserver addition, per-route
    traffic and queue depth (labels ``rid``, ``remote_id``, ``remote_name``)."""
    sid = server.server_id
    routes = list(server.routes.connections()) if server.routes is not None else []
    yield _gauge(
        f"{system}_routez_num_routes",
        "Open route connections.",
        ["server_id"],
        [([sid], len(routes))],
    )
    fields = (
        ("pending_bytes", "Bytes queued to the route, not yet written.", _pending),
        ("in_msgs", "Messages received over the route.", lambda r: r.in_msgs),
        ("out_msgs", "Messages sent over the route.", lambda r: r.out_msgs),
        ("in_bytes", "Bytes received over the route.", lambda r: r.in_bytes),
        ("out_bytes", "Bytes sent over the route.", lambda r: r.out_bytes),
        (
            "subscriptions",
            "Remote subscriptions learnt over the route.",
            lambda r: len(r.remote_subs),
        ),
    )
    for field, help_text, read in fields:
        yield _gauge(
            f"{system}_routez_route_{field}",
            help_text,
            ROUTE_LABELS,
            (([sid, str(r.cid), r.remote_id or "", r.name or ""], read(r)) for r in routes),
        )


GATEWAY_LABELS = ["gateway_name", "cid", "remote_gateway_name", "server_id"]

#: gatewayz.go's per-link families: suffix, help, reader(connection, now).
GATEWAY_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("conn_start_time_seconds", "Epoch seconds the link started.", lambda c, now: int(c.start)),
    (
        "conn_last_activity_seconds",
        "Epoch seconds of the link's last activity.",
        lambda c, now: int(c.last_activity),
    ),
    ("conn_uptime_seconds", "Seconds since the link started.", lambda c, now: int(now - c.start)),
    (
        "conn_idle_seconds",
        "Seconds since the link's last activity.",
        lambda c, now: int(now - c.last_activity),
    ),
    ("conn_rtt", "Round-trip time of the link in seconds.", lambda c, now: c.rtt),
    ("conn_pending_bytes", "Bytes queued to the link.", lambda c, now: _pending(c)),
    ("conn_in_msgs", "Messages received over the link.", lambda c, now: c.in_msgs),
    ("conn_out_msgs", "Messages sent over the link.", lambda c, now: c.out_msgs),
    ("conn_in_bytes", "Bytes received over the link.", lambda c, now: c.in_bytes),
    ("conn_out_bytes", "Bytes sent over the link.", lambda c, now: c.out_bytes),
    (
        "conn_subscriptions",
        "Subscriptions of the link.",
        lambda c, now: len(getattr(c, "subs", {}) or {}),
    ),
)


def gateway_links(manager: Any) -> dict[str, list[tuple[str, Any, bool]]]:
    """Open gateway links by direction, as ``/gatewayz`` lists them: ``(remote name,
    connection, configured)``; inbound links count once they have registered."""
    out: list[tuple[str, Any, bool]] = []
    for name, c in sorted(manager.outbound.items()):
        if not c.closed:
            out.append((name, c, _configured(manager, name)))
    inbound: list[tuple[str, Any, bool]] = []
    for c in manager.inbound.values():
        if not c.closed and c.registered:
            inbound.append((c.gw_name, c, _configured(manager, c.gw_name)))
    return {"outbound_gateway": out, "inbound_gateway": inbound}


def _configured(manager: Any, name: str) -> bool:
    remote = manager.remotes.get(name)
    return bool(remote and remote.configured)


def gatewayz_families(server: Any, system: str = SYSTEM) -> Iterator[GaugeMetricFamily]:
    """gatewayz.go's families: ``gnatsd_gatewayz_{outbound,inbound}_gateway_*`` per link,
    labelled with the local gateway name, the link's cid, the remote gateway name and
    ``server_id``."""
    manager = server.gateway
    if manager is None:
        return
    sid = server.server_id
    now = time.time()
    for direction, links in gateway_links(manager).items():
        prefix = f"{system}_gatewayz_{direction}"
        labels = [[manager.name, str(c.cid), remote, sid] for remote, c, _ in links]
        yield _gauge(
            f"{prefix}_configured",
            "1 when the remote gateway is in the configuration (not only discovered).",
            GATEWAY_LABELS,
            ((lv, float(conf)) for lv, (_, _, conf) in zip(labels, links, strict=True)),
        )
        for suffix, help_text, read in GATEWAY_FIELDS:
            yield _gauge(
                f"{prefix}_{suffix}",
                help_text,
                GATEWAY_LABELS,
                ((lv, float(read(c, now))) for lv, (_, c, _) in zip(labels, links, strict=True)),
            )


def healthz_families(server: Any, system: str = SYSTEM) -> Iterator[GaugeMetricFamily]:
    """healthz.go: ``status`` is 0 when healthy (1 otherwise); ``status_value`` is 1 when
    healthy, labelled with the status text."""
    sid = server.server_id
    _code, doc = monitor.healthz(server, {})
    ok = doc.get("status") == "ok"
    yield _gauge(
        f"{system}_healthz_status",
        "0 when /healthz is ok.",
        ["server_id"],
        [([sid], 0.0 if ok else 1.0)],
    )
    yield _gauge(
        f"{system}_healthz_status_value",
        "1 when /healthz is ok, labelled with its status.",
        ["server_id", "value"],
        [([sid, str(doc.get("status", ""))], 1.0 if ok else 0.0)],
    )


class ServerCollector:
    """A prometheus_client collector over one live server: each scrape reads current state.

    ``system`` is the names' first word: ``gnatsd`` as the exporter's default, or what its
    ``-prefix`` flag would make it (the NATS Helm chart runs the exporter with
    ``-prefix=nats``, so dashboards built on the chart use ``nats_varz_*``)."""

    def __init__(self, server: Any, system: str = SYSTEM, detailed: bool = False) -> None:
        self.server = server
        self.system = system
        self.detailed = detailed

    def collect(self) -> Iterator[Metric]:
        server, system = self.server, self.system
        sid = server.server_id
        yield from flatten(monitor.varz(server), system, "varz", sid)
        yield from connz_families(server, system, self.detailed)
        yield from routez_families(server, system)
        yield from _subsz(server, sid, system)
        yield from gatewayz_families(server, system)
        yield from healthz_families(server, system)


def _subsz(server: Any, sid: str, system: str) -> Iterator[GaugeMetricFamily]:
    doc = monitor.subsz(server, {})
    # The exporter's generic collector keeps server_id as a value-labelled gauge; a second
    # copy of the ID says nothing a dashboard needs, so only the numbers are exported.
    doc = {k: v for k, v in doc.items() if k not in ("server_id", "now")}
    yield from flatten(doc, system, "subsz", sid)


_PREFIX = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")


def check_prefix(prefix: str | None) -> str:
    """The names' first word for a ``?prefix=`` query: ``gnatsd`` when absent, else a metric
    name word (letters, digits, ``_``), refused with a message naming the problem."""
    if prefix is None or prefix == "":
        return SYSTEM
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"invalid metrics prefix {prefix!r}: use letters, digits and _ "
            "(not starting with a digit, at most 64 characters), e.g. prefix=nats"
        )
    return prefix


def registry_for(server: Any, system: str = SYSTEM, detailed: bool = False) -> CollectorRegistry:
    """A registry of its own per server (several servers may share one process in tests).

    prometheus_client's ``process_*`` collector is left out on purpose: it lists
    ``/proc/self/fd`` on every scrape, which with thousands of connections cost more than all
    the server's families together; ``gnatsd_varz_mem`` and ``gnatsd_varz_cpu`` cover it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server, system, detailed))
    return registry


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition body and its content type (OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type

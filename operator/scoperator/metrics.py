"""Prometheus metrics of the operator, in the text exposition format, on an HTTP port.

A dozen lines of exposition code instead of a dependency: the operator needs counters and
histograms with a few labels, nothing else. Metric names follow Prometheus conventions
(`_total` counters, `_seconds` histograms).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _fmt_labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    body = ",".join(
        f'{k}="{v}"'.replace("\n", "\\n") for k, v in ((k, _escape(v)) for k, v in items)
    )
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    """A monotonically increasing count per label set."""

    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` to the series of `labels`."""
        key = _labels(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        """Current value of one series (0 if never incremented)."""
        return self.values.get(_labels(labels), 0.0)

    def expose(self) -> list[str]:
        """Exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_fmt_labels(k)} {_num(v)}" for k, v in sorted(self.values.items())]
        return lines


@dataclass
class Gauge:
    """A value that goes up and down."""

    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def set(self, value: float, **labels: str) -> None:
        """Set the series of `labels`."""
        self.values[_labels(labels)] = value

    def remove(self, **match: str) -> None:
        """Drop every series whose labels include `match` (objects that went away)."""
        items = set(match.items())
        for key in [k for k in self.values if items <= set(k)]:
            del self.values[key]

    def expose(self) -> list[str]:
        """Exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        lines += [f"{self.name}{_fmt_labels(k)} {_num(v)}" for k, v in sorted(self.values.items())]
        return lines


@dataclass
class Histogram:
    """Observations in cumulative buckets, with sum and count."""

    name: str
    help: str
    buckets: Sequence[float] = DEFAULT_BUCKETS
    series: dict[Labels, list[float]] = field(default_factory=dict)  # counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        """Record one observation."""
        key = _labels(labels)
        data = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        idx = bisect.bisect_left(self.buckets, value)
        if idx < len(self.buckets):
            data[idx] += 1
        data[-2] += value
        data[-1] += 1

    def count(self, **labels: str) -> float:
        """Number of observations of one series."""
        data = self.series.get(_labels(labels))
        return data[-1] if data else 0.0

    def expose(self) -> list[str]:
        """Exposition lines (cumulative buckets, +Inf, _sum, _count)."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, data in sorted(self.series.items()):
            running = 0.0
            for bound, n in zip(self.buckets, data, strict=False):
                running += n
                lines.append(
                    f"{self.name}_bucket{_fmt_labels(key, ('le', _num(bound)))} {_num(running)}"
                )
            lines.append(f"{self.name}_bucket{_fmt_labels(key, ('le', '+Inf'))} {_num(data[-1])}")
            lines.append(f"{self.name}_sum{_fmt_labels(key)} {_num(data[-2])}")
            lines.append(f"{self.name}_count{_fmt_labels(key)} {_num(data[-1])}")
        return lines


class Metrics:
    """Every metric the operator exports."""

    def __init__(self) -> None:
        self.reconciles = Counter(
            "scoperator_reconciles_total",
            "Reconciles of a supercluster, by result (ok, problem = bad resources, error).",
        )
        self.errors = Counter(
            "scoperator_reconcile_errors_total", "Reconciles that failed with an API error."
        )
        self.reconcile_seconds = Histogram(
            "scoperator_reconcile_duration_seconds", "Time to render and apply a supercluster."
        )
        self.applied = Counter(
            "scoperator_applied_objects_total", "Objects sent with server-side apply."
        )
        self.pruned = Counter("scoperator_pruned_objects_total", "Children deleted by pruning.")
        self.status_patches = Counter(
            "scoperator_status_patches_total", "Status writes that changed something, by kind."
        )
        self.probe_seconds = Histogram(
            "scoperator_probe_duration_seconds", "Latency of probing one server's monitor port."
        )
        self.probe_failures = Counter(
            "scoperator_probe_failures_total", "Probes of a server that failed or were unhealthy."
        )
        self.observe_rounds = Counter(
            "scoperator_observe_rounds_total", "Observation rounds over all superclusters."
        )
        self.prompt_observations = Counter(
            "scoperator_prompt_observations_total",
            "Superclusters observed between rounds because one of their server pods changed.",
        )
        self.superclusters = Gauge(
            "scoperator_superclusters", "SuperClusters the operator currently watches."
        )
        self.clusters = Gauge("scoperator_clusters", "Clusters the operator currently watches.")
        self.certificate_expiry = Gauge(
            "scoperator_certificate_expiry_timestamp_seconds",
            "notAfter of each certificate the servers use (CA and per-Cluster), unix time.",
        )
        self.certificates_issued = Counter(
            "scoperator_certificates_issued_total",
            "Certificates and CAs the operator issued or rotated (Managed TLS).",
        )

    def all(self) -> list[Counter | Gauge | Histogram]:
        """Every metric, in exposition order."""
        return [v for v in vars(self).values() if isinstance(v, Counter | Gauge | Histogram)]

    def expose(self) -> str:
        """The whole exposition document."""
        lines: list[str] = []
        for metric in self.all():
            lines += metric.expose()
        return "\n".join(lines) + "\n"


async def start_server(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    """Serve GET /metrics (and /healthz) on host:port; returns the runner to clean up."""

    async def _metrics(_: web.Request) -> web.Response:
        return web.Response(
            text=metrics.expose(), content_type="text/plain", charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    async def _health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int | None:
    """The port a started server listens on (useful with port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return None

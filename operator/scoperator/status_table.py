"""`scoperator status`: a supercluster at a glance, read from the API server.

Reading and rendering are separate on purpose: :func:`read_snapshot` gathers the SuperCluster,
its Clusters, their pods and recent Events with the operator's own client; :func:`render`
is a pure function of that :class:`Snapshot` (and of "now", for ages), so the table is
tested with golden text and the reading against a real API server.

Everything shown comes from what the operator already wrote (statuses, conditions, Events)
plus the pods themselves; nothing here talks to the servers. The renderer reads the raw JSON
(not the pydantic models): a status written by a newer or older operator still prints.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from scoperator.naming import LABEL_CLUSTER, LABEL_SUPERCLUSTER
from scoperator.render import CONTAINER_NAME
from scoperator.status import BAD_WHEN, CONDITION_ORDER

Obj = Mapping[str, Any]


@dataclass
class Snapshot:
    """What one status table shows: raw API objects as the API server returned them."""

    supercluster: Obj
    clusters: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)


# ------------------------------------------------------------------------------ formatting


def parse_time(text: str | None) -> dt.datetime | None:
    """A Kubernetes timestamp (RFC 3339, `Z` or offset, optional fraction), or None.

    One without an offset is None too: ages subtract it from an aware "now" and events sort
    by it, and a naive datetime in either raises TypeError instead of printing `?`."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def age(then: str | None, now: dt.datetime) -> str:
    """kubectl's short age: 45s, 12m, 5h, 3d (`?` when unknown)."""
    when = parse_time(then)
    if when is None:
        return "?"
    secs = max(int((now - when).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Left-aligned columns two spaces apart, kubectl style; the last column is not padded."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for r in cells:
        parts = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        out.append((indent + "  ".join(parts)).rstrip())
    return out


def _yes(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "?"


# Typed reads of raw JSON. Another operator version may shape a field differently (a list where
# this one writes an object, a number as a string): the table then shows a gap or `?` for that
# field instead of ending in a traceback.


def _map(value: Any) -> Obj:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Obj]:
    """The objects of a JSON list (nothing when `value` is not a list)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _name(value: Any) -> str | None:
    """A string field (names, types, phases), or None: usable as a dict key and sort key."""
    return value if isinstance(value, str) else None


def _names(value: Any) -> str:
    """A list of names joined with commas, `-` when there is none."""
    return ",".join(str(v) for v in value) if isinstance(value, list) and value else "-"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _meta(obj: Obj) -> Obj:
    return _map(_map(obj).get("metadata"))


def _status(obj: Obj) -> Obj:
    return _map(_map(obj).get("status"))


def _cond(obj: Obj, ctype: str) -> Obj:
    for c in _items(_status(obj).get("conditions")):
        if c.get("type") == ctype:
            return c
    return {}


def _bad(cond: Obj) -> bool:
    status = cond.get("status")
    return status not in ("True", "False") or BAD_WHEN.get(_name(cond.get("type")) or "") == status


# ---------------------------------------------------------------------------------- sections


def _header(snap: Snapshot) -> list[str]:
    sc = snap.supercluster
    meta, st = _meta(sc), _status(sc)
    ready = _cond(sc, "Ready").get("status", "Unknown")
    gen, observed = meta.get("generation"), st.get("observedGeneration")
    stale = "" if gen is None or gen == observed else f" (observed generation {observed})"
    total = st.get("clustersTotal", len(snap.clusters))
    replicas = sum(
        _int(_status(c).get("replicas") or _map(c.get("spec")).get("replicas"))
        for c in snap.clusters
    )
    return [
        f"SuperCluster {meta.get('name')} in namespace {meta.get('namespace')}: Ready={ready}, "
        f"{st.get('clustersReady', 0)}/{total} clusters ready, "
        f"{st.get('readyServers', 0)}/{replicas} servers ready, generation {gen}{stale}"
    ]


def _clusters(snap: Snapshot) -> list[str]:
    members = {_name(m.get("name")): m for m in _items(_status(snap.supercluster).get("members"))}
    rows = []
    for c in snap.clusters:
        name = _name(_meta(c).get("name"))
        st = _status(c)
        m = members.get(name, {})
        problems = [_name(k.get("type")) for k in _items(st.get("conditions")) if _bad(k)]
        rows.append(
            [
                name,
                _yes(_cond(c, "Ready").get("status") == "True" if _cond(c, "Ready") else None),
                f"{st.get('readyServers', 0)}/{st.get('replicas', '?')}",
                _names(m.get("connectedTo")),
                _names(m.get("missing")),
                _map(st.get("endpoints")).get("client") or "-",
                ",".join(p for p in problems if p) or "-",
            ]
        )
    for m in members.values():
        if m.get("external"):
            rows.append(
                [
                    f"{m.get('name')} (external)",
                    _yes(m.get("ready")),
                    "-",
                    _names(m.get("connectedTo")),
                    _names(m.get("missing")),
                    "-",
                    "-",
                ]
            )
    if not rows:
        return ["Clusters: none has joined (no Cluster names this SuperCluster)"]
    headers = ["CLUSTER", "READY", "SERVERS", "CONNECTED TO", "MISSING", "CLIENT URL", "PROBLEMS"]
    return ["Clusters", *table(headers, rows)]


def _ordinal(name: str) -> tuple[str, int]:
    base, _, num = name.rpartition("-")
    return (base, int(num)) if num.isdigit() else (name, -1)


def _pod_version(pod: Obj | None) -> str | None:
    """The image tag of the server container (the version when the status has none yet)."""
    for container in _items(_map(_map(pod).get("spec")).get("containers")):
        if container.get("name") == CONTAINER_NAME:
            image = str(container.get("image") or "")
            tail = image.rsplit("/", 1)[-1]
            return tail.split(":", 1)[1] if ":" in tail else (image or None)
    return None


def _pod_state(pod: Obj | None) -> tuple[str, str, int | str]:
    """(phase, ready, restarts) of a pod as kubectl shows them."""
    if pod is None:
        return "missing", "no", "-"
    st = _status(pod)
    phase = _name(st.get("phase")) or "Unknown"
    if _meta(pod).get("deletionTimestamp"):
        phase = "Terminating"
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in _items(st.get("conditions"))
    )
    restarts = sum(_int(c.get("restartCount")) for c in _items(st.get("containerStatuses")))
    return phase, _yes(ready), restarts


def _servers(snap: Snapshot) -> list[str]:
    pods = {_name(_meta(p).get("name")): p for p in snap.pods}
    rows = []
    for c in snap.clusters:
        cname = _meta(c).get("name")
        reported = {_name(s.get("name")): s for s in _items(_status(c).get("servers"))}
        names = {n for n in reported if n} | {
            n
            for n, p in pods.items()
            if n and _map(_meta(p).get("labels")).get(LABEL_CLUSTER) == cname
        }
        for name in sorted(names, key=_ordinal):
            s, pod = reported.get(name, {}), pods.get(name)
            phase, ready, restarts = _pod_state(pod)
            current = s.get("configCurrent")
            config = "current" if current is True else "stale" if current is False else "?"
            rows.append(
                [
                    cname,
                    name,
                    phase,
                    ready,
                    restarts,
                    _yes(s.get("healthy")) if s else "?",
                    s.get("version") or _pod_version(pod) or "?",
                    s.get("routes", "?"),
                    f"{s.get('outboundGateways', '?')}/{s.get('inboundGateways', '?')}",
                    config,
                    s.get("lastError") or "",
                ]
            )
    if not rows:
        return ["Servers: none yet"]
    headers = [
        "CLUSTER", "SERVER", "POD", "READY", "RESTARTS", "HEALTHY", "VERSION", "ROUTES",
        "GW OUT/IN", "CONFIG", "ERROR",
    ]  # fmt: skip
    return ["Servers", *table(headers, rows)]


def _matrix(snap: Snapshot) -> list[str]:
    """Rows: clusters dialling; columns: clusters dialled. A cell is `ok` when every server of
    the row cluster has a link to the column cluster (status connectivity), followed by the
    row cluster's outbound/inbound link counts with the column cluster (Cluster status)."""
    connectivity = _map(_status(snap.supercluster).get("connectivity"))
    links = {
        _name(_meta(c).get("name")): {
            _name(g.get("cluster")): g for g in _items(_status(c).get("gateways"))
        }
        for c in snap.clusters
    }
    names = sorted(
        n
        for n in set(connectivity)
        | set(links)
        | {b for r in connectivity.values() for b in _map(r)}
        if isinstance(n, str)
    )
    if len(names) < 2:
        return []
    rows = []
    for a in names:
        row: list[str] = [a]
        for b in names:
            if a == b:
                row.append("-")
                continue
            linked = _map(connectivity.get(a)).get(b)
            link = links.get(a, {}).get(b)
            mark = "ok" if linked is True else "NO" if linked is False else "?"
            counts = f" {link.get('outbound', 0)}/{link.get('inbound', 0)}" if link else ""
            row.append(mark + counts)
        rows.append(row)
    return [
        "Gateways (row -> column: ok = every server of the row has a link; out/in connections)",
        *table(["FROM \\ TO", *names], rows),
    ]


def _conditions(snap: Snapshot, now: dt.datetime) -> list[str]:
    order = {t: i for i, t in enumerate(CONDITION_ORDER)}
    rows = []
    for obj, every in [(snap.supercluster, True)] + [(c, False) for c in snap.clusters]:
        conds = sorted(
            _items(_status(obj).get("conditions")),
            key=lambda k: (
                order.get(_name(k.get("type")) or "", len(order)),
                _name(k.get("type")) or "",
            ),
        )
        for k in conds:
            if every or _bad(k):
                rows.append(
                    [
                        f"{obj.get('kind', '?')}/{_meta(obj).get('name')}",
                        k.get("type"),
                        k.get("status"),
                        k.get("reason"),
                        age(k.get("lastTransitionTime"), now),
                        k.get("message") or "",
                    ]
                )
    if not rows:
        return ["Conditions: none reported yet"]
    title = "Conditions (the SuperCluster's; a Cluster's only when not fine)"
    return [title, *table(["OBJECT", "TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows)]


def event_time(ev: Obj) -> str:
    """When an Event last happened (events.k8s.io eventTime, else lastTimestamp, else creation)."""
    series = _map(ev.get("series"))
    return (
        series.get("lastObservedTime")
        or ev.get("lastTimestamp")
        or ev.get("eventTime")
        or ev.get("firstTimestamp")
        or _meta(ev).get("creationTimestamp")
        or ""
    )


def _events(snap: Snapshot, now: dt.datetime, limit: int) -> list[str]:
    events = sorted(snap.events, key=lambda e: parse_time(event_time(e)) or now)[-limit:]
    if not events:
        return ["Events: none"]
    rows = []
    for ev in events:
        obj = _map(ev.get("involvedObject") or ev.get("regarding"))
        count = _int(ev.get("count")) or 1
        rows.append(
            [
                age(event_time(ev), now),
                ev.get("type"),
                f"{obj.get('kind')}/{obj.get('name')}",
                ev.get("reason"),
                str(ev.get("message") or ev.get("note") or "")
                + (f" (x{count})" if count > 1 else ""),
            ]
        )
    return [
        f"Events (last {len(rows)})",
        *table(["AGE", "TYPE", "OBJECT", "REASON", "MESSAGE"], rows),
    ]


def render(snap: Snapshot, now: dt.datetime | None = None, events: int = 10) -> str:
    """The whole status table as text (pure: same snapshot and now, same text)."""
    now = now or dt.datetime.now(dt.UTC)
    sections = [
        _header(snap),
        _clusters(snap),
        _servers(snap),
        _matrix(snap),
        _conditions(snap, now),
        _events(snap, now, events),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


# ------------------------------------------------------------------------------------ reading


class NotFound(LookupError):
    """The SuperCluster asked for does not exist."""


async def read_snapshot(client: Any, namespace: str, name: str) -> Snapshot:
    """The SuperCluster, its member Clusters, their pods and the Events about any of them.

    `client` is a :class:`scoperator.kube.KubeClient` (anything with its `get`/`list`)."""
    sc = await client.get("SuperCluster", namespace, name)
    if sc is None:
        raise NotFound(f"SuperCluster {name!r} not found in namespace {namespace!r}")
    sc.setdefault("kind", "SuperCluster")
    clusters, pods, events = await asyncio.gather(
        client.list("Cluster", namespace),
        client.list("Pod", namespace, f"{LABEL_SUPERCLUSTER}={name}"),
        client.list("Event", namespace),
    )
    members = sorted(
        (c for c in clusters if (c.get("spec") or {}).get("superCluster") == name),
        key=lambda c: _meta(c).get("name") or "",
    )
    about = {("SuperCluster", name)} | {("Cluster", _meta(c).get("name")) for c in members}
    relevant = [
        e
        for e in events
        if (
            (e.get("involvedObject") or {}).get("kind"),
            (e.get("involvedObject") or {}).get("name"),
        )
        in about
    ]
    return Snapshot(sc, members, pods, relevant)


async def run_status(
    namespace: str,
    name: str,
    *,
    watch: bool = False,
    interval: float = 2.0,
    events: int = 10,
    kubeconfig: str | None = None,
    context: str | None = None,
    out: TextIO | None = None,
    client_factory: Callable[[], Any] | None = None,
    rounds: int | None = None,
) -> int:
    """Print the table once, or (`watch`) clear the screen and reprint every `interval` s.

    `rounds` bounds the watch loop (tests); Ctrl-C ends it normally. While watching, a failed
    read is shown instead of the table and retried at the next refresh."""
    out = out or sys.stdout
    if client_factory is None:
        from scoperator.kube import Credentials, KubeClient

        try:
            creds = Credentials.load(kubeconfig, context)
        except Exception as exc:  # noqa: BLE001 - kubernetes' loaders raise their own types
            raise ValueError(f"cannot load Kubernetes credentials: {exc}") from None
        namespace = namespace or creds.default_namespace or "default"
        client = KubeClient(creds, timeout=15.0)
    else:
        client = client_factory()
        namespace = namespace or "default"
    done = 0
    try:
        while True:
            try:
                text = render(await read_snapshot(client, namespace, name), events=events)
            except (LookupError, OSError, RuntimeError, aiohttp.ClientError) as exc:
                # Once: the caller prints it (aiohttp's own errors, such as the API server
                # closing the connection, are not OSErrors: made one so the CLI prints one line).
                # Watching: a passing API hiccup (or the SuperCluster not created yet) shows in
                # place of the table, and the watch goes on.
                if not watch:
                    if isinstance(exc, aiohttp.ClientError):
                        raise OSError(f"reading from the API server: {exc!r}") from exc
                    raise
                text = f"error: {exc or type(exc).__name__}\n"
            if watch:
                stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                text = f"\x1b[H\x1b[2J{stamp}  every {interval:g}s (Ctrl-C to stop)\n\n{text}"
            out.write(text)
            out.flush()
            done += 1
            if not watch or (rounds is not None and done >= rounds):
                return 0
            await asyncio.sleep(interval)
    finally:
        await client.close()

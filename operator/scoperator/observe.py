"""Observing: probe every server's monitoring endpoint and turn the answers into status.

Three layers, so that each can be tested on its own:

1. probes (I/O): `probe_server` reads `/healthz`, `/varz` (version, config load time, routes)
   and `/gatewayz` (outbound/inbound gateway links per remote cluster) of one server with short
   timeouts, concurrently, and never raises: an unreachable server is a result, not an error;
2. resolvers (I/O): map server names to `host:port` of their monitoring endpoint. In Kubernetes
   that is the pod IP (`KubePodResolver`); tests inject a `StaticResolver` pointing at local
   processes, which is how the observer is tested against real scserver and nats-server;
3. pure functions: `cluster_status` and `supercluster_status` fold probe results into the
   status documents (conditions Ready, GatewaysConnected, ConfigReloaded, Degraded; per-server
   health, version and whether it runs the applied config; gateway links; the connectivity
   matrix). Same input, same output: with the change
   detection in status.py this is what keeps status from churning.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from scoperator.naming import LABEL_SUPERCLUSTER, pod_fqdn, server_name
from scoperator.status import CONFIG_RELOADED, DEGRADED, GATEWAYS_CONNECTED, READY, condition

DEFAULT_PROBE_TIMEOUT = 2.0

# Reasons written by the observer.
PODS_NOT_READY = "PodsNotReady"
ALL_SERVERS_HEALTHY = "AllServersHealthy"
SERVERS_UNHEALTHY = "ServersUnhealthy"
NO_REMOTE_CLUSTERS = "NoRemoteClusters"
ALL_GATEWAYS_CONNECTED = "AllGatewaysConnected"
GATEWAYS_DISCONNECTED = "GatewaysDisconnected"
NO_HEALTHY_SERVERS = "NoHealthyServers"
HEALTHY = "Healthy"
ALL_CLUSTERS_READY = "AllClustersReady"
CLUSTERS_NOT_READY = "ClustersNotReady"
MESH_COMPLETE = "MeshComplete"
MESH_INCOMPLETE = "MeshIncomplete"
MEMBERS_DEGRADED = "MembersDegraded"
NO_MEMBERS = "NoMembers"
ALL_SERVERS_RELOADED = "AllServersReloaded"
RELOAD_PENDING = "ReloadPending"
RELOAD_UNKNOWN = "ReloadUnknown"


@dataclass
class ServerProbe:
    """What one server's monitoring endpoint said (or why it said nothing)."""

    name: str
    address: str | None  # host:port of the monitoring endpoint; None: no running pod
    healthy: bool = False
    version: str | None = None
    routes: int | None = None
    config_load_time: str | None = None
    outbound: dict[str, int] = field(default_factory=dict)  # remote cluster -> links
    inbound: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    latency: float = 0.0  # seconds the probe took


def _describe_error(exc: BaseException) -> str:
    """A short, stable description (no timings or addresses: it goes into status)."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        why = getattr(cause, "verify_message", None) or str(cause)
        return f"certificate rejected: {why}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake failed ({exc.os_error.__class__.__name__})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = getattr(exc.os_error, "strerror", None) or exc.__class__.__name__
        return f"unreachable ({str(errno).lower()})"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientError):
        return f"connection failed ({exc.__class__.__name__})"
    if isinstance(exc, ValueError):
        return "invalid JSON from the monitoring endpoint"
    return exc.__class__.__name__


async def _get_json(
    http: aiohttp.ClientSession,
    url: str,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[int, Any]:
    async with http.get(
        url, ssl=tls if tls is not None else True, server_hostname=server_hostname
    ) as resp:
        return resp.status, await resp.json(content_type=None)


@functools.lru_cache(maxsize=64)
def monitor_tls_context(trust: str, check_hostname: bool = False) -> ssl.SSLContext:
    """Client context for https monitoring: the chain must verify against the supercluster's
    CA bundle. Servers are dialled by the pod IP the API server just reported, so the host name
    can only be checked against a name given with each request (`server_hostname`, the pod's
    FQDN): `check_hostname` is for callers that give one."""
    ctx = ssl.create_default_context(cadata=trust)
    ctx.check_hostname = check_hostname
    return ctx


def monitor_verifies_names(spec: Mapping[str, Any]) -> bool:
    """Whether the operator decides the names in the servers' certificates, so that a probe
    can check the pod's FQDN: mode Managed (the operator issues them) and mode Secrets with an
    `issuerRef` (the operator writes the cert-manager Certificates and their SANs). With
    bring-your-own Secrets the names are the user's: only the chain is verified."""
    tls = spec.get("tls") or {}
    mode = tls.get("mode", "Managed")
    return mode == "Managed" or (mode == "Secrets" and bool(tls.get("issuerRef")))


def monitor_scheme(spec: Mapping[str, Any]) -> str:
    """`https` when a SuperCluster spec (as stored) has its servers serve monitoring over TLS."""
    tls = spec.get("tls") or {}
    clients = tls.get("clients") or {}
    on = tls.get("mode", "Managed") != "Disabled" and clients.get("enabled")
    return "https" if on and tls.get("monitoring") == "HTTPS" else "http"


async def probe_server(
    http: aiohttp.ClientSession,
    name: str,
    address: str | None,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    *,
    scheme: str = "http",
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> ServerProbe:
    """Probe one server; all failures end up in `error`, none is raised.

    `server_hostname` is the name the https certificate must be valid for (with a `tls`
    context that checks host names) when `address` is an IP.
    """
    probe = ServerProbe(name, address)
    if address is None:
        probe.error = "no running pod with an IP"
        return probe
    base = f"{scheme}://{address}"
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            (hstatus, health), (_, varz), (_, gatewayz) = await asyncio.gather(
                _get_json(http, f"{base}/healthz", tls, server_hostname),
                _get_json(http, f"{base}/varz", tls, server_hostname),
                _get_json(http, f"{base}/gatewayz", tls, server_hostname),
            )
    except Exception as exc:  # noqa: BLE001 - any failure is an observation
        probe.error = _describe_error(exc)
        probe.latency = time.monotonic() - started
        return probe
    probe.latency = time.monotonic() - started
    probe.healthy = hstatus == 200 and (health or {}).get("status") == "ok"
    if not probe.healthy:
        probe.error = (health or {}).get("error") or f"/healthz answered {hstatus}"
    if isinstance(varz, dict):
        probe.version = varz.get("version")
        probe.routes = varz.get("routes")
        probe.config_load_time = varz.get("config_load_time")
    if isinstance(gatewayz, dict):
        probe.outbound = {k: 1 for k in (gatewayz.get("outbound_gateways") or {})}
        probe.inbound = {
            k: len(v or []) for k, v in (gatewayz.get("inbound_gateways") or {}).items()
        }
    return probe


async def probe_servers(
    addresses: Mapping[str, str | None],
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    http: aiohttp.ClientSession | None = None,
    *,
    scheme: str = "http",
    tls: ssl.SSLContext | None = None,
    hostnames: Mapping[str, str] | None = None,
) -> dict[str, ServerProbe]:
    """Probe many servers concurrently: server name -> probe (`hostnames`: server name -> the
    name its certificate must be valid for)."""
    names = hostnames or {}
    own = http is None
    session = http or aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), connector=aiohttp.TCPConnector(limit=64)
    )
    try:
        probes = await asyncio.gather(
            *(
                probe_server(
                    session, n, a, timeout, scheme=scheme, tls=tls, server_hostname=names.get(n)
                )
                for n, a in addresses.items()
            )
        )
    finally:
        if own:
            await session.close()
    return {p.name: p for p in probes}


# ----------------------------------------------------------------------------------- resolvers


class Resolver(Protocol):
    """Where the monitoring endpoints of a supercluster's servers are."""

    async def __call__(
        self, namespace: str, supercluster: str, replicas: Mapping[str, int]
    ) -> dict[str, str | None]:
        """Server name -> host:port (None when the server has no running pod)."""
        ...


def expected_servers(replicas: Mapping[str, int]) -> list[str]:
    """Names of every server the members should run, cluster by cluster."""
    return [server_name(c, i) for c, n in sorted(replicas.items()) for i in range(n)]


@dataclass
class StaticResolver:
    """A fixed name -> address map (tests, local superclusters)."""

    addresses: Mapping[str, str]

    async def __call__(
        self, namespace: str, supercluster: str, replicas: Mapping[str, int]
    ) -> dict[str, str | None]:
        """Look every expected server up in the map."""
        return {n: self.addresses.get(n) for n in expected_servers(replicas)}


#: `ServerProbe.error` of a server whose pod is being deleted (lame duck, then gone)
POD_TERMINATING = "pod terminating"


class Resolved(dict[str, str | None]):
    """A resolver's answer, with why a server has no address where the resolver knows
    (`why`: server name -> e.g. POD_TERMINATING)."""

    def __init__(self, addresses: Mapping[str, str | None], why: Mapping[str, str]) -> None:
        super().__init__(addresses)
        self.why = dict(why)


@dataclass
class KubePodResolver:
    """Pod IPs from the API server: one pod list per supercluster and round.

    Only Running pods with an IP count; the monitoring port is the supercluster's.
    """

    list_pods: Callable[[str, str], Awaitable[list[dict[str, Any]]]]
    monitor_port: Callable[[str, str], int]

    async def __call__(
        self, namespace: str, supercluster: str, replicas: Mapping[str, int]
    ) -> dict[str, str | None]:
        """Expected server names mapped to `podIP:monitor` of their pods."""
        pods = await self.list_pods(namespace, f"{LABEL_SUPERCLUSTER}={supercluster}")
        port = self.monitor_port(namespace, supercluster)
        ips: dict[str, str] = {}
        why: dict[str, str] = {}
        for pod in pods:
            status = pod.get("status") or {}
            ip = status.get("podIP")
            if pod["metadata"].get("deletionTimestamp"):
                why[pod["metadata"]["name"]] = POD_TERMINATING
            elif ip and status.get("phase") == "Running":
                host = f"[{ip}]" if ":" in ip else ip
                ips[pod["metadata"]["name"]] = f"{host}:{port}"
        return Resolved({n: ips.get(n) for n in expected_servers(replicas)}, why)


# -------------------------------------------------------------------------- pure status logic


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: str | None) -> datetime.datetime | None:
    """An RFC 3339 timestamp (any fraction digits, `Z` or an offset) as aware UTC, or None."""
    if not value:
        return None
    text = _FRACTION.sub(lambda m: m.group(1), value.strip(), count=1)
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def config_current(load_time: str | None, applied_time: str | None) -> bool | None:
    """Whether a server that loaded its config at `load_time` runs the config applied at
    `applied_time`; None when either is unknown (not probed, nothing applied yet)."""
    loaded, applied = parse_time(load_time), parse_time(applied_time)
    if loaded is None or applied is None:
        return None
    return loaded >= applied


def _no_pod(name: str, probes: Mapping[str, ServerProbe]) -> str:
    probe = probes.get(name)
    if probe is not None and probe.error == POD_TERMINATING:
        return f"{name}: {POD_TERMINATING}"
    return f"{name}: no running pod"


def _join(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def cluster_status(
    cluster: str,
    replicas: int,
    probes: Mapping[str, ServerProbe],
    remotes: Sequence[str],
    generation: int | None = None,
    config_applied: str | None = None,
) -> dict[str, Any]:
    """Observed part of a Cluster's status from its servers' probes.

    `config_applied` is the Cluster's `status.configAppliedTime` (written by the reconciler):
    a healthy server whose config load time is older runs a stale config (ConfigReloaded).

    `remotes` are the gateway names this cluster should be linked to (other members and
    external gateways). A remote is connected when every healthy server has an outbound link
    to it (each server dials every remote cluster itself).
    """
    names = [server_name(cluster, i) for i in range(replicas)]
    servers: list[dict[str, Any]] = []
    healthy: list[str] = []
    problems: list[str] = []
    without_pod: list[str] = []
    reloaded: list[str] = []
    stale: list[str] = []
    for name in names:
        probe = probes.get(name) or ServerProbe(name, None, error="not probed")
        entry: dict[str, Any] = {"name": name, "healthy": probe.healthy}
        if probe.version:
            entry["version"] = probe.version
        if probe.routes is not None:
            entry["routes"] = probe.routes
        if probe.address is not None and (probe.healthy or probe.outbound or probe.inbound):
            entry["outboundGateways"] = len(probe.outbound)
            entry["inboundGateways"] = sum(probe.inbound.values())
        if probe.config_load_time:
            entry["configLoadTime"] = probe.config_load_time
        current = config_current(probe.config_load_time, config_applied)
        if probe.healthy and current is not None:
            entry["configCurrent"] = current
            (reloaded if current else stale).append(name)
        if probe.error:
            entry["lastError"] = probe.error
        servers.append(entry)
        if probe.healthy:
            healthy.append(name)
        elif probe.address is None:
            without_pod.append(name)
        else:
            problems.append(f"{name}: {probe.error}")

    links: list[dict[str, Any]] = []
    disconnected: list[str] = []
    for remote in sorted(remotes):
        outbound = sum(probes[n].outbound.get(remote, 0) for n in healthy)
        inbound = sum(probes[n].inbound.get(remote, 0) for n in healthy)
        connected = bool(healthy) and all(probes[n].outbound.get(remote) for n in healthy)
        links.append(
            {"cluster": remote, "outbound": outbound, "inbound": inbound, "connected": connected}
        )
        if not connected:
            disconnected.append(remote)

    gen = generation
    total = len(names)
    summary = f"{len(healthy)}/{total} servers healthy"
    conds: list[dict[str, Any]] = []
    if len(healthy) == total:
        conds.append(condition(READY, True, ALL_SERVERS_HEALTHY, summary, gen))
    elif not problems and not healthy:
        msg = (
            f"0/{total} servers running: no pod with an IP for {_join(without_pod)} "
            "(pods not scheduled or not started yet)"
        )
        conds.append(condition(READY, False, PODS_NOT_READY, msg, gen))
    else:
        details = problems + [_no_pod(n, probes) for n in without_pod]
        msg = f"{summary}; {_join(details, 3)}"
        conds.append(condition(READY, False, SERVERS_UNHEALTHY, msg, gen))

    if not remotes:
        conds.append(
            condition(GATEWAYS_CONNECTED, True, NO_REMOTE_CLUSTERS, "no other cluster", gen)
        )
    elif not healthy:
        conds.append(
            condition(
                GATEWAYS_CONNECTED, False, NO_HEALTHY_SERVERS, "no healthy server to link", gen
            )
        )
    elif disconnected:
        msg = f"not linked to {_join(disconnected)} from every healthy server"
        conds.append(condition(GATEWAYS_CONNECTED, False, GATEWAYS_DISCONNECTED, msg, gen))
    else:
        msg = f"linked to {_join(sorted(remotes))}"
        conds.append(condition(GATEWAYS_CONNECTED, True, ALL_GATEWAYS_CONNECTED, msg, gen))

    conds.append(_reloaded_condition(total, reloaded, stale, config_applied, gen))

    if problems or (healthy and without_pod):
        details = problems + [_no_pod(n, probes) for n in without_pod]
        conds.append(condition(DEGRADED, True, SERVERS_UNHEALTHY, _join(details, 3), gen))
    elif healthy and disconnected:
        msg = f"gateway links missing to {_join(disconnected)}"
        conds.append(condition(DEGRADED, True, GATEWAYS_DISCONNECTED, msg, gen))
    elif not healthy:
        conds.append(condition(DEGRADED, False, PODS_NOT_READY, "no server running yet", gen))
    else:
        conds.append(condition(DEGRADED, False, HEALTHY, summary, gen))

    return {
        "readyServers": len(healthy),
        "connectedGateways": sum(1 for link in links if link["connected"]),
        "servers": servers,
        "gateways": links,
        "conditions": conds,
    }


def _reloaded_condition(
    total: int, reloaded: list[str], stale: list[str], applied: str | None, gen: int | None
) -> dict[str, Any]:
    """ConfigReloaded: whether every server has loaded the config applied last."""
    if stale:
        msg = (
            f"{len(stale)}/{total} servers still run a config older than {applied}: {_join(stale)}"
        )
        return condition(CONFIG_RELOADED, False, RELOAD_PENDING, msg, gen)
    if total and len(reloaded) == total:
        msg = f"{total}/{total} servers loaded the config applied at {applied}"
        return condition(CONFIG_RELOADED, True, ALL_SERVERS_RELOADED, msg, gen)
    if applied is None:
        msg = "no config applied yet"
    else:
        msg = f"{len(reloaded)}/{total} servers confirmed the config applied at {applied}; "
        msg += "the others are not running or report no config load time"
    return condition(CONFIG_RELOADED, "Unknown", RELOAD_UNKNOWN, msg, gen)


def _cond(status: Mapping[str, Any], ctype: str) -> dict[str, Any]:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def supercluster_status(
    members: Mapping[str, Mapping[str, Any]],
    replicas: Mapping[str, int],
    externals: Sequence[str] = (),
    generation: int | None = None,
) -> dict[str, Any]:
    """Observed part of a SuperCluster's status from its members' observed statuses.

    connectivity[a][b] is True when member a has a connected gateway link to b; for an
    external cluster e, connectivity[e][a] is True when a has inbound links from e (we cannot
    ask e itself).
    """
    names = sorted(members)
    every = names + sorted(externals)
    matrix: dict[str, dict[str, bool]] = {}
    links = {n: {g["cluster"]: g for g in members[n].get("gateways") or []} for n in names}
    for a in names:
        matrix[a] = {b: bool(links[a].get(b, {}).get("connected")) for b in every if b != a}
    for e in sorted(externals):
        matrix[e] = {a: links[a].get(e, {}).get("inbound", 0) > 0 for a in names}

    member_docs: list[dict[str, Any]] = []
    ready: list[str] = []
    not_ready: list[str] = []
    degraded: list[str] = []
    for n in names:
        st = members[n]
        is_ready = _cond(st, READY).get("status") == "True"
        (ready if is_ready else not_ready).append(n)
        if _cond(st, DEGRADED).get("status") == "True":
            degraded.append(n)
        member_docs.append(
            {
                "name": n,
                "external": False,
                "ready": is_ready,
                "readyServers": st.get("readyServers", 0),
                "replicas": replicas.get(n),
                "connectedTo": sorted(b for b, ok in matrix[n].items() if ok),
                "missing": sorted(b for b, ok in matrix[n].items() if not ok),
            }
        )
    for e in sorted(externals):
        reached = sorted(a for a in names if matrix[a].get(e))
        member_docs.append(
            {
                "name": e,
                "external": True,
                "ready": bool(names) and len(reached) == len(names),
                "connectedTo": sorted(a for a, ok in matrix[e].items() if ok),
                "missing": sorted(a for a, ok in matrix[e].items() if not ok),
            }
        )

    gen = generation
    conds: list[dict[str, Any]] = []
    if not names:
        conds.append(condition(READY, False, NO_MEMBERS, "no Cluster has joined yet", gen))
    elif not_ready:
        parts = [f"{n} ({_cond(members[n], READY).get('reason', 'Unknown')})" for n in not_ready]
        msg = f"{len(ready)}/{len(names)} clusters ready; not ready: {_join(parts)}"
        conds.append(condition(READY, False, CLUSTERS_NOT_READY, msg, gen))
    else:
        conds.append(
            condition(READY, True, ALL_CLUSTERS_READY, f"{len(names)}/{len(names)} ready", gen)
        )
    missing_pairs = [f"{a}->{b}" for a in names for b, ok in matrix[a].items() if not ok]
    if not names:
        conds.append(condition(GATEWAYS_CONNECTED, False, NO_MEMBERS, "no members", gen))
    elif missing_pairs:
        msg = f"missing gateway links: {_join(missing_pairs)}"
        conds.append(condition(GATEWAYS_CONNECTED, False, MESH_INCOMPLETE, msg, gen))
    else:
        conds.append(
            condition(
                GATEWAYS_CONNECTED, True, MESH_COMPLETE, "every cluster reaches every other", gen
            )
        )
    stale = [
        s["name"] for n in names for s in members[n].get("servers") or []
        if s.get("configCurrent") is False
    ]  # fmt: skip
    unconfirmed = [n for n in names if _cond(members[n], CONFIG_RELOADED).get("status") != "True"]
    if stale:
        msg = f"servers still running an older config: {_join(stale)}"
        conds.append(condition(CONFIG_RELOADED, False, RELOAD_PENDING, msg, gen))
    elif names and not unconfirmed:
        msg = "every server loaded the config applied last"
        conds.append(condition(CONFIG_RELOADED, True, ALL_SERVERS_RELOADED, msg, gen))
    else:
        msg = f"not confirmed for {_join(unconfirmed)}" if names else "no members"
        conds.append(condition(CONFIG_RELOADED, "Unknown", RELOAD_UNKNOWN, msg, gen))
    if degraded:
        conds.append(
            condition(DEGRADED, True, MEMBERS_DEGRADED, f"degraded: {_join(degraded)}", gen)
        )
    else:
        conds.append(condition(DEGRADED, False, HEALTHY, "no member degraded", gen))

    return {
        "clustersTotal": len(names),
        "clustersReady": len(ready),
        "readyServers": sum(int(members[n].get("readyServers") or 0) for n in names),
        "members": member_docs,
        "connectivity": matrix,
        "conditions": conds,
    }


# ------------------------------------------------------------------------------- one round


@dataclass
class Round:
    """Result of observing one supercluster once (for metrics, logs and tests)."""

    probes: dict[str, ServerProbe]
    clusters: dict[str, dict[str, Any]]  # cluster name -> observed status part
    supercluster: dict[str, Any]


async def observe_supercluster(
    supercluster: Mapping[str, Any],
    clusters: Sequence[Mapping[str, Any]],
    resolver: Resolver,
    *,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    http: aiohttp.ClientSession | None = None,
    trust: str | None = None,
    cluster_domain: str | None = None,
) -> Round:
    """Resolve, probe and fold one supercluster (bodies as read from the API; no writes).

    Members whose spec cannot be read are skipped: the reconciler already reports them.
    `trust` is the CA bundle to verify https monitoring endpoints with (when the spec asks for
    https; without it the probes fail and say so). With `cluster_domain` (the operator's
    --cluster-domain) and names the operator controls (`monitor_verifies_names`), each server's
    certificate must also be valid for its pod's FQDN; without it (local superclusters on
    127.0.0.x) only the chain is verified.
    """
    meta = supercluster["metadata"]
    spec = supercluster.get("spec") or {}
    externals = [g["name"] for g in spec.get("externalGateways") or [] if g.get("name")]
    replicas: dict[str, int] = {}
    generations: dict[str, int | None] = {}
    applied: dict[str, str | None] = {}
    for body in clusters:
        name = body["metadata"]["name"]
        try:
            replicas[name] = max(0, int((body.get("spec") or {}).get("replicas", 1)))
        except (TypeError, ValueError):
            continue
        generations[name] = body["metadata"].get("generation")
        applied[name] = (body.get("status") or {}).get("configAppliedTime")
    addresses = await resolver(meta["namespace"], meta["name"], replicas)
    scheme = monitor_scheme(spec)
    tls: ssl.SSLContext | None = None
    hostnames: dict[str, str] | None = None
    if scheme == "https":
        if cluster_domain and monitor_verifies_names(spec):
            hostnames = {
                server_name(c, i): pod_fqdn(c, i, meta["namespace"], cluster_domain)
                for c, n in replicas.items()
                for i in range(n)
            }
        tls = (
            monitor_tls_context(trust, hostnames is not None)
            if trust
            else ssl.create_default_context()
        )
    probes = await probe_servers(
        addresses, timeout, http, scheme=scheme, tls=tls, hostnames=hostnames
    )
    for name, reason in getattr(addresses, "why", {}).items():
        if name in probes and probes[name].address is None:
            probes[name].error = reason
    observed: dict[str, dict[str, Any]] = {}
    every = sorted(replicas) + externals
    for name, count in sorted(replicas.items()):
        remotes = [r for r in every if r != name]
        observed[name] = cluster_status(
            name, count, probes, remotes, generations[name], applied[name]
        )
    sc_status = supercluster_status(observed, replicas, externals, meta.get("generation"))
    return Round(probes, observed, sc_status)

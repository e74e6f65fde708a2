"""Kopf wiring: which events trigger what, operator settings, and `scoperator run`.

The logic lives elsewhere (apply.py: render+apply; observe.py: probes and status folding;
status.py: writing status and Events); this module connects them to kopf:

- SuperCluster and Cluster create/update/resume -> reconcile the whole supercluster (every
  member's config lists every other member), coalesced per supercluster;
- Cluster deleted (watch event) -> reconcile the remaining members so they stop dialing it;
- a Secret referenced by a SuperCluster's accounts (passwordSecretRef), its link credentials,
  CA or certificate Secrets, or its external gateways' Secrets created, changed or deleted
  (watch event) -> reconcile the superclusters referencing it, so a new password or
  certificate reaches the servers within seconds (a deleted CA or certificate is re-issued);
- a certificate renewal or CA rotation step falling due -> reconcile at that time (pki.py
  reports when, `pki_loop` waits for it);
- one operator-wide observer task probes all servers every `probe_interval` seconds and
  publishes status; a slower resync re-applies everything (drift, missed events);
- a server pod that starts terminating, goes away, comes up or changes readiness (watch event)
  -> observe its supercluster now, not at the next round: a deleted or evicted pod is replaced
  within seconds, often between two rounds, and status must still show it (Degraded, then
  Ready) with its Events.

No finalizers: children carry owner references and are garbage-collected, and a deleted Cluster
is noticed from its DELETED watch event (or, if the operator was down, by the resume of its
SuperCluster). Per-object kopf timers/daemons would have added kopf's finalizer to every
resource, making `kubectl delete` hang whenever the operator is not running; one observer task
fed by watch events does the same job without that. Handlers are registered in a registry of
their own (`build_registry`), so importing this module has no side effects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf

from scoperator import metrics as metrics_mod
from scoperator.apply import (
    PODMONITOR_CRD_MISSING,
    SERVICEMONITOR_CRD_MISSING,
    ApplyCache,
    Coalescer,
    Outcome,
    Report,
    parse_supercluster,
    reconcile_supercluster,
)
from scoperator.kube import Credentials, KubeClient, KubeError
from scoperator.links import link_refs
from scoperator.models import GROUP, VERSION
from scoperator.naming import LABEL_SUPERCLUSTER, ca_secret_name
from scoperator.observe import (
    DEFAULT_PROBE_TIMEOUT,
    KubePodResolver,
    Resolver,
    observe_supercluster,
)
from scoperator.secrets import secret_refs
from scoperator.status import CONFIG_APPLIED, StatusWriter, condition, now_iso

log = logging.getLogger("scoperator")

FINALIZER = f"{GROUP}/finalizer"  # declared for kopf; no handler of ours requires it
RETRY_DELAY = 30.0  # seconds before retrying a problem that may fix itself (missing Secret)
MONITOR_RETRY = 60.0  # seconds between looks for the PodMonitor CRD while one is wanted
# A pod event is observed this long after it arrives, so that a burst (a pod deleted, its
# replacement created and scheduled) costs one observation, not one per event.
POD_EVENT_DELAY = 0.3


@dataclass
class OperatorConfig:
    """Settings of one operator process (`scoperator run` flags)."""

    namespaces: list[str] = field(default_factory=list)
    all_namespaces: bool = False
    metrics_port: int = 8080  # 0 disables the metrics endpoint
    metrics_host: str = "127.0.0.1"
    probe_interval: float = 15.0
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    resync_interval: float = 300.0
    liveness: str | None = None
    cluster_domain: str = "cluster.local"
    kubeconfig: str | None = None
    verbose: bool = False
    # kopf peering (leader election between replicas): None = standalone, the default.
    peering: str | None = None
    priority: int = 0


@dataclass
class Context:
    """Everything the handlers share, created at startup, reachable as `memo.ctx`."""

    config: OperatorConfig
    client: KubeClient
    writer: StatusWriter  # the reconciler's part of every status
    observer_writer: StatusWriter  # the observer's part
    metrics: metrics_mod.Metrics
    resolver: Resolver
    cache: ApplyCache = field(default_factory=ApplyCache)
    superclusters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    clusters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    coalescer: Coalescer | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    metrics_runner: Any = None
    metrics_bound_port: int | None = None
    # supercluster -> when it needs the reconciler next: its certificates (pki.py's next_due),
    # or a PodMonitor waiting for its CRD (retry_monitoring)
    pki_due: dict[tuple[str, str], datetime.datetime] = field(default_factory=dict)
    # supercluster -> CA bundle of its certificates (https monitoring probes verify with it)
    trust: dict[tuple[str, str], str] = field(default_factory=dict)
    # (namespace, pod) -> what the observer cares about of a server pod, as last seen
    pods: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    # superclusters to observe before the next round (a pod of theirs changed)
    observe_soon: set[tuple[str, str]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.coalescer = Coalescer(self._reconcile_and_publish)

    # ------------------------------------------------------------------- reconcile

    async def reconcile(self, namespace: str, supercluster: str) -> Report:
        """Reconcile one supercluster (coalesced with concurrent requests for it)."""
        assert self.coalescer is not None
        return await self.coalescer.request((namespace, supercluster))

    async def _reconcile_and_publish(self, key: tuple[str, str]) -> Report:
        namespace, name = key
        started = time.monotonic()
        try:
            report = await reconcile_supercluster(
                self.client, namespace, name, self.cache, cluster_domain=self.config.cluster_domain
            )
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.reconciles.inc(result="error")
            self.metrics.errors.inc()
            log.warning("reconcile of SuperCluster %s/%s failed: %s", namespace, name, exc)
            raise
        self.metrics.reconcile_seconds.observe(time.monotonic() - started)
        self.metrics.applied.inc(report.applied)
        self.metrics.pruned.inc(report.pruned)
        bad = (report.outcome is not None and not report.outcome.ok) or any(
            not o.ok for o in report.clusters.values()
        )
        self.metrics.reconciles.inc(result="problem" if bad else "ok")
        self._pki_metrics(report)
        self.retry_monitoring(report)
        await self.publish(report)
        body = self.superclusters.get(key)
        if report.pki is not None and report.pki.issued and body is not None:
            # Issuing, renewing and rotating are worth a line in `kubectl describe`.
            await self.writer.event(body, "Normal", "CertificatesIssued",
                                    "; ".join(report.pki.issued))  # fmt: skip
        log.info(
            "reconciled SuperCluster %s/%s: %d applied, %d unchanged, %d pruned in %.3fs",
            namespace, name, report.applied, report.unchanged, report.pruned,
            time.monotonic() - started,
        )  # fmt: skip
        return report

    def _pki_metrics(self, report: Report) -> None:
        """Certificate expiry gauges, issue counts and the next renewal time of one report."""
        key = (report.namespace, report.supercluster)
        pki = report.pki
        if pki is None:
            return
        self.metrics.certificate_expiry.remove(namespace=key[0], supercluster=key[1])
        for secret, ts in sorted(pki.expiry.items()):
            self.metrics.certificate_expiry.set(
                ts, namespace=key[0], supercluster=key[1], secret=secret
            )
        if pki.issued:
            self.metrics.certificates_issued.inc(len(pki.issued))
            log.info("SuperCluster %s/%s certificates: %s", *key, "; ".join(pki.issued))
        if pki.trust:
            self.trust[key] = pki.trust
        if pki.next_due is not None:
            self.pki_due[key] = pki.next_due
        else:
            self.pki_due.pop(key, None)

    def retry_monitoring(self, report: Report) -> None:
        """A PodMonitor waits for its CRD: reconcile again in MONITOR_RETRY seconds (the
        Prometheus Operator may be installed any time; pki_loop runs what falls due)."""
        missing = any(
            c.get("reason") in (PODMONITOR_CRD_MISSING, SERVICEMONITOR_CRD_MISSING)
            for outcome in report.clusters.values()
            for c in outcome.conditions
        )
        if not missing:
            return
        key = (report.namespace, report.supercluster)
        soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=MONITOR_RETRY)
        self.pki_due[key] = min(self.pki_due.get(key, soon), soon)

    async def pki_loop(self, interval: float = 1.0) -> None:
        """Reconcile superclusters whose certificates fall due (renewal, rotation, expiry)."""
        while True:
            await asyncio.sleep(interval)
            now = datetime.datetime.now(datetime.UTC)
            due = sorted(k for k, when in self.pki_due.items() if when <= now)
            for key in due:
                self.pki_due.pop(key, None)
                if key not in self.superclusters:
                    continue
                try:
                    await self.reconcile(*key)
                except Exception as exc:  # noqa: BLE001 - retried at the next due time
                    log.warning("certificate reconcile of %s/%s failed: %s", *key, exc)
                    self.pki_due.setdefault(key, now + datetime.timedelta(seconds=RETRY_DELAY))

    async def publish(self, report: Report) -> None:
        """Write the reconcile outcomes into the statuses (ConfigApplied, observedGeneration)."""
        ns = report.namespace
        writes = []
        if report.outcome is not None:
            writes.append(
                ("SuperCluster", ns, report.supercluster, _outcome_status(report.outcome))
            )
        for name, outcome in report.clusters.items():
            writes.append(("Cluster", ns, name, _outcome_status(outcome)))
        results = await asyncio.gather(
            *(self.write_status(self.writer, kind, n, name, u) for kind, n, name, u in writes),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("status write failed: %s", result)

    async def write_status(
        self, writer: StatusWriter, kind: str, namespace: str, name: str, updates: dict
    ) -> None:
        """Status write with metrics (no write when nothing changed)."""
        bodies = self.superclusters if kind == "SuperCluster" else self.clusters
        before = writer.patches
        await writer.update(kind, namespace, name, updates, bodies.get((namespace, name)))
        if writer.patches != before:
            self.metrics.status_patches.inc(kind=kind, writer=writer.manager)

    def referencing(self, namespace: str, secret: str) -> list[str]:
        """Names of the superclusters (as last seen) that use Secret `secret`: accounts, link
        credentials, certificates, external gateways."""
        return [
            name
            for (ns, name), body in sorted(self.superclusters.items())
            if ns == namespace
            and secret
            in _secret_names(body, [m["metadata"]["name"] for m in self.members(ns, name)])
        ]

    # --------------------------------------------------------------------- observe

    def members(self, namespace: str, supercluster: str) -> list[dict[str, Any]]:
        """Bodies of the Clusters of one supercluster, as last seen by the watch."""
        return [
            body
            for (ns, _), body in sorted(self.clusters.items())
            if ns == namespace
            and (body.get("spec") or {}).get("superCluster") == supercluster
            and not body["metadata"].get("deletionTimestamp")
        ]

    async def observe_once(self, http: aiohttp.ClientSession | None = None) -> None:
        """Probe every supercluster once and publish what changed."""
        sem = asyncio.Semaphore(8)

        async def one(key: tuple[str, str], body: dict[str, Any]) -> None:
            async with sem:
                await self._observe(key, body, http)

        await asyncio.gather(
            *(one(k, b) for k, b in sorted(self.superclusters.items())), return_exceptions=True
        )
        self.metrics.observe_rounds.inc()
        self.metrics.superclusters.set(len(self.superclusters))
        self.metrics.clusters.set(len(self.clusters))

    async def _observe(
        self, key: tuple[str, str], body: dict[str, Any], http: aiohttp.ClientSession | None
    ) -> None:
        namespace, name = key
        members = self.members(namespace, name)
        try:
            rnd = await observe_supercluster(
                body,
                members,
                self.resolver,
                timeout=self.config.probe_timeout,
                http=http,
                trust=self.trust.get(key),
                cluster_domain=self.config.cluster_domain,
            )
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("observing SuperCluster %s/%s failed: %s", namespace, name, exc)
            return
        for probe in rnd.probes.values():
            if probe.address is not None:
                self.metrics.probe_seconds.observe(probe.latency)
            if not probe.healthy:
                self.metrics.probe_failures.inc()
        stamp = now_iso()
        w = self.observer_writer
        writes = [
            self.write_status(w, "Cluster", namespace, cname, {**st, "lastHealthCheckTime": stamp})
            for cname, st in rnd.clusters.items()
        ]
        # (SuperClusterStatus declares no lastHealthCheckTime: the API server would prune it.)
        writes.append(self.write_status(w, "SuperCluster", namespace, name, rnd.supercluster))
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("status write failed: %s", result)

    def pod_changed(self, event: str | None, pod: Mapping[str, Any]) -> None:
        """A server pod's watch event: observe its supercluster soon if what the observer
        reads from pods changed (IP, phase, readiness, terminating, the pod replaced)."""
        meta = pod.get("metadata") or {}
        supercluster = (meta.get("labels") or {}).get(LABEL_SUPERCLUSTER)
        namespace, name = meta.get("namespace"), meta.get("name")
        if not supercluster or not namespace or not name:
            return
        state = None if event == "DELETED" else pod_state(pod)
        if self.pods.get((namespace, name)) == state:
            return
        if state is None:
            self.pods.pop((namespace, name), None)
        else:
            self.pods[(namespace, name)] = state
        # Also on a (re-)listing (event None): the watch may have started, or restarted, after
        # the last round, and what changed in between must not wait for the next one.
        log.info("server pod %s/%s %s: observing SuperCluster %s now",
                 namespace, name, describe_pod_state(event, state), supercluster)  # fmt: skip
        self.observe_now(namespace, supercluster)

    def observe_now(self, namespace: str, supercluster: str) -> None:
        """Observe one supercluster before the next round (the observer loop's wake-up)."""
        self.observe_soon.add((namespace, supercluster))
        self.wake.set()

    async def observer_loop(self) -> None:
        """Observe everything every `probe_interval` seconds, and a supercluster whose pods
        changed as soon as they do, until cancelled (errors never end it)."""
        timeout = aiohttp.ClientTimeout(total=self.config.probe_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.sleep(random.uniform(0, min(1.0, self.config.probe_interval)))
            next_round = time.monotonic()
            while True:
                due = [k for k in sorted(self.observe_soon) if k in self.superclusters]
                self.observe_soon.clear()
                self.wake.clear()
                try:
                    if time.monotonic() >= next_round:
                        await self.observe_once(http)
                        next_round = time.monotonic() + self.config.probe_interval
                    elif due:
                        await self.observe_some(due, http)
                except Exception:  # noqa: BLE001 - keep observing whatever happens
                    log.exception("observation round failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), next_round - time.monotonic())
                    await asyncio.sleep(POD_EVENT_DELAY)

    async def observe_some(
        self, keys: list[tuple[str, str]], http: aiohttp.ClientSession | None = None
    ) -> None:
        """Observe some superclusters now (their pods changed), between the rounds."""
        results = await asyncio.gather(
            *(self._observe(k, self.superclusters[k], http) for k in keys), return_exceptions=True
        )
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, BaseException):
                log.error("observing SuperCluster %s/%s failed: %r", *key, result)
        self.metrics.prompt_observations.inc(len(keys))

    async def resync_loop(self) -> None:
        """Re-apply everything every `resync_interval` seconds (drift, rotated Secrets)."""
        while True:
            await asyncio.sleep(self.config.resync_interval)
            self.cache.clear()
            for namespace, name in sorted(self.superclusters):
                with contextlib.suppress(Exception):
                    await self.reconcile(namespace, name)


def _outcome_status(outcome: Outcome) -> dict[str, Any]:
    updates: dict[str, Any] = {
        **outcome.status,
        "conditions": [
            condition(
                CONFIG_APPLIED, outcome.ok, outcome.reason, outcome.message, outcome.generation
            ),
            *(
                {**c, "observedGeneration": outcome.generation}
                if outcome.generation is not None
                else c
                for c in outcome.conditions
            ),
        ],
    }
    if outcome.ok and outcome.generation is not None:
        updates["observedGeneration"] = outcome.generation
    return updates


def _secret_names(body: dict[str, Any], members: list[str] | None = None) -> set[str]:
    """Names of the Secrets a SuperCluster body uses (none if invalid): its accounts', its
    link credentials and CA, its members' certificates, its external gateways'."""
    if body["metadata"].get("deletionTimestamp"):
        return set()
    try:
        sc = parse_supercluster(body)
    except ValueError:  # pydantic's ValidationError: reconcile reports it, nothing to watch
        return set()
    names = {ref.name for ref in secret_refs(sc.spec)}
    names |= {ref.name for ref in link_refs(sc)}
    names |= {g.ca_secret for g in sc.spec.external_gateways if g.ca_secret}
    if sc.spec.tls.mode == "Managed":
        names.add(ca_secret_name(sc.name))
    for member in members or []:
        secret = sc.spec.tls.cluster_secret(member)
        if secret:
            names.add(secret)
    return names


def _plain(value: Any) -> Any:
    """A kopf body (read-only mapping views) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def pod_state(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the observer reads from a server pod (KubePodResolver), and its readiness."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ready = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    return (
        meta.get("uid"),
        bool(meta.get("deletionTimestamp")),
        status.get("phase"),
        status.get("podIP"),
        ready,
    )


def describe_pod_state(event: str | None, state: tuple[Any, ...] | None) -> str:
    """A few words for the log: why a pod event made the observer look."""
    if state is None:
        return "deleted"
    _, terminating, phase, ip, ready = state
    if terminating:
        return "terminating"
    return f"{phase or 'no phase'}, ready {ready or 'unknown'}, ip {ip or 'none'}"


def _ctx(memo: Any) -> Context:
    return memo.ctx  # type: ignore[no-any-return]


def _raise_for_retry(outcome: Outcome | None) -> None:
    """Ask kopf to come back later for problems that can resolve without a spec change."""
    if outcome is not None and not outcome.ok and outcome.retry:
        raise kopf.TemporaryError(f"{outcome.reason}: {outcome.message}", delay=RETRY_DELAY)


# ------------------------------------------------------------------------------- registry


def build_registry(
    config: OperatorConfig, resolver: Resolver | None = None
) -> kopf.OperatorRegistry:
    """A kopf registry with all our handlers (a fresh one per operator run)."""
    registry = kopf.OperatorRegistry()
    sc_res = (GROUP, VERSION, "superclusters")
    cl_res = (GROUP, VERSION, "clusters")

    @kopf.on.login(id="login", registry=registry)
    def login(**_: Any) -> Any:
        return Credentials.load(config.kubeconfig).connection_info()

    @kopf.on.startup(id="startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING  # kopf's own "handler succeeded" stays in logs
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        settings.execution.max_workers = 4
        # Server pods only, filtered by the API server: a cluster-wide operator must not
        # stream every pod of the cluster to look at a few.
        settings.watching.label_selectors["v1", "pods"] = LABEL_SUPERCLUSTER
        client = KubeClient(Credentials.load(config.kubeconfig))
        writer = StatusWriter(client, manager="scoperator-reconciler")
        observer_writer = StatusWriter(client, manager="scoperator-observer")
        metrics = metrics_mod.Metrics()
        res = resolver or KubePodResolver(
            list_pods=lambda ns, sel: client.list("Pod", ns, sel),
            monitor_port=lambda ns, sc: _monitor_port(memo.ctx, ns, sc),
        )
        ctx = Context(config, client, writer, observer_writer, metrics, res)
        memo.ctx = ctx
        if config.metrics_port >= 0:
            ctx.metrics_runner = await metrics_mod.start_server(
                metrics, config.metrics_host, config.metrics_port
            )
            ctx.metrics_bound_port = metrics_mod.bound_port(ctx.metrics_runner)
            log.info("metrics on http://%s:%s/metrics", config.metrics_host, ctx.metrics_bound_port)
        ctx.tasks.append(asyncio.create_task(ctx.observer_loop(), name="scoperator-observer"))
        if config.resync_interval > 0:
            ctx.tasks.append(asyncio.create_task(ctx.resync_loop(), name="scoperator-resync"))
        ctx.tasks.append(asyncio.create_task(ctx.pki_loop(), name="scoperator-pki"))

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        ctx: Context | None = getattr(memo, "ctx", None)
        if ctx is None:
            return
        for task in ctx.tasks:
            task.cancel()
        await asyncio.gather(*ctx.tasks, return_exceptions=True)
        if ctx.metrics_runner is not None:
            await ctx.metrics_runner.cleanup()
        await ctx.client.close()

    # -- the registry of bodies the observer works from (no extra API calls)

    @kopf.on.event(*sc_res, id="track", registry=registry)
    async def track_supercluster(type: str | None, body: Any, memo: Any, **_: Any) -> None:  # noqa: A002
        ctx = _ctx(memo)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if type != "DELETED":
            seen = ctx.superclusters.get(key)
            ctx.superclusters[key] = _plain(body)
            if seen is None or seen.get("spec") != ctx.superclusters[key].get("spec"):
                ctx.observe_now(*key)
            return
        ctx.superclusters.pop(key, None)
        for writer in (ctx.writer, ctx.observer_writer):
            writer.forget("SuperCluster", *key)
        # Its Clusters keep running their last config; tell them (and the user) why nothing
        # is applied any more.
        try:
            await ctx.reconcile(*key)
        except Exception as exc:  # noqa: BLE001
            log.warning("reporting the deletion of SuperCluster %s/%s: %s", *key, exc)

    @kopf.on.event(*cl_res, id="track", registry=registry)
    async def track_cluster(type: str | None, body: Any, memo: Any, **_: Any) -> None:  # noqa: A002
        ctx = _ctx(memo)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if type != "DELETED":
            seen = ctx.clusters.get(key)
            ctx.clusters[key] = _plain(body)
            sc = (body.get("spec") or {}).get("superCluster")
            if sc and (seen is None or seen.get("spec") != ctx.clusters[key].get("spec")):
                # New or changed: its status (and its supercluster's) should not wait for the
                # next round, nor miss pod events seen before this Cluster was.
                ctx.observe_now(key[0], sc)
            return
        ctx.clusters.pop(key, None)
        for writer in (ctx.writer, ctx.observer_writer):
            writer.forget("Cluster", *key)
        sc = (body.get("spec") or {}).get("superCluster")
        if sc:
            # The remaining members must stop listing the deleted one. A failure here is
            # repaired by the next resync; never let it escape into kopf's watch loop.
            try:
                await ctx.reconcile(key[0], sc)
            except Exception as exc:  # noqa: BLE001
                log.warning("re-rendering %s/%s after %s left: %s", key[0], sc, key[1], exc)

    @kopf.on.event("", "v1", "secrets", id="track", registry=registry)
    async def track_secret(type: str | None, body: Any, memo: Any, **_: Any) -> None:  # noqa: A002
        if type is None:
            return  # initial listing: the resume of every SuperCluster reconciles anyway
        ctx = _ctx(memo)
        namespace, secret = body["metadata"]["namespace"], body["metadata"]["name"]
        for sc in ctx.referencing(namespace, secret):
            # A failure here is repaired by the next resync; never let it escape into kopf's
            # watch loop (a missing key is reported in the status by the reconcile itself).
            try:
                await ctx.reconcile(namespace, sc)
            except Exception as exc:  # noqa: BLE001
                log.warning("re-rendering %s/%s after Secret %s changed: %s",
                            namespace, sc, secret, exc)  # fmt: skip

    @kopf.on.event(
        "", "v1", "pods", id="observe", registry=registry,
        labels={LABEL_SUPERCLUSTER: kopf.PRESENT},
    )  # fmt: skip
    async def server_pod(type: str | None, body: Any, memo: Any, **_: Any) -> None:  # noqa: A002
        # async: kopf runs sync handlers in threads, and the observer's wake-up Event belongs
        # to the loop
        _ctx(memo).pod_changed(type, body)

    # -- desired state

    @kopf.on.resume(*sc_res, registry=registry, id="reconcile", backoff=15)
    @kopf.on.create(*sc_res, registry=registry, id="reconcile", backoff=15)
    @kopf.on.update(*sc_res, registry=registry, id="reconcile", backoff=15)
    async def supercluster_changed(namespace: str, name: str, memo: Any, **_: Any) -> None:
        report = await _ctx(memo).reconcile(namespace, name)
        _raise_for_retry(report.outcome)

    @kopf.on.resume(*cl_res, registry=registry, id="reconcile", backoff=15)
    @kopf.on.create(*cl_res, registry=registry, id="reconcile", backoff=15)
    @kopf.on.update(*cl_res, registry=registry, id="reconcile", backoff=15)
    async def cluster_changed(namespace: str, name: str, spec: Any, memo: Any, **_: Any) -> None:
        sc = spec.get("superCluster")
        if not sc:
            return  # the CRD requires it; nothing to do for an object without one
        report = await _ctx(memo).reconcile(namespace, sc)
        _raise_for_retry(report.clusters.get(name))

    return registry


def _monitor_port(ctx: Context, namespace: str, supercluster: str) -> int:
    body = ctx.superclusters.get((namespace, supercluster)) or {}
    ports = (body.get("spec") or {}).get("ports") or {}
    return int(ports.get("monitor", 8222))


# -------------------------------------------------------------------------------- running


async def serve(
    config: OperatorConfig,
    *,
    resolver: Resolver | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
    memo: Any = None,
) -> None:
    """Run the operator in the current event loop until `stop_flag` (or a signal)."""
    memo = memo if memo is not None else kopf.Memo()
    await kopf.operator(
        registry=build_registry(config, resolver),
        clusterwide=config.all_namespaces,
        namespaces=[] if config.all_namespaces else config.namespaces,
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=config.priority,
        liveness_endpoint=config.liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=memo,
    )


def parse_args(argv: list[str] | None) -> OperatorConfig:
    """`scoperator run` flags (the CLI passes everything after `run`)."""
    parser = argparse.ArgumentParser(prog="scoperator run", description="Run the operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--metrics-port", type=int, default=8080, help="-1 disables, 0 = any")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.add_argument("--probe-interval", type=float, default=15.0, help="seconds")
    parser.add_argument("--probe-timeout", type=float, default=DEFAULT_PROBE_TIMEOUT)
    parser.add_argument("--resync-interval", type=float, default=300.0, help="0 disables")
    parser.add_argument("--liveness", help="e.g. http://0.0.0.0:8081/healthz (kopf's probe)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG or in-cluster")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--peering", help="join this kopf peering (several replicas, one active); default: off"
    )
    parser.add_argument("--priority", type=int, default=0, help="kopf peering priority")
    args = parser.parse_args([a for a in (argv or []) if a != "--"])
    if not args.namespace and not args.all_namespaces:
        args.all_namespaces = True
    return OperatorConfig(
        namespaces=list(args.namespace),
        all_namespaces=args.all_namespaces,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        probe_interval=args.probe_interval,
        probe_timeout=args.probe_timeout,
        resync_interval=args.resync_interval,
        liveness=args.liveness,
        cluster_domain=args.cluster_domain,
        kubeconfig=args.kubeconfig,
        verbose=args.verbose,
        peering=args.peering,
        priority=args.priority,
    )


def run(argv: list[str] | None = None) -> int:
    """`scoperator run [flags]`: the operator until SIGINT/SIGTERM."""
    config = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kopf.objects").setLevel(logging.INFO if config.verbose else logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(config))
    return 0

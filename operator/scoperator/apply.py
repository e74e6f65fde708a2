"""Make the cluster match the rendered objects: server-side apply, owner references, pruning.

`reconcile_supercluster` is the whole desired-state path for one SuperCluster: read the
SuperCluster, its member Clusters and the Secrets their accounts reference, validate them with
the models, render every member (render.py, pure), apply the result and prune what is no longer
wanted. It returns an `Outcome` per resource instead of raising, so the caller (handlers.py)
can write conditions and Events and decide about retries; nothing here depends on kopf.

Why the whole supercluster at once: every member's config lists every other member, so scaling
one Cluster, or adding or removing one, changes the config of all of them.

Idempotency: server-side apply with our field manager is declarative; applying the same object
twice is a no-op for the API server (no new resourceVersion). An in-memory cache of what was
last applied skips even the request when nothing changed, which keeps a 50-member supercluster
cheap to re-reconcile; a restart empties it and the first reconcile re-applies everything (again
a no-op for unchanged objects).

Config stamps: the ConfigMap and the credentials Secret (the files the servers load) carry
`supercluster.dev/config-hash` (of their data) and `supercluster.dev/config-applied-at` (when
that data was first applied, RFC 3339 with microseconds). The timestamp moves only when the hash
changes, so re-applying unchanged objects stays a no-op; the latest one per member is published
as the Cluster's `status.configAppliedTime`, which the observer compares with every server's
`config_load_time` (observe.py: ConfigReloaded).

Owner references: every child has its Cluster as controller owner with blockOwnerDeletion, so
the garbage collector removes the children of a deleted Cluster; no finalizer is needed.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from scoperator.config_merge import ConfigMergeError, check_config
from scoperator.knobs import KnobError
from scoperator.kube import FIELD_MANAGER, KubeClient, KubeError
from scoperator.models import API_VERSION, GROUP, Cluster, SuperCluster
from scoperator.naming import CONFIG_FILE, LABEL_SUPERCLUSTER, KubeTarget, Topology, TopologyError
from scoperator.pki import PkiResult, ensure_pki
from scoperator.render import CONTAINER_NAME, render_member, required_refs
from scoperator.secrets import MissingSecretError, secret_refs
from scoperator.toolbox import render_toolbox

log = logging.getLogger(__name__)

# Kinds render produces and that we prune when no longer wanted.
CHILD_KINDS = (
    "ConfigMap",
    "Secret",
    "Service",
    "PodDisruptionBudget",
    "StatefulSet",
    "Deployment",  # the toolbox (owned by the SuperCluster)
    "PodMonitor",  # optional kind: its CRD may be absent (prune skips it then)
    "ServiceMonitor",  # optional kind, as PodMonitor
    # cert-manager Certificates written by pki.py for spec.tls.issuerRef: pruned when the spec
    # leaves issuerRef (Disabled, Managed, own Secrets), or cert-manager would keep rewriting
    # the `<cluster>-tls` Secrets
    "Certificate",
)
OPTIONAL_KINDS = ("PodMonitor", "ServiceMonitor", "Certificate")
# Kinds the chart grants only on request (rbac.toolbox for the toolbox Deployment): when RBAC
# refuses to list them, the operator cannot have created any, so there is nothing to prune.
RBAC_OPTIONAL_KINDS = ("Deployment",)
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=scoperator"
COMPONENT = "app.kubernetes.io/component"
APPLY_CONCURRENCY = 16
# Children whose data the servers load as files (server config, credentials include).
CONFIG_KINDS = ("ConfigMap", "Secret")
CONFIG_HASH = f"{GROUP}/config-hash"
CONFIG_APPLIED_AT = f"{GROUP}/config-applied-at"

# Reasons (condition reasons and Event reasons): CamelCase, stable, documented in the CRD docs.
APPLIED = "Applied"
INVALID_SPEC = "InvalidSpec"
SUPERCLUSTER_NOT_FOUND = "SuperClusterNotFound"
DUPLICATE_GATEWAY_NAME = "DuplicateGatewayName"
SECRET_MISSING = "SecretMissing"
APPLY_FAILED = "ApplyFailed"
MEMBER_PROBLEMS = "MemberProblems"
TOOLBOX_FAILED = "ToolboxFailed"
# The PodMonitor/ServiceMonitor condition (only present while one is wanted).
MONITORING_READY = "MonitoringReady"
PODMONITOR_APPLIED = "PodMonitorApplied"
PODMONITOR_CRD_MISSING = "PodMonitorCRDMissing"
SERVICEMONITOR_APPLIED = "ServiceMonitorApplied"
SERVICEMONITOR_CRD_MISSING = "ServiceMonitorCRDMissing"
# kind -> (reason when applied, reason when its CRD is missing, spec field, CRD name)
MONITOR_KINDS = {
    "PodMonitor": (
        PODMONITOR_APPLIED,
        PODMONITOR_CRD_MISSING,
        "metrics.podMonitor",
        "podmonitors.monitoring.coreos.com",
    ),
    "ServiceMonitor": (
        SERVICEMONITOR_APPLIED,
        SERVICEMONITOR_CRD_MISSING,
        "metrics.serviceMonitor",
        "servicemonitors.monitoring.coreos.com",
    ),
}


@dataclass
class Outcome:
    """What reconciling did for one resource, as the status wants it."""

    ok: bool
    reason: str
    message: str
    generation: int | None = None
    # Retry later without a spec change (a missing Secret may be created, the API may recover).
    retry: bool = False
    status: dict[str, Any] = field(default_factory=dict)  # extra status keys (seedUrls, ...)
    conditions: list[dict[str, Any]] = field(default_factory=list)  # more (CertificatesReady)


@dataclass
class Report:
    """Outcomes of one reconcile of a supercluster."""

    namespace: str
    supercluster: str
    outcome: Outcome | None = None  # None: the SuperCluster does not exist
    clusters: dict[str, Outcome] = field(default_factory=dict)
    applied: int = 0  # objects actually sent
    unchanged: int = 0  # objects skipped because the cache says nothing changed
    pruned: int = 0
    config_applied: dict[str, str] = field(default_factory=dict)  # cluster -> latest stamp
    pki: PkiResult | None = None
    # cluster -> MonitoringReady condition, for members that want a PodMonitor/ServiceMonitor
    monitoring: dict[str, dict[str, Any]] = field(default_factory=dict)
    toolbox_error: str | None = None


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller owner reference to `owner` (a Cluster as read from the API)."""
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` with `owner` as its only (controller) owner reference."""
    result = json.loads(json.dumps(obj))
    result["metadata"]["ownerReferences"] = [owner_reference(owner)]
    return result


def controller_uid(obj: dict[str, Any]) -> str | None:
    """uid of the controller owner of `obj`, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def now_precise() -> str:
    """UTC now, RFC 3339 with microseconds (servers report load times in nanoseconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def config_hash(obj: dict[str, Any]) -> str:
    """Hash of the data a server loads from `obj` (a ConfigMap or Secret)."""
    payload = {"data": obj.get("data") or {}, "stringData": obj.get("stringData") or {}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def stamp_config(
    obj: dict[str, Any], previous: dict[str, Any] | None, now: str
) -> tuple[dict[str, Any], str]:
    """`obj` annotated with its config hash and applied-at time, and that time.

    `previous` is the live object (or None): when its hash equals ours the data is unchanged and
    its applied-at time is kept, so applying the same data again changes nothing; otherwise the
    time is `now`. A live object written before these stamps existed (no hash) with the same
    data gets the time our field manager last applied it, not `now`: its servers loaded that
    data long ago and must not be reported as pending a reload that will never come.
    """
    digest = config_hash(obj)
    prev_meta = (previous or {}).get("metadata") or {}
    before = prev_meta.get("annotations") or {}
    applied_at = before.get(CONFIG_APPLIED_AT) if before.get(CONFIG_HASH) == digest else None
    if applied_at is None and previous is not None and CONFIG_HASH not in before:
        if config_hash(previous) == digest:
            applied_at = _applied_by_us(prev_meta)
    applied_at = applied_at or now
    result = json.loads(json.dumps(obj))
    meta = result["metadata"]
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        CONFIG_HASH: digest,
        CONFIG_APPLIED_AT: applied_at,
    }
    return result, applied_at


def _applied_by_us(meta: dict[str, Any]) -> str | None:
    """When our field manager last applied the object (managedFields, whole seconds)."""
    times = [
        str(m["time"]).replace("Z", ".000000Z") if "." not in str(m["time"]) else str(m["time"])
        for m in meta.get("managedFields") or []
        if m.get("manager") == FIELD_MANAGER and m.get("operation") == "Apply" and m.get("time")
    ]
    return max(times) if times else None


def _digest(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class ApplyCache:
    """Digest of what was last applied successfully, per object."""

    def __init__(self) -> None:
        self._digests: dict[tuple[str, str, str], str] = {}
        self._stamped: dict[tuple[str, str, str], dict[str, Any]] = {}

    def unchanged(self, obj: dict[str, Any]) -> bool:
        """Whether exactly `obj` was applied before (by this process)."""
        return self._digests.get(_key(obj)) == _digest(obj)

    def stamp(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The last config-stamped version of `obj` applied (its annotations), if any."""
        return self._stamped.get(_key(obj))

    def remember(self, obj: dict[str, Any]) -> None:
        """Record a successful apply."""
        self._digests[_key(obj)] = _digest(obj)
        if CONFIG_HASH in (obj["metadata"].get("annotations") or {}):
            self._stamped[_key(obj)] = {"metadata": {"annotations": obj["metadata"]["annotations"]}}

    def forget(self, obj: dict[str, Any]) -> None:
        """Drop an entry (after a failure or a prune) so the next reconcile re-applies."""
        self._digests.pop(_key(obj), None)
        self._stamped.pop(_key(obj), None)

    def clear(self) -> None:
        """Forget everything: the next reconcile re-applies every object (a full resync)."""
        self._digests.clear()
        self._stamped.clear()


# ---------------------------------------------------------------------------- reading inputs


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = err.get("msg", "").removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_supercluster(body: dict[str, Any]) -> SuperCluster:
    """The model of a SuperCluster as read from the API (raises ValidationError)."""
    return SuperCluster.model_validate({k: body.get(k) for k in ("apiVersion", "metadata", "spec")})


def parse_cluster(body: dict[str, Any]) -> Cluster:
    """The model of a Cluster as read from the API (raises ValidationError)."""
    return Cluster.model_validate({k: body.get(k) for k in ("apiVersion", "metadata", "spec")})


async def read_secrets(
    client: KubeClient,
    namespace: str,
    supercluster: SuperCluster,
    topology: Topology | None = None,
) -> dict[str, dict[str, str]]:
    """Decoded values of the Secrets rendering reads: the accounts' and, with a topology, the
    link credentials and certificate CA bundles (absent Secrets are left out)."""
    refs = list(secret_refs(supercluster.spec))
    if topology is not None:
        refs += [r for c in topology.clusters for r in required_refs(topology, c.name)]
    names = sorted({ref.name for ref in refs})
    docs = await asyncio.gather(*(client.get("Secret", namespace, n) for n in names))
    values: dict[str, dict[str, str]] = {}
    for name, doc in zip(names, docs, strict=True):
        if doc is None:
            continue
        data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        values[name] = data
    return values


def _generation(body: dict[str, Any]) -> int | None:
    gen = body.get("metadata", {}).get("generation")
    return int(gen) if gen is not None else None


def _member_status(topology: Topology, cluster: Cluster) -> dict[str, Any]:
    """Status keys the reconciler owns on a Cluster: replicas, seed URLs, endpoints."""
    ns = cluster.namespace
    ports = topology.supercluster.spec.ports
    seeds = [u for g in topology.gateways() if g.name != cluster.name for u in g.urls]
    endpoints = {
        "client": f"nats://{cluster.name}.{ns}.svc:{ports.client}",
        "gateway": f"nats://{cluster.name}-headless.{ns}.svc:{ports.gateway}"
        if cluster.spec.gateway.type == "Headless"
        else f"nats://{cluster.name}-gateway.{ns}.svc:{ports.gateway}",
        "gatewayAdvertised": cluster.spec.gateway.advertise,
    }
    return {
        "replicas": cluster.spec.replicas,
        "seedUrls": seeds,
        "endpoints": {k: v for k, v in endpoints.items() if v is not None},
    }


# ------------------------------------------------------------------------------- reconciling


async def reconcile_supercluster(
    client: KubeClient,
    namespace: str,
    name: str,
    cache: ApplyCache | None = None,
    *,
    cluster_domain: str = "cluster.local",
) -> Report:
    """Render and apply every member of SuperCluster `namespace/name`; never raises on bad input.

    API errors while reading propagate (the caller retries with backoff); problems of the
    resources themselves become Outcomes.
    """
    cache = cache if cache is not None else ApplyCache()
    report = Report(namespace, name)
    sc_body = await client.get("SuperCluster", namespace, name)
    cluster_bodies = [
        c
        for c in await client.list("Cluster", namespace)
        if (c.get("spec") or {}).get("superCluster") == name
        and not c["metadata"].get("deletionTimestamp")
    ]
    if sc_body is None:
        for body in cluster_bodies:
            report.clusters[body["metadata"]["name"]] = Outcome(
                False,
                SUPERCLUSTER_NOT_FOUND,
                f"SuperCluster {name!r} does not exist in namespace {namespace}: create it, "
                "or set spec.superCluster to an existing SuperCluster",
                _generation(body),
            )
        return report

    sc_gen = _generation(sc_body)
    try:
        supercluster = parse_supercluster(sc_body)
    except ValidationError as exc:
        msg = f"invalid SuperCluster spec: {_validation_message(exc)}"
        report.outcome = Outcome(False, INVALID_SPEC, msg, sc_gen)
        for body in cluster_bodies:
            report.clusters[body["metadata"]["name"]] = Outcome(
                False, INVALID_SPEC, f"SuperCluster {name}: {msg}", _generation(body)
            )
        return report

    members: list[tuple[dict[str, Any], Cluster]] = []
    for body in cluster_bodies:
        try:
            members.append((body, parse_cluster(body)))
        except ValidationError as exc:
            report.clusters[body["metadata"]["name"]] = Outcome(
                False,
                INVALID_SPEC,
                f"invalid Cluster spec: {_validation_message(exc)}",
                _generation(body),
            )

    models = [m for _, m in members]
    try:
        topology = Topology.build(supercluster, models, KubeTarget(namespace, cluster_domain))
    except TopologyError as exc:
        msg = (
            f"{exc}: every gateway name must be unique; rename the external gateway "
            "(spec.externalGateways[].name) or the Cluster"
        )
        report.outcome = Outcome(False, DUPLICATE_GATEWAY_NAME, msg, sc_gen)
        for body, _ in members:
            report.clusters[body["metadata"]["name"]] = Outcome(
                False, DUPLICATE_GATEWAY_NAME, msg, _generation(body)
            )
        return report

    pki = await ensure_pki(client, namespace, sc_body, supercluster, members, topology)
    report.pki = pki
    sc_extra = pki.supercluster_status
    if not pki.ok:
        msg = f"{pki.message} (namespace {namespace}); servers keep their current config until then"
        report.outcome = Outcome(False, SECRET_MISSING, msg, sc_gen, retry=True, **_split(sc_extra))
        for body, model in members:
            report.clusters[model.name] = Outcome(
                False, SECRET_MISSING, msg, _generation(body), retry=True,
                **_split(pki.cluster_status.get(model.name, {})),
            )  # fmt: skip
        return report

    secrets = await read_secrets(client, namespace, supercluster, topology)
    try:
        rendered, refused = _render_members(topology, secrets)
    except MissingSecretError as exc:
        refs = ", ".join(f"{r.name}/{r.key}" for r in exc.missing)
        msg = (
            f"missing Secret keys {refs} (namespace {namespace}): create the Secret(s) with "
            "these keys; servers keep their current config until then"
        )
        report.outcome = Outcome(False, SECRET_MISSING, msg, sc_gen, retry=True, **_split(sc_extra))
        for body, model in members:
            report.clusters[model.name] = Outcome(
                False, SECRET_MISSING, msg, _generation(body), retry=True,
                **_split(pki.cluster_status.get(model.name, {})),
            )  # fmt: skip
        return report

    sem = asyncio.Semaphore(APPLY_CONCURRENCY)
    applying = [(body, model) for body, model in members if model.name not in refused]
    results = await asyncio.gather(
        *(
            _apply_member(client, cache, sem, body, rendered[model.name], report)
            for body, model in applying
        )
    )
    for body, model in members:
        gen = _generation(body)
        cert = _split(pki.cluster_status.get(model.name, {}))
        if model.name in refused:
            # Nothing of this member was applied: its servers keep the previous config.
            reason, message = refused[model.name]
            report.clusters[model.name] = Outcome(False, reason, message, gen, **cert)
    for (body, model), error in zip(applying, results, strict=True):
        gen = _generation(body)
        extra = _member_status(topology, model)
        if model.name in report.config_applied:
            extra["configAppliedTime"] = report.config_applied[model.name]
        cert = _split(pki.cluster_status.get(model.name, {}))
        extra.update(cert["status"])
        conditions = list(cert["conditions"])
        if model.name in report.monitoring:
            conditions.append(report.monitoring[model.name])
        if error is None:
            report.clusters[model.name] = Outcome(
                True, APPLIED, "desired objects applied", gen, status=extra,
                conditions=conditions,
            )  # fmt: skip
        else:
            report.clusters[model.name] = Outcome(
                False, APPLY_FAILED, error, gen, retry=True, **cert
            )

    toolbox = render_toolbox(topology, secrets)
    if toolbox:
        report.toolbox_error = await _apply_objects(client, cache, sem, sc_body, toolbox, report)
    desired = {_key(obj) for body, model in members for obj in rendered.get(model.name, [])}
    desired |= {_key(obj) for obj in toolbox}
    desired |= pki.owned_keys
    # A refused member keeps every object it has (its uid is left out: nothing is pruned).
    member_uids = {body["metadata"]["uid"] for body, m in members if m.name not in refused}
    report.pruned = await prune(
        client,
        cache,
        namespace,
        name,
        desired,
        member_uids,
        toolbox_owner=sc_body["metadata"]["uid"],
    )

    failed = sorted(n for n, o in report.clusters.items() if not o.ok)
    total = len(report.clusters)
    if report.toolbox_error:
        report.outcome = Outcome(
            False, TOOLBOX_FAILED, report.toolbox_error, sc_gen, retry=True, **_split(sc_extra)
        )
    elif failed:
        report.outcome = Outcome(
            False,
            MEMBER_PROBLEMS,
            f"{total - len(failed)}/{total} Clusters applied; problems in {', '.join(failed)}"
            " (see their conditions)",
            sc_gen,
            retry=any(report.clusters[n].retry for n in failed),
            **_split(sc_extra),
        )
    else:
        report.outcome = Outcome(
            True, APPLIED, f"{total}/{total} Clusters applied", sc_gen, **_split(sc_extra)
        )
    return report


def _render_members(
    topology: Topology, secrets: dict[str, dict[str, str]]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[str, str]]]:
    """Objects per member, and (reason, message) per member whose settings were refused: a
    config merge the server rejects, a patch that does not apply. MissingSecretError escapes
    (it concerns every member alike)."""
    rendered: dict[str, list[dict[str, Any]]] = {}
    refused: dict[str, tuple[str, str]] = {}
    for member in topology.clusters:
        try:
            objects = render_member(topology, member.name, secrets)
            if _has_merge(topology, member):
                check_config(_config_files(objects), f"{member.name}-0", env=_server_env(objects))
        except ConfigMergeError as exc:
            refused[member.name] = (exc.reason, f"{exc}; the servers keep their current config")
            continue
        except KnobError as exc:
            refused[member.name] = (exc.reason, f"{exc}; nothing was applied")
            continue
        rendered[member.name] = objects
    return rendered, refused


def _has_merge(topology: Topology, member: Cluster) -> bool:
    return bool(topology.supercluster.spec.config.merge or member.spec.config.merge)


def _server_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The server container's environment from the rendered StatefulSet: literal values as
    they are, values from elsewhere (fieldRef, Secret) as a placeholder string."""
    env: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] != "StatefulSet":
            continue
        containers = obj["spec"]["template"]["spec"]["containers"]
        # by name: a pod template patch may put a sidecar first
        container = next((c for c in containers if c.get("name") == CONTAINER_NAME), {})
        for var in container.get("env") or []:
            env[var["name"]] = str(var["value"]) if "value" in var else "placeholder"
    return env


def _config_files(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The files a server loads (config and credentials include), from rendered objects."""
    files: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and CONFIG_FILE in (obj.get("data") or {}):
            files.update(obj["data"])
        elif obj["kind"] == "Secret":
            data = obj.get("data") or {}
            files.update({k: base64.b64decode(v).decode() for k, v in data.items()})
    return files


async def _apply_objects(
    client: KubeClient,
    cache: ApplyCache,
    sem: asyncio.Semaphore,
    owner: dict[str, Any],
    objects: list[dict[str, Any]],
    report: Report,
) -> str | None:
    """Apply objects owned by `owner` (the toolbox's: owned by the SuperCluster)."""
    for obj in objects:
        desired = owned(obj, owner)
        if cache.unchanged(desired):
            report.unchanged += 1
            continue
        exc = await _send(client, cache, sem, desired, report)
        if exc is not None:
            return _rejected(desired, exc)
    return None


async def _send(
    client: KubeClient,
    cache: ApplyCache,
    sem: asyncio.Semaphore,
    desired: dict[str, Any],
    report: Report,
) -> KubeError | None:
    """Server-side apply one object, keeping the cache true to what the API server holds:
    remembered when applied, forgotten when refused (the refusal is returned)."""
    try:
        async with sem:
            await client.apply(desired)
    except KubeError as exc:
        cache.forget(desired)
        return exc
    cache.remember(desired)
    report.applied += 1
    return None


def _rejected(desired: dict[str, Any], exc: KubeError) -> str:
    kind, _, obj_name = _key(desired)
    return f"{kind} {obj_name} was rejected by the API server: {exc.message}"


def _monitoring_condition(ok: bool, reason: str, message: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    return {"type": MONITORING_READY, "status": status, "reason": reason, "message": message}


def _split(extra: dict[str, Any]) -> dict[str, Any]:
    """Status keys from pki.py as Outcome arguments: conditions apart from the other keys."""
    return {
        "conditions": list(extra.get("conditions") or []),
        "status": {k: v for k, v in extra.items() if k != "conditions"},
    }


async def _apply_member(
    client: KubeClient,
    cache: ApplyCache,
    sem: asyncio.Semaphore,
    owner: dict[str, Any],
    objects: list[dict[str, Any]],
    report: Report,
) -> str | None:
    """Apply one member's objects in render order (config before the StatefulSet).

    Returns None or a message naming the object the API server refused and why (e.g. a
    nodePort already allocated): the user has to change the spec, so it goes into the status.
    """
    cluster = owner["metadata"]["name"]
    for obj in objects:
        desired = owned(obj, owner)
        if desired["kind"] in CONFIG_KINDS:
            previous = cache.stamp(desired)
            if previous is None:  # first apply by this process: the live object tells
                kind, ns, obj_name = _key(desired)
                try:
                    async with sem:
                        previous = await client.get(kind, ns, obj_name)
                except KubeError as exc:
                    return f"{kind} {obj_name} could not be read: {exc.message}"
            desired, applied_at = stamp_config(desired, previous, now_precise())
            latest = report.config_applied.get(cluster)
            report.config_applied[cluster] = max(latest or applied_at, applied_at)
        monitor = MONITOR_KINDS.get(desired["kind"])
        if cache.unchanged(desired):
            report.unchanged += 1
            if monitor:
                _monitored(report, cluster, desired, True)
            continue
        exc = await _send(client, cache, sem, desired, report)
        if exc is not None:
            if monitor and exc.not_found:
                # No Prometheus Operator here: everything else works, say what is missing.
                _monitored(report, cluster, desired, False)
                continue
            return _rejected(desired, exc)
        if monitor:
            _monitored(report, cluster, desired, True)
    return None


def _monitored(report: Report, cluster: str, monitor: dict[str, Any], ok: bool) -> None:
    """Record the MonitoringReady condition for a PodMonitor/ServiceMonitor of `cluster`; with
    both wanted, a missing CRD wins over an applied monitor."""
    kind, name = monitor["kind"], _key(monitor)[2]
    applied, missing, field_name, crd = MONITOR_KINDS[kind]
    if ok:
        cond = _monitoring_condition(True, applied, f"{kind} {name} applied")
    else:
        cond = _monitoring_condition(
            False,
            missing,
            f"{field_name} is enabled but the API server does not know {crd}: install the "
            f"Prometheus Operator CRDs (or disable {field_name}); /metrics is served on the "
            "monitor port anyway",
        )
    previous = report.monitoring.get(cluster)
    if previous is not None and previous["status"] == "False" and ok:
        return
    report.monitoring[cluster] = cond


async def _list_optional(
    client: KubeClient, kind: str, namespace: str, selector: str
) -> list[dict[str, Any]]:
    """List `kind`; an optional kind whose CRD is not installed has no objects, nor has a kind
    the operator may not list (RBAC_OPTIONAL_KINDS; a wanted toolbox then fails to apply with
    ToolboxFailed naming the 403, which is where the user sees it)."""
    try:
        return await client.list(kind, namespace, selector)
    except KubeError as exc:
        if kind in OPTIONAL_KINDS and exc.not_found:
            return []
        if kind in RBAC_OPTIONAL_KINDS and exc.forbidden:
            log.debug("not allowed to list %s in %s: nothing of ours to prune", kind, namespace)
            return []
        raise


async def prune(
    client: KubeClient,
    cache: ApplyCache,
    namespace: str,
    supercluster: str,
    desired: set[tuple[str, str, str]],
    owner_uids: set[str],
    *,
    toolbox_owner: str | None = None,
) -> int:
    """Delete our children that render no longer produces (e.g. a gateway Service after the
    exposure went back to Headless, the credentials Secret after the last user was removed).

    Only objects labelled as ours *and* controlled by a current member are candidates: objects
    of a deleted Cluster are left to the garbage collector, anything else is not ours. The
    toolbox's objects (component toolbox, controlled by `toolbox_owner`, the SuperCluster) are
    candidates too; the SuperCluster's other children (CA, credentials) belong to pki.py.
    """
    selector = f"{MANAGED_SELECTOR},{LABEL_SUPERCLUSTER}={supercluster}"
    listed = await asyncio.gather(
        *(_list_optional(client, k, namespace, selector) for k in CHILD_KINDS)
    )
    count = 0
    for items in listed:
        for obj in items:
            owner = controller_uid(obj)
            toolbox = (obj["metadata"].get("labels") or {}).get(COMPONENT) == "toolbox"
            ours = owner in owner_uids or (toolbox and owner is not None and owner == toolbox_owner)
            if _key(obj) in desired or not ours:
                continue
            meta = obj["metadata"]
            if await client.delete(obj["kind"], namespace, meta["name"], uid=meta.get("uid")):
                log.info("pruned %s %s/%s", obj["kind"], namespace, meta["name"])
                count += 1
            cache.forget(obj)
    return count


# ------------------------------------------------------------------------------- coalescing


class Coalescer:
    """Runs `work(key)` at most once at a time per key, folding requests that pile up.

    When 50 Clusters of one SuperCluster are created together, 50 handlers ask to reconcile the
    same supercluster; each waits for a run that *started after* its request (so it sees its own
    change applied), and all requests made during one run are served by the next single run.
    """

    def __init__(self, work: Callable[[Any], Awaitable[Any]]) -> None:
        self._work = work
        self._requested: dict[Any, int] = {}
        self._results: dict[Any, tuple[int, Any, BaseException | None]] = {}
        self._cond = asyncio.Condition()
        self._running: set[Any] = set()
        self.runs = 0

    async def request(self, key: Any) -> Any:
        """Ask for a run of `key` and return the result of the run that covers this request."""
        async with self._cond:
            ticket = self._requested.get(key, 0) + 1
            self._requested[key] = ticket
            if key not in self._running:
                self._running.add(key)
                asyncio.get_running_loop().create_task(self._loop(key))
            while True:
                done = self._results.get(key)
                if done is not None and done[0] >= ticket:
                    if done[2] is not None:
                        raise done[2]
                    return done[1]
                await self._cond.wait()

    async def _loop(self, key: Any) -> None:
        while True:
            async with self._cond:
                target = self._requested[key]
                finished = self._results.get(key)
                if finished is not None and finished[0] >= target:
                    self._running.discard(key)
                    return
            result: Any = None
            error: BaseException | None = None
            self.runs += 1
            try:
                result = await self._work(key)
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                error = exc
            async with self._cond:
                self._results[key] = (target, result, error)
                self._cond.notify_all()

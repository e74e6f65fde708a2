"""Status writing: conditions, change detection, and the Events that go with them.

Two writers share each resource's status: the reconciler (`ConfigApplied`, `observedGeneration`,
seed URLs, configAppliedTime) and the observer (`Ready`, `GatewaysConnected`, `ConfigReloaded`,
`Degraded`, servers, gateways): `ConfigApplied` says the objects were written, `ConfigReloaded`
that every server has loaded them since. A
merge patch would replace the conditions list wholesale (one writer erasing the other's
conditions, or a read-modify-write race); instead each writer server-side-applies its own
fields under its own field manager, and the API server merges the conditions by type.

Status only changes when something changed: a write whose result equals the current status
(ignoring `lastHealthCheckTime`, which is only refreshed together with a real change) makes no
API call, so an idle supercluster produces no resourceVersion churn and no watch events.

An Event is posted when a condition changes into a bad state (and a Normal one when it
recovers): one Event per transition, never one per probe or retry. The observed conditions'
first (necessarily bad) state on a new resource posts nothing; a bad resource (ConfigApplied
False) always does, since that is something the user has to fix.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scoperator.kube import KubeClient, KubeError

log = logging.getLogger(__name__)

# Condition types and which status means trouble.
READY = "Ready"
GATEWAYS_CONNECTED = "GatewaysConnected"
CONFIG_APPLIED = "ConfigApplied"
CONFIG_RELOADED = "ConfigReloaded"
DEGRADED = "Degraded"
CERTIFICATES_READY = "CertificatesReady"
MONITORING_READY = "MonitoringReady"  # PodMonitor applied (apply.py), only when one is wanted
CONDITION_ORDER = (
    READY,
    GATEWAYS_CONNECTED,
    CONFIG_APPLIED,
    CONFIG_RELOADED,
    CERTIFICATES_READY,
    MONITORING_READY,
    DEGRADED,
)
BAD_WHEN = {
    READY: "False",
    GATEWAYS_CONNECTED: "False",
    CONFIG_APPLIED: "False",
    CONFIG_RELOADED: "False",
    CERTIFICATES_READY: "False",
    MONITORING_READY: "False",
    DEGRADED: "True",
}

# Status keys refreshed only alongside a real change (they would churn otherwise).
VOLATILE_KEYS = frozenset({"lastHealthCheckTime"})
# Observed conditions start out bad on every new resource (no server runs yet); an Event for
# that first state would only be noise. They get Events on later transitions.
QUIET_WHEN_NEW = frozenset({READY, GATEWAYS_CONNECTED, CONFIG_RELOADED, DEGRADED})
EVENT_COMPONENT = "scoperator"


def _api_version(kind: str) -> str:
    from scoperator.kube import RESOURCES

    return RESOURCES[kind][0]


def now_iso() -> str:
    """UTC now as Kubernetes writes timestamps (RFC 3339, seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    ctype: str, ok: bool | str, reason: str, message: str = "", generation: int | None = None
) -> dict[str, Any]:
    """A condition dict; `ok` may be a bool or "True"/"False"/"Unknown"."""
    status = ok if isinstance(ok, str) else ("True" if ok else "False")
    cond: dict[str, Any] = {"type": ctype, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("status", "reason", "message", "observedGeneration")
    return all(a.get(k) == b.get(k) for k in keys)


def merge_conditions(
    current: Iterable[dict[str, Any]], updates: Iterable[dict[str, Any]], now: str | None = None
) -> list[dict[str, Any]]:
    """`current` with `updates` merged in by type.

    `lastTransitionTime` moves only when the status flips (the Kubernetes convention); reason
    and message updates keep it. Conditions of types not in `updates` belong to the other
    writer and are kept as they are.
    """
    stamp = now or now_iso()
    by_type = {c["type"]: dict(c) for c in current if "type" in c}
    for new in updates:
        old = by_type.get(new["type"])
        merged = dict(new)
        if old is not None and old.get("status") == new["status"]:
            merged["lastTransitionTime"] = old.get("lastTransitionTime") or stamp
        else:
            merged["lastTransitionTime"] = stamp
        if old is not None and _same(old, merged) and old.get("lastTransitionTime"):
            merged = old
        by_type[new["type"]] = merged
    order = {t: i for i, t in enumerate(CONDITION_ORDER)}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], len(order)), c["type"]))


def _strip(value: Any) -> Any:
    """Drop None values recursively: merge patches delete keys set to None."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def merged_status(
    current: dict[str, Any] | None, updates: dict[str, Any], now: str | None = None
) -> dict[str, Any]:
    """The status after applying `updates` (top-level keys replaced, conditions merged)."""
    result = dict(current or {})
    for key, value in updates.items():
        if key == "conditions":
            result["conditions"] = merge_conditions(result.get("conditions") or [], value, now)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return _strip(result)


def significant(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the keys that may change without meaning anything."""
    return {k: v for k, v in status.items() if k not in VOLATILE_KEYS}


def changed_conditions(
    before: dict[str, Any] | None, after: dict[str, Any]
) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """(old, new) pairs of conditions whose status, reason or message changed."""
    old = {c["type"]: c for c in (before or {}).get("conditions") or []}
    pairs = []
    for cond in after.get("conditions") or []:
        prev = old.get(cond["type"])
        keys = ("status", "reason", "message")
        if prev is None or any(prev.get(k) != cond.get(k) for k in keys):
            pairs.append((prev, cond))
    return pairs


def _mine(status: dict[str, Any], keys: Iterable[str], types: set[str]) -> dict[str, Any]:
    """The part of `status` one writer owns: its keys, and only its condition types."""
    out: dict[str, Any] = {}
    for key in keys:
        if key == "conditions":
            conds = [c for c in status.get("conditions") or [] if c.get("type") in types]
            if conds:
                out["conditions"] = conds
        elif status.get(key) is not None:
            out[key] = status[key]
    return _strip(out)


@dataclass
class StatusWriter:
    """Server-side apply of one writer's part of `status`, with change detection and Events.

    Each writer (reconciler, observer) applies with a field manager of its own, so the API
    server merges their fields (conditions are a list-map keyed by type): no read before the
    write, no resourceVersion precondition, no conflicts, and neither writer can drop the
    other's conditions. Change detection compares with what this writer last applied to the
    object (it is the only writer of those fields), or, the first time after a start, with the
    body the caller saw in the watch (one GET if it has none): an unchanged status makes no
    API call at all, which is why a restart or an idle supercluster writes nothing.
    """

    client: KubeClient
    manager: str = "scoperator"
    post_events: bool = True
    patches: int = 0
    skipped: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # posted, newest last (tests)
    _last: dict[tuple[str, str, str], tuple[str | None, dict[str, Any]]] = field(
        default_factory=dict
    )

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop what we remember about an object (it was deleted)."""
        self._last.pop((kind, namespace, name), None)

    async def update(
        self,
        kind: str,
        namespace: str,
        name: str,
        updates: dict[str, Any],
        current: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Apply `updates` (this writer's whole part of the status) to one object.

        `current` is the object as last seen (from the watch), if the caller has it. Returns
        this writer's part after the write, or None when the object does not exist.
        """
        key = (kind, namespace, name)
        types = {c["type"] for c in updates.get("conditions") or []}
        obj = current
        uid = (obj or {}).get("metadata", {}).get("uid")
        remembered = self._last.get(key)
        if remembered is not None and (uid is None or remembered[0] == uid):
            before = remembered[1]
        else:
            if obj is None:
                obj = await self.client.get(kind, namespace, name)
                if obj is None:
                    return None
                uid = obj["metadata"].get("uid")
            before = _mine(obj.get("status") or {}, updates.keys(), types)
        after = _mine(merged_status(before, updates), updates.keys(), types)
        if significant(after) == significant(before):
            self.skipped += 1
            self._last[key] = (uid, before)
            return before
        body = {
            "apiVersion": (obj or {}).get("apiVersion") or _api_version(kind),
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": after,
        }
        try:
            written = await self.client.apply_status(body, manager=self.manager)
        except KubeError as exc:
            if exc.not_found:
                self.forget(kind, namespace, name)
                return None
            raise
        self.patches += 1
        self._last[key] = (written["metadata"].get("uid"), after)
        if self.post_events:
            await self._events(written, before, after)
        return after

    async def _events(
        self, obj: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        for prev, cond in changed_conditions(before, after):
            bad = BAD_WHEN.get(cond["type"])
            if bad is None:
                continue
            if cond["status"] == bad:
                if prev is None and cond["type"] in QUIET_WHEN_NEW:
                    continue
                await self.event(obj, "Warning", cond["reason"], cond.get("message") or "")
            elif prev is not None and prev.get("status") == bad:
                msg = f"{cond['type']} is {cond['status']}: {cond.get('message') or ''}"
                await self.event(obj, "Normal", cond["reason"], msg.rstrip(": "))

    async def event(self, obj: dict[str, Any], etype: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about `obj` (failures are logged, never raised)."""
        meta = obj["metadata"]
        stamp = now_iso()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": etype,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": EVENT_COMPONENT},
            "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": EVENT_COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.client.create(event)
            self.events.append(event)
        except (KubeError, OSError) as exc:
            log.warning("could not post event %s for %s: %s", reason, meta["name"], exc)

"""Status writing: conditions, change detection, and the Events that go with them.

Two writers share each resource's status: the reconciler (`ConfigApplied`, `observedGeneration`,
seed URLs) and the observer (`Ready`, `GatewaysConnected`, `Degraded`, servers, gateways). A
merge patch replaces lists wholesale, so each write re-reads the object, merges its own
conditions into the current list and patches with the read `resourceVersion` as a
precondition; a conflict means someone wrote meanwhile, and the merge is redone.

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
DEGRADED = "Degraded"
CONDITION_ORDER = (READY, GATEWAYS_CONNECTED, CONFIG_APPLIED, DEGRADED)
BAD_WHEN = {READY: "False", GATEWAYS_CONNECTED: "False", CONFIG_APPLIED: "False", DEGRADED: "True"}

# Status keys refreshed only alongside a real change (they would churn otherwise).
VOLATILE_KEYS = frozenset({"lastHealthCheckTime"})
# Observed conditions start out bad on every new resource (no server runs yet); an Event for
# that first state would only be noise. They get Events on later transitions.
QUIET_WHEN_NEW = frozenset({READY, GATEWAYS_CONNECTED, DEGRADED})
MAX_CONFLICT_RETRIES = 8
EVENT_COMPONENT = "scoperator"


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


@dataclass
class StatusWriter:
    """Read-merge-patch of `status` with conflict retries, change detection and Events."""

    client: KubeClient
    post_events: bool = True
    patches: int = 0
    skipped: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # posted, newest last (tests)

    async def update(
        self, kind: str, namespace: str, name: str, updates: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge `updates` into the status of one object; returns the new status.

        None when the object does not exist (deleted meanwhile: nothing to report on).
        """
        for _ in range(MAX_CONFLICT_RETRIES):
            obj = await self.client.get(kind, namespace, name)
            if obj is None:
                return None
            before = obj.get("status") or {}
            after = merged_status(before, updates)
            if significant(after) == significant(_strip(before)):
                self.skipped += 1
                return before
            patch = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
            # Keys we drop must be sent as None to be removed by the merge patch.
            status_patch: dict[str, Any] = {k: None for k in before if k not in after}
            status_patch.update(after)
            patch["status"] = status_patch
            try:
                await self.client.merge_patch(kind, namespace, name, patch, subresource="status")
            except KubeError as exc:
                if exc.conflict:
                    continue
                if exc.not_found:
                    return None
                raise
            self.patches += 1
            if self.post_events:
                await self._events(obj, before, after)
            return after
        log.warning("status of %s %s/%s: gave up after repeated conflicts", kind, namespace, name)
        return None

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
                msg = f"{cond['type']} is {cond['status']} again: {cond.get('message') or ''}"
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

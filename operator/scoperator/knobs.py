"""Chart-style settings folded into the rendered objects: pod settings, Services, patches,
the PodMonitor.

Precedence, lowest first (the README has the table):

1. what the operator renders from the topology (ports, probes, volumes, labels);
2. the SuperCluster's settings (`spec.pod`, `spec.services`, `spec.metrics`): defaults;
3. the Cluster's same settings: overrides. Lists of named things (env, extraVolumes, sidecars,
   initContainers, imagePullSecrets; extraVolumeMounts by mountPath) merge by name, the Cluster's
   entry replacing the SuperCluster's; maps (annotations, labels, PodMonitor labels) merge key by
   key; anything else is the Cluster's value when set. The Cluster's older top-level fields
   (resources, nodeSelector, affinity, tolerations, podAnnotations, podLabels) win over both;
4. the strategic-merge patches (`podTemplatePatch`, `services.<svc>.patch`): SuperCluster's,
   then Cluster's;
5. the JSON patches (`podTemplateJsonPatch`, `services.<svc>.jsonPatch`): SuperCluster's, then
   Cluster's.

The operator's own labels (the selector) and the server container cannot be patched away: a
patch that removes them is refused with reason InvalidPatch, and nothing is applied.
"""

from __future__ import annotations

from typing import Any

from scoperator.knob_models import (
    JsonPatchOp,
    PodMonitorSpec,
    PodSettings,
    ServiceMonitorSpec,
    ServiceOverrides,
)
from scoperator.models import Cluster, SuperCluster
from scoperator.naming import LABEL_CLUSTER, LABEL_SUPERCLUSTER, ClusterNames, labels
from scoperator.patches import MAX_DEPTH, PatchError, deeper_than, json_patch, strategic_merge

INVALID_PATCH = "InvalidPatch"
INVALID_SERVICE = "InvalidService"
PODMONITOR_API = "monitoring.coreos.com/v1"
METRICS_PATH = "/metrics"


class KnobError(ValueError):
    """Settings that cannot be rendered; `reason` becomes the condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


# ---------------------------------------------------------------------------------- folding


def merge_named(
    base: list[dict[str, Any]] | None, over: list[dict[str, Any]] | None, key: str = "name"
) -> list[dict[str, Any]]:
    """`over`'s items replace `base`'s items with the same `key`; new ones are appended."""
    result = [dict(i) for i in base or []]
    for item in over or []:
        index = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if index is None:
            result.append(dict(item))
        else:
            result[index] = dict(item)
    return result


def _first(*values: Any) -> Any:
    """The first value that is set (not None and not empty)."""
    return next((v for v in values if v), None)


def effective_pod(sc: SuperCluster, cluster: Cluster) -> PodSettings:
    """The pod settings one member renders (module docstring: precedence)."""
    a, b, spec = sc.spec.pod, cluster.spec.pod, cluster.spec
    secrets = merge_named(
        [s.model_dump() for s in a.image_pull_secrets or []],
        [s.model_dump() for s in b.image_pull_secrets or []],
    )
    return PodSettings.model_construct(
        image_pull_secrets=secrets or None,
        priority_class_name=_first(b.priority_class_name, a.priority_class_name),
        service_account_name=_first(b.service_account_name, a.service_account_name),
        env=merge_named(a.env, b.env),
        extra_volumes=merge_named(a.extra_volumes, b.extra_volumes),
        extra_volume_mounts=merge_named(a.extra_volume_mounts, b.extra_volume_mounts, "mountPath"),
        sidecars=merge_named(a.sidecars, b.sidecars),
        init_containers=merge_named(a.init_containers, b.init_containers),
        resources=_first(spec.resources, b.resources, a.resources),
        node_selector=_first(spec.node_selector, b.node_selector, a.node_selector),
        affinity=_first(spec.affinity, b.affinity, a.affinity),
        tolerations=_first(spec.tolerations, b.tolerations, a.tolerations),
        annotations={**(a.annotations or {}), **(b.annotations or {}), **spec.pod_annotations},
        labels={**(a.labels or {}), **(b.labels or {}), **spec.pod_labels},
    )


def _ops(ops: list[JsonPatchOp] | None) -> list[dict[str, Any]]:
    return [op.model_dump(by_alias=True, exclude_none=False) for op in ops or []]


def _patched(obj: dict[str, Any], what: str, patches: list[tuple[str, Any, bool]]) -> Any:
    """`obj` with each (where, patch, is_json) applied in order; KnobError names the culprit."""
    for where, patch, is_json in patches:
        if not patch:
            continue
        if deeper_than(patch):
            raise KnobError(
                INVALID_PATCH, f"{where} nests deeper than {MAX_DEPTH} levels (no object does)"
            )
        try:
            obj = json_patch(obj, patch) if is_json else strategic_merge(obj, patch)
        except PatchError as exc:
            raise KnobError(INVALID_PATCH, f"{where} cannot patch the {what}: {exc}") from None
    return obj


# ------------------------------------------------------------------------------- pod template

_POD_PATCHES = "the pod template patches (spec.podTemplatePatch, spec.podTemplateJsonPatch)"


def _shaped(value: Any, kind: type, where: str) -> Any:
    """`value` (an empty `kind` when absent) if it has the type Kubernetes gives `where`.

    Patches may write any JSON anywhere; a wrong type must be a refusal naming the field, not
    an AttributeError in the checks below or in the config check that reads the server env.
    """
    if value is None:
        return kind()
    if not isinstance(value, kind):
        wanted = "an object" if kind is dict else "a list"
        raise KnobError(
            INVALID_PATCH, f"{_POD_PATCHES} make {where} {type(value).__name__}, not {wanted}"
        )
    return value


def _named_item(item: Any, where: str) -> None:
    """Containers and env variables are objects with a string name (the API server says so too,
    but later than the checks that read them)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise KnobError(INVALID_PATCH, f"{_POD_PATCHES} leave {where} without a name")


def patch_pod_template(sc: SuperCluster, cluster: Cluster, template: dict[str, Any]) -> dict:
    """The pod template with both kinds' patches applied, checked to still be ours."""
    result = _patched(
        template,
        "pod template",
        [
            ("SuperCluster spec.podTemplatePatch", sc.spec.pod_template_patch, False),
            ("Cluster spec.podTemplatePatch", cluster.spec.pod_template_patch, False),
            ("SuperCluster spec.podTemplateJsonPatch", _ops(sc.spec.pod_template_json_patch), True),
            ("Cluster spec.podTemplateJsonPatch", _ops(cluster.spec.pod_template_json_patch), True),
        ],
    )
    metadata = _shaped(result.get("metadata"), dict, "metadata")
    have = _shaped(metadata.get("labels"), dict, "metadata.labels")
    want = template["metadata"]["labels"]
    lost = sorted(
        k for k, v in want.items() if k.startswith("app.kubernetes.io/") and have.get(k) != v
    )
    if lost:
        raise KnobError(INVALID_PATCH, f"{_POD_PATCHES} change the operator's labels {lost}")
    containers = _shaped(
        _shaped(result.get("spec"), dict, "spec").get("containers"), list, "spec.containers"
    )
    for i, container in enumerate(containers):
        where = f"spec.containers[{i}]"
        _named_item(container, where)
        for j, var in enumerate(_shaped(container.get("env"), list, f"{where}.env")):
            _named_item(var, f"{where}.env[{j}]")
    ours = template["spec"]["containers"][0]["name"]
    if ours not in [c["name"] for c in containers]:
        raise KnobError(INVALID_PATCH, f"{_POD_PATCHES} remove the {ours} container")
    return result


# ----------------------------------------------------------------------------------- services


def _service_overrides(sc: SuperCluster, cluster: Cluster, which: str) -> list[ServiceOverrides]:
    return [getattr(sc.spec.services, which), getattr(cluster.spec.services, which)]


def customise_service(
    sc: SuperCluster, cluster: Cluster, which: str, service: dict[str, Any]
) -> dict[str, Any]:
    """A rendered Service (`which`: client, headless, gateway) with its settings and patches."""
    layers = _service_overrides(sc, cluster, which)
    meta = service["metadata"]
    annotations = {**(meta.get("annotations") or {})}
    extra_labels: dict[str, str] = {}
    for layer in layers:
        annotations.update(layer.annotations or {})
        extra_labels.update(layer.labels or {})
    if annotations:
        meta["annotations"] = annotations
    meta["labels"] = {**extra_labels, **meta["labels"]}
    if which == "client":
        _client_settings(sc, cluster, service)
    where = {"client": "client", "headless": "headless", "gateway": "gateway"}[which]
    return _patched(
        service,
        f"{where} Service",
        [
            (f"SuperCluster spec.services.{which}.patch", layers[0].patch, False),
            (f"Cluster spec.services.{which}.patch", layers[1].patch, False),
            (f"SuperCluster spec.services.{which}.jsonPatch", _ops(layers[0].json_patch), True),
            (f"Cluster spec.services.{which}.jsonPatch", _ops(layers[1].json_patch), True),
        ],
    )


def _client_settings(sc: SuperCluster, cluster: Cluster, service: dict[str, Any]) -> None:
    a, b = sc.spec.services.client, cluster.spec.services.client
    spec = service["spec"]
    kind = b.type or a.type or "ClusterIP"
    spec["type"] = kind
    wanted = b.ports or a.ports or ["client"]
    ports = sc.spec.ports
    spec["ports"] = [
        {
            "name": name,
            "port": getattr(ports, name),
            "targetPort": name,
            "protocol": "TCP",
            "appProtocol": {"client": "nats", "monitor": "http"}[name],
        }
        for name in dict.fromkeys(wanted)
    ]
    node_port = b.node_port if b.node_port is not None else a.node_port
    policy = b.external_traffic_policy or a.external_traffic_policy
    lb_class = b.load_balancer_class or a.load_balancer_class
    ranges = b.load_balancer_source_ranges or a.load_balancer_source_ranges
    needs = [
        ("nodePort", node_port is not None, ("NodePort", "LoadBalancer")),
        ("externalTrafficPolicy", bool(policy), ("NodePort", "LoadBalancer")),
        ("loadBalancerClass", bool(lb_class), ("LoadBalancer",)),
        ("loadBalancerSourceRanges", bool(ranges), ("LoadBalancer",)),
    ]
    for field, given, types in needs:
        if given and kind not in types:
            raise KnobError(
                INVALID_SERVICE,
                f"spec.services.client.{field} needs type {' or '.join(types)} (the client "
                f"Service of {cluster.name} is {kind})",
            )
    if node_port is not None:
        # The client port, wherever the user listed it (ports[0] gave it to monitor for
        # ports: [monitor, client]).
        client = [p for p in spec["ports"] if p["name"] == "client"]
        if not client:
            raise KnobError(
                INVALID_SERVICE,
                "spec.services.client.nodePort is the client port's: list client in "
                f"spec.services.client.ports (the client Service of {cluster.name} exposes "
                f"{[p['name'] for p in spec['ports']]})",
            )
        client[0]["nodePort"] = node_port
    if policy:
        spec["externalTrafficPolicy"] = policy
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    if ranges:
        spec["loadBalancerSourceRanges"] = list(ranges)


# ---------------------------------------------------------------------------------- metrics


def _effective(
    a: PodMonitorSpec | ServiceMonitorSpec, b: PodMonitorSpec | ServiceMonitorSpec
) -> PodMonitorSpec | None:
    """Monitor settings of a member (`b`) over the SuperCluster's (`a`); None: none wanted."""
    enabled = b.enabled if b.enabled is not None else bool(a.enabled)
    if not enabled:
        return None
    return PodMonitorSpec.model_construct(
        enabled=True,
        labels={**(a.labels or {}), **(b.labels or {})},
        interval=b.interval or a.interval,
        scrape_timeout=b.scrape_timeout or a.scrape_timeout,
    )


def effective_pod_monitor(sc: SuperCluster, cluster: Cluster) -> PodMonitorSpec | None:
    """The PodMonitor settings of one member, or None when it wants none."""
    return _effective(sc.spec.metrics.pod_monitor, cluster.spec.metrics.pod_monitor)


def effective_service_monitor(sc: SuperCluster, cluster: Cluster) -> PodMonitorSpec | None:
    """The ServiceMonitor settings of one member, or None when it wants none."""
    return _effective(sc.spec.metrics.service_monitor, cluster.spec.metrics.service_monitor)


def metrics_prefix(sc: SuperCluster, cluster: Cluster) -> str | None:
    """The metric name prefix a member's monitors ask for (the Cluster's wins)."""
    return cluster.spec.metrics.prefix or sc.spec.metrics.prefix


def _metrics_endpoint(
    settings: PodMonitorSpec, scheme: str, prefix: str | None = None
) -> dict[str, Any]:
    """One scrape endpoint: /metrics on the port named monitor (`?prefix=` when one is set)."""
    endpoint: dict[str, Any] = {"port": "monitor", "path": METRICS_PATH}
    if prefix:
        endpoint["params"] = {"prefix": [prefix]}
    if settings.interval:
        endpoint["interval"] = settings.interval
    if settings.scrape_timeout:
        endpoint["scrapeTimeout"] = settings.scrape_timeout
    if scheme == "https":
        endpoint["scheme"] = "https"
        endpoint["tlsConfig"] = {"insecureSkipVerify": True}
    return endpoint


def service_monitor(sc: SuperCluster, cluster: Cluster, namespace: str, scheme: str) -> dict | None:
    """A ServiceMonitor scraping /metrics on the monitor port through the Cluster's Services.

    It selects the Cluster's Services by label; only the headless Service has a port named
    `monitor` (the client and gateway Services do not), so each server is scraped once, and,
    the headless Service publishing not-ready addresses, also while it starts. TLS as for the
    PodMonitor.
    """
    settings = effective_service_monitor(sc, cluster)
    if settings is None:
        return None
    from scoperator.naming import selector_labels

    return {
        "apiVersion": PODMONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": {
            "name": ClusterNames(cluster.name).service_monitor,
            "namespace": namespace,
            "labels": {**(settings.labels or {}), **labels(sc.name, cluster.name)},
        },
        "spec": {
            "selector": {
                "matchLabels": {**selector_labels(cluster.name), LABEL_SUPERCLUSTER: sc.name}
            },
            "podTargetLabels": [LABEL_SUPERCLUSTER, LABEL_CLUSTER],
            "endpoints": [_metrics_endpoint(settings, scheme, metrics_prefix(sc, cluster))],
        },
    }


def pod_monitor(sc: SuperCluster, cluster: Cluster, namespace: str, scheme: str) -> dict | None:
    """A PodMonitor scraping /metrics on the monitor port of every server of `cluster`.

    With https monitoring, Prometheus dials pod IPs, which the server certificates do not
    name: the scrape skips verification (the data is metrics, the channel still encrypted).
    """
    settings = effective_pod_monitor(sc, cluster)
    if settings is None:
        return None
    from scoperator.naming import selector_labels

    endpoint = _metrics_endpoint(settings, scheme, metrics_prefix(sc, cluster))
    return {
        "apiVersion": PODMONITOR_API,
        "kind": "PodMonitor",
        "metadata": {
            "name": ClusterNames(cluster.name).pod_monitor,
            "namespace": namespace,
            "labels": {**(settings.labels or {}), **labels(sc.name, cluster.name)},
        },
        "spec": {
            "selector": {"matchLabels": selector_labels(cluster.name)},
            "podTargetLabels": [LABEL_SUPERCLUSTER, LABEL_CLUSTER],
            "podMetricsEndpoints": [endpoint],
        },
    }

"""Models of the settings teams reach for when they come from the NATS Helm chart.

They live apart from models.py (the topology: ports, accounts, TLS) because they only shape the
Kubernetes objects and the config text: metrics (a PodMonitor), escape hatches (a raw config
fragment, strategic-merge and JSON patches of the pod template and of each Service), pod
settings (pull secrets, service account, env, extra volumes, sidecars, ...) and the toolbox.

Every field is optional on both kinds: the SuperCluster's value is the default of its members,
a Cluster's value overrides it (`effective_*` functions in knobs.py do the folding, with the
precedence documented there and in the README).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from scoperator.models_base import (
    DNS_SUBDOMAIN_PATTERN,
    DURATION_PATTERN,
    Model,
    preserve_unknown,
)

# The nats-box image (it has the `nats` CLI; our scserver image does not).
DEFAULT_TOOLBOX_IMAGE = "natsio/nats-box:0.14.5"
# Names the operator uses in the pod; user volumes, env and containers must not take them.
RESERVED_VOLUMES = frozenset({"config", "tmp"})
RESERVED_ENV = frozenset({"POD_NAME"})
RESERVED_CONTAINERS = frozenset({"scserver"})
# Mount points of the server container (naming.CONFIG_DIR, the tmp emptyDir): a user mount there
# or below would shadow the config or fail in the read-only projected volume at pod start.
RESERVED_MOUNT_PATHS = ("/etc/scserver", "/tmp")

Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]


class PodMonitorSpec(Model):
    """A monitoring.coreos.com/v1 PodMonitor scraping /metrics on every server's monitor port."""

    enabled: bool | None = Field(
        default=None, description="Create a PodMonitor per Cluster (default false)."
    )
    labels: dict[str, str] | None = Field(
        default=None,
        description="Labels of the PodMonitor (what your Prometheus selects, e.g. release).",
    )
    interval: Duration | None = Field(default=None, description="Scrape interval, e.g. 30s.")
    scrape_timeout: Duration | None = None


class ServiceMonitorSpec(Model):
    """A monitoring.coreos.com/v1 ServiceMonitor scraping /metrics through the headless Service
    (the only Service of a Cluster with the monitor port), for Prometheus setups that select
    ServiceMonitors only."""

    enabled: bool | None = Field(
        default=None, description="Create a ServiceMonitor per Cluster (default false)."
    )
    labels: dict[str, str] | None = Field(
        default=None,
        description="Labels of the ServiceMonitor (what your Prometheus selects, e.g. release).",
    )
    interval: Duration | None = Field(default=None, description="Scrape interval, e.g. 30s.")
    scrape_timeout: Duration | None = None


class MetricsSpec(Model):
    """Server metrics: the servers serve /metrics on the monitoring port themselves."""

    pod_monitor: PodMonitorSpec = Field(default_factory=PodMonitorSpec)
    service_monitor: ServiceMonitorSpec = Field(default_factory=ServiceMonitorSpec)
    prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_]+$",
        description="Metric name prefix the monitors ask /metrics for (`params: {prefix: [..]}`): "
        "`nats` gives the names of the NATS Helm chart's exporter (nats_varz_*), so its "
        "dashboards work unchanged; default gnatsd (the exporter's own default).",
    )


def _free_form_without_default(schema: dict[str, Any]) -> None:
    """Any JSON value; no `default: null` in the CRD (the API server would store it)."""
    schema.pop("default", None)
    schema["x-kubernetes-preserve-unknown-fields"] = True


class JsonPatchOp(Model):
    """One RFC 6902 operation (paths are JSON pointers into the patched object)."""

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str = Field(pattern=r"^(/.*)?$")
    value: Any = Field(
        default=None,
        description="Value of add/replace/test.",
        json_schema_extra=_free_form_without_default,
    )
    from_: str | None = Field(default=None, alias="from", pattern=r"^(/.*)?$")

    @model_validator(mode="after")
    def _needs(self) -> JsonPatchOp:
        if self.op in ("move", "copy") and self.from_ is None:
            raise ValueError(f"JSON patch op {self.op} needs from")
        # RFC 6902: add, replace and test carry a value; a missing one (not an explicit null)
        # would otherwise write null where the user forgot the value.
        if self.op in ("add", "replace", "test") and "value" not in self.model_fields_set:
            raise ValueError(f"JSON patch op {self.op} needs value (write null to set null)")
        return self


class ServiceOverrides(Model):
    """Metadata and patches of one Service the operator renders."""

    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    patch: dict[str, Any] | None = Field(
        default=None,
        **preserve_unknown(
            "Strategic-merge patch of the Service (ports merge by port; `$patch: delete` / "
            "`$patch: replace` directives work as in kubectl)."
        ),
    )
    json_patch: list[JsonPatchOp] | None = Field(
        default=None, description="RFC 6902 operations, applied after `patch`."
    )


class ClientService(ServiceOverrides):
    """The client Service (`<cluster>`): type, ports and load balancer settings."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None
    ports: list[Literal["client", "monitor"]] | None = Field(
        default=None, description="Ports it exposes (default: client)."
    )
    node_port: int | None = Field(
        default=None, ge=30000, le=32767, description="nodePort of the client port."
    )
    load_balancer_class: str | None = Field(default=None, min_length=1)
    load_balancer_source_ranges: list[str] | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None


class ServicesSpec(Model):
    """Settings and patches of the client, headless and gateway Services."""

    client: ClientService = Field(default_factory=ClientService)
    headless: ServiceOverrides = Field(default_factory=ServiceOverrides)
    gateway: ServiceOverrides = Field(default_factory=ServiceOverrides)


class LocalObjectReference(Model):
    """A Secret in the same namespace (imagePullSecrets)."""

    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)


def _named(items: list[dict[str, Any]] | None, what: str, reserved: frozenset[str]) -> None:
    if items is None:
        return
    seen: set[str] = set()
    for item in items:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"every {what} needs a name")
        if name in reserved:
            raise ValueError(f"{what} name {name!r} is used by the operator")
        if name in seen:
            raise ValueError(f"duplicate {what} name {name!r}")
        seen.add(name)


class PodSettings(Model):
    """Server pod settings (SuperCluster: defaults; Cluster: overrides, lists merged by name)."""

    image_pull_secrets: list[LocalObjectReference] | None = None
    priority_class_name: str | None = Field(default=None, min_length=1)
    service_account_name: str | None = Field(
        default=None, pattern=DNS_SUBDOMAIN_PATTERN, max_length=253
    )
    env: list[dict[str, Any]] | None = Field(
        default=None, **preserve_unknown("core/v1 EnvVar list for the server container.")
    )
    extra_volumes: list[dict[str, Any]] | None = Field(
        default=None, **preserve_unknown("core/v1 Volumes added to the pod.")
    )
    extra_volume_mounts: list[dict[str, Any]] | None = Field(
        default=None, **preserve_unknown("core/v1 VolumeMounts of the server container.")
    )
    sidecars: list[dict[str, Any]] | None = Field(
        default=None, **preserve_unknown("core/v1 Containers run beside the server.")
    )
    init_containers: list[dict[str, Any]] | None = Field(
        default=None, **preserve_unknown("core/v1 Containers run before the server.")
    )
    resources: dict[str, Any] | None = Field(
        default=None, **preserve_unknown("core/v1 ResourceRequirements (Cluster field wins).")
    )
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = Field(
        default=None, **preserve_unknown("core/v1 Affinity (Cluster field wins).")
    )
    tolerations: list[dict[str, Any]] | None = Field(
        default=None, **preserve_unknown("core/v1 Tolerations (Cluster field wins).")
    )
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None

    @model_validator(mode="after")
    def _names(self) -> PodSettings:
        _named(self.env, "env variable", RESERVED_ENV)
        _named(self.extra_volumes, "extra volume", RESERVED_VOLUMES)
        _named(self.sidecars, "sidecar", RESERVED_CONTAINERS)
        _named(self.init_containers, "init container", RESERVED_CONTAINERS)
        for mount in self.extra_volume_mounts or []:
            path = mount.get("mountPath")
            if not mount.get("name") or not isinstance(path, str) or not path:
                raise ValueError("every extra volume mount needs name and mountPath")
            for reserved in RESERVED_MOUNT_PATHS:
                if path.rstrip("/") == reserved or path.startswith(reserved + "/"):
                    raise ValueError(
                        f"extra volume mount {path!r} is at or below {reserved}, which the "
                        "server container uses"
                    )
        return self


class ToolboxSpec(Model):
    """A nats-box style Deployment `<supercluster>-toolbox` with a NATS context per cluster."""

    enabled: bool = False
    image: str = Field(
        default=DEFAULT_TOOLBOX_IMAGE,
        min_length=1,
        description="An image with the `nats` CLI and a shell (nats-box by default).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    resources: dict[str, Any] | None = Field(
        default=None, **preserve_unknown("core/v1 ResourceRequirements of the toolbox.")
    )


class ConfigOverrides(Model):
    """A Cluster's config escape hatch (the SuperCluster's lives in its `config`)."""

    merge: dict[str, Any] | None = Field(
        default=None,
        **preserve_unknown(
            "Raw server config merged into the rendered config (deep for the blocks the "
            "operator renders, e.g. cluster, gateway; other values replace). Wins over the "
            "SuperCluster's config.merge."
        ),
    )


class KnobsMixin(Model):
    """Fields shared by SuperClusterSpec and ClusterSpec (defaults there, overrides here)."""

    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    services: ServicesSpec = Field(default_factory=ServicesSpec)
    pod: PodSettings = Field(default_factory=PodSettings)
    pod_template_patch: dict[str, Any] | None = Field(
        default=None,
        **preserve_unknown(
            "Strategic-merge patch of the StatefulSet's pod template ({metadata, spec}): "
            "containers, volumes, env merge by name; applied after every other setting."
        ),
    )
    pod_template_json_patch: list[JsonPatchOp] | None = Field(
        default=None,
        description="RFC 6902 operations on the pod template, applied after podTemplatePatch.",
    )

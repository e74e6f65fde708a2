"""Pydantic models of the `SuperCluster` and `Cluster` custom resources.

These models are the single source of truth: the operator validates every spec with them before
rendering, and `crds.py` turns their JSON schema into the CRD schemas, so what the API server
accepts and what the operator understands cannot drift apart.

JSON uses camelCase (Kubernetes convention) through aliases; Python code uses snake_case.
Free-form Kubernetes types (affinity, resources, tolerations, ...) are kept as plain dicts and
marked so that the CRD preserves their unknown fields: the API server validates them when the
StatefulSet is created, and we do not want to vendor the whole core/v1 schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scoperator.account_links import check_accounts
from scoperator.knob_models import ConfigOverrides, KnobsMixin, ToolboxSpec
from scoperator.models_base import (
    DNS_SUBDOMAIN_PATTERN,
    DURATION_PATTERN,
    Model,
    list_map,
    preserve_unknown,
)

GROUP = "supercluster.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_IMAGE = "ghcr.io/supercluster/scserver:0.1.0"
DEFAULT_SYSTEM_ACCOUNT = "$SYS"

# A Cluster's name becomes the StatefulSet name, Service names (`<name>-headless`,
# `<name>-gateway`: DNS-1035 labels, so it must start with a letter), the cluster name and the
# gateway name. 40 characters leaves room for the longest suffix and the pod ordinal.
CLUSTER_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
CLUSTER_NAME_MAX = 40
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# Account and user names end up quoted in the server config; still keep them to printable,
# whitespace-free tokens so they are easy to type in client credentials.
ACCOUNT_NAME_PATTERN = r"^\$?[A-Za-z0-9][A-Za-z0-9_.-]*$"
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
# A gateway URL as nats-server accepts it in `gateways[].urls`.
GATEWAY_URL_PATTERN = r"^(nats|tls)://[^\s/:]+(:[0-9]{1,5})?$"
# host:port for `advertise`.
HOSTPORT_PATTERN = r"^[^\s/:]+:[0-9]{1,5}$"

ClusterName = Annotated[
    str, Field(pattern=CLUSTER_NAME_PATTERN, min_length=1, max_length=CLUSTER_NAME_MAX)
]
Port = Annotated[int, Field(ge=1, le=65535)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]


# --------------------------------------------------------------------------- SuperCluster spec


class Ports(Model):
    """Container ports of every server; shared by all members so that seed URLs agree."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.client != self.cluster && self.client != self.gateway"
                    " && self.client != self.monitor && self.cluster != self.gateway"
                    " && self.cluster != self.monitor && self.gateway != self.monitor",
                    "message": "ports must be distinct",
                }
            ]
        }
    )

    client: Port = 4222
    cluster: Port = 6222
    gateway: Port = 7222
    monitor: Port = 8222

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        values = [self.client, self.cluster, self.gateway, self.monitor]
        if len(set(values)) != len(values):
            raise ValueError("ports must be distinct")
        return self


class SecretKeyRef(Model):
    """A key of a Secret in the resource's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)
    key: str = Field(pattern=SECRET_KEY_PATTERN, max_length=253)


class User(Model):
    """A user of an account; the password is read from a Secret, never written in a spec."""

    user: str = Field(pattern=USER_NAME_PATTERN, max_length=128)
    password_secret_ref: SecretKeyRef


SUBJECT_PATTERN = r"^[^\s]+$"
Subject = Annotated[str, Field(pattern=SUBJECT_PATTERN, max_length=512)]


class AccountExport(Model):
    """A stream or service other accounts may import (nats-server `exports` entry)."""

    stream: Subject | None = None
    service: Subject | None = None
    accounts: list[Annotated[str, Field(pattern=ACCOUNT_NAME_PATTERN)]] | None = Field(
        default=None, description="Accounts allowed to import it; absent means every account."
    )
    response_type: Literal["Singleton", "Stream", "Chunked"] | None = None
    response_threshold: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AccountExport:
        if (self.stream is None) == (self.service is None):
            raise ValueError("an export names exactly one of stream or service")
        if self.stream is not None and (self.response_type or self.response_threshold):
            raise ValueError("responseType/responseThreshold apply to service exports only")
        return self


class ImportSource(Model):
    """The exporting account and the exported subject."""

    account: str = Field(pattern=ACCOUNT_NAME_PATTERN, max_length=128)
    subject: Subject


class AccountImport(Model):
    """A stream or service imported from another account (nats-server `imports` entry)."""

    stream: ImportSource | None = None
    service: ImportSource | None = None
    to: Subject | None = Field(default=None, description="Local subject (rewrites the export's).")
    prefix: Subject | None = Field(default=None, description="Stream imports: local prefix.")

    @model_validator(mode="after")
    def _one_kind(self) -> AccountImport:
        if (self.stream is None) == (self.service is None):
            raise ValueError("an import names exactly one of stream or service")
        if self.prefix and (self.service is not None or self.to):
            raise ValueError("prefix applies to stream imports without `to` only")
        return self


class MappingDestination(Model):
    """One weighted destination of a subject mapping."""

    subject: Subject
    weight: int = Field(default=100, ge=0, le=100)
    cluster: str | None = Field(default=None, description="Only in this cluster.")


class SubjectMapping(Model):
    """Publishes to `source` go to one of `destinations` (nats-server `mappings`)."""

    source: Subject
    destinations: list[MappingDestination] = Field(min_length=1)


class Account(Model):
    """An isolated subject namespace with its users."""

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN, max_length=128)
    users: list[User] = Field(default_factory=list)
    exports: list[AccountExport] = Field(default_factory=list)
    imports: list[AccountImport] = Field(default_factory=list)
    mappings: list[SubjectMapping] = Field(
        default_factory=list, json_schema_extra=list_map("source")
    )


class ExternalGateway(Model):
    """A cluster of the supercluster that runs elsewhere (another Kubernetes cluster, VMs)."""

    name: ClusterName = Field(description="Its gateway name (= its cluster name).")
    urls: list[Annotated[str, Field(pattern=GATEWAY_URL_PATTERN)]] = Field(
        min_length=1, description="Gateway URLs to dial, e.g. nats://gw.west.example.net:7222."
    )
    credentials_secret: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
        description="Secret with keys `gateway-user` and `gateway-password`: the gateway "
        "credentials of the remote side (its `<supercluster>-credentials` Secret, copied "
        "here). Without it, servers present this SuperCluster's own gateway credentials.",
    )
    ca_secret: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
        description="Secret whose `ca.crt` holds the CA bundle the remote side's gateway "
        "certificates are signed by; added to the gateways' trust bundle.",
    )


class ServerConfig(Model):
    """Server settings worth exposing; every member renders the same values."""

    max_payload: int | None = Field(
        default=None, ge=1, le=64 * 1024 * 1024, description="Bytes; server default 1MiB."
    )
    ping_interval: Duration | None = None
    ping_max: int | None = Field(default=None, ge=1)
    write_deadline: Duration | None = None
    lame_duck_duration: Duration = Field(
        default="30s", description="How long a terminating server drains its clients."
    )
    lame_duck_grace_period: Duration = Field(
        default="10s", description="Wait before lame duck starts closing clients."
    )
    debug: bool = False
    trace: bool = False
    no_auth_user: str | None = Field(
        default=None,
        pattern=USER_NAME_PATTERN,
        description="User that clients without credentials are logged in as.",
    )
    merge: dict[str, Any] | None = Field(
        default=None,
        **preserve_unknown(
            "Raw server config merged into the rendered config of every member (deep for the "
            "blocks the operator renders, e.g. cluster, gateway; other values replace). Checked "
            "with the server's config loader before it is applied."
        ),
    )


class GatewayOptions(Model):
    """Options of the gateway block shared by all members."""

    reject_unknown_cluster: bool = Field(
        default=False,
        description="Refuse gateways whose cluster is neither a member nor an external gateway.",
    )


class ManagedTLS(Model):
    """Lifetimes of the CA and certificates the operator issues (mode Managed)."""

    ca_lifetime: Duration = Field(
        default="8760h",
        description="Validity of the SuperCluster's CA; rotated at two thirds of it.",
    )
    cert_lifetime: Duration = Field(
        default="2160h",
        description="Validity of each Cluster's server certificate; renewed at two thirds of "
        "it (and never valid beyond the CA).",
    )
    ca_rotation_delay: Duration = Field(
        default="5m",
        description="During a CA rotation, how long the bundle with old and new CA is out "
        "before certificates are issued by the new CA (time for every server to reload it).",
    )


class ClusterSecret(Model):
    """The Secret (tls.crt, tls.key, ca.crt) holding one Cluster's certificate."""

    cluster: ClusterName
    secret_name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)


class IssuerRef(Model):
    """A cert-manager issuer: the operator creates `Certificate` objects that it signs."""

    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)
    kind: Literal["Issuer", "ClusterIssuer"] = "Issuer"
    group: str = "cert-manager.io"


class ClientTLS(Model):
    """TLS on the client port (and https for monitoring); off by default."""

    enabled: bool = Field(default=False, description="Clients must use TLS.")
    verify: bool = Field(
        default=False, description="Clients must also present a certificate signed by the CA."
    )


class TLSSpec(Model):
    """Certificates of routes and gateways (mutual TLS), and optionally of clients."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.issuerRef) || self.mode == 'Secrets'",
                    "message": "issuerRef needs mode Secrets",
                },
                {
                    "rule": "!has(self.monitoring) || self.monitoring == 'HTTP' || "
                    "(has(self.clients) && has(self.clients.enabled) && self.clients.enabled "
                    "&& !(has(self.clients.verify) && self.clients.verify))",
                    "message": "monitoring HTTPS needs clients.enabled and not clients.verify",
                },
            ]
        }
    )

    mode: Literal["Managed", "Secrets", "Disabled"] = Field(
        default="Managed",
        description="Managed: the operator runs a CA and issues each Cluster's certificate. "
        "Secrets: certificates come from Secrets you name (or cert-manager with issuerRef). "
        "Disabled: plaintext routes and gateways.",
    )
    managed: ManagedTLS = Field(default_factory=ManagedTLS)
    secret_name: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
        description="Mode Secrets: one Secret shared by every Cluster (SANs must cover all).",
    )
    cluster_secrets: list[ClusterSecret] = Field(
        default_factory=list,
        json_schema_extra=list_map("cluster"),
        description="Mode Secrets: a Secret per Cluster (wins over secretName).",
    )
    issuer_ref: IssuerRef | None = Field(
        default=None,
        description="Mode Secrets: create cert-manager Certificates writing those Secrets "
        "(default name `<cluster>-tls`) with the right SANs.",
    )
    clients: ClientTLS = Field(default_factory=ClientTLS)
    monitoring: Literal["HTTP", "HTTPS"] = Field(
        default="HTTP",
        description="HTTPS: the monitoring port serves https with the client TLS settings "
        "(needs clients.enabled; probes present no certificate, so not with clients.verify).",
    )
    timeout: float = Field(default=2.0, ge=0.1, le=60, description="TLS handshake timeout, s.")

    @property
    def enabled(self) -> bool:
        """Whether routes and gateways use TLS."""
        return self.mode != "Disabled"

    def cluster_secret(self, cluster: str) -> str | None:
        """Name of the Secret with `cluster`'s certificate (None in mode Disabled)."""
        if self.mode == "Disabled":
            return None
        for entry in self.cluster_secrets:
            if entry.cluster == cluster:
                return entry.secret_name
        if self.mode == "Secrets" and self.secret_name:
            return self.secret_name
        return f"{cluster}-tls"

    @model_validator(mode="after")
    def _consistent(self) -> TLSSpec:
        if self.issuer_ref is not None and self.mode != "Secrets":
            raise ValueError("issuerRef needs mode Secrets")
        if self.mode != "Secrets" and (self.secret_name or self.cluster_secrets):
            raise ValueError("secretName and clusterSecrets need mode Secrets")
        if self.clients.enabled and self.mode == "Disabled":
            raise ValueError("clients.enabled needs TLS (mode Managed or Secrets)")
        if self.monitoring == "HTTPS" and not self.clients.enabled:
            raise ValueError("monitoring HTTPS needs clients.enabled (it uses the client TLS)")
        if self.monitoring == "HTTPS" and self.clients.verify:
            raise ValueError(
                "monitoring HTTPS cannot be used with clients.verify: probes have no certificate"
            )
        _require_unique("clusterSecrets cluster", [c.cluster for c in self.cluster_secrets])
        return self


class SuperClusterSpec(KnobsMixin):
    """What all member Clusters share: image, ports, accounts, external gateways; and the
    defaults of the pod, Service, metrics and patch settings (knob_models.py)."""

    image: str = Field(default=DEFAULT_IMAGE, min_length=1)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    server_command: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["scserver"],
        min_length=1,
        description="Server executable in the image; it gets `-c <config>` appended. The "
        "server must reload on config change and enter lame duck mode on SIGUSR2.",
    )
    ports: Ports = Field(default_factory=Ports)
    accounts: list[Account] = Field(default_factory=list, json_schema_extra=list_map("name"))
    system_account: str = Field(
        default=DEFAULT_SYSTEM_ACCOUNT,
        pattern=ACCOUNT_NAME_PATTERN,
        description="Account used for $SYS traffic; its users may be listed under accounts.",
    )
    external_gateways: list[ExternalGateway] = Field(
        default_factory=list, json_schema_extra=list_map("name")
    )
    config: ServerConfig = Field(default_factory=ServerConfig)
    gateway: GatewayOptions = Field(default_factory=GatewayOptions)
    tls: TLSSpec = Field(default_factory=TLSSpec)
    toolbox: ToolboxSpec = Field(default_factory=ToolboxSpec)

    @model_validator(mode="after")
    def _unique_names(self) -> SuperClusterSpec:
        _require_unique("account", [a.name for a in self.accounts])
        users = [u.user for a in self.accounts for u in a.users]
        # nats-server requires user names to be unique across all accounts.
        _require_unique("user", users)
        # Each user becomes a config variable; two names must not map to the same variable.
        _require_unique("user (after mapping to a variable name)", [password_var(u) for u in users])
        _require_unique("external gateway", [g.name for g in self.external_gateways])
        declared = {a.name for a in self.accounts}
        check_accounts(self.accounts)  # exports, imports, mappings (scoperator.account_links)
        if self.system_account != DEFAULT_SYSTEM_ACCOUNT and self.system_account not in declared:
            raise ValueError(f"systemAccount {self.system_account!r} is not a declared account")
        if self.config.no_auth_user is not None and self.config.no_auth_user not in users:
            raise ValueError(
                f"noAuthUser {self.config.no_auth_user!r} is not a user of any account"
            )
        return self


def password_var(user: str) -> str:
    """The config variable that holds `user`'s password (defined in the credentials include)."""
    return "SC_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def _require_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name {name!r}")
        seen.add(name)


# --------------------------------------------------------------------------------- Cluster spec


class GatewayExposure(Model):
    """How this cluster's gateway is reached by the other clusters of the supercluster.

    Headless (default): pods are dialled by their in-cluster DNS names; enough when every member
    runs in this Kubernetes cluster. ClusterIP/NodePort/LoadBalancer add a `<cluster>-gateway`
    Service; with `advertise`, servers tell remote gateways to dial that address instead of the
    pod IP (needed when the remote side is in another Kubernetes cluster).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.nodePort) || (has(self.type) && self.type == 'NodePort')",
                    "message": "nodePort is only valid with type NodePort",
                }
            ]
        }
    )

    type: Literal["Headless", "ClusterIP", "NodePort", "LoadBalancer"] = "Headless"
    advertise: str | None = Field(
        default=None,
        pattern=HOSTPORT_PATTERN,
        description="host:port that remote gateways should dial (LB address, node IP:nodePort).",
    )
    node_port: int | None = Field(default=None, ge=30000, le=32767)
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the gateway Service (cloud LB knobs)."
    )
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    load_balancer_source_ranges: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> GatewayExposure:
        if self.node_port is not None and self.type != "NodePort":
            raise ValueError("nodePort is only valid with type NodePort")
        if self.external_traffic_policy is not None and self.type not in (
            "NodePort",
            "LoadBalancer",
        ):
            raise ValueError("externalTrafficPolicy needs type NodePort or LoadBalancer")
        if self.load_balancer_source_ranges and self.type != "LoadBalancer":
            raise ValueError("loadBalancerSourceRanges needs type LoadBalancer")
        return self


class ClusterSpec(KnobsMixin):
    """One cluster of a supercluster: a StatefulSet of servers sharing a cluster/gateway name.

    The pod, Service, metrics and patch settings (knob_models.py) override the SuperCluster's.
    """

    super_cluster: str = Field(
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
        description="Name of the SuperCluster (same namespace) this cluster joins; immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "superCluster is immutable"}
            ]
        },
    )
    replicas: int = Field(default=1, ge=1, le=64)
    image: str | None = Field(default=None, min_length=1, description="Overrides the shared image.")
    resources: dict[str, Any] = Field(
        default_factory=dict, **preserve_unknown("core/v1 ResourceRequirements of the server.")
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    affinity: dict[str, Any] = Field(default_factory=dict, **preserve_unknown("core/v1 Affinity."))
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, **preserve_unknown("core/v1 Tolerations.")
    )
    topology_spread_constraints: list[dict[str, Any]] = Field(
        default_factory=list, **preserve_unknown("core/v1 TopologySpreadConstraints.")
    )
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    gateway: GatewayExposure = Field(default_factory=GatewayExposure)
    config: ConfigOverrides = Field(default_factory=ConfigOverrides)


# ------------------------------------------------------------------------------------- statuses


class Condition(Model):
    """The Kubernetes condition shape (metav1.Condition), kept as a list keyed by `type`."""

    type: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$", max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="Unknown", pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    observed_generation: int | None = Field(default=None, ge=0)


class ServerStatus(Model):
    """What the operator last read from one server's monitoring endpoint."""

    name: str
    healthy: bool = False
    version: str | None = None
    routes: int | None = Field(default=None, ge=0)
    outbound_gateways: int | None = Field(default=None, ge=0)
    inbound_gateways: int | None = Field(default=None, ge=0)
    config_load_time: str | None = None
    config_current: bool | None = Field(
        default=None,
        description="Whether the server loaded the config after it was last applied "
        "(configLoadTime not older than the Cluster's configAppliedTime).",
    )
    last_error: str | None = None


class GatewayLink(Model):
    """Connections from this cluster's servers to one remote cluster, summed over servers."""

    cluster: str
    outbound: int = Field(default=0, ge=0)
    inbound: int = Field(default=0, ge=0)
    connected: bool = False


class ClusterEndpoints(Model):
    """Addresses for humans and for the other side of a multi-Kubernetes supercluster."""

    client: str | None = None
    gateway: str | None = None
    gateway_advertised: str | None = None


class CertificateStatus(Model):
    """One certificate the servers use: where it is and when it expires."""

    secret: str
    cluster: str | None = None
    not_after: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    renew_after: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    fingerprint: str | None = None
    problem: str | None = None


class TLSStatus(Model):
    """Certificates of a SuperCluster (or one Cluster): CA fingerprints and expiry times."""

    mode: str
    ca_fingerprint: str | None = Field(
        default=None, description="SHA-256 fingerprint of the CA that issues certificates now."
    )
    ca_not_after: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    trusted_ca_fingerprints: list[str] = Field(
        default_factory=list,
        description="Every CA of the trust bundle (two during a CA rotation's overlap).",
    )
    certificates: list[CertificateStatus] = Field(default_factory=list)


class ClusterStatus(Model):
    """Observed state of a Cluster."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    replicas: int | None = Field(default=None, ge=0)
    ready_servers: int | None = Field(default=None, ge=0)
    connected_gateways: int | None = Field(
        default=None, ge=0, description="Remote clusters every server has an outbound link to."
    )
    servers: list[ServerStatus] = Field(default_factory=list)
    gateways: list[GatewayLink] = Field(default_factory=list)
    endpoints: ClusterEndpoints | None = None
    seed_urls: list[str] = Field(default_factory=list)
    config_applied_time: str | None = Field(
        default=None,
        description="When the servers' current config (ConfigMap, credentials Secret) was "
        "applied; servers loading it later run it.",
    )
    last_health_check_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    tls: TLSStatus | None = None


class MemberStatus(Model):
    """One cluster as seen from the SuperCluster: its readiness and whom it reaches."""

    name: str
    external: bool = False
    ready: bool = False
    ready_servers: int | None = Field(default=None, ge=0)
    replicas: int | None = Field(default=None, ge=0)
    connected_to: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)


class SuperClusterStatus(Model):
    """Observed state of a SuperCluster, aggregated from its members."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    clusters_total: int | None = Field(default=None, ge=0)
    clusters_ready: int | None = Field(default=None, ge=0)
    ready_servers: int | None = Field(default=None, ge=0)
    members: list[MemberStatus] = Field(default_factory=list)
    connectivity: dict[str, dict[str, bool]] = Field(
        default_factory=dict,
        description="connectivity[a][b]: every server of member a has a gateway link to b.",
    )
    tls: TLSStatus | None = None


# ------------------------------------------------------------------------------------ resources


class ObjectMeta(BaseModel):
    """The parts of metadata the operator reads; everything else is kept but ignored."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(BaseModel):
    """Common envelope of our custom resources (apiVersion/kind/metadata/spec/status)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    metadata: ObjectMeta

    @field_validator("api_version")
    @classmethod
    def _our_group(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(f"apiVersion must be {API_VERSION}, not {value}")
        return value

    @property
    def name(self) -> str:
        """metadata.name, the identity every derived name starts from."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """metadata.namespace (defaulted to `default` for files without one)."""
        return self.metadata.namespace


class SuperCluster(Resource):
    """A `SuperCluster` resource."""

    kind: Literal["SuperCluster"] = "SuperCluster"
    spec: SuperClusterSpec = Field(default_factory=SuperClusterSpec)
    status: SuperClusterStatus | None = None


class Cluster(Resource):
    """A `Cluster` resource; its name is the cluster name and gateway name."""

    kind: Literal["Cluster"] = "Cluster"
    spec: ClusterSpec
    status: ClusterStatus | None = None

    @model_validator(mode="after")
    def _name_is_cluster_name(self) -> Cluster:
        if not re.match(CLUSTER_NAME_PATTERN, self.name) or len(self.name) > CLUSTER_NAME_MAX:
            raise ValueError(
                f"Cluster name {self.name!r} must match {CLUSTER_NAME_PATTERN} and have at most "
                f"{CLUSTER_NAME_MAX} characters: it becomes Service names and the gateway name"
            )
        return self

    @property
    def image(self) -> str | None:
        """The image override, if any (the SuperCluster's image applies otherwise)."""
        return self.spec.image


# ------------------------------------------------------------------------- bundles of resources


class ResourceSet(BaseModel):
    """SuperClusters, Clusters and Secrets read from a multi-document file (render/local)."""

    superclusters: list[SuperCluster] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)
    secrets: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def from_documents(cls, documents: list[Any]) -> ResourceSet:
        """Sort documents by kind; other kinds are an error so that typos do not go unnoticed."""
        result = cls()
        for doc in documents:
            if doc is None:
                continue
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind == "SuperCluster":
                result.superclusters.append(SuperCluster.model_validate(doc))
            elif kind == "Cluster":
                result.clusters.append(Cluster.model_validate(doc))
            elif kind == "Secret":
                result.secrets.append(doc)
            else:
                raise ValueError(
                    f"unsupported document kind {kind!r} (SuperCluster, Cluster, Secret)"
                )
        return result

    def members(self, supercluster: SuperCluster) -> list[Cluster]:
        """Clusters that join `supercluster`, in file order."""
        return [
            c
            for c in self.clusters
            if c.spec.super_cluster == supercluster.name and c.namespace == supercluster.namespace
        ]

    def orphans(self) -> list[Cluster]:
        """Clusters whose SuperCluster is not in the set."""
        known = {(s.namespace, s.name) for s in self.superclusters}
        return [c for c in self.clusters if (c.namespace, c.spec.super_cluster) not in known]

"""Every name and address the operator derives, computed in one place.

Collisions across a supercluster are what break gateways in practice (duplicate server names,
cluster name != gateway name), so the rules live here and nowhere else:

- the cluster name, the gateway name and the Cluster resource name are the same string;
- a server is named `<cluster>-<ordinal>`, which is also its StatefulSet pod name, hence unique
  across the supercluster because Cluster names are unique in the namespace;
- seed URLs are fully qualified pod DNS names through the headless Service, so they resolve
  from any namespace and match certificate SANs if TLS is added later.

A *target* decides only addresses: `KubeTarget` (pod DNS names, the spec's ports, one config
shared by all pods of a cluster) or `LocalTarget` (127.0.0.1 and a port block per server, one
config per server). The config template is the same for both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from scoperator.models import GROUP, Cluster, ClusterEndpoints, Ports, SuperCluster

CONFIG_FILE = "scserver.conf"
AUTH_FILE = "auth.conf"
# Trust bundle of the gateways when external gateways bring CAs of their own (in the auth
# Secret, next to the config).
GATEWAY_CA_FILE = "gateway-ca.pem"
CONFIG_DIR = "/etc/scserver"
# Certificate files, relative to the config directory (the server's working directory).
TLS_DIR = "tls"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
TLS_CA = "ca.crt"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"

LABEL_SUPERCLUSTER = f"{GROUP}/supercluster"
LABEL_CLUSTER = f"{GROUP}/cluster"


class TopologyError(ValueError):
    """The resources describe a supercluster that cannot work (e.g. two clusters, one name)."""


@dataclass(frozen=True)
class ClusterNames:
    """Names of the Kubernetes objects rendered for one Cluster."""

    cluster: str

    @property
    def statefulset(self) -> str:
        """StatefulSet; its pods are `<cluster>-<i>`, which is also each server's name."""
        return self.cluster

    @property
    def headless_service(self) -> str:
        """Headless Service giving every pod a stable DNS name (seed URLs use it)."""
        return f"{self.cluster}-headless"

    @property
    def client_service(self) -> str:
        """ClusterIP Service for clients."""
        return self.cluster

    @property
    def gateway_service(self) -> str:
        """Service exposing the gateway port when the Cluster asks for one."""
        return f"{self.cluster}-gateway"

    @property
    def configmap(self) -> str:
        """ConfigMap with the rendered server config."""
        return f"{self.cluster}-config"

    @property
    def auth_secret(self) -> str:
        """Secret holding the credentials include (passwords as config variables)."""
        return f"{self.cluster}-auth"

    @property
    def pdb(self) -> str:
        """PodDisruptionBudget."""
        return self.cluster

    @property
    def pod_monitor(self) -> str:
        """PodMonitor (monitoring.coreos.com) when metrics.podMonitor is enabled."""
        return self.cluster

    @property
    def service_monitor(self) -> str:
        """ServiceMonitor (monitoring.coreos.com) when metrics.serviceMonitor is enabled."""
        return self.cluster


def ca_secret_name(supercluster: str) -> str:
    """Secret with the SuperCluster's CA (Managed TLS): tls.crt, tls.key, ca.crt bundle."""
    return f"{supercluster}-ca"


def toolbox_name(supercluster: str) -> str:
    """Deployment of the toolbox, and the Secret with its NATS contexts."""
    return f"{supercluster}-toolbox"


def credentials_secret_name(supercluster: str) -> str:
    """Secret with the route and gateway credentials shared by every member."""
    return f"{supercluster}-credentials"


def default_cert_secret_name(cluster: str) -> str:
    """Secret with one Cluster's server certificate (Managed TLS, or the Secrets default)."""
    return f"{cluster}-tls"


def server_name(cluster: str, ordinal: int) -> str:
    """The server name of pod `ordinal` of `cluster` (equal to the pod name)."""
    return f"{cluster}-{ordinal}"


def pod_fqdn(cluster: str, ordinal: int, namespace: str, domain: str) -> str:
    """Fully qualified DNS name of one server pod through the headless Service."""
    return (
        f"{server_name(cluster, ordinal)}.{ClusterNames(cluster).headless_service}"
        f".{namespace}.svc.{domain}"
    )


def selector_labels(cluster: str) -> dict[str, str]:
    """Labels that select exactly the pods of one Cluster (immutable: used by the selector)."""
    return {
        "app.kubernetes.io/name": "scserver",
        "app.kubernetes.io/instance": cluster,
    }


def labels(supercluster: str, cluster: str) -> dict[str, str]:
    """Labels put on every object rendered for a Cluster."""
    return {
        **selector_labels(cluster),
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": "supercluster",
        "app.kubernetes.io/managed-by": "scoperator",
        LABEL_SUPERCLUSTER: supercluster,
        LABEL_CLUSTER: cluster,
    }


# ------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class ServerAddress:
    """Where one server listens and how its peers reach it."""

    cluster: str
    ordinal: int
    host: str
    ports: Ports

    @property
    def name(self) -> str:
        """Server name (unique in the supercluster)."""
        return server_name(self.cluster, self.ordinal)

    @property
    def route_url(self) -> str:
        """URL peers of the same cluster dial."""
        return f"nats://{self.host}:{self.ports.cluster}"

    @property
    def gateway_url(self) -> str:
        """URL other clusters dial."""
        return f"nats://{self.host}:{self.ports.gateway}"

    @property
    def client_url(self) -> str:
        """URL clients dial."""
        return f"nats://{self.host}:{self.ports.client}"

    @property
    def monitor_url(self) -> str:
        """Base URL of the monitoring endpoint."""
        return f"http://{self.host}:{self.ports.monitor}"


@dataclass(frozen=True)
class KubeTarget:
    """Servers as StatefulSet pods: pod DNS names, the spec's ports, a config per cluster."""

    namespace: str
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN

    per_server_config = False
    listen_host = "0.0.0.0"

    def address(self, cluster: str, ordinal: int, ports: Ports) -> ServerAddress:
        """Address of pod `ordinal` of `cluster`."""
        return ServerAddress(
            cluster, ordinal, pod_fqdn(cluster, ordinal, self.namespace, self.cluster_domain), ports
        )


@dataclass(frozen=True)
class LocalTarget:
    """Servers as local processes on loopback, each with its own block of four ports.

    `ports` maps a server name to its ports; `local.py` fills it with free ports (or a
    deterministic base) before rendering.
    """

    ports: dict[str, Ports] = field(default_factory=dict)
    host: str = "127.0.0.1"

    per_server_config = True

    @property
    def listen_host(self) -> str:
        """Listen on loopback only: the local supercluster is not meant to be reachable."""
        return self.host

    def address(self, cluster: str, ordinal: int, ports: Ports) -> ServerAddress:
        """Address of server `ordinal` of `cluster` (its allocated ports, not the spec's)."""
        name = server_name(cluster, ordinal)
        if name not in self.ports:
            raise TopologyError(f"no local ports allocated for server {name}")
        return ServerAddress(cluster, ordinal, self.host, self.ports[name])


Target = KubeTarget | LocalTarget


# ------------------------------------------------------------------------------------ topology


@dataclass(frozen=True)
class GatewaySeed:
    """One entry of the gateway block's `gateways` list."""

    name: str
    urls: tuple[str, ...]
    external: bool = False


@dataclass(frozen=True)
class Topology:
    """The whole supercluster's addresses, derived once from the resources and a target."""

    supercluster: SuperCluster
    clusters: tuple[Cluster, ...]
    target: Target

    @classmethod
    def build(
        cls, supercluster: SuperCluster, clusters: Iterable[Cluster], target: Target
    ) -> Topology:
        """Keep the members of `supercluster`, sorted by name, and check that names are usable.

        Sorting makes the rendered configs independent of the order the API returns objects in.
        """
        members = sorted(
            (
                c
                for c in clusters
                if c.spec.super_cluster == supercluster.name
                and c.namespace == supercluster.namespace
            ),
            key=lambda c: c.name,
        )
        names = [c.name for c in members]
        if len(set(names)) != len(names):
            raise TopologyError(f"duplicate Cluster names in supercluster {supercluster.name}")
        clash = set(names) & {g.name for g in supercluster.spec.external_gateways}
        if clash:
            raise TopologyError(
                f"external gateways {sorted(clash)} have the names of member Clusters"
            )
        return cls(supercluster, tuple(members), target)

    def cluster(self, name: str) -> Cluster:
        """The member called `name`."""
        for c in self.clusters:
            if c.name == name:
                return c
        raise TopologyError(f"{name} is not a member of supercluster {self.supercluster.name}")

    def servers(self, cluster: str) -> list[ServerAddress]:
        """Every server of one member, by ordinal."""
        ports = self.supercluster.spec.ports
        return [
            self.target.address(cluster, i, ports)
            for i in range(self.cluster(cluster).spec.replicas)
        ]

    def all_servers(self) -> list[ServerAddress]:
        """Every server of every member."""
        return [s for c in self.clusters for s in self.servers(c.name)]

    def routes(self, cluster: str) -> list[str]:
        """Route URLs of one cluster: every peer, itself included (servers skip themselves).

        Listing itself lets all pods share one config; a server detects and drops a route to
        itself.
        """
        return [s.route_url for s in self.servers(cluster)]

    def gateways(self) -> list[GatewaySeed]:
        """The gateway list every member renders: each member (itself included), then externals."""
        seeds = [
            GatewaySeed(c.name, tuple(s.gateway_url for s in self.servers(c.name)))
            for c in self.clusters
        ]
        seeds += [
            GatewaySeed(g.name, tuple(g.urls), external=True)
            for g in self.supercluster.spec.external_gateways
        ]
        return seeds

    def gateway_names(self) -> list[str]:
        """Names of every cluster of the supercluster, members then externals."""
        return [g.name for g in self.gateways()]


def cluster_endpoints(topology: Topology, cluster: str) -> ClusterEndpoints:
    """Addresses of one member for its status: client Service, gateway, advertised gateway."""
    target = topology.target
    member = topology.cluster(cluster)
    ports = topology.supercluster.spec.ports
    names = ClusterNames(cluster)
    if isinstance(target, KubeTarget):
        suffix = f"{target.namespace}.svc.{target.cluster_domain}"
        client = f"nats://{names.client_service}.{suffix}:{ports.client}"
        service = (
            names.headless_service
            if member.spec.gateway.type == "Headless"
            else names.gateway_service
        )
        gateway = f"nats://{service}.{suffix}:{ports.gateway}"
    else:
        first = topology.servers(cluster)[0]
        client, gateway = first.client_url, first.gateway_url
    return ClusterEndpoints(
        client=client, gateway=gateway, gateway_advertised=member.spec.gateway.advertise
    )


def certificate_names(topology: Topology, cluster: str) -> list[str]:
    """SANs of `cluster`'s server certificate.

    Kubernetes: every pod's FQDN under the headless Service, a wildcard under it for pods
    added later, the headless, client and gateway Services (short, namespaced and full names)
    and the advertised gateway host. Local: loopback.
    """
    target = topology.target
    if not isinstance(target, KubeTarget):
        return [target.host, "localhost"]
    member = topology.cluster(cluster)
    names = ClusterNames(cluster)
    ns, domain = target.namespace, target.cluster_domain
    result = [s.host for s in topology.servers(cluster)]
    result.append(f"*.{names.headless_service}.{ns}.svc.{domain}")
    services = [names.headless_service, names.client_service]
    if member.spec.gateway.type != "Headless":
        services.append(names.gateway_service)
    for svc in services:
        result += [svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.{domain}"]
    if member.spec.gateway.advertise:
        result.append(member.spec.gateway.advertise.rsplit(":", 1)[0])
    return list(dict.fromkeys(result))

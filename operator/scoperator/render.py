"""Desired state, computed purely: resources in, manifests and server configs out.

No Kubernetes client and no I/O happens here, so the apply layer, `scoperator render`,
`scoperator local` and the tests all see exactly the same objects. Owner references are left to
the apply layer (it knows the owner's uid).

What triggers what (see the issue's "Changes"):
- scaling, membership and account changes only change the ConfigMap / credentials Secret, which
  the servers reload from their mounted files: the pod template stays the same, no restart;
- image, ports or command changes change the pod template: the StatefulSet rolls one pod at a
  time. There is deliberately no config-hash annotation on the pod template.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import cache

import jinja2

from scoperator import knobs, links
from scoperator.account_links import render_links
from scoperator.config_merge import MergePlan, effective_merge, rendered_blocks
from scoperator.models import Cluster, Ports, SecretKeyRef, SuperCluster, password_var
from scoperator.naming import (
    AUTH_FILE,
    CONFIG_DIR,
    CONFIG_FILE,
    GATEWAY_CA_FILE,
    TLS_CA,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    ClusterNames,
    KubeTarget,
    Topology,
    labels,
    selector_labels,
)
from scoperator.secrets import (
    SecretValues,
    password_lines,
    quote,
    require_keys,
    secret_refs,
)

CONTAINER_NAME = "scserver"
RUN_AS_USER = 1000
HEALTH_PATH = "/healthz"
# Seconds the pod gets beyond lame duck duration + grace period before SIGKILL.
TERMINATION_SLACK = 20


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("scoperator", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = quote
    env.filters["password_var"] = password_var
    env.filters["account_links"] = render_links
    return env


# -------------------------------------------------------------------------------- server config


def _gateway_ca_needed(sc: SuperCluster) -> bool:
    """Whether external gateways bring CAs, i.e. the gateways need a trust bundle of their own."""
    return sc.spec.tls.enabled and any(g.ca_secret for g in sc.spec.external_gateways)


def cert_secret(topology: Topology, cluster: str) -> str | None:
    """Name of the Secret holding `cluster`'s certificate (None without TLS)."""
    return topology.supercluster.spec.tls.cluster_secret(cluster)


def required_refs(topology: Topology, cluster: str) -> list[SecretKeyRef]:
    """Every Secret key rendering `cluster` reads: user passwords, link credentials, and the
    CA bundle of its certificate when the gateways' trust bundle is built from it."""
    sc = topology.supercluster
    refs = [*secret_refs(sc.spec), *links.link_refs(sc)]
    secret = cert_secret(topology, cluster)
    if secret is not None and _gateway_ca_needed(sc):
        refs.append(SecretKeyRef(name=secret, key=TLS_CA))
    return refs


def _tls_context(topology: Topology, cluster: str) -> dict | None:
    tls = topology.supercluster.spec.tls
    secret = cert_secret(topology, cluster)
    if secret is None:
        return None
    ca = f"{TLS_DIR}/{TLS_CA}"
    if isinstance(topology.target, KubeTarget):
        source = f"from Secret {secret}"
    else:
        source = "issued by scoperator local"
    return {
        "dir": TLS_DIR,
        "source": source,
        "cert": f"{TLS_DIR}/{TLS_CERT}",
        "key": f"{TLS_DIR}/{TLS_KEY}",
        "ca": ca,
        "gateway_ca": GATEWAY_CA_FILE if _gateway_ca_needed(topology.supercluster) else ca,
        "timeout": f"{tls.timeout:g}",
        "clients": tls.clients.enabled,
        "client_verify": tls.clients.verify,
        "https": tls.clients.enabled and tls.monitoring == "HTTPS",
    }


def monitor_scheme(sc: SuperCluster) -> str:
    """`https` when the servers serve monitoring over TLS, else `http`."""
    tls = sc.spec.tls
    https = tls.enabled and tls.clients.enabled and tls.monitoring == "HTTPS"
    return "https" if https else "http"


def _link_vars(topology: Topology) -> dict:
    return {
        "route_user": links.ROUTE_USER_VAR,
        "route_password": links.ROUTE_PASSWORD_VAR,
        "route_urls": links.ROUTE_URLS_VAR,
        "gateway_user": links.GATEWAY_USER_VAR,
        "gateway_password": links.GATEWAY_PASSWORD_VAR,
        "gateway_urls": {
            g.name: links.gateway_urls_var(g.name)
            for g in topology.supercluster.spec.external_gateways
            if g.credentials_secret
        },
    }


def render_server_config(topology: Topology, cluster: str, ordinal: int | None = None) -> str:
    """The server config of `cluster` for `topology.target`.

    Kubernetes: one config shared by all pods (`ordinal` None), the server name comes from the
    POD_NAME environment variable. Local: one config per server (`ordinal` required) with its
    own ports and a literal server name.
    """
    member = topology.cluster(cluster)
    spec = topology.supercluster.spec
    target = topology.target
    if target.per_server_config:
        if ordinal is None:
            raise ValueError("a per-server target needs the server ordinal")
        me = target.address(cluster, ordinal, spec.ports)
        listen_ports, name_expr, kind = me.ports, quote(me.name), "local"
        advertise = None
    else:
        listen_ports, name_expr, kind = spec.ports, "$POD_NAME", "kubernetes"
        advertise = member.spec.gateway.advertise
    tls = _tls_context(topology, cluster)
    merge = MergePlan(
        effective_merge(spec.config.merge, member.spec.config.merge),
        rendered_blocks(
            tls=tls is not None,
            client_tls=bool(tls and tls["clients"]),
            accounts=bool(spec.accounts),
        ),
    )
    return (
        _environment()
        .get_template("scserver.conf.j2")
        .render(
            cluster=cluster,
            supercluster=topology.supercluster.name,
            target=kind,
            auth_include=AUTH_FILE,
            tls=tls,
            merge=merge,
            vars=_link_vars(topology),
            server_name=name_expr,
            listen_host=target.listen_host,
            ports=listen_ports,
            config=spec.config,
            routes=topology.routes(cluster),
            advertise=advertise,
            reject_unknown_cluster=spec.gateway.reject_unknown_cluster,
            gateways=topology.gateways(),
            accounts=spec.accounts,
            system_account=spec.system_account,
        )
    )


def render_secret_files(
    topology: Topology, cluster: str, secrets: SecretValues | None
) -> dict[str, str]:
    """The files of `cluster`'s credentials Secret: the include (auth.conf) and, when external
    gateways bring CAs, the gateways' trust bundle. Raises MissingSecretError listing every
    absent key at once."""
    sc = topology.supercluster
    values = secrets or {}
    require_keys(required_refs(topology, cluster), values)
    creds = links.link_credentials(sc, values)
    lines = ["# Rendered by scoperator from Secrets: credentials as variables. Do not edit."]
    lines += password_lines(sc.spec, values)
    lines += [
        f"{links.ROUTE_USER_VAR}: {quote(creds.route_user)}",
        f"{links.ROUTE_PASSWORD_VAR}: {quote(creds.route_password)}",
        f"{links.GATEWAY_USER_VAR}: {quote(creds.gateway_user)}",
        f"{links.GATEWAY_PASSWORD_VAR}: {quote(creds.gateway_password)}",
    ]
    routes = [
        links.with_userinfo(url, creds.route_user, creds.route_password)
        for url in topology.routes(cluster)
    ]
    lines.append(f"{links.ROUTE_URLS_VAR}: [{', '.join(quote(u) for u in routes)}]")
    for gw in topology.gateways():
        if gw.name in creds.externals:
            user, password = creds.externals[gw.name]
            urls = [links.with_userinfo(u, user, password) for u in gw.urls]
            lines.append(
                f"{links.gateway_urls_var(gw.name)}: [{', '.join(quote(u) for u in urls)}]"
            )
    files = {AUTH_FILE: "\n".join(lines) + "\n"}
    if _gateway_ca_needed(sc):
        secret = cert_secret(topology, cluster)
        assert secret is not None
        parts = [values[secret][TLS_CA]]
        parts += [
            values[g.ca_secret][links.CA_KEY] for g in sc.spec.external_gateways if g.ca_secret
        ]
        files[GATEWAY_CA_FILE] = "".join(p.strip() + "\n" for p in parts)
    return files


def render_configs(
    topology: Topology, secrets: SecretValues | None = None
) -> dict[str, dict[str, str]]:
    """Config files per config unit: cluster name (Kubernetes) or server name (local).

    Each value maps a file name (scserver.conf, auth.conf, gateway-ca.pem) to its text; they
    belong in one directory because the config includes the credentials by relative path.
    Certificate files (tls/) are not rendered: they come from Secrets or `scoperator local`.
    """
    units: dict[str, dict[str, str]] = {}
    for member in topology.clusters:
        extra = render_secret_files(topology, member.name, secrets)
        if topology.target.per_server_config:
            keys = [(s.name, s.ordinal) for s in topology.servers(member.name)]
        else:
            keys = [(member.name, None)]
        for key, ordinal in keys:
            units[key] = {
                CONFIG_FILE: render_server_config(topology, member.name, ordinal),
                **extra,
            }
    return units


# ---------------------------------------------------------------------------------- manifests


def render_cluster(
    supercluster: SuperCluster,
    cluster: Cluster,
    all_clusters: Iterable[Cluster],
    namespace: str | None = None,
    secrets: SecretValues | None = None,
    *,
    cluster_domain: str = "cluster.local",
) -> list[dict]:
    """Every object the operator wants to exist for `cluster`, in apply order.

    `all_clusters` are the Clusters of the namespace (non-members are ignored); `secrets` must
    hold every Secret key the accounts reference (MissingSecretError otherwise).
    """
    ns = namespace or cluster.namespace
    members = [c for c in all_clusters if c.name != cluster.name] + [cluster]
    topology = Topology.build(supercluster, members, KubeTarget(ns, cluster_domain))
    return _render_cluster(topology, cluster.name, secrets)


def render_supercluster(
    supercluster: SuperCluster,
    clusters: Iterable[Cluster],
    secrets: SecretValues | None = None,
    *,
    cluster_domain: str = "cluster.local",
) -> dict[str, list[dict]]:
    """Objects of every member Cluster, keyed by cluster name (sorted)."""
    topology = Topology.build(
        supercluster, clusters, KubeTarget(supercluster.namespace, cluster_domain)
    )
    return {c.name: _render_cluster(topology, c.name, secrets) for c in topology.clusters}


def render_member(topology: Topology, name: str, secrets: SecretValues | None) -> list[dict]:
    """Objects of one member of `topology` (the apply layer renders members one by one so that
    one member's bad settings do not hold back the others)."""
    return _render_cluster(topology, name, secrets)


def _render_cluster(topology: Topology, name: str, secrets: SecretValues | None) -> list[dict]:
    if not isinstance(topology.target, KubeTarget):
        raise TypeError("manifests are rendered for the Kubernetes target only")
    sc = topology.supercluster
    member = topology.cluster(name)
    names = ClusterNames(name)
    ns = topology.target.namespace
    lbl = labels(sc.name, name)
    meta = {"namespace": ns, "labels": lbl}
    objects: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": names.configmap, **meta},
            "data": {CONFIG_FILE: render_server_config(topology, name)},
        }
    ]
    files = render_secret_files(topology, name, secrets)
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": names.auth_secret, **meta},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()},
        }
    )
    objects.append(
        knobs.customise_service(sc, member, "headless", headless_service(topology, name))
    )
    objects.append(knobs.customise_service(sc, member, "client", client_service(topology, name)))
    if member.spec.gateway.type != "Headless":
        objects.append(
            knobs.customise_service(sc, member, "gateway", gateway_service(topology, name))
        )
    objects.append(pdb(topology, name))
    sts = statefulset(topology, name, secret_files=sorted(files))
    sts["spec"]["template"] = knobs.patch_pod_template(sc, member, sts["spec"]["template"])
    objects.append(sts)
    # Last: when the PodMonitor CRD is missing, everything else is already applied.
    for make in (knobs.pod_monitor, knobs.service_monitor):
        monitor = make(sc, member, ns, monitor_scheme(sc))
        if monitor is not None:
            objects.append(monitor)
    return objects


def _service_ports(ports: Ports, which: Iterable[str]) -> list[dict]:
    app = {"client": "nats", "cluster": "nats-route", "gateway": "nats-gateway", "monitor": "http"}
    return [
        {
            "name": port,
            "port": getattr(ports, port),
            "targetPort": port,
            "protocol": "TCP",
            "appProtocol": app[port],
        }
        for port in which
    ]


def headless_service(topology: Topology, name: str) -> dict:
    """Headless Service: stable pod DNS names, published before pods are ready.

    publishNotReadyAddresses lets peers resolve each other while they start, otherwise routes
    and gateways could never form (readiness would wait for them, they would wait for DNS).
    """
    sc = topology.supercluster
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": ClusterNames(name).headless_service,
            "namespace": topology.target.namespace,
            "labels": labels(sc.name, name),
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(name),
            "ports": _service_ports(sc.spec.ports, ["client", "cluster", "gateway", "monitor"]),
        },
    }


def client_service(topology: Topology, name: str) -> dict:
    """ClusterIP Service for clients; only ready servers receive connections."""
    sc = topology.supercluster
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": ClusterNames(name).client_service,
            "namespace": topology.target.namespace,
            "labels": labels(sc.name, name),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": _service_ports(sc.spec.ports, ["client"]),
        },
    }


def gateway_service(topology: Topology, name: str) -> dict:
    """The gateway Service for clusters reached from elsewhere (ClusterIP/NodePort/LB)."""
    sc = topology.supercluster
    exposure = topology.cluster(name).spec.gateway
    ports = _service_ports(sc.spec.ports, ["gateway"])
    if exposure.node_port is not None:
        ports[0]["nodePort"] = exposure.node_port
    spec: dict = {
        "type": exposure.type,
        # Same reasoning as the headless Service: remote gateways must reach starting servers.
        "publishNotReadyAddresses": True,
        "selector": selector_labels(name),
        "ports": ports,
    }
    if exposure.external_traffic_policy:
        spec["externalTrafficPolicy"] = exposure.external_traffic_policy
    if exposure.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = list(exposure.load_balancer_source_ranges)
    metadata: dict = {
        "name": ClusterNames(name).gateway_service,
        "namespace": topology.target.namespace,
        "labels": labels(sc.name, name),
    }
    if exposure.annotations:
        metadata["annotations"] = dict(exposure.annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def pdb(topology: Topology, name: str) -> dict:
    """At most one server of a cluster down through voluntary disruptions (drains)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": ClusterNames(name).pdb,
            "namespace": topology.target.namespace,
            "labels": labels(topology.supercluster.name, name),
        },
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(name)}},
    }


def duration_seconds(text: str) -> int:
    """Whole seconds (rounded up) of a nats-server duration such as `30s` or `500ms`."""
    match = re.fullmatch(r"([0-9]+)(ms|s|m|h)", text)
    if not match:
        raise ValueError(f"bad duration {text!r}")
    value, unit = int(match.group(1)), match.group(2)
    if unit == "ms":
        return -(-value // 1000)
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def _probe(period: int, failures: int, timeout: int, scheme: str = "http") -> dict:
    get = {"path": HEALTH_PATH, "port": "monitor"}
    if scheme == "https":
        get["scheme"] = "HTTPS"  # kubelet does not verify the certificate
    return {
        "httpGet": get,
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def statefulset(topology: Topology, name: str, *, secret_files: list[str]) -> dict:
    """The StatefulSet running the servers of one cluster.

    Parallel pod management starts all servers at once (they find each other through the
    headless Service); updates still roll one pod at a time, highest ordinal first. The preStop
    hook puts the server in lame duck mode (SIGUSR2) and returns at once, as the NATS chart's
    `nats-server --signal ldm`: the server ignores the SIGTERM that follows while lame duck
    closes its clients, and exits by itself within a grace period sized from the lame duck
    settings. (A hook that waited for the server would be killed with it, and every pod
    deletion would post a FailedPreStopHook Warning.)
    """
    sc = topology.supercluster
    member = topology.cluster(name)
    spec = sc.spec
    names = ClusterNames(name)
    ports = spec.ports
    scheme = monitor_scheme(sc)
    pod = knobs.effective_pod(sc, member)
    sources: list[dict] = [
        {
            "configMap": {
                "name": names.configmap,
                "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}],
            }
        }
    ]
    sources.append(
        {
            "secret": {
                "name": names.auth_secret,
                "items": [{"key": f, "path": f} for f in secret_files],
            }
        }
    )
    tls_secret = cert_secret(topology, name)
    if tls_secret is not None:
        # Same projected volume: a renewed certificate swaps in atomically with its key.
        sources.append(
            {
                "secret": {
                    "name": tls_secret,
                    "items": [
                        {"key": k, "path": f"{TLS_DIR}/{k}"} for k in (TLS_CERT, TLS_KEY, TLS_CA)
                    ],
                }
            }
        )
    grace = (
        duration_seconds(spec.config.lame_duck_duration)
        + duration_seconds(spec.config.lame_duck_grace_period)
        + TERMINATION_SLACK
    )
    container: dict = {
        "name": CONTAINER_NAME,
        "image": member.spec.image or spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": [*spec.server_command, "-c", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        # Certificate paths in the config are relative to the config directory.
        "workingDir": CONFIG_DIR,
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            *pod.env,
        ],
        "ports": [
            {"name": "client", "containerPort": ports.client, "protocol": "TCP"},
            {"name": "cluster", "containerPort": ports.cluster, "protocol": "TCP"},
            {"name": "gateway", "containerPort": ports.gateway, "protocol": "TCP"},
            {"name": "monitor", "containerPort": ports.monitor, "protocol": "TCP"},
        ],
        "startupProbe": _probe(period=2, failures=90, timeout=2, scheme=scheme),
        "readinessProbe": _probe(period=5, failures=3, timeout=2, scheme=scheme),
        "livenessProbe": _probe(period=30, failures=3, timeout=5, scheme=scheme),
        "lifecycle": {
            "preStop": {
                "exec": {
                    "command": [
                        "/bin/sh",
                        "-c",
                        "kill -USR2 1",
                    ]
                }
            }
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *pod.extra_volume_mounts,
        ],
    }
    if pod.resources:
        container["resources"] = pod.resources
    pod_spec: dict = {
        "containers": [container, *pod.sidecars],
        "terminationGracePeriodSeconds": grace,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # One projected volume: kubelet updates config and credentials in one atomic swap.
        "volumes": [
            {"name": "config", "projected": {"sources": sources}},
            {"name": "tmp", "emptyDir": {}},
            *pod.extra_volumes,
        ],
    }
    for key, value in (
        ("initContainers", pod.init_containers),
        ("imagePullSecrets", pod.image_pull_secrets),
        ("priorityClassName", pod.priority_class_name),
        ("serviceAccountName", pod.service_account_name),
        ("nodeSelector", pod.node_selector),
        ("affinity", pod.affinity),
        ("tolerations", pod.tolerations),
        ("topologySpreadConstraints", member.spec.topology_spread_constraints),
    ):
        if value:
            pod_spec[key] = value
    pod_meta: dict = {"labels": {**pod.labels, **labels(sc.name, name)}}
    if pod.annotations:
        pod_meta["annotations"] = dict(pod.annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": names.statefulset,
            "namespace": topology.target.namespace,
            "labels": labels(sc.name, name),
        },
        "spec": {
            "serviceName": names.headless_service,
            "replicas": member.spec.replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector_labels(name)},
            "template": {"metadata": pod_meta, "spec": pod_spec},
        },
    }

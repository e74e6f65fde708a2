"""The toolbox: a nats-box style Deployment with a ready `nats` CLI (spec.toolbox, off by default).

`kubectl exec deploy/<supercluster>-toolbox -- nats --context east server list` works because a
Secret `<supercluster>-toolbox` holds a nats CLI context per member cluster (named after it, the
first one selected) and one called `system` that reaches any member; all of them log in as the
system account's first user, so the `server` commands (which need the system account) work.
Without a declared system account user the contexts carry no credentials (clients then get the
noAuthUser, if any) and `server list` is refused by the servers; the Secret says so.

The default image is nats-box (our scserver image has no `nats` CLI); `spec.toolbox.image`
changes it to any image with the CLI and a shell. Contexts are files under
$XDG_CONFIG_HOME/nats (the nats CLI's lookup path), mounted read-only from the Secret; with client
TLS the CA bundle is mounted next to them (ca.crt only, never a key).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from scoperator.models import SuperCluster
from scoperator.naming import (
    LABEL_SUPERCLUSTER,
    TLS_CA,
    ClusterNames,
    KubeTarget,
    Topology,
    toolbox_name,
)
from scoperator.secrets import SecretValues

CONFIG_HOME = "/etc/nats-toolbox"
CA_DIR = "/etc/nats-toolbox-ca"
SYSTEM_CONTEXT = "system"


def toolbox_labels(sc: SuperCluster) -> dict[str, str]:
    """Labels of the toolbox objects (the prune selector finds them like the servers' objects)."""
    return {
        "app.kubernetes.io/name": "nats-toolbox",
        "app.kubernetes.io/instance": toolbox_name(sc.name),
        "app.kubernetes.io/component": "toolbox",
        "app.kubernetes.io/part-of": "supercluster",
        "app.kubernetes.io/managed-by": "scoperator",
        LABEL_SUPERCLUSTER: sc.name,
    }


def system_user(sc: SuperCluster, secrets: SecretValues) -> tuple[str, str] | None:
    """(user, password) of the system account's first user, if one is declared and readable."""
    for account in sc.spec.accounts:
        if account.name != sc.spec.system_account or not account.users:
            continue
        user = account.users[0]
        ref = user.password_secret_ref
        password = (secrets.get(ref.name) or {}).get(ref.key)
        return (user.user, password) if password is not None else None
    return None


def contexts(topology: Topology, secrets: SecretValues, ca_file: str | None) -> dict[str, dict]:
    """nats CLI contexts by name: one per member, then `system` (every member's URL)."""
    sc = topology.supercluster
    target = topology.target
    assert isinstance(target, KubeTarget)
    login = system_user(sc, secrets)
    scheme = "tls" if sc.spec.tls.enabled and sc.spec.tls.clients.enabled else "nats"
    suffix = f"{target.namespace}.svc.{target.cluster_domain}"
    urls = {
        c.name: f"{scheme}://{ClusterNames(c.name).client_service}.{suffix}:{sc.spec.ports.client}"
        for c in topology.clusters
    }
    result: dict[str, dict] = {}
    for name, url in [*urls.items(), (SYSTEM_CONTEXT, ",".join(urls.values()))]:
        ctx: dict[str, Any] = {
            "description": f"{'every cluster' if name == SYSTEM_CONTEXT else name} of "
            f"supercluster {sc.name}, as the system account"
            + ("" if login else " (no system account user declared: server commands fail)"),
            "url": url,
        }
        if login:
            ctx["user"], ctx["password"] = login
        if ca_file:
            ctx["ca"] = ca_file
        result[name] = ctx
    return result


def render_toolbox(topology: Topology, secrets: SecretValues | None) -> list[dict]:
    """The toolbox's Secret and Deployment, or nothing when spec.toolbox.enabled is false."""
    sc = topology.supercluster
    spec = sc.spec.toolbox
    target = topology.target
    if not spec.enabled or not topology.clusters or not isinstance(target, KubeTarget):
        return []
    tls = sc.spec.tls
    ca_secret = None
    if tls.enabled and tls.clients.enabled:
        ca_secret = tls.cluster_secret(topology.clusters[0].name)
    ca_file = f"{CA_DIR}/{TLS_CA}" if ca_secret else None
    ctxs = contexts(topology, secrets or {}, ca_file)
    files = {f"context/{n}.json": json.dumps(c, indent=2) + "\n" for n, c in ctxs.items()}
    files["context.txt"] = topology.clusters[0].name
    name = toolbox_name(sc.name)
    lbl = toolbox_labels(sc)
    keys = {f: f.replace("/", "__") for f in files}  # Secret keys cannot hold a slash
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": target.namespace, "labels": dict(lbl)},
        "type": "Opaque",
        "data": {keys[f]: base64.b64encode(t.encode()).decode() for f, t in sorted(files.items())},
    }
    volumes: list[dict[str, Any]] = [
        {
            "name": "contexts",
            "secret": {
                "secretName": name,
                "items": [{"key": keys[f], "path": f} for f in sorted(files)],
            },
        }
    ]
    mounts = [{"name": "contexts", "mountPath": f"{CONFIG_HOME}/nats", "readOnly": True}]
    if ca_secret:
        volumes.append(
            {
                "name": "ca",
                "secret": {"secretName": ca_secret, "items": [{"key": TLS_CA, "path": TLS_CA}]},
            }
        )
        mounts.append({"name": "ca", "mountPath": CA_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": "toolbox",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        # Stay up for `kubectl exec`; exit at once on SIGTERM.
        "command": ["sh", "-c", "trap 'exit 0' TERM INT; sleep infinity & wait"],
        "env": [{"name": "XDG_CONFIG_HOME", "value": CONFIG_HOME}],
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if spec.resources:
        container["resources"] = spec.resources
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
    }
    pull = sc.spec.pod.image_pull_secrets
    if pull:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in pull]
    selector = {k: lbl[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": target.namespace, "labels": dict(lbl)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": dict(lbl)}, "spec": pod_spec},
        },
    }
    return [secret, deployment]

"""A small asynchronous Kubernetes client on aiohttp, and where its credentials come from.

Why not the `kubernetes` package's client: it is synchronous, and the operator runs inside
kopf's event loop; a blocking call there stalls every watch and handler. Kopf itself has no
client for our own writes (server-side apply, status, events), so this module provides the few
verbs we need: get, list, server-side apply, merge-patch (of the status subresource too),
delete and create.

Credentials are read once, with the `kubernetes` package's loaders (kubeconfig or in-cluster
service account), and handed both to this client and to kopf (`connection_info`), so the two
always talk to the same API server as the same user.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

FIELD_MANAGER = "scoperator"

# Resources the operator reads or writes: kind -> (API group/version, plural, namespaced).
# A static table instead of discovery: the set is small and fixed by what render produces.
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "ConfigMap": ("v1", "configmaps", True),
    "Secret": ("v1", "secrets", True),
    "Service": ("v1", "services", True),
    "Pod": ("v1", "pods", True),
    "Event": ("v1", "events", True),
    "Namespace": ("v1", "namespaces", False),
    "StatefulSet": ("apps/v1", "statefulsets", True),
    "Deployment": ("apps/v1", "deployments", True),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", True),
    "SuperCluster": ("supercluster.dev/v1alpha1", "superclusters", True),
    "Cluster": ("supercluster.dev/v1alpha1", "clusters", True),
    "Certificate": ("cert-manager.io/v1", "certificates", True),
    "PodMonitor": ("monitoring.coreos.com/v1", "podmonitors", True),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors", True),
    "CustomResourceDefinition": (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        False,
    ),
}


class KubeError(RuntimeError):
    """The API server answered with an error status; `status` and `reason` are kept."""

    def __init__(self, status: int, reason: str, message: str, verb: str, path: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{verb} {path}: {status} {reason}: {message}")

    @property
    def not_found(self) -> bool:
        """404: the object (or its kind) does not exist."""
        return self.status == 404

    @property
    def forbidden(self) -> bool:
        """403: RBAC does not grant the request."""
        return self.status == 403

    @property
    def conflict(self) -> bool:
        """409: a resourceVersion precondition failed (someone else wrote first)."""
        return self.status == 409


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server."""

    server: str
    ca_file: str | None = None
    token: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    default_namespace: str | None = None

    @classmethod
    def load(cls, kubeconfig: str | None = None, context: str | None = None) -> Credentials:
        """In-cluster service account when running in a pod, else kubeconfig ($KUBECONFIG)."""
        from kubernetes import client, config

        cfg = client.Configuration()
        namespace: str | None = None
        if (
            kubeconfig is None
            and os.environ.get("KUBERNETES_SERVICE_HOST")
            and not os.environ.get("KUBECONFIG")
        ):
            config.load_incluster_config(client_configuration=cfg)
            ns_path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
            if os.path.exists(ns_path):
                with open(ns_path, encoding="utf-8") as fh:
                    namespace = fh.read().strip() or None
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
            try:
                _, active = config.list_kube_config_contexts(config_file=kubeconfig)
                namespace = (active or {}).get("context", {}).get("namespace")
            except Exception:  # noqa: BLE001 - the default namespace is only a convenience
                namespace = None
        auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        token = None
        if auth:
            prefix = cfg.api_key_prefix.get("authorization", "")
            token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
            if prefix and prefix.lower() != "bearer":
                token = auth
        return cls(
            server=cfg.host,
            ca_file=cfg.ssl_ca_cert,
            token=token,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
            insecure=not cfg.verify_ssl,
            default_namespace=namespace,
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS settings for aiohttp (False disables verification, as kubeconfig may ask)."""
        if not self.server.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def headers(self) -> dict[str, str]:
        """The Authorization header, when a token is used."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def connection_info(self) -> Any:
        """The same credentials as kopf wants them from a login handler."""
        import kopf

        return kopf.ConnectionInfo(
            server=self.server,
            ca_path=self.ca_file,
            insecure=self.insecure,
            scheme="Bearer" if self.token else None,
            token=self.token,
            certificate_path=self.cert_file,
            private_key_path=self.key_file,
            default_namespace=self.default_namespace,
        )


def resource_path(
    kind: str, namespace: str | None = None, name: str | None = None, api_version: str | None = None
) -> str:
    """URL path of a collection (`name` None) or of one object of `kind`."""
    try:
        group_version, plural, namespaced = RESOURCES[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} is not known to scoperator's client") from None
    group_version = api_version or group_version
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    if namespaced and namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name)}"
    return base


def object_path(obj: dict[str, Any]) -> str:
    """URL path of a manifest (apiVersion/kind/metadata.namespace/metadata.name)."""
    meta = obj.get("metadata", {})
    return resource_path(obj["kind"], meta.get("namespace"), meta["name"], obj.get("apiVersion"))


class KubeClient:
    """The verbs the operator uses, over one aiohttp session (connection reuse matters at N=50)."""

    def __init__(
        self, credentials: Credentials, *, timeout: float = 30.0, field_manager: str = FIELD_MANAGER
    ) -> None:
        self.credentials = credentials
        self.field_manager = field_manager
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0  # for the benchmark and tests: API calls made

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.credentials.server,
                headers=self.credentials.headers(),
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self.credentials.ssl_context(), limit=32),
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        verb: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call; returns the decoded JSON body, raises KubeError on >= 400."""
        if params:
            path = f"{path}?{urlencode(params)}"
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        self.requests += 1
        async with self._http().request(verb, path, data=data, headers=headers) as resp:
            text = await resp.text()
            if resp.status >= 400:
                try:
                    doc = json.loads(text)
                    reason, message = doc.get("reason", ""), doc.get("message", text)
                except ValueError:
                    reason, message = "", text
                raise KubeError(resp.status, reason, message.strip(), verb, path)
            return json.loads(text) if text else None

    # ------------------------------------------------------------------------------- verbs

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        try:
            return await self.request("GET", resource_path(kind, namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def list(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object of `kind` (in `namespace`), optionally filtered by labels."""
        params = {"labelSelector": label_selector} if label_selector else None
        doc = await self.request("GET", resource_path(kind, namespace), params=params)
        items = doc.get("items") or []
        # Lists omit kind/apiVersion per item; put them back so items look like manifests.
        api_version = RESOURCES[kind][0]
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply of a full manifest with our field manager.

        force=True takes over fields another manager set (the operator is the authority on
        the objects it renders); fields we stop sending are removed because we own them.
        """
        params = {"fieldManager": self.field_manager}
        if force:
            params["force"] = "true"
        return await self.request(
            "PATCH",
            object_path(obj),
            body=obj,
            params=params,
            content_type="application/apply-patch+yaml",
        )

    async def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        """Server-side apply of `obj["status"]` to the status subresource as `manager`."""
        return await self.request(
            "PATCH",
            object_path(obj) + "/status",
            body=obj,
            params={"fieldManager": manager, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386), e.g. of the `status` subresource."""
        path = resource_path(kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        return await self.request(
            "PATCH",
            path,
            body=patch,
            params={"fieldManager": self.field_manager},
            content_type="application/merge-patch+json",
        )

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """POST a new object into its collection."""
        meta = obj.get("metadata", {})
        path = resource_path(obj["kind"], meta.get("namespace"), None, obj.get("apiVersion"))
        return await self.request(
            "POST", path, body=obj, params={"fieldManager": self.field_manager}
        )

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete one object; False when it was already gone.

        With `uid`, the delete only happens if the object is still that incarnation (a
        precondition), so we never remove an object someone recreated meanwhile.
        """
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        body["propagationPolicy"] = "Background"
        try:
            await self.request("DELETE", resource_path(kind, namespace, name), body=body)
        except KubeError as exc:
            if exc.not_found or exc.conflict:
                return False
            raise
        return True

"""Certificate and link-credential Secrets: create, renew, rotate, and report on them.

The reconciler (apply.py) calls `ensure_pki` before rendering; it writes only Secrets (and
cert-manager Certificates), never server configs, and returns what the status needs. The
decisions are pure functions of the Secrets' contents and `now` (`plan_ca`,
`plan_server_cert`, `check_user_cert`), tested by moving the clock; `ensure_pki` only reads and
writes.

Mode Managed, per SuperCluster:
- `<supercluster>-ca` (owned by the SuperCluster): the active CA (tls.crt, tls.key) and the
  trust bundle `ca.crt`. At two thirds of the CA's lifetime a next CA is made (next.crt,
  next.key) and added to the bundle; after `caRotationDelay` (time for every server to load
  the bundle) it becomes the active CA and the certificates are re-issued by it. The old CA
  stays in the bundle until it expires, so a server still presenting an old certificate keeps
  its links while it reloads: no restart, no dropped link;
- `<cluster>-tls` (owned by the Cluster): tls.crt, tls.key and the bundle as ca.crt, re-issued
  when missing or invalid, at two thirds of its lifetime, when issued by a CA that is no longer
  active, or when its SANs no longer cover the Cluster's names (scaled up, new advertise).
Mode Secrets: the named Secrets are only read and checked (or, with `issuerRef`, written by
cert-manager from the `Certificate` objects created here); a certificate past two thirds of its
lifetime that nobody renews makes CertificatesReady False, which posts a Warning Event.
Link credentials: `<supercluster>-credentials` is created once with random passwords and then
only read, whoever owns it (copying it to another Kubernetes cluster is the multi-site flow).
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field
from typing import Any

from scoperator import certs, links
from scoperator.kube import KubeClient, KubeError
from scoperator.models import GROUP, SuperCluster
from scoperator.naming import (
    LABEL_SUPERCLUSTER,
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    Topology,
    ca_secret_name,
    certificate_names,
    credentials_secret_name,
    labels,
)
from scoperator.render import duration_seconds
from scoperator.status import CERTIFICATES_READY, condition

NEXT_CERT = "next.crt"
NEXT_KEY = "next.key"
NEXT_SINCE = f"{GROUP}/ca-next-since"
ISSUED_FOR = f"{GROUP}/issued-for"

# Reasons of CertificatesReady.
CERTIFICATES_VALID = "CertificatesValid"
TLS_DISABLED = "TLSDisabled"
CERTIFICATE_SECRET_MISSING = "CertificateSecretMissing"
CERTIFICATE_INVALID = "CertificateInvalid"
CERTIFICATE_EXPIRING = "CertificateExpiringSoon"
CERTIFICATE_EXPIRED = "CertificateExpired"
CERT_MANAGER_MISSING = "CertManagerNotInstalled"
CREDENTIALS_INVALID = "CredentialsInvalid"
CERTIFICATE_RENEWAL_FAILED = "CertificateRenewalFailed"
# How soon a refused renewal is tried again.
RENEWAL_RETRY = datetime.timedelta(seconds=30)
CERT_MANAGER_API = "cert-manager.io/v1"


def _iso(ts: datetime.datetime) -> str:
    return ts.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _lifetime(text: str) -> datetime.timedelta:
    return datetime.timedelta(seconds=duration_seconds(text))


# ------------------------------------------------------------------------------ pure plans


@dataclass
class CAPlan:
    """The CA Secret's desired data, and what changed (for logs and Events)."""

    data: dict[str, str]
    annotations: dict[str, str]
    active: certs.KeyPair
    bundle: str
    changes: list[str] = field(default_factory=list)


def plan_ca(
    current: dict[str, str] | None,
    annotations: dict[str, str],
    now: datetime.datetime,
    *,
    name: str,
    lifetime: datetime.timedelta,
    rotation_delay: datetime.timedelta,
) -> CAPlan:
    """What the CA Secret should hold at `now`, starting from its current data (decoded)."""
    data = dict(current or {})
    notes: list[str] = []
    active: certs.KeyPair | None = None
    try:
        active = certs.KeyPair(data[TLS_CERT], data[TLS_KEY])
        if not certs.key_matches(active.cert, active.key_pem) or certs.expired(now, active.cert):
            active = None
    except (KeyError, certs.CertificateError):
        active = None
    ann = dict(annotations)
    if active is None:
        active = certs.make_ca(f"{name} CA", now, lifetime)
        notes.append("created the CA" if not current else "replaced an unusable CA")
        data = {}
        ann.pop(NEXT_SINCE, None)
    nxt: certs.KeyPair | None = None
    if NEXT_CERT in data and NEXT_KEY in data:
        try:
            nxt = certs.KeyPair(data[NEXT_CERT], data[NEXT_KEY])
            nxt.cert  # noqa: B018 - parse check
        except certs.CertificateError:
            nxt = None
    old_bundle = data.get(TLS_CA, "")
    if nxt is None and certs.needs_renewal(now, active.cert):
        nxt = certs.make_ca(f"{name} CA", now, lifetime)
        ann[NEXT_SINCE] = _iso(now)
        notes.append("started a CA rotation (new CA added to the bundle)")
    if nxt is not None:
        since = _parse_iso(ann.get(NEXT_SINCE)) or now
        ann.setdefault(NEXT_SINCE, _iso(since))
        if now >= since + rotation_delay or certs.expired(now, active.cert):
            old_bundle = certs.bundle(old_bundle, active.cert_pem)
            active, nxt = nxt, None
            ann.pop(NEXT_SINCE, None)
            notes.append("the new CA issues certificates from now on")
    try:
        bundle = certs.bundle(active.cert_pem, nxt.cert_pem if nxt else "", old_bundle, now=now)
    except certs.CertificateError:
        bundle = certs.bundle(active.cert_pem, nxt.cert_pem if nxt else "", now=now)
    new_data = {TLS_CERT: active.cert_pem, TLS_KEY: active.key_pem, TLS_CA: bundle}
    if nxt is not None:
        new_data[NEXT_CERT] = nxt.cert_pem
        new_data[NEXT_KEY] = nxt.key_pem
    if current and new_data.get(TLS_CA) != current.get(TLS_CA) and not notes:
        notes.append("dropped expired CAs from the bundle")
    return CAPlan(new_data, ann, active, bundle, notes)


def renewal_reason(
    current: dict[str, str] | None,
    ca: certs.KeyPair,
    names: list[str],
    now: datetime.datetime,
) -> str | None:
    """Why a server certificate Secret must be (re-)issued by `ca`, or None if it is fine."""
    if not current or TLS_CERT not in current or TLS_KEY not in current:
        return "missing"
    try:
        cert = certs.load_cert(current[TLS_CERT])
    except certs.CertificateError:
        return "unreadable certificate"
    if not certs.key_matches(cert, current[TLS_KEY]):
        return "key does not match the certificate"
    if not certs.signed_by(cert, ca.cert):
        return "issued by another CA"
    if not certs.covers(cert, names):
        return "names changed"
    if certs.needs_renewal(now, cert):
        return "two thirds of its lifetime passed"
    return None


def plan_server_cert(
    current: dict[str, str] | None,
    ca: certs.KeyPair,
    bundle: str,
    cluster: str,
    names: list[str],
    now: datetime.datetime,
    lifetime: datetime.timedelta,
) -> tuple[dict[str, str], str | None]:
    """The desired data of a Cluster's certificate Secret and why it was re-issued (or None).

    A certificate that is still fine is kept; only its `ca.crt` follows the bundle.
    """
    reason = renewal_reason(current, ca, names, now)
    if reason is None:
        assert current is not None
        return {TLS_CERT: current[TLS_CERT], TLS_KEY: current[TLS_KEY], TLS_CA: bundle}, None
    pair = certs.make_server_cert(ca, cluster, names, now, lifetime)
    return {TLS_CERT: pair.cert_pem, TLS_KEY: pair.key_pem, TLS_CA: bundle}, reason


@dataclass
class CertCheck:
    """A user-provided (or cert-manager) certificate Secret, as checked."""

    status: dict[str, Any]
    reason: str | None = None  # None: fine
    message: str = ""
    blocking: bool = False  # the servers cannot use it at all


def check_user_cert(
    secret: str,
    cluster: str,
    data: dict[str, str] | None,
    now: datetime.datetime,
    *,
    renewable: bool,
) -> CertCheck:
    """Check a certificate Secret the operator does not issue (mode Secrets)."""
    entry: dict[str, Any] = {"secret": secret, "cluster": cluster}
    if data is None:
        return CertCheck(
            {**entry, "problem": "Secret not found"},
            CERTIFICATE_SECRET_MISSING,
            f"Secret {secret} (certificate of {cluster}) does not exist",
            blocking=True,
        )
    missing = [k for k in (TLS_CERT, TLS_KEY, TLS_CA) if k not in data]
    if missing:
        return CertCheck(
            {**entry, "problem": f"keys missing: {', '.join(missing)}"},
            CERTIFICATE_SECRET_MISSING,
            f"Secret {secret} lacks {', '.join(missing)}",
            blocking=True,
        )
    try:
        cert = certs.load_cert(data[TLS_CERT])
        problem = None if certs.key_matches(cert, data[TLS_KEY]) else "key does not match"
        if problem is None:
            problem = certs.verify_chain(cert, data[TLS_CA], now)
    except certs.CertificateError as exc:
        return CertCheck(
            {**entry, "problem": str(exc)}, CERTIFICATE_INVALID, f"Secret {secret}: {exc}", True
        )
    entry.update(
        notAfter=_iso(certs.not_after(cert)),
        renewAfter=_iso(certs.renew_at(cert)),
        fingerprint=certs.fingerprint(cert),
    )
    if problem is not None:
        reason = CERTIFICATE_EXPIRED if problem.startswith("expired") else CERTIFICATE_INVALID
        return CertCheck(
            {**entry, "problem": problem}, reason, f"Secret {secret}: certificate {problem}", True
        )
    if certs.needs_renewal(now, cert) and not renewable:
        msg = (
            f"certificate in Secret {secret} expires at {entry['notAfter']} and nothing renews "
            "it: replace the Secret's tls.crt/tls.key (the servers reload it), or use "
            "issuerRef or mode Managed"
        )
        return CertCheck({**entry, "problem": "expiring, not renewed"}, CERTIFICATE_EXPIRING, msg)
    return CertCheck(entry)


# --------------------------------------------------------------------------------- results


@dataclass
class PkiResult:
    """What ensuring the Secrets did, for the reconciler and the status."""

    ok: bool = True  # False: the servers cannot get their certificates or credentials
    message: str = ""
    reason: str = ""
    supercluster_status: dict[str, Any] = field(default_factory=dict)
    cluster_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    owned_keys: set[tuple[str, str, str]] = field(default_factory=set)  # never prune these
    issued: list[str] = field(default_factory=list)  # "secret: reason"
    expiry: dict[str, float] = field(default_factory=dict)  # secret -> notAfter (unix time)
    # When something is due next (a renewal, a CA rotation step, an expiry warning): the
    # reconciler should run again then, whether or not anything else changes.
    next_due: datetime.datetime | None = None
    # CA bundle(s) the servers' certificates verify against (https monitoring probes)
    trust: str = ""

    def due(self, when: datetime.datetime) -> None:
        """Record that a reconcile is needed at `when` (callers never pass a past time: that
        would make the operator reconcile again at once, in a loop)."""
        if self.next_due is None or when < self.next_due:
            self.next_due = when


def _b64(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def _decode(obj: dict[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    out = {}
    for k, v in (obj.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _owner(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _secret(
    name: str,
    namespace: str,
    lbl: dict[str, str],
    owner: dict[str, Any],
    data: dict[str, str],
    annotations: dict[str, str] | None = None,
    secret_type: str = "Opaque",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": lbl,
        "ownerReferences": [_owner(owner)],
    }
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret_type,
            "data": _b64(data)}  # fmt: skip


def supercluster_labels(name: str) -> dict[str, str]:
    """Labels of the Secrets owned by a SuperCluster (CA, credentials)."""
    return {
        "app.kubernetes.io/part-of": "supercluster",
        "app.kubernetes.io/managed-by": "scoperator",
        LABEL_SUPERCLUSTER: name,
    }


# ------------------------------------------------------------------------------ reconciling


async def ensure_credentials(
    client: KubeClient, namespace: str, sc_body: dict[str, Any], name: str
) -> str | None:
    """Create `<supercluster>-credentials` if absent; a problem message if it is unusable."""
    secret = credentials_secret_name(name)
    current = _decode(await client.get("Secret", namespace, secret))
    if current is None:
        obj = _secret(secret, namespace, supercluster_labels(name), sc_body,
                      links.generate_credentials())  # fmt: skip
        await client.apply(obj)
        return None
    missing = [k for k in links.CREDENTIAL_KEYS if not current.get(k)]
    if missing:
        return f"Secret {secret} lacks {', '.join(missing)}"
    return None


async def ensure_pki(
    client: KubeClient,
    namespace: str,
    sc_body: dict[str, Any],
    supercluster: SuperCluster,
    members: list[tuple[dict[str, Any], Any]],
    topology: Topology,
    now: datetime.datetime | None = None,
) -> PkiResult:
    """Make the credentials and certificate Secrets of one supercluster what they should be."""
    now = now or datetime.datetime.now(datetime.UTC)
    result = PkiResult()
    tls = supercluster.spec.tls
    problem = await ensure_credentials(client, namespace, sc_body, supercluster.name)
    if problem is not None:
        result.ok, result.reason, result.message = False, CREDENTIALS_INVALID, problem
    if tls.mode == "Disabled":
        cond = condition(CERTIFICATES_READY, True, TLS_DISABLED, "TLS is off (mode Disabled)")
        result.supercluster_status = {"conditions": [cond], "tls": {"mode": "Disabled"}}
        for _, model in members:
            result.cluster_status[model.name] = {
                "conditions": [cond],
                "tls": {"mode": "Disabled"},
            }
        return result
    if tls.mode == "Managed":
        await _managed(client, namespace, sc_body, supercluster, members, topology, now, result)
    else:
        await _user_secrets(client, namespace, supercluster, members, topology, now, result)
    return result


async def _managed(
    client: KubeClient,
    namespace: str,
    sc_body: dict[str, Any],
    sc: SuperCluster,
    members: list[tuple[dict[str, Any], Any]],
    topology: Topology,
    now: datetime.datetime,
    result: PkiResult,
) -> None:
    spec = sc.spec.tls.managed
    ca_name = ca_secret_name(sc.name)
    live = await client.get("Secret", namespace, ca_name)
    annotations = {
        k: v
        for k, v in ((live or {}).get("metadata", {}).get("annotations") or {}).items()
        if k == NEXT_SINCE
    }
    plan = plan_ca(
        _decode(live),
        annotations,
        now,
        name=sc.name,
        lifetime=_lifetime(spec.ca_lifetime),
        rotation_delay=_lifetime(spec.ca_rotation_delay),
    )
    if plan.data != _decode(live) or plan.annotations != annotations or live is None:
        obj = _secret(ca_name, namespace, supercluster_labels(sc.name), sc_body, plan.data,
                      plan.annotations or None)  # fmt: skip
        await client.apply(obj)
        result.issued += [f"{ca_name}: {c}" for c in plan.changes]
    ca_cert = plan.active.cert
    result.trust = plan.bundle
    fingerprints = certs.bundle_fingerprints(plan.bundle)
    since = _parse_iso(plan.annotations.get(NEXT_SINCE))
    if since is not None:
        result.due(since + _lifetime(spec.ca_rotation_delay))
    else:
        result.due(certs.renew_at(ca_cert))
    for pem in certs.split_pems(plan.bundle):  # an old CA leaving the bundle
        result.due(certs.not_after(certs.load_cert(pem)))
    base = {
        "mode": "Managed",
        "caFingerprint": certs.fingerprint(ca_cert),
        "caNotAfter": _iso(certs.not_after(ca_cert)),
        "trustedCaFingerprints": fingerprints,
    }
    result.expiry[ca_name] = certs.not_after(ca_cert).timestamp()
    entries = []
    failed: list[str] = []
    lifetime = _lifetime(spec.cert_lifetime)
    for body, model in members:
        secret = sc.spec.tls.cluster_secret(model.name)
        assert secret is not None
        result.owned_keys.add(("Secret", namespace, secret))
        live_cert = await client.get("Secret", namespace, secret)
        current = _decode(live_cert)
        names = certificate_names(topology, model.name)
        data, reason = plan_server_cert(
            current, plan.active, plan.bundle, model.name, names, now, lifetime
        )
        if data != current:
            obj = _secret(secret, namespace, labels(sc.name, model.name), body, data,
                          secret_type="kubernetes.io/tls")  # fmt: skip
            if live_cert is not None and live_cert.get("type") not in (None, "kubernetes.io/tls"):
                obj["type"] = live_cert["type"]  # the type of a Secret is immutable
            try:
                await client.apply(obj)
            except KubeError as exc:
                if current is None or renewal_reason(current, plan.active, names, now) in (
                    "missing",
                    "unreadable certificate",
                    "key does not match the certificate",
                ):
                    raise  # nothing usable to keep: the reconcile fails and is retried
                # The servers keep the certificate they have; say that it is not renewed.
                failed.append(f"{secret}: {reason or 'bundle update'} refused: {exc.message}")
                data = current
            else:
                if reason is not None:
                    result.issued.append(f"{secret}: {reason}")
        cert = certs.load_cert(data[TLS_CERT])
        entry = {
            "secret": secret,
            "cluster": model.name,
            "notAfter": _iso(certs.not_after(cert)),
            "renewAfter": _iso(certs.renew_at(cert)),
            "fingerprint": certs.fingerprint(cert),
        }
        result.expiry[secret] = certs.not_after(cert).timestamp()
        refused = bool(failed) and failed[-1].startswith(f"{secret}:")
        if not refused:
            result.due(certs.renew_at(cert))
        entries.append(entry)
        msg = f"certificate in {secret} valid until {entry['notAfter']}, renewed after "
        msg += entry["renewAfter"]
        cond = condition(CERTIFICATES_READY, True, CERTIFICATES_VALID, msg)
        if refused:
            msg = f"{failed[-1]}; the servers keep the certificate valid until {entry['notAfter']}"
            cond = condition(CERTIFICATES_READY, False, CERTIFICATE_RENEWAL_FAILED, msg)
            entry["problem"] = "renewal refused by the API server"
            result.due(now + RENEWAL_RETRY)
        result.cluster_status[model.name] = {
            "conditions": [cond],
            "tls": {**base, "certificates": [entry]},
        }
    msg = f"{len(entries)} certificates issued by CA {base['caFingerprint'][:23]}…"
    if len(fingerprints) > 1:
        msg += f"; CA rotation: {len(fingerprints)} CAs trusted"
    cond = condition(CERTIFICATES_READY, True, CERTIFICATES_VALID, msg)
    if failed:
        cond = condition(CERTIFICATES_READY, False, CERTIFICATE_RENEWAL_FAILED, "; ".join(failed))
    result.supercluster_status = {
        "conditions": [cond],
        "tls": {**base, "certificates": entries},
    }


async def _user_secrets(
    client: KubeClient,
    namespace: str,
    sc: SuperCluster,
    members: list[tuple[dict[str, Any], Any]],
    topology: Topology,
    now: datetime.datetime,
    result: PkiResult,
) -> None:
    tls = sc.spec.tls
    issuer = tls.issuer_ref
    entries = []
    bad: list[str] = []
    worst: tuple[str, str] | None = None
    for body, model in members:
        secret = tls.cluster_secret(model.name)
        assert secret is not None
        # Never pruned, whoever wrote it (it may carry our labels, e.g. from cert-manager's
        # secretTemplate, or be left from mode Managed under the same name).
        result.owned_keys.add(("Secret", namespace, secret))
        if issuer is not None:
            # wanted even when applying it fails this time; without issuerRef it is pruned
            result.owned_keys.add(("Certificate", namespace, f"{model.name}-tls"))
            problem = await _certificate(client, namespace, sc, body, model.name, secret, topology)
            if problem is not None:
                result.ok, result.reason, result.message = False, CERT_MANAGER_MISSING, problem
                bad.append(model.name)
                worst = (CERT_MANAGER_MISSING, problem)
                result.cluster_status[model.name] = {
                    "conditions": [
                        condition(CERTIFICATES_READY, False, CERT_MANAGER_MISSING, problem)
                    ],  # fmt: skip
                    "tls": {"mode": "Secrets"},
                }
                continue
        data = _decode(await client.get("Secret", namespace, secret))
        check = check_user_cert(secret, model.name, data, now, renewable=issuer is not None)
        entries.append(check.status)
        if check.status.get("notAfter"):
            ts = _parse_iso(check.status["notAfter"])
            if ts is not None:
                result.expiry[secret] = ts.timestamp()
                if ts > now:
                    result.due(ts)
            renew = _parse_iso(check.status.get("renewAfter"))
            if renew is not None and renew > now:
                result.due(renew)
        status: dict[str, Any] = {"mode": "Secrets", "certificates": [check.status]}
        if data and data.get(TLS_CA):
            result.trust += data[TLS_CA].strip() + "\n"
            try:
                status["trustedCaFingerprints"] = certs.bundle_fingerprints(data[TLS_CA])
            except certs.CertificateError:
                pass
        if check.reason is None:
            cond = condition(CERTIFICATES_READY, True, CERTIFICATES_VALID,
                             f"certificate in {secret} valid until {check.status['notAfter']}")  # fmt: skip
        else:
            cond = condition(CERTIFICATES_READY, False, check.reason, check.message)
            bad.append(model.name)
            if worst is None or check.blocking:
                worst = (check.reason, check.message)
        if check.blocking:
            result.ok, result.reason, result.message = False, check.reason or "", check.message
        result.cluster_status[model.name] = {"conditions": [cond], "tls": status}
    if worst is None:
        cond = condition(CERTIFICATES_READY, True, CERTIFICATES_VALID,
                         f"{len(entries)} certificates valid")  # fmt: skip
    else:
        cond = condition(CERTIFICATES_READY, False, worst[0],
                         f"{', '.join(bad)}: {worst[1]}")  # fmt: skip
    result.supercluster_status = {
        "conditions": [cond],
        "tls": {"mode": "Secrets", "certificates": entries},
    }


async def _certificate(
    client: KubeClient,
    namespace: str,
    sc: SuperCluster,
    owner: dict[str, Any],
    cluster: str,
    secret: str,
    topology: Topology,
) -> str | None:
    """Apply the cert-manager Certificate writing `secret`; a problem message on failure."""
    issuer = sc.spec.tls.issuer_ref
    assert issuer is not None
    names = certificate_names(topology, cluster)
    dns = [n for n in names if not _is_ip(n)]
    ips = [n for n in names if _is_ip(n)]
    spec: dict[str, Any] = {
        "secretName": secret,
        "commonName": cluster,
        "dnsNames": dns,
        "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
        "duration": sc.spec.tls.managed.cert_lifetime,
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
        "secretTemplate": {"labels": labels(sc.name, cluster)},
    }
    if ips:
        spec["ipAddresses"] = ips
    obj = {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": {
            "name": f"{cluster}-tls",
            "namespace": namespace,
            "labels": labels(sc.name, cluster),
            "ownerReferences": [_owner(owner)],
        },
        "spec": spec,
    }
    try:
        await client.apply(obj)
    except KubeError as exc:
        if exc.not_found:
            return (
                "issuerRef needs cert-manager, but its Certificate API (cert-manager.io/v1) is "
                "not installed in this Kubernetes cluster"
            )
        return f"Certificate {cluster}-tls was rejected: {exc.message}"
    return None


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True

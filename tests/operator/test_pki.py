"""pki.py's decisions with a moving clock: CA creation, renewal and rotation with an overlap,
server certificate re-issue, checks of user-provided Secrets; which Secrets trigger reconciles;
the certificate metrics."""

from __future__ import annotations

import datetime

from scoperator import certs
from scoperator import metrics as m
from scoperator.handlers import _secret_names
from scoperator.pki import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_EXPIRING,
    CERTIFICATE_INVALID,
    CERTIFICATE_SECRET_MISSING,
    NEXT_CERT,
    NEXT_SINCE,
    check_user_cert,
    plan_ca,
    plan_server_cert,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
CA_LIFE = 30 * DAY
DELAY = datetime.timedelta(minutes=5)


def ca_plan(data: dict | None, ann: dict, now: datetime.datetime):  # noqa: ANN201
    return plan_ca(data, ann, now, name="demo", lifetime=CA_LIFE, rotation_delay=DELAY)


def test_ca_is_created_then_kept() -> None:
    first = ca_plan(None, {}, T0)
    assert first.changes == ["created the CA"]
    assert certs.bundle_fingerprints(first.bundle) == [certs.fingerprint(first.active.cert)]
    again = ca_plan(first.data, first.annotations, T0 + DAY)
    assert again.data == first.data and again.changes == []


def test_ca_rotation_keeps_old_and_new_in_the_bundle_during_the_overlap() -> None:
    first = ca_plan(None, {}, T0)
    old_fp = certs.fingerprint(first.active.cert)
    # at two thirds of the CA's lifetime a next CA joins the bundle, the old one still signs
    t1 = certs.renew_at(first.active.cert)
    start = ca_plan(first.data, first.annotations, t1)
    assert NEXT_CERT in start.data and NEXT_SINCE in start.annotations
    assert certs.fingerprint(start.active.cert) == old_fp
    new_fp = certs.fingerprint(certs.load_cert(start.data[NEXT_CERT]))
    assert certs.bundle_fingerprints(start.bundle) == [old_fp, new_fp]
    # before the rotation delay nothing more happens
    wait = ca_plan(start.data, start.annotations, t1 + DELAY / 2)
    assert wait.data == start.data and wait.changes == []
    # after it the new CA signs; the old one stays trusted until it expires
    promote = ca_plan(wait.data, wait.annotations, t1 + DELAY)
    assert certs.fingerprint(promote.active.cert) == new_fp
    assert NEXT_CERT not in promote.data and NEXT_SINCE not in promote.annotations
    assert set(certs.bundle_fingerprints(promote.bundle)) == {old_fp, new_fp}
    # once the old CA has expired it leaves the bundle
    later = ca_plan(promote.data, promote.annotations, T0 + CA_LIFE + DAY)
    assert certs.bundle_fingerprints(later.bundle) == [new_fp]


def test_unusable_ca_is_replaced() -> None:
    plan = ca_plan({"tls.crt": "junk", "tls.key": "junk"}, {}, T0)
    assert plan.changes == ["replaced an unusable CA"]


def test_server_certificate_issue_keep_renew_and_follow_the_ca() -> None:
    ca = ca_plan(None, {}, T0)
    names = ["east-0.east-headless.ns.svc.cluster.local", "east"]
    data, reason = plan_server_cert(None, ca.active, ca.bundle, "east", names, T0, 9 * DAY)
    assert reason == "missing"
    cert = certs.load_cert(data["tls.crt"])
    assert certs.covers(cert, names) and data["ca.crt"] == ca.bundle
    # fine: kept as is
    same, reason = plan_server_cert(data, ca.active, ca.bundle, "east", names, T0 + DAY, 9 * DAY)
    assert (same, reason) == (data, None)
    # scaled up: a new pod name is not covered
    more = [*names, "east-1.east-headless.ns.svc.cluster.local"]
    _, reason = plan_server_cert(data, ca.active, ca.bundle, "east", more, T0 + DAY, 9 * DAY)
    assert reason == "names changed"
    # two thirds of the lifetime: renewed
    due = certs.renew_at(cert)
    renewed, reason = plan_server_cert(data, ca.active, ca.bundle, "east", names, due, 9 * DAY)
    assert reason == "two thirds of its lifetime passed"
    assert certs.not_after(certs.load_cert(renewed["tls.crt"])) > certs.not_after(cert)
    # a new active CA: re-issued by it
    other = ca_plan(None, {}, T0)
    _, reason = plan_server_cert(data, other.active, other.bundle, "east", names, T0, 9 * DAY)
    assert reason == "issued by another CA"
    # only the bundle changed: certificate kept, ca.crt follows
    bundle = certs.bundle(ca.bundle, other.bundle)
    kept, reason = plan_server_cert(data, ca.active, bundle, "east", names, T0, 9 * DAY)
    assert reason is None and kept["tls.crt"] == data["tls.crt"] and kept["ca.crt"] == bundle


def _user_secret(now: datetime.datetime, life: datetime.timedelta) -> dict[str, str]:
    ca = certs.make_ca("user CA", now, 10 * life)
    pair = certs.make_server_cert(ca, "east", ["east"], now, life)
    return {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem, "ca.crt": ca.cert_pem}


def test_user_secret_checks() -> None:
    data = _user_secret(T0, 9 * DAY)
    ok = check_user_cert("east-tls", "east", data, T0 + DAY, renewable=False)
    assert ok.reason is None and ok.status["notAfter"] == "2026-01-10T00:00:00Z"
    assert ok.status["fingerprint"].startswith("SHA256:")
    missing = check_user_cert("east-tls", "east", None, T0, renewable=False)
    assert (missing.reason, missing.blocking) == (CERTIFICATE_SECRET_MISSING, True)
    keys = check_user_cert("east-tls", "east", {"tls.crt": data["tls.crt"]}, T0, renewable=False)
    assert keys.reason == CERTIFICATE_SECRET_MISSING and "tls.key, ca.crt" in keys.message
    wrong_ca = dict(data, **{"ca.crt": certs.make_ca("x", T0, DAY).cert_pem})
    assert check_user_cert("s", "east", wrong_ca, T0, renewable=False).reason == (
        CERTIFICATE_INVALID
    )
    # past two thirds and nobody renews it: a warning (not blocking), naming the way out
    late = T0 + 7 * DAY
    expiring = check_user_cert("east-tls", "east", data, late, renewable=False)
    assert expiring.reason == CERTIFICATE_EXPIRING and not expiring.blocking
    assert "nothing renews it" in expiring.message
    # cert-manager renews it: no warning
    assert check_user_cert("east-tls", "east", data, late, renewable=True).reason is None
    gone = check_user_cert("east-tls", "east", data, T0 + 10 * DAY, renewable=True)
    assert (gone.reason, gone.blocking) == (CERTIFICATE_EXPIRED, True)


def test_secret_names_that_trigger_a_reconcile() -> None:
    body = {
        "apiVersion": "supercluster.dev/v1alpha1",
        "kind": "SuperCluster",
        "metadata": {"name": "g", "namespace": "ns"},
        "spec": {
            "externalGateways": [
                {
                    "name": "west",
                    "urls": ["nats://w:7222"],
                    "credentialsSecret": "west-creds",
                    "caSecret": "west-ca",
                }
            ]
        },
    }
    names = _secret_names(body, ["east"])
    assert names == {"g-credentials", "g-ca", "east-tls", "west-creds", "west-ca"}
    body["spec"]["tls"] = {
        "mode": "Secrets",
        "clusterSecrets": [{"cluster": "east", "secretName": "e"}],
    }
    assert _secret_names(body, ["east"]) == {"g-credentials", "e", "west-creds", "west-ca"}


def test_certificate_metrics() -> None:
    metrics = m.Metrics()
    metrics.certificate_expiry.set(1.5e9, namespace="ns", supercluster="g", secret="east-tls")
    metrics.certificate_expiry.set(1.6e9, namespace="ns", supercluster="h", secret="x-tls")
    text = metrics.expose()
    assert (
        'scoperator_certificate_expiry_timestamp_seconds{namespace="ns",secret="east-tls",'
        'supercluster="g"} 1500000000' in text
    )
    metrics.certificate_expiry.remove(namespace="ns", supercluster="g")
    assert "east-tls" not in metrics.expose() and "x-tls" in metrics.expose()


# ------------------------------------------------------------- ensure_pki with a fake API


class FakeKube:
    """GET/apply of Secrets in memory; applies of names in `refuse` fail like a 403."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.refuse: set[str] = set()

    async def get(self, kind: str, namespace: str, name: str) -> dict | None:
        import copy

        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    async def apply(self, obj: dict, *, force: bool = True) -> dict:
        from scoperator.kube import KubeError

        meta = obj["metadata"]
        if meta["name"] in self.refuse:
            raise KubeError(403, "Forbidden", "secrets is forbidden", "PATCH", meta["name"])
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj


async def test_managed_renewal_refused_keeps_the_certificate_and_says_so() -> None:
    from scoperator.models import Cluster, SuperCluster
    from scoperator.naming import KubeTarget, Topology
    from scoperator.pki import CERTIFICATE_RENEWAL_FAILED, ensure_pki

    sc_body = {
        "apiVersion": "supercluster.dev/v1alpha1",
        "kind": "SuperCluster",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "sc-uid"},
        "spec": {"tls": {"managed": {"certLifetime": "9h", "caLifetime": "90h"}}},
    }
    cl_body = {
        "apiVersion": "supercluster.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "east", "namespace": "ns", "uid": "east-uid"},
        "spec": {"superCluster": "demo"},
    }
    sc = SuperCluster.model_validate(sc_body)
    east = Cluster.model_validate(cl_body)
    topology = Topology.build(sc, [east], KubeTarget("ns"))
    kube = FakeKube()
    first = await ensure_pki(kube, "ns", sc_body, sc, [(cl_body, east)], topology, now=T0)  # type: ignore[arg-type]
    assert first.ok and [i.split(":")[0] for i in first.issued] == ["demo-ca", "east-tls"]
    assert first.next_due is not None and first.next_due <= T0 + 6 * datetime.timedelta(hours=1)
    issued = kube.objects[("Secret", "ns", "east-tls")]
    # renewal due, but the API server refuses the write: keep the certificate, say so
    kube.refuse.add("east-tls")
    due = T0 + datetime.timedelta(hours=7)
    result = await ensure_pki(kube, "ns", sc_body, sc, [(cl_body, east)], topology, now=due)  # type: ignore[arg-type]
    assert result.ok
    (cond,) = result.cluster_status["east"]["conditions"]
    assert (cond["status"], cond["reason"]) == ("False", CERTIFICATE_RENEWAL_FAILED)
    assert "east-tls" in cond["message"] and "secrets is forbidden" in cond["message"]
    assert kube.objects[("Secret", "ns", "east-tls")] == issued
    assert result.next_due == due + datetime.timedelta(seconds=30)
    (sc_cond,) = result.supercluster_status["conditions"]
    assert sc_cond["status"] == "False"
    # allowed again: renewed, ready
    kube.refuse.clear()
    result = await ensure_pki(kube, "ns", sc_body, sc, [(cl_body, east)], topology, now=due)  # type: ignore[arg-type]
    assert result.cluster_status["east"]["conditions"][0]["status"] == "True"
    assert result.issued == ["east-tls: two thirds of its lifetime passed"]

"""cert-manager Certificates follow `spec.tls.issuerRef` (real kube-apiserver + etcd).

The operator writes one cert-manager `Certificate` per Cluster while `issuerRef` is set; when
the spec leaves it (mode Managed or Disabled) the Certificates are deleted, or cert-manager
would keep rewriting the `<cluster>-tls` Secrets. cert-manager itself is not running: its
Certificate API is a minimal CRD (as in test_operator_tls_kube.py) and this test writes the
Secret cert-manager would.
"""

from __future__ import annotations

import datetime
from typing import Any

from kubernetes import client as k8s
from tests.operator.test_operator_kube import Api, Operator, applied, cluster_doc, cond, wait_for
from tests.operator.test_operator_kube import api as api  # noqa: F401 (fixture)
from tests.operator.test_operator_kube import crds as crds  # noqa: F401 (fixture)
from tests.operator.test_operator_kube import operator as operator  # noqa: F401 (fixture)
from tests.operator.test_operator_tls_kube import (
    CERTIFICATE_CRD,
    _user_cert,
    cert_of,
    sc_doc,
    secret_doc,
)

from scoperator import certs

ISSUER = {"mode": "Secrets", "issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}


def _install_certificate_crd(api: Api) -> None:
    """The Certificate API, served (a 409: another test installed it already)."""
    ext = k8s.ApiextensionsV1Api(api.api)
    try:
        ext.create_custom_resource_definition(CERTIFICATE_CRD)
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise
    wait_for(
        "Certificates served",
        lambda: (
            api.custom.list_namespaced_custom_object(
                "cert-manager.io", "v1", api.ns, "certificates"
            )
            is not None
        ),
    )


def _certificate(api: Api, name: str) -> dict[str, Any] | None:
    """The Certificate, or None once it is gone."""
    try:
        return api.custom.get_namespaced_custom_object(
            "cert-manager.io", "v1", api.ns, "certificates", name
        )
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_leaving_issuer_ref_deletes_the_certificates(operator: Operator, api: Api) -> None:
    _install_certificate_crd(api)
    api.create(sc_doc(tls=ISSUER))
    for name in ("east", "west"):
        api.create(cluster_doc(name))
    for name in ("east", "west"):
        wait_for(f"Certificate {name}-tls", lambda n=name: _certificate(api, f"{n}-tls"), 70)
    # cert-manager writes the Secrets: the Clusters are applied with them
    now = datetime.datetime.now(datetime.UTC)
    user = {n: _user_cert(n, api.ns, now, datetime.timedelta(days=90)) for n in ("east", "west")}
    for name in ("east", "west"):
        api.create(secret_doc(f"{name}-tls", user[name]))
    for name in ("east", "west"):
        wait_for(
            f"{name} applied with cert-manager's Secret", lambda n=name: applied(api, "Cluster", n)
        )

    # issuerRef -> Managed: the Certificates go, the operator issues its own certificates
    patch = {"spec": {"tls": {"mode": "Managed", "issuerRef": None}}}
    api.patch_cr("SuperCluster", "demo", patch)
    for name in ("east", "west"):
        wait_for(
            f"Certificate {name}-tls deleted", lambda n=name: _certificate(api, f"{n}-tls") is None
        )
    ca = wait_for("the operator's CA", lambda: api.secret_data("demo-ca").get("tls.crt"))
    wait_for(
        "east-tls re-issued by the operator's CA",
        lambda: certs.signed_by(cert_of(api, "east-tls"), certs.load_cert(ca)),
    )
    wait_for("east Managed", lambda: cond(api.cr("Cluster", "east"), "CertificatesReady").get(
        "status") == "True" and applied(api, "Cluster", "east"))  # fmt: skip

    # back to issuerRef: Certificates again; then Disabled: gone again
    api.patch_cr("SuperCluster", "demo", {"spec": {"tls": ISSUER}})
    wait_for("Certificate east-tls again", lambda: _certificate(api, "east-tls"))
    api.patch_cr("SuperCluster", "demo", {"spec": {"tls": {"mode": "Disabled", "issuerRef": None}}})
    for name in ("east", "west"):
        wait_for(
            f"Certificate {name}-tls deleted", lambda n=name: _certificate(api, f"{n}-tls") is None
        )
    wait_for("east config without TLS", lambda: "tls {" not in api.config("east"))
    assert operator.alive()

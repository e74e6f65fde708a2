"""TLS and link credentials against a real kube-apiserver + etcd (`scoperator run` subprocess).

Managed mode: the CA, certificate and credential Secrets are created and owned, renewed when
their lifetime is short, and the CA rotates with an overlap bundle. Mode Secrets: bring your own
Secrets; a missing one is a condition, not a crash; an expiring one nobody renews is a Warning
Event. Switching TLS on for a running SuperCluster renders TLS blocks and mounts the
certificates.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from tests.operator.test_operator_kube import (
    Api,
    Operator,
    applied,
    cluster_doc,
    cond,
    cr_when,
    wait_for,
)
from tests.operator.test_operator_kube import api as api  # noqa: F401 (fixture)
from tests.operator.test_operator_kube import crds as crds  # noqa: F401 (fixture)
from tests.operator.test_operator_kube import operator as operator  # noqa: F401 (fixture)

from scoperator import certs

GROUP, VERSION = "supercluster.dev", "v1alpha1"


def sc_doc(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SuperCluster",
        "metadata": {"name": name},
        "spec": spec,
    }


def cert_of(api: Api, secret: str) -> Any:
    return certs.load_cert(api.secret_data(secret)["tls.crt"])


def volume_secrets(api: Api, cluster: str) -> list[str]:
    sts = api.child("StatefulSet", cluster)
    (volume,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
    return [s["secret"]["name"] for s in volume["projected"]["sources"] if "secret" in s]


def test_managed_tls_secrets_created_owned_and_renewed(operator: Operator, api: Api) -> None:
    lifetimes = {"certLifetime": "6s", "caLifetime": "24s", "caRotationDelay": "2s"}
    api.create(sc_doc(tls={"managed": lifetimes}))
    for name in ("east", "west"):
        api.create(cluster_doc(name))
    for name in ("east", "west"):
        wait_for(f"{name} applied", lambda n=name: applied(api, "Cluster", n))
    sc = api.cr("SuperCluster", "demo")
    ca = api.child("Secret", "demo-ca")
    assert ca["metadata"]["ownerReferences"][0]["uid"] == sc["metadata"]["uid"]
    creds = api.secret_data("demo-credentials")
    assert (
        len(creds["route-password"]) >= 24 and creds["route-password"] != creds["gateway-password"]
    )
    east = api.cr("Cluster", "east")
    tls = api.child("Secret", "east-tls")
    assert tls["metadata"]["ownerReferences"][0]["uid"] == east["metadata"]["uid"]
    cert = cert_of(api, "east-tls")
    ca_cert = certs.load_cert(api.secret_data("demo-ca")["tls.crt"])
    assert certs.signed_by(cert, ca_cert)
    assert "east-0.east-headless" in certs.dns_names(cert)[0]
    assert "*.east-headless." + api.ns + ".svc.cluster.local" in certs.dns_names(cert)
    # the servers mount it; the config uses it for routes and gateways
    assert "east-tls" in volume_secrets(api, "east")
    config = api.config("east")
    assert config.count('cert_file: "tls/tls.crt"') == 2 and "verify: true" in config
    auth = api.auth("east")
    assert f'SC_ROUTE_PASSWORD: "{creds["route-password"]}"' in auth
    assert f"route:{creds['route-password']}@east-0.east-headless" in auth
    assert creds["route-password"] not in config
    # status: CertificatesReady, notAfter, CA fingerprint
    sc = wait_for(
        "CertificatesReady on the SuperCluster",
        cr_when(api, "SuperCluster", "demo", lambda s: cond(s, "CertificatesReady")),
    )
    assert cond(sc, "CertificatesReady")["status"] == "True"
    status_tls = sc["status"]["tls"]
    assert status_tls["mode"] == "Managed"
    assert status_tls["caFingerprint"] == certs.fingerprint(ca_cert)
    assert {c["cluster"] for c in status_tls["certificates"]} == {"east", "west"}
    east = api.cr("Cluster", "east")
    assert east["status"]["tls"]["certificates"][0]["secret"] == "east-tls"

    # renewal at two thirds of 6s: a new certificate, same key usage, without any spec change
    first = certs.fingerprint(cert)
    renewed = wait_for(
        "east certificate renewed",
        lambda: (fp := certs.fingerprint(cert_of(api, "east-tls"))) != first and fp,
    )
    assert renewed
    # CA rotation: the bundle holds the old and the new CA during the overlap ...
    old_ca = certs.fingerprint(ca_cert)
    overlap = wait_for(
        "a second CA in the bundle",
        lambda: len(certs.bundle_fingerprints(api.secret_data("east-tls")["ca.crt"])) == 2,
        timeout=40,
    )
    assert overlap
    # ... then the new CA issues the certificates, the old one still trusted until it expires
    wait_for(
        "new CA active",
        lambda: certs.fingerprint(certs.load_cert(api.secret_data("demo-ca")["tls.crt"])) != old_ca,
        timeout=20,
    )
    new_ca = certs.load_cert(api.secret_data("demo-ca")["tls.crt"])
    wait_for(
        "east re-issued by the new CA", lambda: certs.signed_by(cert_of(api, "east-tls"), new_ca)
    )
    metrics = operator.metrics() or {}
    assert metrics.get("scoperator_certificates_issued_total", 0) >= 4
    issued = [e for e in api.events("demo") if e["reason"] == "CertificatesIssued"]
    assert issued and all(e["type"] == "Normal" for e in issued)
    assert any("east-tls: two thirds of its lifetime passed" in e["message"] for e in issued)
    assert any(k.startswith("scoperator_certificate_expiry_timestamp_seconds{") for k in metrics)
    # the StatefulSets never changed for any of this: renewals are file swaps, then reloads
    assert "east-tls" in volume_secrets(api, "east")
    assert operator.alive()


def _user_cert(cluster: str, ns: str, now: datetime.datetime, life: datetime.timedelta) -> Any:
    ca = certs.make_ca("user CA", now, 10 * life)
    names = [f"{cluster}-0.{cluster}-headless.{ns}.svc.cluster.local", cluster]
    pair = certs.make_server_cert(ca, cluster, names, now, life)
    return {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem, "ca.crt": ca.cert_pem}


def secret_doc(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_bring_your_own_secrets_missing_and_expiring(operator: Operator, api: Api) -> None:
    now = datetime.datetime.now(datetime.UTC)
    tls = {
        "mode": "Secrets",
        "secretName": "shared-tls",
        "clusterSecrets": [{"cluster": "east", "secretName": "east-certs"}],
    }
    api.create(
        secret_doc("east-certs", _user_cert("east", api.ns, now, datetime.timedelta(days=90)))
    )
    api.create(sc_doc(tls=tls))
    for name in ("east", "west"):
        api.create(cluster_doc(name))
    # west's Secret (the shared one) is missing: a condition naming it, no crash, no apply
    west = wait_for(
        "west reports the missing certificate",
        cr_when(
            api,
            "Cluster",
            "west",
            lambda c: cond(c, "CertificatesReady").get("reason") == "CertificateSecretMissing",
        ),
    )
    assert "shared-tls" in cond(west, "CertificatesReady")["message"]
    assert cond(west, "ConfigApplied")["status"] == "False"
    east = api.cr("Cluster", "east")
    assert cond(east, "CertificatesReady")["status"] == "True"
    assert operator.alive()
    # created: everyone applied, with the user's Secrets mounted; no Secret of ours issued
    api.create(
        secret_doc("shared-tls", _user_cert("west", api.ns, now, datetime.timedelta(days=90)))
    )
    for name in ("east", "west"):
        wait_for(f"{name} applied", lambda n=name: applied(api, "Cluster", n))
    assert "east-certs" in volume_secrets(api, "east")
    assert "shared-tls" in volume_secrets(api, "west")
    assert ("Secret", "demo-ca") not in api.children()
    assert ("Secret", "east-tls") not in api.children()
    sc = wait_for(
        "SuperCluster certificates ready",
        cr_when(
            api,
            "SuperCluster",
            "demo",
            lambda s: cond(s, "CertificatesReady").get("status") == "True",
        ),
    )
    assert sc["status"]["tls"]["mode"] == "Secrets"

    # the shared certificate is past two thirds of its life and nothing renews it: Warning
    old = _user_cert("west", api.ns, now - datetime.timedelta(days=7), datetime.timedelta(days=9))
    api.core.replace_namespaced_secret("shared-tls", api.ns, secret_doc("shared-tls", old))
    wait_for(
        "west certificate expiring",
        cr_when(
            api,
            "Cluster",
            "west",
            lambda c: cond(c, "CertificatesReady").get("reason") == "CertificateExpiringSoon",
        ),
    )
    events = wait_for(
        "Warning event about the expiring certificate",
        lambda: [
            e
            for e in api.events("west")
            if e["type"] == "Warning" and e["reason"] == "CertificateExpiringSoon"
        ],
    )
    assert "shared-tls" in events[0]["message"]
    # still applied: an expiring certificate still works
    assert applied(api, "Cluster", "west")


def test_switching_tls_on_for_a_running_supercluster(operator: Operator, api: Api) -> None:
    api.create(sc_doc(tls={"mode": "Disabled"}))
    for name in ("east", "west"):
        api.create(cluster_doc(name))
    for name in ("east", "west"):
        wait_for(f"{name} applied", lambda n=name: applied(api, "Cluster", n))
    assert "tls {" not in api.config("east")
    assert "authorization {" in api.config("east")  # credentials even without TLS
    assert volume_secrets(api, "east") == ["east-auth"]
    assert ("Secret", "east-tls") not in api.children()
    sc = api.cr("SuperCluster", "demo")
    assert cond(sc, "CertificatesReady")["reason"] == "TLSDisabled"

    api.patch_cr("SuperCluster", "demo", {"spec": {"tls": {"mode": "Managed"}}})
    for name in ("east", "west"):
        wait_for(f"{name} config with TLS", lambda n=name: "tls {" in api.config(n))
        wait_for(
            f"{name} mounts its certificate", lambda n=name: f"{n}-tls" in volume_secrets(api, n)
        )
    assert api.child("Secret", "west-tls")["type"] == "kubernetes.io/tls"
    wait_for(
        "CertificatesReady after the switch",
        cr_when(
            api,
            "SuperCluster",
            "demo",
            lambda s: cond(s, "CertificatesReady").get("reason") == "CertificatesValid",
        ),
    )
    # and back off: the certificate Secrets are pruned with the TLS blocks
    api.patch_cr("SuperCluster", "demo", {"spec": {"tls": {"mode": "Disabled"}}})
    wait_for("east config without TLS", lambda: "tls {" not in api.config("east"))
    wait_for("east-tls pruned", lambda: ("Secret", "east-tls") not in api.children())


CERTIFICATE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.cert-manager.io"},
    "spec": {
        "group": "cert-manager.io",
        "names": {
            "kind": "Certificate",
            "listKind": "CertificateList",
            "plural": "certificates",
            "singular": "certificate",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_issuer_ref_creates_cert_manager_certificates(operator: Operator, api: Api) -> None:
    """Without cert-manager's CRD: a condition saying so. With it (the API only, this test plays
    cert-manager's part): Certificates with the right SANs, then the Secrets they produce."""
    from kubernetes import client as k8s

    ext = k8s.ApiextensionsV1Api(api.api)
    installed = any(
        c.metadata.name == "certificates.cert-manager.io"
        for c in ext.list_custom_resource_definition().items
    )
    tls = {"mode": "Secrets", "issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}
    api.create(sc_doc(tls=tls))
    api.create(cluster_doc("east"))
    if not installed:
        east = wait_for(
            "east reports that cert-manager is missing",
            cr_when(
                api,
                "Cluster",
                "east",
                lambda c: cond(c, "CertificatesReady").get("reason") == "CertManagerNotInstalled",
            ),
        )
        assert "cert-manager.io/v1" in cond(east, "CertificatesReady")["message"]
        assert cond(east, "ConfigApplied")["status"] == "False"
        ext.create_custom_resource_definition(CERTIFICATE_CRD)
        wait_for(
            "Certificate CRD established",
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(
                    "certificates.cert-manager.io"
                ).status.conditions
                or []
            ),
        )
        # the API server serves a new CRD a moment after Established
        wait_for(
            "Certificates served",
            lambda: (
                api.custom.list_namespaced_custom_object(
                    "cert-manager.io", "v1", api.ns, "certificates"
                )
                is not None
            ),
        )
        # any spec change makes the operator look again (so would its periodic resync)
        api.patch_cr("SuperCluster", "demo", {"spec": {"tls": {"timeout": 3}}})
    certificate = wait_for(
        "Certificate east-tls",
        lambda: api.custom.get_namespaced_custom_object(
            "cert-manager.io", "v1", api.ns, "certificates", "east-tls"
        ),
        timeout=70,  # a retry (30 s) if the new CRD was not served yet to the operator
    )
    spec = certificate["spec"]
    assert spec["secretName"] == "east-tls"
    assert spec["issuerRef"] == {
        "name": "ca-issuer",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert f"east-0.east-headless.{api.ns}.svc.cluster.local" in spec["dnsNames"]
    assert {"server auth", "client auth"} <= set(spec["usages"])
    owner = certificate["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Cluster", "east")
    wait_for(
        "east waits for the Secret",
        cr_when(
            api,
            "Cluster",
            "east",
            lambda c: cond(c, "CertificatesReady").get("reason") == "CertificateSecretMissing",
        ),
    )
    # cert-manager writes the Secret: the servers get it
    now = datetime.datetime.now(datetime.UTC)
    api.create(secret_doc("east-tls", _user_cert("east", api.ns, now, datetime.timedelta(days=90))))
    wait_for("east applied", lambda: applied(api, "Cluster", "east"))
    assert "east-tls" in volume_secrets(api, "east")
    assert cond(api.cr("Cluster", "east"), "CertificatesReady")["status"] == "True"


def test_external_gateway_credentials_and_ca_from_secrets(operator: Operator, api: Api) -> None:
    """Site A's side of docs/multi-kube.md: the other site's gateway credentials and CA bundle
    come from Secrets named in externalGateways; missing ones are named in a condition."""
    spec = {
        "externalGateways": [
            {
                "name": "west",
                "urls": ["nats://gw.west.example.net:7222"],
                "credentialsSecret": "west-gateway-credentials",
                "caSecret": "west-ca",
            }
        ]
    }
    api.create(sc_doc(**spec))
    api.create(cluster_doc("east"))
    east = wait_for(
        "east names the missing Secrets",
        cr_when(api, "Cluster", "east", lambda c: cond(c, "ConfigApplied").get("reason")),
    )
    message = cond(east, "ConfigApplied")["message"]
    assert cond(east, "ConfigApplied")["reason"] == "SecretMissing"
    assert "west-gateway-credentials/gateway-password" in message and "west-ca/ca.crt" in message
    # copied from site B: its gateway credentials and its CA bundle
    now = datetime.datetime.now(datetime.UTC)
    site_b_ca = certs.make_ca("site B", now, datetime.timedelta(days=30))
    for name, data in (
        ("west-gateway-credentials", {"gateway-user": "gateway", "gateway-password": "b-pass"}),
        ("west-ca", {"ca.crt": site_b_ca.cert_pem}),
    ):
        doc = secret_doc(name, data)
        doc["type"] = "Opaque"
        api.create(doc)
    wait_for("east applied", lambda: applied(api, "Cluster", "east"))
    auth_secret = api.secret_data("east-auth")
    assert (
        'SC_GATEWAY_URLS_WEST: ["nats://gateway:b-pass@gw.west.example.net:7222"]'
        in (auth_secret["auth.conf"])
    )
    trusted = set(certs.bundle_fingerprints(auth_secret["gateway-ca.pem"]))
    own_ca = certs.load_cert(api.secret_data("demo-ca")["tls.crt"])
    assert trusted == {certs.fingerprint(own_ca), certs.fingerprint(site_b_ca.cert)}
    config = api.config("east")
    assert 'ca_file: "gateway-ca.pem"' in config and "b-pass" not in config
    assert '{name: "west", urls: $SC_GATEWAY_URLS_WEST}' in config

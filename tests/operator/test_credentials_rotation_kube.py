"""Rotating the link credentials in Kubernetes (real kube-apiserver + etcd, `scoperator run`).

Deleting `<supercluster>-credentials` makes the operator create it again with new random
passwords and re-render every Cluster's `<cluster>-auth` include with them (the servers reload
it; what links see meanwhile is in docs/tls.md). Writing your own values into the Secret works
the same way: the operator only reads it once it exists.
"""

from __future__ import annotations

import base64

from tests.operator.test_operator_kube import Api, Operator, applied, cluster_doc, wait_for
from tests.operator.test_operator_kube import api as api  # noqa: F401 (fixture)
from tests.operator.test_operator_kube import crds as crds  # noqa: F401 (fixture)
from tests.operator.test_operator_kube import operator as operator  # noqa: F401 (fixture)
from tests.operator.test_operator_tls_kube import sc_doc


def _rendered(api: Api, cluster: str, creds: dict[str, str]) -> bool:
    auth = api.auth(cluster)
    return (
        f'SC_ROUTE_PASSWORD: "{creds["route-password"]}"' in auth
        and f'SC_GATEWAY_PASSWORD: "{creds["gateway-password"]}"' in auth
        and f"route:{creds['route-password']}@{cluster}-0.{cluster}-headless" in auth
    )


def test_deleting_or_editing_the_credentials_secret_rotates_them(
    operator: Operator, api: Api
) -> None:
    api.create(sc_doc(tls={"mode": "Disabled"}))
    for name in ("east", "west"):
        api.create(cluster_doc(name))
    for name in ("east", "west"):
        wait_for(f"{name} applied", lambda n=name: applied(api, "Cluster", n))
    old = api.secret_data("demo-credentials")
    for name in ("east", "west"):
        assert _rendered(api, name, old)

    # delete it: a new one with new random passwords, rendered into every Cluster's include
    api.core.delete_namespaced_secret("demo-credentials", api.ns)
    new = wait_for(
        "demo-credentials created again",
        lambda: (d := api.secret_data("demo-credentials")) and d != old and d,
    )
    assert new["route-password"] != old["route-password"]
    assert new["gateway-password"] != old["gateway-password"]
    assert len(new["gateway-password"]) >= 24
    owner = api.child("Secret", "demo-credentials")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("SuperCluster", "demo")
    for name in ("east", "west"):
        wait_for(f"{name}-auth with the new credentials", lambda n=name: _rendered(api, n, new))
        assert old["route-password"] not in api.auth(name)

    # or write chosen values (e.g. the ones another site uses): they are rendered as they are
    chosen = {**new, "gateway-password": "chosen-gateway-password-0123456789"}
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in chosen.items()}
    api.core.patch_namespaced_secret("demo-credentials", api.ns, {"data": encoded})
    for name in ("east", "west"):
        wait_for(f"{name}-auth with the chosen password", lambda n=name: _rendered(api, n, chosen))
    assert api.secret_data("demo-credentials") == chosen  # not overwritten
    assert operator.alive()

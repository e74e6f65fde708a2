"""The observer's https probes check host names where the operator decides them.

Servers are dialled by pod IP; in mode Managed (and with a cert-manager `issuerRef`) the
operator writes the certificates' SANs, so a probe verifies the certificate against the pod's
FQDN (`server_hostname`). A stand-in monitoring endpoint (aiohttp over TLS on 127.0.0.1)
serves `/healthz`, `/varz` and `/gatewayz` with a certificate made here.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from scoperator import certs
from scoperator.naming import pod_fqdn
from scoperator.observe import StaticResolver, monitor_verifies_names, observe_supercluster

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)
FQDN = pod_fqdn("east", 0, "ns", "cluster.local")


async def _json(request: web.Request) -> web.Response:
    answers = {
        "/healthz": {"status": "ok"},
        "/varz": {"version": "2.10.0", "routes": 0},
        "/gatewayz": {"outbound_gateways": {}, "inbound_gateways": {}},
    }
    return web.json_response(answers[request.path])


Serve = Callable[[certs.KeyPair, certs.KeyPair], Any]


@pytest.fixture
async def serve(tmp_path) -> AsyncIterator[Serve]:  # type: ignore[no-untyped-def]
    """Start a monitoring stand-in with a server certificate; returns its host:port."""
    runners: list[web.AppRunner] = []

    async def start(ca: certs.KeyPair, server: certs.KeyPair) -> str:
        (tmp_path / "tls.crt").write_text(server.cert_pem + ca.cert_pem)
        (tmp_path / "tls.key").write_text(server.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        app = web.Application()
        for path in ("/healthz", "/varz", "/gatewayz"):
            app.router.add_get(path, _json)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _bodies(tls: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = {"tls": {**tls, "clients": {"enabled": True}, "monitoring": "HTTPS"}}
    body = {"metadata": {"name": "sc", "namespace": "ns", "generation": 1}, "spec": spec}
    members = [{"metadata": {"name": "east", "generation": 1}, "spec": {"replicas": 1}}]
    return body, members


async def _probe(address: str, ca: certs.KeyPair, tls: dict[str, Any], domain: str | None):  # type: ignore[no-untyped-def]
    body, members = _bodies(tls)
    rnd = await observe_supercluster(
        body,
        members,
        StaticResolver({"east-0": address}),
        timeout=5.0,
        trust=ca.cert_pem,
        cluster_domain=domain,
    )
    return rnd.probes["east-0"]


def test_which_modes_verify_names() -> None:
    assert monitor_verifies_names({})  # Managed is the default
    assert monitor_verifies_names({"tls": {"mode": "Managed"}})
    assert monitor_verifies_names({"tls": {"mode": "Secrets", "issuerRef": {"name": "ca"}}})
    assert not monitor_verifies_names({"tls": {"mode": "Secrets"}})
    assert not monitor_verifies_names({"tls": {"mode": "Disabled"}})


async def test_managed_certificate_for_the_pod_fqdn_passes(serve: Serve) -> None:
    ca = certs.make_ca("sc", NOW, HOUR)
    address = await serve(ca, certs.make_server_cert(ca, "east", [FQDN], NOW, HOUR))
    probe = await _probe(address, ca, {"mode": "Managed"}, "cluster.local")
    assert probe.healthy and probe.error is None, probe
    assert probe.version == "2.10.0"


@pytest.mark.parametrize(
    "tls",
    [{"mode": "Managed"}, {"mode": "Secrets", "issuerRef": {"name": "ca"}}],
    ids=["managed", "issuerRef"],
)
async def test_right_ca_but_not_the_pods_name_is_a_failed_probe(
    serve: Serve, tls: dict[str, Any]
) -> None:
    ca = certs.make_ca("sc", NOW, HOUR)
    wrong = certs.make_server_cert(ca, "east", ["west-0.example.org", "127.0.0.1"], NOW, HOUR)
    address = await serve(ca, wrong)
    probe = await _probe(address, ca, tls, "cluster.local")
    assert not probe.healthy
    assert probe.error is not None and probe.error.startswith("certificate rejected"), probe
    assert "Hostname mismatch" in probe.error and FQDN in probe.error, probe.error


async def test_bring_your_own_secrets_verify_the_chain_only(serve: Serve) -> None:
    ca = certs.make_ca("sc", NOW, HOUR)
    address = await serve(ca, certs.make_server_cert(ca, "x", ["elsewhere.example"], NOW, HOUR))
    probe = await _probe(address, ca, {"mode": "Secrets"}, "cluster.local")
    assert probe.healthy, probe
    # ... but the chain still counts
    other = certs.make_ca("other", NOW, HOUR)
    probe = await _probe(address, other, {"mode": "Secrets"}, "cluster.local")
    assert not probe.healthy and probe.error is not None
    assert probe.error.startswith("certificate rejected"), probe.error


async def test_without_a_cluster_domain_only_the_chain_is_verified(serve: Serve) -> None:
    """Local superclusters (127.0.0.x, no pod names) call the observer without a domain."""
    ca = certs.make_ca("sc", NOW, HOUR)
    address = await serve(ca, certs.make_server_cert(ca, "east", ["localhost"], NOW, HOUR))
    probe = await _probe(address, ca, {"mode": "Managed"}, None)
    assert probe.healthy, probe


@pytest.mark.parametrize(("names", "failures"), [([FQDN], 0), (["127.0.0.1"], 1)])
async def test_operator_rounds_verify_with_the_cluster_domain(
    serve: Serve, names: list[str], failures: int
) -> None:
    """The operator's observer round (handlers.Context) passes its --cluster-domain: a
    certificate for the pod's FQDN passes, one for the IP it dials only does not."""
    from tests.operator.test_handlers_unit import FakeClient

    from scoperator import metrics as m
    from scoperator.handlers import Context, OperatorConfig
    from scoperator.status import StatusWriter

    ca = certs.make_ca("sc", NOW, HOUR)
    address = await serve(ca, certs.make_server_cert(ca, "east", names, NOW, HOUR))
    client = FakeClient()
    ctx = Context(
        OperatorConfig(probe_timeout=5.0, cluster_domain="cluster.local"),
        client,  # type: ignore[arg-type]
        StatusWriter(client, manager="r"),  # type: ignore[arg-type]
        StatusWriter(client, manager="o"),  # type: ignore[arg-type]
        m.Metrics(),
        StaticResolver({"east-0": address}),
    )
    body, members = _bodies({"mode": "Managed"})
    ctx.superclusters[("ns", "sc")] = {"kind": "SuperCluster", **body}
    members[0]["metadata"].update(namespace="ns", uid="uid-east")
    members[0]["spec"]["superCluster"] = "sc"
    ctx.clusters[("ns", "east")] = {"kind": "Cluster", **members[0]}
    ctx.trust[("ns", "sc")] = ca.cert_pem
    await ctx.observe_once()
    assert ctx.metrics.probe_failures.get() == failures

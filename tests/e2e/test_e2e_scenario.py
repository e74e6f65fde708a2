"""What a user of the operator lives through, on real pods (kind or the host node).

One install (conftest.py: helm install of charts/, `kubectl apply -f examples/supercluster.yaml`)
and one client pod serve every step, in this order:

1. the example SuperCluster is Ready, and `kubectl get scl,ncl` shows it as the README says;
2. the seed scenario from a pod: a replier in east, a request from west answered
   "hello from east"; `nats server list` with the system account's password from its Secret;
3. routes and gateways are mutual TLS with the operator's certificates (/varz), and a gateway
   port refuses a peer without the CA's certificate or without the credentials;
4. a steady request stream (nats-py, west → east) keeps every client connected and loses
   nothing while Clusters scale up (east 3, west 2) and down (east 2), a third Cluster comes and
   goes, and a password changes in a referenced Secret;
5. a rolling update to a rebuilt image tag, with lame duck, two servers per Cluster: zero failed
   requests for clients that reconnect as nats-py does;
6. a deleted pod: the Cluster goes Degraded with a Warning Event, then Ready again;
7. `kubectl describe` shows conditions and Events; the operator's metrics answer in-cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from tests.e2e.kube import Kube, wait_until
from tests.e2e.session import CLIENT_POD, IMAGE_NEXT, NS, OP_NS, WAIT, Phase, Stream

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * 3600)]

CONDITIONS = ("Ready", "GatewaysConnected", "ConfigApplied", "ConfigReloaded", "Degraded")


# ------------------------------------------------------------------------------ helpers


def cond(kube: Kube, kind: str, name: str, ctype: str) -> str:
    return kube.condition(kind, name, ctype).get("status", "")


def settled(kube: Kube, clusters: tuple[str, ...]) -> bool:
    """The SuperCluster and each named Cluster Ready, with its status for the current spec."""
    scl = kube.get("supercluster", "demo")
    if scl.get("status", {}).get("clustersTotal") != len(clusters):
        return False
    if cond(kube, "supercluster", "demo", "Ready") != "True":
        return False
    for c in clusters:
        obj = kube.get("cluster.supercluster.dev", c)
        st = obj.get("status", {})
        if st.get("readyServers") != obj["spec"]["replicas"]:
            return False
        if st.get("connectedGateways") != len(clusters) - 1:
            return False
        if cond(kube, "cluster.supercluster.dev", c, "Ready") != "True":
            return False
    return True


def wait_settled(kube: Kube, clusters: tuple[str, ...], what: str) -> None:
    wait_until(lambda: settled(kube, clusters), WAIT, what)


def nats(kube: Kube, *args: str, timeout: float = 30) -> tuple[int, str]:
    """The Go nats CLI in the client pod: (exit code, output)."""
    return kube.result("exec", CLIENT_POD, "--", "nats", *args, timeout=timeout)


def sys_password(kube: Kube) -> str:
    import base64

    data = kube.get("secret", "demo-sys")["data"]["password"]
    return base64.b64decode(data).decode()


def http_json(kube: Kube, url: str) -> Any:
    """GET a URL from inside the cluster (the client pod's Python)."""
    code = f"import urllib.request,sys;sys.stdout.write(urllib.request.urlopen({url!r},timeout=10).read().decode())"
    return json.loads(kube.exec(CLIENT_POD, "python", "-c", code))


def probe(kube: Kube, host: str, port: int, kind: str, *extra: str) -> dict[str, Any]:
    out = kube.exec(
        CLIENT_POD, "python", "/tmp/e2e/linkprobe.py", host, str(port), "--kind", kind, *extra
    )
    return json.loads(out.strip().splitlines()[-1])


def keeps_streaming(
    stream: Stream, before: dict[str, dict[str, Any]], what: str, reconnects_ok: bool = False
) -> dict[str, dict[str, Any]]:
    """After a change: the stream advanced by 40 more answers, nothing failed and (unless the
    change restarts servers) no client was disconnected and no request needed asking again."""
    wait_until(
        lambda: stream.read("requester")["ok"] >= before["requester"]["ok"] + 40,
        120,
        f"40 more answered requests after {what}",
        diagnose=stream.logs,
    )
    after = stream.snapshot()
    req_b, req_a = before["requester"], after["requester"]
    assert req_a["failed"] == req_b["failed"], (
        f"{what}: {req_a['failed'] - req_b['failed']} failed requests "
        f"({req_a['errors']}; last: {req_a['last_error']})\n"
        f"requester timeline: {req_a['events']}\nreplier timeline: {after['replier']['events']}"
    )
    if not reconnects_ok:
        # Nobody moved, so no request may even need asking again ("no responders" retried
        # only covers a replier between two servers while lame duck moves it).
        retried = req_a.get("no_responders_retried", 0) - req_b.get("no_responders_retried", 0)
        assert retried == 0, (
            f"{what}: {retried} requests found no responders (asked again)\n"
            f"requester timeline: {req_a['events']}"
        )
        for role in ("replier", "requester"):
            assert after[role]["disconnects"] == before[role]["disconnects"], (
                f"{what}: the {role} was disconnected ({after[role]})"
            )
    return after


# ------------------------------------------------------------------------------ 1. Ready


def test_example_ready(installed: Kube) -> None:
    """The example reaches Ready; `kubectl get scl,ncl` shows what the README says."""
    kube = installed
    wait_settled(kube, ("east", "west"), "the example SuperCluster Ready with east and west")
    for kind, name in (("supercluster", "demo"), ("cluster.supercluster.dev", "east")):
        for ctype, want in (
            ("Ready", "True"),
            ("GatewaysConnected", "True"),
            ("Degraded", "False"),
        ):
            assert cond(kube, kind, name, ctype) == want, (kind, name, ctype)
    assert cond(kube, "supercluster", "demo", "CertificatesReady") == "True"
    table = kube.kubectl("get", "scl,ncl")
    assert re.search(r"supercluster\.supercluster\.dev/demo\s+2\s+2\s", table), table
    for c in ("east", "west"):
        # NAME SUPERCLUSTER REPLICAS READY-SERVERS GATEWAYS READY
        assert re.search(rf"cluster\.supercluster\.dev/{c}\s+demo\s+1\s+1\s+1\s+True", table), table
    for child in ("statefulset/east", "statefulset/west", "service/east", "configmap/east-config"):
        kube.kubectl("get", child)


# ------------------------------------------------------------------------------ 2. seed


def test_seed_request_from_a_pod(client: Kube) -> None:
    """A replier in east, a request from west answered 'hello from east' (nats CLI, in a pod)."""
    kube = client
    kube.exec(
        CLIENT_POD,
        "sh",
        "-c",
        "nohup nats --server nats://east:4222 reply greet 'hello from east' "
        "> /tmp/e2e/greet.log 2>&1 &",
    )

    def answered() -> str | None:
        code, out = nats(
            kube, "--server", "nats://west:4222", "request", "greet", "", "--timeout=2s"
        )
        return out if code == 0 and "hello from east" in out else None

    out = wait_until(answered, 60, "a request from west answered by east")
    assert "hello from east" in out


def test_nats_server_list(client: Kube) -> None:
    """`nats server list` as the system user, password from the Secret the example made."""
    kube = client
    pw = sys_password(kube)

    def listed() -> str | None:
        code, out = nats(
            kube, "--server", "nats://east:4222", "--user", "sys", "--password", pw,
            "server", "list", "2",
        )  # fmt: skip
        return out if code == 0 and "east-0" in out and "west-0" in out else None

    out = wait_until(listed, 60, "nats server list showing east-0 and west-0")
    assert re.search(r"east-0\s.*\seast\s", out) or "east" in out, out


# ------------------------------------------------------------------------------ 3. TLS


def test_routes_and_gateways_are_mutual_tls(client: Kube) -> None:
    """Every link port requires and verifies TLS with the operator's certificates; a gateway
    port refuses a peer without the CA's certificate, or with it but without the password."""
    kube = client
    host = f"east-0.east-headless.{NS}.svc.cluster.local"
    varz = http_json(kube, f"http://{host}:8222/varz")
    for block in ("cluster", "gateway"):
        assert varz[block].get("tls_required") is True, varz[block]
        assert varz[block].get("tls_verify") is True, varz[block]
    gatewayz = http_json(kube, f"http://{host}:8222/gatewayz")
    assert "west" in gatewayz.get("outbound_gateways", {}), gatewayz

    tls, creds = "/e2e/east-tls", "/e2e/creds"
    cert = ("--cert", f"{tls}/tls.crt", "--key", f"{tls}/tls.key", "--ca", f"{tls}/ca.crt")
    user = kube.exec(CLIENT_POD, "cat", f"{creds}/gateway-user")
    password = kube.exec(CLIENT_POD, "cat", f"{creds}/gateway-password")

    # A link port speaks TLS before anything else: a plaintext peer never gets an INFO.
    plain = probe(kube, host, 7222, "gateway", "--user", user, "--password", password)
    assert plain["outcome"] == "refused" and "info" not in plain, plain
    for label, extra in (
        ("no client certificate", ("--tls",)),
        ("a certificate from another CA", ("--tls", "--foreign-cert")),
    ):
        got = probe(kube, host, 7222, "gateway", *extra, "--user", user, "--password", password)
        assert got["outcome"] == "refused", (label, got)
    wrong = probe(kube, host, 7222, "gateway", "--tls", *cert, "--user", user, "--password", "x")
    assert wrong["outcome"] == "refused" and "Authorization" in wrong["detail"], wrong
    # Positive control: the same probe with what a member has is let in (and verified the
    # server's certificate for the pod's DNS name against the operator's CA).
    good = probe(
        kube, host, 7222, "gateway", "--tls", *cert, "--user", user, "--password", password
    )
    assert good["outcome"] == "accepted", good
    assert good["info"].get("tls_required") is True and good["tls_version"].startswith("TLS"), good
    route = probe(kube, host, 6222, "route", "--tls")
    assert route["outcome"] == "refused", route


# ------------------------------------------------------------------------------ 4. changes


def scale(kube: Kube, cluster: str, replicas: int) -> None:
    kube.kubectl("patch", "cluster.supercluster.dev", cluster, "--type=merge",
                 "-p", json.dumps({"spec": {"replicas": replicas}}))  # fmt: skip


def test_scale_up_and_down_keeps_clients(stream: Stream) -> None:
    """east 1 → 3 and west 1 → 2, then east 3 → 2: the servers the clients are on stay, so
    nobody is disconnected and no request fails. Two servers per Cluster from here on (what a
    rolling update without downtime needs)."""
    kube = stream.kube
    before = stream.snapshot()
    with Phase("step: scale east 1 -> 3, west 1 -> 2"):
        scale(kube, "east", 3)
        scale(kube, "west", 2)
        wait_settled(kube, ("east", "west"), "east at 3 and west at 2 ready servers, Ready")
        routez = http_json(kube, f"http://east-0.east-headless.{NS}.svc.cluster.local:8222/routez")
        assert routez["num_routes"] == 2, routez
        mid = keeps_streaming(stream, before, "scaling up")
    with Phase("step: scale east 3 -> 2"):
        scale(kube, "east", 2)
        wait_settled(kube, ("east", "west"), "east back at 2 servers, Ready")
        wait_until(lambda: kube.result("get", "pod", "east-2")[0] != 0, WAIT, "east-2 gone")
        keeps_streaming(stream, mid, "scaling east down")


NORTH = f"""
apiVersion: supercluster.dev/v1alpha1
kind: Cluster
metadata:
  name: north
  namespace: {NS}
spec:
  superCluster: demo
  replicas: 1
"""


def test_add_and_remove_a_cluster_keeps_clients(stream: Stream) -> None:
    kube = stream.kube
    before = stream.snapshot()
    with Phase("step: add north"):
        kube.apply(NORTH)
        wait_settled(kube, ("east", "west", "north"), "north joined: every Cluster linked to 2")

        def answered() -> bool:
            code, out = nats(kube, "--server", "nats://north:4222", "request", "greet", "",
                             "--timeout=2s")  # fmt: skip
            return code == 0 and "hello from east" in out

        wait_until(answered, 60, "a request from north answered by east")
        mid = keeps_streaming(stream, before, "adding north")
    with Phase("step: remove north"):
        kube.kubectl("delete", "cluster.supercluster.dev", "north", "--wait=true", timeout=WAIT)
        wait_settled(kube, ("east", "west"), "north gone: east and west linked to each other only")
        keeps_streaming(stream, mid, "removing north")


def test_password_change_in_secret_keeps_clients(stream: Stream) -> None:
    """A new password in the Secret the SuperCluster references: every server takes the new
    one and refuses the old (reload, no restart); clients stay connected, no request fails."""
    kube = stream.kube
    before = stream.snapshot()
    old = sys_password(kube)
    new = "sys-rotated-e2e"
    pods = [f"{c}-{i}.{c}-headless" for c in ("east", "west") for i in range(2)]

    def accepted(server: str, password: str) -> bool:
        code, out = nats(kube, "--server", f"nats://{server}:4222", "--user", "sys",
                         "--password", password, "server", "ping", "1", "--timeout=3s")  # fmt: skip
        if code != 0 and "uthorization" not in out:
            raise AssertionError(f"neither accepted nor refused: {out}")
        return code == 0

    with Phase("step: change the sys password"):
        kube.kubectl("patch", "secret", "demo-sys", "--type=merge",
                     "-p", json.dumps({"stringData": {"password": new}}))  # fmt: skip
        for server in pods:
            wait_until(lambda s=server: accepted(s, new) and not accepted(s, old), WAIT,
                       f"{server} taking the new sys password and refusing the old one")  # fmt: skip
        keeps_streaming(stream, before, "changing a password in a referenced Secret")


def east_cert_status(kube: Kube) -> dict[str, Any]:
    """status.tls.certificates[] entry of Secret east-tls on the SuperCluster ({} if none)."""
    tls = kube.get("supercluster", "demo").get("status", {}).get("tls") or {}
    return next((c for c in tls.get("certificates", []) if c.get("secret") == "east-tls"), {})


def served_fingerprint(kube: Kube, host: str) -> str:
    """Fingerprint of the certificate east-0's gateway port presents (what a peer verifies)."""
    tls = "/e2e/east-tls"
    got = probe(kube, host, 7222, "gateway", "--tls", "--cert", f"{tls}/tls.crt",
                "--key", f"{tls}/tls.key", "--ca", f"{tls}/ca.crt")  # fmt: skip
    return str(got.get("peer_fingerprint", ""))


def outbound_cid(kube: Kube, host: str, remote: str) -> int:
    gatewayz = http_json(kube, f"http://{host}:8222/gatewayz")
    return int(gatewayz["outbound_gateways"][remote]["connection"]["cid"])


def test_certificate_renewal_keeps_clients_and_links(stream: Stream) -> None:
    """The operator re-issues a Cluster's certificate (its Secret deleted, as a renewal would
    replace it): the servers load the new one by reload, the gateway link east → west stays the
    same connection, clients stay connected and no request fails."""
    kube = stream.kube
    host = f"east-0.east-headless.{NS}.svc.cluster.local"
    old = east_cert_status(kube)
    assert old.get("fingerprint"), kube.get("supercluster", "demo").get("status", {}).get("tls")
    assert served_fingerprint(kube, host) == old["fingerprint"]
    cid = outbound_cid(kube, host, "west")
    before = stream.snapshot()
    with Phase("step: certificate re-issued and reloaded"):
        kube.kubectl("delete", "secret", "east-tls")
        new = wait_until(
            lambda: (
                (e := east_cert_status(kube)).get("fingerprint") not in (None, old["fingerprint"])
                and e
            ),
            WAIT,
            "a new certificate for east in status.tls",
        )
        wait_until(lambda: served_fingerprint(kube, host) == new["fingerprint"], WAIT,
                   "east-0 serving the new certificate (kubelet sync + reload)")  # fmt: skip
        assert outbound_cid(kube, host, "west") == cid, "the gateway link east → west was redialled"
        keeps_streaming(stream, before, "a certificate renewal")


# ------------------------------------------------------------------------------ 5. rolling


def test_rolling_update_loses_no_request(stream: Stream, load_image: Callable[[str], None]) -> None:
    """A rebuilt image tag rolls every server (lame duck first, one pod per Cluster at a time,
    two servers per Cluster); nats-py clients reconnect and not one request fails."""
    kube = stream.kube
    with Phase("image: rebuilt tag"):
        load_image(IMAGE_NEXT)
    before = stream.snapshot()
    with Phase("step: rolling update"):
        kube.kubectl("patch", "supercluster", "demo", "--type=merge",
                     "-p", json.dumps({"spec": {"image": IMAGE_NEXT}}))  # fmt: skip

        def rolled() -> bool:
            for c in ("east", "west"):
                sts = kube.get("statefulset", c)
                spec_image = sts["spec"]["template"]["spec"]["containers"][0]["image"]
                st = sts.get("status", {})
                if spec_image != IMAGE_NEXT or st.get("updatedReplicas") != sts["spec"]["replicas"]:
                    return False
                # status written for this template, not left over from the previous one
                if st.get("observedGeneration") != sts["metadata"]["generation"]:
                    return False
                for i in range(sts["spec"]["replicas"]):
                    pod = kube.get("pod", f"{c}-{i}")
                    if pod["spec"]["containers"][0]["image"] != IMAGE_NEXT:
                        return False
                if st.get("currentRevision") != st.get("updateRevision"):
                    return False
            return settled(kube, ("east", "west"))

        wait_until(rolled, WAIT * 2, "both StatefulSets rolled to the new image and Ready")
        after = keeps_streaming(stream, before, "the rolling update", reconnects_ok=True)
    assert after["requester"]["reconnects"] + after["replier"]["reconnects"] > (
        before["requester"]["reconnects"] + before["replier"]["reconnects"]
    ), "no client reconnected: did the servers really restart?"
    for pod in ("east-0", "east-1", "west-0", "west-1"):
        assert kube.get("pod", pod)["spec"]["containers"][0]["image"] == IMAGE_NEXT


# ------------------------------------------------------------------------------ 6. faults


def test_deleted_pod_degraded_then_ready(client: Kube) -> None:
    """Deleting west-0: the Cluster reports Degraded (or not Ready) with a Warning Event, then
    Ready again with a Normal one once the StatefulSet has recreated the pod."""
    kube = client

    def seen() -> dict[str, int]:
        return {e["metadata"]["name"]: e.get("count") or 1 for e in kube.events("Cluster", "west")}

    before = seen()
    # A server with a client on it, as servers in use have: deleting its pod puts it in lame
    # duck mode for the pod's termination. (A server without clients exits at once and its
    # replacement can be Ready within seconds, between two probe rounds: the operator watches
    # its pods and observes at once, so status shows that too.)
    # (asked again until it connects: right after the rolling update, west-0's DNS record may
    # still be on its way to CoreDNS)
    kube.exec(CLIENT_POD, "sh", "-c", "nohup sh -c 'until nats --server "
              "nats://west-0.west-headless:4222 sub e2e.idle; do sleep 1; done' "
              "> /tmp/e2e/idle.log 2>&1 &")  # fmt: skip
    wait_until(lambda: "Subscribing" in kube.exec(CLIENT_POD, "cat", "/tmp/e2e/idle.log"), 60,
               "a client subscribed on west-0",
               diagnose=lambda: kube.exec(CLIENT_POD, "tail", "-5", "/tmp/e2e/idle.log"))  # fmt: skip
    with Phase("step: delete west-0"):
        uid = kube.get("pod", "west-0")["metadata"]["uid"]
        kube.kubectl("delete", "pod", "west-0", "--wait=false")

        def degraded() -> bool:
            return (
                cond(kube, "cluster.supercluster.dev", "west", "Degraded") == "True"
                or cond(kube, "cluster.supercluster.dev", "west", "Ready") == "False"
            )

        wait_until(degraded, WAIT, "Cluster west Degraded (or not Ready) after its pod is deleted",
                   interval=0.5)  # fmt: skip
        wait_until(lambda: kube.get("pod", "west-0")["metadata"]["uid"] != uid, WAIT,
                   "the StatefulSet recreating west-0")  # fmt: skip
        wait_settled(kube, ("east", "west"), "west Ready again")
    new = [
        e
        for e in kube.events("Cluster", "west")
        if (e.get("count") or 1) > before.get(e["metadata"]["name"], 0)
    ]
    warnings = [e for e in new if e.get("type") == "Warning"]
    assert warnings, f"no new Warning Event on Cluster west: {new}"
    assert [e for e in new if e.get("type") == "Normal"], f"no Normal (recovered) Event: {new}"
    described = kube.kubectl("describe", "cluster.supercluster.dev", "west")
    assert warnings[-1]["reason"] in described, described


# ------------------------------------------------------------------------------ 7. UX


def test_describe_shows_conditions_and_events(installed: Kube) -> None:
    kube = installed
    for kind, name in (("supercluster", "demo"), ("cluster.supercluster.dev", "east")):
        text = kube.kubectl("describe", kind, name)
        for ctype in CONDITIONS:
            assert re.search(rf"Type:\s+{ctype}\b", text), (kind, ctype, text)
        assert "Events:" in text, text
    # docs/tls.md: `-o wide` adds the TLS mode and the CA fingerprint; issuing the certificates
    # posted a Normal CertificatesIssued Event on the SuperCluster.
    wide = kube.kubectl("get", "scl", "demo", "-o", "wide")
    fingerprint = kube.get("supercluster", "demo")["status"]["tls"]["caFingerprint"]
    assert "Managed" in wide and fingerprint[:12] in wide, wide
    reasons = {e.get("reason") for e in kube.events("SuperCluster", "demo")}
    assert "CertificatesIssued" in reasons, reasons


def test_operator_metrics_answer_in_cluster(client: Kube) -> None:
    kube = client
    pods = kube.items(
        "pods", "-l", "app.kubernetes.io/name=supercluster-operator", ns=OP_NS
    ) or kube.items("pods", ns=OP_NS)
    ip = pods[0]["status"]["podIP"]
    code = (
        "import urllib.request,sys;"
        f"r=urllib.request.urlopen('http://{ip}:8080/metrics',timeout=10);"
        "sys.stdout.write(str(r.status)+'\\n'+r.read().decode())"
    )
    out = kube.exec(CLIENT_POD, "python", "-c", code)
    assert out.startswith("200"), out[:300]
    assert "scoperator_reconciles_total" in out, out[:2000]
    # docs/tls.md: certificate expiry for alerting, one series per certificate Secret.
    assert re.search(
        r'scoperator_certificate_expiry_timestamp_seconds\{[^}]*secret="east-tls"', out
    ), out

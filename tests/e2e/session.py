"""Shared pieces of the end-to-end tier: names, timings, the client pod and the request stream.

conftest.py (fixtures) and test_e2e_scenario.py (steps) both import this module; it holds no
fixtures, so it is imported once under one name.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from tests.e2e.kube import Kube, wait_until
from tests.tools import natscli_binary, skip_or_fail

NS = "demo"
OP_NS = "supercluster-system"
RELEASE = "sco"
IMAGE = os.environ.get("SC_E2E_IMAGE", "ghcr.io/supercluster/scserver:0.1.0")
# The rolling-update step's rebuilt tag.
IMAGE_NEXT = os.environ.get("SC_E2E_IMAGE_NEXT", IMAGE.rsplit(":", 1)[0] + ":0.1.0-e2e-next")
CLIENT_POD = "e2e-client"
WAIT = float(os.environ.get("SC_E2E_TIMEOUT", "300"))
POD_DIR = Path(__file__).resolve().parent / "pod"

TIMINGS: dict[str, float] = {}
PROVIDER_NOTES: list[str] = []
# The session's Kube, for the failure diagnostics hook.
KUBES: list[Kube] = []


class Phase:
    """Times one phase into TIMINGS (shown in the terminal summary)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Phase:
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        TIMINGS[self.name] = round(time.monotonic() - self.t0, 1)


def client_pod_manifest(image: str) -> str:
    """A pod running the project image idle, with the east server's TLS Secret and the link
    credentials mounted (the probes' positive controls need what a real peer has)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT_POD, "namespace": NS, "labels": {"app": CLIENT_POD}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "env": [
                        {"name": "HOME", "value": "/tmp"},
                        {"name": "PYTHONPATH", "value": "/tmp/e2e/lib"},
                        {
                            "name": "PATH",
                            "value": "/tmp/e2e/bin:/opt/supercluster/bin:/usr/bin:/bin",
                        },
                    ],
                    "volumeMounts": [
                        {"name": "east-tls", "mountPath": "/e2e/east-tls", "readOnly": True},
                        {"name": "creds", "mountPath": "/e2e/creds", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "east-tls", "secret": {"secretName": "east-tls"}},
                {"name": "creds", "secret": {"secretName": "demo-credentials"}},
            ],
        },
    }
    return json.dumps(pod)


def toolbox_tar() -> bytes:
    """nats-py, the Go nats CLI and the pod programs as a tar for `tar -x` in the pod."""
    import nats  # nats-py, a dev dependency of the project

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(
            Path(nats.__file__).parent,
            arcname="lib/nats",
            filter=lambda ti: None if "__pycache__" in ti.name else ti,
        )
        cli = natscli_binary()
        if cli is None:
            skip_or_fail("the Go nats CLI is missing (make natscli)")
        tar.add(cli, arcname="bin/nats")
        for prog in ("reqstream.py", "linkprobe.py"):
            tar.add(POD_DIR / prog, arcname=prog)
    return buf.getvalue()


# ------------------------------------------------------------------------------ stream


class Stream:
    """The replier (east first) and requester (west first) of pod/reqstream.py, in the client
    pod; `snapshot()` reads both programs' counts."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def start(self) -> None:
        for role, servers in (
            ("replier", "nats://east:4222,nats://west:4222"),
            ("requester", "nats://west:4222,nats://east:4222"),
        ):
            self.kube.exec(
                CLIENT_POD,
                "sh",
                "-c",
                f"nohup python /tmp/e2e/reqstream.py {role} --servers {servers} "
                f"--stats /tmp/e2e/{role}.json > /tmp/e2e/{role}.log 2>&1 &",
            )
            if role == "replier":
                wait_until(
                    lambda: self.read("replier").get("subscribed"), 60, "the replier subscribed"
                )

    def read(self, role: str) -> dict[str, Any]:
        return json.loads(self.kube.exec(CLIENT_POD, "cat", f"/tmp/e2e/{role}.json"))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {role: self.read(role) for role in ("replier", "requester")}

    def logs(self) -> str:
        return self.kube.exec(
            CLIENT_POD, "sh", "-c", "tail -n 20 /tmp/e2e/replier.log /tmp/e2e/requester.log"
        )


def diagnostics(kube: Kube) -> str:
    """What a person would look at first when a step fails."""
    out = []
    for args, ns in (
        (("get", "scl,ncl,statefulsets,pods,svc", "-o", "wide"), NS),
        (("get", "scl,ncl", "-o", "yaml"), NS),
        (("get", "events", "--sort-by=.lastTimestamp"), NS),
        (("get", "pods", "-o", "wide"), OP_NS),
        (("logs", f"deployment/{RELEASE}-supercluster-operator", "--tail=80"), OP_NS),
    ):
        code, text = kube.result(*args, ns=ns)
        out.append(f"$ kubectl -n {ns} {' '.join(args)}\n{text[-6000:]}")
    code, names = kube.result("get", "pods", "-l", "app.kubernetes.io/name=scserver", "-o", "name")
    for pod in names.split() if code == 0 else []:
        code, text = kube.result("logs", pod, "--tail=25")
        out.append(f"$ kubectl -n {NS} logs {pod} --tail=25\n{text[-4000:]}")
    return "\n".join(out)

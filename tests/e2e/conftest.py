"""Fixtures of the end-to-end tier: one Kubernetes, one install, shared by every step.

They are module-scoped: the whole scenario is one module, and its cluster is torn down as soon
as the module ends rather than at the end of a `make test` session (other tiers then run on a
quiet machine).

Order of a session: choose the provider (tests/e2e/providers.py: kind where it can really
create a cluster, else the host node) → bring it up → build and load the image → `helm install`
the chart as the README says → `kubectl apply -f examples/supercluster.yaml` → a client pod from
the project image with nats-py and the Go nats CLI copied in → the steps
(test_e2e_scenario.py) → uninstall and tear the cluster down, also when a step failed.

When a step fails, what a person would look at first (objects, conditions, Events, the
operator's log) is attached to its report. Timings of each phase are printed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.e2e.kube import Kube, KubeError, wait_until
from tests.e2e.providers import REPO, Provider, ProviderError, Unavailable, choose_provider
from tests.e2e.session import (
    CLIENT_POD,
    IMAGE,
    KUBES,
    NS,
    OP_NS,
    PROVIDER_NOTES,
    RELEASE,
    TIMINGS,
    WAIT,
    Phase,
    Stream,
    client_pod_manifest,
    diagnostics,
    toolbox_tar,
)
from tests.tools import cache_dir, skip_or_fail

# ------------------------------------------------------------------------------ cluster


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    """The cluster provider, up for the whole session and torn down at its end."""
    chosen, reasons = choose_provider()
    PROVIDER_NOTES[:] = reasons
    if chosen is None:
        skip_or_fail("no Kubernetes for the e2e tier: " + "; ".join(reasons))
    try:
        with Phase(f"{chosen.name}: up"):
            chosen.up()
    except Unavailable as exc:
        _down(chosen)
        skip_or_fail(str(exc))
    except ProviderError:
        _down(chosen)
        raise
    try:
        yield chosen
    finally:
        _down(chosen)


def _down(chosen: Provider) -> None:
    with Phase(f"{chosen.name}: down"):
        try:
            chosen.down()
        except ProviderError as exc:
            PROVIDER_NOTES.append(f"teardown failed: {exc}")
            raise


@pytest.fixture(scope="module")
def image(provider: Provider) -> str:
    """The project image, built from the Dockerfile and loaded into the cluster's nodes."""
    with Phase("image: build + load"):
        provider.load_image(IMAGE)
    return IMAGE


@pytest.fixture(scope="module")
def load_image(provider: Provider) -> Callable[[str], None]:
    """Build the image under another tag and load it (the rolling-update step's new tag)."""
    return provider.load_image


@pytest.fixture(scope="module")
def kube(provider: Provider) -> Kube:
    tools = {}
    for tool in ("kubectl", "helm"):
        cached = cache_dir() / "bin" / tool
        found = str(cached) if cached.is_file() else shutil.which(tool)
        if found is None:
            skip_or_fail(f"{tool} not found (hack/envtest.sh installs it into .cache/bin)")
        tools[tool] = found
    assert provider.kubeconfig is not None
    k = Kube(provider.kubeconfig, NS, kubectl_bin=tools["kubectl"], helm_bin=tools["helm"])
    KUBES[:] = [k]
    return k


# ------------------------------------------------------------------------------ install


@pytest.fixture(scope="module")
def installed(kube: Kube, image: str) -> Iterator[Kube]:
    """The README's install: helm install the chart, apply the example, wait for Ready."""
    repo, tag = image.rsplit(":", 1)
    with Phase("helm install + example Ready"):
        kube.helm(
            "install",
            RELEASE,
            str(REPO / "charts" / "supercluster-operator"),
            "--namespace",
            OP_NS,
            "--create-namespace",
            "--set",
            f"container.image.repository={repo}",
            "--set",
            f"container.image.tag={tag}",
            "--wait",
            "--timeout",
            f"{int(WAIT)}s",
            # extra `helm install` arguments (e.g. --set ...); the tier's default is none, as
            # the README installs it
            *os.environ.get("SC_E2E_HELM_ARGS", "").split(),
            timeout=WAIT + 60,
        )
        kube.kubectl("create", "namespace", NS, ns=None)
        kube.kubectl("apply", "-f", str(REPO / "examples" / "supercluster.yaml"), ns=None)
        kube.kubectl(
            "wait", "supercluster/demo", "--for=condition=Ready", f"--timeout={int(WAIT)}s",
            timeout=WAIT + 30,
        )  # fmt: skip
    try:
        yield kube
    finally:
        # A cluster made for this session goes away whole; a reused one is left clean.
        if os.environ.get("SC_E2E_REUSE") == "1" and os.environ.get("SC_E2E_KEEP") != "1":
            kube.result("delete", "namespace", NS, "--wait=true", "--timeout=180s", timeout=200)
            kube._run([kube.helm_bin, "uninstall", RELEASE, "-n", OP_NS], None, 120, False)


@pytest.fixture(scope="module")
def client(installed: Kube, image: str) -> Kube:
    """The client pod (e2e-client), ready, with its tools unpacked in /tmp/e2e."""
    kube = installed
    with Phase("client pod"):
        kube.apply(client_pod_manifest(image))
        kube.kubectl(
            "wait", f"pod/{CLIENT_POD}", "--for=condition=Ready", f"--timeout={int(WAIT)}s",
            timeout=WAIT + 30,
        )  # fmt: skip
        data = toolbox_tar()
        res = subprocess.run(
            [kube.kubectl_bin, "-n", NS, "exec", "-i", CLIENT_POD, "--", "sh", "-c",
             "mkdir -p /tmp/e2e && tar -C /tmp/e2e -xf -"],
            input=data, capture_output=True, env=kube.env(), timeout=300,
        )  # fmt: skip
        if res.returncode != 0:
            raise KubeError(f"unpacking the tools in {CLIENT_POD}: {res.stderr.decode()[-2000:]}")
        kube.exec(CLIENT_POD, "nats", "--version")
    return kube


# ------------------------------------------------------------------------------ stream


@pytest.fixture(scope="module")
def stream(client: Kube) -> Stream:
    """A steady request stream west → east, answered, before the first change."""
    s = Stream(client)
    s.start()
    wait_until(
        lambda: s.read("requester")["ok"] >= 20, 120, "20 answered requests", diagnose=s.logs
    )
    return s


# ------------------------------------------------------------------------------ reporting


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and KUBES and item.get_closest_marker("e2e") is not None:
        try:
            rep.sections.append(("e2e diagnostics", diagnostics(KUBES[0])))
        except Exception as exc:  # noqa: BLE001 - diagnostics never mask the failure
            rep.sections.append(("e2e diagnostics", f"could not collect: {exc}"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS and not PROVIDER_NOTES:
        return
    terminalreporter.section("e2e tier")
    for note in PROVIDER_NOTES:
        terminalreporter.write_line(f"provider: {note}")
    for name, secs in TIMINGS.items():
        terminalreporter.write_line(f"{secs:7.1f} s  {name}")

"""Which Kubernetes the e2e tier picks, and why (no cluster needed: the probes are faked).

kind is chosen only where it can really create a cluster; a machine with a Docker engine whose
privileged containers fail (kind's nodes are privileged) gets the host node and the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest
from tests.e2e import providers
from tests.e2e.providers import HostNodeProvider, KindProvider, choose_provider, probe_kind


def test_kind_wins_where_it_can_create_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SC_E2E_PROVIDER", raising=False)
    chosen, reasons = choose_provider(lambda: None, lambda: None)
    assert isinstance(chosen, KindProvider), reasons


def test_host_node_when_kind_cannot_and_the_reason_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SC_E2E_PROVIDER", raising=False)
    chosen, reasons = choose_provider(lambda: "privileged containers fail here", lambda: None)
    assert isinstance(chosen, HostNodeProvider)
    assert reasons[0] == "not kind: privileged containers fail here"


def test_nothing_runs_and_both_reasons_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SC_E2E_PROVIDER", raising=False)
    chosen, reasons = choose_provider(lambda: "no docker CLI", lambda: "needs root")
    assert chosen is None
    assert reasons == ["not kind: no docker CLI", "not the host node: needs root"]


def test_forced_provider_and_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_E2E_PROVIDER", "host")
    calls: list[str] = []

    def kind_probe() -> str | None:
        calls.append("kind")
        return None

    chosen, _ = choose_provider(kind_probe, lambda: None)
    assert isinstance(chosen, HostNodeProvider) and calls == []
    monkeypatch.setenv("SC_E2E_PROVIDER", "minikube")
    chosen, reasons = choose_provider(kind_probe, lambda: None)
    assert chosen is None and "'minikube'" in reasons[0]


def _fake_docker(privileged_rc: int, images: str = "debian:bookworm\n"):
    def runner(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if cmd[:2] == ["docker", "info"]:
            return subprocess.CompletedProcess(list(cmd), 0, "20.10.24\n", "")
        if cmd[:3] == ["docker", "image", "ls"]:
            return subprocess.CompletedProcess(list(cmd), 0, images, "")
        if cmd[:2] == ["docker", "pull"]:
            return subprocess.CompletedProcess(list(cmd), 1, "", "no registry")
        if cmd[:2] == ["docker", "run"]:
            assert "--privileged" in cmd and cmd[cmd.index("--user") + 1] == "0"
            err = (
                ""
                if privileged_rc == 0
                else (
                    "WARNING: IPv4 forwarding is disabled.\ndocker: Error response from daemon: "
                    "runc create failed: unable to apply caps\n\nRun 'docker run --help' for more"
                )
            )
            return subprocess.CompletedProcess(list(cmd), privileged_rc, "", err)
        raise AssertionError(f"unexpected command {cmd}")

    return runner


def test_probe_refuses_kind_when_privileged_containers_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(providers.shutil, "which", lambda name: f"/usr/bin/{name}")
    why = probe_kind(_fake_docker(1))
    assert why is not None and "privileged" in why and "unable to apply caps" in why
    assert probe_kind(_fake_docker(0)) is None
    why = probe_kind(_fake_docker(0, images=""))
    assert why is not None and "pulled" in why

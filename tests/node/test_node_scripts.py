"""The host-node scripts (hack/node-up.sh, hack/node-down.sh, hack/build-image.sh, hack/node/):
what can be checked without starting a node. The iptables teardown runs in a network namespace
made for the test (`unshare --net`), so the host's own rules are never touched; the real
bring-up and teardown are exercised by the end-to-end tier (tests/e2e) on the host node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.tools import require_binary, skip_or_fail

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
LIB = HACK / "node" / "lib.sh"


def bash(
    script: str, *, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a bash snippet with hack/node/lib.sh sourced."""
    full = f"set -euo pipefail\n. {LIB}\n{script}"
    return subprocess.run(
        ["bash", "-c", full],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def go_mod_version(path: Path, module: str) -> str:
    """The version of ``module`` that a go.mod requires."""
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", path.read_text(), re.M)
    assert m, f"{module} not required in {path}"
    return m.group(1)


def test_node_pins_the_envtest_kubernetes_version() -> None:
    """One Kubernetes per project: the node's helper module follows hack/envtest (node-up.sh
    refuses to build otherwise)."""
    envtest = go_mod_version(HACK / "envtest" / "go.mod", "k8s.io/kubernetes")
    node = go_mod_version(HACK / "node" / "kube" / "go.mod", "k8s.io/kubernetes")
    assert node == envtest
    res = bash("envtest_kube_version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == envtest


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("supercluster:dev", "docker.io/library/supercluster:dev"),
        ("sc-coredns:v1.12.4", "docker.io/library/sc-coredns:v1.12.4"),
        ("someone/tool:1", "docker.io/someone/tool:1"),
        ("ghcr.io/supercluster/scserver:0.1.0", "ghcr.io/supercluster/scserver:0.1.0"),
        ("registry.k8s.io/pause:3.10-sc", "registry.k8s.io/pause:3.10-sc"),
        ("localhost/x", "localhost/x:latest"),
    ],
)
def test_full_ref_is_the_name_containerd_stores(ref: str, full: str) -> None:
    """The import stamp check looks the image up under the name `ctr images import` gives it."""
    res = bash(f"node_full_ref {ref}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == full


@pytest.mark.parametrize("ref", ["Bad Ref", "UPPER:dev", "x:", "name:tag with space", "-rf:1"])
def test_build_image_rejects_a_bad_reference(ref: str) -> None:
    """A malformed image reference is refused before any engine is started or touched."""
    res = subprocess.run(
        ["bash", str(HACK / "build-image.sh"), "--no-import", ref],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode != 0
    assert "invalid image reference" in res.stderr or "unknown argument" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument: --bogus"),
        (["--timeout", "soon"], "--timeout must be a number"),
    ],
)
def test_node_up_rejects_bad_arguments(args: list[str], message: str) -> None:
    """Bad arguments get a clear error before anything is installed or started."""
    res = subprocess.run(
        ["bash", str(HACK / "node-up.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 1
    assert message in res.stderr


def test_node_down_rejects_bad_arguments() -> None:
    res = subprocess.run(
        ["bash", str(HACK / "node-down.sh"), "--everything"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 1
    assert "unknown argument: --everything" in res.stderr


def test_coredns_manifest_is_filled_in() -> None:
    """Every placeholder of hack/node/coredns.yaml is replaced; the Service has the DNS address
    kubelet hands to pods."""
    res = bash('node_coredns_manifest; echo; echo "DNS=$NODE_DNS_IP"')
    assert res.returncode == 0, res.stderr
    text = res.stdout
    dns = re.search(r"^DNS=(\S+)$", text, re.M)
    assert dns
    assert "@DNS_IP@" not in text and "@IMAGE@" not in text
    assert f"clusterIP: {dns.group(1)}" in text
    assert "image: sc-coredns:" in text
    assert "net.ipv4.ip_unprivileged_port_start" in text


def _netns_tools() -> None:
    """Root, unshare and iptables-legacy/nft with save/restore: what the teardown test needs."""
    if os.geteuid() != 0:
        skip_or_fail("the iptables teardown test needs root (unshare --net)")
    for name in ("unshare", "iptables", "iptables-save", "iptables-restore"):
        require_binary(
            shutil.which(name), f"{name} not installed (apt-get install iptables util-linux)"
        )


def test_iptables_cleanup_removes_only_what_the_node_added(tmp_path: Path) -> None:
    """In a fresh network namespace: chains recorded before the bring-up stay (even when named
    KUBE-*), the chains the node added go with every rule that jumps to them, the FORWARD
    ACCEPTs for the CNI bridge go, and unrelated rules stay."""
    _netns_tools()
    saved = tmp_path / "saved"
    script = f"""
    iptables -w -N KUBE-KEEP
    iptables -w -A INPUT -p tcp --dport 9 -j KUBE-KEEP
    iptables -w -A INPUT -p tcp --dport 7 -j ACCEPT
    mkdir -p {saved}
    iptables-save | awk '/^\\*/ {{ t = substr($0, 2) }} /^:/ {{ print t, substr($1, 2) }}' > {saved}/iptables.chains
    # what a node run adds
    iptables -w -I FORWARD -i "$NODE_CNI_BRIDGE" -m comment --comment "$NODE_IPT_COMMENT" -j ACCEPT
    iptables -w -I FORWARD -o "$NODE_CNI_BRIDGE" -m comment --comment "$NODE_IPT_COMMENT" -j ACCEPT
    iptables -w -t nat -N KUBE-SERVICES
    iptables -w -t nat -N KUBE-SVC-X
    iptables -w -t nat -A KUBE-SERVICES -d 10.201.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -j KUBE-SVC-X
    iptables -w -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    iptables -w -t nat -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    iptables -w -N KUBE-FORWARD
    iptables -w -A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
    iptables -w -N DOCKER-USER
    iptables -w -A FORWARD -g DOCKER-USER
    iptables -w -t mangle -N KUBE-PROXY-CANARY
    iptables -w -t nat -N CNI-HOSTPORT-DNAT
    node_iptables_cleanup {saved}
    iptables-save | grep -v '^#'
    """
    res = subprocess.run(
        ["unshare", "--net", "bash", "-c", f"set -euo pipefail\n. {LIB}\n{script}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    after = res.stdout
    assert ":KUBE-KEEP" in after and "--dport 9 -j KUBE-KEEP" in after
    assert "--dport 7 -j ACCEPT" in after
    for gone in ("KUBE-SERVICES", "KUBE-SVC-X", "KUBE-FORWARD", "DOCKER-USER", "KUBE-PROXY-CANARY"):
        assert gone not in after, after
    assert "CNI-HOSTPORT-DNAT" not in after
    assert "supercluster-node" not in after


def test_iptables_cleanup_without_a_saved_state_only_drops_the_forward_rules(
    tmp_path: Path,
) -> None:
    """Without the record of the first bring-up nothing tells which KUBE-* chains are the node's,
    so none is removed; the comment-tagged FORWARD rules are always the node's."""
    _netns_tools()
    script = f"""
    iptables -w -I FORWARD -i "$NODE_CNI_BRIDGE" -m comment --comment "$NODE_IPT_COMMENT" -j ACCEPT
    iptables -w -t nat -N KUBE-SERVICES
    node_iptables_cleanup {tmp_path / "nothing-saved"}
    iptables-save | grep -v '^#'
    """
    res = subprocess.run(
        ["unshare", "--net", "bash", "-c", f"set -euo pipefail\n. {LIB}\n{script}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert ":KUBE-SERVICES" in res.stdout
    assert "supercluster-node" not in res.stdout


def test_daemons_started_under_the_lock_do_not_hold_it(tmp_path: Path) -> None:
    """node-up takes .cache/node.lock and starts daemons; when it exits the lock must be free even
    though the daemons run on (they once inherited the lock's descriptor, and every later
    node-down waited for it forever)."""
    require_binary(shutil.which("flock"), "flock not installed (util-linux)")
    env = {"SC_CACHE": str(tmp_path), "SC_NODE_LOCKED": ""}
    res = bash('node_lock; node_start sleeper sleep 60; cat "$NODE_RUN/sleeper.pid"', env=env)
    assert res.returncode == 0, res.stderr
    pid = int(res.stdout.split()[-1])
    try:
        os.kill(pid, 0)  # the daemon runs on after the script that started it
        free = subprocess.run(
            ["flock", "-n", str(tmp_path / "node.lock"), "true"], capture_output=True, timeout=10
        )
        assert free.returncode == 0, "the lock is still held after node-up's shell exited"
    finally:
        stop = bash("node_stop -t 5 sleeper", env=env)
    assert stop.returncode == 0, stop.stderr
    assert "stopped sleeper" in stop.stderr
    assert not (tmp_path / "node" / "run" / "sleeper.pid").exists()


def test_a_second_lock_holder_waits_for_the_first(tmp_path: Path) -> None:
    """Two node scripts never run at once: the second says it waits, and gets the lock when the
    first exits."""
    require_binary(shutil.which("flock"), "flock not installed (util-linux)")
    env = {**os.environ, "SC_CACHE": str(tmp_path), "SC_NODE_LOCKED": ""}
    marker = tmp_path / "first-done"
    first = subprocess.Popen(
        ["bash", "-c", f". {LIB}; node_lock; echo locked; read -r _; : > {marker}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "locked"
        second = subprocess.Popen(
            ["bash", "-c", f". {LIB}; node_lock; test -e {marker} && echo after-first"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert second.stderr is not None
        assert "waiting for another node-up/node-down" in second.stderr.readline()
        assert first.stdin is not None
        first.stdin.write("\n")
        first.stdin.close()
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 0 and out.strip() == "after-first"
    finally:
        first.kill()
        first.wait(timeout=10)

"""Operator benchmark: ``python bench/bench_operator.py [--sizes 1,10,50]``.

Against a real kube-apiserver + etcd (tests/kube, built by hack/envtest.sh) and the operator
as a subprocess (`scoperator run -- -A`), for each N:

* create a SuperCluster and N Clusters in a fresh namespace (t0 = before the first create);
* children: time until every member's 5 children exist (ConfigMap, headless and client
  Services, PDB, StatefulSet), i.e. 5N objects;
* converged: time until every member's ConfigMap lists every member's seed (the full mesh is
  rendered everywhere) and every Cluster reports ConfigApplied for its generation;
* join: time from creating one more Cluster until all N+1 configs list it;
* the operator's RSS after the run, its reconcile count and the objects it sent.

Numbers vary with the machine (2 cores here, the API server and etcd share them); compare runs
on the same box.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from tests.kube.apiserver import KubeControlPlane, free_port  # noqa: E402

GROUP, VERSION = "supercluster.dev", "v1alpha1"
SELECTOR = "app.kubernetes.io/managed-by=scoperator"


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metrics(port: int) -> dict[str, float]:
    """The operator's /metrics as series -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def wait(what: str, fn: Any, timeout: float) -> float:
    """Poll fn until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached in {timeout:.0f}s")


class Bench:
    """One control plane + one operator, several namespaces."""

    def __init__(self, kube: KubeControlPlane, log: Path) -> None:
        self.kube = kube
        self.api = kube.api_client()
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.policy = k8s.PolicyV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def install_crds(self) -> None:
        ext = k8s.ApiextensionsV1Api(self.api)
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            ext.create_custom_resource_definition(doc)
            name = doc["metadata"]["name"]
            wait(
                f"{name} established",
                lambda n=name: any(
                    c.type == "Established" and c.status == "True"
                    for c in ext.read_custom_resource_definition(n).status.conditions or []
                ),
                30,
            )

    def start_operator(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "scoperator", "run", "--", "-A",
                    "--metrics-port", str(self.port), "--probe-interval", "5",
                    "--resync-interval", "0",
                ],
                env=self.kube.env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def up() -> bool:
            try:
                metrics(self.port)
                return True
            except OSError:
                return False

        wait("operator up", up, 60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
        self.api.close()

    def create_cr(self, ns: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        plural = {"SuperCluster": "superclusters", "Cluster": "clusters"}[kind]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)

    def counts(self, ns: str) -> int:
        n = len(self.core.list_namespaced_config_map(ns, label_selector=SELECTOR).items)
        n += len(self.core.list_namespaced_service(ns, label_selector=SELECTOR).items)
        n += len(
            self.policy.list_namespaced_pod_disruption_budget(ns, label_selector=SELECTOR).items
        )
        n += len(self.apps.list_namespaced_stateful_set(ns, label_selector=SELECTOR).items)
        return n

    def configs_list(self, ns: str, names: list[str], member: str) -> bool:
        items = self.core.list_namespaced_config_map(ns, label_selector=SELECTOR).items
        configs = {i.metadata.name: (i.data or {}).get("scserver.conf", "") for i in items}
        needle = f"{member}-0.{member}-headless.{ns}.svc"
        return all(needle in configs.get(f"{n}-config", "") for n in names)

    def all_applied(self, ns: str, count: int) -> bool:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "clusters")["items"]
        ok = 0
        for c in items:
            st = c.get("status") or {}
            conds = {x["type"]: x["status"] for x in st.get("conditions") or []}
            if conds.get("ConfigApplied") == "True" and st.get("observedGeneration") == c[
                "metadata"
            ].get("generation"):
                ok += 1
        return ok == count

    def run_size(self, n: int) -> dict[str, Any]:
        ns = f"bench-{n}-{int(time.time())}"
        self.core.create_namespace({"metadata": {"name": ns}})
        names = [f"c{i:03d}" for i in range(n)]
        before = metrics(self.port)
        t0 = time.monotonic()
        self.create_cr(ns, "SuperCluster", "sc", {})
        for name in names:
            self.create_cr(ns, "Cluster", name, {"superCluster": "sc", "replicas": 1})
        t_created = time.monotonic()
        t_children = wait("children", lambda: self.counts(ns) >= 5 * n, 600)
        t_mesh = wait("configs", lambda: self.configs_list(ns, names, names[-1]), 600)
        t_applied = wait("applied", lambda: self.all_applied(ns, n), 600)
        # join one more
        j0 = time.monotonic()
        self.create_cr(ns, "Cluster", "joiner", {"superCluster": "sc", "replicas": 1})
        t_join = wait("join", lambda: self.configs_list(ns, [*names, "joiner"], "joiner"), 600)
        after = metrics(self.port)
        assert self.proc is not None

        def delta(key: str) -> float:
            return after.get(key, 0) - before.get(key, 0)

        return {
            "clusters": n,
            "create_s": t_created - t0,
            "children_s": t_children - t0,
            "converged_s": max(t_mesh, t_applied) - t0,
            "join_s": t_join - j0,
            "reconciles": delta('scoperator_reconciles_total{result="ok"}'),
            "applied": delta("scoperator_applied_objects_total"),
            "rss_mib": rss_mib(self.proc.pid),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--log", help="copy the operator's log to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = []
    with KubeControlPlane() as kube:
        bench = Bench(kube, kube.workdir / "operator.log")
        try:
            bench.install_crds()
            bench.start_operator()
            assert bench.proc is not None
            idle = rss_mib(bench.proc.pid)
            print(
                f"control plane up in {kube.startup_seconds:.1f}s; operator idle RSS {idle:.1f} MiB"
            )
            for n in sizes:
                results.append(bench.run_size(n))
                r = results[-1]
                print(f"  N={n}: children {r['children_s']:.2f}s", flush=True)
        except Exception:
            print((kube.workdir / "operator.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            bench.stop()
            if args.log:
                Path(args.log).write_text((kube.workdir / "operator.log").read_text())
    header = (
        f"{'N':>4} {'create':>8} {'children':>9} {'converged':>10} {'join':>7} "
        f"{'reconciles':>10} {'applied':>8} {'RSS MiB':>8}"
    )
    print(header)
    for r in results:
        print(
            f"{r['clusters']:>4} {r['create_s']:>7.2f}s {r['children_s']:>8.2f}s "
            f"{r['converged_s']:>9.2f}s {r['join_s']:>6.2f}s {r['reconciles']:>10.0f} "
            f"{r['applied']:>8.0f} {r['rss_mib']:>8.1f}"
        )
    print(
        "create = time to POST the SuperCluster and N Clusters; children = until all 5N children "
        "exist; converged = every config lists every member and every Cluster reports "
        "ConfigApplied; join = one more Cluster until all N+1 configs list it (times from the "
        "first create)."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

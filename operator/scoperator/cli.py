"""`scoperator run | render | local | status`.

- `run`: the kopf operator (wired in `scoperator.handlers`, imported only for this command so
  that `render` and `local` work without a cluster or kopf configuration);
- `render -f FILE`: every manifest the operator would apply for the resources in FILE, as one
  YAML stream (server configs appear as readable blocks inside their ConfigMaps);
- `local -f FILE`: the same supercluster as local server processes on loopback;
- `status -n NS NAME`: the supercluster as a table read from the API server
  (`scoperator.status_table`; `hack/kubectl-supercluster` makes it `kubectl supercluster status`).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from scoperator.models import ResourceSet


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (server configs) as literal blocks, so `render` output is readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(objects: list[dict[str, Any]]) -> str:
    """A YAML stream of `objects` (keys in insertion order, configs as literal blocks)."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, width=100)


def load_resources(path: str) -> ResourceSet:
    """Read SuperCluster, Cluster and Secret documents from a file (`-` for stdin)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return ResourceSet.from_documents(list(yaml.safe_load_all(text)))


# ------------------------------------------------------------------------------------- render


def cmd_render(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print manifests (or one cluster's raw config) for the resources in `args.file`."""
    out = out or sys.stdout
    err = err or sys.stderr
    from scoperator.crds import all_crds
    from scoperator.naming import KubeTarget, Topology
    from scoperator.render import render_supercluster, required_refs
    from scoperator.secrets import placeholder_secrets, secrets_from_objects
    from scoperator.toolbox import render_toolbox

    resources = load_resources(args.file)
    for orphan in resources.orphans():
        print(
            f"warning: Cluster {orphan.name} refers to SuperCluster {orphan.spec.super_cluster}, "
            "which is not in the file; skipped",
            file=err,
        )
    known = secrets_from_objects(resources.secrets)
    objects: list[dict[str, Any]] = list(all_crds().values()) if args.with_crds else []
    configs: dict[str, str] = {}
    for sc in resources.superclusters:
        topology = Topology.build(sc, resources.members(sc), KubeTarget(sc.namespace))
        refs = [r for c in topology.clusters for r in required_refs(topology, c.name)]
        missing: dict[str, set[str]] = {}
        for r in refs:
            if r.key not in known.get(r.name, {}):
                missing.setdefault(r.name, set()).add(r.key)
        for name, keys in sorted(missing.items()):
            print(
                f"warning: Secret {name} ({', '.join(sorted(keys))}) is not in the file; "
                "placeholders are rendered instead (the operator creates the link credentials "
                "and certificates itself)",
                file=err,
            )
        values = placeholder_secrets(sc.spec, known, refs)
        rendered = render_supercluster(
            sc, resources.members(sc), values, cluster_domain=args.cluster_domain
        )
        for cluster, manifests in rendered.items():
            objects.extend(manifests)
            configs[cluster] = manifests[0]["data"]["scserver.conf"]
        # the toolbox (spec.toolbox.enabled): its contexts Secret and Deployment, as applied
        domain = KubeTarget(sc.namespace, args.cluster_domain)
        objects.extend(render_toolbox(Topology.build(sc, resources.members(sc), domain), values))
    if args.config:
        if args.config not in configs:
            print(f"error: no cluster {args.config!r} in {args.file}", file=err)
            return 2
        out.write(configs[args.config])
        return 0
    out.write(dump_yaml(objects))
    return 0


# -------------------------------------------------------------------------------------- local


def cmd_local(args: argparse.Namespace) -> int:
    """Run the supercluster in `args.file` as local processes (see `scoperator.local`)."""
    from scoperator.local import run_local

    return run_local(
        load_resources(args.file),
        server_cmd=shlex.split(args.server_cmd) if args.server_cmd else None,
        demo=args.demo,
        port_base=args.port_base,
        workdir=Path(args.workdir) if args.workdir else None,
        timeout=args.timeout,
        supercluster=args.supercluster,
        tls=args.tls,
    )


# ------------------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    """Print (or with --watch keep printing) the supercluster's status table."""
    import asyncio

    from scoperator.kube import KubeError
    from scoperator.status_table import run_status

    try:
        return asyncio.run(
            run_status(
                args.namespace,
                args.name,
                watch=args.watch,
                interval=args.interval,
                events=args.events,
                kubeconfig=args.kubeconfig,
                context=args.context,
            )
        )
    except KeyboardInterrupt:
        return 0
    except KubeError as exc:
        print(f"scoperator status: {exc}", file=sys.stderr)
        return 1


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the interval must be a positive number: {text!r}")
    return value


def _event_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the number of events cannot be negative: {text!r}")
    return value


# ---------------------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    """Start the operator; kopf wiring lives in `scoperator.handlers`."""
    try:
        handlers = importlib.import_module("scoperator.handlers")
    except ModuleNotFoundError as exc:
        if exc.name != "scoperator.handlers":
            raise
        print("scoperator run: the operator's handlers are not installed", file=sys.stderr)
        return 1
    result = handlers.run(args.kopf_args)
    return int(result or 0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and `--help`)."""
    parser = argparse.ArgumentParser(
        prog="scoperator", description="Run NATS-style superclusters of scserver on Kubernetes."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kube context")
    run.add_argument(
        "kopf_args", nargs=argparse.REMAINDER, help="extra arguments passed on to `kopf run`"
    )
    run.set_defaults(func=cmd_run)

    render = sub.add_parser("render", help="print the manifests the operator would apply")
    render.add_argument("-f", "--file", required=True, help="YAML with SuperCluster/Cluster/Secret")
    render.add_argument("--cluster-domain", default="cluster.local")
    render.add_argument("--config", metavar="CLUSTER", help="print only this cluster's config")
    render.add_argument("--with-crds", action="store_true", help="include the CRDs")
    render.set_defaults(func=cmd_render)

    local = sub.add_parser("local", help="run the supercluster as local processes on loopback")
    local.add_argument("-f", "--file", required=True, help="YAML with SuperCluster/Cluster/Secret")
    local.add_argument(
        "--server-cmd",
        help="server command (default: this Python's `-m scserver`), e.g. nats-server",
    )
    local.add_argument(
        "--demo", action="store_true", help="request from the last cluster, answered by the first"
    )
    local.add_argument(
        "--port-base", type=int, help="deterministic ports from here (default: free ports)"
    )
    local.add_argument("--workdir", help="where configs and logs go (default: a temp dir)")
    local.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the mesh")
    local.add_argument("--supercluster", help="which SuperCluster of the file (default: the only)")
    local.add_argument(
        "--tls",
        choices=["auto", "on", "off"],
        default="on",
        help="mutual TLS for routes and gateways when the spec asks for it (the default): on = "
        "refuse to run if the server cannot (default), auto = fall back to plaintext, "
        "off = plaintext",
    )
    local.set_defaults(func=cmd_local)

    status = sub.add_parser(
        "status", help="print a SuperCluster, its clusters, servers, gateways and Events"
    )
    status.add_argument("name", help="the SuperCluster's name")
    status.add_argument(
        "-n",
        "--namespace",
        default="",
        help="its namespace (default: the kube context's, else default)",
    )
    status.add_argument("-w", "--watch", action="store_true", help="refresh until Ctrl-C")
    status.add_argument(
        "--interval", type=_positive_seconds, default=2.0, help="seconds between refreshes"
    )
    status.add_argument(
        "--events", type=_event_count, default=10, help="how many recent Events to show"
    )
    status.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    status.add_argument("--context", help="kubeconfig context (default: the current one)")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `scoperator` console script and `python -m scoperator`."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # `run` hands its flags to the operator's own parser (argparse's REMAINDER does not
        # capture a leading `--namespace=x`); any other command must know all of its flags.
        if args.command != "run":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.kopf_args = [*unknown, *args.kopf_args]
    try:
        return int(args.func(args))
    except (OSError, ValueError, LookupError) as exc:
        # Validation and missing files are user errors: one line, not a traceback.
        print(f"scoperator {args.command}: {exc}", file=sys.stderr)
        return 1

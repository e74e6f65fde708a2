"""`scserver` command line, compatible with nats-server's flags where they overlap."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from scserver import NATS_COMPAT_VERSION, __version__, log

USAGE = """\
Usage: scserver [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222)
    -n, --name, --server_name <name> Server name (default: server id)
    -m, --http_port <port>           Use port for http monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    --client_advertise <string>      Client URL to advertise to other servers
    -P, --pid <file>                 File to store PID

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -DV                              Debug and trace

Authorization Options:
    --user <user>                    User required for connections
    --pass <password>                Password required for connections
    --auth <token>                   Authorization token required for connections

Cluster Options:
    --routes <rurl-1, rurl-2>        Routes to solicit and connect
    --cluster <cluster-url>          Cluster URL for solicited routes
    --cluster_name <string>          Cluster Name, if not set one will be dynamically generated

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scserver", add_help=False, usage=argparse.SUPPRESS)
    p.add_argument("-h", "--help", "-help", action="store_true")
    p.add_argument("-v", "--version", "-version", action="store_true")
    p.add_argument("-c", "--config", "-config", dest="config")
    p.add_argument("-t", dest="test", action="store_true")
    p.add_argument("-p", "--port", "-port", type=int)
    p.add_argument("-a", "--addr", "-addr", "--net", "-net", dest="host")
    p.add_argument("-m", "--http_port", "-http_port", type=int)
    p.add_argument("-n", "--name", "-name", "--server_name", "-server_name", dest="server_name")
    p.add_argument("--client_advertise", "-client_advertise")
    p.add_argument("-D", "--debug", "-debug", action="store_true", default=None)
    p.add_argument("-V", "--trace", "-trace", action="store_true", default=None)
    p.add_argument("-DV", dest="debug_trace", action="store_true")
    p.add_argument("-T", "--logtime", "-logtime", nargs="?", const="true", default=None)
    p.add_argument("-l", "--log", "-log", dest="log_file")
    p.add_argument("-P", "--pid", "-pid", dest="pid_file")
    p.add_argument("--user", "-user")
    p.add_argument("--pass", "-pass", dest="password")
    p.add_argument("--auth", "-auth", dest="token")
    p.add_argument("--routes", "-routes")
    p.add_argument("--cluster", "-cluster", "--cluster_listen", dest="cluster")
    p.add_argument("--cluster_name", "-cluster_name")
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line win over the config file (and survive reloads)."""
    out: dict[str, Any] = {}
    for name in (
        "port",
        "host",
        "http_port",
        "server_name",
        "client_advertise",
        "log_file",
        "pid_file",
        "user",
        "password",
        "token",
        "routes",
        "cluster",
        "cluster_name",
    ):
        value = getattr(args, name)
        if value is not None:
            out[name] = value
    if args.debug or args.debug_trace:
        out["debug"] = True
    if args.trace or args.debug_trace:
        out["trace"] = True
    if args.logtime is not None:
        out["logtime"] = str(args.logtime).lower() not in ("false", "0", "no")
    return out


def load_options(args: argparse.Namespace) -> Any:
    from scserver import options

    opts = options.load(args.config) if args.config else options.Options()
    overrides = overrides_from_args(args)
    opts = options.apply_flags(opts, **overrides)
    opts.flag_overrides = overrides
    return opts


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.help:
        sys.stdout.write(USAGE)
        return 0
    if args.version:
        print(f"scserver: v{__version__} (nats-server compatible v{NATS_COMPAT_VERSION})")
        return 0
    if unknown:
        sys.stderr.write(f"scserver: unknown option(s): {' '.join(unknown)}\n{USAGE}")
        return 1
    try:
        opts = load_options(args)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"scserver: {exc}\n")
        return 1
    if args.test:
        for warning in getattr(opts, "warnings", []) or []:
            sys.stderr.write(f"scserver: warning: {warning}\n")
        print(f"scserver: configuration file {args.config or '<none>'} test is successful")
        return 0
    log.configure(opts.debug, opts.trace, opts.logtime, opts.log_file)
    return run(opts)


def run(opts: Any) -> int:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.run(_serve(opts))
    return uvloop.run(_serve(opts))


async def _serve(opts: Any) -> int:
    from scserver.server import Server

    try:
        server = Server(opts)
    except ValueError as exc:  # a certificate file gone or broken since the config was read
        log.logger.error("Error starting server: %s", exc)
        return 1
    try:
        await server.start()
    except OSError as exc:
        log.logger.error("Error listening: %s", exc)
        await server.shutdown()
        return 1
    await server.done.wait()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

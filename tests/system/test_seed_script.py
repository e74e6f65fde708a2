"""The seed's supercluster script, step by step, with scserver in place of nats-server.

Same configs as examples/seed (``include sys.conf``, a gateway block naming both clusters, no
cluster block), on 127.0.0.1 and free ports. Every step also runs against nats-server so both
produce the same observable results.
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import time
from collections.abc import Iterator

import pytest
from tests.system.sysutil import NatsCli, Supercluster, table, wait_sys_ready
from tests.tools import wait_for

pytestmark = pytest.mark.natscli


@pytest.fixture(params=["sc", "go"])
def seed(request: pytest.FixtureRequest) -> Supercluster:
    return request.getfixturevalue(f"{request.param}_seed")


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 10.0) -> str:
    """Read the process's output lines until one matches ``pattern``; return all read."""
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s; got:\n{seen}")


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def save_contexts(cli: NatsCli, seed: Supercluster) -> None:
    east, west = seed.node("n1"), seed.node("n2")
    outs = [
        cli.run("context", "save", "east", "--server", east.url).stdout,
        cli.run(
            "context",
            "save",
            "east-sys",
            "--server",
            east.url,
            "--user",
            "sys",
            "--password",
            "sys",
        ).stdout,
        cli.run("context", "save", "west", "--server", west.url).stdout,
    ]
    for name, out in zip(("east", "east-sys", "west"), outs, strict=True):
        assert f'NATS Configuration Context "{name}"' in out
        path = cli.home / ".config" / "nats" / "context" / f"{name}.json"
        assert str(path) in out
        assert path.is_file()
    assert east.url in outs[0] and "Username: sys" in outs[1] and west.url in outs[2]


def test_seed_script(seed: Supercluster, cli: NatsCli, background: list) -> None:
    wait_sys_ready(cli, seed)
    save_contexts(cli, seed)
    saved = json.loads((cli.home / ".config/nats/context/east-sys.json").read_text())
    assert saved["url"] == seed.node("n1").url and saved["user"] == "sys"

    # nats --context east-sys server list
    out = cli.run("--context", "east-sys", "server", "list").stdout
    rows = {r["Name"]: r for r in table(out, "Server Overview")["rows"]}
    assert {n: (r["Cluster"], r["GWs"], r["Routes"], r["Conns"]) for n, r in rows.items()} == {
        "n1": ("east", "1", "0", "1"),
        "n2": ("west", "1", "0", "0"),
    }
    clusters = {r["Cluster"]: r for r in table(out, "Cluster Overview")["rows"]}
    for name, conns in (("east", "1"), ("west", "0")):
        row = clusters[name]
        assert (row["Node Count"], row["Outgoing Gateways"], row["Incoming Gateways"]) == (
            "1",
            "1",
            "1",
        )
        assert row["Connections"] == conns

    # nats --context east reply 'greet' 'hello from east' &
    replier = cli.popen("--context", "east", "reply", "greet", "hello from east")
    background.append(replier)
    read_until(replier, r'Listening on "greet" in group "NATS-RPLY-22"')

    # nats --context west request 'greet' ''
    res = cli.run("--context", "west", "request", "greet", "", "--timeout", "5s")
    assert re.search(r'Sending request on "greet"', res.stderr), res.stderr
    assert re.search(r"Received with rtt \d+(\.\d+)?(ns|µs|ms|s)$", res.stderr, re.M), res.stderr
    assert res.stdout.strip() == "hello from east"
    # the service saw the request from west
    read_until(replier, r'\[#0\] Received on subject "greet"')


def gateway_interest(node: object, remote: str) -> list[str]:
    """What ``node`` believes cluster ``remote`` is interested in, every account (/gatewayz)."""
    gwz = node.get("/gatewayz?accs=1&subs=1")  # type: ignore[attr-defined]
    out = (gwz.get("outbound_gateways") or {}).get(remote) or {}
    return [s for acc in out.get("accounts") or [] for s in acc.get("subscriptions_list") or []]


def test_request_many_replies(seed: Supercluster, cli: NatsCli, background: list) -> None:
    """Queue-group replier in east, a plain replier in west: `--replies 0` collects both."""
    east, west = seed.node("n1"), seed.node("n2")
    r1 = cli.popen("--server", east.url, "reply", "svc.many", "from east", "--count", "1")
    r2 = cli.popen(
        "--server", west.url, "reply", "svc.many", "from west", "--queue", "w", "--count", "1"
    )
    background.extend([r1, r2])
    read_until(r1, "Listening on")
    read_until(r2, "Listening on")
    # gateway queue interest is sent explicitly (interest-only for queue subs): wait until east
    # knows west's queue subscriber, instead of a fixed sleep
    wait_for(
        lambda: any("svc.many" in s for s in gateway_interest(east, "west")),
        15,
        0.05,
        "east to learn west's queue interest in svc.many",
    )
    res = cli.run(
        "--server",
        east.url,
        "request",
        "svc.many",
        "",
        "--replies",
        "0",
        "--reply-timeout",
        "1s",
        "--timeout",
        "3s",
        "--raw",
    )
    replies = sorted(line for line in res.stdout.splitlines() if line)
    assert replies == ["from east", "from west"], res.stdout
    # each replier answered once, then drained and exited (--count 1)
    for r in (r1, r2):
        read_until(r, r"Exiting")
        r.wait(5)


def test_pub_sub_count_across_gateway(seed: Supercluster, cli: NatsCli, background: list) -> None:
    east, west = seed.node("n1"), seed.node("n2")
    sub = cli.popen("--server", west.url, "sub", "seed.events.>", "--count", "3")
    background.append(sub)
    read_until(sub, r'Subscribing on "?seed\.events\.>')
    res = cli.run(
        "--server",
        east.url,
        "pub",
        "seed.events.x",
        "msg {{ Count }}",
        "--count",
        "3",
    )
    assert "Published" in res.stdout + res.stderr
    out, _ = sub.communicate(timeout=10)
    assert sub.returncode == 0
    got = re.findall(r'\[#(\d)\] Received on "(\S+)"\n(.*)\n', out)
    assert got == [(str(i), "seed.events.x", f"msg {i}") for i in (1, 2, 3)], out


def test_anonymous_user_gets_no_sys_answers(seed: Supercluster, cli: NatsCli) -> None:
    """`nats --context east server list` ($G, as the seed allows) is refused."""
    east = seed.node("n1")
    res = cli.run("--server", east.url, "server", "list", "--timeout", "1s", check=False)
    assert res.returncode != 0
    assert "no results received, ensure the account used has system privileges" in res.stderr
    res = cli.run("--server", east.url, "server", "ping", "--timeout", "1s", check=False)
    assert res.returncode != 0
    assert "503 status from $SYS.REQ.SERVER.PING" in res.stdout + res.stderr
    res = cli.run("--server", east.url, "server", "info", "n2", "--timeout", "1s", check=False)
    assert res.returncode != 0

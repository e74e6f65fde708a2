"""`scoperator local`: the rendered supercluster as real server processes on loopback.

Both the real Go nats-server and scserver run the configs here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nats
import pytest
from nats.errors import NoServersError
from tests.operator.helpers import EXAMPLES, ROOT, load_example
from tests.tools import nats_server_binary, require_binary, scserver_command

from scoperator.local import LocalError, LocalSupercluster, allocate_ports, run_demo
from scoperator.secrets import secrets_from_objects

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nats_server() -> list[str]:
    return [str(require_binary(nats_server_binary(), "nats-server not installed"))]


def scoperator(*args: str) -> list[str]:
    return [sys.executable, "-m", "scoperator", *args]


def test_allocate_ports_are_distinct_and_deterministic_with_a_base() -> None:
    free = allocate_ports(["a-0", "a-1", "b-0"])
    values = [p for ports in free.values() for p in ports.model_dump().values()]
    assert len(values) == len(set(values)) == 12
    based = allocate_ports(["a-0", "b-0"], 20000)
    assert based["b-0"].client == 20001 and based["b-0"].monitor == 23001


@pytest.mark.nats_server
def test_make_demo_with_nats_server(nats_server: list[str]) -> None:
    """What `make demo` runs, with the real nats-server: west's request is answered in east."""
    proc = subprocess.run(
        scoperator(
            "local",
            "-f",
            str(EXAMPLES / "supercluster.yaml"),
            "--demo",
            "--server-cmd",
            nats_server[0],
        ),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello from east" in proc.stdout
    assert "Received with rtt" in proc.stdout
    assert "east: nats://127.0.0.1:" in proc.stdout and "west: nats://127.0.0.1:" in proc.stdout


@pytest.mark.nats_server
async def test_accounts_and_quoted_passwords_work_end_to_end(
    nats_server: list[str], tmp_path: Path
) -> None:
    """Passwords with spaces, quotes and `$` survive Secret -> include -> server -> login."""
    resources = load_example("accounts-secrets.yaml")
    (sc,) = resources.superclusters
    secrets = secrets_from_objects(resources.secrets)
    local = LocalSupercluster(
        sc, resources.members(sc), secrets, nats_server, tmp_path, port_base=None
    )
    local.plan()
    local.start()
    try:
        await local.wait_ready(60)
        blue = local.servers[0].address.client_url
        green = next(s for s in local.servers if s.address.cluster == "green").address.client_url
        carol_password = secrets["ops-users"]["carol"]
        assert '"' in carol_password and "$" in carol_password
        opts = {"allow_reconnect": False, "connect_timeout": 3}
        ops_sub = await nats.connect(blue, user="carol", password=carol_password, **opts)
        ops_pub = await nats.connect(green, user="carol", password=carol_password, **opts)
        app = await nats.connect(green, **opts)  # no credentials: noAuthUser alice, account APP
        try:
            sub = await ops_sub.subscribe("orders")
            await ops_sub.flush()
            deadline = time.monotonic() + 10
            while True:  # until OPS's interest has crossed the gateway: retry until delivered
                await ops_pub.publish("orders", b"from green")
                await ops_pub.flush()
                try:
                    msg = await sub.next_msg(timeout=0.5)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "no delivery across the gateway"
            assert msg.data == b"from green"
            await app.publish("orders", b"wrong account")
            await app.flush()
            # OPS's sentinel from the same server, after APP's message was processed: an APP
            # message that reached OPS would arrive before it (late retries may come too)
            await ops_pub.publish("orders", b"end")
            await ops_pub.flush()
            seen = []
            while not seen or seen[-1] != b"end":
                seen.append((await sub.next_msg(timeout=10)).data)
            assert b"wrong account" not in seen, seen  # the APP message never reached OPS
        finally:
            for nc in (ops_sub, ops_pub, app):
                await nc.close()
        with pytest.raises((NoServersError, nats.errors.Error, OSError)):
            await nats.connect(blue, user="carol", password="wrong", **opts)
    finally:
        local.stop()


@pytest.mark.nats_server
async def test_demo_function_on_the_three_by_three(nats_server: list[str], tmp_path: Path) -> None:
    resources = load_example("supercluster-3x3.yaml")
    (sc,) = resources.superclusters
    clusters = resources.members(sc)
    local = LocalSupercluster(sc, clusters, {}, nats_server, tmp_path)
    local.plan()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{c}-{i}" for c in ("east", "west", "south") for i in range(3)
    )
    local.start()
    try:
        await local.wait_ready(90)
        text = local.describe()
        assert text.count("monitor http://127.0.0.1:") == 9
        import io

        out = io.StringIO()
        assert await run_demo(local, clusters, out) == 0
        assert "hello from east" in out.getvalue()
    finally:
        local.stop()


@pytest.mark.nats_server
def test_ctrl_c_stops_every_server(nats_server: list[str], tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        scoperator(
            "local",
            "-f",
            str(EXAMPLES / "supercluster.yaml"),
            "--server-cmd",
            nats_server[0],
            "--workdir",
            str(workdir),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Press Ctrl-C" in text, text
        monitors = [
            line.split("monitor ")[1].split()[0] for line in lines if "monitor http" in line
        ]
        assert len(monitors) == 2
        for url in monitors:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        # communicate() keeps reading stdout: an operator blocked on a full pipe would never
        # exit; what it printed after the interrupt is shown if it does not stop in time
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
            raise AssertionError(f"still running 60 s after SIGINT:\n{rest}") from None
        assert proc.returncode == 0, rest
        for url in monitors:
            with pytest.raises(OSError):
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
        assert (workdir / "east-0" / "scserver.conf").exists()  # --workdir is kept
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_server_that_cannot_start_is_reported(tmp_path: Path) -> None:
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    local = LocalSupercluster(
        sc,
        resources.members(sc),
        secrets_from_objects(resources.secrets),
        [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        tmp_path,
    )
    local.plan()
    local.start()
    try:
        with pytest.raises(LocalError, match="exited with 3"):
            asyncio.run(local.wait_ready(20))
    finally:
        local.stop()


def test_missing_supercluster_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("---\n")
    proc = subprocess.run(
        scoperator("local", "-f", str(path)), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "0 SuperClusters" in proc.stderr


def test_make_demo_with_scserver() -> None:
    """`make demo` exactly (default server command: scserver)."""
    require_binary(scserver_command(), "scserver command (pip install -e .)")
    proc = subprocess.run(
        scoperator("local", "-f", str(EXAMPLES / "supercluster.yaml"), "--demo"),
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello from east" in proc.stdout

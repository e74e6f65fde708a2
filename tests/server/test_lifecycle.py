"""scserver as a process: -t, --help/--version, flags, signals, reload, config watching, lame duck."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import nats
import pytest
from tests.server.conftest import EOF, RawClient, impl_command
from tests.tools import LOOPBACK, free_port, http_get_json, wait_for


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*impl_command("scserver"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def users_conf(*users: tuple[str, str]) -> str:
    entries = ", ".join(f"{{user: {u}, password: {p}}}" for u, p in users)
    return f"authorization {{ users: [ {entries} ] }}\n"


async def _connect(url: str, **kw):
    return await nats.connect(url, allow_reconnect=False, connect_timeout=3, **kw)


def _can_connect(port: int, user: str, password: str) -> bool:
    with RawClient(port) as c:
        c.send(f'CONNECT {{"verbose":false,"user":"{user}","pass":"{password}"}}\r\nPING\r\n')
        return c.lines(timeout=3) == ["PONG"]


# --- command line ---------------------------------------------------------------------------


def test_config_test_good_and_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text("port: 4333\nmax_payload: 2048\n")
    res = run_cli("-t", "-c", str(good))
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("port: 4333\n\nmax_payload: {\n")
    res = run_cli("-t", "-c", str(bad))
    assert res.returncode != 0
    assert f"{bad}:" in res.stderr, res.stderr
    bad2 = tmp_path / "bad2.conf"
    bad2.write_text('port: 4333\nmax_payload: 2048\nping_max: "many"\n')
    res = run_cli("-t", "-c", str(bad2))
    assert res.returncode != 0
    assert f"{bad2}:3:" in res.stderr, res.stderr
    missing = run_cli("-t", "-c", str(tmp_path / "nope.conf"))
    assert missing.returncode != 0 and missing.stderr


def test_help_and_version() -> None:
    res = run_cli("--help")
    assert res.returncode == 0 and "Usage:" in res.stdout and "--port" in res.stdout
    res = run_cli("--version")
    assert res.returncode == 0 and "scserver" in res.stdout and "v" in res.stdout
    res = run_cli("--no-such-flag")
    assert res.returncode != 0 and "unknown" in res.stderr


def test_flags(servers, tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    pid_file = tmp_path / "sc.pid"
    log_file = tmp_path / "sc.log"
    sp = servers.start(
        "scserver",
        use_config=False,
        args=[
            "-p", str(port), "-a", LOOPBACK, "-m", str(http_port), "-n", "flagged",
            "--pid", str(pid_file), "-l", str(log_file), "-DV",
        ],
        wait=False,
    )  # fmt: skip
    sp.port, sp.http_port = port, http_port
    sp.wait_ready(15)
    with RawClient(port) as c:
        assert c.info["server_name"] == "flagged"
        assert c.info["port"] == port and c.info["host"] == LOOPBACK
        c.connect()
        c.exchange("SUB traced.subject 1\r\nPING\r\n")
    varz = http_get_json(LOOPBACK, http_port, "/varz")
    assert varz["http_port"] == http_port and varz["server_name"] == "flagged"
    assert pid_file.read_text().strip() == str(sp.pid)
    wait_for(lambda: "traced.subject" in log_file.read_text(), 5, what="trace line in -l file")
    text = log_file.read_text()
    assert "[TRC]" in text and "[DBG]" in text and "[INF]" in text
    assert sp.stop() == 0
    assert not pid_file.exists()


def test_debug_only_has_no_trace(servers) -> None:
    sp = servers.start("scserver", args=["-D"])
    with RawClient(sp.port) as c:
        c.connect()
        c.exchange("SUB untraced 1\r\nPING\r\n")
    wait_for(lambda: "[DBG]" in sp.log_text(), 5)
    sp.stop()
    assert "untraced" not in sp.log_text()


def test_user_pass_flags(servers) -> None:
    sp = servers.start("scserver", args=["--user", "fl", "--pass", "agpw"])
    with RawClient(sp.port) as c:
        assert c.info.get("auth_required") is True
    assert _can_connect(sp.port, "fl", "agpw")
    assert not _can_connect(sp.port, "fl", "wrong")


# --- signals --------------------------------------------------------------------------------


async def test_sigterm_is_graceful(servers) -> None:
    sp = servers.start("scserver")
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    nc = await _connect(sp.url, closed_cb=on_closed)
    await nc.subscribe("x")
    await nc.flush()
    sp.signal(signal.SIGTERM)
    await asyncio.wait_for(closed.wait(), 5)
    wait_for(lambda: not sp.alive(), 5)
    assert sp.returncode == 0
    assert "Server Exiting" in sp.log_text()


async def test_sighup_reload_users(servers) -> None:
    sp = servers.start("scserver", users_conf(("alice", "a1"), ("carol", "c1")))
    assert _can_connect(sp.port, "alice", "a1")
    assert not _can_connect(sp.port, "bob", "b1")
    carol_closed = asyncio.Event()

    async def on_disconnect() -> None:
        carol_closed.set()

    carol = await _connect(f"nats://carol:c1@{LOOPBACK}:{sp.port}", disconnected_cb=on_disconnect)
    assert sp.config_path is not None
    sp.config_path.write_text(
        f"listen: {LOOPBACK}:{sp.port}\n" + users_conf(("alice", "a1"), ("bob", "b1"))
    )
    sp.signal(signal.SIGHUP)
    wait_for(lambda: _can_connect(sp.port, "bob", "b1"), 5, what="bob accepted after reload")
    assert _can_connect(sp.port, "alice", "a1")
    assert not _can_connect(sp.port, "carol", "c1")
    # The removed user's existing connection is closed.
    await asyncio.wait_for(carol_closed.wait(), 5)
    await carol.close()
    assert "Reloaded server configuration" in sp.log_text()


def test_bad_config_on_reload_is_rejected(servers) -> None:
    sp = servers.start("scserver", users_conf(("alice", "a1")))
    assert sp.config_path is not None
    with RawClient(sp.port) as kept:
        kept.connect(user="alice", **{"pass": "a1"})
        sp.config_path.write_text("this is { not a valid config\n")
        sp.signal(signal.SIGHUP)
        wait_for(lambda: "Failed to reload" in sp.log_text(), 5, what="reload error logged")
        assert "[ERR]" in sp.log_text()
        # The old configuration stays in force and the server keeps serving.
        assert sp.alive()
        assert kept.exchange("SUB k 1\r\nPUB k 1\r\nx\r\nPING\r\n") == ["MSG k 1 1", "b'x'", "PONG"]
    assert _can_connect(sp.port, "alice", "a1")
    assert not _can_connect(sp.port, "nobody", "x")


def _watch_env() -> dict[str, str]:
    return {"SCSERVER_WATCH_INTERVAL": "0.2"}


def test_config_file_edit_triggers_reload(servers) -> None:
    sp = servers.start("scserver", users_conf(("alice", "a1")), env=_watch_env())
    assert sp.config_path is not None
    assert not _can_connect(sp.port, "dave", "d1")
    sp.config_path.write_text(
        f"listen: {LOOPBACK}:{sp.port}\n" + users_conf(("alice", "a1"), ("dave", "d1"))
    )
    wait_for(lambda: _can_connect(sp.port, "dave", "d1"), 5, what="reload on file change")
    assert "config file changed" in sp.log_text()


def test_configmap_symlink_swap_triggers_reload(servers, tmp_path: Path) -> None:
    """Kubernetes ConfigMap volumes: conf -> ..data/conf, ..data -> ..<timestamp> (swapped)."""
    port = free_port()
    vol = tmp_path / "configmap"
    vol.mkdir()

    def publish_version(name: str, text: str) -> None:
        d = vol / name
        d.mkdir()
        (d / "scserver.conf").write_text(text)
        tmp_link = vol / "..data_tmp"
        os.symlink(name, tmp_link)
        os.replace(tmp_link, vol / "..data")  # atomic swap, as the kubelet does

    head = f"listen: {LOOPBACK}:{port}\n"
    publish_version("..2024_01_01_00_00_00.1", head + users_conf(("alice", "a1")))
    os.symlink("..data/scserver.conf", vol / "scserver.conf")
    sp = servers.start(
        "scserver",
        use_config=False,
        args=["-c", str(vol / "scserver.conf")],
        env=_watch_env(),
        wait=False,
    )
    sp.port = port
    sp.wait_ready(15)
    assert _can_connect(sp.port, "alice", "a1")
    assert not _can_connect(sp.port, "erin", "e1")
    publish_version("..2024_01_01_00_05_00.2", head + users_conf(("erin", "e1")))
    wait_for(lambda: _can_connect(sp.port, "erin", "e1"), 5, what="reload after symlink swap")
    assert not _can_connect(sp.port, "alice", "a1")


async def test_lame_duck_mode(servers) -> None:
    """SIGUSR2: INFO with ``ldm``, new connections refused, existing clients still served in the
    grace period, then closed, then the process exits 0. How long each step takes is a
    benchmark's figure (``python -m bench.bench_recovery``)."""
    conf = 'lame_duck_duration: "30s"\nlame_duck_grace_period: "3s"\n'
    sp = servers.start("scserver", conf)
    ldm = asyncio.Event()
    closed = asyncio.Event()

    async def on_ldm() -> None:
        ldm.set()

    async def on_closed() -> None:
        closed.set()

    nc = await _connect(sp.url, lame_duck_mode_cb=on_ldm, closed_cb=on_closed)
    assert nc.is_connected
    raw = RawClient(sp.port)
    raw.connect()  # protocol 1: gets the async INFO with ldm
    sp.signal(signal.SIGUSR2)
    await asyncio.wait_for(ldm.wait(), 10)

    def ldm_info() -> bool:
        raw.lines(None, 0.05)  # INFO lines land in raw.infos
        return any(i.get("ldm") is True for i in raw.infos)

    await asyncio.to_thread(wait_for, ldm_info, 10, 0.0, "INFO with ldm")
    # In the grace period the existing clients are still served ...
    assert raw.exchange("PING\r\n", timeout=10) == ["PONG"]
    assert nc.is_connected
    # ... while new connections are refused.
    with pytest.raises(OSError):
        RawClient(sp.port, timeout=1)
    # Then they are closed and the process exits.
    got = await asyncio.to_thread(raw.lines, None, 30.0)
    assert got[-1] == EOF, got
    await asyncio.wait_for(closed.wait(), 30)
    await asyncio.to_thread(wait_for, lambda: not sp.alive(), 30, 0.05, "exit after lame duck")
    assert sp.returncode == 0
    assert "lame duck" in sp.log_text().lower()


@pytest.mark.parametrize("impl", ["scserver", "nats-server"])
async def test_sigterm_during_lame_duck_does_not_cut_it_short(servers, impl: str) -> None:
    """Kubernetes sends SIGTERM right after the preStop hook that started lame duck: the server
    must keep serving its clients and close them as lame duck does, not exit at once (as
    nats-server). Proven by PONGs paced after the SIGTERM, then EOF and exit 0."""
    conf = 'lame_duck_duration: "30s"\nlame_duck_grace_period: "4s"\n'
    sp = servers.start(impl, conf)
    raw = RawClient(sp.port)
    raw.connect()
    sp.signal(signal.SIGUSR2)

    def ldm_info() -> bool:
        raw.lines(None, 0.05)
        return any(i.get("ldm") is True for i in raw.infos)

    await asyncio.to_thread(wait_for, ldm_info, 10, 0.0, "INFO with ldm")
    sp.signal(signal.SIGTERM)
    if impl == "scserver":
        await asyncio.to_thread(
            wait_for, lambda: "Ignoring SIGTERM" in sp.log_text(), 10, 0.05, "SIGTERM ignored"
        )
    pongs = 0
    while pongs < 5:
        await asyncio.sleep(0.2)  # pacing: five answers spread over a second after the SIGTERM
        got = await asyncio.to_thread(raw.exchange, "PING\r\n", 10)
        assert got == ["PONG"], f"not served after SIGTERM ({pongs} PONGs first): {got}"
        pongs += 1
    assert sp.alive()
    # Lame duck still ends the way it always does: the client is closed, the process exits 0.
    raw.wait_closed(timeout=40)
    await asyncio.to_thread(wait_for, lambda: not sp.alive(), 40, 0.05, "exit after lame duck")
    assert sp.returncode == 0

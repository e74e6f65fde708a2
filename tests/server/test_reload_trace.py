"""A reload that turns tracing on or off reaches connections that already exist.

Connections keep a snapshot of the trace level for their hot path; nats-server updates its
clients' copy on reload ("clients store trace level separately", reload.go), and so must we
(scserver.reload.refresh_trace). Checked on both servers with a client connected before the
reload: its SUB and PUB lines appear in the log only while tracing is on.
"""

from __future__ import annotations

import asyncio
import signal

import nats
import pytest
from tests.server.conftest import IMPLS, Servers

RELOADED = "Reloaded server configuration"


async def _until(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _reload(sp, trace: bool) -> None:  # noqa: ANN001
    """Rewrite the ``trace`` line of the config (the listen lines stay) and SIGHUP."""
    before = sp.log_text().count(RELOADED)
    assert sp.config_path is not None
    text = sp.config_path.read_text()
    old, new = ("trace: false", "trace: true") if trace else ("trace: true", "trace: false")
    assert old in text
    sp.config_path.write_text(text.replace(old, new))
    sp.proc.send_signal(signal.SIGHUP)
    await _until(lambda: sp.log_text().count(RELOADED) > before, 10, f"{sp.name} reloaded")


@pytest.mark.parametrize("impl", IMPLS)
async def test_reload_turns_tracing_on_and_off_for_existing_clients(
    servers: Servers, impl: str
) -> None:
    sp = servers.start(impl, "trace: false\n")
    nc = await nats.connect(sp.url, allow_reconnect=False)
    try:
        await nc.subscribe("trace.before")
        await nc.publish("trace.before", b"x")
        await nc.flush()

        await _reload(sp, trace=True)
        await nc.subscribe("trace.during")
        await nc.publish("trace.during", b"xy")
        await nc.flush()
        await _until(
            lambda: (
                "<<- [SUB trace.during" in sp.log_text()
                and "<<- [PUB trace.during" in sp.log_text()
            ),
            10,
            "the existing client's SUB and PUB traced",
        )

        await _reload(sp, trace=False)
        await nc.subscribe("trace.after")
        await nc.publish("trace.after", b"xyz")
        await nc.flush()  # the server handled both before its PONG, so any trace is written
        log = sp.log_text()
        assert "trace.before" not in log, sp.log_tail()
        assert "trace.after" not in log, sp.log_tail()
    finally:
        await nc.close()

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
from tests.tools import LOOPBACK, free_ports

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


@pytest.mark.parametrize("impl", IMPLS)
async def test_reload_turns_tracing_on_for_existing_routes(servers: Servers, impl: str) -> None:
    """The route between two servers exists before the reload; interest it carries afterwards
    (RS+ from the peer) is traced by the reloaded server."""
    pa, pb = free_ports(2)
    route = "cluster {{ name: c, listen: {h}:{p}, routes: [nats-route://{h}:{q}] }}\n"
    a = servers.start(impl, "trace: false\n" + route.format(h=LOOPBACK, p=pa, q=pb))
    b = servers.start(impl, "trace: false\n" + route.format(h=LOOPBACK, p=pb, q=pa))
    na = await nats.connect(a.url, allow_reconnect=False)
    nb = await nats.connect(b.url, allow_reconnect=False)
    try:
        # The route is up once a subscription on B is reachable from A.
        ready = await nb.subscribe("trace.ready")
        await nb.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            await na.publish("trace.ready", b"?")
            try:
                await ready.next_msg(timeout=0.2)
                break
            except nats.errors.TimeoutError:
                if loop.time() > deadline:
                    raise AssertionError("route between a and b never carried a message") from None

        await _reload(a, trace=True)
        await nb.subscribe("trace.link")
        await nb.flush()
        await _until(
            lambda: "<<- [RS+ $G trace.link" in a.log_text(), 10, "RS+ traced on the route"
        )
        assert "trace.ready" not in a.log_text().split(RELOADED)[0], a.log_tail()
    finally:
        await na.close()
        await nb.close()

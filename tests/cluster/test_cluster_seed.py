"""The seed supercluster example: east and west single-server clusters joined by gateways.

The configs are examples/seed/{east,west,sys}.conf verbatim except for the port numbers, which
are swapped for free ones so the test can run next to other tests (the seed dials 0.0.0.0,
which reaches loopback). A replier on ``greet`` in east (queue group, as ``nats reply`` does)
answers a request sent from west with 'hello from east'; with every pairing of implementations.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import pytest
from tests.cluster.helpers import close_all, connect
from tests.cluster.topology import GO, SC
from tests.tools import (
    LOOPBACK,
    REPO_ROOT,
    ServerProcess,
    free_ports,
    http_get_json,
    nats_server_binary,
    natscli_binary,
    require_binary,
    scserver_command,
    wait_for,
)

SEED = REPO_ROOT / "examples" / "seed"
SEED_PORTS = (4222, 4223, 8222, 8223, 7222, 7223)


def seed_configs() -> tuple[dict[str, str], dict[int, int]]:
    """The seed's configs with its ports mapped to free ones; returns (texts, port map)."""
    mapping = dict(zip(SEED_PORTS, free_ports(len(SEED_PORTS)), strict=True))
    pattern = re.compile(r"\b(" + "|".join(str(p) for p in SEED_PORTS) + r")\b")
    texts = {}
    for name in ("east.conf", "west.conf", "sys.conf"):
        text = (SEED / name).read_text()
        texts[name] = pattern.sub(lambda m: str(mapping[int(m.group(1))]), text)
    return texts, mapping


def command(impl: str) -> list[str]:
    if impl == GO:
        return [str(require_binary(nats_server_binary(), "nats-server binary not found"))]
    return list(require_binary(scserver_command(), "scserver not found"))


@pytest.fixture(scope="module", params=[(SC, SC), (GO, SC), (SC, GO)], ids=lambda p: "-".join(p))
def seed(request, tmp_path_factory):
    east_impl, west_impl = request.param
    texts, ports = seed_configs()
    workdir: Path = tmp_path_factory.mktemp("seed")
    for name, text in texts.items():
        (workdir / name).write_text(text)
    procs = {
        "east": ServerProcess(
            command(east_impl),
            args=["-c", str(workdir / "east.conf")],
            name="east",
            port=ports[4222],
            http_port=ports[8222],
            workdir=workdir,
        ),
        "west": ServerProcess(
            command(west_impl),
            args=["-c", str(workdir / "west.conf")],
            name="west",
            port=ports[4223],
            http_port=ports[8223],
            workdir=workdir,
        ),
    }
    try:
        for p in procs.values():
            p.start(wait=False)
        for p in procs.values():
            p.wait_ready(20)

        def linked() -> bool:
            for me, other in (("east", "west"), ("west", "east")):
                gwz = http_get_json(LOOPBACK, procs[me].http_port, "/gatewayz")
                if other not in (gwz.get("outbound_gateways") or {}):
                    return False
                if other not in (gwz.get("inbound_gateways") or {}):
                    return False
            return True

        try:
            wait_for(linked, 20, 0.1, "east and west gateways")
        except TimeoutError as exc:
            logs = "\n".join(f"--- {k}\n{p.log_tail(20)}" for k, p in procs.items())
            raise TimeoutError(f"{exc}\n{logs}") from None
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def test_seed_gateway_links(seed) -> None:
    """Each server: 1 outbound and 1 inbound gateway, named after the other cluster."""
    for me, other in (("east", "west"), ("west", "east")):
        gwz = http_get_json(LOOPBACK, seed[me].http_port, "/gatewayz")
        assert gwz["name"] == me
        assert list(gwz["outbound_gateways"]) == [other]
        assert list(gwz["inbound_gateways"]) == [other]
        assert len(gwz["inbound_gateways"][other]) == 1
        varz = http_get_json(LOOPBACK, seed[me].http_port, "/varz")
        assert varz["server_name"] == {"east": "n1", "west": "n2"}[me]


async def test_seed_request_from_west_answered_in_east(seed) -> None:
    east = await connect(seed["east"].url)
    west = await connect(seed["west"].url)
    try:

        async def reply(msg):
            await east.publish(msg.reply, b"hello from east")

        await east.subscribe("greet", queue="NATS-RPLY-22", cb=reply)
        await east.flush()
        # the queue interest reaches west over the gateway
        deadline = time.monotonic() + 5
        resp = None
        while resp is None:
            try:
                resp = await west.request("greet", b"", timeout=0.5)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert resp.data == b"hello from east"
        for _ in range(20):
            resp = await west.request("greet", b"", timeout=2)
            assert resp.data == b"hello from east"
    finally:
        await close_all(east, west)


@pytest.mark.natscli
def test_seed_with_nats_cli(seed, tmp_path: Path) -> None:
    """The seed's own commands: `nats reply greet 'hello from east'`, `nats request greet ''`."""
    cli = require_binary(natscli_binary(), "nats CLI not found (run hack/install-natscli.sh)")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    base = [str(cli), "--no-context"]
    replier = subprocess.Popen(
        [*base, "--server", seed["east"].url, "reply", "greet", "hello from east"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        out = ""
        deadline = time.monotonic() + 10
        while "hello from east" not in out:
            assert time.monotonic() < deadline, f"no reply from east: {out}"
            req = subprocess.run(
                [*base, "--server", seed["west"].url, "request", "greet", "", "--timeout", "1s"],
                capture_output=True,
                text=True,
                env=env,
                timeout=10,
            )
            out = req.stdout + req.stderr
        assert "Received with rtt" in out, out
    finally:
        replier.terminate()
        replier.wait(5)

"""Size limits for header publishes, and limits that a reload changes for connected clients.

* ``max_payload`` bounds an HPUB's headers and payload together (nats-server compares the
  total size with it), so a message whose payload alone fits can still be too big.
* A reload that lowers ``max_payload`` or ``max_control_line`` applies to clients already
  connected: their next oversized PUB/HPUB or over-long line gets nats-server's error and the
  connection is closed. Raising ``max_payload`` lets connected clients publish the bigger
  messages at once. nats-server does not push a new INFO to them for it.
* nats-server refuses to reload ``max_subscriptions`` (its reload fails): connected and new
  clients keep the limit the server started with.

Every scenario runs against both servers over raw sockets and the two transcripts must agree.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from tests.server.conftest import EOF, IMPLS, RawClient, Servers
from tests.tools import ServerProcess, wait_for

PAYLOAD_ERR = "-ERR 'Maximum Payload Violation'"
LINE_ERR = "-ERR 'maximum control line exceeded'"
SUBS_ERR = "-ERR 'maximum subscriptions exceeded'"


def hpub(subject: str, hdr_size: int, payload_size: int) -> bytes:
    """An HPUB whose header block is exactly ``hdr_size`` bytes."""
    frame = b"NATS/1.0\r\nX: \r\n\r\n"
    hdr = b"NATS/1.0\r\nX: " + b"h" * (hdr_size - len(frame)) + b"\r\n\r\n"
    assert len(hdr) == hdr_size
    total = hdr_size + payload_size
    return b"HPUB %b %d %d\r\n%b%b\r\n" % (
        subject.encode(),
        hdr_size,
        total,
        hdr,
        b"p" * payload_size,
    )


def client(sp: ServerProcess) -> RawClient:
    c = RawClient(sp.port)
    c.connect(headers=True)
    return c


def reload_count(sp: ServerProcess) -> int:
    """Reloads the server has finished (applied or refused), from its log."""
    text = sp.log_text()
    return text.count("Reloaded server configuration") + text.count("Failed to reload")


def reload_with(sp: ServerProcess, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the config file, SIGHUP, wait until the reload is done."""
    assert sp.config_path is not None
    text = sp.config_path.read_text()
    assert old in text, text
    before = reload_count(sp)
    sp.config_path.write_text(text.replace(old, new))
    sp.signal(signal.SIGHUP)
    wait_for(lambda: reload_count(sp) > before, 10, 0.05, f"{sp.name} reloaded")


def both(servers: Servers, config: str, scenario: Callable[[ServerProcess], Any]) -> Any:
    """Run ``scenario`` against a fresh server of each implementation; they must agree."""
    res = {impl: scenario(servers.start(impl, config)) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    return res["scserver"]


def told_new_limit(c: RawClient, limit: int) -> bool:
    """Whether the server pushed an INFO with ``max_payload`` = ``limit`` to a connected client
    (nats-server's own INFO after CONNECT, which may come late, still names the old one)."""
    return any(i.get("max_payload") == limit for i in c.infos)


# --- HPUB: headers count toward max_payload ------------------------------------------------


def test_hpub_headers_and_payload_count_toward_max_payload(servers: Servers) -> None:
    def scenario(sp: ServerProcess) -> tuple[list[str], list[str], list[str]]:
        fits = client(sp)
        at_limit = fits.exchange(b"SUB h 1\r\n" + hpub("h", 600, 424) + b"PING\r\n")
        too_big = client(sp)
        # the payload alone (425) fits; with its 600 header bytes the message does not
        over = too_big.exchange(hpub("h", 600, 425) + b"PING\r\n", timeout=4)
        headers_alone = client(sp)
        over_hdr = headers_alone.exchange(hpub("h", 1100, 0) + b"PING\r\n", timeout=4)
        return [ln for ln in at_limit if not ln.startswith("b'")], over, over_hdr

    assert both(servers, "max_payload: 1024\n", scenario) == (
        ["HMSG h 1 600 1024", "PONG"],
        [PAYLOAD_ERR, EOF],
        [PAYLOAD_ERR, EOF],
    )


# --- reload changes the limits of connected clients ------------------------------------------


def test_lower_max_payload_applies_to_connected_clients(servers: Servers) -> None:
    def scenario(sp: ServerProcess) -> dict[str, Any]:
        pub, hp, fit = client(sp), client(sp), client(sp)
        assert pub.exchange(b"PUB a 2000\r\n" + b"x" * 2000 + b"\r\nPING\r\n") == ["PONG"]
        reload_with(sp, "max_payload: 4096", "max_payload: 1024")
        out = {
            "pub": pub.exchange(b"PUB a 2000\r\n" + b"x" * 2000 + b"\r\nPING\r\n", timeout=4),
            "hpub": hp.exchange(hpub("a", 600, 600) + b"PING\r\n", timeout=4),
            "hpub-fits": fit.exchange(hpub("a", 600, 424) + b"PING\r\n"),
            "new-client-info": RawClient(sp.port).info["max_payload"],
        }
        out["told"] = [told_new_limit(c, 1024) for c in (pub, hp, fit)]
        return out

    assert both(servers, "max_payload: 4096\n", scenario) == {
        "pub": [PAYLOAD_ERR, EOF],
        "hpub": [PAYLOAD_ERR, EOF],
        "hpub-fits": ["PONG"],
        "new-client-info": 1024,
        "told": [False, False, False],
    }


def test_raised_max_payload_applies_to_connected_clients(servers: Servers) -> None:
    def scenario(sp: ServerProcess) -> list[str]:
        c = client(sp)
        c.exchange(b"SUB big 1\r\nPING\r\n")
        reload_with(sp, "max_payload: 1024", "max_payload: 4096")
        got = c.exchange(b"PUB big 2000\r\n" + b"x" * 2000 + b"\r\nPING\r\n")
        return [ln for ln in got if not ln.startswith("b'")]

    assert both(servers, "max_payload: 1024\n", scenario) == ["MSG big 1 2000", "PONG"]


def test_lower_max_control_line_applies_to_connected_clients(servers: Servers) -> None:
    def scenario(sp: ServerProcess) -> tuple[list[str], list[str]]:
        c, ok = client(sp), client(sp)
        long_sub = f"SUB {'a' * 600} 1\r\nPING\r\n"
        assert c.exchange(long_sub) == ["PONG"]
        reload_with(sp, "max_control_line: 4096", "max_control_line: 512")
        short = ok.exchange(f"SUB {'b' * 400} 1\r\nPING\r\n")
        return short, c.exchange(long_sub, timeout=4)

    assert both(servers, "max_control_line: 4096\n", scenario) == (["PONG"], [LINE_ERR, EOF])


@pytest.mark.parametrize(("before", "after"), [(3, 1), (1, 3)])
def test_max_subscriptions_is_not_changed_by_reload(
    servers: Servers, before: int, after: int
) -> None:
    subs = "".join(f"SUB s.{i} {i}\r\n" for i in range(1, 4)) + "PING\r\n"

    def scenario(sp: ServerProcess) -> tuple[list[str], list[str]]:
        c = client(sp)
        reload_with(sp, f"max_subscriptions: {before}", f"max_subscriptions: {after}")
        return c.exchange(subs), client(sp).exchange(subs)

    want = ["PONG"] if before == 3 else [SUBS_ERR, SUBS_ERR, "PONG"]
    assert both(servers, f"max_subscriptions: {before}\n", scenario) == (want, want)

"""Lame duck mode closes a client between its request/reply exchanges, not in the middle.

Two routed servers; a replier that takes 200 ms per answer and a requester that asks again
10 ms after each answer, so that a request is in flight almost all the time. The server with
one of the two clients enters lame duck mode and closes it after the grace period. The other
server is reached through a proxy that delays each direction by 100 ms, so a reconnect takes a
few hundred milliseconds, as a reconnect across a busy network may: closed mid-exchange, a
requester's answer arrives while it is away and is lost (a timeout for the application).
scserver closes the client once its exchanges are settled and it has been quiet for a moment
(scserver.exchanges); the nats-py client reconnects as it always does, and no request times
out. "No responders" while the only replier moves between servers is an answer, asked again.
"""

from __future__ import annotations

import asyncio
import signal

import nats
import pytest
from nats.errors import NoRespondersError, TimeoutError
from tests.cluster.helpers import close_all, eventually, unique
from tests.cluster.latency_proxy import LatencyProxy
from tests.cluster.topology import SC, running
from tests.tools import LOOPBACK

LAME_DUCK = {"*": "lame_duck_duration: 30s\nlame_duck_grace_period: 1s"}
ANSWER_DELAY = 0.2
PAUSE = 0.01


@pytest.mark.parametrize("closed", ["requester", "replier"])
async def test_no_request_lost_when_lame_duck_closes_a_client(closed: str) -> None:
    with running({"A": [SC, SC]}, top_extra=LAME_DUCK) as topo:
        ldm, other = topo.node("A1"), topo.node("A2")
        proxy = LatencyProxy((LOOPBACK, other.port), delay=0.1).start()
        where = {"requester": other.url, "replier": other.url}
        where[closed] = ldm.url
        subject = unique("slow")

        def servers(first: str) -> list[str]:
            # the one on the lame duck server falls back to the other through the slow proxy
            return [ldm.url, proxy.url] if first == ldm.url else [other.url]

        async def ignore(exc: Exception) -> None:
            pass

        rep = await nats.connect(servers=servers(where["replier"]), dont_randomize=True,
                                 max_reconnect_attempts=-1, error_cb=ignore)  # fmt: skip
        req = await nats.connect(servers=servers(where["requester"]), dont_randomize=True,
                                 max_reconnect_attempts=-1, error_cb=ignore)  # fmt: skip

        async def answer(msg: nats.aio.msg.Msg) -> None:
            await asyncio.sleep(ANSWER_DELAY)
            await msg.respond(b"re:" + msg.data)

        await rep.subscribe(subject, cb=answer)
        await rep.flush()
        answered, timeouts, retried = 0, [], 0
        try:
            await eventually(lambda: _has_interest(topo, subject), 10, "the replier's interest")
            assert ldm.proc is not None
            n = 0
            signalled = False
            while True:
                n += 1
                if n == 3 and not signalled:
                    ldm.proc.signal(signal.SIGUSR2)  # closes its client after the 1 s grace
                    signalled = True
                try:
                    got = await req.request(subject, b"%d" % n, timeout=3)
                    assert got.data == b"re:%d" % n
                    answered += 1
                except NoRespondersError:
                    retried += 1
                    await asyncio.sleep(0.02)
                except TimeoutError:
                    timeouts.append(n)
                await asyncio.sleep(PAUSE)
                if not ldm.proc.alive() and answered >= n - len(timeouts) - retried and n > 20:
                    break
                assert n < 200, "the lame duck server never exited"
            assert timeouts == [], (
                f"requests {timeouts} timed out ({answered} answered, {retried} no responders)"
                f"\n{topo.logs()}"
            )
            assert req.is_connected and rep.is_connected
        finally:
            await close_all(req, rep)
            proxy.close()


def _has_interest(topo, subject: str) -> bool:
    """Both servers know the replier's subscription (routed to the other one)."""
    return all(
        n.get(f"/subsz?subs=1&test={subject}").get("num_subscriptions", 0) > 0 for n in topo.nodes
    )

"""Gossiped gateway URLs are bounded per remote cluster and in total (scserver.gossip_limits).

nats-server keeps whatever URLs peers gossip; a peer must not be able to grow our memory
without bound, so gossip beyond the caps is dropped (logged once per cap) while URLs from our
own config are always kept.
"""

from __future__ import annotations

import logging

import pytest

from scserver.gateway import RemoteGateway
from scserver.gossip_limits import MAX_URLS_PER_REMOTE, GatewayUrls, UrlBudget


def _cap_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reached the cap" in r.getMessage()]


def test_gossip_for_one_remote_is_capped_and_logged_once(caplog) -> None:
    caplog.set_level(logging.WARNING)
    remote = RemoteGateway("B", ["b1:7222"], configured=False)
    for batch in range(10):
        remote.add_urls([f"nats://h{batch}-{i}:7222" for i in range(500)])
    assert len(remote.urls) == MAX_URLS_PER_REMOTE
    assert remote.urls[0] == "nats://b1:7222" and len(set(remote.urls)) == len(remote.urls)
    # Known URLs are still recognised (no duplicates), whatever the cap.
    remote.add_urls(["b1:7222", "nats://h0-0:7222"])
    assert len(remote.urls) == MAX_URLS_PER_REMOTE
    lines = _cap_lines(caplog)
    assert len(lines) == 1 and "'B'" in lines[0] and str(MAX_URLS_PER_REMOTE) in lines[0], lines


def test_total_over_all_remotes_is_capped_and_released_with_a_remote(caplog) -> None:
    caplog.set_level(logging.WARNING)
    budget = UrlBudget(per_remote=100, total=250)
    lists = [GatewayUrls(f"R{i}", budget) for i in range(4)]
    for urls in lists:
        urls.add(f"nats://{urls.remote}-{i}:7222" for i in range(200))
    assert [len(u) for u in lists] == [100, 100, 50, 0]
    assert budget.used == 250
    lines = _cap_lines(caplog)
    # One line for each remote that hit its own cap, one for the total.
    assert sum("all remote gateways" in line for line in lines) == 1, lines
    assert sum("'R0'" in line for line in lines) == 1 and sum("'R1'" in line for line in lines) == 1
    lists[0].release()
    assert budget.used == 150 and lists[0] == []
    lists[3].add(["nats://late:7222"])
    assert lists[3] == ["nats://late:7222"]


def test_configured_urls_are_always_kept() -> None:
    budget = UrlBudget(per_remote=2, total=2)
    urls = GatewayUrls("A", budget)
    urls.add(["a1:1", "a2:2", "a3:3"], configured=True)
    assert urls == ["nats://a1:1", "nats://a2:2", "nats://a3:3"]
    remote = RemoteGateway("C", ["c1:1", "c2:2", "c3:3"], configured=True, budget=budget)
    assert len(remote.urls) == 3
    remote.add_urls(["c4:4"])  # gossip: over both caps
    assert len(remote.urls) == 3

"""Which of a remote cluster's gateway URLs a server dials first, and what its INFO replaces.

After a server of the remote cluster shuts down (a pod replaced in a rolling update), the link
to that cluster is down until we dial another server; every dial to an address that is gone
costs a whole dial timeout. So: the servers the remote's latest INFO listed first, configured
seeds next (a seed pod may be the one restarting), the server that just closed the link last;
and an INFO replaces what earlier INFOs said (nats-server's ``updateURLs``), configured seeds
kept, the gossip budget counted right.
"""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from scserver.gateway.manager import RemoteGateway
from scserver.gateway.relink import FAILED_BACKOFF, dial_order
from scserver.gossip_limits import UrlBudget

SEED = "nats://west-0.west-headless.demo.svc:7222"


def remote_with(live: list[str]) -> RemoteGateway:
    remote = RemoteGateway("west", [SEED], configured=True, budget=UrlBudget())
    remote.update_urls(live)
    return remote


def closed_link(url: str, gateway_url: str = "") -> SimpleNamespace:
    return SimpleNamespace(url=url, remote_info={"gateway_url": gateway_url} if gateway_url else {})


def test_live_servers_first_seed_next_closing_server_last() -> None:
    remote = remote_with(["10.0.0.4:7222", "10.0.0.11:7222"])
    # the link to 10.0.0.4 (reached through the seed's name) just closed
    order = dial_order(remote, closed_link(SEED, "10.0.0.4:7222"))
    assert order[0] == "nats://10.0.0.11:7222"
    assert sorted(order[1:]) == sorted([SEED, "nats://10.0.0.4:7222"])
    # without a closed link: every live server before the seed
    order = dial_order(remote)
    assert set(order[:2]) == {"nats://10.0.0.4:7222", "nats://10.0.0.11:7222"}
    assert order[2] == SEED


def test_unreachable_urls_go_after_the_seeds_for_a_while() -> None:
    """An address the remote lists but we cannot reach (pod IPs seen from another Kubernetes
    cluster) is not tried before the seed at every relink."""
    remote = remote_with(["10.0.0.4:7222", "10.0.0.5:7222"])
    remote.failed["nats://10.0.0.4:7222"] = 1000.0
    order = dial_order(remote, now=1000.0 + FAILED_BACKOFF / 2)
    assert order == ["nats://10.0.0.5:7222", SEED, "nats://10.0.0.4:7222"]
    # after the backoff it is a live server again
    order = dial_order(remote, now=1000.0 + FAILED_BACKOFF + 1)
    assert order[2] == SEED


def test_a_listed_url_for_a_seeds_address_is_left_to_the_seed() -> None:
    """The configured URL carries the credentials; the INFO's copy of the same address would
    only be tried first without them."""
    seed = "nats://gw:secret@10.0.0.9:7222"
    remote = RemoteGateway("west", [seed], configured=True, budget=UrlBudget())
    remote.update_urls(["10.0.0.9:7222", "10.0.0.5:7222"])
    assert dial_order(remote) == ["nats://10.0.0.5:7222", seed]


def test_info_replaces_discovered_urls_and_keeps_the_seed() -> None:
    budget = UrlBudget()
    remote = RemoteGateway("west", [SEED], configured=True, budget=budget)
    remote.update_urls(["10.0.0.4:7222", "10.0.0.5:7222"])
    assert list(remote.urls) == [SEED, "nats://10.0.0.4:7222", "nats://10.0.0.5:7222"]
    # 10.0.0.4 left the remote cluster; a new pod came up at 10.0.0.9
    remote.update_urls(["10.0.0.5:7222", "10.0.0.9:7222"])
    assert list(remote.urls) == [SEED, "nats://10.0.0.5:7222", "nats://10.0.0.9:7222"]
    assert budget.used == 3
    # the remote listing its seed by address does not duplicate anything
    remote.update_urls([SEED.removeprefix("nats://")])
    assert list(remote.urls) == [SEED]
    assert budget.used == 1


urls = st.lists(
    st.builds("10.0.{}.{}:7222".format, st.integers(0, 3), st.integers(1, 9)),
    max_size=12,
    unique=True,
)


@given(live=urls, closed=st.none() | st.integers(0, 20))
def test_order_is_a_permutation_with_the_closed_server_last(
    live: list[str], closed: int | None
) -> None:
    remote = remote_with(live)
    everything = list(remote.urls)
    last = None
    gone: set[str] = set()
    if closed is not None:
        url = everything[closed % len(everything)]
        last = closed_link(url)
        gone = {url}
    order = dial_order(remote, last)
    assert sorted(order) == sorted(everything)
    if gone:
        assert order[-1] in gone
    seed_at = order.index(SEED)
    live_urls = {"nats://" + u for u in live} - gone
    assert all(order.index(u) < seed_at for u in live_urls), order

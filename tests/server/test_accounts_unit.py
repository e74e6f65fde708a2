"""A new account is an empty, isolated namespace (``scserver.accounts.Account``).

Accounts are wired into the server by the auth tests; these check in-process what a fresh one
holds, so a mutation of ``scserver.accounts`` (``make mutate``) is caught quickly: its own
empty subscription index, no clients or interest, zeroed traffic counters (monitoring reports
them from the start), and no links or mappings until configuration adds them.
"""

from __future__ import annotations

from scserver.accounts import GLOBAL_ACCOUNT, SYSTEM_ACCOUNT, Account
from scserver.subscription import Subscription


def test_a_new_account_is_empty() -> None:
    a = Account("ORDERS")
    assert a.name == "ORDERS"
    assert a.name_b == b"ORDERS"
    assert a.is_system is False
    assert a.sublist.count() == 0
    assert a.clients == set()
    assert a.route_interest == {}
    assert a.gw_interest == {}
    assert a.gw_state == {}
    assert a.gw_reply_map == {}
    assert (a.in_msgs, a.in_bytes, a.out_msgs, a.out_bytes) == (0, 0, 0, 0)
    assert a.links is None
    assert a.mappings is None
    assert repr(a) == "Account('ORDERS')"


def test_system_account_flag_and_names() -> None:
    assert Account(SYSTEM_ACCOUNT, is_system=True).is_system is True
    assert (GLOBAL_ACCOUNT, SYSTEM_ACCOUNT) == ("$G", "$SYS")
    assert Account("ü").name_b == "ü".encode()


def test_accounts_do_not_share_subscriptions_or_state() -> None:
    a, b = Account("A"), Account("B")
    s = Subscription(b"foo", None, b"1", object(), a)
    a.sublist.insert(s)
    a.clients.add("c")
    a.route_interest[(b"foo", None)] = 1
    a.gw_interest[(b"foo", None)] = 1
    a.gw_state["link"] = 1
    a.gw_reply_map[b"r"] = (b"_GR_.x", 0.0)
    assert a.sublist.match(b"foo").psubs == [s]
    assert b.sublist.match(b"foo").psubs == []
    assert b.clients == set()
    assert b.route_interest == b.gw_interest == b.gw_state == b.gw_reply_map == {}

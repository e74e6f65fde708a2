"""Where one message goes, checked in-process through ``scserver.routing``'s public functions.

The cluster tests prove the same rules end to end with real servers; these pin them at unit
level so a mutation of the routing rules (mutmut, ``make mutate``) is caught in milliseconds:
plain subscribers each get a copy, a queue group exactly one (route members weighted by their
member count), a routed message goes one hop and only to the groups it names, gateways see only
what entered here.  Connections are small fakes with the attributes the router reads.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from scserver.accounts import Account
from scserver.connection import SYSTEM
from scserver.exchanges import Exchanges
from scserver.protocol.parser import CLIENT, GATEWAY, ROUTE
from scserver.replies import gw_hash, old_gw_hash
from scserver.routing import deliver, process_batch, process_msg
from scserver.subscription import Subscription


class Conn:
    """The connection surface routing uses; records everything it is handed."""

    def __init__(self, kind: int = CLIENT, *, echo: bool = True, headers: bool = True) -> None:
        # the kind id, and its routing (fanout) class: equal for the kinds that exist
        self.kind = self.fanout = kind
        self.echo = echo
        self.headers = headers
        self.closed = False
        self.batches = False
        self.accept = True  # what deliver_internal answers (SYSTEM)
        self.exchanges: Exchanges | None = None  # set: lame duck mode (scserver.exchanges)
        self.out_msgs = 0
        self.out_bytes = 0
        self.frames: list[bytes] = []
        self.unsubscribed: list[Subscription] = []
        self.gw_replies: list[bytes] = []
        self.sent: list[tuple[Any, ...]] = []  # route send_msg/send_batch
        self.internal: list[tuple[Any, ...]] = []

    # client side
    def queue(self, frame: bytes) -> None:
        self.frames.append(frame)

    def auto_unsubscribe(self, sub: Subscription) -> None:
        self.unsubscribed.append(sub)
        sub.account.sublist.remove(sub)

    def track_gw_reply(self, reply: bytes) -> None:
        self.gw_replies.append(reply)

    # route side
    def send_msg(self, account, subject, reply, queues, hdr_len, msg) -> None:  # noqa: ANN001
        # no queue list (None) and an empty one mean the same on the wire
        self.sent.append(("msg", account.name, subject, reply, list(queues or ()), hdr_len, msg))

    def send_batch(self, account, subject, msgs, total) -> None:  # noqa: ANN001
        self.sent.append(("batch", account.name, subject, list(msgs), total))

    # internal (SYSTEM) side
    def deliver_internal(self, sub, subject, reply, hdr_len, msg, src) -> bool:  # noqa: ANN001
        self.internal.append((sub.sid, subject, reply, hdr_len, msg, src))
        return self.accept

    def deliver_batch_internal(self, sub, subject, msgs, total) -> None:  # noqa: ANN001
        self.internal.append(("batch", sub.sid, subject, list(msgs), total))

    @property
    def payloads(self) -> list[bytes]:
        """The payload of every MSG/HMSG frame queued, in order (frames may be concatenated)."""
        out: list[bytes] = []
        for blob in self.frames:
            rest = blob
            while rest:
                line, _, rest = rest.partition(b"\r\n")
                size = int(line.split()[-1])
                out.append(rest[:size])
                rest = rest[size + 2 :]
        return out


class Q:
    """A remote queue member as a gateway link's interest lists it."""

    def __init__(self, queue: bytes) -> None:
        self.queue = queue


class GwLink:
    """An outbound gateway link: its remote cluster's interest, and what it was sent."""

    def __init__(self, name: str, psi: bool = True, queues: tuple[bytes, ...] = ()) -> None:
        self.gw_name = name
        self.psi = psi
        self.queues = queues
        self.closed = False
        self.remote_nrp = True
        self.out_accounts: dict[bytes, Any] = {}
        self.sent: list[tuple[Any, ...]] = []
        self.accounts: list[str] = []  # the account of every send

    def interest(self, acc: bytes, subject: bytes) -> tuple[bool, list[list[Q]]]:
        # the remote cluster's interest is known per account, for real subjects
        if acc != b"A" or not isinstance(subject, bytes):
            return False, []
        return self.psi, [[Q(q)] for q in self.queues]

    def send_msg(self, account, subject, reply, queues, hdr_len, msg) -> None:  # noqa: ANN001
        self.accounts.append(account.name)
        self.sent.append((subject, reply, None if queues is None else list(queues), hdr_len, msg))

    def send_batch(self, account, subject, msgs, total) -> None:  # noqa: ANN001
        self.accounts.append(account.name)
        self.sent.append(("batch", subject, list(msgs), total))


class Gateway:
    """The gateway manager surface the router reads: links in RTT order and reply hashes."""

    def __init__(self, *links: GwLink, map_replies: bool = False) -> None:
        self.out_sorted = list(links)
        self.map_replies = map_replies
        self.cluster_hash = gw_hash("here")
        self.server_hash = b"SRVHSH"
        self.old_cluster_hash = old_gw_hash("here")
        self.barriers = 0
        self.map_asked: list[tuple[str, bytes]] = []

    def should_map_reply(self, account: Account, reply: bytes) -> bool:
        self.map_asked.append((account.name, reply))
        return self.map_replies

    def interest_barrier(self) -> None:
        self.barriers += 1


class Server:
    def __init__(self, gateway: Gateway | None = None) -> None:
        self.gateway = gateway


def sub(
    account: Account,
    conn: Conn,
    subject: bytes,
    queue: bytes | None = None,
    *,
    sid: bytes = b"1",
    weight: int = 1,
    max_msgs: int = 0,
) -> Subscription:
    s = Subscription(subject, queue, sid, conn, account, weight)
    s.max = max_msgs
    account.sublist.insert(s)
    return s


@pytest.fixture
def acc() -> Account:
    return Account("A")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    # queue members are drawn at random: a fixed seed makes every run draw the same way
    random.seed(1234)


# ----------------------------------------------------------------------------- deliver


def test_deliver_frames_msg_and_hmsg_with_and_without_reply() -> None:
    c = Conn()
    s = Subscription(b"foo", None, b"7", c)
    assert deliver(c, s, b"foo", None, -1, b"hello") is True
    assert deliver(c, s, b"foo", b"_INBOX.r", -1, b"hi") is True
    assert deliver(c, s, b"foo", None, 5, b"H:v\r\nbody") is True
    assert deliver(c, s, b"foo", b"r", 5, b"H:v\r\nbody") is True
    assert c.frames == [
        b"MSG foo 7 5\r\nhello\r\n",
        b"MSG foo 7 _INBOX.r 2\r\nhi\r\n",
        b"HMSG foo 7 5 9\r\nH:v\r\nbody\r\n",
        b"HMSG foo 7 r 5 9\r\nH:v\r\nbody\r\n",
    ]
    assert (c.out_msgs, c.out_bytes, s.delivered) == (4, 5 + 2 + 9 + 9, 4)


def test_empty_header_block_is_still_a_header_message() -> None:
    c, plain = Conn(), Conn(headers=False)
    s = Subscription(b"foo", None, b"1", c)
    deliver(c, s, b"foo", None, 0, b"body")
    deliver(plain, s, b"foo", None, 0, b"body")
    assert c.frames == [b"HMSG foo 1 0 4\r\nbody\r\n"]
    assert plain.frames == [b"MSG foo 1 4\r\nbody\r\n"]


def test_client_without_headers_gets_the_payload_only() -> None:
    c = Conn(headers=False)
    s = Subscription(b"foo", None, b"1", c)
    deliver(c, s, b"foo", None, 5, b"H:v\r\nbody")
    deliver(c, s, b"foo", b"r", 5, b"H:v\r\nbody")
    assert c.frames == [b"MSG foo 1 4\r\nbody\r\n", b"MSG foo 1 r 4\r\nbody\r\n"]
    assert c.out_bytes == 8


def test_closed_client_takes_nothing() -> None:
    c = Conn()
    c.closed = True
    s = Subscription(b"foo", None, b"1", c)
    assert deliver(c, s, b"foo", None, -1, b"x") is False
    assert (c.frames, c.out_msgs, c.out_bytes, s.delivered) == ([], 0, 0, 0)


def test_gateway_routed_reply_is_shown_plain_and_remembered() -> None:
    c = Conn()
    s = Subscription(b"foo", None, b"1", c)
    routed = b"_GR_.abcdef.ghijkl._INBOX.x"
    deliver(c, s, b"foo", routed, -1, b"q")
    deliver(c, s, b"foo", routed, 0, b"q")
    assert c.frames == [b"MSG foo 1 _INBOX.x 1\r\nq\r\n", b"HMSG foo 1 _INBOX.x 0 1\r\nq\r\n"]
    assert c.gw_replies == [routed, routed]


def test_lame_duck_exchanges_follow_deliveries() -> None:
    """In lame duck mode a delivery with a reply is an answer the client owes (the plain reply
    it sees, for a gateway-routed one), and a delivery on an awaited subject settles it; a
    batch of plain messages settles too."""
    from scserver.routing import deliver_batch

    c = Conn()
    c.exchanges = Exchanges()
    s = Subscription(b">", None, b"1", c)
    c.exchanges.published(b"svc", b"_INBOX.a.1")
    c.exchanges.published(b"svc", b"_INBOX.a.2")
    deliver(c, s, b"req", b"_GR_.abcdef.ghijkl._INBOX.x", -1, b"q")
    assert c.exchanges.owed == {b"_INBOX.x"} and not c.exchanges.settled()
    deliver(c, s, b"_INBOX.a.1", None, -1, b"answer")
    deliver_batch(c, s, b"_INBOX.a.2", [b"answer"], 6)
    assert c.exchanges.awaiting == set()
    c.exchanges.published(b"_INBOX.x", None)  # it answers
    assert c.exchanges.settled()


@pytest.mark.parametrize(
    "reply", [b"_GR_.abcdef.ghijkl.", b"_GR_x.bcdef.ghijkl.abc", b"_INBOX.abcdefghijklmno"]
)
def test_replies_that_are_not_gateway_routed_pass_unchanged(reply: bytes) -> None:
    c = Conn()
    s = Subscription(b"foo", None, b"1", c)
    deliver(c, s, b"foo", reply, -1, b"q")
    assert c.frames == [b"MSG foo 1 " + reply + b" 1\r\nq\r\n"]
    assert c.gw_replies == []


def test_auto_unsubscribe_at_max(acc: Account) -> None:
    c = Conn()
    s = sub(acc, c, b"foo", max_msgs=2)
    assert deliver(c, s, b"foo", None, -1, b"a")
    assert c.unsubscribed == []
    assert deliver(c, s, b"foo", None, -1, b"b")
    assert c.unsubscribed == [s]


# ------------------------------------------------------------------------- process_msg


def test_every_plain_subscriber_gets_one_copy_except_the_non_echo_publisher(acc: Account) -> None:
    pub, a, b = Conn(echo=False), Conn(), Conn()
    sub(acc, pub, b"foo")
    sub(acc, a, b"foo")
    sub(acc, a, b"*", sid=b"2")
    sub(acc, b, b">")
    assert process_msg(Server(), pub, acc, b"foo", b"r", -1, b"m") is True
    assert pub.frames == []
    assert sorted(a.frames) == [b"MSG foo 1 r 1\r\nm\r\n", b"MSG foo 2 r 1\r\nm\r\n"]
    assert b.frames == [b"MSG foo 1 r 1\r\nm\r\n"]


def test_echo_publisher_gets_its_own_message(acc: Account) -> None:
    pub = Conn(echo=True)
    sub(acc, pub, b"foo")
    assert process_msg(Server(), pub, acc, b"foo", None, -1, b"m") is True
    assert pub.frames == [b"MSG foo 1 1\r\nm\r\n"]


def test_no_interest_means_not_delivered(acc: Account) -> None:
    other = Conn()
    sub(acc, other, b"bar")
    assert process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m") is False
    assert other.frames == []


def test_only_closed_subscribers_means_not_delivered(acc: Account) -> None:
    gone = Conn()
    gone.closed = True
    sub(acc, gone, b"foo")
    sub(acc, gone, b"foo", b"q", sid=b"2")
    assert process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m") is False


def test_route_gets_one_copy_with_its_queue_names(acc: Account) -> None:
    route = Conn(ROUTE)
    sub(acc, route, b"foo", sid=b"r1")
    sub(acc, route, b"foo.*", sid=b"r2")  # doesn't match foo
    sub(acc, route, b">", sid=b"r3")
    sub(acc, route, b"foo", b"workers", sid=b"r4")
    assert process_msg(Server(), Conn(), acc, b"foo", b"rep", -1, b"m") is True
    assert route.sent == [("msg", "A", b"foo", b"rep", [b"workers"], -1, b"m")]


def test_route_without_plain_interest_gets_queue_list(acc: Account) -> None:
    route = Conn(ROUTE)
    sub(acc, route, b"foo", b"q1", sid=b"a")
    sub(acc, route, b"foo", b"q2", sid=b"b")
    process_msg(Server(), Conn(), acc, b"foo", None, 3, b"hdrm")
    assert len(route.sent) == 1
    assert sorted(route.sent[0][4]) == [b"q1", b"q2"]
    assert route.sent[0][5] == 3


def test_two_routes_each_get_one_copy(acc: Account) -> None:
    r1, r2 = Conn(ROUTE), Conn(ROUTE)
    sub(acc, r1, b"foo")
    sub(acc, r2, b"foo")
    sub(acc, r2, b"*", sid=b"2")
    process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m")
    assert r1.sent == [("msg", "A", b"foo", None, [], -1, b"m")]
    assert r2.sent == [("msg", "A", b"foo", None, [], -1, b"m")]


def test_message_from_a_route_goes_one_hop_only(acc: Account) -> None:
    src, other_route, local = Conn(ROUTE), Conn(ROUTE), Conn()
    sub(acc, other_route, b"foo")
    sub(acc, local, b"foo")
    link = GwLink("far")
    assert process_msg(Server(Gateway(link)), src, acc, b"foo", None, -1, b"m") is True
    assert other_route.sent == []
    assert local.frames == [b"MSG foo 1 1\r\nm\r\n"]
    assert link.sent == []


def test_closed_route_is_skipped(acc: Account) -> None:
    route = Conn(ROUTE)
    route.closed = True
    sub(acc, route, b"foo")
    assert process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m") is False
    assert route.sent == []


def test_internal_subscriber_decides_whether_it_took_the_message(acc: Account) -> None:
    svc = Conn(SYSTEM)
    svc.accept = False
    sub(acc, svc, b"foo", sid=b"s")
    src = Conn()
    assert process_msg(Server(), src, acc, b"foo", b"r", 2, b"hhm") is False
    assert svc.internal == [(b"s", b"foo", b"r", 2, b"hhm", src)]
    svc.accept = True
    assert process_msg(Server(), src, acc, b"foo", b"r", 2, b"hhm") is True


def test_queue_group_gets_exactly_one_copy_per_message(acc: Account) -> None:
    members = [Conn() for _ in range(3)]
    for i, m in enumerate(members):
        sub(acc, m, b"foo", b"q", sid=str(i).encode())
    other = Conn()
    sub(acc, other, b"foo", b"other")
    for n in range(300):
        assert process_msg(Server(), Conn(), acc, b"foo", None, -1, str(n).encode())
    counts = [len(m.frames) for m in members]
    assert sum(counts) == 300
    assert all(c > 50 for c in counts), counts  # drawn at random, each member gets a share
    assert len(other.frames) == 300


def test_queue_member_that_is_the_non_echo_publisher_is_passed_over(acc: Account) -> None:
    pub, peer = Conn(echo=False), Conn()
    sub(acc, pub, b"foo", b"q")
    sub(acc, peer, b"foo", b"q")
    for _ in range(40):
        process_msg(Server(), pub, acc, b"foo", b"r", -1, b"m")
    assert pub.frames == []
    assert peer.frames == [b"MSG foo 1 r 1\r\nm\r\n"] * 40


def test_echo_publisher_can_be_drawn_from_its_own_group(acc: Account) -> None:
    pub, peer = Conn(echo=True), Conn()
    sub(acc, pub, b"foo", b"q")
    sub(acc, peer, b"foo", b"q")
    for _ in range(60):
        process_msg(Server(), pub, acc, b"foo", None, -1, b"m")
    assert len(pub.frames) + len(peer.frames) == 60
    assert pub.frames and peer.frames


def test_closed_queue_members_are_passed_over(acc: Account) -> None:
    conns = [Conn() for _ in range(4)]
    for i, c in enumerate(conns):
        sub(acc, c, b"foo", b"q", sid=str(i).encode())
    for c in conns[:3]:
        c.closed = True
    for _ in range(30):
        assert process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m") is True
    assert len(conns[3].frames) == 30


def test_lone_publisher_in_its_group_without_echo_means_not_delivered(acc: Account) -> None:
    pub = Conn(echo=False)
    sub(acc, pub, b"foo", b"q")
    assert process_msg(Server(), pub, acc, b"foo", None, -1, b"m") is False


def test_route_members_draw_by_weight(acc: Account) -> None:
    local, route = Conn(), Conn(ROUTE)
    sub(acc, local, b"foo", b"q")
    sub(acc, route, b"foo", b"q", weight=3)  # three members behind that route
    n = 2000
    for _ in range(n):
        process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m")
    to_route = len(route.sent)
    assert to_route + len(local.frames) == n
    assert 0.65 * n < to_route < 0.85 * n, to_route


def test_weight_draw_does_not_depend_on_member_order(acc: Account) -> None:
    route, local = Conn(ROUTE), Conn()
    sub(acc, route, b"foo", b"q", weight=3)
    sub(acc, local, b"foo", b"q")
    n = 2000
    for _ in range(n):
        process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m")
    assert 0.15 * n < len(local.frames) < 0.35 * n, len(local.frames)


def test_routed_message_serves_only_the_queue_groups_it_names(acc: Account) -> None:
    a, b, plain = Conn(), Conn(), Conn()
    sub(acc, a, b"foo", b"qa")
    sub(acc, b, b"foo", b"qb")
    sub(acc, plain, b"foo")
    src = Conn(ROUTE)
    assert process_msg(Server(), src, acc, b"foo", None, -1, b"m", (b"qb",)) is True
    assert (len(a.frames), len(b.frames), len(plain.frames)) == (0, 1, 1)
    assert process_msg(Server(), src, acc, b"foo", None, -1, b"m", (b"qa",)) is True
    assert (len(a.frames), len(b.frames), len(plain.frames)) == (1, 1, 2)


def test_routed_message_without_queue_list_serves_no_queue_group(acc: Account) -> None:
    a = Conn()
    sub(acc, a, b"foo", b"qa")
    assert process_msg(Server(), Conn(ROUTE), acc, b"foo", None, -1, b"m") is False
    assert a.frames == []


def test_any_queue_serves_every_group(acc: Account) -> None:
    a, b = Conn(), Conn()
    sub(acc, a, b"foo", b"qa")
    sub(acc, b, b"foo", b"qb")
    assert process_msg(Server(), Conn(GATEWAY), acc, b"foo", None, -1, b"m", None, True) is True
    assert process_msg(Server(), Conn(GATEWAY), acc, b"foo", None, -1, b"m", (b"qa",), True)
    assert (len(a.frames), len(b.frames)) == (2, 2)


def test_routed_message_never_draws_a_route_member(acc: Account) -> None:
    other_route, local = Conn(ROUTE), Conn()
    sub(acc, other_route, b"foo", b"q", weight=50)
    sub(acc, local, b"foo", b"q")
    for _ in range(20):
        process_msg(Server(), Conn(ROUTE), acc, b"foo", None, -1, b"m", (b"q",))
    assert other_route.sent == []
    assert len(local.frames) == 20


def test_routed_message_with_only_route_members_is_not_delivered(acc: Account) -> None:
    other_route = Conn(ROUTE)
    sub(acc, other_route, b"foo", b"q")
    assert process_msg(Server(), Conn(ROUTE), acc, b"foo", None, -1, b"m", (b"q",)) is False
    assert other_route.sent == []


def test_routed_message_can_go_to_an_internal_queue_member(acc: Account) -> None:
    svc = Conn(SYSTEM)
    sub(acc, svc, b"foo", b"q", sid=b"s")
    src = Conn(ROUTE)
    assert process_msg(Server(), src, acc, b"foo", b"r", 3, b"hhhm", (b"q",)) is True
    assert svc.internal == [(b"s", b"foo", b"r", 3, b"hhhm", src)]


def test_queue_member_that_refuses_does_not_stop_other_groups(acc: Account) -> None:
    for first in (b"a", b"b"):
        a = Account("A")
        svc, client = Conn(SYSTEM), Conn()
        svc.accept = False
        other = b"b" if first == b"a" else b"a"
        sub(a, svc, b"foo", first, sid=b"s")
        sub(a, client, b"foo", other, sid=b"c")
        assert process_msg(Server(), Conn(), a, b"foo", None, -1, b"m") is True
        assert client.payloads == [b"m"]


def test_plain_route_and_queue_route_each_get_their_own_list(acc: Account) -> None:
    r1, r2 = Conn(ROUTE), Conn(ROUTE)
    sub(acc, r1, b"foo")
    sub(acc, r2, b"foo", b"q")
    process_msg(Server(), Conn(), acc, b"foo", None, -1, b"m")
    assert r1.sent == [("msg", "A", b"foo", None, [], -1, b"m")]
    assert r2.sent == [("msg", "A", b"foo", None, [b"q"], -1, b"m")]


def test_internal_queue_member_that_refuses_serves_nothing(acc: Account) -> None:
    svc = Conn(SYSTEM)
    svc.accept = False
    sub(acc, svc, b"foo", b"q", sid=b"s")
    link = GwLink("far", psi=False)
    assert process_msg(Server(Gateway(link)), Conn(), acc, b"foo", None, -1, b"m") is False
    assert len(svc.internal) == 1
    assert link.sent == []


def test_gateway_is_told_which_groups_were_served_here(acc: Account) -> None:
    a, b = Conn(), Conn(ROUTE)
    sub(acc, a, b"foo", b"qa")
    sub(acc, b, b"foo", b"qb")
    link = GwLink("far", psi=False, queues=(b"qa", b"qb", b"qc"))
    assert process_msg(Server(Gateway(link)), Conn(), acc, b"foo", b"r", -1, b"m") is True
    # groups served in this cluster are not offered to the remote one again
    assert link.sent == [(b"foo", b"r", [b"qc"], -1, b"m")]


def test_gateway_alone_can_take_the_message(acc: Account) -> None:
    link = GwLink("far")
    assert process_msg(Server(Gateway(link)), Conn(), acc, b"foo", None, -1, b"m") is True
    assert link.sent == [(b"foo", None, None, -1, b"m")]
    assert link.accounts == ["A"]
    no_interest = Gateway(GwLink("far", psi=False))
    assert process_msg(Server(no_interest), Conn(), acc, b"foo", None, -1, b"m") is False
    assert process_msg(Server(Gateway()), Conn(), acc, b"foo", None, -1, b"m") is False


@pytest.mark.parametrize("kind", [SYSTEM, CLIENT])
def test_internal_and_client_publishes_enter_gateways(acc: Account, kind: int) -> None:
    link = GwLink("far")
    process_msg(Server(Gateway(link)), Conn(kind), acc, b"foo", None, -1, b"m")
    assert len(link.sent) == 1


def test_internal_publish_serves_queue_groups(acc: Account) -> None:
    a = Conn()
    sub(acc, a, b"foo", b"q")
    assert process_msg(Server(), Conn(SYSTEM), acc, b"foo", None, -1, b"m") is True
    assert len(a.frames) == 1


def test_gateway_message_does_not_reenter_gateways(acc: Account) -> None:
    link = GwLink("far")
    local = Conn()
    sub(acc, local, b"foo")
    process_msg(Server(Gateway(link)), Conn(GATEWAY), acc, b"foo", None, -1, b"m")
    assert link.sent == []
    assert len(local.frames) == 1


# ----------------------------------------------------------------------- process_batch


def test_batch_reaches_each_subscriber_as_one_write(acc: Account) -> None:
    pub, a, route = Conn(echo=False), Conn(), Conn(ROUTE)
    sub(acc, pub, b"foo")
    sub(acc, a, b"foo", sid=b"9")
    sub(acc, route, b"foo")
    sub(acc, route, b"*", sid=b"2")
    link, deaf = GwLink("far"), GwLink("deaf", psi=False)
    msgs = [b"one", b"", b"three"]
    process_batch(Server(Gateway(link, deaf)), pub, acc, b"foo", msgs, 8)
    assert a.frames == [b"MSG foo 9 3\r\none\r\nMSG foo 9 0\r\n\r\nMSG foo 9 5\r\nthree\r\n"]
    assert (a.out_msgs, a.out_bytes) == (3, 8)
    assert pub.frames == []
    assert route.sent == [("batch", "A", b"foo", msgs, 8)]
    assert link.sent == [("batch", b"foo", msgs, 8)]
    assert link.accounts == ["A"]
    assert deaf.sent == []


def test_batch_counts_deliveries_on_the_subscription(acc: Account) -> None:
    a = Conn()
    s = sub(acc, a, b"foo")
    process_batch(Server(), Conn(), acc, b"foo", [b"x", b"y"], 2)
    assert s.delivered == 2


def test_batch_echo_publisher_gets_its_own_messages(acc: Account) -> None:
    pub = Conn(echo=True)
    sub(acc, pub, b"foo")
    process_batch(Server(), pub, acc, b"foo", [b"x", b"y"], 2)
    assert pub.payloads == [b"x", b"y"]


def test_batch_subject_and_sid_with_percent_are_framed_literally(acc: Account) -> None:
    a = Conn()
    sub(acc, a, b"a%d.%s", sid=b"%b")
    process_batch(Server(), Conn(), acc, b"a%d.%s", [b"xy"], 2)
    assert a.frames == [b"MSG a%d.%s %b 2\r\nxy\r\n"]


def test_batch_skips_closed_clients_and_routes(acc: Account) -> None:
    a, route = Conn(), Conn(ROUTE)
    a.closed = route.closed = True
    s = sub(acc, a, b"foo")
    sub(acc, route, b"foo")
    process_batch(Server(), Conn(), acc, b"foo", [b"x"], 1)
    assert (a.frames, a.out_msgs, s.delivered, route.sent) == ([], 0, 0, [])


def test_batch_from_a_route_stays_local(acc: Account) -> None:
    other_route, local = Conn(ROUTE), Conn()
    sub(acc, other_route, b"foo")
    sub(acc, local, b"foo")
    link = GwLink("far")
    process_batch(Server(Gateway(link)), Conn(ROUTE), acc, b"foo", [b"x", b"y"], 2)
    assert other_route.sent == []
    assert local.payloads == [b"x", b"y"]
    assert link.sent == []


def test_batch_from_internal_publisher_enters_gateways(acc: Account) -> None:
    link = GwLink("far")
    process_batch(Server(Gateway(link)), Conn(SYSTEM), acc, b"foo", [b"x"], 1)
    assert link.sent == [("batch", b"foo", [b"x"], 1)]


def test_batch_with_queue_group_delivers_each_message_once(acc: Account) -> None:
    a, b, plain = Conn(), Conn(), Conn()
    sub(acc, a, b"foo", b"q")
    sub(acc, b, b"foo", b"q")
    sub(acc, plain, b"foo")
    msgs = [str(i).encode() for i in range(50)]
    process_batch(Server(), Conn(), acc, b"foo", msgs, sum(map(len, msgs)))
    assert sorted(a.payloads + b.payloads, key=int) == msgs
    assert plain.payloads == msgs


def test_batch_honours_auto_unsubscribe(acc: Account) -> None:
    a = Conn()
    sub(acc, a, b"foo", max_msgs=2)
    process_batch(Server(), Conn(), acc, b"foo", [b"1", b"2", b"3"], 3)
    assert a.payloads == [b"1", b"2"]


def test_batch_to_internal_subscriber_that_cannot_batch_goes_message_by_message(
    acc: Account,
) -> None:
    svc = Conn(SYSTEM)
    sub(acc, svc, b"foo", sid=b"s")
    process_batch(Server(), Conn(), acc, b"foo", [b"1", b"2"], 2)
    assert [e[4] for e in svc.internal] == [b"1", b"2"]


def test_batch_to_internal_subscriber_that_batches_is_one_call(acc: Account) -> None:
    svc = Conn(SYSTEM)
    svc.batches = True
    sub(acc, svc, b"foo", sid=b"s")
    process_batch(Server(), Conn(), acc, b"foo", [b"1", b"2"], 2)
    assert svc.internal == [("batch", b"s", b"foo", [b"1", b"2"], 2)]


# ------------------------------------------------------------------------- gateway leg


def test_each_interested_open_cluster_gets_one_copy(acc: Account) -> None:
    a, b, closed, deaf = GwLink("a"), GwLink("b"), GwLink("c"), GwLink("d", psi=False)
    closed.closed = True
    gw = Gateway(a, closed, deaf, b)
    assert process_msg(Server(gw), Conn(), acc, b"foo", None, 4, b"hdr:m") is True
    assert a.sent == b.sent == [(b"foo", None, None, 4, b"hdr:m")]
    assert closed.sent == deaf.sent == []


def test_a_queue_group_is_served_by_the_first_cluster_in_rtt_order_only(acc: Account) -> None:
    near = GwLink("near", psi=False, queues=(b"q",))
    far = GwLink("far", psi=True, queues=(b"q", b"r"))
    farther = GwLink("farther", psi=False, queues=(b"q", b"r"))
    process_msg(Server(Gateway(near, far, farther)), Conn(), acc, b"foo", None, -1, b"m")
    assert near.sent == [(b"foo", None, [b"q"], -1, b"m")]
    assert far.sent == [(b"foo", None, [b"r"], -1, b"m")]
    assert farther.sent == []


def test_replies_are_mapped_to_the_routed_form_when_the_manager_says_so(acc: Account) -> None:
    new, old = GwLink("new"), GwLink("old")
    old.remote_nrp = False
    gw = Gateway(new, old, map_replies=True)
    process_msg(Server(gw), Conn(), acc, b"foo", b"_INBOX.1", -1, b"m")
    here = gw_hash("here")
    assert new.sent[0][1] == b"_GR_." + here + b".SRVHSH._INBOX.1"
    assert old.sent[0][1] == b"$GR." + old_gw_hash("here") + b"._INBOX.1"
    assert gw.barriers == 1
    assert gw.map_asked == [("A", b"_INBOX.1")]


def test_replies_stay_plain_when_not_mapped(acc: Account) -> None:
    a, b = GwLink("a"), GwLink("b")
    gw = Gateway(a, b)
    process_msg(Server(gw), Conn(), acc, b"foo", b"_INBOX.1", -1, b"m")
    assert a.sent[0][1] == b.sent[0][1] == b"_INBOX.1"
    assert gw.barriers == 0


@pytest.mark.parametrize("form", ["new", "old"])
def test_routed_reply_goes_only_to_the_cluster_it_names(acc: Account, form: str) -> None:
    a, b, c = GwLink("a", psi=False), GwLink("b", psi=False), GwLink("c")
    if form == "new":
        subject = b"_GR_." + gw_hash("b") + b".SRVHSH._INBOX.1"
    else:
        subject = b"$GR." + old_gw_hash("b") + b"._INBOX.1"
    assert process_msg(Server(Gateway(a, b, c)), Conn(), acc, subject, b"r", -1, b"m") is True
    assert b.sent == [(subject, b"r", None, -1, b"m")]
    assert b.accounts == ["A"]
    assert a.sent == c.sent == []


def test_routed_reply_for_an_unknown_cluster_goes_nowhere(acc: Account) -> None:
    a = GwLink("a")
    subject = b"_GR_." + gw_hash("zz") + b".SRVHSH._INBOX.1"
    assert process_msg(Server(Gateway(a)), Conn(), acc, subject, None, -1, b"m") is False
    assert a.sent == []


def test_batch_to_clusters_with_queue_interest_goes_message_by_message(acc: Account) -> None:
    closed = GwLink("closed")
    closed.closed = True
    link = GwLink("a", psi=False, queues=(b"q",))
    process_batch(Server(Gateway(closed, link)), Conn(), acc, b"foo", [b"1", b"2"], 2)
    assert link.sent == [(b"foo", None, [b"q"], -1, b"1"), (b"foo", None, [b"q"], -1, b"2")]


def test_batch_on_a_routed_subject_goes_to_the_named_cluster(acc: Account) -> None:
    a, b = GwLink("a"), GwLink("b")
    subject = b"_GR_." + gw_hash("b") + b".SRVHSH.x"
    process_batch(Server(Gateway(a, b)), Conn(), acc, subject, [b"1", b"2"], 2)
    assert b.sent == [(subject, None, None, -1, b"1"), (subject, None, None, -1, b"2")]
    assert b.accounts == ["A", "A"]
    assert a.sent == []


class InterestOnly:
    """A link's per-account state in interest-only mode: the remote's subscriptions, mirrored."""

    def __init__(self, account: Account) -> None:
        self.ni = None
        self.nil = False
        self.sl = account.sublist


def test_interest_only_link_follows_the_remote_subscriptions(acc: Account) -> None:
    remote = Account("A")  # what the remote cluster subscribed to, as we learned it
    sub(remote, Conn(GATEWAY), b"foo.*")
    sub(remote, Conn(GATEWAY), b"foo.bar", b"q", sid=b"2")
    link = GwLink("far", psi=False)  # its interest() would say no: the mirror decides
    link.out_accounts[b"A"] = InterestOnly(remote)
    gw = Gateway(link)
    assert process_msg(Server(gw), Conn(), acc, b"foo.bar", None, -1, b"m") is True
    assert process_msg(Server(gw), Conn(), acc, b"foo.baz", None, -1, b"n") is True
    assert process_msg(Server(gw), Conn(), acc, b"other", None, -1, b"o") is False
    assert link.sent == [(b"foo.bar", None, [b"q"], -1, b"m"), (b"foo.baz", None, None, -1, b"n")]


@pytest.mark.parametrize("state", ["optimistic", "no-interest-list"])
def test_link_not_in_interest_only_mode_asks_the_link(acc: Account, state: str) -> None:
    st = InterestOnly(Account("A"))
    if state == "optimistic":
        st.ni = set()  # a no-interest set: the link's own rules apply
    else:
        st.nil = True
    link = GwLink("far", psi=True)
    link.out_accounts[b"A"] = st
    assert process_msg(Server(Gateway(link)), Conn(), acc, b"foo", None, -1, b"m") is True
    assert link.sent == [(b"foo", None, None, -1, b"m")]


# ------------------------------------------------------------------- routed replies


class Routes:
    def __init__(self, *conns: Conn) -> None:
        self.conns = list(conns)

    def connections(self) -> list[Conn]:
        return self.conns


class GwServer(Server):
    def __init__(self, gateway: Gateway | None, routes: Routes | None = None) -> None:
        super().__init__(gateway)
        self.routes = routes


def routed(gw: Gateway, real: bytes, server_hash: bytes = b"SRVHSH") -> bytes:
    return b"_GR_." + gw.cluster_hash + b"." + server_hash + b"." + real


def test_routed_reply_without_gateways_is_an_ordinary_subject(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    assert process_routed_reply(GwServer(None), Conn(), acc, b"_GR_.x", None, -1, b"m") is False


def test_routed_reply_for_us_reaches_the_requester_and_its_queue_group(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester, member = Conn(), Conn()
    sub(acc, requester, b"_INBOX.1")
    sub(acc, member, b"_INBOX.1", b"q", sid=b"2")
    link = GwLink("far")
    gw = Gateway(link)
    subject = routed(gw, b"_INBOX.1")
    src = Conn(GATEWAY)
    assert process_routed_reply(GwServer(gw), src, acc, subject, b"r", -1, b"ans") is True
    assert requester.frames == [b"MSG _INBOX.1 1 r 3\r\nans\r\n"]
    assert member.frames == [b"MSG _INBOX.1 2 r 3\r\nans\r\n"]
    # and on to other clusters that subscribed to the plain reply subject
    assert link.sent == [(b"_INBOX.1", b"r", None, -1, b"ans")]


def test_routed_reply_to_a_route_reply_subject_stays_in_the_cluster(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester = Conn()
    sub(acc, requester, b"_R_.abc.x")
    link = GwLink("far")
    gw = Gateway(link)
    assert process_routed_reply(
        GwServer(gw), Conn(GATEWAY), acc, routed(gw, b"_R_.abc.x"), None, -1, b"a"
    )
    assert requester.payloads == [b"a"]
    assert link.sent == []


def test_routed_reply_for_another_cluster_is_dropped(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester = Conn()
    sub(acc, requester, b"_INBOX.1")
    gw = Gateway(GwLink("far"))
    other = b"_GR_." + gw_hash("elsewhere") + b".SRVHSH._INBOX.1"
    too_short = b"_GR_." + gw.cluster_hash + b".SRVHSH."
    for subject in (other, too_short):
        assert process_routed_reply(GwServer(gw), Conn(GATEWAY), acc, subject, None, -1, b"a")
    assert requester.frames == []


def test_routed_reply_for_another_server_of_ours_goes_to_its_route(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester, r1, r2 = Conn(), Conn(ROUTE), Conn(ROUTE)
    r1.remote_id, r2.remote_id = "NSERVER1", "NSERVER2"
    sub(acc, requester, b"_INBOX.1")
    gw = Gateway(GwLink("far"))
    subject = routed(gw, b"_INBOX.1", gw_hash("NSERVER2"))
    server = GwServer(gw, Routes(r1, r2))
    assert process_routed_reply(server, Conn(GATEWAY), acc, subject, b"r", 2, b"hhans") is True
    assert r2.sent == [("msg", "A", subject, b"r", [], 2, b"hhans")]
    assert r1.sent == []
    assert requester.frames == []


def test_routed_reply_for_an_unknown_server_of_ours_is_delivered_here(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester, r1 = Conn(), Conn(ROUTE)
    r1.remote_id = "NSERVER1"
    sub(acc, requester, b"_INBOX.1")
    gw = Gateway()
    subject = routed(gw, b"_INBOX.1", gw_hash("NGONE"))
    assert process_routed_reply(
        GwServer(gw, Routes(r1)), Conn(GATEWAY), acc, subject, None, -1, b"a"
    )
    assert requester.payloads == [b"a"]
    assert r1.sent == []
    # without routes at all, likewise
    assert process_routed_reply(GwServer(gw, None), Conn(GATEWAY), acc, subject, None, -1, b"b")
    assert requester.payloads == [b"a", b"b"]


def test_routed_reply_from_inside_the_cluster_is_delivered_here(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester, r1 = Conn(), Conn(ROUTE)
    r1.remote_id = "NSERVER1"
    sub(acc, requester, b"_INBOX.1")
    gw = Gateway()
    subject = routed(gw, b"_INBOX.1", gw_hash("NSERVER1"))
    assert process_routed_reply(GwServer(gw, Routes(r1)), Conn(ROUTE), acc, subject, None, -1, b"a")
    assert requester.payloads == [b"a"]
    assert r1.sent == []


def test_old_form_routed_reply(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    requester = Conn()
    sub(acc, requester, b"_INBOX.1")
    gw = Gateway()
    ours = b"$GR." + gw.old_cluster_hash + b"._INBOX.1"
    theirs = b"$GR." + old_gw_hash("elsewhere") + b"._INBOX.1"
    assert process_routed_reply(GwServer(gw), Conn(GATEWAY), acc, theirs, None, -1, b"x") is True
    assert process_routed_reply(GwServer(gw), Conn(GATEWAY), acc, ours, None, -1, b"y") is True
    assert requester.payloads == [b"y"]


def test_answer_to_a_remote_requester_goes_straight_back(acc: Account) -> None:
    from scserver.routing import send_routed_reply

    a, b = GwLink("a", psi=False), GwLink("b", psi=False)
    gw = Gateway(a, b)
    subject = b"_GR_." + gw_hash("b") + b".SRVHSH._INBOX.1"
    send_routed_reply(GwServer(gw), acc, subject, b"r", 2, b"hhans")
    assert b.sent == [(subject, b"r", None, 2, b"hhans")]
    assert b.accounts == ["A"]
    assert a.sent == []


def test_answer_to_a_requester_in_our_own_cluster_is_delivered_here(acc: Account) -> None:
    from scserver.routing import send_routed_reply

    requester = Conn()
    sub(acc, requester, b"_INBOX.1")
    link = GwLink("a", psi=False)
    gw = Gateway(link)
    send_routed_reply(GwServer(gw), acc, routed(gw, b"_INBOX.1"), b"r", -1, b"ans")
    assert requester.frames == [b"MSG _INBOX.1 1 r 3\r\nans\r\n"]
    assert link.sent == []


def test_gateway_leg_reports_whether_any_cluster_took_the_message(acc: Account) -> None:
    from scserver.routing import gateway_leg

    assert gateway_leg(Gateway(GwLink("a", psi=False)), acc, b"foo", None, -1, b"m", None) is False
    assert gateway_leg(Gateway(), acc, b"foo", None, -1, b"m", None) is False
    assert gateway_leg(Gateway(GwLink("a")), acc, b"foo", None, -1, b"m", None) is True


def test_remote_groups_not_yet_served_are_all_offered(acc: Account) -> None:
    link = GwLink("far", psi=False, queues=(b"qa", b"qb"))
    process_msg(Server(Gateway(link)), Conn(), acc, b"foo", None, -1, b"m")
    assert link.sent == [(b"foo", None, [b"qa", b"qb"], -1, b"m")]


def test_batch_counters_accumulate(acc: Account) -> None:
    a = Conn()
    s = sub(acc, a, b"foo")
    process_batch(Server(), Conn(), acc, b"foo", [b"x", b"y"], 2)
    process_batch(Server(), Conn(), acc, b"foo", [b"zzz"], 3)
    assert (a.out_msgs, a.out_bytes, s.delivered) == (3, 5, 3)


def test_batch_reaches_every_route_once(acc: Account) -> None:
    r1, r2 = Conn(ROUTE), Conn(ROUTE)
    sub(acc, r1, b"foo")
    sub(acc, r2, b"foo")
    sub(acc, r2, b"foo.>", sid=b"2")
    sub(acc, r1, b">", sid=b"3")
    process_batch(Server(), Conn(), acc, b"foo", [b"x"], 1)
    assert r1.sent == r2.sent == [("batch", "A", b"foo", [b"x"], 1)]


def test_batch_falling_back_sends_plain_messages_everywhere(acc: Account) -> None:
    a = Conn()
    sub(acc, a, b"foo", b"q")
    link = GwLink("far")
    process_batch(Server(Gateway(link)), Conn(), acc, b"foo", [b"1", b"2"], 2)
    assert a.frames == [b"MSG foo 1 1\r\n1\r\n", b"MSG foo 1 1\r\n2\r\n"]
    assert [e[3] for e in link.sent] == [-1, -1]


def test_a_group_with_no_available_member_does_not_stop_other_groups() -> None:
    for first in (b"a", b"b"):
        a = Account("A")
        gone, client = Conn(), Conn()
        gone.closed = True
        other = b"b" if first == b"a" else b"a"
        sub(a, gone, b"foo", first, sid=b"g")
        sub(a, client, b"foo", other, sid=b"c")
        assert process_msg(Server(), Conn(), a, b"foo", None, -1, b"m") is True
        assert client.payloads == [b"m"]


def test_routed_reply_reaches_internal_subscribers_with_its_real_source(acc: Account) -> None:
    from scserver.routing import process_routed_reply

    svc = Conn(SYSTEM)
    sub(acc, svc, b"_INBOX.1", sid=b"s")
    gw = Gateway()
    src = Conn(GATEWAY)
    assert process_routed_reply(GwServer(gw), src, acc, routed(gw, b"_INBOX.1"), None, -1, b"a")
    assert svc.internal == [(b"s", b"_INBOX.1", None, -1, b"a", src)]

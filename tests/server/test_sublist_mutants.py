"""The sublist's result cache stays exact, checked exhaustively over a small subject space.

Every literal subject of one to four tokens over ``a b c`` is matched first (so it is cached),
then one subscription with each pattern of up to three tokens over ``a b c * >`` is inserted and
removed; after each step every cached answer must equal the reference matcher's.  This pins the
cache maintenance on wildcard inserts (prefix, token-count and literal-token filters) that
``make mutate`` found weakly covered, plus the small contracts around it (errors, counters).
"""

from __future__ import annotations

import itertools

import pytest

from scserver.subjects import subject_matches
from scserver.sublist import InvalidSubjectError, Sublist

TOKENS = (b"a", b"b", b"c")
SUBJECTS = [b".".join(t) for n in range(1, 5) for t in itertools.product(TOKENS, repeat=n)]
PATTERNS = [
    b".".join(t)
    for n in range(1, 4)
    for t in itertools.product((*TOKENS, b"*", b">"), repeat=n)
    if b">" not in t[:-1]
]


class Sub:
    def __init__(self, subject: bytes, queue: bytes | None = None) -> None:
        self.subject = subject
        self.queue = queue

    def __repr__(self) -> str:
        return f"Sub({self.subject!r}, {self.queue!r})"


def _check(sl: Sublist, subs: list[Sub]) -> None:
    for s in SUBJECTS:
        r = sl.match(s)
        want_p = {id(x) for x in subs if x.queue is None and subject_matches(x.subject, s)}
        want_q = {id(x) for x in subs if x.queue is not None and subject_matches(x.subject, s)}
        assert {id(x) for x in r.psubs} == want_p, (s, subs)
        assert {id(x) for g in r.qsubs for x in g} == want_q, (s, subs)
        for g in r.qsubs:
            assert len({x.queue for x in g}) == 1, g


@pytest.mark.parametrize("queue", [None, b"q"])
def test_cached_answers_follow_every_wildcard_insert_and_remove(queue: bytes | None) -> None:
    for pattern in PATTERNS:
        sl = Sublist()
        base = Sub(b"a.b")
        sl.insert(base)
        for s in SUBJECTS:
            sl.match(s)  # every subject cached
        sub = Sub(pattern, queue)
        sl.insert(sub)
        _check(sl, [base, sub])
        assert sl.remove(sub) is True
        _check(sl, [base])


def test_cached_queue_group_gains_members_without_losing_plain_subscribers() -> None:
    sl = Sublist()
    plain, q1, q2, other = Sub(b"foo"), Sub(b"foo", b"q"), Sub(b"foo", b"q"), Sub(b"foo", b"r")
    sl.insert(plain)
    sl.insert(q1)
    assert sl.match(b"foo").qsubs == [[q1]]  # cached now
    sl.insert(q2)
    sl.insert(other)
    r = sl.match(b"foo")
    assert r.psubs == [plain]
    assert sorted(map(len, r.qsubs)) == [1, 2]
    assert {id(x) for g in r.qsubs for x in g} == {id(q1), id(q2), id(other)}
    wq = Sub(b"*", b"q")
    sl.insert(wq)
    r = sl.match(b"foo")
    assert r.psubs == [plain]
    assert sorted(map(len, r.qsubs)) == [1, 3]


def test_removing_what_is_not_there_is_false() -> None:
    sl = Sublist()
    a, b = Sub(b"foo", b"q"), Sub(b"foo", b"q")
    sl.insert(a)
    assert sl.remove(b) is False  # same group, never inserted
    assert sl.remove(Sub(b"bar")) is False
    assert sl.match(b"foo").qsubs == [[a]]


def test_removing_an_uncached_literal_subscription() -> None:
    sl = Sublist()
    a = Sub(b"foo")
    sl.insert(a)
    assert sl.remove(a) is True  # foo was never matched, so never cached
    assert sl.match(b"foo").psubs == []


def test_errors_name_the_problem() -> None:
    sl = Sublist()
    a = Sub(b"foo.*")
    sl.insert(a)
    with pytest.raises(ValueError, match="^subscription already inserted$"):
        sl.insert(a)
    lit = Sub(b"foo")
    sl.insert(lit)
    with pytest.raises(ValueError, match="^subscription already inserted$"):
        sl.insert(lit)
    with pytest.raises(InvalidSubjectError, match=r"invalid subject b'foo\.\.bar'"):
        sl.insert(Sub(b"foo..bar"))


def test_stats_count_inserts_removes_and_misses() -> None:
    sl = Sublist()
    a, b = Sub(b"foo"), Sub(b"bar.*")
    sl.insert(a)
    sl.insert(b)
    sl.match(b"foo")
    sl.match(b"bar.x")
    sl.match(b"foo")  # a hit, not counted
    sl.remove(a)
    assert sl.stats() == {
        "num_subscriptions": 1,
        "num_cache": 1,
        "num_inserts": 2,
        "num_removes": 1,
        "num_cache_misses": 2,
    }


def test_cached_results_stay_usable_through_mixed_inserts() -> None:
    sl = Sublist()
    q1, q2, lit, w1, w2 = Sub(b"foo", b"q"), Sub(b"foo", b"q"), Sub(b"foo"), Sub(b"*"), Sub(b">")
    sl.insert(q1)
    sl.match(b"foo")  # cached
    sl.insert(q2)  # literal, into an existing cached group
    sl.insert(lit)  # literal, plain
    sl.insert(w1)  # wildcards update the same cached entry again
    sl.insert(w2)
    r = sl.match(b"foo")
    assert {id(x) for x in r.psubs} == {id(lit), id(w1), id(w2)}
    assert [sorted(map(id, g)) for g in r.qsubs] == [sorted([id(q1), id(q2)])]


def test_queue_subscription_inserted_twice_is_refused() -> None:
    sl = Sublist()
    q = Sub(b"foo", b"q")
    sl.insert(q)
    with pytest.raises(ValueError, match="^subscription already inserted$"):
        sl.insert(q)


def test_removing_an_uncached_subject_while_others_are_cached() -> None:
    sl = Sublist()
    a, b = Sub(b"foo"), Sub(b"bar")
    sl.insert(a)
    sl.insert(b)
    sl.match(b"bar")  # the cache holds bar only
    assert sl.remove(a) is True
    assert sl.remove(b) is True
    assert sl.stats()["num_removes"] == 2
    assert sl.match(b"foo").psubs == [] and sl.match(b"bar").psubs == []

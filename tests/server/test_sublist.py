"""Sublist: trie matching, queue grouping, cache maintenance, reverse match.

Besides the unit tests, a hypothesis state machine drives random insert/remove/match sequences
against a reference model (a plain list filtered with ``subject_matches``) and checks every cached
result after every step, so cache maintenance bugs show up as soon as they happen.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

import scserver.sublist as sublist_mod
from scserver.subjects import subject_matches, subjects_collide
from scserver.sublist import CACHE_MAX, CACHE_SWEEP, InvalidSubjectError, Sublist, SublistResult


class Sub:
    """Minimal subscription.  Defines __eq__ on purpose: the sublist must compare by identity."""

    def __init__(self, subject: bytes, queue: bytes | None = None) -> None:
        self.subject = subject
        self.queue = queue

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sub) and (self.subject, self.queue) == (other.subject, other.queue)

    def __hash__(self) -> int:
        return hash((self.subject, self.queue))

    def __repr__(self) -> str:
        return f"Sub({self.subject!r}, {self.queue!r})"


def ids(subs: list[Sub]) -> list[int]:
    return sorted(id(s) for s in subs)


def normalise(r: SublistResult) -> tuple[list[int], dict[bytes | None, list[int]]]:
    """Order-free form of a result; also checks that groups are grouped by queue name."""
    groups: dict[bytes | None, list[int]] = {}
    for g in r.qsubs:
        assert g, "empty queue group in result"
        name = g[0].queue
        assert all(m.queue == name for m in g), "queue group mixes names"
        assert name not in groups, "queue group split in two"
        groups[name] = ids(g)
    assert all(not s.queue for s in r.psubs)
    return ids(r.psubs), groups


def model_match(subs: list[Sub], subject: bytes) -> tuple[list[int], dict[bytes | None, list[int]]]:
    hit = [s for s in subs if subject_matches(s.subject, subject)]
    groups: dict[bytes | None, list[Sub]] = {}
    for s in hit:
        if s.queue:
            groups.setdefault(s.queue, []).append(s)
    return ids([s for s in hit if not s.queue]), {k: ids(v) for k, v in groups.items()}


# -- basics --------------------------------------------------------------------------------


def test_empty() -> None:
    sl: Sublist[Sub] = Sublist()
    r = sl.match(b"foo")
    assert r.psubs == [] and r.qsubs == []
    assert sl.count() == 0 and len(sl) == 0 and sl.all() == []
    assert not sl.has_interest(b"foo")


def test_literal_match() -> None:
    sl: Sublist[Sub] = Sublist()
    a, b = Sub(b"foo.bar"), Sub(b"foo.baz")
    sl.insert(a)
    sl.insert(b)
    assert sl.match(b"foo.bar").psubs == [a]
    assert sl.match(b"foo.baz").psubs == [b]
    assert sl.match(b"foo").psubs == []
    assert sl.match(b"foo.bar.baz").psubs == []
    assert sl.count() == 2


def test_identity_not_equality() -> None:
    sl: Sublist[Sub] = Sublist()
    a, b = Sub(b"foo"), Sub(b"foo")
    assert a == b
    sl.insert(a)
    sl.insert(b)
    assert ids(sl.match(b"foo").psubs) == ids([a, b])
    assert sl.remove(b)
    assert sl.match(b"foo").psubs == [a]
    assert sl.match(b"foo").psubs[0] is a
    assert not sl.remove(b)


def test_double_insert_rejected() -> None:
    sl: Sublist[Sub] = Sublist()
    a = Sub(b"foo")
    sl.insert(a)
    with pytest.raises(ValueError):
        sl.insert(a)
    q = Sub(b"foo", b"q")
    sl.insert(q)
    with pytest.raises(ValueError):
        sl.insert(q)
    assert sl.count() == 2


@pytest.mark.parametrize("subject", [b"", b"foo..bar", b".foo", b"foo.", b"foo.>.bar", b"a b"])
def test_insert_invalid(subject: bytes) -> None:
    sl: Sublist[Sub] = Sublist()
    with pytest.raises(InvalidSubjectError):
        sl.insert(Sub(subject))
    assert issubclass(InvalidSubjectError, ValueError)
    assert sl.count() == 0 and sl.genid == 0


@pytest.mark.parametrize("subject", [b"foo*", b"f>o", b"*foo.>bar"])
def test_wildcard_chars_inside_tokens_are_literal(subject: bytes) -> None:
    sl: Sublist[Sub] = Sublist()
    s = Sub(subject)
    sl.insert(s)
    assert sl.match(subject).psubs == [s]
    assert sl.match(b"foo").psubs == []
    assert sl.match(b"fxo").psubs == []


def test_invalid_match_subject_matches_nothing() -> None:
    sl: Sublist[Sub] = Sublist()
    sl.insert(Sub(b">"))
    for subj in (b"", b"foo..bar", b".foo", b"foo."):
        r = sl.match(subj)
        assert r.psubs == [] and r.qsubs == []
        assert not sl.has_interest(subj)
    assert sl.cache_count() == 0


WILDCARD_CASES = [
    # pattern, matching subjects, non-matching subjects
    (b"*", [b"foo", b"bar"], [b"foo.bar"]),
    (b">", [b"foo", b"foo.bar", b"a.b.c.d"], []),
    (b"foo.*", [b"foo.bar", b"foo.baz"], [b"foo", b"foo.bar.baz", b"bar.foo"]),
    (b"foo.>", [b"foo.bar", b"foo.bar.baz"], [b"foo", b"bar.foo"]),
    (b"*.bar", [b"foo.bar", b"x.bar"], [b"bar", b"foo.bar.x", b"foo.baz"]),
    (b"*.*", [b"a.b"], [b"a", b"a.b.c"]),
    (b"*.>", [b"a.b", b"a.b.c"], [b"a"]),
    (b"foo.*.baz", [b"foo.x.baz"], [b"foo.baz", b"foo.x.y.baz", b"foo.x.bar"]),
    (b"foo.*.>", [b"foo.x.y", b"foo.x.y.z"], [b"foo.x", b"foo"]),
    (b"*.*.*", [b"a.b.c"], [b"a.b", b"a.b.c.d"]),
    (b"a.*.c.>", [b"a.b.c.d", b"a.x.c.d.e"], [b"a.b.c", b"a.b.d.e"]),
]


@pytest.mark.parametrize(("pattern", "yes", "no"), WILDCARD_CASES)
def test_wildcard_matching(pattern: bytes, yes: list[bytes], no: list[bytes]) -> None:
    sl: Sublist[Sub] = Sublist()
    s = Sub(pattern)
    sl.insert(s)
    for subj in yes:
        assert sl.match(subj).psubs == [s], subj
        assert sl.has_interest(subj)
    for subj in no:
        assert sl.match(subj).psubs == [], subj
        assert not sl.has_interest(subj)


def test_all_overlaps() -> None:
    sl: Sublist[Sub] = Sublist()
    subs = [
        Sub(p) for p in (b"a.b.c", b"a.b.*", b"a.*.c", b"*.b.c", b"a.>", b"*.*.*", b">", b"a.b")
    ]
    for s in subs:
        sl.insert(s)
    assert ids(sl.match(b"a.b.c").psubs) == ids(subs[:7])
    assert ids(sl.match(b"a.b").psubs) == ids([subs[4], subs[6], subs[7]])
    assert ids(sl.match(b"x.b.c").psubs) == ids([subs[3], subs[5], subs[6]])


def test_queue_grouping() -> None:
    sl: Sublist[Sub] = Sublist()
    q1a, q1b, q1c = Sub(b"foo.bar", b"q1"), Sub(b"foo.*", b"q1"), Sub(b"foo.>", b"q1")
    q2 = Sub(b"foo.bar", b"q2")
    plain = Sub(b"foo.bar")
    for s in (q1a, q1b, q1c, q2, plain):
        sl.insert(s)
    r = sl.match(b"foo.bar")
    assert normalise(r) == (ids([plain]), {b"q1": ids([q1a, q1b, q1c]), b"q2": ids([q2])})
    assert sorted(sl.match_queue_names(b"foo.bar")) == [b"q1", b"q2"]
    assert sl.match_queue_names(b"foo.x.y") == [b"q1"]
    assert sl.match_queue_names(b"bar") == []


def test_empty_queue_is_plain() -> None:
    sl: Sublist[Sub] = Sublist()
    s = Sub(b"foo", b"")
    sl.insert(s)
    assert sl.match(b"foo").psubs == [s]
    assert sl.match(b"foo").qsubs == []
    assert sl.remove(s)


def test_remove_and_prune() -> None:
    sl: Sublist[Sub] = Sublist()
    subs = [Sub(p) for p in (b"a.b.c", b"a.*.c", b"a.>", b"a.b")]
    q = Sub(b"a.b.c", b"q")
    for s in [*subs, q]:
        sl.insert(s)
    assert not sl.remove(Sub(b"a.b.c"))
    assert not sl.remove(Sub(b"x.y"))
    assert not sl.remove(Sub(b"a.b.c", b"other"))
    for s in [*subs, q]:
        assert sl.remove(s)
        assert not sl.remove(s)
    assert sl.count() == 0
    root = sl._root
    assert not root.children and root.pwc is None and root.fwc is None


def test_remove_wrong_queue_keeps_sub() -> None:
    sl: Sublist[Sub] = Sublist()
    s = Sub(b"foo", b"q")
    sl.insert(s)
    s.queue = b"r"
    assert not sl.remove(s)
    s.queue = b"q"
    assert sl.remove(s)


def test_genid_and_count() -> None:
    sl: Sublist[Sub] = Sublist()
    a, b = Sub(b"foo"), Sub(b"foo.*")
    sl.insert(a)
    assert sl.genid == 1
    sl.insert(b)
    assert sl.genid == 2
    sl.match(b"foo")
    assert sl.genid == 2
    sl.remove(a)
    assert sl.genid == 3
    assert not sl.remove(a)
    assert sl.genid == 3
    assert sl.count() == 1
    assert sl.all() == [b]


def test_all_and_remove_batch() -> None:
    sl: Sublist[Sub] = Sublist()
    subs = [Sub(p, q) for p in (b"a", b"a.*", b"a.>", b">", b"*.b") for q in (None, b"q")]
    for s in subs:
        sl.insert(s)
    assert ids(sl.all()) == ids(subs)
    assert sl.remove_batch([*subs[:4], Sub(b"zzz")]) == 4
    assert ids(sl.all()) == ids(subs[4:])


# -- cache -----------------------------------------------------------------------------------


def test_cache_hit_is_same_object() -> None:
    sl: Sublist[Sub] = Sublist()
    sl.insert(Sub(b"foo.*"))
    r1 = sl.match(b"foo.bar")
    assert sl.match(b"foo.bar") is r1
    assert sl.cache_count() == 1


def test_literal_insert_touches_only_its_entry() -> None:
    sl: Sublist[Sub] = Sublist()
    sl.insert(Sub(b">"))
    r_bar = sl.match(b"foo.bar")
    r_baz = sl.match(b"foo.baz")
    s = Sub(b"foo.bar")
    sl.insert(s)
    assert sl.match(b"foo.baz") is r_baz
    new = sl.match(b"foo.bar")
    assert new is not r_bar and s in new.psubs
    # Copy-on-write: the result handed out earlier is unchanged.
    assert s not in r_bar.psubs and len(r_bar.psubs) == 1


def test_literal_remove_touches_only_its_entry() -> None:
    sl: Sublist[Sub] = Sublist()
    s = Sub(b"foo.bar")
    sl.insert(s)
    sl.insert(Sub(b"foo.baz"))
    r_bar = sl.match(b"foo.bar")
    r_baz = sl.match(b"foo.baz")
    sl.remove(s)
    assert sl.match(b"foo.baz") is r_baz
    assert sl.match(b"foo.bar").psubs == []
    assert r_bar.psubs == [s]


def test_wildcard_insert_updates_matching_entries() -> None:
    sl: Sublist[Sub] = Sublist()
    for subj in (b"foo.bar", b"foo.baz", b"foo", b"bar.baz", b"foo.bar.baz"):
        assert sl.match(subj).psubs == []
    w = Sub(b"foo.*")
    sl.insert(w)
    assert sl.match(b"foo.bar").psubs == [w]
    assert sl.match(b"foo.baz").psubs == [w]
    assert sl.match(b"foo").psubs == []
    assert sl.match(b"bar.baz").psubs == []
    assert sl.match(b"foo.bar.baz").psubs == []
    f = Sub(b"foo.>", b"q")
    sl.insert(f)
    assert sl.match(b"foo.bar.baz").qsubs == [[f]]
    assert sl.match(b"foo.bar").qsubs == [[f]]
    assert sl.match(b"foo").qsubs == []
    g = Sub(b"*.baz", b"q")
    sl.insert(g)
    assert ids(sl.match(b"foo.baz").qsubs[0]) == ids([f, g])
    assert sl.match(b"bar.baz").qsubs == [[g]]


def test_wildcard_remove_drops_matching_entries() -> None:
    sl: Sublist[Sub] = Sublist()
    w = Sub(b"*.bar")
    lit = Sub(b"baz")
    sl.insert(w)
    sl.insert(lit)
    sl.match(b"foo.bar")
    sl.match(b"x.bar")
    r_baz = sl.match(b"baz")
    sl.remove(w)
    assert sl.match(b"foo.bar").psubs == []
    assert sl.match(b"x.bar").psubs == []
    assert sl.match(b"baz") is r_baz


def test_has_interest_uses_cache_and_does_not_fill_it() -> None:
    sl: Sublist[Sub] = Sublist()
    sl.insert(Sub(b"foo.>"))
    assert sl.has_interest(b"foo.bar")
    assert sl.cache_count() == 0
    sl.match(b"foo.bar")
    sl.match(b"bar")
    assert sl.has_interest(b"foo.bar")
    assert not sl.has_interest(b"bar")


def test_cache_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (CACHE_MAX, CACHE_SWEEP) == (1024, 256)
    sl: Sublist[Sub] = Sublist()
    s = Sub(b"x.>")
    sl.insert(s)
    for i in range(CACHE_MAX):
        sl.match(b"x.%d" % i)
    assert sl.cache_count() == CACHE_MAX
    sl.match(b"x.new")
    assert sl.cache_count() == CACHE_SWEEP
    assert sl.match(b"x.new").psubs == [s]
    assert sl.match(b"x.0").psubs == [s]
    # After a sweep the cache keeps being maintained.
    t = Sub(b"x.*")
    sl.insert(t)
    assert ids(sl.match(b"x.new").psubs) == ids([s, t])


def test_reverse_match() -> None:
    sl: Sublist[Sub] = Sublist()
    subjects = [
        b"foo",
        b"foo.bar",
        b"foo.*",
        b"foo.>",
        b"*.bar",
        b">",
        b"bar.baz",
        b"foo.bar.baz",
        b"*",
        b"foo.*.baz",
    ]
    subs = [Sub(s) for s in subjects] + [Sub(b"foo.bar", b"q")]
    for s in subs:
        sl.insert(s)
    for pattern in (b"foo", b"foo.bar", b"foo.*", b"foo.>", b">", b"*", b"*.*", b"x.y", b"*.>"):
        expected = [s for s in subs if subjects_collide(pattern, s.subject)]
        assert ids(sl.reverse_match(pattern)) == ids(expected), pattern
    assert sl.reverse_match(b"foo..bar") == []


def test_stats() -> None:
    sl: Sublist[Sub] = Sublist()
    s = Sub(b"a")
    sl.insert(s)
    sl.match(b"a")
    sl.match(b"a")
    sl.remove(s)
    st_ = sl.stats()
    assert st_["num_subscriptions"] == 0
    assert st_["num_inserts"] == 1 and st_["num_removes"] == 1
    assert st_["num_cache_misses"] == 1


# -- model-based state machine ---------------------------------------------------------------


def _pattern(tokens: list[bytes]) -> bytes:
    if b">" in tokens:
        tokens = tokens[: tokens.index(b">") + 1]
    return b".".join(tokens)


PATTERNS = st.lists(st.sampled_from([b"a", b"b", b"*", b">"]), min_size=1, max_size=4).map(_pattern)
LITERALS = st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=5).map(b".".join)
QUEUES = st.sampled_from([None, None, b"q1", b"q2"])


class SublistMachine(RuleBasedStateMachine):
    """Random insert/remove/match against a list model, with a tiny cache to force sweeps."""

    subs = Bundle("subs")

    def __init__(self) -> None:
        super().__init__()
        self.sl: Sublist[Sub] = Sublist()
        self.model: list[Sub] = []
        self.removed: list[Sub] = []
        self.held: list[tuple[SublistResult, list[int], list[list[int]]]] = []
        self.genid = 0

    @initialize(small_cache=st.booleans())
    def setup_cache(self, small_cache: bool) -> None:
        self.saved = (sublist_mod.CACHE_MAX, sublist_mod.CACHE_SWEEP)
        if small_cache:
            sublist_mod.CACHE_MAX, sublist_mod.CACHE_SWEEP = 6, 2

    def teardown(self) -> None:
        if hasattr(self, "saved"):
            sublist_mod.CACHE_MAX, sublist_mod.CACHE_SWEEP = self.saved

    @rule(target=subs, subject=PATTERNS, queue=QUEUES)
    def insert(self, subject: bytes, queue: bytes | None) -> Sub:
        s = Sub(subject, queue)
        self.sl.insert(s)
        self.model.append(s)
        self.genid += 1
        return s

    @rule(s=consumes(subs))
    def remove(self, s: Sub) -> None:
        assert self.sl.remove(s)
        # list.remove would compare with __eq__; the model, like the sublist, uses identity.
        del self.model[next(i for i, m in enumerate(self.model) if m is s)]
        self.removed.append(s)
        self.genid += 1

    @rule(data=st.data())
    def remove_again(self, data: st.DataObject) -> None:
        if self.removed:
            s = data.draw(st.sampled_from(self.removed))
            assert not self.sl.remove(s)

    @rule(subject=LITERALS)
    def match(self, subject: bytes) -> None:
        r = self.sl.match(subject)
        assert normalise(r) == model_match(self.model, subject)
        assert self.sl.match(subject) is r
        # Remember the result to check later that nobody mutated it.
        self.held.append((r, [id(s) for s in r.psubs], [[id(s) for s in g] for g in r.qsubs]))

    @rule(subject=LITERALS)
    def has_interest(self, subject: bytes) -> None:
        expected = any(subject_matches(s.subject, subject) for s in self.model)
        assert self.sl.has_interest(subject) is expected

    @rule(pattern=PATTERNS)
    def reverse_match(self, pattern: bytes) -> None:
        expected = [s for s in self.model if subjects_collide(pattern, s.subject)]
        assert ids(self.sl.reverse_match(pattern)) == ids(expected)

    @invariant()
    def cache_is_exact(self) -> None:
        for subject, r in self.sl._cache.items():
            assert normalise(r) == model_match(self.model, subject), subject

    @invariant()
    def bookkeeping(self) -> None:
        assert self.sl.count() == len(self.model)
        assert self.sl.genid == self.genid
        assert ids(self.sl.all()) == ids(self.model)
        assert self.sl.cache_count() <= sublist_mod.CACHE_MAX

    @invariant()
    def held_results_unchanged(self) -> None:
        for r, p, q in self.held:
            assert [id(s) for s in r.psubs] == p
            assert [[id(s) for s in g] for g in r.qsubs] == q


SublistMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
TestSublistMachine = SublistMachine.TestCase


@pytest.mark.parametrize("depth", [3, 64, 65, 300])
def test_deep_subjects_branching_at_every_level(depth: int) -> None:
    """Deep subjects with `*` and literal branches at every level: no recursion limit, and the
    breadth-first walk used past 64 tokens agrees with the model."""
    sl: Sublist[Sub] = Sublist()
    subs = []
    for k in range(depth):
        toks = [b"a"] * depth
        toks[k] = b"*"
        subs.append(Sub(b".".join(toks)))
        subs.append(Sub(b".".join([b"a"] * (k + 1) + [b">"]), b"q"))
    subs.append(Sub(b".".join([b"*"] * depth)))
    subs.append(Sub(b".".join([b"a"] * depth)))
    for s in subs:
        sl.insert(s)
    for subject in (
        b".".join([b"a"] * depth),
        b".".join([b"a"] * (depth - 1) + [b"b"]),
        b".".join([b"b"] + [b"a"] * (depth - 1)),
        b".".join([b"a"] * (depth + 1)),
    ):
        assert sl.has_interest(subject) is any(subject_matches(s.subject, subject) for s in subs)
        assert normalise(sl.match(subject)) == model_match(subs, subject)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(PATTERNS, QUEUES), max_size=25),
    st.lists(LITERALS, min_size=1, max_size=10),
)
def test_wide_walk_agrees_with_recursive(
    entries: list[tuple[bytes, bytes | None]], subjects: list[bytes]
) -> None:
    """The breadth-first walk (used for very long subjects) gives the same answers."""
    subs = [Sub(p, q) for p, q in entries]
    sl: Sublist[Sub] = Sublist()
    for s in subs:
        sl.insert(s)
    saved = sublist_mod._MAX_RECURSIVE_TOKENS
    for limit in (saved, 0):
        sublist_mod._MAX_RECURSIVE_TOKENS = limit
        try:
            sl._cache.clear()
            for subject in subjects:
                expected = model_match(subs, subject)
                assert sl.has_interest(subject) is bool(expected[0] or expected[1])
                assert normalise(sl.match(subject)) == expected
        finally:
            sublist_mod._MAX_RECURSIVE_TOKENS = saved

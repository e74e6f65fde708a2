"""Subject validation and matching rules (nats-server ``server/sublist.go`` semantics)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scserver.subjects import (
    has_wildcard,
    is_valid_literal_subject,
    is_valid_queue,
    is_valid_subject,
    subject_matches,
    subjects_collide,
    tokens_match,
)

VALID = [
    b"foo",
    b"foo.bar",
    b"foo.bar.baz",
    b"*",
    b">",
    b"*.*",
    b"foo.*",
    b"*.foo",
    b"foo.*.bar",
    b"foo.>",
    b"*.>",
    b"foo.*.>",
    b"foo*",  # literal: wildcard only as a whole token
    b"*foo",
    b"f>o",
    b">foo",
    b"foo>",
    b"foo.>bar",
    b"foo.ba*r.baz",
    b"**",
    b">>",
    b"$SYS.ACCOUNT.>",
    b"_INBOX.abc123.1",
    b"a-b_c/d:e",
    "ünïcode.subject".encode(),
    b"\x00",
]

INVALID = [
    b"",
    b".",
    b"..",
    b".foo",
    b"foo.",
    b"foo..bar",
    b"foo.bar.",
    b".foo.bar",
    b"foo.>.bar",
    b">.foo",
    b">.>",
    b">.*",
    b"foo bar",
    b"foo\tbar",
    b"foo\rbar",
    b"foo\nbar",
    b"foo\fbar",
    b" ",
    b"foo. .bar",
    b"foo.* ",
    b" >",
    b"foo.>.",
]


@pytest.mark.parametrize("subject", VALID)
def test_valid_subjects(subject: bytes) -> None:
    assert is_valid_subject(subject)


@pytest.mark.parametrize("subject", INVALID)
def test_invalid_subjects(subject: bytes) -> None:
    assert not is_valid_subject(subject)
    assert not is_valid_literal_subject(subject)


@pytest.mark.parametrize(
    ("subject", "literal"),
    [
        (b"foo", True),
        (b"foo.bar", True),
        (b"foo*", True),
        (b"f>o", True),
        (b">foo.*foo", True),
        (b"foo.**.bar", True),
        (b"*", False),
        (b">", False),
        (b"foo.*", False),
        (b"*.foo", False),
        (b"foo.*.bar", False),
        (b"foo.>", False),
    ],
)
def test_literal_and_wildcard(subject: bytes, literal: bool) -> None:
    assert is_valid_literal_subject(subject) is literal
    assert has_wildcard(subject) is (not literal)


@pytest.mark.parametrize("subject", INVALID)
def test_has_wildcard_does_not_validate(subject: bytes) -> None:
    # has_wildcard only looks for whole wildcard tokens.
    expected = any(t in (b"*", b">") for t in subject.split(b"."))
    assert has_wildcard(subject) is expected


def test_queue_names() -> None:
    assert is_valid_queue(b"workers")
    assert is_valid_queue(b"q.with.dots")
    assert is_valid_queue(b"*")
    assert not is_valid_queue(b"")
    assert not is_valid_queue(b"a b")
    assert not is_valid_queue(b"a\tb")
    assert not is_valid_queue(b"a\r\n")


MATCHES = [
    (b"foo", b"foo", True),
    (b"foo", b"bar", False),
    (b"foo", b"foo.bar", False),
    (b"foo.bar", b"foo", False),
    (b"*", b"foo", True),
    (b"*", b"foo.bar", False),
    (b">", b"foo", True),
    (b">", b"foo.bar.baz", True),
    (b"foo.>", b"foo", False),  # ">" needs at least one token
    (b"foo.>", b"foo.bar", True),
    (b"foo.>", b"foo.bar.baz", True),
    (b"foo.>", b"bar.baz", False),
    (b"foo.*", b"foo", False),
    (b"foo.*", b"foo.bar", True),
    (b"foo.*", b"foo.bar.baz", False),
    (b"*.bar", b"foo.bar", True),
    (b"*.bar", b"foo.baz", False),
    (b"foo.*.baz", b"foo.bar.baz", True),
    (b"foo.*.baz", b"foo.bar.bar", False),
    (b"*.*.>", b"a.b", False),
    (b"*.*.>", b"a.b.c", True),
    (b"*.*.>", b"a.b.c.d", True),
    (b"foo*", b"foo*", True),
    (b"foo*", b"foox", False),
    (b"f>o", b"f>o", True),
    (b"f>o", b"fxo", False),
    (b"foo.*", b"foo.*", True),  # subject tokens are taken literally
    (b"foo.>", b"foo.>", True),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), MATCHES)
def test_subject_matches(pattern: bytes, subject: bytes, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected
    assert tokens_match(pattern.split(b"."), subject.split(b".")) is expected


COLLIDES = [
    (b"foo", b"foo", True),
    (b"foo", b"bar", False),
    (b"foo", b"*", True),
    (b"foo", b">", True),
    (b"foo", b"foo.>", False),
    (b"foo.bar", b"foo.>", True),
    (b"foo.*", b"foo.>", True),
    (b"foo.*", b"*.bar", True),
    (b"foo.*", b"bar.*", False),
    (b"foo.*", b"foo.*.*", False),
    (b"foo.*.>", b"foo.>", True),
    (b"foo.*.>", b"foo.*", False),
    (b"*.>", b"foo", False),
    (b"*.>", b"foo.bar.baz", True),
    (b">", b"a.b.c", True),
    (b"a.*.c", b"a.b.*", True),
    (b"a.*.c", b"a.b.d", False),
    (b"a.b.>", b"a.c.>", False),
]


@pytest.mark.parametrize(("a", "b", "expected"), COLLIDES)
def test_subjects_collide(a: bytes, b: bytes, expected: bool) -> None:
    assert subjects_collide(a, b) is expected
    assert subjects_collide(b, a) is expected


# -- property tests against brute-force models ---------------------------------------------

TOKENS = [b"a", b"b", b"*", b">"]


def _pattern(tokens: list[bytes]) -> bytes:
    # Keep only a trailing ">", as anything after it would be invalid.
    if b">" in tokens:
        tokens = tokens[: tokens.index(b">") + 1]
    return b".".join(tokens)


patterns = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4).map(_pattern)
literals = st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=5).map(b".".join)


def _ref_match(p: list[bytes], s: list[bytes]) -> bool:
    """Recursive reference matcher, written independently of tokens_match."""
    if not p:
        return not s
    if p[0] == b">":
        return len(s) >= 1
    if not s:
        return False
    return (p[0] == b"*" or p[0] == s[0]) and _ref_match(p[1:], s[1:])


@given(patterns, literals)
def test_subject_matches_model(pattern: bytes, subject: bytes) -> None:
    assert is_valid_subject(pattern)
    assert subject_matches(pattern, subject) is _ref_match(pattern.split(b"."), subject.split(b"."))


# Every literal subject over {a, b, c} up to 5 tokens: enough witnesses for patterns of <= 4
# tokens over {a, b, *, >} ("c" instantiates wildcards, one extra token feeds ">").
_WITNESSES = [
    b".".join(t) for n in range(1, 6) for t in itertools.product([b"a", b"b", b"c"], repeat=n)
]


@settings(max_examples=300)
@given(patterns, patterns)
def test_subjects_collide_model(a: bytes, b: bytes) -> None:
    expected = any(subject_matches(a, w) and subject_matches(b, w) for w in _WITNESSES)
    assert subjects_collide(a, b) is expected


_ALPHABET = [b"a", b".", b"*", b">", b" ", b"\t", b"b"]


def _ref_valid(s: bytes) -> bool:
    if not s or any(c in s for c in b" \t\r\n\f"):
        return False
    toks = s.split(b".")
    if b"" in toks:
        return False
    return b">" not in toks[:-1]


@given(st.lists(st.sampled_from(_ALPHABET), max_size=8).map(b"".join))
def test_validation_model(s: bytes) -> None:
    assert is_valid_subject(s) is _ref_valid(s)
    literal = _ref_valid(s) and not any(t in (b"*", b">") for t in s.split(b"."))
    assert is_valid_literal_subject(s) is literal

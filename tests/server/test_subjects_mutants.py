"""Edges of the subject rules that the main subject tests leave open (found by ``make mutate``)."""

from __future__ import annotations

from scserver.subjects import tokens_match


def test_empty_pattern_matches_only_an_empty_token_list() -> None:
    # callers split both sides themselves; no tokens on either side is a (trivial) match
    assert tokens_match([], []) is True
    assert tokens_match([], [b"a"]) is False
    assert tokens_match([b"a"], []) is False
    assert tokens_match([b">"], []) is False

"""Per-user publish/subscribe permissions, checked through ``compile_permissions``.

The auth tests prove the same rules over the wire; these pin them in-process so a mutation of
``scserver.permissions`` (``make mutate``) is caught in milliseconds.  The rules are
nats-server's: an allow list, when present, must match; a deny list, when present, must not;
a subscription with wildcards is allowed only if an allow pattern covers all of it, and denied
if a deny pattern covers it.
"""

from __future__ import annotations

import pytest

from scserver.permissions import compile_permissions


@pytest.mark.parametrize("spec", [None, {}])
def test_no_permissions_means_none(spec: dict | None) -> None:
    assert compile_permissions(spec) is None


def test_only_subscribe_rules_leave_publishing_open() -> None:
    p = compile_permissions({"subscribe": "foo"})
    assert p is not None
    assert p.can_publish(b"anything.at.all")
    assert p.can_subscribe(b"foo")
    assert not p.can_subscribe(b"bar")


def test_only_publish_rules_leave_subscribing_open() -> None:
    p = compile_permissions({"publish": ["foo"]})
    assert p is not None
    assert p.can_subscribe(b"anything.>")
    assert p.can_publish(b"foo")
    assert not p.can_publish(b"bar")


@pytest.mark.parametrize(
    "spec",
    [
        {"publish": "foo.*"},
        {"publish": ["bar", "foo.*"]},
        {"publish": {"allow": ["foo.*"]}},
        {"publish": {"allow": "foo.*"}},
    ],
)
def test_publish_allow_forms(spec: dict) -> None:
    p = compile_permissions(spec)
    assert p is not None
    assert p.can_publish(b"foo.x")
    assert not p.can_publish(b"foo")
    assert not p.can_publish(b"foo.x.y")
    assert not p.can_publish(b"baz")


def test_publish_deny_only_blocks_what_it_matches() -> None:
    p = compile_permissions({"publish": {"deny": ["secret.>", "admin"]}})
    assert p is not None
    assert p.can_publish(b"public")
    assert p.can_publish(b"secret")
    assert not p.can_publish(b"secret.plans")
    assert not p.can_publish(b"admin")


def test_publish_deny_wins_over_allow() -> None:
    p = compile_permissions({"publish": {"allow": ["app.>"], "deny": ["app.admin.*"]}})
    assert p is not None
    assert p.can_publish(b"app.orders")
    assert not p.can_publish(b"app.admin.reset")
    assert not p.can_publish(b"other")


def test_empty_allow_list_allows_nothing() -> None:
    p = compile_permissions({"publish": [], "subscribe": {"allow": []}})
    assert p is not None
    assert not p.can_publish(b"foo")
    assert not p.can_subscribe(b"foo")


def test_non_string_patterns_are_taken_as_text() -> None:
    p = compile_permissions({"publish": [42], "subscribe": {"allow": [7]}})
    assert p is not None
    assert p.can_publish(b"42")
    assert p.can_subscribe(b"7")
    assert not p.can_publish(b"4")


def test_publish_answers_stay_right_when_asked_again_and_past_the_cache() -> None:
    p = compile_permissions({"publish": {"allow": ["ok.*"], "deny": ["ok.no"]}})
    assert p is not None
    for _ in range(2):
        assert p.can_publish(b"ok.yes")
        assert not p.can_publish(b"ok.no")
        assert not p.can_publish(b"nope")
    for i in range(3000):
        assert p.can_publish(b"ok.%d" % i)
        assert not p.can_publish(b"x.%d" % i)
    assert p.can_publish(b"ok.yes")
    assert not p.can_publish(b"ok.no")


def test_subscribe_allow_must_cover_the_whole_wildcard() -> None:
    p = compile_permissions({"subscribe": {"allow": ["foo.>", "bar.*"]}})
    assert p is not None
    assert p.can_subscribe(b"foo.a")
    assert p.can_subscribe(b"foo.*")
    assert p.can_subscribe(b"foo.>")
    assert p.can_subscribe(b"bar.*")
    assert p.can_subscribe(b"bar.a")
    assert not p.can_subscribe(b">")
    assert not p.can_subscribe(b"baz")


def test_subscribe_deny_blocks_subjects_it_covers_only() -> None:
    p = compile_permissions({"subscribe": {"deny": ["secret.>", "x.*.y"]}})
    assert p is not None
    assert not p.can_subscribe(b"secret.a")
    assert not p.can_subscribe(b"secret.*")
    assert not p.can_subscribe(b"secret.>")
    assert not p.can_subscribe(b"x.a.y")
    assert not p.can_subscribe(b"x.*.y")
    # wider than the deny pattern: allowed (nats-server filters the denied messages instead)
    assert p.can_subscribe(b">")
    assert p.can_subscribe(b"x.*.*")
    assert p.can_subscribe(b"public")
    assert p.can_subscribe(b"secret")


def test_subscribe_deny_wins_over_allow() -> None:
    p = compile_permissions({"subscribe": {"allow": [">"], "deny": ["private.*"]}})
    assert p is not None
    assert p.can_subscribe(b"public.x", b"workers")
    assert not p.can_subscribe(b"private.x", b"workers")
    assert not p.can_subscribe(b"private.x")

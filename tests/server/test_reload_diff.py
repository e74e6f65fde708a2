"""The typed option diff a reload applies (scserver.reload.diff), checked in-process."""

from __future__ import annotations

from typing import Any

from scserver.options import Options, from_dict
from scserver.reload import diff


def _opts(conf: dict[str, Any]) -> Options:
    return from_dict(conf)


def test_no_change_no_diff() -> None:
    conf = {"port": 4333, "trace": True, "cluster": {"port": 6333, "routes": ["nats://a:6222"]}}
    assert diff(_opts(conf), _opts(conf)) == []


def test_each_change_says_what_kind_it_is() -> None:
    old = _opts({"port": 4333, "trace": False, "max_payload": 1024})
    new = _opts(
        {
            "port": 4334,
            "trace": True,
            "max_payload": 2048,
            "authorization": {"token": "s3cret"},
        }
    )
    changes = {c.name: c for c in diff(old, new)}
    assert set(changes) == {"port", "trace", "max_payload", "token", "auth_block_defined"}
    assert changes["port"].immutable and not changes["trace"].immutable
    assert changes["trace"].is_logging and changes["trace"].is_trace_level
    assert (changes["trace"].old, changes["trace"].new) == (False, True)
    assert changes["max_payload"].is_limit and not changes["max_payload"].is_auth
    assert changes["token"].is_auth and not changes["token"].is_tls


def test_link_blocks_change_as_a_whole() -> None:
    old = _opts({"cluster": {"port": 6333, "routes": ["nats://a:6222"]}})
    new = _opts({"cluster": {"port": 6333, "routes": ["nats://a:6222", "nats://b:6222"]}})
    assert [c.name for c in diff(old, new)] == ["cluster"]


def test_bookkeeping_fields_are_not_options() -> None:
    old = _opts({"port": 4333})
    new = _opts({"port": 4333, "jetstream": {}})  # accepted with a warning only
    assert new.warnings and not old.warnings
    assert diff(old, new) == []

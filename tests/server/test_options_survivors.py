"""Options behaviour pinned after mutation testing (issue 16): the last surviving mutants of
``scserver.options`` that a config can tell apart (the rest are recorded as equivalent, with
the reason, in docs/mutation-equivalent.json)."""

from __future__ import annotations

import pytest
from tests.server.options_helpers import errors, opts
from tests.tls.link_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("survivors"))


def test_max_pending_of_one_is_below_the_default_max_payload() -> None:
    """Any positive max_pending is compared with max_payload, 1 included."""
    assert errors("port: 1\nmax_pending: 1") == [
        "t.conf:2:1: max_payload (1048576) cannot be higher than max_pending (1)"
    ]
    assert opts("max_pending: 1048576").max_pending == 1048576


def test_listen_takes_the_highest_port() -> None:
    """65535 is a port; 65536 is not."""
    assert opts("listen: '127.0.0.1:65535'").port == 65535
    assert errors("listen: '127.0.0.1:65536'") == [
        "t.conf:1:1: listen: port 65536 is out of range (0-65535, or -1 for random)"
    ]


def test_a_malformed_import_does_not_hide_the_next_ones() -> None:
    """Every import of an account is checked, also after one that is not a map."""
    got = errors("accounts { A: { imports: [ 5, {stream: {account: NOPE, subject: x}} ] } }")
    assert "t.conf:1:17: 'NOPE' account not defined for stream import (in account 'A')" in got
    assert "t.conf:1:17: account 'A': Import Items should be a map with type entry, got int" in got


def test_cluster_advertise_of_the_wrong_type_names_the_field() -> None:
    assert errors("cluster { advertise: 5 }") == [
        "t.conf:1:11: advertise: expected a string, got integer 5"
    ]
    assert errors("cluster { Advertise: 5 }") == [
        "t.conf:1:11: Advertise: expected a string, got integer 5"
    ]


def test_the_same_single_user_in_two_authorization_blocks_is_a_duplicate() -> None:
    """Keys differ in case only, so the config has two authorization blocks; the second one's
    user is the first one's: reported at the second block, naming the user."""
    text = "authorization {user: a, password: b}\nAUTHORIZATION {user: a, password: c}"
    assert errors(text) == ['t.conf:2:1: duplicate user "a" detected']
    o = opts("authorization {user: a, password: b}\nAUTHORIZATION {password: c}")
    assert [(u.username, u.password) for u in o.users] == [("a", "b"), ("", "c")]


def test_users_get_their_own_copy_of_the_default_permissions() -> None:
    """Each user of a users array gets the default permissions as its own data: changing one
    user's lists changes no other user's."""
    o = opts(
        "authorization { default_permissions: {publish: {allow: [x]}},"
        " users: [{user: a, password: p}, {user: b, password: q}] }"
    )
    a, b = o.users
    assert a.permissions == b.permissions == {"publish": {"allow": ["x"]}}
    a.permissions["publish"]["allow"].append("y")  # type: ignore[index]
    assert b.permissions == {"publish": {"allow": ["x"]}}


def test_only_the_authorization_key_can_set_the_auth_timeout(pki: Pki) -> None:
    """With a tls {} block the auth timeout is its timeout + 1 s unless ``authorization`` sets
    one; a variable holding a map with a ``timeout`` (here the tls block itself) is not an
    authorization block, whatever its name."""
    block = pki.tls_block(extra="timeout: 4").replace("timeout: 2, ", "")[len("tls ") :]
    for name in ("XXXX", "auth", "T"):
        o = opts(f"{name} = {block}\ntls: ${name}")
        assert o.tls is not None and o.tls.timeout == 4.0
        assert o.auth_timeout == 5.0, name

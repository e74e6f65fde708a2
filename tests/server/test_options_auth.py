"""Users, ``authorization {}`` and ``accounts {}`` as the options loader reads them: which users
result (name, password, account, permissions, nkey), how the forms conflict, and each fault's
exact ``file:line:col`` message (nats-server's wording where it has one). Pins the behaviour of
the users/authorization/accounts walk in ``scserver.options.build`` (see docs/mutation.md)."""

from __future__ import annotations

import pytest
from tests.server.options_helpers import errors, opts

from scserver.options import Account, User

PUB = "UDQN5CNR7GSX3PVN2H2ICTK3IY2DPJLYU53MJBENC5T5EM4CXDFGDXXY"  # a public key, not a secret
PUB2 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"  # another public key


def auth(*lines: str) -> str:
    """``authorization {`` on line 1, ``lines`` from line 2 at column 3."""
    return "authorization {\n" + "\n".join(f"  {x}" for x in lines) + "\n}"


# -- authorization: single user, token, timeout ----------------------------------------------


def test_single_user_forms() -> None:
    o = opts(auth("Username: a", "Password: b"))
    assert o.users == [User("a", "b", "$G")] and o.token is None and o.auth_block_defined
    assert opts(auth("user: a", "pass: b")).users == [User("a", "b", "$G")]
    assert opts(auth("user: a")).users == [User("a", None, "$G")]
    # A password alone still defines the single user (nameless), as nats-server.
    assert opts(auth("password: p")).users == [User("", "p", "$G")]
    assert opts(auth("user: a", "permissions: {publish: x}")).users == [
        User("a", None, "$G", {"publish": "x"})
    ]
    assert opts("port: 1").auth_block_defined is False
    assert opts(auth()).auth_block_defined is True


def test_the_single_user_gets_its_own_copy_of_the_default_permissions() -> None:
    o = opts(auth("user: a", "default_permissions: {publish: [x]}"))
    (u,) = o.users
    assert u.permissions == {"publish": ["x"]}
    assert opts(auth("user: a")).users[0].permissions is None


def test_token_forms() -> None:
    o = opts(auth("Token: t0k"))
    assert (o.token, o.users) == ("t0k", [])
    assert errors(auth("token: 1")) == ["t.conf:2:3: token: expected a string, got integer 1"]


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), ("0.5", 0.5), ('"1m"', 60.0), ('"250ms"', 0.25)]
)
def test_authorization_timeout_forms(value: str, seconds: float) -> None:
    o = opts(auth(f"Timeout: {value}"))
    assert o.auth_timeout == seconds and o.warnings == []


def test_authorization_timeout_faults_and_warning() -> None:
    assert errors(auth("timeout: true")) == [
        "t.conf:2:3: error parsing authorization config, 'timeout' wrong type"
    ]
    assert errors(auth("timeout: [1]")) == [
        "t.conf:2:3: error parsing authorization config, 'timeout' wrong type"
    ]
    assert errors(auth('timeout: "x"')) == [
        "t.conf:2:3: error parsing authorization config, 'timeout' unknown unit 'x' in duration 'x'"
    ]
    o = opts(auth('timeout: "2m"'))
    assert o.auth_timeout == 120.0
    assert o.warnings == ["t.conf:2:3: timeout of 2m (120 seconds) is high, keep it under 60"]
    o = opts(auth("timeout: 60.5"))
    assert o.warnings == ["t.conf:2:3: timeout of 60.5 (60.5 seconds) is high, keep it under 60"]


@pytest.mark.parametrize(
    ("lines", "msg"),
    [
        (("user: a", "token: t"), "cannot have a user/pass and a token"),
        (("password: p", "token: t"), "cannot have a user/pass and a token"),
        (("user: a", "users: [{user: b}]"), "cannot have a single user/pass and a users array"),
        (("token: t", "users: []"), "cannot have a token and a users array"),
    ],
)
def test_authorization_form_conflicts(lines: tuple[str, ...], msg: str) -> None:
    assert errors(auth(*lines)) == [f"t.conf:1:1: {msg}"]


def test_conflicts_with_account_users() -> None:
    acc = "accounts { A { users: [{user: x}] } }\n"
    assert errors(acc + "authorization { token: t }") == [
        "t.conf:2:1: cannot have a token and accounts with users"
    ]
    assert errors(acc + "authorization { user: a, password: p }") == [
        "t.conf:2:1: cannot have a single user/pass and a users array"
    ]
    # A password alone is no single user name: it does not conflict with account users.
    o = opts(acc + "authorization { password: p }")
    assert [u.username for u in o.users] == ["x", ""]
    assert errors(acc + "authorization { user: x }") == [
        "t.conf:2:1: cannot have a single user/pass and a users array"
    ]
    # Accounts without users do not conflict with a token.
    assert opts("accounts { A {} }\nauthorization { token: t }").token == "t"


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("user: 1", "user: expected a string, got integer 1"),
        ("username: [a]", "username: expected a string, got array"),
        ("pass: 1", "pass: expected a string, got integer 1"),
        ("password: true", "password: expected a string, got boolean True"),
        ("permissions: 1", "permissions: expected a map, got integer 1"),
        ("default_permission: x", "default_permission: expected a map, got string 'x'"),
        ("users: x", "users: expected an array, got string 'x'"),
        ("bogus: 1", 'unknown field "bogus" in authorization'),
        (
            "auth_callout: {}",
            'authorization option "auth_callout" is not supported by this server and is '
            "refused: auth callout (delegated authentication) is not implemented",
        ),
        (
            "Proxy_Required: true",
            'authorization option "Proxy_Required" is not supported by this server and is '
            "refused: trusted proxies are not implemented",
        ),
    ],
)
def test_authorization_faults(line: str, msg: str) -> None:
    assert errors(auth(line)) == [f"t.conf:2:3: {msg}"]


def test_authorization_must_be_a_map() -> None:
    assert errors("authorization: [1]") == ["t.conf:1:1: authorization: expected a map, got array"]


# -- users arrays ----------------------------------------------------------------------------


def test_users_array_entries() -> None:
    o = opts(
        auth(
            "default_permissions: {subscribe: y}",
            "users: [",
            "  {User: a, Password: p}",
            "  {username: b, pass: q, permission: {publish: z}}",
            "  {user: c, Permissions: {publish: w}}",
            "  {user: d, authorization: {publish: v}}",
            "  {user: e, allowed_connection_types: [STANDARD], proxy_required: false}",
            "]",
        )
    )
    assert o.users == [
        User("a", "p", "$G", {"subscribe": "y"}),
        User("b", "q", "$G", {"publish": "z"}),
        User("c", None, "$G", {"publish": "w"}),
        User("d", None, "$G", {"publish": "v"}),
        User("e", None, "$G", {"subscribe": "y"}),
    ]
    # Each user has its own copy of the defaults.
    assert o.users[0].permissions is not o.users[4].permissions
    assert o.find_user("c") is o.users[2] and o.find_user("zz") is None


def test_nkey_users() -> None:
    o = opts(auth(f"users: [{{nkey: {PUB}}}, {{NKey: {PUB2}, permissions: {{publish: x}}}}]"))
    assert o.users == [
        User("", None, "$G", None, PUB),
        User("", None, "$G", {"publish": "x"}, PUB2),
    ]
    assert o.find_user(PUB) is o.users[0] and o.find_user(PUB2) is o.users[1]


def test_find_user_prefers_the_first_match() -> None:
    o = opts(auth("users: [{user: a, password: one}]"))
    assert o.find_user("a") == User("a", "one", "$G")


@pytest.mark.parametrize(
    ("entry", "msg", "col"),
    [
        ("x", "expected user entry to be a map, got string", 3),
        ("[1]", "expected user entry to be a map, got array", 3),
        ("{password: p}", "user entry requires a user", 3),
        ("{user: 1}", "user: expected a string, got integer 1", 4),
        ("{user: a, password: 1}", "password: expected a string, got integer 1", 13),
        ("{user: a, permissions: 1}", "permissions: expected a map, got integer 1", 13),
        ("{user: a, bogus: 1}", 'unknown field "bogus" in user entry', 13),
        ("{nkey: 1}", "nkey: expected a string, got integer 1", 4),
        ("{nkey: x}", "not a valid public nkey for a user", 3),
        (f"{{nkey: {PUB}, user: a}}", "nkey users do not take usernames or passwords", 3),
        (f"{{nkey: {PUB}, password: a}}", "nkey users do not take usernames or passwords", 3),
        (
            "{user: a, proxy_required: true}",
            'user option "proxy_required" is not supported by this server and is refused: '
            "trusted proxies are not implemented",
            13,
        ),
        (
            "{user: a, connection_types: [MQTT]}",
            'user option "connection_types" is not supported by this server and is refused: '
            "connection types ['MQTT'] are not served here (only ['STANDARD'])",
            13,
        ),
        (
            "{user: a, clients: 1}",
            'user option "clients" is not supported by this server and is refused: '
            "expected a list of connection type names",
            13,
        ),
    ],
)
def test_user_entry_faults(entry: str, msg: str, col: int) -> None:
    text = auth("users: [", f"  {entry}", "]")
    got = errors(text)
    assert got[0] == f"t.conf:3:{col + 2}: {msg}"


def test_a_user_entry_with_a_bad_nkey_type_is_not_kept() -> None:
    assert errors(auth("users: [{nkey: 1}]")) == [
        "t.conf:2:12: nkey: expected a string, got integer 1",
        "t.conf:2:11: not a valid public nkey for a user",
    ]


def test_duplicate_users_anywhere_are_errors() -> None:
    assert errors(auth("users: [", "  {user: a}", "  {user: a}", "]")) == [
        't.conf:4:5: duplicate user "a" detected'
    ]
    assert errors(auth("users: [", f"  {{nkey: {PUB}}}", f"  {{nkey: {PUB}}}", "]")) == [
        f't.conf:4:5: duplicate nkey "{PUB}" detected'
    ]
    assert errors("accounts { A { users: [{user: a}] }, B { users: [{user: a}] } }") == [
        't.conf:1:50: duplicate user "a" detected'
    ]
    assert errors(
        f"accounts {{ A {{ users: [{{nkey: {PUB}}}] }} }}\n" + auth(f"users: [{{user: {PUB}}}]")
    ) == [f't.conf:3:11: duplicate user "{PUB}" detected']


# -- accounts --------------------------------------------------------------------------------


def test_accounts_as_a_list() -> None:
    assert opts("accounts: [X, Y]").accounts == {"X": Account("X"), "Y": Account("Y")}
    assert errors('accounts: [\n  X\n  1\n  "$G"\n  X\n]') == [
        "t.conf:3:3: account name must be a string, got integer",
        't.conf:4:3: "$G" is a reserved account',
        "t.conf:5:3: duplicate account entry: X",
    ]


def test_accounts_as_a_map() -> None:
    o = opts(
        "accounts {\n"
        "  A {\n"
        "    Users: [{user: a, password: p}]\n"
        '    Exports: [{stream: "s.>"}]\n'
        "    Mappings: { m: n }\n"
        "  }\n"
        '  B { users: [{user: b}], imports: [{stream: {account: A, subject: "s.>"}}] }\n'
        "  C { maps: { o: p } }\n"
        "}"
    )
    a, b, c = o.accounts["A"], o.accounts["B"], o.accounts["C"]
    assert a.users == [User("a", "p", "A")] and a.exports == [{"stream": "s.>"}]
    assert a.mappings == {"m": "n"} and type(a.mappings) is dict
    assert b.imports == [{"stream": {"account": "A", "subject": "s.>"}}]
    assert type(b.imports[0]) is dict
    assert c.mappings == {"o": "p"} and c.users == []
    assert o.users == [User("a", "p", "A"), User("b", None, "B")]
    assert o.warnings == []


def test_account_faults() -> None:
    assert errors(
        "accounts {\n"
        "  A: 1\n"
        "  $G: {}\n"
        "  B { exports: 1, bogus: 2 }\n"
        "  C { default_permissions: {} }\n"
        "}"
    ) == [
        "t.conf:2:3: expected map entries for accounts (account 'A')",
        't.conf:3:3: "$G" is a reserved account',
        "t.conf:4:7: exports: expected an array, got integer 1",
        "t.conf:4:19: unknown field \"bogus\" in account 'B'",
        't.conf:5:7: account option "default_permissions" is not supported by this server and '
        "is refused: account default permissions are not implemented; the account's users "
        "would have no permission limits",
    ]
    assert errors("accounts: 1") == [
        "t.conf:1:1: accounts: expected a map or an array, got integer"
    ]
    assert errors("accounts { A { imports: x } }") == [
        "t.conf:1:16: imports: expected an array, got string 'x'"
    ]


@pytest.mark.parametrize("key", ["nkey", "jetstream", "Limits", "msg_trace", "trace_dest"])
def test_account_options_we_ignore_warn_and_are_kept(key: str) -> None:
    o = opts(f"accounts {{ A {{ {key}: {{x: 1}} }} }}")
    assert o.accounts["A"].extra == {key: {"x": 1}}
    assert o.warnings == [f't.conf:1:16: account option "{key}" is not supported; ignored']


def test_variables_inside_accounts_are_not_accounts() -> None:
    o = opts("accounts {\n  pw: secret\n  A { users: [{user: a, password: $pw}] }\n}")
    assert list(o.accounts) == ["A"] and o.users == [User("a", "secret", "A")]


def test_imports_must_name_defined_accounts() -> None:
    assert errors(
        "accounts {\n"
        "  A {}\n"
        "  B {\n"
        '    imports: [{stream: {account: Z, subject: "s"}}, {service: {account: Y, subject: "t"}}]\n'
        "  }\n"
        "}"
    ) == [
        "t.conf:4:5: 'Z' account not defined for stream import (in account 'B')",
        "t.conf:4:5: 'Y' account not defined for service import (in account 'B')",
    ]


def test_a_faulty_user_entry_does_not_hide_the_entries_after_it() -> None:
    assert errors(
        auth(
            "users: [",
            "  x",
            "  {password: p}",
            "  {user: a}",
            "  {user: a}",
            f"  {{nkey: {PUB}}}",
            f"  {{nkey: {PUB}}}",
            "  {nkey: bad}",
            "  y",
            "]",
        )
    ) == [
        "t.conf:3:5: expected user entry to be a map, got string",
        "t.conf:4:5: user entry requires a user",
        't.conf:6:5: duplicate user "a" detected',
        f't.conf:8:5: duplicate nkey "{PUB}" detected',
        "t.conf:9:5: not a valid public nkey for a user",
        "t.conf:10:5: expected user entry to be a map, got string",
    ]


def test_users_after_an_nkey_user_are_kept() -> None:
    o = opts(auth(f"users: [{{nkey: {PUB}}}, {{user: a}}, {{nkey: {PUB2}}}, {{user: b}}]"))
    assert [(u.username, u.nkey) for u in o.users] == [
        ("", PUB),
        ("a", None),
        ("", PUB2),
        ("b", None),
    ]

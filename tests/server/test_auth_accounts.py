"""Authentication (users, token, timeout), permissions and account isolation.

nats-py checks run against scserver and nats-server; raw-socket checks compare the exact error
texts and close behaviour of both.
"""

from __future__ import annotations

import nats
import pytest
from tests.server.conftest import EOF, IMPLS, RawClient

USERS_CONF = """
authorization {
  timeout: 0.5
  users: [
    {user: alice, password: secret}
    {user: bob, password: "b0b", permissions: {
        publish: {deny: ["secret.>"]}
        subscribe: {allow: ["public.>", "_INBOX.>"]}
    }}
  ]
}
"""

TOKEN_CONF = """
authorization { token: "s3cr3t-token" }
"""

ACCOUNTS_CONF = """
accounts {
  A: { users: [{user: a1, password: pa}, {user: a2, password: pa}] }
  B: { users: [{user: b1, password: pb}] }
}
"""

NO_AUTH_USER_CONF = """
accounts {
  A: { users: [{user: a1, password: pa}] }
  B: { users: [{user: b1, password: pb}] }
}
no_auth_user: b1
"""

AUTH_VIOLATION = "-ERR 'Authorization Violation'"


@pytest.fixture(scope="module")
def started(module_servers):
    """{(impl, conf name): ServerProcess} for every implementation and config."""
    confs = {
        "users": USERS_CONF,
        "token": TOKEN_CONF,
        "accounts": ACCOUNTS_CONF,
        "no_auth_user": NO_AUTH_USER_CONF,
    }
    return {
        (impl, name): module_servers.start(impl, conf)
        for impl in IMPLS
        for name, conf in confs.items()
    }


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    return request.param


def _url(started, impl: str, conf: str, creds: str = "") -> str:
    sp = started[(impl, conf)]
    return f"nats://{creds}@127.0.0.1:{sp.port}" if creds else sp.url


async def _connect(url: str, **kw):
    return await nats.connect(url, allow_reconnect=False, connect_timeout=3, **kw)


def _raw_both(started, conf: str, scenario) -> list[str]:
    res = {impl: scenario(RawClient(started[(impl, conf)].port)) for impl in IMPLS}
    assert res["scserver"] == res["nats-server"], res
    return res["scserver"]


# --- user / password ------------------------------------------------------------------------


async def test_user_password_success(started, impl) -> None:
    nc = await _connect(_url(started, impl, "users", "alice:secret"))
    try:
        sub = await nc.subscribe("a.b")
        await nc.publish("a.b", b"hi")
        assert (await sub.next_msg(timeout=3)).data == b"hi"
    finally:
        await nc.close()


@pytest.mark.parametrize("creds", ["alice:wrong", "nobody:secret", ""])
async def test_user_password_failure_nats_py(started, impl, creds) -> None:
    with pytest.raises(Exception, match="(?i)authorization violation"):
        await _connect(_url(started, impl, "users", creds))


def test_auth_required_in_info(started) -> None:
    infos = {impl: RawClient(started[(impl, "users")].port).info for impl in IMPLS}
    assert all(i.get("auth_required") is True for i in infos.values()), infos


@pytest.mark.parametrize(
    "data",
    [
        b'CONNECT {"verbose":false,"user":"alice","pass":"nope"}\r\nPING\r\n',
        b'CONNECT {"verbose":false}\r\nPING\r\n',
        b"PING\r\n",
        b"SUB foo 1\r\n",
        b"PUB foo 1\r\nx\r\n",
        b'CONNECT {"verbose":false,"user":"alice","pass":"secret","account":"X"}\r\nPING\r\n',
    ],
    ids=["bad-pass", "no-creds", "ping-first", "sub-first", "pub-first", "account-field"],
)
def test_auth_violation_raw(started, data: bytes) -> None:
    got = _raw_both(started, "users", lambda c: (c.send(data), c.lines(timeout=4))[1])
    assert got == [AUTH_VIOLATION, EOF]


def test_auth_timeout(started) -> None:
    got = _raw_both(started, "users", lambda c: c.lines(until=None, timeout=4))
    assert got == ["-ERR 'Authentication Timeout'", EOF]


def test_permissions(started) -> None:
    def scenario(c: RawClient) -> list[str]:
        c.connect(user="bob", **{"pass": "b0b"}, verbose=True)
        return c.exchange(
            "SUB public.x 1\r\nSUB private.x 2\r\nPUB secret.x 1\r\nz\r\n"
            "PUB public.x 1\r\ny\r\nPING\r\n"
        )

    assert _raw_both(started, "users", scenario) == [
        "+OK",
        "-ERR 'Permissions Violation for Subscription to \"private.x\"'",
        "-ERR 'Permissions Violation for Publish to \"secret.x\"'",
        "+OK",
        "MSG public.x 1 1",
        "b'y'",
        "PONG",
    ]


async def test_permission_error_keeps_nats_py_connected(started, impl) -> None:
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    nc = await _connect(_url(started, impl, "users", "bob:b0b"), error_cb=on_error)
    try:
        await nc.publish("secret.y", b"no")
        await nc.flush()
        sub = await nc.subscribe("public.ok")
        await nc.publish("public.ok", b"yes")
        assert (await sub.next_msg(timeout=3)).data == b"yes"
        assert nc.is_connected
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await nc.close()


# --- token ----------------------------------------------------------------------------------


async def test_token(started, impl) -> None:
    sp = started[(impl, "token")]
    nc = await _connect(sp.url, token="s3cr3t-token")
    assert nc.is_connected
    await nc.close()
    with pytest.raises(Exception, match="(?i)authorization violation"):
        await _connect(sp.url, token="wrong")


def test_token_raw(started) -> None:
    def scenario(c: RawClient) -> list[str]:
        ok = c.connect(auth_token="s3cr3t-token")
        bad = RawClient(c.sock.getpeername()[1])
        bad.send(b'CONNECT {"verbose":false,"auth_token":"x"}\r\nPING\r\n')
        return ok + bad.lines(timeout=4)

    assert _raw_both(started, "token", scenario) == [AUTH_VIOLATION, EOF]


# --- accounts -------------------------------------------------------------------------------


async def test_account_isolation(started, impl) -> None:
    a1 = await _connect(_url(started, impl, "accounts", "a1:pa"))
    a2 = await _connect(_url(started, impl, "accounts", "a2:pa"))
    b1 = await _connect(_url(started, impl, "accounts", "b1:pb"))
    try:
        in_a = await a2.subscribe("shared.subject")
        in_b = await b1.subscribe("shared.subject")
        in_b_all = await b1.subscribe(">")
        await a2.flush()
        await b1.flush()
        await a1.publish("shared.subject", b"for A only")
        await a1.flush()
        assert (await in_a.next_msg(timeout=3)).data == b"for A only"
        # And the other way round. B's message, published after A's was processed, is also the
        # sentinel: had A's leaked into B, it would be B's subscriptions' next message instead.
        await b1.publish("shared.subject", b"for B only")
        await b1.flush()
        for sub in (in_b, in_b_all):
            assert (await sub.next_msg(timeout=3)).data == b"for B only"
        # A's own sentinel after B's message: it must be in_a's next one.
        await a1.publish("shared.subject", b"A sentinel")
        await a1.flush()
        assert (await in_a.next_msg(timeout=3)).data == b"A sentinel"
    finally:
        for nc in (a1, a2, b1):
            await nc.close()


async def test_request_reply_does_not_cross_accounts(started, impl) -> None:
    a1 = await _connect(_url(started, impl, "accounts", "a1:pa"))
    b1 = await _connect(_url(started, impl, "accounts", "b1:pb"))
    try:

        async def responder(msg):
            await msg.respond(b"from B")

        await b1.subscribe("svc", cb=responder)
        await b1.flush()
        with pytest.raises(nats.errors.NoRespondersError):
            await a1.request("svc", b"?", timeout=2)
    finally:
        await a1.close()
        await b1.close()


def test_no_auth_user(started) -> None:
    """A client without credentials becomes b1 (account B); a1 still needs its password."""

    def scenario(anon: RawClient) -> list[str]:
        port = anon.sock.getpeername()[1]
        anon.connect()
        b = RawClient(port)
        b.connect(user="b1", **{"pass": "pb"})
        a = RawClient(port)
        a.connect(user="a1", **{"pass": "pa"})
        b.exchange("SUB n 1\r\nPING\r\n")
        a.exchange("SUB n 1\r\nPING\r\n")
        anon.exchange("PUB n 4\r\nanon\r\nPING\r\n")
        bad = RawClient(port)
        bad.send(b'CONNECT {"verbose":false,"user":"a1","pass":"x"}\r\nPING\r\n')
        return (
            [str(anon.info.get("auth_required"))]
            + b.exchange("PING\r\n")
            + a.exchange("PING\r\n")
            + bad.lines(timeout=4)
        )

    assert _raw_both(started, "no_auth_user", scenario) == [
        "None",  # INFO has no auth_required when no_auth_user is set
        "MSG n 1 4",
        "b'anon'",
        "PONG",
        "PONG",
        AUTH_VIOLATION,
        EOF,
    ]

"""NKey users and bcrypt passwords, checked against scserver and nats-server alike.

NKey login (nats-server auth.go/nkey.go): with nkey users configured, INFO carries a 15-char
``nonce``; the client sends its public key as ``nkey`` and the Ed25519 signature of the nonce as
``sig``. nats-py logs in with a seed file (``nkeys_seed``), the Go CLI with ``--nkey``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
from pathlib import Path

import bcrypt
import nats
import nkeys
import pytest
from tests.server.conftest import EOF, IMPLS, RawClient, Servers
from tests.tools import natscli_binary, require_binary

AUTH_ERR = "-ERR 'Authorization Violation'"


def new_user_key() -> tuple[bytes, str]:
    """A fresh user seed and its public key (generated: no keys are committed)."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed, nkeys.from_seed(seed).public_key.decode()


SEED_A, PUB_A = new_user_key()
SEED_G, PUB_G = new_user_key()
SEED_X, PUB_X = new_user_key()  # never configured

NKEY_CONF = f"""
authorization {{ users: [ {{nkey: {PUB_G}}}, {{user: plain, password: p}} ] }}
accounts {{ A: {{ users: [ {{nkey: {PUB_A}, permissions: {{publish: "a.>", subscribe: "a.>"}}}} ] }} }}
"""


def seed_file(tmp_path: Path, seed: bytes, name: str) -> str:
    path = tmp_path / f"{name}.nk"
    path.write_bytes(seed + b"\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture(params=IMPLS)
def nkey_server(request: pytest.FixtureRequest, servers: Servers):
    return servers.start(request.param, NKEY_CONF)


def sign(seed: bytes, nonce: str, urlsafe: bool = True) -> str:
    sig = nkeys.from_seed(bytearray(seed)).sign(nonce.encode())
    if urlsafe:
        return base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    return base64.b64encode(sig).decode()


def test_info_nonce_only_with_nkey_users(servers: Servers) -> None:
    for impl in IMPLS:
        with_nkeys = servers.start(impl, NKEY_CONF)
        with RawClient(with_nkeys.port) as c, RawClient(with_nkeys.port) as d:
            assert len(c.info["nonce"]) == 15, c.info
            assert c.info["nonce"] != d.info["nonce"]
            assert c.info.get("auth_required") is True
        plain = servers.start(impl, "authorization { users: [{user: u, password: p}] }\n")
        with RawClient(plain.port) as c:
            assert "nonce" not in c.info, (impl, c.info)


@pytest.mark.parametrize("urlsafe", [True, False], ids=["base64url", "std-base64"])
def test_raw_nkey_login(nkey_server, urlsafe: bool) -> None:
    with RawClient(nkey_server.port) as c:
        sig = sign(SEED_G, c.info["nonce"], urlsafe)
        c.send(f"CONNECT {json.dumps({'verbose': False, 'nkey': PUB_G, 'sig': sig})}\r\nPING\r\n")
        assert c.lines() == ["PONG"]


BAD_LOGINS = {
    "no-sig": lambda nonce: {"nkey": PUB_G},
    "sig-of-other-nonce": lambda nonce: {"nkey": PUB_G, "sig": sign(SEED_G, nonce + "x")},
    "sig-by-other-key": lambda nonce: {"nkey": PUB_G, "sig": sign(SEED_X, nonce)},
    "unknown-nkey": lambda nonce: {"nkey": PUB_X, "sig": sign(SEED_X, nonce)},
    "garbage-sig": lambda nonce: {"nkey": PUB_G, "sig": "!!not base64!!"},
    "not-a-key": lambda nonce: {"nkey": "UABC", "sig": sign(SEED_G, nonce)},
    # An nkey that is configured wins over a user name: no fallback to the password.
    "nkey-plus-good-password": lambda nonce: {"nkey": PUB_X, "user": "plain", "pass": "p"},
    "anonymous": lambda nonce: {},
}


@pytest.mark.parametrize("case", list(BAD_LOGINS))
def test_raw_nkey_refused(nkey_server, case: str) -> None:
    with RawClient(nkey_server.port) as c:
        fields = {"verbose": False, **BAD_LOGINS[case](c.info["nonce"])}
        c.send(f"CONNECT {json.dumps(fields)}\r\nPING\r\n")
        assert c.lines() == [AUTH_ERR, EOF]


def test_password_user_alongside_nkeys(nkey_server) -> None:
    with RawClient(nkey_server.port) as c:
        c.send('CONNECT {"verbose":false,"user":"plain","pass":"p"}\r\nPING\r\n')
        assert c.lines() == ["PONG"]


async def test_nats_py_seed_file_and_accounts(nkey_server, tmp_path: Path) -> None:
    """nats-py signs with a .nk file; the nkey's account and permissions apply."""
    a = await nats.connect(
        nkey_server.url, nkeys_seed=seed_file(tmp_path, SEED_A, "a"), allow_reconnect=False
    )
    g = await nats.connect(
        nkey_server.url, nkeys_seed=seed_file(tmp_path, SEED_G, "g"), allow_reconnect=False
    )
    try:
        sub_a = await a.subscribe("a.>")
        sub_g = await g.subscribe("a.x")
        await a.flush()
        await g.flush()
        await a.publish("a.x", b"in A")
        await g.publish("a.x", b"in $G")
        assert (await sub_a.next_msg(timeout=3)).data == b"in A"
        assert (await sub_g.next_msg(timeout=3)).data == b"in $G"
        with pytest.raises(nats.errors.TimeoutError):
            await sub_a.next_msg(timeout=0.3)  # $G's message did not cross into A
    finally:
        await a.close()
        await g.close()


async def test_nats_py_unknown_seed_refused(nkey_server, tmp_path: Path) -> None:
    with pytest.raises(Exception) as exc:  # noqa: PT011 - nats-py raises its own types
        await nats.connect(
            nkey_server.url,
            nkeys_seed=seed_file(tmp_path, SEED_X, "x"),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=3,
        )
    assert "authorization" in repr(exc.value).lower() or "Authorization" in str(exc.value)


@pytest.mark.natscli
def test_nats_cli_nkey(nkey_server, tmp_path: Path) -> None:
    cli = require_binary(natscli_binary(), "nats CLI not found (run hack/install-natscli.sh)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env["HOME"] = str(tmp_path)  # no user contexts

    def run(seed: bytes, name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(cli),
                "--server",
                nkey_server.url,
                "--nkey",
                seed_file(tmp_path, seed, name),
                "--timeout",
                "3s",
                "pub",
                "a.cli",
                "hello",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )

    ok = run(SEED_A, "cli-a")
    assert ok.returncode == 0, ok.stderr
    bad = run(SEED_X, "cli-x")
    assert bad.returncode != 0
    assert "authorization" in (bad.stderr + bad.stdout).lower()


# --- bcrypt ------------------------------------------------------------------------------------

BCRYPT_CONF = "authorization {{ users: [ {{user: hashed, password: '{h}'}} ] }}\n"


@pytest.mark.parametrize("impl", IMPLS)
async def test_bcrypt_password(servers: Servers, impl: str) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(6)).decode().replace("$2b$", "$2a$", 1)
    sp = servers.start(impl, BCRYPT_CONF.format(h=hashed))
    nc = await nats.connect(f"nats://hashed:s3cret@127.0.0.1:{sp.port}", allow_reconnect=False)
    await nc.flush()
    await nc.close()
    with RawClient(sp.port) as c:
        c.send('CONNECT {"verbose":false,"user":"hashed","pass":"wrong"}\r\nPING\r\n')
        assert c.lines() == [AUTH_ERR, EOF]
    with RawClient(sp.port) as c:
        # The hash itself is not a password.
        c.send(json_connect(user="hashed", **{"pass": hashed}))
        assert c.lines() == [AUTH_ERR, EOF]


def json_connect(**fields: object) -> str:
    return f"CONNECT {json.dumps({'verbose': False, **fields})}\r\nPING\r\n"


# --- config checks -----------------------------------------------------------------------------

BAD_CONFS = {
    "not-a-user-key": ("authorization { users: [ {nkey: UABC} ] }", "nkey"),
    "account-key-not-user": (
        f"authorization {{ users: [ {{nkey: A{PUB_G[1:]}}} ] }}",
        "nkey",
    ),
    "nkey-with-password": (
        f"authorization {{ users: [ {{nkey: {PUB_G}, password: x}} ] }}",
        "nkey",
    ),
    "duplicate-nkey": (
        f"authorization {{ users: [ {{nkey: {PUB_G}}}, {{nkey: {PUB_G}}} ] }}",
        "duplicate",
    ),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(BAD_CONFS))
def test_bad_nkey_config_refused(tmp_path: Path, impl: str, case: str) -> None:
    from tests.server.conftest import impl_command

    text, word = BAD_CONFS[case]
    conf = tmp_path / "bad.conf"
    conf.write_text("port: -1\n" + text + "\n")
    res = subprocess.run(
        [*impl_command(impl), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert res.returncode != 0, res.stdout + res.stderr
    out = (res.stdout + res.stderr).lower()
    assert word in out, out
    if impl == "scserver":
        assert f"{conf}:2" in res.stderr, res.stderr


def test_bcrypt_runs_off_the_event_loop(servers: Servers) -> None:
    """While a costly bcrypt login is checked, other clients are still served; the operations
    pipelined behind that CONNECT are handled, in order, once the login is decided."""
    hashed = bcrypt.hashpw(b"slow", bcrypt.gensalt(14)).decode()
    sp = servers.start(
        "scserver",
        f"authorization {{ timeout: 30, users: [ {{user: slow, password: '{hashed}'}},"
        " {user: quick, password: q} ] }\n",
    )
    with RawClient(sp.port) as quick, RawClient(sp.port, timeout=60) as slow:
        quick.send('CONNECT {"verbose":false,"user":"quick","pass":"q"}\r\nPING\r\n')
        assert quick.lines() == ["PONG"]
        slow.send(
            'CONNECT {"verbose":false,"user":"slow","pass":"slow"}\r\n'
            "SUB pipelined 1\r\nPUB pipelined 2\r\nok\r\nPING\r\n"
        )
        # The quick client is answered while the slow login is still being hashed (cost 14
        # takes about a second): the slow client has nothing to read yet. Hashed on the event
        # loop, the slow client's replies would have been sent before the quick PONGs.
        for _ in range(5):
            quick.send("PING\r\n")
            assert quick.lines() == ["PONG"]
        readable, _, _ = select.select([slow.sock], [], [], 0)
        assert not readable and slow.buf == b""
        assert slow.lines(timeout=60) == ["MSG pipelined 1 2", "b'ok'", "PONG"]
    with RawClient(sp.port, timeout=60) as wrong:
        wrong.send('CONNECT {"verbose":false,"user":"slow","pass":"nope"}\r\nPING\r\n')
        assert wrong.lines(timeout=60) == [AUTH_ERR, EOF]

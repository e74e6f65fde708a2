"""Client authentication: users with plain or bcrypt passwords, tokens, NKey users, no-auth users.

The server builds one :class:`Authenticator` from the options at start and again on every
reload. A client keeps the :class:`Credentials` it sent in CONNECT (and the nonce it was
challenged with), so a reload can ask the new authenticator the same question again, as
nats-server's ``isClientAuthorized`` does: clients whose login still holds stay connected.

NKey users (nats-server ``nkey.go``/``auth.go``): when any are configured the server puts a
``nonce`` (11 random bytes, base64url without padding: 15 characters) in each client's INFO;
the client answers with its public key in ``nkey`` and an Ed25519 signature of the nonce's
bytes in ``sig`` (base64url, standard base64 also accepted).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import nacl.exceptions
import nacl.signing
import nkeys

GLOBAL_ACCOUNT = "$G"
NONCE_RAW_LEN = 11


@dataclass(slots=True)
class User:
    """A configured user, by name (``username``) or by NKey public key (``nkey``)."""

    username: str
    password: str | None
    account: str = GLOBAL_ACCOUNT
    permissions: dict[str, Any] | None = None
    nkey: str | None = None

    @property
    def identity(self) -> str:
        """How logs and monitoring name this user."""
        return self.nkey or self.username


class HashPending(Exception):  # noqa: N818 - a signal, not an error
    """A bcrypt check is needed that no cache answers: run it off the loop, then ask again."""

    def __init__(self, given: str, configured: str) -> None:
        super().__init__("bcrypt check pending")
        self.given = given
        self.configured = configured


@dataclass(slots=True)
class AuthResult:
    ok: bool
    account: str = GLOBAL_ACCOUNT
    user: User | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """The credential fields of a CONNECT, kept for re-checks on reload."""

    user: str = ""
    password: str = ""
    token: str = ""
    nkey: str = ""
    sig: str = ""
    #: Logged in without credentials as the no-auth user named by ``user``/``nkey``.
    no_auth: bool = False

    @classmethod
    def from_connect(cls, opts: Mapping[str, Any] | Any) -> Credentials:
        """From the CONNECT JSON object (a dict) or a parsed model with the same field names."""

        def text(key: str, *attrs: str) -> str:
            if isinstance(opts, Mapping):
                value = opts.get(key)
            else:
                value = next(
                    (v for a in (key, *attrs) if (v := getattr(opts, a, None)) is not None), None
                )
            return value if isinstance(value, str) else ""

        return cls(
            user=text("user"),
            password=text("pass", "pass_", "password"),
            token=text("auth_token"),
            nkey=text("nkey"),
            sig=text("sig"),
        )

    @property
    def anonymous(self) -> bool:
        """No user, password, token or nkey: the client may be mapped to a no-auth user."""
        return not (self.user or self.password or self.token or self.nkey)


@dataclass
class Authenticator:
    """Checks a client's credentials against the configured users, NKeys and token.

    Built fresh from options on every reload, so a removed user is refused from then on.
    """

    users: dict[str, User] = field(default_factory=dict)
    nkeys: dict[str, User] = field(default_factory=dict)
    token: str | None = None
    no_auth_user: str | None = None
    #: nats-server's implicit no-auth user: when only the system account has users, clients
    #: without credentials log in as this `$G` user (INFO still says auth_required). Its name
    #: stays the same across reloads so that they keep passing.
    implicit_user: str | None = None

    @property
    def required(self) -> bool:
        return bool(self.users or self.nkeys or self.token)

    @property
    def advertise_required(self) -> bool:
        """INFO.auth_required: false when anonymous clients map to `no_auth_user`."""
        return self.required and not (self.no_auth_user and self.no_auth_user != self.implicit_user)

    def add_implicit_user(self, account: str, previous: str | None = None) -> None:
        """Let anonymous clients into ``account`` through a generated no-auth user."""
        name = previous or "nats-anonymous"
        n = 0
        while name in self.users:
            n += 1
            name = f"nats-anonymous-{n}"
        self.users[name] = User(name, None, account)
        self.implicit_user = self.no_auth_user = name

    @property
    def nonce_required(self) -> bool:
        """INFO carries a nonce only when some user logs in with an NKey."""
        return bool(self.nkeys)

    def authenticate(
        self,
        creds: Credentials,
        nonce: bytes | None = None,
        cache: dict[str, bool] | None = None,
        defer_hash: bool = False,
    ) -> AuthResult:
        """Decide a login. ``cache`` (one per connection) keeps bcrypt verdicts per hash.

        With ``defer_hash``, a bcrypt check the cache cannot answer raises :class:`HashPending`
        instead of running here (it takes tens of milliseconds on purpose): the caller runs
        :func:`check_password` in a thread, stores the verdict in ``cache`` and asks again.
        """
        if not self.required:
            return AuthResult(True)
        if self.token is not None:
            if creds.token and _secure_eq(creds.token, self.token):
                return AuthResult(True)
            if not (self.users or self.nkeys):
                return AuthResult(False)
        if creds.no_auth and (creds.user or creds.nkey) == self.no_auth_user:
            # Still the no-auth user: an anonymous login that still holds, whatever that
            # user's password became (nats-server compares the copied password and, for a
            # bcrypt one, drops the client; it never presented one).
            creds = Credentials()
        if creds.anonymous:
            if self.no_auth_user:
                user = self.users.get(self.no_auth_user) or self.nkeys.get(self.no_auth_user)
                if user is not None:
                    return AuthResult(True, user.account, user)
            return AuthResult(False)
        if self.nkeys and creds.nkey:
            # nats-server: a presented nkey must be a configured one; no fallback to users.
            # The no-auth nkey user (a client mapped to it earlier) needs no signature.
            nuser = self.nkeys.get(creds.nkey)
            if nuser is None:
                return AuthResult(False)
            if creds.nkey != self.no_auth_user and (
                nonce is None or not verify_nonce(creds.nkey, creds.sig, nonce)
            ):
                return AuthResult(False)
            return AuthResult(True, nuser.account, nuser)
        user = self.users.get(creds.user) if creds.user else None
        if user is None:
            return AuthResult(False)
        if user.password is not None and not _password_ok(
            creds.password, user.password, cache, defer_hash
        ):
            return AuthResult(False)
        return AuthResult(True, user.account, user)

    def lookup(self, creds: Credentials) -> User | None:
        """The configured user these credentials name (by nkey first), if any."""
        if creds.nkey:
            return self.nkeys.get(creds.nkey)
        if creds.user:
            return self.users.get(creds.user)
        return None


def login_credentials(creds: Credentials, result: AuthResult) -> Credentials:
    """The credentials a client is held to from now on (checked again on every reload).

    As nats-server, a client let in as the no-auth user takes that user's name and password
    (or nkey), so it stays only while that user does: while it is still the no-auth user,
    or, if another one is named, while the password still matches.
    """
    if not creds.anonymous or result.user is None:
        return creds
    user = result.user
    if user.nkey:
        return Credentials(nkey=user.nkey, no_auth=True)
    return Credentials(user=user.username, password=user.password or "", no_auth=True)


def new_nonce() -> str:
    """A fresh INFO nonce: 11 random bytes, base64url without padding (15 characters)."""
    return base64.urlsafe_b64encode(os.urandom(NONCE_RAW_LEN)).rstrip(b"=").decode()


def _secure_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def is_bcrypt(configured: str) -> bool:
    """nats-server treats a password starting with ``$2`` as a bcrypt hash."""
    return configured.startswith("$2")


def check_password(given: object, configured: str) -> bool:
    """Plain or bcrypt (`$2a$...`) passwords, as nats-server accepts both."""
    if not isinstance(given, str):
        return False
    if is_bcrypt(configured):
        try:
            return bcrypt.checkpw(given.encode(), configured.encode())
        except ValueError:
            return False
    return _secure_eq(given, configured)


def _password_ok(
    given: str, configured: str, cache: dict[str, bool] | None, defer: bool = False
) -> bool:
    """bcrypt costs tens of milliseconds on purpose: a connection checks each hash once.

    The verdict is cached per connection (its password never changes), so a reload that keeps
    a user's hash does not re-hash every connected client.
    """
    if cache is None or not is_bcrypt(configured):
        return check_password(given, configured)
    verdict = cache.get(configured)
    if verdict is None:
        if defer:
            raise HashPending(given, configured)
        verdict = cache[configured] = check_password(given, configured)
    return verdict


def decode_public_user_key(key: str) -> bytes | None:
    """The 32-byte Ed25519 key inside a user NKey (``U...``), or None if it is not one.

    The nkeys package reads seeds but not bare public keys: base32 of prefix byte, key and a
    CRC16 (little endian) over the first two parts.
    """
    if len(key) != 56:
        return None
    try:
        raw = base64.b32decode(key)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 35 or raw[0] != nkeys.PREFIX_BYTE_USER:
        return None
    if int.from_bytes(raw[33:], "little") != nkeys.crc16(bytearray(raw[:33])):
        return None
    return raw[1:33]


def is_valid_public_user_key(key: object) -> bool:
    return isinstance(key, str) and decode_public_user_key(key) is not None


def _decode_sig(sig: str) -> bytes | None:
    """base64url without padding (what clients send), else standard base64."""
    padded = sig + "=" * (-len(sig) % 4)
    for alphabet in (b"-_", b"+/"):
        try:
            return base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def verify_nonce(nkey: str, sig: str, nonce: bytes) -> bool:
    """True when ``sig`` is ``nkey``'s Ed25519 signature of the nonce."""
    if not sig:
        return False
    public = decode_public_user_key(nkey)
    raw_sig = _decode_sig(sig)
    if public is None or raw_sig is None:
        return False
    try:
        nacl.signing.VerifyKey(public).verify(nonce, raw_sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def link_login_ok(opts: Mapping[str, Any], username: str | None, password: str | None) -> bool:
    """A route or gateway CONNECT against its block's single user (nats-server's
    comparePasswords: bcrypt or constant-time). Routes connect rarely, so a bcrypt password
    here is checked inline."""
    given_user = opts.get("user")
    if not isinstance(given_user, str) or not _secure_eq(given_user, username or ""):
        return False
    given = opts.get("pass")
    return check_password(given if isinstance(given, str) else "", password or "")

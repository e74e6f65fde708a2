"""TLS on the client port (``tls {}`` at top level), scserver side by side with nats-server.

nats-server's order: plaintext INFO (``tls_required``; ``tls_verify`` with ``verify``;
``tls_available`` instead with ``allow_non_tls``), then the TLS handshake; ``handshake_first``
does the handshake before INFO. ``verify`` requires a client certificate from ``ca_file``;
``verify_and_map`` names the user by the certificate's email/SAN/DN; ``pinned_certs`` admits
only listed keys. Every test runs the same config on both servers where behaviour is compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import urllib.request

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.tls.conftest import server_cert
from tests.tls.link_certs import Pki
from tests.tools import (
    LOOPBACK,
    http_get_json,
    nats_server_binary,
    natscli_binary,
    read_info,
    require_binary,
    scserver_command,
    scserver_env,
    wait_for,
)

pytestmark = pytest.mark.nats_server
BOTH = pytest.mark.parametrize("kind", ["sc", "go"])


def tls_block(pki: Pki, extra: str = "", cert: str = "good", ca: str | None = None) -> str:
    fields = [f'cert_file: "{pki.path(cert + ".pem")}"', f'key_file: "{pki.path(cert + ".key")}"']
    if ca:
        fields.append(f'ca_file: "{pki.path(ca + ".pem")}"')
    if extra:
        fields.append(extra)
    return "tls {\n  " + "\n  ".join(fields) + "\n}\n"


def client_ctx(pki: Pki, ca: str = "ca", cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.path(ca + ".pem"))
    if cert:
        ctx.load_cert_chain(pki.path(cert + ".pem"), pki.path(cert + ".key"))
    return ctx


async def connect(port: int, ctx: ssl.SSLContext | None, **kw) -> nats.NATS:
    scheme = "tls" if ctx is not None else "nats"
    return await nats.connect(
        f"{scheme}://localhost:{port}",
        tls=ctx,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        **kw,
    )


async def roundtrip(nc: nats.NATS, subject: str = "tls.test") -> bytes:
    sub = await nc.subscribe(subject)
    await nc.flush()
    await nc.publish(subject, b"hello over tls")
    msg = await sub.next_msg(timeout=3)
    await sub.unsubscribe()
    return msg.data


async def refused(port: int, ctx: ssl.SSLContext, **kw) -> None:
    """The connection must fail (handshake, or the server's alert on the first read)."""
    nc = None
    with pytest.raises(Exception):  # noqa: B017 - nats-py surfaces ssl/EOF/timeout errors
        nc = await connect(port, ctx, **kw)
        await roundtrip(nc)
    if nc is not None:
        await nc.close()


def wait_log(proc, pattern: str, timeout: float = 6.0) -> None:
    try:
        wait_for(lambda: re.search(pattern, proc.log_text()), timeout, 0.05, pattern)
    except TimeoutError:
        raise AssertionError(
            f"{proc.name} never logged /{pattern}/:\n{proc.log_tail(40)}"
        ) from None


def peer_serial(port: int, cafile: str) -> int:
    """Serial of the certificate the server presents to a new connection (after INFO)."""
    with socket.create_connection((LOOPBACK, port), timeout=3) as raw:
        raw.recv(4096)  # INFO
        ctx = ssl.create_default_context(cafile=cafile)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def tls_keys(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k.startswith("tls_")}


# -- basic TLS ------------------------------------------------------------------------------


@BOTH
async def test_pubsub_over_tls_with_ca(kind: str, pki: Pki, tls_server) -> None:
    srv = tls_server(kind, tls_block(pki))
    info = read_info(LOOPBACK, srv.port)
    assert info.get("tls_required") is True and "tls_verify" not in info
    nc = await connect(srv.port, client_ctx(pki))
    try:
        assert await roundtrip(nc) == b"hello over tls"
    finally:
        await nc.close()
    # A client that skips TLS gets nothing but the INFO: its plaintext protocol is never
    # parsed (no PONG), the connection ends.
    with socket.create_connection((LOOPBACK, srv.port), timeout=3) as raw:
        assert raw.recv(4096).startswith(b"INFO ")
        raw.sendall(b"CONNECT {}\r\nPING\r\n")
        rest = b""
        with contextlib.suppress(OSError):
            while chunk := raw.recv(4096):
                rest += chunk
        assert b"PONG" not in rest


@pytest.mark.parametrize(
    ("server_cert_name", "client_ca"),
    [("good", "other-ca"), ("wrongsan", "ca"), ("expired", "ca")],
    ids=["unknown-ca", "wrong-san", "expired"],
)
async def test_client_refuses_bad_server_certificate(
    pki: Pki, tls_server, server_cert_name: str, client_ca: str
) -> None:
    srv = tls_server("sc", tls_block(pki, cert=server_cert_name))
    with pytest.raises((ssl.SSLError, OSError, nats.errors.Error)):
        nc = await connect(srv.port, client_ctx(pki, ca=client_ca))
        await nc.close()


# -- verify: mutual TLS ---------------------------------------------------------------------


@BOTH
async def test_verify_requires_a_client_certificate_from_ca(
    kind: str, pki: Pki, tls_server
) -> None:
    srv = tls_server(kind, tls_block(pki, "verify: true", ca="trusted"))
    info = read_info(LOOPBACK, srv.port)
    assert info.get("tls_required") is True and info.get("tls_verify") is True
    nc = await connect(srv.port, client_ctx(pki, cert="alice"))
    try:
        assert await roundtrip(nc) == b"hello over tls"
    finally:
        await nc.close()
    await refused(srv.port, client_ctx(pki))  # no certificate
    await refused(srv.port, client_ctx(pki, cert="mallory"))  # signed by another CA
    await refused(srv.port, client_ctx(pki, cert="expired"))  # trusted CA, expired
    if kind == "sc":
        wait_log(srv, r"TLS handshake error: .*(certificate|CERTIFICATE)")
        wait_log(srv, r"unknown authority|unable to get local issuer")


@BOTH
async def test_pinned_certs_admit_only_listed_keys(kind: str, pki: Pki, tls_server) -> None:
    with open(pki.path("alice.pem"), "rb") as fh:
        alice = x509.load_pem_x509_certificate(fh.read())
    spki = alice.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = hashlib.sha256(spki).hexdigest()
    srv = tls_server(kind, tls_block(pki, f'verify: true\n  pinned_certs: ["{pin}"]', ca="trusted"))
    nc = await connect(srv.port, client_ctx(pki, cert="alice"))
    try:
        assert await roundtrip(nc) == b"hello over tls"
    finally:
        await nc.close()
    await refused(srv.port, client_ctx(pki, cert="bob"))  # trusted CA, but not pinned
    if kind == "sc":
        wait_log(srv, r"certificate not pinned")


@BOTH
async def test_verify_and_map_names_the_user(kind: str, pki: Pki, tls_server) -> None:
    users = """
authorization {
  users = [
    {user: "alice@example.com", permissions: {publish: "tls.>", subscribe: "tls.>"}}
    {user: "CN=bob,OU=ops,O=Acme"}
  ]
}
"""
    srv = tls_server(kind, tls_block(pki, "verify_and_map: true", ca="trusted") + users, http=True)
    info = read_info(LOOPBACK, srv.port)
    assert info.get("tls_verify") is True and info.get("auth_required") is True
    alice = await connect(srv.port, client_ctx(pki, cert="alice"), name="alice")
    bob = await connect(srv.port, client_ctx(pki, cert="bob"), name="bob")
    try:
        assert await roundtrip(alice) == b"hello over tls"
        assert await roundtrip(bob, "other.subject") == b"hello over tls"
        conns = http_get_json(LOOPBACK, srv.http_port, "/connz?auth=true")["connections"]
        users_by_name = {c.get("name"): c.get("authorized_user") for c in conns}
        assert users_by_name == {"alice": "alice@example.com", "bob": "CN=bob,OU=ops,O=Acme"}
    finally:
        await alice.close()
        await bob.close()
    await refused(srv.port, client_ctx(pki, cert="mallory"))


# -- handshake_first and allow_non_tls ------------------------------------------------------


@BOTH
async def test_handshake_first(kind: str, pki: Pki, tls_server) -> None:
    srv = tls_server(kind, tls_block(pki, "handshake_first: true"), ready_port=False, http=True)
    nc = await connect(srv.port, client_ctx(pki), tls_handshake_first=True)
    try:
        assert nc._server_info.get("tls_required") is True
        assert await roundtrip(nc) == b"hello over tls"
        (conn,) = http_get_json(LOOPBACK, srv.http_port, "/connz")["connections"]
        assert conn.get("tls_first") is True and conn.get("tls_version") == "1.3"
    finally:
        await nc.close()
    # The server writes nothing before the handshake: a plaintext reader sees no INFO.
    with (
        socket.create_connection((LOOPBACK, srv.port), timeout=0.5) as raw,
        pytest.raises((TimeoutError, socket.timeout)),
    ):
        raw.recv(10)


@BOTH
async def test_handshake_first_auto_falls_back_to_info_first(
    kind: str, pki: Pki, tls_server
) -> None:
    srv = tls_server(kind, tls_block(pki, 'handshake_first: "auto"'))  # INFO after 50 ms
    first = await connect(srv.port, client_ctx(pki), tls_handshake_first=True)
    classic = await connect(srv.port, client_ctx(pki))
    try:
        assert await roundtrip(first) == b"hello over tls"
        assert await roundtrip(classic) == b"hello over tls"
    finally:
        await first.close()
        await classic.close()


@BOTH
async def test_allow_non_tls_serves_plain_and_tls_clients(kind: str, pki: Pki, tls_server) -> None:
    srv = tls_server(kind, tls_block(pki) + "allow_non_tls: true\n")
    info = read_info(LOOPBACK, srv.port)
    assert info.get("tls_available") is True and "tls_required" not in info
    plain = await connect(srv.port, None)
    secure = await connect(srv.port, client_ctx(pki))
    try:
        sub = await plain.subscribe("mixed")
        await plain.flush()
        await secure.publish("mixed", b"from tls")
        # the publisher's PING/PONG: the server has the message once flush returns, so only
        # the delivery is waited for (generously: a loaded machine is slow, not lossy)
        await secure.flush(timeout=10)
        got = await sub.next_msg(timeout=10)
        assert got.data == b"from tls"
    finally:
        await plain.close()
        await secure.close()


# -- differential: INFO, /varz, /connz ------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    ["", "verify: true", "timeout: 3", "ALLOW"],
    ids=["plain", "verify", "timeout", "allow_non_tls"],
)
def test_info_tls_fields_match_nats_server(pki: Pki, tls_server, extra: str) -> None:
    body = tls_block(pki, "" if extra == "ALLOW" else extra, ca="trusted")
    if extra == "ALLOW":
        body += "allow_non_tls: true\n"
    got = {}
    for kind in ("sc", "go"):
        srv = tls_server(kind, body)
        got[kind] = tls_keys(read_info(LOOPBACK, srv.port))
    assert got["sc"] == got["go"]


def _conn_tls(conn: dict) -> dict:
    out = tls_keys(conn)
    out.pop("tls_cipher_suite", None)  # suite choice depends on the TLS library's preferences
    for cert in out.get("tls_peer_certs") or []:
        assert re.fullmatch(r"[0-9a-f]{64}", cert.pop("spki_sha256"))
        assert re.fullmatch(r"[0-9a-f]{64}", cert.pop("cert_sha256"))
    return out


async def test_varz_and_connz_tls_fields_match_nats_server(pki: Pki, tls_server) -> None:
    body = tls_block(pki, "verify: true\n  timeout: 1.5", ca="trusted")
    varz, connz, suites, auth_timeouts = {}, {}, {}, {}
    for kind in ("sc", "go"):
        srv = tls_server(kind, body, http=True)
        nc = await connect(srv.port, client_ctx(pki, cert="alice"))
        try:
            await nc.flush()
            full = http_get_json(LOOPBACK, srv.http_port, "/varz")
            varz[kind] = tls_keys(full)
            auth_timeouts[kind] = full["auth_timeout"]
            doc = http_get_json(LOOPBACK, srv.http_port, "/connz?auth=true")
            (conn,) = doc["connections"]
            suites[kind] = conn.get("tls_cipher_suite")
            connz[kind] = _conn_tls(conn)
        finally:
            await nc.close()
    assert varz["sc"] == varz["go"]
    assert auth_timeouts["sc"] == auth_timeouts["go"] == 2.5  # TLS timeout + 1 s
    assert varz["sc"]["tls_timeout"] == 1.5 and varz["sc"]["tls_verify"] is True
    assert connz["sc"] == connz["go"]
    assert connz["sc"]["tls_version"] == "1.3"
    assert connz["sc"]["tls_peer_certs"][0]["subject"] == "CN=alice,O=Acme"
    tls13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
    assert suites["sc"] in tls13 and suites["go"] in tls13


@BOTH
def test_https_monitoring(kind: str, pki: Pki, tls_server) -> None:
    srv = tls_server(kind, tls_block(pki) + "https_port: {http}\n", http=True)
    ctx = client_ctx(pki)

    def varz() -> dict:
        url = f"https://localhost:{srv.http_port}/varz"
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return json.loads(resp.read())

    got: list[dict] = []
    wait_for(lambda: got.append(varz()) or True, 6.0, 0.1, "https /varz")
    doc = got[-1]
    assert doc["https_port"] == srv.http_port and doc["http_port"] == 0
    assert doc.get("tls_required") is True
    # Plain HTTP on the https port gets no JSON.
    with pytest.raises(Exception):  # noqa: B017 - connection reset or bad status line
        http_get_json(LOOPBACK, srv.http_port, "/varz")


# -- reload: certificate rotation -----------------------------------------------------------


async def test_reload_rotates_certificate_for_new_connections(pki: Pki, tls_server) -> None:
    d = pki.dir
    first = server_cert(d, "rot1")
    second = server_cert(d, "rot2")
    shutil.copy(d / "rot1.pem", d / "live.pem")
    shutil.copy(d / "rot1.key", d / "live.key")
    srv = tls_server("sc", tls_block(pki, cert="live"))
    cafile = pki.path("client-ca.pem")
    assert peer_serial(srv.port, cafile) == first
    old = await connect(srv.port, client_ctx(pki, ca="client-ca"))
    try:
        shutil.copy(d / "rot2.pem", d / "live.pem")
        shutil.copy(d / "rot2.key", d / "live.key")
        srv.signal(signal.SIGHUP)
        wait_for(lambda: peer_serial(srv.port, cafile) == second, 6.0, 0.1, "new certificate")
        assert await roundtrip(old) == b"hello over tls"  # established connection untouched

        # A broken certificate: the reload is refused, the running certificate stays.
        (d / "live.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a cert\n")
        srv.signal(signal.SIGHUP)
        wait_log(srv, r"Failed to reload server configuration: .*live\.pem")
        assert peer_serial(srv.port, cafile) == second
        assert await roundtrip(old) == b"hello over tls"
        assert srv.alive()
    finally:
        await old.close()


def test_reload_adding_tls_to_a_plain_server_is_refused(pki: Pki, tls_server) -> None:
    srv = tls_server("sc", "")
    assert srv.config_path is not None
    srv.config_path.write_text(f"port: {srv.port}\n" + tls_block(pki))
    srv.signal(signal.SIGHUP)
    wait_log(srv, r"Failed to reload server configuration: adding a tls \{\} block")
    info = read_info(LOOPBACK, srv.port)
    assert "tls_required" not in info  # still the plain server it was, and says so


def https_serial(port: int, cafile: str) -> int:
    ctx = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection((LOOPBACK, port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        der = s.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_reload_rotates_https_monitor_certificate(pki: Pki, tls_server) -> None:
    d = pki.dir
    first = server_cert(d, "https1")
    second = server_cert(d, "https2")
    shutil.copy(d / "https1.pem", d / "mon.pem")
    shutil.copy(d / "https1.key", d / "mon.key")
    srv = tls_server("sc", tls_block(pki, cert="mon") + "https_port: {http}\n", http=True)
    cafile = pki.path("client-ca.pem")
    wait_for(lambda: https_serial(srv.http_port, cafile) == first, 6.0, 0.1, "https up")
    shutil.copy(d / "https2.pem", d / "mon.pem")
    shutil.copy(d / "https2.key", d / "mon.key")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: https_serial(srv.http_port, cafile) == second, 6.0, 0.1, "new https cert")


# -- config errors --------------------------------------------------------------------------

BAD_BLOCKS = {
    "unknown key": ("bogus: 1", r"unknown field 'bogus'"),
    "unknown cipher": ('cipher_suites: ["TLS_NOPE"]', r"unrecognized cipher TLS_NOPE"),
    "insecure cipher": (
        'cipher_suites: ["TLS_RSA_WITH_AES_128_CBC_SHA"]',
        r"insecure cipher suites configured",
    ),
    "curve preferences": ('curve_preferences: ["CurveP256"]', r"curve_preferences"),
    "cert store": ('cert_store: "WindowsCurrentUser"', r"Windows-only"),
    "ocsp peer": ("ocsp_peer: true", r"ocsp_peer"),
    "min version": ('min_version: "1.1"', r"unsupported TLS version"),
    "bad pin": ('pinned_certs: ["abc"]', r"pinned_certs"),
    "check known urls": (
        "verify_cert_and_check_known_urls: true",
        r"not supported in this context",
    ),
    "handshake_first value": ('handshake_first: "sometimes"', r"is invalid"),
    "rate limit": ("connection_rate_limit: 5", r"connection_rate_limit"),
}
#: Options nats-server honours but scserver cannot: refused here, accepted there.
SCSERVER_ONLY_REFUSALS = {"curve preferences", "ocsp peer", "rate limit"}


@pytest.mark.parametrize("case", sorted(BAD_BLOCKS))
def test_scserver_t_refuses_bad_tls_config(pki: Pki, tmp_path, case: str) -> None:
    line, message = BAD_BLOCKS[case]
    conf = tmp_path / "bad.conf"
    conf.write_text("port: 4222\n" + tls_block(pki, line))
    cmd = require_binary(scserver_command(), "scserver not runnable")
    out = subprocess.run(
        [*cmd, "-t", "-c", str(conf)], capture_output=True, text=True, env=scserver_env()
    )
    assert out.returncode != 0, out
    text = out.stdout + out.stderr
    assert re.search(rf"bad\.conf:5:\d+: .*{message}", text), text
    go = nats_server_binary()
    if go is not None:
        ref = subprocess.run([str(go), "-t", "-c", str(conf)], capture_output=True, text=True)
        assert (ref.returncode == 0) == (case in SCSERVER_ONLY_REFUSALS), ref


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('tls {{ cert_file: "{dir}/missing.pem", key_file: "{dir}/good.key" }}', r"missing\.pem"),
        (
            'tls {{ cert_file: "{dir}/good.pem", key_file: "{dir}/other.key" }}',
            r"does not match|certificate/key pair",
        ),
        ('tls {{ cert_file: "{dir}/good.pem" }}', r"missing 'key_file'"),
        (
            'tls {{ cert_file: "{dir}/good.pem", key_file: "{dir}/good.key", ca_file: "{dir}/good.key" }}',
            r"ca_file",
        ),
        ("https_port: 8443", r"https_port requires a tls"),
        (
            'cluster {{ port: 6222, tls {{ cert_file: "{dir}/nope.pem", key_file: "x" }} }}',
            r"nope\.pem",
        ),
    ],
    ids=["missing-cert", "key-mismatch", "no-key", "bad-ca", "https-without-tls", "cluster-file"],
)
def test_scserver_t_refuses_unusable_files(pki: Pki, tmp_path, body: str, message: str) -> None:
    conf = tmp_path / "files.conf"
    conf.write_text("port: 4222\n" + body.format(dir=pki.dir) + "\n")
    cmd = require_binary(scserver_command(), "scserver not runnable")
    out = subprocess.run(
        [*cmd, "-t", "-c", str(conf)], capture_output=True, text=True, env=scserver_env()
    )
    assert out.returncode != 0, out
    text = out.stdout + out.stderr
    assert re.search(rf"files\.conf:2:\d+: .*{message}", text), text


# -- the Go nats CLI ------------------------------------------------------------------------


@pytest.mark.natscli
def test_nats_cli_over_mutual_tls(pki: Pki, tls_server) -> None:
    cli = str(
        require_binary(natscli_binary(), "Go nats CLI not installed (hack/install-natscli.sh)")
    )
    srv = tls_server("sc", tls_block(pki, "verify: true", ca="trusted"))
    url = f"tls://localhost:{srv.port}"
    tls_args = ["--server", url, "--tlsca", pki.path("ca.pem")]
    tls_args += ["--tlscert", pki.path("alice.pem"), "--tlskey", pki.path("alice.key")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, *args], capture_output=True, text=True, timeout=15)

    replier = subprocess.Popen(
        [cli, *tls_args, "reply", "svc.echo", "pong"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The replier subscribes shortly after starting: retry until a request is answered.
        answers: list[subprocess.CompletedProcess[str]] = []

        def answered() -> bool:
            answers.append(run(*tls_args, "request", "svc.echo", "ping", "--timeout", "1s"))
            return answers[-1].returncode == 0 and "pong" in answers[-1].stdout

        wait_for(answered, 10.0, 0.2, "request over TLS answered")
        answer = answers[-1]
        assert "pong" in answer.stdout + answer.stderr
        pub = run(*tls_args, "pub", "cli.subject", "x")
        assert pub.returncode == 0, pub.stdout + pub.stderr
        # Without a client certificate the CLI is refused.
        bad = run("--server", url, "--tlsca", pki.path("ca.pem"), "pub", "cli.subject", "x")
        assert bad.returncode != 0, bad.stdout + bad.stderr
    finally:
        replier.kill()
        replier.wait()

"""Knock on a route or gateway port the way a peer would, and say whether it was let in.

Run in a pod (stdlib + the image's `cryptography`); prints one JSON line:
``{"info": <the port's INFO>, "outcome": "accepted" | "refused", "detail": "..."}``.

    python linkprobe.py HOST PORT --kind gateway|route [--tls] [--cert F --key F] [--ca F]
                        [--user U --password P] [--foreign-cert]

``--tls`` starts with the TLS handshake as NATS links do (``--ca`` also verifies the server's certificate
for HOST); ``--foreign-cert`` presents a certificate from a CA made up on the spot. After
CONNECT and PING, a PONG means the port accepted the peer; ``-ERR``, a TLS alert or a closed
connection means it refused.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import socket
import ssl
import tempfile
from pathlib import Path


def foreign_cert(workdir: Path) -> tuple[str, str]:
    """A self-signed certificate and key no server of the supercluster trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e-intruder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crt, pem = workdir / "intruder.crt", workdir / "intruder.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(crt), str(pem)


def read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--kind", choices=["gateway", "route"], required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--foreign-cert", action="store_true")
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    args = ap.parse_args()
    result: dict[str, object] = {"outcome": "refused", "detail": ""}
    sock = socket.create_connection((args.host, args.port), timeout=10)
    try:
        conn: socket.socket = sock
        if args.tls:
            # Links start TLS before anything else (nats-server's routes and gateways do the
            # handshake first, then the accepting side sends INFO).
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if args.ca:
                ctx.load_verify_locations(args.ca)
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if args.foreign_cert:
                args.cert, args.key = foreign_cert(Path(tempfile.mkdtemp()))
            if args.cert:
                ctx.load_cert_chain(args.cert, args.key)
            conn = ctx.wrap_socket(sock, server_hostname=args.host)
            result["tls_version"] = conn.version()
            der = conn.getpeercert(binary_form=True)
            if der:
                # as the operator's status.tls shows it (`openssl x509 -fingerprint -sha256`)
                result["peer_fingerprint"] = (
                    "SHA256:" + hashlib.sha256(der).digest().hex(":").upper()
                )
        line = read_line(conn)
        if line.startswith(b"INFO "):
            result["info"] = json.loads(line[5:])
        connect: dict[str, object] = {
            "verbose": False,
            "pedantic": False,
            "tls_required": args.tls,
            "name": "e2e-probe",
            "user": args.user,
            "pass": args.password,
        }
        if args.kind == "gateway":
            connect["gateway"] = "e2e-probe"
        else:
            connect["cluster"] = "e2e-probe"
        conn.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        while True:
            got = read_line(conn)
            if got.startswith(b"PONG"):
                result["outcome"] = "accepted"
                break
            if got.startswith(b"-ERR"):
                result["detail"] = got.decode(errors="replace").strip()
                break
    except (OSError, ssl.SSLError, ConnectionError) as exc:
        result["detail"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

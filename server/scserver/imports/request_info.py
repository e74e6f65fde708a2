"""What a request carries across accounts and what ``$SYS.REQ.USER.INFO`` answers: the
``Nats-Request-Info`` header nats-server stamps on imported service requests, and a user's
permissions in its public form. Kept apart from the import runtime because it is pure
formatting of a client's state."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from scserver.imports.config import go_duration
from scserver.protocol.parser import CLIENT

if TYPE_CHECKING:
    from scserver.imports.runtime import ServiceImport


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def public_permissions(raw: dict[str, Any]) -> dict[str, Any]:
    """A user's configured permissions as nats-server's USER.INFO shows them
    (``publicPermissions``): ``publish``/``subscribe`` with ``allow``/``deny`` lists, and
    ``responses`` {max, ttl in ns} for ``allow_responses``."""
    out: dict[str, Any] = {"publish": {}, "subscribe": {}}
    for key, value in raw.items():
        lk = str(key).lower()
        target = {"publish": "publish", "pub": "publish", "subscribe": "subscribe"}.get(lk)
        target = target or ("subscribe" if lk == "sub" else None)
        if target is not None:
            if isinstance(value, dict):
                for k2, v2 in value.items():
                    if str(k2).lower() in ("allow", "deny"):
                        out[target][str(k2).lower()] = _as_list(v2)
            elif value is not None:
                out[target]["allow"] = _as_list(value)
        elif lk in ("allow_responses", "allow_response") and value:
            resp = {"max": 1, "ttl": 120_000_000_000}
            if isinstance(value, dict):
                for k2, v2 in value.items():
                    if str(k2).lower() in ("max", "max_msgs", "max_messages", "max_responses"):
                        resp["max"] = int(v2)
                    elif str(k2).lower() in ("expires", "ttl"):
                        try:
                            resp["ttl"] = int(go_duration(str(v2)) * 1e9)
                        except ValueError:
                            pass
            out["responses"] = resp
    return out


def _client_info(c: Any, si: ServiceImport) -> dict[str, Any]:
    """nats-server's ClientInfo of the requester: account and RTT; everything (``share``); server
    and cluster too for imports from the system account."""
    from scserver.monitor import rfc3339

    server = c.server
    rtt = int(getattr(c, "rtt", 0.0) * 1e9)
    info: dict[str, Any] = {}
    if si.share:
        info.update(start=rfc3339(c.start), host=c.host, id=c.cid)
    info["acc"] = c.account.name
    if si.share:
        if c.username:
            info["user"] = c.username
        info.update(name=c.name, lang=c.lang, ver=c.version)
    if rtt:
        info["rtt"] = rtt
    if si.share or si.system:
        info["server"] = server.name
        if server.cluster_name:
            info["cluster"] = server.cluster_name
    if si.share:
        info.update(kind="Client", client_type="nats")
    return {k: v for k, v in info.items() if v not in ("", None)}


def with_request_info(src: Any, si: ServiceImport, hdr_len: int, msg: bytes) -> tuple[int, bytes]:
    """Stamp ``Nats-Request-Info`` on a request crossing accounts, as nats-server does."""
    if src.kind != CLIENT:
        return hdr_len, msg
    info = _client_info(src, si)
    line = b"Nats-Request-Info: " + json.dumps(info, separators=(",", ":")).encode() + b"\r\n"
    if hdr_len < 0:
        hdr = b"NATS/1.0\r\n" + line + b"\r\n"
        return len(hdr), hdr + msg
    hdr = msg[:hdr_len]
    if b"\r\nNats-Request-Info:" in hdr:
        return hdr_len, msg
    new_hdr = hdr[:-2] + line + b"\r\n"
    return len(new_hdr), new_hdr + msg[hdr_len:]

"""Typed models of the JSON that peers send: CONNECT from clients, routes and gateways, and INFO.

Everything in a CONNECT or INFO line comes from the other end of a socket, so it is decoded
once, here, into strict pydantic models before any of it is used. The rules follow what
nats-server's Go ``encoding/json`` does with the same bytes, because a line that one server of a
supercluster accepts and another refuses would split it:

* a field of the wrong JSON type (``"port": "abc"``, ``"gateway_urls": 7``, ``"verbose": 1``)
  is an error, as Go's ``json.Unmarshal`` into a typed struct is -- no coercion;
* ``null`` leaves a field at its default, unknown fields are ignored, and key names match
  case-insensitively (ASCII), as in Go;
* invalid UTF-8 and lone surrogates become U+FFFD instead of failing (Go replaces them), so a
  stored name can always be encoded again for logs, gossip and monitoring;
* integers are range-checked to their Go type (``int32`` max_payload, ``byte`` gateway_cmd).

Beyond Go, bounds protect this server: documents nested deeper than :data:`MAX_DEPTH` are
refused *before* ``json.loads`` (deep nesting exhausts Python's recursion), and strings and lists
have generous length limits. Every failure is a :class:`WireError`; nothing else escapes
:func:`parse`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from itertools import accumulate
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

__all__ = [
    "MAX_DEPTH",
    "ClientConnect",
    "LinkConnect",
    "ServerInfo",
    "SubjectPermission",
    "WireError",
    "json_depth",
    "parse",
]

#: Deepest nesting accepted in a CONNECT/INFO document; real ones nest at most 3 levels.
MAX_DEPTH = 64
#: Longest string field (JWTs and signatures are the long ones) and longest list.
MAX_STR = 65536
MAX_NAME = 1024
MAX_LIST = 4096

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


class WireError(ValueError):
    """A CONNECT or INFO body that cannot be accepted; ``str()`` says why, for the log."""


Str = Annotated[str, StringConstraints(max_length=MAX_STR)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME)]
StrList = Annotated[list[Name], Field(max_length=MAX_LIST)]
Int = Annotated[int, Field(ge=-_INT64 - 1, le=_INT64)]
Int32 = Annotated[int, Field(ge=-_INT32 - 1, le=_INT32)]
Byte = Annotated[int, Field(ge=0, le=255)]


class _Wire(BaseModel):
    """Strict, immutable, unknown fields ignored; ``null`` and key case handled as Go does."""

    model_config = ConfigDict(
        strict=True, extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    @model_validator(mode="before")
    @classmethod
    def _go_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = _wire_names(cls)
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = key if key in names else names.get(key.lower()) if isinstance(key, str) else None
            if name is None or value is None:
                continue  # unknown field, or null: Go leaves the field as it was
            out[name] = value
        return out

    def wire(self) -> dict[str, Any]:
        """The fields the peer actually sent, by their JSON names (for storing and gossip)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


_NAMES: dict[type, dict[str, str]] = {}


def _wire_names(cls: type[BaseModel]) -> dict[str, str]:
    """JSON name (and its lower-case form) → the JSON name pydantic validates by."""
    names = _NAMES.get(cls)
    if names is None:
        names = {}
        for field_name, info in cls.model_fields.items():
            alias = info.alias or field_name
            names[alias] = alias
            names.setdefault(alias.lower(), alias)
        _NAMES[cls] = names
    return names


class SubjectPermission(_Wire):
    """``import``/``export`` in a route CONNECT or INFO."""

    allow: StrList | None = None
    deny: StrList | None = None


class ClientConnect(_Wire):
    """A client's CONNECT (nats-server's ``ClientOpts``); defaults are nats-server's."""

    echo: bool = True
    verbose: bool = True
    pedantic: bool = True
    tls_required: bool = False
    nkey: Str = ""
    jwt: Str = ""
    sig: Str = ""
    auth_token: Str = ""
    user: Str = ""
    pass_: Str = Field("", alias="pass")
    name: Str = ""
    lang: Str = ""
    version: Str = ""
    protocol: Int = 0
    account: Str = ""
    new_account: bool = False
    headers: bool = False
    no_responders: bool = False
    import_: SubjectPermission | None = Field(None, alias="import")
    export: SubjectPermission | None = None
    remote_account: Str = ""
    proxy_sig: Str = ""


class LinkConnect(ClientConnect):
    """A route's or gateway's CONNECT: nats-server decodes it as ``ClientOpts`` and then as the
    link ``connectInfo``, so both sets of fields are typed."""

    cluster: Name = ""
    cluster_dynamic: bool = False
    #: scserver's older spelling of ``cluster_dynamic`` (still sent to scserver peers).
    dynamic: bool = False
    lnoc: bool = False
    lnocu: bool = False
    gateway: Name = ""


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("gateway_cmd_payload is not base64") from exc
    return value


class ServerInfo(_Wire):
    """INFO from a route or gateway peer (nats-server's ``Info``)."""

    server_id: Name = ""
    server_name: Name = ""
    version: Name = ""
    proto: Int = 0
    git_commit: Name = ""
    go: Name = ""
    host: Name = ""
    port: Int = 0
    headers: bool = False
    auth_required: bool = False
    tls_required: bool = False
    tls_verify: bool = False
    tls_available: bool = False
    max_payload: Int32 = 0
    jetstream: bool = False
    ip: Name = ""
    client_id: Annotated[int, Field(ge=0, le=2**64 - 1)] = 0
    client_ip: Name = ""
    nonce: Name = ""
    cluster: Name = ""
    cluster_dynamic: bool = False
    domain: Name = ""
    connect_urls: StrList | None = None
    ws_connect_urls: StrList | None = None
    ldm: bool = False
    compression: Name = ""
    connect_info: bool = False
    remote_account: Name = ""
    acc_is_sys: bool = False
    api_lvl: Int = 0
    import_: SubjectPermission | None = Field(None, alias="import")
    export: SubjectPermission | None = None
    lnoc: bool = False
    lnocu: bool = False
    info_on_connect: bool = False
    route_pool_size: Int = 0
    route_pool_idx: Int = 0
    route_account: Name = ""
    route_acc_add_reqid: Name = ""
    gossip_mode: Byte = 0
    gateway: Name = ""
    gateway_urls: StrList | None = None
    gateway_url: Name = ""
    gateway_cmd: Byte = 0
    gateway_cmd_payload: Annotated[Str, AfterValidator(_base64)] = ""
    gateway_nrp: bool = False
    gateway_iom: bool = False
    leafnode_urls: StrList | None = None
    xkey: Name = ""

    def cmd_payload(self) -> bytes | None:
        """The decoded ``gateway_cmd_payload`` (an account name), None when absent."""
        return base64.b64decode(self.gateway_cmd_payload) if self.gateway_cmd_payload else None


# --- parsing -----------------------------------------------------------------------------------

# A complete JSON string (escapes included); what is left outside them is structure.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects, without parsing it (linear, C-speed)."""
    structure = _JSON_STRING.sub(b"", raw).translate(None, _BRACKETS)
    if not structure:
        return 0
    return max(accumulate(map(_DELTA.__getitem__, structure)))


M = TypeVar("M", bound=_Wire)


def parse(raw: bytes, model: type[M]) -> M:
    """Decode one CONNECT/INFO body into ``model``; any problem is a :class:`WireError`."""
    if json_depth(raw) > MAX_DEPTH:
        raise WireError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        doc = json.loads(raw.decode("utf-8", "replace"))
    except RecursionError:  # pragma: no cover - json_depth keeps nesting far below the limit
        raise WireError("JSON nested too deeply") from None
    except ValueError as exc:
        raise WireError(f"invalid JSON: {exc}") from None
    if _SURROGATE_ESCAPE(raw) is not None:
        doc = _clean(doc)
    if doc is None:
        doc = {}  # Go's json.Unmarshal of `null` into a struct changes nothing
    if not isinstance(doc, dict):
        raise WireError(f"expected a JSON object, got {type(doc).__name__}")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise WireError(_describe(exc)) from None
    except RecursionError:  # pragma: no cover - see above
        raise WireError("JSON nested too deeply") from None


# A \uD800-\uDFFF escape: json.loads keeps a lone one as a surrogate, which cannot be encoded.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]").search


def _clean(value: Any) -> Any:
    """Lone surrogates become U+FFFD everywhere in a decoded document, as Go decodes them."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _describe(exc: ValidationError) -> str:
    """The first problems, named by field, short enough for one log line."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "document"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")

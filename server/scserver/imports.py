"""Account exports and imports: the only way a message crosses from one account to another.

This follows nats-server (``accounts.go``, ``client.go``) in shape, so a supercluster that mixes
both servers agrees on what travels where:

* A **service import** is an internal subscription in the importing account on the local subject
  (``addServiceImportSub``). A request published there is re-published, at the server where it
  entered, into the exporting account on the export subject, with its reply replaced by a fresh
  ``_R_.<prefix>.<id>`` subject. That reply is tracked in the exporter (a *response import*,
  ``addRespServiceImport``) behind one wildcard subscription ``_R_.<prefix>.>``, whose interest
  travels over routes and gateways like any other, so an answer from anywhere comes back to this
  server and is delivered in the requester's account on the original reply subject. Singleton
  responses end the tracking after the first answer; streamed and chunked ones keep it until the
  export's response threshold passes without an answer (chunked also ends on an empty message).
  Requests that arrive over a route or gateway are never imported again: the server where they
  entered already did that.
* A **stream import** is a set of *shadow subscriptions*: when a client of the importing account
  subscribes to a subject the import covers, a subscription on the matching export subject is
  added to the exporting account (``addShadowSubscriptions``). Its interest propagates like any
  other, a message published in the exporter anywhere in the supercluster reaches it, and it is
  delivered to the client with the subject rewritten (prefix or ``to``).
* Every account except the system account gets nats-server's implicit service imports from
  ``$SYS`` (``registerSystemImports``): ``$SYS.REQ.ACCOUNT.PING.CONNZ``, ``…PING.STATZ``,
  ``$SYS.REQ.SERVER.PING.CONNZ`` and ``$SYS.REQ.USER.INFO``, answered for that account only.

Configuration faults (unknown accounts, imports of subjects not exported to the importer,
cycles, bad prefixes, bad mappings) are refused at load with nats-server's wording.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from scserver.connection import SYSTEM
from scserver.internal_client import InternalClient
from scserver.log import logger
from scserver.mapping import (
    MappingError,
    Mappings,
    SubjectTransform,
    is_subset,
    parse_mappings,
    tokenize_wildcards,
    untokenize,
)
from scserver.protocol.parser import CLIENT, GATEWAY, ROUTE
from scserver.subjects import is_valid_subject, subjects_collide
from scserver.subscription import Subscription

__all__ = ["LinkConfig", "Links", "apply", "check_config", "parse_config"]

SINGLETON, STREAMED, CHUNKED = "Singleton", "Streamed", "Chunked"
DEFAULT_RESPONSE_THRESHOLD = 120.0
REPLY_PREFIX = b"_R_."
_B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_USER_INFO = "$SYS.REQ.USER.INFO"


def _rand62(n: int) -> bytes:
    return bytes(_B62[b % 62] for b in secrets.token_bytes(n))


# ----------------------------------------------------------------------------------------------
# configuration


@dataclass(slots=True)
class Export:
    """A stream or service export; ``approved`` None means public."""

    kind: str
    subject: str
    approved: list[str] | None = None
    token_pos: int = 0
    response_type: str = SINGLETON
    threshold: float = DEFAULT_RESPONSE_THRESHOLD


@dataclass(slots=True)
class Import:
    """A stream or service import as configured (``account``/``subject`` name the export)."""

    kind: str
    account: str
    subject: str
    to: str = ""
    prefix: str = ""
    share: bool = False


@dataclass(slots=True)
class LinkConfig:
    """One account's exports, imports and mappings, parsed from its block."""

    exports: list[Export] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    mappings: Mappings | None = None


def _go_duration(text: str) -> float:
    """Go's time.ParseDuration for the units a threshold uses."""
    import re

    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(text)
    return sum(float(a) * units[b] for a, b in parts)


def _parse_export(entry: Any) -> tuple[Export | None, list[str]]:
    errors: list[str] = []
    if not isinstance(entry, dict):
        return None, [f"Export Items should be a map with type entry, got {type(entry).__name__}"]
    exp: Export | None = None
    accounts: list[str] | None = None
    rt: str | None = None
    thresh: float | None = None
    pos = 0
    for key, value in entry.items():
        lk = key.lower()
        if lk in ("stream", "service"):
            if exp is not None:
                errors.append(f'Detected {lk} "{value}" but already saw a {exp.kind}')
                continue
            if not isinstance(value, str):
                errors.append(f"Expected {lk} name to be string, got {type(value).__name__}")
                continue
            exp = Export(lk, value)
        elif lk in ("response", "response_type"):
            if rt is not None:
                errors.append("Duplicate response type definition")
                continue
            text = str(value).lower()
            rt = {
                "single": SINGLETON,
                "singleton": SINGLETON,
                "stream": STREAMED,
                "chunk": CHUNKED,
                "chunked": CHUNKED,
            }.get(text, "")
            if not rt:
                errors.append(f'Unknown response type: "{value}"')
        elif lk in ("threshold", "response_threshold", "response_max_time", "response_time"):
            try:
                thresh = _go_duration(str(value))
            except ValueError:
                errors.append(
                    f'Expected response threshold to be a parseable time duration, got "{value}"'
                )
        elif lk == "accounts":
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                errors.append("Export accounts should be an array of account names")
                continue
            accounts = list(value)
        elif lk == "account_token_position":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                errors.append("account_token_position must be a positive integer")
                continue
            pos = value
        elif lk in ("latency", "allow_trace"):
            continue
        else:
            errors.append(f'unknown field "{key}"')
    if exp is None:
        return None, errors
    if exp.kind == "stream" and (rt or thresh is not None):
        errors.append("Detected response directive on non-service")
    exp.approved = accounts
    exp.token_pos = pos
    if rt:
        exp.response_type = rt
    if thresh is not None:
        exp.threshold = thresh
    return exp, errors


def _parse_import(entry: Any) -> tuple[Import | None, list[str]]:
    errors: list[str] = []
    if not isinstance(entry, dict):
        return None, [f"Import Items should be a map with type entry, got {type(entry).__name__}"]
    imp: Import | None = None
    to = prefix = ""
    share = False
    for key, value in entry.items():
        lk = key.lower()
        if lk in ("stream", "service"):
            if imp is not None:
                errors.append(f"Detected {lk} but already saw a {imp.kind}")
                continue
            if not isinstance(value, dict):
                errors.append(
                    f"{lk.capitalize()} entry should be an account map, got {type(value).__name__}"
                )
                continue
            acc = subj = ""
            for ak, av in value.items():
                if ak.lower() == "account":
                    acc = str(av)
                elif ak.lower() == "subject":
                    subj = str(av)
            if not acc or not subj:
                errors.append("Expect an account name and a subject")
                continue
            imp = Import(lk, acc, subj)
        elif lk == "prefix":
            prefix = str(value)
        elif lk == "to":
            to = str(value)
        elif lk == "share":
            share = bool(value)
        elif lk == "allow_trace":
            continue
        else:
            errors.append(f'unknown field "{key}"')
    if imp is None:
        return None, errors
    if imp.kind == "stream":
        if to and prefix:
            errors.append("Stream import can not have a 'prefix' and a 'to' property")
        imp.to, imp.prefix = to, prefix
    else:
        imp.to = to or imp.subject
        imp.share = share
    return imp, errors


def parse_config(
    exports: Any, imports: Any, mappings: Any, cluster: str = ""
) -> tuple[LinkConfig, list[tuple[str, str]]]:
    """Parse one account's raw blocks; errors are (block name, message)."""
    cfg = LinkConfig()
    errors: list[tuple[str, str]] = []
    for entry in exports or []:
        exp, errs = _parse_export(entry)
        errors.extend(("exports", e) for e in errs)
        if exp is not None:
            cfg.exports.append(exp)
    for entry in imports or []:
        imp, errs = _parse_import(entry)
        errors.extend(("imports", e) for e in errs)
        if imp is not None:
            cfg.imports.append(imp)
    if mappings is not None:
        table, merrs = parse_mappings(mappings, cluster)
        errors.extend(("mappings", e) for _, e in merrs)
        if table:
            cfg.mappings = table
    return cfg, errors


def _approved(exports: list[Export], kind: str, importer: str, subject: str) -> bool:
    """nats-server's check{Stream,Service}ExportApproved: exact subject first, then any export
    the import subject is a subset of."""
    cands = [e for e in exports if e.kind == kind]
    tokens = subject.split(".")
    chosen = next((e for e in cands if e.subject == subject), None)
    if chosen is None:
        chosen = next((e for e in cands if is_subset(tokens, e.subject.split("."))), None)
        if chosen is None:
            return False
    if chosen.token_pos > 0:
        return chosen.token_pos <= len(tokens) and tokens[chosen.token_pos - 1] == importer
    if not chosen.approved:
        return True  # no account list (or an empty one) is a public export
    return importer in chosen.approved


def _collide(a: str, b: str) -> bool:
    return subjects_collide(a.encode(), b.encode())


def _subset(a: str, b: str) -> bool:
    return is_subset(a.split("."), b.split("."))


class _Graph:
    """The imports added so far, for nats-server's incremental cycle checks."""

    def __init__(self, configs: dict[str, LinkConfig]) -> None:
        self.configs = configs
        # account -> [(from local subject, to export subject, exporting account)]
        self.services: dict[str, list[tuple[str, str, str]]] = {}
        # account -> [(to local subject, exporting account)]
        self.streams: dict[str, list[tuple[str, str]]] = {}

    def service_cycle(self, acc: str, visited: set[str], subject: str, depth: int = 0) -> bool:
        if depth > 1024:
            return True
        for frm, to, dest in self.services.get(acc, []):
            if _collide(subject, to):
                if dest in visited:
                    return True
                visited.add(acc)
                f = frm if _subset(frm, subject) else subject
                if self.service_cycle(dest, visited, f, depth + 1):
                    return True
        return False

    def stream_cycle(self, acc: str, visited: set[str], to: str, depth: int = 0) -> bool:
        if depth > 1024:
            return True
        cfg = self.configs.get(acc)
        exports = cfg.exports if cfg else []
        if not any(e.kind == "stream" and _subset(to, e.subject) for e in exports):
            return False
        for sto, dest in self.streams.get(acc, []):
            if _collide(to, sto):
                if dest in visited:
                    return True
                visited.add(acc)
                t = sto if _subset(sto, to) else to
                if self.stream_cycle(dest, visited, t, depth + 1):
                    return True
        return False


def check_config(configs: dict[str, LinkConfig]) -> list[tuple[str, str, str]]:
    """Cross-account checks in nats-server's order; (account, block, message) per fault."""
    errors: list[tuple[str, str, str]] = []
    for name, cfg in configs.items():
        for exp in cfg.exports:
            for other in exp.approved or []:
                if other not in configs:
                    errors.append(
                        (name, "exports", f'"{other}" account not defined for {exp.kind} export')
                    )
            if not is_valid_subject(exp.subject.encode()):
                errors.append(
                    (
                        name,
                        "exports",
                        f'Error adding {exp.kind} export "{exp.subject}": invalid subject',
                    )
                )
    graph = _Graph(configs)
    for kind in ("stream", "service"):
        for name, cfg in configs.items():
            seen: set[tuple[str, str]] = set()
            for imp in cfg.imports:
                if imp.kind != kind or imp.account not in configs:
                    continue  # a missing account is reported by the options checks
                try:
                    err = _check_import(graph, configs, name, imp, seen)
                except (MappingError, IndexError, ValueError) as exc:
                    err = str(exc) or "invalid import"
                if err:
                    errors.append(
                        (name, "imports", f'Error adding {kind} import "{imp.subject}": {err}')
                    )
    return errors


def _check_import(
    graph: _Graph, configs: dict[str, LinkConfig], name: str, imp: Import, seen: set
) -> str | None:
    exporter = configs[imp.account]
    if imp.kind == "stream":
        if not is_valid_subject(imp.subject.encode()) or not _approved(
            exporter.exports, "stream", name, imp.subject
        ):
            return "stream import not authorized"
        to = imp.to
        if imp.prefix:
            if "*" in imp.prefix.split(".") or ">" in imp.prefix.split("."):
                return "stream import prefix can not contain wildcard tokens"
            to = imp.prefix.rstrip(".") + "." + imp.subject
        to = to or imp.subject
        if graph.stream_cycle(imp.account, {name}, to) or graph.stream_cycle(
            imp.account, {name}, imp.subject
        ):
            return "import forms a cycle"
        try:
            _stream_transform(imp.subject, to)
        except MappingError as exc:
            return (
                "failed to create mapping transform for stream import subject from "
                f'"{imp.subject}" to "{to}": {exc}'
            )
        if (imp.account, imp.subject) in seen:
            return "stream import already exists"
        seen.add((imp.account, imp.subject))
        graph.streams.setdefault(name, []).append((to, imp.account))
        return None
    frm, to = imp.to, imp.subject
    if not is_valid_subject(frm.encode()) or not is_valid_subject(to.encode()):
        return "invalid subject"
    if not _approved(exporter.exports, "service", name, to):
        return "service import not authorized"
    from_t = untokenize(frm)[0] if "*" in to.split(".") or to.endswith(">") else frm
    if graph.service_cycle(imp.account, {name}, from_t):
        return "import forms a cycle"
    try:
        _service_transform(frm, to)
    except MappingError as exc:
        return (
            "failed to create mapping transform for service import subject from "
            f'"{frm}" to "{to}": {exc}'
        )
    if (imp.account, frm) in seen:
        return f'duplicate service import subject "{frm}"'
    seen.add((imp.account, frm))
    graph.services.setdefault(name, []).append((untokenize(frm)[0], to, imp.account))
    return None


def _has_wc(subject: str) -> bool:
    toks = subject.split(".")
    return "*" in toks or toks[-1] == ">"


def _stream_transform(frm: str, to: str) -> tuple[SubjectTransform | None, bool, str]:
    """(transform, use the published subject, literal local subject) for a stream import."""
    if _has_wc(frm):
        if to == frm:
            return None, True, to
        tr = SubjectTransform(frm, tokenize_wildcards(to), strict=True)
        return tr, False, untokenize(to)[0]
    return None, False, to


def _service_transform(frm: str, to: str) -> tuple[SubjectTransform | None, bool, str]:
    """(transform local->export, use the published subject, local subject) for a service."""
    if _has_wc(to):
        if to == frm:
            return None, True, frm
        to_u = untokenize(to)[0]
        tr = SubjectTransform(to_u, tokenize_wildcards(frm), strict=True).reverse()
        return tr, False, untokenize(frm)[0]
    return None, False, frm


def check_options(opts: Any) -> list[tuple[str, str, str]]:
    """Parse and check every account's links from options; store them on ``opts``.

    Returns (account, block, message) per fault, for the options layer to locate and report.
    """
    configs: dict[str, LinkConfig] = {}
    errors: list[tuple[str, str, str]] = []
    g_cfg, g_errs = parse_config(None, None, opts.mappings)
    configs["$G"] = g_cfg
    errors.extend(("$G", block, msg) for block, msg in g_errs)
    for name, acc in opts.accounts.items():
        cfg, errs = parse_config(acc.exports, acc.imports, acc.mappings)
        configs[name] = cfg
        errors.extend((name, block, msg) for block, msg in errs)
    if not errors:
        errors.extend(check_config(configs))
    opts.link_configs = {
        k: v for k, v in configs.items() if v.exports or v.imports or v.mappings is not None
    }
    return errors


# ----------------------------------------------------------------------------------------------
# runtime


class AccountClient(InternalClient[Any]):
    """An account's internal connection: owns import subscriptions and publishes for them."""

    def __init__(self, server: Any, account: Any) -> None:
        super().__init__(server, account)
        self._sid = 0

    def subscribe(
        self, subject: bytes, handler: Any, queue: bytes | None = None, propagate: bool = True
    ) -> Subscription:
        self._sid += 1
        sub = Subscription(subject, queue, b"i%d" % self._sid, self, self.account)
        self.add_subscription(sub, handler, propagate)
        return sub

    def deliver_internal(
        self,
        sub: Subscription,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        msg: bytes,
        src: Any = None,
    ) -> bool:
        handler = self.handlers.get(sub)
        if handler is None:
            return False
        return bool(handler(sub, src, subject, reply, hdr_len, msg))


@dataclass(slots=True)
class ServiceImport:
    importer: Any
    exporter: Any
    local: str  # the subscribed local subject (nats-server's si.from)
    remote: str  # the export subject (si.to)
    tr: SubjectTransform | None
    use_pub: bool
    export: Export | None
    share: bool = False
    system: bool = False
    sub: Subscription | None = None


@dataclass(slots=True)
class StreamImport:
    importer: Any
    exporter: Any
    remote: str  # export subject (si.from)
    local: str  # local subject (si.to), wildcards untokenized
    tr: SubjectTransform | None
    use_pub: bool
    rtr: SubjectTransform | None = None


@dataclass(slots=True)
class Response:
    """A pending reply mapping in the exporter: ``_R_`` subject -> requester's reply."""

    importer: Any
    reply: bytes
    response_type: str
    export: Export | None
    ts: float


class Links:
    """One account's exports, imports, pending responses and shadow subscriptions."""

    def __init__(self, runtime: Runtime, account: Any) -> None:
        self.runtime = runtime
        self.account = account
        self.client = AccountClient(runtime.server, account)
        self.exports: list[Export] = []
        self.service_imports: list[ServiceImport] = []
        self.stream_imports: list[StreamImport] = []
        self.responses: dict[bytes, Response] = {}
        self.resp_prefix: bytes | None = None
        self.shadows: dict[Subscription, list[Subscription]] = {}
        #: requester's reply -> {tracked _R_ subject: exporter links} (nats-server's rrMap)
        self.reverse: dict[bytes, dict[bytes, Links]] = {}
        self.timers: dict[int, Any] = {}

    # --- service responses ------------------------------------------------------------------

    def new_response(self, importer: Any, reply: bytes, si: ServiceImport) -> bytes:
        if self.resp_prefix is None:
            self.resp_prefix = REPLY_PREFIX + _rand62(6) + b"."
            self.client.subscribe(self.resp_prefix + b">", self._on_response)
        nrr = self.resp_prefix + _rand62(6)
        export = si.export
        rt = export.response_type if export else SINGLETON
        self.responses[nrr] = Response(importer, reply, rt, export, time.monotonic())
        # The reverse entry lets the requester's unsubscribe end the tracking early.
        if importer.links is not None:
            importer.links.reverse.setdefault(reply, {})[nrr] = self
        self._arm(export)
        return nrr

    def drop_response(self, nrr: bytes) -> None:
        r = self.responses.pop(nrr, None)
        if r is None or r.importer.links is None:
            return
        entries = r.importer.links.reverse.get(r.reply)
        if entries is not None:
            entries.pop(nrr, None)
            if not entries:
                del r.importer.links.reverse[r.reply]

    def reply_interest_lost(self, subject: bytes) -> None:
        """A client of this (requesting) account unsubscribed: drop the responses tracked for
        reply subjects nobody here listens to any more (``checkForReverseEntry``)."""
        if b"*" in subject or b">" in subject:
            pattern = subject.decode(errors="surrogateescape").split(".")
            replies = [
                r
                for r in self.reverse
                if is_subset(r.decode(errors="surrogateescape").split("."), pattern)
            ]
        else:
            replies = [subject] if subject in self.reverse else []
        sublist = self.account.sublist
        for reply in replies:
            result = sublist.match(reply)
            if result.psubs or result.qsubs:
                continue
            for nrr, exporter in list(self.reverse.get(reply, {}).items()):
                exporter.drop_response(nrr)

    def _arm(self, export: Export | None) -> None:
        key = id(export)
        if key in self.timers:
            return
        threshold = export.threshold if export else DEFAULT_RESPONSE_THRESHOLD
        loop = self.runtime.server.loop
        if loop is None:
            return
        self.timers[key] = loop.call_later(threshold, self._expire, export)

    def _expire(self, export: Export | None) -> None:
        self.timers.pop(id(export), None)
        threshold = export.threshold if export else DEFAULT_RESPONSE_THRESHOLD
        cutoff = time.monotonic() - threshold
        left = 0
        for k, r in list(self.responses.items()):
            if r.export is export:
                if r.ts <= cutoff:
                    self.drop_response(k)
                else:
                    left += 1
        if left:
            self._arm(export)

    def _on_response(
        self,
        sub: Subscription,
        src: Any,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        msg: bytes,
    ) -> bool:
        r = self.responses.get(subject)
        if r is None:
            return False
        importer = r.importer
        rt = self.runtime
        rt.depth += 1
        try:
            delivered = rt.publish(importer, r.reply, None, hdr_len, msg)
        finally:
            rt.depth -= 1
        if not delivered or r.response_type == SINGLETON or (hdr_len < 0 and not msg):
            self.drop_response(subject)
        else:
            r.ts = time.monotonic()
        return delivered

    # --- stream import shadows ---------------------------------------------------------------

    def add_shadows(self, sub: Subscription) -> None:
        """A client subscribed: shadow it in every exporter whose import the subject covers."""
        subj = sub.subject.decode(errors="surrogateescape")
        tokens = subj.split(".")
        has_wc = "*" in tokens or tokens[-1] == ">"
        made: list[Subscription] = []
        for im in self.stream_imports:
            im_tokens = im.local.split(".")
            if subj == im.local:
                target = im.remote
            elif is_subset(tokens, im_tokens):
                target = self._reverse(im, subj)
            elif has_wc and is_subset(im_tokens, tokens):
                target = im.remote
            elif has_wc:
                overlap = _overlap(tokens, im_tokens)
                if overlap is None:
                    continue
                target = self._reverse(im, overlap)
            else:
                continue
            if target is None:
                continue
            made.append(self.runtime.shadow(im, sub, target.encode(errors="surrogateescape")))
        if made:
            self.shadows[sub] = made

    def _reverse(self, im: StreamImport, local: str) -> str | None:
        if im.use_pub:
            return local
        if im.tr is None:
            return im.remote
        if im.rtr is None:
            try:
                im.rtr = im.tr.reverse()
            except (MappingError, IndexError):
                return None
        return im.rtr.transform(local.encode(errors="surrogateescape")).decode(
            errors="surrogateescape"
        )

    def remove_shadows(self, sub: Subscription) -> None:
        for shadow in self.shadows.pop(sub, ()):
            self.runtime.unshadow(shadow)


def _overlap(tokens: list[str], im_tokens: list[str]) -> str | None:
    """nats-server's narrowing of a wildcard subscription to the part an import covers."""
    t = list(tokens)
    n = len(im_tokens)
    for i, tok in enumerate(t):
        if i >= n:
            break
        if tok == "*" and im_tokens[i] != ">":
            t[i] = im_tokens[i]
    if t[-1] == ">" and n >= len(t):
        last = len(t) - 1
        t[last] = im_tokens[last]
        if n > len(t):
            t.extend(im_tokens[len(t) :])
    if is_subset(t, im_tokens):
        return ".".join(t)
    return None


class _Shadow:
    """The connection of one shadow subscription: delivers to the client with the local subject."""

    kind = SYSTEM
    echo = True
    headers = True

    __slots__ = ("runtime", "im", "client", "client_sub")

    def __init__(self, runtime: Runtime, im: StreamImport, client_sub: Subscription) -> None:
        self.runtime = runtime
        self.im = im
        self.client = client_sub.conn
        self.client_sub = client_sub

    @property
    def closed(self) -> bool:
        return bool(self.client.closed)

    @property
    def batches(self) -> bool:
        """Runs of messages may be delivered at once unless the client's sub has a max."""
        return not self.client_sub.max

    def deliver_batch_internal(
        self, sub: Subscription, subject: bytes, msgs: list[bytes], total: int
    ) -> None:
        if self.runtime.depth:
            return
        from scserver.routing import deliver_batch

        deliver_batch(self.client, self.client_sub, self._local(subject), msgs, total)

    def _local(self, subject: bytes) -> bytes:
        im = self.im
        if im.tr is not None:
            return im.tr.transform(subject)
        if im.use_pub:
            return subject
        return im.local.encode(errors="surrogateescape")

    def deliver_internal(
        self,
        sub: Subscription,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        msg: bytes,
        src: Any = None,
    ) -> bool:
        if self.runtime.depth:
            return False  # a message a service import re-published is not re-exported
        from scserver.routing import deliver

        return deliver(self.client, self.client_sub, self._local(subject), reply, hdr_len, msg)


class Runtime:
    """Every account's links on one server, rebuilt from options at start and on reload."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.links: dict[str, Links] = {}
        #: >0 while a service import or response is being re-published (pmrMsgImportedFromService).
        self.depth = 0
        #: exports whose requests are being processed, to refuse runtime cycles.
        self.stack: list[Any] = []

    # --- publishing ------------------------------------------------------------------------

    def publish(
        self, account: Any, subject: bytes, reply: bytes | None, hdr_len: int, msg: bytes
    ) -> bool:
        from scserver.routing import process_msg

        links = account.links
        src = links.client if links is not None else self.server.system.client
        return process_msg(self.server, src, account, subject, reply, hdr_len, msg)

    def on_request(
        self,
        si: ServiceImport,
        sub: Subscription,
        src: Any,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        msg: bytes,
    ) -> bool:
        """A request on an imported service's local subject (``processServiceImport``)."""
        if src is None or src.kind == ROUTE or src.kind == GATEWAY:
            return False
        key = id(si.export) if si.export is not None else id(si)
        if key in self.stack:
            return False
        if si.local == _USER_INFO and si.system:
            return self._user_info(si, src, reply)
        if si.tr is not None:
            to = si.tr.transform(subject)
        elif si.use_pub:
            to = subject
        else:
            to = si.remote.encode(errors="surrogateescape")
        exporter = si.exporter
        if exporter.mappings is not None:
            mapped = exporter.mappings.select(to)
            if mapped is None:
                return False
            to = mapped
        nrr = None
        links = exporter.links
        if reply:
            nrr = links.new_response(si.importer, reply, si)
        hdr_len, msg = _with_request_info(src, si, hdr_len, msg)
        self.stack.append(key)
        self.depth += 1
        try:
            delivered = self.publish(exporter, to, nrr, hdr_len, msg)
        finally:
            self.depth -= 1
            self.stack.pop()
        if not delivered and nrr is not None:
            links.drop_response(nrr)
        return delivered

    def _user_info(self, si: ServiceImport, src: Any, reply: bytes | None) -> bool:
        """``$SYS.REQ.USER.INFO``: answered by the server the client is connected to."""
        if not reply or src.kind != CLIENT:
            return bool(reply)
        system = self.server.system
        data: dict[str, Any] = {"user": src.username or "", "account": src.account.name}
        data["account_name"] = src.account.name
        perms = getattr(src.user, "permissions", None) if src.user is not None else None
        if perms:
            data["permissions"] = _public_permissions(perms)
        doc = {"server": system.server_info() if system else {}, "data": data}
        body = json.dumps(doc, separators=(",", ":")).encode()
        account = src.account
        self.server.loop.call_soon(self.publish, account, reply, None, -1, body)
        return True

    # --- shadows -----------------------------------------------------------------------------

    def shadow(self, im: StreamImport, client_sub: Subscription, subject: bytes) -> Subscription:
        conn = _Shadow(self, im, client_sub)
        sub = Subscription(subject, client_sub.queue, client_sub.sid, conn, im.exporter)
        im.exporter.sublist.insert(sub)
        self.server.interest_added(im.exporter, sub)
        return sub

    def unshadow(self, sub: Subscription) -> None:
        sub.account.sublist.remove(sub)
        self.server.interest_removed(sub.account, sub)

    # --- building ------------------------------------------------------------------------------

    def teardown(self) -> None:
        for links in self.links.values():
            for shadows in links.shadows.values():
                for s in shadows:
                    self.unshadow(s)
            links.shadows.clear()
            links.client.unsubscribe_all()
            for t in links.timers.values():
                t.cancel()
            links.account.links = None
        self.links.clear()
        for acc in self.server.accounts.values():
            acc.mappings = None

    def build(self, opts: Any) -> None:
        server = self.server
        self.teardown()
        configs: dict[str, LinkConfig] = getattr(opts, "link_configs", None) or {}
        sys_acc = server.system_account
        for name, cfg in configs.items():
            acc = server.accounts.get(name)
            if acc is None:
                continue
            if cfg.mappings is not None:
                cfg.mappings.cluster = server.cluster_name or ""
                acc.mappings = cfg.mappings
            if cfg.exports or cfg.imports:
                self._links(acc).exports = list(cfg.exports)
        for name, cfg in configs.items():
            acc = server.accounts.get(name)
            if acc is None:
                continue
            for imp in cfg.imports:
                exporter = server.accounts.get(imp.account)
                if exporter is None:
                    continue
                try:
                    if imp.kind == "stream":
                        self._add_stream_import(acc, exporter, imp)
                    else:
                        self._add_service_import(acc, exporter, imp, configs)
                except MappingError as exc:  # refused at load; never expected here
                    logger.error("Import %s in account %s: %s", imp.subject, name, exc)
        if sys_acc is not None and server.system is not None:
            self.add_system_exports(sys_acc)
            for acc in list(server.accounts.values()):
                if acc is not sys_acc:
                    self.add_system_imports(acc)
        for acc in server.accounts.values():
            links = acc.links
            if links is not None and links.stream_imports:
                for c in list(acc.clients):
                    for s in list(c.subs.values()):
                        links.add_shadows(s)
        for c in list(server.clients.values()):
            if getattr(c, "connected", False):
                c.update_pub_path()

    def _links(self, acc: Any) -> Links:
        links = acc.links
        if links is None:
            links = acc.links = Links(self, acc)
            self.links[acc.name] = links
        return links

    def _add_stream_import(self, acc: Any, exporter: Any, imp: Import) -> None:
        to = imp.to
        if imp.prefix:
            to = imp.prefix.rstrip(".") + "." + imp.subject
        to = to or imp.subject
        tr, use_pub, local = _stream_transform(imp.subject, to)
        self._links(acc).stream_imports.append(
            StreamImport(acc, exporter, imp.subject, local, tr, use_pub)
        )

    def _add_service_import(
        self, acc: Any, exporter: Any, imp: Import, configs: dict[str, LinkConfig]
    ) -> None:
        frm, to = imp.to, imp.subject
        tr, use_pub, local = _service_transform(frm, to)
        cfg = configs.get(exporter.name)
        export = _find_export(cfg.exports if cfg else [], "service", to)
        si = ServiceImport(acc, exporter, local, to, tr, use_pub, export, imp.share)
        self._subscribe_import(si)

    def _subscribe_import(self, si: ServiceImport) -> None:
        links = self._links(si.importer)
        self._links(si.exporter)
        links.service_imports.append(si)

        def handler(
            sub: Subscription, src: Any, subject: bytes, reply: Any, h: int, m: bytes
        ) -> bool:
            return self.on_request(si, sub, src, subject, reply, h, m)

        si.sub = links.client.subscribe(si.local.encode(errors="surrogateescape"), handler)

    def add_system_exports(self, sys_acc: Any) -> None:
        """The system account's own exports and its USER.INFO import (``addSystemAccountExports``);
        exports the configuration already covers are not added again."""
        links = self._links(sys_acc)
        for export in (
            Export("service", "$SYS.REQ.ACCOUNT.*.CONNZ", None, 4, STREAMED),
            Export("service", "$SYS.REQ.ACCOUNT.*.STATZ", None, 4, STREAMED),
            Export("service", "$SYS.DEBUG.SUBSCRIBERS"),
            Export("service", "$SYS.REQ.USER.*.INFO"),
        ):
            if not any(_subset(export.subject, e.subject) for e in links.exports):
                links.exports.append(export)
        user = Export("service", "$SYS.REQ.USER.*.INFO")
        remote = f"$SYS.REQ.USER.{sys_acc.name}.INFO"
        si = ServiceImport(sys_acc, sys_acc, _USER_INFO, remote, None, False, user, True, True)
        self._subscribe_import(si)

    def add_system_imports(self, acc: Any) -> None:
        """nats-server's ``registerSystemImports`` for one account."""
        sys_acc = self.server.system_account
        if sys_acc is None or acc is sys_acc:
            return
        links = self._links(acc)
        if any(si.system for si in links.service_imports):
            return
        name = acc.name
        streamed = Export("service", "$SYS.REQ.ACCOUNT.*.CONNZ", None, 4, STREAMED)
        statz = Export("service", "$SYS.REQ.ACCOUNT.*.STATZ", None, 4, STREAMED)
        user = Export("service", "$SYS.REQ.USER.*.INFO")
        for local, remote, export, share in (
            ("$SYS.REQ.ACCOUNT.PING.CONNZ", f"$SYS.REQ.ACCOUNT.{name}.CONNZ", streamed, False),
            ("$SYS.REQ.SERVER.PING.CONNZ", f"$SYS.REQ.ACCOUNT.{name}.CONNZ", streamed, False),
            ("$SYS.REQ.ACCOUNT.PING.STATZ", f"$SYS.REQ.ACCOUNT.{name}.STATZ", statz, False),
            (_USER_INFO, f"$SYS.REQ.USER.{name}.INFO", user, True),
        ):
            si = ServiceImport(acc, sys_acc, local, remote, None, False, export, share, True)
            self._subscribe_import(si)

    # --- monitoring ------------------------------------------------------------------------------

    def account_detail(self, acc: Any) -> dict[str, Any]:
        """The ``mappings``/``exports``/``imports``/``responses`` of /accountz (omitted if empty)."""
        doc: dict[str, Any] = {}
        if acc.mappings is not None and acc.mappings:
            doc["mappings"] = acc.mappings.monitor_doc()
        links = acc.links
        if links is None:
            return doc
        exports = []
        for e in links.exports:
            entry: dict[str, Any] = {"subject": e.subject, "type": e.kind}
            if e.kind == "service":
                entry["response_type"] = e.response_type
            if e.approved:
                entry["approved_accounts"] = list(e.approved)
            exports.append(entry)
        if exports:
            doc["exports"] = exports
        imports: list[dict[str, Any]] = []
        for im in links.stream_imports:
            imports.append(
                {
                    "subject": im.remote,
                    "account": im.exporter.name,
                    "local_subject": im.local,
                    "type": "stream",
                    "invalid": False,
                    "share": False,
                    "tracking": False,
                }
            )
        for si in links.service_imports:
            imports.append(
                {
                    "subject": si.remote,
                    "account": si.exporter.name,
                    "to": si.local,
                    "local_subject": si.local,
                    "type": "service",
                    "invalid": False,
                    "share": si.share,
                    "tracking": False,
                }
            )
        if imports:
            doc["imports"] = imports
        if links.responses:
            doc["responses"] = {
                k.decode(errors="replace"): {
                    "subject": r.reply.decode(errors="replace"),
                    "account": r.importer.name,
                    "to": k.decode(errors="replace"),
                    "local_subject": k.decode(errors="replace"),
                    # nats-server prints this import's type as a number (jwt.Service = 2).
                    "type": 2,
                    "invalid": False,
                    "share": False,
                    "tracking": False,
                }
                for k, r in links.responses.items()
            }
        return doc


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _public_permissions(raw: dict[str, Any]) -> dict[str, Any]:
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
                            resp["ttl"] = int(_go_duration(str(v2)) * 1e9)
                        except ValueError:
                            pass
            out["responses"] = resp
    return out


def _find_export(exports: list[Export], kind: str, subject: str) -> Export | None:
    for e in exports:
        if e.kind == kind and e.subject == subject:
            return e
    tokens = subject.split(".")
    for e in exports:
        if e.kind == kind and is_subset(tokens, e.subject.split(".")):
            return e
    return None


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


def _with_request_info(src: Any, si: ServiceImport, hdr_len: int, msg: bytes) -> tuple[int, bytes]:
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


def apply(server: Any, opts: Any) -> None:
    """(Re)build every account's mappings, exports and imports from ``opts``."""
    runtime = getattr(server, "links_runtime", None)
    if runtime is None:
        runtime = server.links_runtime = Runtime(server)
    runtime.build(opts)


def client_sub_added(account: Any, sub: Subscription) -> None:
    links = account.links
    if links is not None and links.stream_imports:
        links.add_shadows(sub)


def client_sub_removed(account: Any, sub: Subscription) -> None:
    links = account.links
    if links is not None:
        if links.shadows:
            links.remove_shadows(sub)
        if links.reverse:
            links.reply_interest_lost(sub.subject)

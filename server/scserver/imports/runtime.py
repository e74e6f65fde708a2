"""Exports and imports at run time: every account's links, service imports re-publishing
requests into the exporter, and the response tracking that brings answers back (see the
package docstring for the whole flow)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from scserver.imports.config import (
    DEFAULT_RESPONSE_THRESHOLD,
    SINGLETON,
    STREAMED,
    Export,
    Import,
    LinkConfig,
    find_export,
    service_transform,
    stream_transform,
    subject_subset,
)
from scserver.imports.request_info import public_permissions, with_request_info
from scserver.imports.shadows import ShadowConnection, StreamImport, shadow_targets
from scserver.internal_client import InternalClient
from scserver.log import logger
from scserver.mapping import MappingError, SubjectTransform, is_subset
from scserver.protocol.parser import CLIENT, GATEWAY, ROUTE
from scserver.subscription import Subscription

REPLY_PREFIX = b"_R_."
_B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_USER_INFO = "$SYS.REQ.USER.INFO"


def _rand62(n: int) -> bytes:
    return bytes(_B62[b % 62] for b in secrets.token_bytes(n))


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
        made = [
            self.runtime.shadow(im, sub, target.encode(errors="surrogateescape"))
            for im, target in shadow_targets(self.stream_imports, sub.subject)
        ]
        if made:
            self.shadows[sub] = made

    def remove_shadows(self, sub: Subscription) -> None:
        for shadow in self.shadows.pop(sub, ()):
            self.runtime.unshadow(shadow)


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
        hdr_len, msg = with_request_info(src, si, hdr_len, msg)
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
            data["permissions"] = public_permissions(perms)
        doc = {"server": system.server_info() if system else {}, "data": data}
        body = json.dumps(doc, separators=(",", ":")).encode()
        account = src.account
        self.server.loop.call_soon(self.publish, account, reply, None, -1, body)
        return True

    # --- shadows -----------------------------------------------------------------------------

    def shadow(self, im: StreamImport, client_sub: Subscription, subject: bytes) -> Subscription:
        conn = ShadowConnection(self, im, client_sub)
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
        tr, use_pub, local = stream_transform(imp.subject, to)
        self._links(acc).stream_imports.append(
            StreamImport(acc, exporter, imp.subject, local, tr, use_pub)
        )

    def _add_service_import(
        self, acc: Any, exporter: Any, imp: Import, configs: dict[str, LinkConfig]
    ) -> None:
        frm, to = imp.to, imp.subject
        tr, use_pub, local = service_transform(frm, to)
        cfg = configs.get(exporter.name)
        export = find_export(cfg.exports if cfg else [], "service", to)
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
            if not any(subject_subset(export.subject, e.subject) for e in links.exports):
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

"""Stream imports at run time: shadow subscriptions (nats-server's ``addShadowSubscriptions``).

A client subscribing in an importing account gets a *shadow* subscription in each exporter
whose stream import covers the subject; its interest propagates like any other, and what it
receives is delivered to the client with the subject rewritten. Which shadows a subscription
gets is worked out here without side effects (``shadow_targets``); the runtime subscribes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scserver.connection import SYSTEM
from scserver.core.kinds import INTERNAL
from scserver.mapping import MappingError, SubjectTransform, is_subset
from scserver.subscription import Subscription

if TYPE_CHECKING:
    from scserver.imports.runtime import Runtime


@dataclass(slots=True)
class StreamImport:
    importer: Any
    exporter: Any
    remote: str  # export subject (si.from)
    local: str  # local subject (si.to), wildcards untokenized
    tr: SubjectTransform | None
    use_pub: bool
    rtr: SubjectTransform | None = None


def shadow_targets(
    stream_imports: list[StreamImport], subject: bytes
) -> list[tuple[StreamImport, str]]:
    """The (import, export subject) pairs a client subscription on ``subject`` is shadowed by:
    for each stream import the subject covers, the export subject to subscribe in the exporter
    (the subscription narrowed to what the import covers, mapped back through its transform)."""
    subj = subject.decode(errors="surrogateescape")
    tokens = subj.split(".")
    has_wc = "*" in tokens or tokens[-1] == ">"
    out: list[tuple[StreamImport, str]] = []
    for im in stream_imports:
        im_tokens = im.local.split(".")
        if subj == im.local:
            target = im.remote
        elif is_subset(tokens, im_tokens):
            target = export_subject(im, subj)
        elif has_wc and is_subset(im_tokens, tokens):
            target = im.remote
        elif has_wc:
            overlap = _overlap(tokens, im_tokens)
            if overlap is None:
                continue
            target = export_subject(im, overlap)
        else:
            continue
        if target is not None:
            out.append((im, target))
    return out


def export_subject(im: StreamImport, local: str) -> str | None:
    """The exporter's subject for the importer's ``local`` one (None: the transform cannot be
    reversed, so nothing is shadowed)."""
    if im.use_pub:
        return local
    if im.tr is None:
        return im.remote
    if im.rtr is None:
        try:
            im.rtr = im.tr.reverse()
        except (MappingError, IndexError):
            return None
    return im.rtr.transform(local.encode(errors="surrogateescape")).decode(errors="surrogateescape")


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


class ShadowConnection:
    """The connection of one shadow subscription: delivers to the client with the local subject."""

    kind = SYSTEM
    fanout = INTERNAL
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

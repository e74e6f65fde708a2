"""Which shadow subscriptions a client subscription gets (``scserver.imports.shadows``).

The end-to-end behaviour is in test_imports.py and test_cluster_imports.py against
nats-server; this pins the pure part, nats-server's ``addShadowSubscriptions`` narrowing, on
cases that are awkward to set up over the wire.
"""

from __future__ import annotations

import pytest

from scserver.imports.config import stream_transform
from scserver.imports.shadows import StreamImport, shadow_targets


def stream_import(remote: str, to: str) -> StreamImport:
    tr, use_pub, local = stream_transform(remote, to)
    return StreamImport(None, None, remote, local, tr, use_pub)


PREFIXED = stream_import("news.>", "ext.news.>")  # prefix: "ext"
LITERAL = stream_import("prices.eur", "eur")  # to: "eur"
SAME = stream_import("orders.*", "orders.*")  # no rewrite


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("ext.news.sport", [(PREFIXED, "news.sport")]),  # inside the import
        ("ext.news.>", [(PREFIXED, "news.>")]),  # the import itself
        ("ext.>", [(PREFIXED, "news.>")]),  # covers the whole import
        ("ext.*.sport", [(PREFIXED, "news.sport")]),  # overlap, narrowed
        ("eur", [(LITERAL, "prices.eur")]),
        ("*", [(LITERAL, "prices.eur")]),
        ("orders.7", [(SAME, "orders.7")]),
        (">", [(PREFIXED, "news.>"), (LITERAL, "prices.eur"), (SAME, "orders.*")]),
        ("other.news", []),
        ("ext.sport.news", []),
    ],
)
def test_shadow_targets(subject: str, expected: list[tuple[StreamImport, str]]) -> None:
    got = shadow_targets([PREFIXED, LITERAL, SAME], subject.encode())
    assert [(id(im), target) for im, target in got] == [(id(im), t) for im, t in expected]

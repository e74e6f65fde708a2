"""Exports, imports and subject mappings of `SuperCluster.spec.accounts[]`: checks and config.

The checks are the server's own (``scserver.imports`` and ``scserver.mapping``, the code that
refuses a bad config at load), run on the spec before anything is rendered, so a spec the
servers would refuse becomes an ``InvalidSpec`` condition instead of a crash-looping pod. The
most common mistake -- importing something the other account does not export (to us) -- gets a
message that names both sides.

Rendering writes the same entries into every member's config, in nats-server's syntax.
"""

from __future__ import annotations

import json
from typing import Any

from scserver.imports import check_config, parse_config
from scserver.mapping import is_subset

__all__ = ["check_accounts", "raw_links", "render_links"]


def raw_links(account: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(exports, imports, mappings) of one spec account, as nats-server config values."""
    exports: list[dict[str, Any]] = []
    for e in account.exports:
        entry: dict[str, Any] = {"stream": e.stream} if e.stream else {"service": e.service}
        if e.accounts is not None:
            entry["accounts"] = list(e.accounts)
        if e.response_type:
            entry["response_type"] = e.response_type.lower()
        if e.response_threshold:
            entry["response_threshold"] = e.response_threshold
        exports.append(entry)
    imports: list[dict[str, Any]] = []
    for i in account.imports:
        src = i.stream or i.service
        kind = "stream" if i.stream else "service"
        entry = {kind: {"account": src.account, "subject": src.subject}}
        if i.to:
            entry["to"] = i.to
        if i.prefix:
            entry["prefix"] = i.prefix
        imports.append(entry)
    mappings: dict[str, Any] = {}
    for m in account.mappings:
        mappings[m.source] = [
            {
                "destination": d.subject,
                "weight": d.weight,
                **({"cluster": d.cluster} if d.cluster else {}),
            }
            for d in m.destinations
        ]
    return exports, imports, mappings


def _covering(exports: list[Any], kind: str, subject: str) -> list[Any]:
    tokens = subject.split(".")
    return [
        e
        for e in exports
        if (e.stream if kind == "stream" else e.service) is not None
        and is_subset(tokens, (e.stream or e.service).split("."))
    ]


def check_accounts(accounts: list[Any]) -> None:
    """Raise ``ValueError`` naming the accounts and subjects of the first fault found."""
    by_name = {a.name: a for a in accounts}
    for acc in accounts:
        for imp in acc.imports:
            kind = "stream" if imp.stream else "service"
            src = imp.stream or imp.service
            what = (
                f'account {acc.name!r} imports {kind} "{src.subject}" from account {src.account!r}'
            )
            other = by_name.get(src.account)
            if other is None:
                raise ValueError(f"{what}, which is not declared in spec.accounts")
            covering = _covering(other.exports, kind, src.subject)
            if not covering:
                raise ValueError(
                    f'{what}, but account {src.account!r} has no {kind} export matching "'
                    f'{src.subject}"'
                )
            if not any(
                e.accounts is None or not e.accounts or acc.name in e.accounts for e in covering
            ):
                raise ValueError(
                    f'{what}, but account {src.account!r} exports "{src.subject}" only to '
                    f"{sorted({a for e in covering for a in e.accounts or []})}"
                )
    configs = {}
    for acc in accounts:
        exports, imports, mappings = raw_links(acc)
        cfg, errors = parse_config(exports, imports, mappings or None)
        if errors:
            block, message = errors[0]
            raise ValueError(f"account {acc.name!r} {block}: {message}")
        configs[acc.name] = cfg
    for name, block, message in check_config(configs):
        raise ValueError(f"account {name!r} {block}: {message}")


def render_links(account: Any) -> str:
    """The ``exports``/``imports``/``mappings`` lines of one account block (4-space indent)."""
    exports, imports, mappings = raw_links(account)
    lines: list[str] = []

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    if exports:
        lines.append("    exports: [")
        lines += [f"      {dump(e)}" for e in exports]
        lines.append("    ]")
    if imports:
        lines.append("    imports: [")
        lines += [f"      {dump(i)}" for i in imports]
        lines.append("    ]")
    if mappings:
        lines.append("    mappings {")
        lines += [f"      {dump(src)}: {dump(dests)}" for src, dests in mappings.items()]
        lines.append("    }")
    return "\n".join(lines) + "\n" if lines else ""

"""Exports and imports as configured: parsing an account's blocks and refusing what
nats-server refuses (unknown accounts, unapproved or colliding subjects, cycles, bad prefixes
and mappings), with its wording. Pure data in, data and error texts out: nothing here runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scserver.mapping import (
    MappingError,
    Mappings,
    SubjectTransform,
    is_subset,
    parse_mappings,
    tokenize_wildcards,
    untokenize,
)
from scserver.subjects import is_valid_subject, subjects_collide

SINGLETON, STREAMED, CHUNKED = "Singleton", "Streamed", "Chunked"
DEFAULT_RESPONSE_THRESHOLD = 120.0


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


def go_duration(text: str) -> float:
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
                thresh = go_duration(str(value))
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


def subject_subset(a: str, b: str) -> bool:
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
                f = frm if subject_subset(frm, subject) else subject
                if self.service_cycle(dest, visited, f, depth + 1):
                    return True
        return False

    def stream_cycle(self, acc: str, visited: set[str], to: str, depth: int = 0) -> bool:
        if depth > 1024:
            return True
        cfg = self.configs.get(acc)
        exports = cfg.exports if cfg else []
        if not any(e.kind == "stream" and subject_subset(to, e.subject) for e in exports):
            return False
        for sto, dest in self.streams.get(acc, []):
            if _collide(to, sto):
                if dest in visited:
                    return True
                visited.add(acc)
                t = sto if subject_subset(sto, to) else to
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
            stream_transform(imp.subject, to)
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
        service_transform(frm, to)
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


def stream_transform(frm: str, to: str) -> tuple[SubjectTransform | None, bool, str]:
    """(transform, use the published subject, literal local subject) for a stream import."""
    if _has_wc(frm):
        if to == frm:
            return None, True, to
        tr = SubjectTransform(frm, tokenize_wildcards(to), strict=True)
        return tr, False, untokenize(to)[0]
    return None, False, to


def service_transform(frm: str, to: str) -> tuple[SubjectTransform | None, bool, str]:
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


def find_export(exports: list[Export], kind: str, subject: str) -> Export | None:
    for e in exports:
        if e.kind == kind and e.subject == subject:
            return e
    tokens = subject.split(".")
    for e in exports:
        if e.kind == kind and is_subset(tokens, e.subject.split(".")):
            return e
    return None

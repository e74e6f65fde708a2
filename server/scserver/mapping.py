"""Subject transforms and subject mappings, with nats-server's semantics.

A *transform* rewrites a literal subject matched by a source pattern into a destination built from
its tokens: ``$1`` / ``{{wildcard(1)}}`` copy the first ``*`` of the source, and the functions
``partition``, ``splitFromLeft``, ``splitFromRight``, ``sliceFromLeft``, ``sliceFromRight``,
``split``, ``left``, ``right`` and ``random`` compute a token (``subject_transform.go``). A
destination ending in ``>`` carries the rest of the subject over. Imports use *strict* transforms:
only wildcard references, every source wildcard used, so they can be reversed.

A *mapping* (``mappings {}`` at the top level or in an account) picks one of several weighted
destinations for each published subject; weights are cumulative, the source subject fills any
weight left below 100 unless listed itself (``AddWeightedMappings``), and a destination may be
scoped to one cluster. Mappings are applied once, where a client's message enters the server
(``selectMappedSubject``), before permissions and routing; every server of a supercluster holds
the same table, so the choice does not depend on where a message goes next.

Unknown or malformed functions are refused when the configuration loads, never at publish time.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MappingError",
    "Mappings",
    "SubjectTransform",
    "is_subset",
    "parse_mappings",
    "tokenize_wildcards",
    "untokenize",
]


class MappingError(ValueError):
    """An invalid transform or mapping; the text is nats-server's."""


_INVALID_DEST = "invalid mapping destination"
_NOT_ENOUGH = f"{_INVALID_DEST}: not enough arguments passed to the function"
_TOO_MANY = f"{_INVALID_DEST}: too many arguments passed to the function"
_INVALID_ARG = f"{_INVALID_DEST}: function argument is invalid or in the wrong format"
_OUT_OF_RANGE = f"{_INVALID_DEST}: wildcard index out of range"
_UNKNOWN_FN = f"{_INVALID_DEST}: unknown function"
_NOT_ALL = f"{_INVALID_DEST}: not using all of the token wildcard(s)"
_IMPORT_ONLY = f"{_INVALID_DEST}: the only mapping function allowed for import transforms is {{{{Wildcard()}}}}"
_BAD_SUBJECT = "invalid subject"

# Token kinds.
_LITERAL, _WILDCARD, _PARTITION, _SPLIT_LEFT, _SPLIT_RIGHT = range(5)
_SLICE_LEFT, _SLICE_RIGHT, _SPLIT, _LEFT, _RIGHT, _RANDOM = range(5, 11)

_FUNCS = {
    "wildcard": _WILDCARD,
    "partition": _PARTITION,
    "splitfromleft": _SPLIT_LEFT,
    "splitfromright": _SPLIT_RIGHT,
    "slicefromleft": _SLICE_LEFT,
    "slicefromright": _SLICE_RIGHT,
    "split": _SPLIT,
    "left": _LEFT,
    "right": _RIGHT,
    "random": _RANDOM,
}
_FUNC_RE = re.compile(r"\{\{\s*([A-Za-z]+)\s*\((.*)\)\s*\}\}")
_ARG_SPLIT = re.compile(r",\s*")


def _int(text: str, token: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise MappingError(f"{_INVALID_ARG} in {token}") from None
    if value > 2**31 - 1:
        raise MappingError(f"{_INVALID_ARG} in {token}")
    return value


def _placeholder(token: str) -> tuple[int, list[int], int, str]:
    """(kind, wildcard indexes, int argument, string argument) of one destination token."""
    n = len(token)
    if n > 1 and token[0] == "$":
        try:
            return _WILDCARD, [int(token[1:])], -1, ""
        except ValueError:
            return _LITERAL, [], -1, ""
    if n > 4 and token.startswith("{{") and token.endswith("}}"):
        m = _FUNC_RE.fullmatch(token)
        kind = _FUNCS.get(m.group(1).lower()) if m else None
        if m is None or kind is None:
            raise MappingError(f"{_UNKNOWN_FN} in {token}")
        args = _ARG_SPLIT.split(m.group(2))
        if kind == _WILDCARD:
            if args == [""]:
                raise MappingError(f"{_NOT_ENOUGH} in {token}")
            if len(args) > 1:
                raise MappingError(f"{_TOO_MANY} in {token}")
            return _WILDCARD, [_int(args[0], token)], -1, ""
        if kind == _PARTITION:
            buckets = _int(args[0], token)
            return _PARTITION, [_int(a, token) for a in args[1:]], buckets, ""
        if kind == _RANDOM:
            if len(args) != 1:
                raise MappingError(f"{_NOT_ENOUGH} in {token}")
            return _RANDOM, [], _int(args[0], token), ""
        if len(args) < 2:
            raise MappingError(f"{_NOT_ENOUGH} in {token}")
        if len(args) > 2:
            raise MappingError(f"{_TOO_MANY} in {token}")
        index = _int(args[0], token)
        if kind == _SPLIT:
            if " " in args[1] or "." in args[1]:
                raise MappingError(f"{_INVALID_ARG} in {token}")
            return _SPLIT, [index], -1, args[1]
        return kind, [index], _int(args[1], token), ""
    return _LITERAL, [], -1, ""


def _subject_info(subject: str) -> tuple[bool, list[str], int, bool]:
    """(valid, tokens, number of '*', ends with '>') as nats-server's subjectInfo."""
    if not subject:
        return False, [], 0, False
    tokens = subject.split(".")
    pwcs = 0
    fwc = False
    for t in tokens:
        if not t or fwc:
            return False, [], 0, False
        if t == ">":
            fwc = True
        elif t == "*":
            pwcs += 1
    return True, tokens, pwcs, fwc


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


class SubjectTransform:
    """A compiled source -> destination transform (``NewSubjectTransformWithStrict``)."""

    __slots__ = ("src", "dest", "stoks", "dtoks", "parts", "literal")

    def __init__(self, src: str, dest: str, strict: bool = False) -> None:
        if not src:
            src = ">"
        self.src = src
        self.dest = dest
        ok_s, stoks, npwcs, s_fwc = _subject_info(src)
        ok_d, dtoks, d_pwcs, d_fwc = _subject_info(dest)
        if not ok_s or not ok_d or d_pwcs > 0 or s_fwc != d_fwc:
            raise MappingError(_BAD_SUBJECT)
        self.stoks = stoks
        self.dtoks = dtoks
        parts: list[tuple[int, list[int], int, str, str]] = []
        if npwcs or s_fwc:
            # Wildcard number (1-based) -> position of that '*' among the source tokens.
            positions = [i for i, t in enumerate(stoks) if t == "*"]
            used = 0
            for tok in dtoks:
                kind, idx, iarg, sarg = _placeholder(tok)
                if strict and kind not in (_LITERAL, _WILDCARD):
                    raise MappingError(f"{_IMPORT_ONLY} in {tok}")
                if kind in (_LITERAL, _RANDOM):
                    parts.append((kind, [], iarg, sarg, tok))
                    continue
                used += len(idx)
                stis = []
                for w in idx:
                    if w > npwcs or w < 1:
                        raise MappingError(f"{_OUT_OF_RANGE} in {tok}: [{w}]")
                    stis.append(positions[w - 1])
                parts.append((kind, stis, iarg, sarg, tok))
            if strict and used < npwcs:
                raise MappingError(f"{_NOT_ALL} in {dest}")
        else:
            for tok in dtoks:
                kind, idx, iarg, sarg = _placeholder(tok)
                if kind == _LITERAL or kind in (_RANDOM, _PARTITION):
                    parts.append((kind, [], iarg, sarg, tok))
                else:
                    raise MappingError(f"{_OUT_OF_RANGE} in {tok}")
        self.parts = parts
        self.literal = all(p[0] == _LITERAL for p in parts) and not d_fwc

    def transform(self, subject: bytes) -> bytes:
        """Rewrite a literal subject the source matches."""
        if self.literal:
            return self.dest.encode()
        return self.transform_tokens(subject.decode(errors="surrogateescape").split("."))

    def transform_tokens(self, tokens: list[str]) -> bytes:
        out: list[str] = []
        for kind, idx, iarg, sarg, tok in self.parts:
            if kind == _LITERAL:
                if tok == ">":
                    break
                out.append(tok)
            elif kind == _WILDCARD:
                out.append(tokens[idx[0]] if idx and idx[0] < len(tokens) else "")
            elif kind == _PARTITION:
                key = "".join(tokens[i] for i in idx) if idx else ".".join(tokens)
                n = iarg
                out.append(str(_fnv32a(key.encode(errors="surrogateescape")) % n) if n else "0")
            elif kind == _RANDOM:
                out.append(str(random.randrange(iarg)) if iarg > 0 else "0")
            else:
                out.append(_apply(kind, tokens[idx[0]], iarg, sarg))
        if self.dtoks[-1] == ">":
            out.extend(tokens[len(self.stoks) - 1 :])
        return ".".join(out).encode(errors="surrogateescape")

    def reverse(self) -> SubjectTransform:
        """The transform back from destination to source (only wildcard references)."""
        nsrc, placeholders = untokenize(self.dest)
        nda = []
        for t in self.stoks:
            if t == "*":
                nda.append(placeholders.pop(0))
            else:
                nda.append(t)
        return SubjectTransform(nsrc, ".".join(nda), strict=True)


def _apply(kind: int, token: str, n: int, sep: str) -> str:
    size = len(token)
    if kind == _SPLIT_LEFT:
        return f"{token[:n]}.{token[n:]}" if 0 < n < size else token
    if kind == _SPLIT_RIGHT:
        return f"{token[: size - n]}.{token[size - n :]}" if 0 < n < size else token
    if kind == _SLICE_LEFT:
        if not 0 < n < size:
            return token
        return ".".join(token[i : i + n] for i in range(0, size, n))
    if kind == _SLICE_RIGHT:
        if not 0 < n < size:
            return token
        rem = size % n
        pieces = [token[:rem]] if rem else []
        pieces.extend(token[i : i + n] for i in range(rem, size, n))
        return ".".join(pieces)
    if kind == _SPLIT:
        return ".".join(p for p in token.split(sep) if p)
    if kind == _LEFT:
        return token[:n] if 0 < n < size else token
    if kind == _RIGHT:
        return token[size - n :] if 0 < n < size else token
    return token


def tokenize_wildcards(subject: str) -> str:
    """``a.*.*`` -> ``a.$1.$2`` (``transformTokenize``)."""
    out = []
    i = 1
    for t in subject.split("."):
        if t == "*":
            out.append(f"${i}")
            i += 1
        else:
            out.append(t)
    return ".".join(out)


def untokenize(subject: str) -> tuple[str, list[str]]:
    """``a.$1.{{wildcard(2)}}`` -> (``a.*.*``, the placeholders) (``transformUntokenize``)."""
    out = []
    phs = []
    for t in subject.split("."):
        m = _FUNC_RE.fullmatch(t)
        is_wc = m is not None and m.group(1).lower() == "wildcard" and m.group(2).strip() != ""
        if (len(t) > 1 and t[0] == "$" and "1" <= t[1] <= "9") or is_wc:
            phs.append(t)
            out.append("*")
        else:
            out.append(t)
    return ".".join(out), phs


def is_subset(tokens: list[str], pattern: list[str]) -> bool:
    """Whether every subject ``tokens`` (which may hold wildcards) matches is matched by
    ``pattern`` (nats-server's ``isSubsetMatch``)."""
    for i, pt in enumerate(pattern):
        if i >= len(tokens):
            return False
        t = tokens[i]
        if pt == ">":
            return True
        if pt == "*":
            if t == ">":
                return False
            continue
        if t != pt:
            return False
    return len(tokens) == len(pattern)


def validate_destination(src: str, dest: str) -> None:
    """nats-server's ``ValidateMapping``: every ``{{...}}`` names a known function."""
    seen_fwc = False
    for t in dest.split("."):
        if not t or seen_fwc:
            raise MappingError(f"{_INVALID_DEST}: invalid transform in {t}")
        if len(t) > 4 and t.startswith("{{") and t.endswith("}}"):
            m = _FUNC_RE.fullmatch(t)
            if m is None or m.group(1).lower() not in _FUNCS:
                raise MappingError(f"{_UNKNOWN_FN} in {t}")
            continue
        if t == ">":
            seen_fwc = True
        elif re.search(r"[\t\n\f\r ]", t):
            raise MappingError(f"{_INVALID_DEST}: invalid transform")
    SubjectTransform(src, dest)


@dataclass(slots=True)
class MapDest:
    """One configured destination: subject, weight (0-100) and optional cluster scope."""

    subject: str
    weight: int
    cluster: str = ""


@dataclass(slots=True)
class _Mapping:
    src: str
    src_tokens: list[str]
    wildcard: bool
    #: (cumulative weight, transform) in ascending order, as nats-server stores them.
    dests: list[tuple[int, SubjectTransform]]
    cluster_dests: dict[str, list[tuple[int, SubjectTransform]]] = field(default_factory=dict)


def _weighted(
    src: str, wildcard: bool, dests: list[tuple[int, SubjectTransform]], has_src: bool
) -> list[tuple[int, SubjectTransform]]:
    total = sum(w for w, _ in dests)
    if total != 100 and not has_src:
        fill = 100 - total if dests else 100
        dests = [
            *dests,
            (fill, SubjectTransform(src, tokenize_wildcards(src) if wildcard else src)),
        ]
    dests = sorted(dests, key=lambda d: d[0])
    out = []
    acc = 0
    for w, tr in dests:
        acc += w
        out.append((acc, tr))
    return out


class Mappings:
    """An account's mapping table: first matching source wins, as in ``selectMappedSubject``."""

    def __init__(self, cluster: str = "") -> None:
        self.items: list[_Mapping] = []
        self.cluster = cluster

    def add(self, src: str, dests: list[MapDest]) -> None:
        from scserver.subjects import is_valid_subject

        if not is_valid_subject(src.encode()):
            raise MappingError(_BAD_SUBJECT)
        wildcard = "*" in src.split(".") or src.split(".")[-1] == ">"
        seen: set[str] = set()
        plain: list[tuple[int, SubjectTransform]] = []
        scoped: dict[str, list[tuple[int, SubjectTransform]]] = {}
        totals: dict[str, int] = {}
        for d in dests:
            if d.subject in seen:
                raise MappingError(f"duplicate entry for {d.subject!r}".replace("'", '"'))
            seen.add(d.subject)
            if d.weight > 100:
                raise MappingError("individual weights need to be <= 100")
            totals[d.cluster] = totals.get(d.cluster, 0) + d.weight
            if totals[d.cluster] > 100:
                raise MappingError("total weight needs to be <= 100")
            validate_destination(src, d.subject)
            tr = SubjectTransform(src, d.subject)
            (scoped.setdefault(d.cluster, []) if d.cluster else plain).append((d.weight, tr))
        has_src = src in seen
        m = _Mapping(src, src.split("."), wildcard, _weighted(src, wildcard, plain, has_src))
        for cluster, ds in scoped.items():
            m.cluster_dests[cluster] = _weighted(src, wildcard, ds, has_src)
        for i, old in enumerate(self.items):
            if old.src == src:
                self.items[i] = m
                return
        self.items.append(m)

    def __bool__(self) -> bool:
        return bool(self.items)

    def select(self, subject: bytes) -> bytes | None:
        """The subject a publish to ``subject`` goes to; ``subject`` itself when unmapped and
        ``None`` when a mapping drops it (weights below 100 with the source listed)."""
        text = subject.decode(errors="surrogateescape")
        tokens: list[str] | None = None
        found = None
        for m in self.items:
            if not m.wildcard:
                if m.src == text:
                    found = m
                    break
                continue
            if tokens is None:
                tokens = text.split(".")
            if is_subset(tokens, m.src_tokens):
                found = m
                break
        if found is None:
            return subject
        dests = found.dests
        if found.cluster_dests:
            dests = found.cluster_dests.get(self.cluster) or found.dests
        if len(dests) == 1 and dests[0][0] == 100:
            tr = dests[0][1]
        else:
            w = random.randrange(100)
            tr = None
            for cum, t in dests:
                if w < cum:
                    tr = t
                    break
            if tr is None:
                return None
        if tokens is None:
            tokens = text.split(".")
        if tr.literal:
            return tr.dest.encode(errors="surrogateescape")
        return tr.transform_tokens(tokens)

    def monitor_doc(self) -> dict[str, list[dict[str, Any]]]:
        """The ``mappings`` object of /accountz (cumulative weights, as nats-server shows)."""
        doc: dict[str, list[dict[str, Any]]] = {}
        for m in self.items:
            entries: list[dict[str, Any]] = [{"subject": tr.dest, "weight": w} for w, tr in m.dests]
            for cluster, ds in m.cluster_dests.items():
                entries.extend(
                    {"subject": tr.dest, "weight": w, "cluster": cluster} for w, tr in ds
                )
            doc[m.src] = entries
        return doc


def _weight(value: Any) -> int:
    if isinstance(value, bool):
        raise MappingError(f"Unknown entry type for weight of {value}")
    if isinstance(value, int):
        weight = value
    elif isinstance(value, str):
        text = value.removesuffix("%")
        try:
            weight = int(text)
        except ValueError:
            raise MappingError(f'Invalid weight "{text}" for mapping destination') from None
    else:
        raise MappingError(f"Unknown entry type for weight of {value}")
    if weight > 100 or weight < 0:
        raise MappingError(f"Invalid weight {weight} for mapping destination")
    return weight


def _map_dest(entry: Any) -> MapDest:
    if not isinstance(entry, dict):
        raise MappingError("Expected an entry for the mapping destination")
    subject = ""
    weight: int | None = None
    cluster = ""
    for k, v in entry.items():
        lk = k.lower()
        if lk in ("dest", "destination"):
            subject = str(v)
        elif lk == "weight":
            weight = _weight(v)
        elif lk == "cluster":
            cluster = str(v)
        else:
            raise MappingError(f'Unknown field "{k}" for mapping destination')
    if weight is None:
        raise MappingError(f'Missing weight for mapping destination "{subject}"')
    return MapDest(subject, weight, cluster)


def parse_mappings(raw: Any, cluster: str = "") -> tuple[Mappings, list[tuple[str, str]]]:
    """Build a mapping table from a ``mappings {}`` block.

    Returns the table and a list of (source subject, error) for entries nats-server refuses.
    """
    table = Mappings(cluster)
    errors: list[tuple[str, str]] = []
    if not isinstance(raw, dict):
        errors.append(("", "Expected mappings to be a map"))
        return table, errors
    from scserver.subjects import is_valid_subject

    for src, value in raw.items():
        if not isinstance(src, str) or not is_valid_subject(src.encode()):
            errors.append((str(src), f'Subject "{src}" is not a valid subject'))
            continue
        try:
            if isinstance(value, str):
                try:
                    table.add(src, [MapDest(value, 100)])
                except MappingError as exc:
                    raise MappingError(
                        f'Error adding mapping for "{src}" to "{value}" : {exc}'
                    ) from None
                continue
            entries = value if isinstance(value, list) else [value]
            dests = [_map_dest(e) for e in entries]
            try:
                table.add(src, dests)
            except MappingError as exc:
                raise MappingError(f'Error adding mapping for "{src}" : {exc}') from None
        except MappingError as exc:
            errors.append((src, str(exc)))
    return table, errors

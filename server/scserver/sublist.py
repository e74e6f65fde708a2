"""The subscription index: a token trie with a per-subject result cache.

Every published message is routed through :meth:`Sublist.match`, so this module is the hot path.
The design follows nats-server's ``server/sublist.go`` in behaviour, not in code:

* A trie of nodes, one level per subject token.  Each node has a dict of literal children plus
  dedicated ``pwc`` (``*``) and ``fwc`` (``>``) children, so matching a literal subject costs one
  dict lookup and two attribute reads per live branch per token.
* Results are cached per literal subject in a plain dict, so a cache hit is one ``dict.get`` and
  allocates nothing.  The cache is capped at :data:`CACHE_MAX` entries; past that it is swept down
  to :data:`CACHE_SWEEP` (the oldest entries go, as dict order is insertion order).
* The cache is kept exact on every change rather than dropped wholesale: inserting or removing a
  literal subscription touches only the entry for its own subject, a wildcard subscription
  touches every cached subject it matches.  Inserts update the affected results copy-on-write
  (a result already handed out is never changed); removals drop the affected entries.
* :attr:`Sublist.genid` is bumped on every change so per-connection caches layered on top can
  tell cheaply whether their copies are still valid.

Results are shared between callers and the cache.  **Callers must not mutate** a
:class:`SublistResult` or its lists.

Subscriptions are opaque objects with ``subject: bytes`` and ``queue: bytes | None`` attributes,
compared by identity.  Both attributes must stay unchanged while the subscription is inserted,
since :meth:`Sublist.remove` uses them to find it again.  An empty queue name means "no queue".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Generic, NamedTuple, Protocol, TypeVar

from scserver.subjects import FWC, PWC, SEP, is_valid_subject, tokens_match

__all__ = [
    "CACHE_MAX",
    "CACHE_SWEEP",
    "InvalidSubjectError",
    "SubLike",
    "Sublist",
    "SublistResult",
]

#: Maximum number of cached results (nats-server's ``slCacheMax``).
CACHE_MAX = 1024
#: Number of cached results left after a sweep (nats-server's ``slCacheSweep``).
CACHE_SWEEP = 256


class InvalidSubjectError(ValueError):
    """Raised by :meth:`Sublist.insert` for a subject that fails :func:`is_valid_subject`."""


class SubLike(Protocol):
    """What the sublist needs from a subscription."""

    @property
    def subject(self) -> bytes: ...

    @property
    def queue(self) -> bytes | None: ...


S = TypeVar("S", bound=SubLike)


class SublistResult(NamedTuple, Generic[S]):
    """Subscriptions matching one subject.

    ``psubs`` are plain subscriptions; ``qsubs`` holds one list per queue group with that group's
    members (a group's members may come from several patterns, e.g. ``foo.bar`` and ``foo.*``).
    A tuple so that callers can unpack it (``psubs, qsubs = sl.match(s)``).  Shared and cached:
    never mutate it or its lists.
    """

    psubs: list[S]
    qsubs: list[list[S]]


# Shared "no interest" result.  Safe to share because results are never mutated.
_EMPTY: SublistResult = SublistResult([], [])


class _Node:
    """One trie node: subscriptions whose subject ends here plus the next level down."""

    __slots__ = ("children", "pwc", "fwc", "psubs", "qsubs")

    def __init__(self) -> None:
        self.children: dict[bytes, _Node] = {}
        self.pwc: _Node | None = None
        self.fwc: _Node | None = None
        # Keyed by id(sub): subscriptions compare by identity, whatever __eq__ they define.
        self.psubs: dict[int, SubLike] = {}
        self.qsubs: dict[bytes, dict[int, SubLike]] = {}

    def is_empty(self) -> bool:
        """Whether the node holds nothing and can be pruned."""
        return not (self.psubs or self.qsubs or self.children or self.pwc or self.fwc)

    def iter_subtree(self) -> Iterator[SubLike]:
        """Every subscription at this node and below it."""
        stack = [self]
        while stack:
            n = stack.pop()
            yield from n.psubs.values()
            for group in n.qsubs.values():
                yield from group.values()
            stack.extend(n.children.values())
            if n.pwc is not None:
                stack.append(n.pwc)
            if n.fwc is not None:
                stack.append(n.fwc)


def _step(node: _Node, token: bytes) -> _Node | None:
    """The child of ``node`` that a pattern token leads to (wildcards are their own slots)."""
    if token == PWC:
        return node.pwc
    if token == FWC:
        return node.fwc
    return node.children.get(token)


# Subjects up to this many tokens are walked recursively (recursing only where the trie branches
# into both `*` and a literal child); longer ones use the breadth-first walk so that a crafted
# subject cannot hit Python's recursion limit.
_MAX_RECURSIVE_TOKENS = 64

_new_result = tuple.__new__  # builds a SublistResult without the Python-level __new__


def _collect(node: _Node, tokens: list[bytes], i: int, n: int, hits: list[_Node]) -> None:
    """Append to ``hits`` every node under ``node`` matching ``tokens[i:]``.

    Loops down the trie and recurses only at branch points, which measured faster than a
    breadth-first walk with a frontier list per level.  A `>` child met while tokens remain
    matches them all; the node reached after the last token matches exactly.
    """
    while i < n:
        child = node.fwc
        if child is not None:
            hits.append(child)
        pwc = node.pwc
        child = node.children.get(tokens[i])
        i += 1
        if pwc is not None:
            if child is not None:
                _collect(child, tokens, i, n, hits)
            node = pwc
        elif child is not None:
            node = child
        else:
            return
    hits.append(node)


def _any_interest(node: _Node, tokens: list[bytes], i: int, n: int) -> bool:
    """Like :func:`_collect` but stops at the first node holding subscriptions."""
    while i < n:
        child = node.fwc
        if child is not None and (child.psubs or child.qsubs):
            return True
        pwc = node.pwc
        child = node.children.get(tokens[i])
        i += 1
        if pwc is not None:
            if child is not None and _any_interest(child, tokens, i, n):
                return True
            node = pwc
        elif child is not None:
            node = child
        else:
            return False
    return bool(node.psubs or node.qsubs)


def _collect_wide(root: _Node, tokens: list[bytes], hits: list[_Node]) -> None:
    """Breadth-first equivalent of :func:`_collect`, with no recursion."""
    frontier = [root]
    for tok in tokens:
        nxt: list[_Node] = []
        for node in frontier:
            child = node.fwc
            if child is not None:
                hits.append(child)
            child = node.pwc
            if child is not None:
                nxt.append(child)
            child = node.children.get(tok)
            if child is not None:
                nxt.append(child)
        if not nxt:
            return
        frontier = nxt
    hits.extend(frontier)


class Sublist(Generic[S]):
    """Index of subscriptions by subject, with wildcard matching and a result cache.

    Single-threaded (asyncio): there is no locking.
    """

    __slots__ = ("_root", "_cache", "_count", "genid", "_inserts", "_removes", "_misses")

    def __init__(self) -> None:
        self._root = _Node()
        self._cache: dict[bytes, SublistResult[S]] = {}
        self._count = 0
        #: Bumped on every insert and remove; lets callers validate their own derived caches.
        self.genid = 0
        self._inserts = 0
        self._removes = 0
        self._misses = 0

    # -- changes ---------------------------------------------------------------------------

    def insert(self, sub: S) -> None:
        """Add ``sub``.

        Raises :class:`InvalidSubjectError` if its subject is invalid and :class:`ValueError` if
        this very object is already inserted.
        """
        subject = sub.subject
        if not is_valid_subject(subject):
            raise InvalidSubjectError(f"invalid subject {subject!r}")
        queue = sub.queue or None
        tokens = subject.split(SEP)
        node = self._root
        wild = False
        for tok in tokens:
            if tok == PWC:
                nxt = node.pwc
                if nxt is None:
                    nxt = node.pwc = _Node()
                wild = True
            elif tok == FWC:
                nxt = node.fwc
                if nxt is None:
                    nxt = node.fwc = _Node()
                wild = True
            else:
                nxt = node.children.get(tok)
                if nxt is None:
                    nxt = node.children[tok] = _Node()
            node = nxt

        key = id(sub)
        if queue is None:
            if key in node.psubs:
                raise ValueError("subscription already inserted")
            node.psubs[key] = sub
        else:
            group = node.qsubs.get(queue)
            if group is None:
                group = node.qsubs[queue] = {}
            elif key in group:
                raise ValueError("subscription already inserted")
            group[key] = sub
        self._count += 1
        self._inserts += 1
        self.genid += 1

        cache = self._cache
        if not cache:
            return
        if not wild:
            r = cache.get(subject)
            if r is not None:
                cache[subject] = _with_added(r, sub, queue)
            return
        for cached in self._cached_matching(tokens):
            cache[cached] = _with_added(cache[cached], sub, queue)

    def remove(self, sub: S) -> bool:
        """Remove ``sub``; False if it was not inserted (under its current subject and queue)."""
        subject = sub.subject
        queue = sub.queue or None
        tokens = subject.split(SEP)
        node = self._root
        path: list[tuple[_Node, bytes, _Node]] = []
        wild = False
        for tok in tokens:
            nxt = _step(node, tok)
            if nxt is None:
                return False
            if tok in (PWC, FWC):
                wild = True
            path.append((node, tok, nxt))
            node = nxt

        key = id(sub)
        if queue is None:
            if node.psubs.pop(key, None) is None:
                return False
        else:
            group = node.qsubs.get(queue)
            if group is None or group.pop(key, None) is None:
                return False
            if not group:
                del node.qsubs[queue]
        self._count -= 1
        self._removes += 1
        self.genid += 1

        # Prune nodes left empty, bottom-up, so that dead branches cost nothing when matching.
        for parent, tok, child in reversed(path):
            if not child.is_empty():
                break
            if tok == PWC:
                parent.pwc = None
            elif tok == FWC:
                parent.fwc = None
            else:
                del parent.children[tok]

        cache = self._cache
        if cache:
            if not wild:
                cache.pop(subject, None)
            else:
                for cached in self._cached_matching(tokens):
                    del cache[cached]
        return True

    def remove_batch(self, subs: Iterable[S]) -> int:
        """Remove several subscriptions (e.g. on connection close); returns how many were found."""
        removed = 0
        for sub in subs:
            if self.remove(sub):
                removed += 1
        return removed

    # -- queries ---------------------------------------------------------------------------

    def match(self, subject: bytes) -> SublistResult[S]:
        """Subscriptions interested in the literal ``subject`` (cached; do not mutate).

        ``subject`` must be ``bytes`` (hashable).  Its tokens are taken literally; an invalid
        subject (with an empty token) matches nothing.
        """
        r = self._cache.get(subject)
        if r is not None:
            return r
        return self._match_uncached(subject)

    def _match_uncached(self, subject: bytes) -> SublistResult[S]:
        tokens = subject.split(SEP)
        if b"" in tokens:
            return _EMPTY
        self._misses += 1
        n = len(tokens)
        hits: list[_Node] = []
        if n <= _MAX_RECURSIVE_TOKENS:
            _collect(self._root, tokens, 0, n, hits)
        else:
            _collect_wide(self._root, tokens, hits)

        if not hits:
            r: SublistResult[S] = _EMPTY
        elif len(hits) == 1 and not hits[0].qsubs:
            # Common case: one matching node with plain subscribers only (or none at all: the
            # node may exist only as a path to longer subjects).
            only = hits[0].psubs
            r = _new_result(SublistResult, (list(only.values()), [])) if only else _EMPTY
        else:
            psubs: list[S] = []
            groups: dict[bytes, list[S]] = {}
            for node in hits:
                if node.psubs:
                    psubs.extend(node.psubs.values())  # type: ignore[arg-type]
                if node.qsubs:
                    for name, members in node.qsubs.items():
                        g = groups.get(name)
                        if g is None:
                            groups[name] = list(members.values())  # type: ignore[arg-type]
                        else:
                            g.extend(members.values())  # type: ignore[arg-type]
            r = (
                _new_result(SublistResult, (psubs, list(groups.values())))
                if psubs or groups
                else _EMPTY
            )

        cache = self._cache
        cache[subject] = r
        if len(cache) > CACHE_MAX:
            self._sweep()
        return r

    def has_interest(self, subject: bytes) -> bool:
        """Whether any subscription matches the literal ``subject``.

        Cheaper than :meth:`match` on a cache miss: stops at the first hit, builds no result and
        does not fill the cache (gateways probe many subjects they never deliver to).
        """
        r = self._cache.get(subject)
        if r is not None:
            return bool(r.psubs or r.qsubs)
        tokens = subject.split(SEP)
        if b"" in tokens:
            return False
        n = len(tokens)
        if n <= _MAX_RECURSIVE_TOKENS:
            return _any_interest(self._root, tokens, 0, n)
        hits: list[_Node] = []
        _collect_wide(self._root, tokens, hits)
        return any(node.psubs or node.qsubs for node in hits)

    def match_queue_names(self, subject: bytes) -> list[bytes]:
        """Names of the queue groups with members matching ``subject``."""
        return [g[0].queue for g in self.match(subject).qsubs]  # type: ignore[misc]

    def reverse_match(self, pattern: bytes) -> list[S]:
        """Subscriptions whose subjects could match some subject that ``pattern`` matches.

        That is every ``sub`` with ``subjects_collide(pattern, sub.subject)``.  Used when a
        gateway switches to interest-only mode and must announce every matching subscription.
        Not cached.
        """
        tokens = pattern.split(SEP)
        if b"" in tokens:
            return []
        out: list[S] = []
        last = len(tokens) - 1
        # (node, index of the pattern token to consume next)
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            tok = tokens[i]
            if tok == FWC:
                # Everything below this node has at least one more token: all collide.
                for child in node.children.values():
                    out.extend(child.iter_subtree())  # type: ignore[arg-type]
                if node.pwc is not None:
                    out.extend(node.pwc.iter_subtree())  # type: ignore[arg-type]
                if node.fwc is not None:
                    out.extend(node.fwc.iter_subtree())  # type: ignore[arg-type]
                continue
            # A `>` subscription here eats pattern token i and anything after it.
            if node.fwc is not None:
                out.extend(node.fwc.iter_subtree())  # type: ignore[arg-type]
            if tok == PWC:
                nexts = list(node.children.values())
            else:
                child = node.children.get(tok)
                nexts = [child] if child is not None else []
            if node.pwc is not None:
                nexts.append(node.pwc)
            if i == last:
                for n in nexts:
                    out.extend(n.psubs.values())  # type: ignore[arg-type]
                    for group in n.qsubs.values():
                        out.extend(group.values())  # type: ignore[arg-type]
            else:
                stack.extend((n, i + 1) for n in nexts)
        return out

    def count(self) -> int:
        """Number of subscriptions inserted."""
        return self._count

    def __len__(self) -> int:
        return self._count

    def all(self) -> list[S]:
        """Every subscription, in no particular order."""
        return list(self._root.iter_subtree())  # type: ignore[arg-type]

    def cache_count(self) -> int:
        """Number of cached results."""
        return len(self._cache)

    def stats(self) -> dict[str, int]:
        """Counters for monitoring (cache hits are not counted to keep the hit path bare)."""
        return {
            "num_subscriptions": self._count,
            "num_cache": len(self._cache),
            "num_inserts": self._inserts,
            "num_removes": self._removes,
            "num_cache_misses": self._misses,
        }

    # -- cache maintenance -----------------------------------------------------------------

    def _cached_matching(self, tokens: list[bytes]) -> list[bytes]:
        """Cached subjects matched by the wildcard pattern ``tokens``.

        Runs on every wildcard insert/remove over up to :data:`CACHE_MAX` subjects, so it narrows
        the candidates with C-level bytes tests before the token-by-token check: the pattern's
        literal prefix, its token count (without `>`), and the first literal token after a
        wildcard as a ``.tok.`` substring.
        """
        cache = self._cache
        n = len(tokens)
        nprefix = 0
        while tokens[nprefix] != PWC and tokens[nprefix] != FWC:
            nprefix += 1  # a wildcard pattern always has a wildcard token, so this stops
        if nprefix:
            prefix = SEP.join(tokens[:nprefix]) + SEP
            cands = [s for s in cache if s.startswith(prefix)]
        else:
            cands = list(cache)
        dots = n - 1
        if tokens[-1] != FWC:
            cands = [s for s in cands if s.count(SEP) == dots]
        elif nprefix < dots:
            # `a.*.>` needs at least as many tokens as the pattern (`a.b.>` has them by prefix).
            cands = [s for s in cands if s.count(SEP) >= dots]
        for j in range(nprefix + 1, n):
            tok = tokens[j]
            if tok != PWC and tok != FWC:
                if j == dots:
                    suffix = SEP + tok
                    cands = [s for s in cands if s.endswith(suffix)]
                else:
                    needle = SEP + tok + SEP
                    cands = [s for s in cands if needle in s]
                return [s for s in cands if tokens_match(tokens, s.split(SEP))]
        # Only wildcards after the prefix: the prefix and token-count tests were exact.
        return cands

    def _sweep(self) -> None:
        """Shrink the cache to :data:`CACHE_SWEEP` entries, keeping the newest."""
        cache = self._cache
        self._cache = dict(islice(cache.items(), len(cache) - CACHE_SWEEP, None))


def _with_added(r: SublistResult[S], sub: S, queue: bytes | None) -> SublistResult[S]:
    """A copy of ``r`` with ``sub`` added (copy-on-write: ``r`` may be held by callers)."""
    if queue is None:
        return SublistResult(r.psubs + [sub], r.qsubs)
    qsubs = r.qsubs.copy()
    for i, group in enumerate(qsubs):
        if (group[0].queue or None) == queue:
            qsubs[i] = group + [sub]
            break
    else:
        qsubs.append([sub])
    return SublistResult(r.psubs, qsubs)

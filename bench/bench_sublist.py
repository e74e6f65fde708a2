"""Sublist micro-benchmark: ``python bench/bench_sublist.py [--subs N]``.

Measures the routing hot path on a sublist holding N (default 10,000) subscriptions with a mix of
literal, ``*`` and ``>`` subjects and some queue groups:

* cached match (the steady state for a hot subject: one dict lookup);
* uncached match (a trie walk plus result build, forced by matching distinct subjects);
* has_interest without the cache (what gateways probe);
* insert + remove of a literal and of a wildcard subscription while the cache is full.

Numbers are single-threaded CPython and vary with the machine; compare runs on the same box.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))

from scserver.sublist import CACHE_MAX, Sublist  # noqa: E402


class Sub:
    __slots__ = ("subject", "queue")

    def __init__(self, subject: bytes, queue: bytes | None = None) -> None:
        self.subject = subject
        self.queue = queue


WORDS = [b"orders", b"users", b"events", b"metrics", b"eu", b"us", b"ap", b"created", b"deleted"]


def random_literal(rng: random.Random, depth: int) -> bytes:
    toks = [rng.choice(WORDS) for _ in range(depth - 1)]
    toks.append(b"id%d" % rng.randrange(2000))
    return b".".join(toks)


def build(n: int, rng: random.Random) -> Sublist[Sub]:
    """70% literal, 20% with a `*`, 10% ending in `>`; 10% of all are queue subs."""
    sl: Sublist[Sub] = Sublist()
    for _ in range(n):
        toks = random_literal(rng, rng.randint(2, 5)).split(b".")
        kind = rng.random()
        if kind < 0.2:
            toks[rng.randrange(len(toks))] = b"*"
        elif kind < 0.3:
            toks = toks[: rng.randint(1, len(toks))] + [b">"]
        queue = b"q%d" % rng.randrange(4) if rng.random() < 0.1 else None
        sl.insert(Sub(b".".join(toks), queue))
    return sl


def build_services(n: int, rng: random.Random) -> tuple[Sublist[Sub], list[bytes]]:
    """A sparser, service-style mix: mostly distinct literals, a few wildcards.

    ``svc.<region>.<service>.<method>`` request subjects (some as queue subs), per-client
    ``_INBOX.<id>.*`` reply subscriptions, and 1% monitoring wildcards ``svc.*.<service>.>``.
    Returns the sublist and subjects that traffic would use.
    """
    sl: Sublist[Sub] = Sublist()
    regions = [b"eu", b"us", b"ap"]
    traffic: list[bytes] = []
    for i in range(n):
        kind = rng.random()
        region = rng.choice(regions)
        if kind < 0.5:
            subj = b"svc.%s.s%d.m%d" % (region, rng.randrange(500), rng.randrange(10))
            sl.insert(Sub(subj, b"workers" if rng.random() < 0.5 else None))
            traffic.append(subj)
        elif kind < 0.99:
            sl.insert(Sub(b"_INBOX.%016x.*" % rng.getrandbits(64)))
        else:
            sl.insert(Sub(b"svc.*.s%d.>" % rng.randrange(500)))
        if i % 7 == 0:
            traffic.append(b"_INBOX.%016x.%d" % (rng.getrandbits(64), i))
    rng.shuffle(traffic)
    return sl, traffic


def rate(label: str, fn: Callable[[], object], n: int) -> float:
    """Run ``fn`` n times (best of 3) and print ops/s and ns/op."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    ops = n / best
    print(f"{label:<44} {ops:>14,.0f} ops/s  {best / n * 1e9:>9,.0f} ns/op")
    return ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average: {load} (numbers are noisy when the box is busy)")

    t0 = time.perf_counter()
    sl = build(args.subs, rng)
    dt = time.perf_counter() - t0
    print(
        f"sublist: {sl.count():,} subs inserted in {dt * 1e3:.0f} ms "
        f"({sl.count() / dt:,.0f} inserts/s)"
    )

    subjects = [random_literal(rng, rng.randint(2, 5)) for _ in range(200_000)]
    hot = subjects[0]
    r = sl.match(hot)
    print(f"hot subject {hot.decode()}: {len(r.psubs)} psubs, {len(r.qsubs)} queue groups")
    avg = sum(len(sl.match(s).psubs) for s in subjects[:1000]) / 1000
    print(f"average psubs per match: {avg:.1f}")
    print()

    match = sl.match
    rate("match, cached literal subject", lambda: match(hot), 1_000_000)

    # Uncached: clear the cache before each miss so every call walks the trie and fills it.
    it = iter(subjects * 10)
    cache = sl._cache

    def uncached() -> object:
        cache.clear()
        return match(next(it))

    rate("match, uncached (trie walk + build + cache)", uncached, 100_000)

    it2 = iter(subjects * 10)

    def interest() -> object:
        cache.clear()
        return sl.has_interest(next(it2))

    rate("has_interest, uncached", interest, 100_000)

    # Mixed workload: Zipf-ish traffic over 5,000 subjects against a 1,024-entry cache.
    pool = subjects[:5000]
    weights = [1 / (i + 1) for i in range(len(pool))]
    traffic = iter(rng.choices(pool, weights, k=3_000_000))
    rate("match, zipf over 5k subjects (cache 1k)", lambda: match(next(traffic)), 500_000)

    # Service-style sublist: mostly literal, sparse wildcards.
    svc, traffic2 = build_services(args.subs, rng)
    print()
    print(f"service-style sublist: {svc.count():,} subs (mostly literal, 1% wildcard)")
    smatch = svc.match
    shot = traffic2[0]
    rate("match, cached literal subject", lambda: smatch(shot), 1_000_000)
    it3 = iter(traffic2 * 50)
    scache = svc._cache

    def suncached() -> object:
        scache.clear()
        return smatch(next(it3))

    rate("match, uncached (trie walk + build + cache)", suncached, 100_000)

    # Changes with a full cache: literal touches one entry, wildcard scans the cache.
    for s in subjects[:CACHE_MAX]:
        match(s)
    lit = Sub(b"orders.eu.created.id7")
    wild = Sub(b"orders.*.created.>")
    root_wild = Sub(b"*.eu.>")

    def churn(sub: Sub) -> Callable[[], object]:
        def op() -> object:
            sl.insert(sub)
            return sl.remove(sub)

        return op

    print()
    print(f"cache entries before churn: {sl.cache_count()}")
    rate("insert+remove literal sub (full cache)", churn(lit), 50_000)
    for s in subjects[:CACHE_MAX]:
        match(s)
    rate("insert+remove `orders.*.created.>` (full cache)", churn(wild), 2_000)
    for s in subjects[:CACHE_MAX]:
        match(s)
    rate("insert+remove `*.eu.>` (full cache)", churn(root_wild), 500)


if __name__ == "__main__":
    main()

"""Gold's co-occurrence neighbours on Spark equal their definition, recounted in plain Python.

The Spark job counts each unordered pair once per basket and mirrors it, ranks by one sorted list per
item and caps baskets at their latest :data:`MAX_BASKET` items: each of those is a shortcut, so the
definition is recounted here the slow way — every ordered pair of every (capped) basket — on baskets
built to hit the edges (ties in score and count broken by id, a basket over the cap, one item in
many baskets, baskets of one item, two snapshot dates that must not mix).
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Any

import pytest

from lambdarec.batch.gold import MAX_BASKET, SNAPSHOT_DATE, co_occurrence

pytestmark = pytest.mark.integration


def reference(rows: list[tuple[str, str, str, int]], k: int) -> dict[tuple[str, str], tuple[list[str], list[float]]]:
    """``(date, item) -> (neighbours, scores)`` by the definition in :func:`co_occurrence`'s docstring."""
    latest: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for date, basket, item, t in rows:
        seen = latest[(date, basket)]
        seen[item] = max(t, seen.get(item, t))
    pairs: Counter[tuple[str, str, str]] = Counter()
    support: Counter[tuple[str, str]] = Counter()
    for (date, _), items in latest.items():
        # The basket's latest MAX_BASKET distinct items (time desc, then id asc).
        kept = [i for i, _ in sorted(items.items(), key=lambda it: (-it[1], it[0]))[:MAX_BASKET]]
        for a in kept:
            support[(date, a)] += 1
            for b in kept:
                if a != b:
                    pairs[(date, a, b)] += 1
    by_item: dict[tuple[str, str], list[tuple[float, int, str]]] = defaultdict(list)
    for (date, a, b), n in pairs.items():
        score = n / math.sqrt(support[(date, a)] * support[(date, b)])
        by_item[(date, a)].append((-score, -n, b))
    out = {}
    for key, scored in by_item.items():
        best = sorted(scored)[:k]
        out[key] = ([b for _, _, b in best], [round(-s, 6) for s, _, _ in best])
    return out


def baskets() -> list[tuple[str, str, str, int]]:
    rng = random.Random(7)
    rows: list[tuple[str, str, str, int]] = []
    for date in ("2024-03-01", "2024-03-02"):
        for b in range(60):
            size = rng.choice([1, 2, 3, 5, 8])
            for item in rng.sample([f"i{n:02d}" for n in range(25)], size):
                rows.append((date, f"b{b}", item, rng.randrange(1_000)))
                if rng.random() < 0.2:  # the same item again in the basket: it counts once
                    rows.append((date, f"b{b}", item, rng.randrange(1_000)))
        # Over the cap: only its latest MAX_BASKET items pair up.
        rows += [(date, "big", f"j{n:03d}", n) for n in range(MAX_BASKET + 15)]
    # Exact ties: x pairs with y and z in one basket each, y and z equally supported.
    rows += [("2024-03-01", "t1", "x", 1), ("2024-03-01", "t1", "z", 2)]
    rows += [("2024-03-01", "t2", "x", 1), ("2024-03-01", "t2", "y", 2)]
    return rows


def test_co_occurrence_equals_its_definition(spark: Any) -> None:
    rows = baskets()
    frame = spark.createDataFrame(rows, f"{SNAPSHOT_DATE} string, basket string, item_id string, event_time long")
    k = 4  # below most items' neighbour counts, so the cut and its tie-breaks matter
    got = {
        (r[SNAPSHOT_DATE], r["item_id"]): (list(r["neighbours"]), list(r["scores"]))
        for r in co_occurrence(frame, "basket", k).collect()
    }
    want = reference(rows, k)
    assert got.keys() == want.keys()
    different = {key: (got[key], want[key]) for key in want if got[key] != want[key]}
    assert not different, list(different.items())[:3]
    # The edges were exercised: the tie broken by id, and the over-cap basket's oldest items left out.
    assert got[("2024-03-01", "x")][0][:2] == ["y", "z"]
    assert ("2024-03-01", "j000") not in got and ("2024-03-01", f"j{MAX_BASKET + 14:03d}") in got

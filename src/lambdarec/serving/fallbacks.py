"""What answers when the two-stage models cannot: the session's neighbours, then trending, then popular items.

- **neighbours**: the batch layer's co-view / co-purchase neighbours of the session's latest
  items (``neighbours_v1`` online), scored as the ranker's neighbour features are;
- **trending**: the speed layer's live per-item counts (``item_trending_10m`` of the
  ``fallback_v1`` service) over a pool of the catalogue's popular items, refreshed in the
  background;
- **popular**: the most popular items, from the served model's training targets or, before
  any model is loaded, from the batch layer's latest item statistics.

Each list is filled in that order up to ``k`` without repeating an item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lambdarec.models.inputs import neighbour_scores, seed_items
from lambdarec.serving.contract import RecommendedItem

log = logging.getLogger(__name__)

TRENDING_POOL = 2_000
"""Popular items whose live counts are read to find what is trending now."""


class Fallbacks:
    """Neighbours → trending → popular.

    Args:
        popular: ``(item_id, score)`` best first.
    """

    def __init__(self, popular: Sequence[tuple[str, float]] = ()) -> None:
        self.popular: list[tuple[str, float]] = list(popular)
        self.trending: list[tuple[str, float]] = []

    def refresh_trending(self, read_counts: Callable[[list[str]], Mapping[str, Sequence[Any]]], field: str) -> int:
        """Re-read the live counts of the popular pool and keep the items seen lately, most first.

        Args:
            read_counts: Item ids → rows of the speed layer's item view (column ``field``).
            field: The count column (``item_trending_10m``).

        Returns:
            How many items are trending.
        """
        pool = [item for item, _ in self.popular[:TRENDING_POOL]]
        if not pool:
            self.trending = []
            return 0
        counts = read_counts(pool)[field]
        live = [(item, float(c)) for item, c in zip(pool, counts, strict=True) if c is not None and float(c) > 0]
        live.sort(key=lambda pair: (-pair[1], pair[0]))
        self.trending = live
        return len(live)

    def answer(
        self,
        session_items: Sequence[str],
        k: int,
        neighbour_rows: Callable[[list[str]], Mapping[str, Sequence[Any]]] | None,
    ) -> list[RecommendedItem]:
        """Up to ``k`` items: the session's neighbours first, then trending, then popular ones.

        Args:
            session_items: The session's items so far, oldest first (may be empty).
            k: How many items to return.
            neighbour_rows: Reads ``neighbours_v1`` rows of seed items (None: the store is down).
        """
        out: list[RecommendedItem] = []
        seen: set[str] = set()

        def add(item: str, score: float, source: Any) -> None:
            if item not in seen and len(out) < k:
                seen.add(item)
                out.append(RecommendedItem(item_id=item, score=score, sources=[source]))

        seeds = seed_items(list(session_items))
        if seeds and neighbour_rows is not None:
            try:
                scores = neighbour_scores([seeds], neighbour_rows(seeds))[0]
            except Exception as err:  # noqa: BLE001 - trending and popular still answer
                log.warning("neighbour read failed: %s", err)
                scores = {}
            in_session = set(session_items)
            best = sorted(scores.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
            for item, (coview, copurchase) in best:
                if item not in in_session:
                    add(item, coview + copurchase, "neighbours")
        for item, score in self.trending:
            add(item, score, "trending")
        for item, score in self.popular:
            add(item, score, "popular")
        return out


def popular_from_vocabulary(
    item_ids: Sequence[str], popularity: Sequence[float], limit: int = 5_000
) -> list[tuple[str, float]]:
    """The model's most frequent training targets, best first (ties by id)."""
    pairs = [(str(i), float(p)) for i, p in zip(item_ids, popularity, strict=True) if i and p > 0]
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return pairs[:limit]


def popular_from_lake(lake: Any, limit: int = 5_000) -> list[tuple[str, float]]:
    """The most popular items of the batch layer's latest ``item_stats`` snapshot (30-day events).

    Returns:
        ``(item_id, events over 30 days)`` best first; empty when no gold exists yet.
    """
    import pyarrow.dataset as ds

    from lambdarec.batch.gold import ITEM_STATS

    folder = lake.gold(ITEM_STATS)
    dates = sorted(p.name.split("=", 1)[1] for p in folder.glob("date=*"))
    if not dates:
        return []
    table = ds.dataset(str(folder / f"date={dates[-1]}"), format="parquet").to_table(
        columns=["item_id", "item_popularity_30d"]
    )
    pairs = [
        (str(i), float(p or 0))
        for i, p in zip(table["item_id"].to_pylist(), table["item_popularity_30d"].to_pylist(), strict=True)
    ]
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return pairs[:limit]

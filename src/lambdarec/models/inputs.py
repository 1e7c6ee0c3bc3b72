"""The one assembly of model inputs from feature-service rows, for training and serving alike.

Each model input is defined once: the fields are the feature services' (``retrieval_v2`` for
the query side of both models, ``ranking_v2`` for the ranker's candidates, ``neighbours_v1`` for
the co-occurrence neighbours of the session's items), and the functions here turn their rows
into arrays. Training calls them on rows from ``get_historical_features`` (point in time),
serving on rows from :class:`lambdarec.featurestore.online.OnlineFeatureReader`; the parity
test compares the arrays, not the rows.

Rows are columns (name → list of values), the form Feast's online read returns; a pandas
frame's columns work too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lambdarec import names
from lambdarec.features.session import RECENT_ITEMS
from lambdarec.featurestore.transforms import USER_ITEM_FEATURES, number

HISTORY_ITEMS = 30
"""Items of the user's 30-day history the query tower reads (gold ``user_recent_items_30d``)."""
NEIGHBOUR_SEEDS = 5
"""The session's latest items whose neighbours become ranker candidates."""
PAD = 0
"""Index 0 of every vocabulary: padding, unknown, or missing."""

SESSION_QUERY_FIELDS: tuple[str, ...] = (
    names.SESSION_RECENT_ITEMS,
    names.SESSION_EVENT_COUNT,
    names.SESSION_VIEW_COUNT,
    names.SESSION_CART_COUNT,
    names.SESSION_PURCHASE_COUNT,
    names.SESSION_DISTINCT_CATEGORIES,
    names.SESSION_LAST_EVENT_MS,
    names.SESSION_DWELL_S,
)
"""What ``retrieval_v2`` reads of the session view (the Feast repo's projection is this tuple)."""
USER_QUERY_FIELDS: tuple[str, ...] = (
    "user_recent_items_30d",
    "user_events_30d",
    "user_purchases_30d",
    "user_spend_30d",
    "user_visits_30d",
)
"""What ``retrieval_v2`` reads of the user history view."""
QUERY_FIELDS: tuple[str, ...] = (*SESSION_QUERY_FIELDS, *USER_QUERY_FIELDS)
"""What ``retrieval_v2`` returns (a unit test holds the registered service to it)."""
ITEM_CANDIDATE_FIELDS: tuple[str, ...] = (
    "item_category",
    "item_brand",
    "item_price_mean_30d",
    "item_popularity_1d",
    "item_popularity_7d",
    "item_popularity_30d",
    "item_cart_rate_30d",
    "item_conversion_rate_30d",
)
"""What ``ranking_v2`` reads of the item stats view."""
CANDIDATE_FIELDS: tuple[str, ...] = (*ITEM_CANDIDATE_FIELDS, *USER_ITEM_FEATURES)
"""What ``ranking_v2`` returns (item stats, then the on-demand pair features)."""
NEIGHBOUR_FIELDS: tuple[str, ...] = ("copurchase_items", "copurchase_scores", "coview_items", "coview_scores")
"""What ``neighbours_v1`` returns."""

QUERY_DENSE: tuple[str, ...] = (
    names.SESSION_EVENT_COUNT,
    names.SESSION_VIEW_COUNT,
    names.SESSION_CART_COUNT,
    names.SESSION_PURCHASE_COUNT,
    names.SESSION_DISTINCT_CATEGORIES,
    "session_dwell_min",
    "user_events_30d",
    "user_purchases_30d",
    "user_visits_30d",
    "user_history_length",
)
"""Dense query features (log1p of non-negative counts; missing → 0)."""
SPARSE_FIELDS: tuple[str, ...] = (
    "item",
    "category",
    "brand",
    "price_bucket",
    "last_item",
    "last_category",
    "user_spend_bucket",
    "session_position",
    "same_category_as_last",
    "source",
)
"""Sparse fields of the ranker (FM + deep part)."""
CANDIDATE_DENSE: tuple[str, ...] = (
    "two_tower_score",
    "two_tower_rank",
    "coview_score",
    "copurchase_score",
    "log_item_popularity_1d",
    "log_item_popularity_7d",
    "log_item_popularity_30d",
    "item_cart_rate_30d",
    "item_conversion_rate_30d",
    "item_in_user_top_categories",
    "price_vs_user_spend",
    "price_vs_user_spend_known",
    "log_user_recency_h",
    "user_known",
)
"""Dense features of a candidate; the query's dense features follow them in the ranker."""
RANKING_DENSE: tuple[str, ...] = (*CANDIDATE_DENSE, *QUERY_DENSE)
SESSION_POSITIONS = 7
"""Steps back in the session a candidate was last seen (0: not in the session; capped)."""
SOURCES = 8
"""Bit set of where a candidate came from: 1 two-tower, 2 neighbours, 4 the session itself."""


def id_list(value: Any) -> list[str]:
    """A list of item ids from a list-valued feature (None, NaN or an empty array → [])."""
    if value is None or isinstance(value, float):
        return []
    return [str(v) for v in value]


def float_list(value: Any) -> list[float]:
    """A list of floats from a list-valued feature."""
    if value is None or isinstance(value, float):
        return []
    return [float(v) for v in value]


class Vocabulary:
    """Id maps and content encoders fitted at training time and saved in the serving bundle.

    Args:
        item_ids: Index → item id; ``item_ids[0]`` is ``""`` (unknown item).
        categories: Category values (index = position + 1; 0 unknown).
        brands: Brand values (index = position + 1; 0 unknown).
        price_edges: Bucket edges over ``log1p(price)``; bucket 0 is an unknown price.
        item_category: Per item index, its category index (content of vocabulary items).
        item_brand: Per item index, its brand index.
        item_price_bucket: Per item index, its price bucket.
    """

    def __init__(
        self,
        item_ids: Sequence[str],
        categories: Sequence[str],
        brands: Sequence[str],
        price_edges: Sequence[float],
        item_category: Sequence[int],
        item_brand: Sequence[int],
        item_price_bucket: Sequence[int],
    ) -> None:
        self.item_ids = list(item_ids)
        self.item_index = {item: i for i, item in enumerate(self.item_ids) if i}
        self.categories = {c: i + 1 for i, c in enumerate(categories)}
        self.brands = {b: i + 1 for i, b in enumerate(brands)}
        self.price_edges = np.asarray(price_edges, np.float64)
        self.item_category = np.asarray(item_category, np.int64)
        self.item_brand = np.asarray(item_brand, np.int64)
        self.item_price_bucket = np.asarray(item_price_bucket, np.int64)
        self.item_popularity = np.zeros(len(self.item_ids), np.float64)
        """Per item index, its training targets (the two-tower's logQ correction, most-popular)."""

    @property
    def n_items(self) -> int:
        """Vocabulary size including the unknown index 0."""
        return len(self.item_ids)

    @property
    def n_price_buckets(self) -> int:
        """Price buckets including the unknown bucket 0."""
        return len(self.price_edges) + 2

    def codes(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item indices of ids (0 for ids outside the vocabulary)."""
        index = self.item_index
        return np.fromiter((index.get(str(i), PAD) for i in item_ids), np.int64, len(item_ids))

    def category_codes(self, values: Sequence[Any]) -> np.ndarray:
        """Category indices (0 for None or unknown values)."""
        table = self.categories
        return np.fromiter((table.get(v, PAD) if isinstance(v, str) else PAD for v in values), np.int64, len(values))

    def brand_codes(self, values: Sequence[Any]) -> np.ndarray:
        """Brand indices (0 for None or unknown values)."""
        table = self.brands
        return np.fromiter((table.get(v, PAD) if isinstance(v, str) else PAD for v in values), np.int64, len(values))

    def price_bucket(self, prices: Any) -> np.ndarray:
        """Bucket of each price; NaN, negative or missing prices go to bucket 0."""
        prices = np.asarray(prices, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(prices) & (prices >= 0)
        buckets = np.searchsorted(self.price_edges, np.log1p(np.where(valid, prices, 0.0))) + 1
        return np.where(valid, buckets, PAD).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the serving bundle's ``vocabulary.json``)."""
        return {
            "item_ids": self.item_ids,
            "categories": list(self.categories),
            "brands": list(self.brands),
            "price_edges": self.price_edges.tolist(),
            "item_category": self.item_category.tolist(),
            "item_brand": self.item_brand.tolist(),
            "item_price_bucket": self.item_price_bucket.tolist(),
            "item_popularity": self.item_popularity.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """The inverse of :meth:`to_dict`."""
        vocab = cls(**{k: v for k, v in data.items() if k != "item_popularity"})
        if "item_popularity" in data:
            vocab.item_popularity = np.asarray(data["item_popularity"], np.float64)
        return vocab

    def tower_inputs(self) -> dict[str, np.ndarray]:
        """Item-tower inputs of every vocabulary item, index order (row 0: the unknown item)."""
        return {
            "item": np.arange(self.n_items, dtype=np.int64),
            "category": self.item_category,
            "brand": self.item_brand,
            "price": self.item_price_bucket,
        }

    def content_inputs(self, item_rows: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Item-tower inputs of any items from their ``item_stats`` content columns.

        Args:
            item_rows: Columns ``item_id``, ``item_category``, ``item_brand``, ``item_price_mean_30d``.

        Returns:
            Tower inputs; items outside the vocabulary get index 0 (content-only embedding).
        """
        n = len(item_rows[names.ITEM_ID])
        return {
            "item": self.codes(list(item_rows[names.ITEM_ID])),
            "category": self.category_codes(_column(item_rows, "item_category", n)),
            "brand": self.brand_codes(_column(item_rows, "item_brand", n)),
            "price": self.price_bucket([number(v) for v in _column(item_rows, "item_price_mean_30d", n)]),
        }


def _column(rows: Mapping[str, Sequence[Any]], name: str, n: int) -> Sequence[Any]:
    values = rows.get(name)
    if values is None:
        raise KeyError(f"feature rows lack {name!r} (is the right feature service deployed?)")
    if len(values) != n:
        raise ValueError(f"feature column {name!r} has {len(values)} values, expected {n}")
    return list(values) if not isinstance(values, list) else values


def _log_counts(values: Sequence[Any]) -> np.ndarray:
    raw = np.array([number(v) for v in values], np.float64)
    return np.log1p(np.clip(np.nan_to_num(raw, nan=0.0), 0, None))


def _left_padded(lists: Sequence[list[str]], width: int, vocab: Vocabulary) -> np.ndarray:
    out = np.zeros((len(lists), width), np.int64)
    for row, items in enumerate(lists):
        tail = items[-width:]
        if tail:
            out[row, width - len(tail) :] = vocab.codes(tail)
    return out


def _n_rows(rows: Mapping[str, Sequence[Any]], fields: Sequence[str]) -> int:
    for name in fields:
        if name in rows:
            return len(rows[name])
    raise KeyError(f"feature rows lack every one of {list(fields)[:3]}…")


class QueryInputs:
    """Query-side model inputs of ``n`` requests (or training examples).

    Attributes:
        session: (n, RECENT_ITEMS) item indices of the session so far, oldest first, left-padded.
        history: (n, HISTORY_ITEMS) item indices of the user's 30-day history, left-padded.
        dense: (n, len(QUERY_DENSE)) float32, log-scaled, NaN-free.
        user_spend: (n,) the user's average ticket over 30 days (NaN unknown).
        recent_ids: Per row, the session's item ids (oldest first), vocabulary or not.
    """

    def __init__(
        self,
        session: np.ndarray,
        history: np.ndarray,
        dense: np.ndarray,
        user_spend: np.ndarray,
        recent_ids: list[list[str]],
    ) -> None:
        self.session, self.history, self.dense = session, history, dense
        self.user_spend, self.recent_ids = user_spend, recent_ids


def assemble_queries(rows: Mapping[str, Sequence[Any]], vocab: Vocabulary) -> QueryInputs:
    """Query inputs from ``retrieval_v2`` rows (offline or online: the same function).

    Args:
        rows: Columns :data:`QUERY_FIELDS` (other columns are ignored).
        vocab: The model's vocabulary (ids outside it become 0).

    Returns:
        The arrays both models read.
    """
    n = _n_rows(rows, QUERY_FIELDS)
    recent = [id_list(v) for v in _column(rows, names.SESSION_RECENT_ITEMS, n)]
    history = [id_list(v) for v in _column(rows, "user_recent_items_30d", n)]
    dense = np.zeros((n, len(QUERY_DENSE)), np.float64)
    for j, name in enumerate(QUERY_DENSE[:5]):
        dense[:, j] = _log_counts(_column(rows, name, n))
    dwell = np.array([number(v) for v in _column(rows, names.SESSION_DWELL_S, n)]) / 60.0
    dense[:, 5] = np.log1p(np.clip(np.nan_to_num(dwell, nan=0.0), 0, None))
    dense[:, 6] = _log_counts(_column(rows, "user_events_30d", n))
    dense[:, 7] = _log_counts(_column(rows, "user_purchases_30d", n))
    dense[:, 8] = _log_counts(_column(rows, "user_visits_30d", n))
    dense[:, 9] = np.log1p([min(len(h), HISTORY_ITEMS) for h in history])
    spend = np.array([number(v) for v in _column(rows, "user_spend_30d", n)])
    purchases = np.array([number(v) for v in _column(rows, "user_purchases_30d", n)])
    with np.errstate(invalid="ignore", divide="ignore"):
        ticket = np.where(purchases > 0, spend / purchases, np.nan)
    return QueryInputs(
        session=_left_padded(recent, RECENT_ITEMS, vocab),
        history=_left_padded(history, HISTORY_ITEMS, vocab),
        dense=dense.astype(np.float32),
        user_spend=ticket,
        recent_ids=recent,
    )


def neighbour_scores(
    seeds: Sequence[Sequence[str]], rows: Mapping[str, Sequence[Any]]
) -> list[dict[str, tuple[float, float]]]:
    """Co-view and co-purchase scores of each query's neighbour items.

    Args:
        seeds: Per query, its seed items (the session's latest :data:`NEIGHBOUR_SEEDS`, oldest first).
        rows: ``neighbours_v1`` rows for the seeds, flattened query by query in seed order.

    Returns:
        Per query, neighbour id → ``(coview, copurchase)``: each the sum over seeds of the
        neighbour's cosine score, the latest seed weighted 1, the one before 1/2, and so on.
    """
    total = sum(len(s) for s in seeds)
    columns = {name: _column(rows, name, total) for name in NEIGHBOUR_FIELDS}
    out: list[dict[str, tuple[float, float]]] = []
    offset = 0
    for query_seeds in seeds:
        scores: dict[str, list[float]] = {}
        m = len(query_seeds)
        for j in range(m):
            weight = 1.0 / (m - j)
            row = offset + j
            for kind, (items_col, scores_col) in enumerate(
                (("coview_items", "coview_scores"), ("copurchase_items", "copurchase_scores"))
            ):
                for item, score in zip(
                    id_list(columns[items_col][row]), float_list(columns[scores_col][row]), strict=False
                ):
                    pair = scores.setdefault(item, [0.0, 0.0])
                    pair[kind] += weight * score
        out.append({item: (pair[0], pair[1]) for item, pair in scores.items()})
        offset += m
    return out


def seed_items(recent_ids: Sequence[str]) -> list[str]:
    """The seeds of a session: its latest :data:`NEIGHBOUR_SEEDS` distinct items, oldest first."""
    seen: list[str] = []
    for item in reversed(recent_ids):
        if item not in seen:
            seen.append(item)
        if len(seen) == NEIGHBOUR_SEEDS:
            break
    return seen[::-1]


def assemble_candidates(
    queries: QueryInputs,
    query_rows: Sequence[int],
    candidate_ids: Sequence[str],
    rows: Mapping[str, Sequence[Any]],
    *,
    two_tower_score: np.ndarray,
    two_tower_rank: np.ndarray,
    neighbour: np.ndarray,
    source: np.ndarray,
    vocab: Vocabulary,
) -> tuple[np.ndarray, np.ndarray]:
    """Ranker inputs of (query, candidate) pairs from ``ranking_v2`` rows.

    Args:
        queries: The queries' inputs (:func:`assemble_queries`).
        query_rows: (m,) the query of each pair.
        candidate_ids: (m,) the candidate item of each pair.
        rows: ``ranking_v2`` columns :data:`CANDIDATE_FIELDS`, one row per pair.
        two_tower_score: (m,) query · item embedding.
        two_tower_rank: (m,) rank in the two-tower top-k over k (1.0 when not retrieved).
        neighbour: (m, 2) co-view and co-purchase scores (:func:`neighbour_scores`).
        source: (m,) bit set of :data:`SOURCES`.
        vocab: The model's vocabulary.

    Returns:
        ``(sparse (m, len(SPARSE_FIELDS)) int64, dense (m, len(RANKING_DENSE)) float32)``, NaN-free.
    """
    m = len(candidate_ids)
    q = np.asarray(query_rows, np.int64)
    sparse = np.zeros((m, len(SPARSE_FIELDS)), np.int64)
    items = vocab.codes(candidate_ids)
    category = vocab.category_codes(_column(rows, "item_category", m))
    sparse[:, 0] = items
    sparse[:, 1] = category
    sparse[:, 2] = vocab.brand_codes(_column(rows, "item_brand", m))
    price = np.array([number(v) for v in _column(rows, "item_price_mean_30d", m)])
    sparse[:, 3] = vocab.price_bucket(price)
    last = queries.session[q, -1]
    sparse[:, 4] = last
    last_category = vocab.item_category[last]
    sparse[:, 5] = last_category
    sparse[:, 6] = vocab.price_bucket(queries.user_spend[q])
    back = np.zeros(m, np.int64)
    for pair in range(m):
        recent = queries.recent_ids[q[pair]]
        item = candidate_ids[pair]
        for steps, seen in enumerate(reversed(recent), start=1):
            if seen == item:
                back[pair] = min(steps, SESSION_POSITIONS - 1)
                break
    sparse[:, 7] = back
    sparse[:, 8] = np.where((category == PAD) | (last_category == PAD), 0, np.where(category == last_category, 1, 2))
    sparse[:, 9] = np.asarray(source, np.int64)

    dense = np.zeros((m, len(RANKING_DENSE)), np.float64)
    dense[:, 0] = two_tower_score
    dense[:, 1] = two_tower_rank
    dense[:, 2] = np.log1p(10 * np.asarray(neighbour[:, 0], np.float64))
    dense[:, 3] = np.log1p(10 * np.asarray(neighbour[:, 1], np.float64))
    dense[:, 4] = _log_counts(_column(rows, "item_popularity_1d", m))
    dense[:, 5] = _log_counts(_column(rows, "item_popularity_7d", m))
    dense[:, 6] = _log_counts(_column(rows, "item_popularity_30d", m))
    dense[:, 7] = np.nan_to_num([number(v) for v in _column(rows, "item_cart_rate_30d", m)], nan=0.0)
    dense[:, 8] = np.nan_to_num([number(v) for v in _column(rows, "item_conversion_rate_30d", m)], nan=0.0)
    dense[:, 9] = np.nan_to_num([number(v) for v in _column(rows, "item_in_user_top_categories", m)], nan=0.0)
    ratio = np.array([number(v) for v in _column(rows, "item_price_vs_user_spend", m)])
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(ratio)
    known = np.isfinite(log_ratio)
    dense[:, 10] = np.where(known, np.clip(log_ratio, -5, 5), 0.0)
    dense[:, 11] = known
    recency = np.array([number(v) for v in _column(rows, "user_recency_s", m)])
    user_known = np.isfinite(recency)
    dense[:, 12] = np.where(user_known, np.log1p(np.clip(np.nan_to_num(recency, nan=0.0), 0, None) / 3600.0), 0.0)
    dense[:, 13] = user_known
    dense[:, len(CANDIDATE_DENSE) :] = queries.dense[q]
    return sparse, np.nan_to_num(dense, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

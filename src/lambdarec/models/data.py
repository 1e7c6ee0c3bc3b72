"""Leak-free training and evaluation examples from an event log.

One pass over the events in event-time order folds every session with the shared
:func:`lambdarec.features.session.update_session` (the same fold the speed and batch layers
run) and keeps each user's earlier items. Before an event is folded in, the features its
session and user had *at that moment* are recorded; the event's item is the target. So an
example only ever sees the past, on either side of the temporal cut.

The temporal split cuts time (a quantile of event times): events before the cut are the training set, the
examples whose target lies after the cut are the test set (their session prefix may start
before the cut — that is the past at prediction time). Targets that repeat the item just
before them are skipped (a reload is not a recommendation), as in the session-based
recommendation literature.

Until the batch layer's training sets exist, this module *is* how models get training
data; it only calls the core feature functions, never a second implementation.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lambdarec import names
from lambdarec.features.session import RECENT_ITEMS, SessionState, new_session_state, session_features, update_session

MIN_EVENTS = 200
"""Fewer events than this cannot train or evaluate anything meaningful."""
MIN_TRAIN_EXAMPLES = 50
"""Next-item examples needed before the cut."""
MIN_TEST_EXAMPLES = 10
"""Next-item examples needed after the cut."""
HISTORY_ITEMS = 30
"""How many items of a user's earlier sessions the user features keep."""
PRICE_BUCKETS = 10
"""Price buckets (quantiles of log price over the training items); bucket 0 = unknown price."""
EVENT_WEIGHTS: dict[str, float] = {
    names.EventType.VIEW.value: 1.0,
    names.EventType.CART.value: 3.0,
    names.EventType.PURCHASE.value: 5.0,
}
"""Label weight of a target by its event type (purchase > cart > view)."""
PAD = 0
"""Index 0 of every vocabulary: padding, unknown, or missing."""


class DatasetError(ValueError):
    """The dataset cannot be used to train or evaluate the models."""


class DatasetTooSmallError(DatasetError):
    """Too few events or examples; the message names the minimum."""


def load_events(spec_or_table: str | pa.Table | pd.DataFrame, *, limit: int | None = None) -> pd.DataFrame:
    """Read events (``<adapter>:<path>``, an Arrow table or a frame) into a clean, sorted frame.

    Duplicates by ``event_id`` are dropped; rows are ordered by ``(event_time, event_id)``.

    Raises:
        DatasetTooSmallError: Fewer than :data:`MIN_EVENTS` events.
    """
    if isinstance(spec_or_table, str):
        from lambdarec.data.registry import open_dataset

        tables = []
        rows = 0
        for table in open_dataset(spec_or_table).iter_tables():
            tables.append(table)
            rows += table.num_rows
            if limit is not None and rows >= limit:
                break
        if not tables:
            raise DatasetTooSmallError(f"{spec_or_table}: no valid events (need at least {MIN_EVENTS})")
        frame = pa.concat_tables(tables).to_pandas()
    elif isinstance(spec_or_table, pa.Table):
        frame = spec_or_table.to_pandas()
    else:
        frame = spec_or_table.copy()
    if limit is not None:
        frame = frame.head(limit)
    required = {"event_id", "event_time", "session_id", "item_id", "event_type"}
    missing = required - set(frame.columns)
    if missing:
        raise DatasetError(f"events lack the columns {sorted(missing)}")
    for column in ("user_id", "price", "category", "brand"):
        if column not in frame.columns:
            frame[column] = None
    frame = frame.drop_duplicates("event_id").sort_values(["event_time", "event_id"], kind="stable")
    frame = frame.reset_index(drop=True)
    if len(frame) < MIN_EVENTS:
        raise DatasetTooSmallError(f"{len(frame)} events; the models need at least {MIN_EVENTS}")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    return frame


def dataset_fingerprint(events: pd.DataFrame) -> str:
    """A short content hash of the events (order-independent), logged with every run."""
    hashed = pd.util.hash_pandas_object(events[["event_id", "event_time", "item_id", "event_type"]], index=False)
    digest = hashlib.sha256(np.sort(hashed.to_numpy()).tobytes()).hexdigest()
    return f"{len(events)}-{digest[:16]}"


@dataclass
class Catalogue:
    """Item vocabulary and content features, fitted on the training events only.

    Item index 0 is the unknown item: an id never seen in training keeps index 0 and gets
    its embedding from content (category, brand, price bucket) alone.

    Attributes:
        item_ids: Index -> item id (``item_ids[0]`` is ``""``).
        item_index: Item id -> index (training items only).
        categories: Category -> index (0 unknown).
        brands: Brand -> index (0 unknown).
        price_edges: Bucket edges over log1p(price).
        item_category: Per item index, its category index.
        item_brand: Per item index, its brand index.
        item_price_bucket: Per item index, its price bucket (0 unknown).
        item_price: Per item index, its median price (NaN unknown).
        item_popularity: Per item index, training events.
    """

    item_ids: list[str]
    item_index: dict[str, int]
    categories: dict[str, int]
    brands: dict[str, int]
    price_edges: np.ndarray
    item_category: np.ndarray
    item_brand: np.ndarray
    item_price_bucket: np.ndarray
    item_price: np.ndarray
    item_popularity: np.ndarray

    @property
    def n_items(self) -> int:
        """Vocabulary size including the unknown index 0."""
        return len(self.item_ids)

    def price_bucket(self, prices: np.ndarray) -> np.ndarray:
        """Bucket of each price; NaN, negative or missing prices go to bucket 0 (documented fallback)."""
        prices = np.asarray(prices, dtype=np.float64)
        buckets = np.searchsorted(self.price_edges, np.log1p(np.where(prices >= 0, prices, np.nan))) + 1
        return np.where(np.isfinite(prices) & (prices >= 0), buckets, PAD).astype(np.int64)

    def content_of(self, items: pd.DataFrame) -> dict[str, np.ndarray]:
        """Tower inputs for arbitrary items (``item_id, category, brand, price`` columns).

        Unseen ids map to 0, unseen categories or brands to 0, NaN prices to bucket 0.
        """
        return {
            "item": items["item_id"].astype(str).map(self.item_index).fillna(PAD).to_numpy(np.int64),
            "category": items["category"].map(self.categories).fillna(PAD).to_numpy(np.int64),
            "brand": items["brand"].map(self.brands).fillna(PAD).to_numpy(np.int64),
            "price": self.price_bucket(items["price"].to_numpy(np.float64)),
        }

    def tower_inputs(self) -> dict[str, np.ndarray]:
        """Item-tower inputs of every catalogue item, index order (row 0: the unknown item)."""
        return {
            "item": np.arange(self.n_items, dtype=np.int64),
            "category": self.item_category,
            "brand": self.item_brand,
            "price": self.item_price_bucket,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form saved with the models, so serving maps ids exactly as training did."""
        return {
            "item_ids": self.item_ids,
            "categories": list(self.categories),
            "brands": list(self.brands),
            "price_edges": self.price_edges.tolist(),
            "item_category": self.item_category.tolist(),
            "item_brand": self.item_brand.tolist(),
            "item_price_bucket": self.item_price_bucket.tolist(),
            "item_price": [None if math.isnan(p) else p for p in self.item_price.tolist()],
            "item_popularity": self.item_popularity.tolist(),
        }


def _vocab(values: pd.Series) -> dict[str, int]:
    uniques = sorted(str(v) for v in values.dropna().unique())
    return {value: i + 1 for i, value in enumerate(uniques)}


def build_catalogue(train: pd.DataFrame) -> Catalogue:
    """Fit the item vocabulary and content encoders on training events.

    Each item's category and brand are its most frequent ones; its price is the median of
    its known prices (NaN when none: bucket 0).
    """
    items = train.groupby("item_id", sort=True)
    popularity = items.size()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # items with no known price: NaN median, by design
        median_price = items["price"].median()
    item_ids = [""] + [str(i) for i in popularity.index]
    item_index = {item: i for i, item in enumerate(item_ids) if i}
    categories = _vocab(train["category"])
    brands = _vocab(train["brand"])
    per_item = pd.DataFrame(
        {
            "category": items["category"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else None),
            "brand": items["brand"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else None),
            "price": median_price,
        }
    )
    prices = per_item["price"].to_numpy(np.float64)
    known = prices[np.isfinite(prices) & (prices >= 0)]
    if known.size:
        edges = np.unique(np.quantile(np.log1p(known), np.linspace(0, 1, PRICE_BUCKETS + 1)[1:-1]))
    else:
        edges = np.zeros(0)
    catalogue = Catalogue(
        item_ids=item_ids,
        item_index=item_index,
        categories=categories,
        brands=brands,
        price_edges=edges,
        item_category=np.zeros(len(item_ids), np.int64),
        item_brand=np.zeros(len(item_ids), np.int64),
        item_price_bucket=np.zeros(len(item_ids), np.int64),
        item_price=np.full(len(item_ids), np.nan),
        item_popularity=np.zeros(len(item_ids), np.float64),
    )
    catalogue.item_category[1:] = per_item["category"].map(categories).fillna(PAD).to_numpy(np.int64)
    catalogue.item_brand[1:] = per_item["brand"].map(brands).fillna(PAD).to_numpy(np.int64)
    catalogue.item_price[1:] = prices
    catalogue.item_price_bucket[1:] = catalogue.price_bucket(prices)
    catalogue.item_popularity[1:] = popularity.to_numpy(np.float64)
    return catalogue


@dataclass
class Examples:
    """Next-item examples: what was known before an event, and the event's item.

    Attributes:
        session: (n, RECENT_ITEMS) item indices of the session so far, oldest first, left-padded with 0.
        history: (n, HISTORY_ITEMS) item indices of the user's earlier sessions, left-padded.
        dense: (n, len(DENSE_FEATURES)) session/user numbers (log-scaled, NaN-free).
        target: (n,) item index of the target (0 when the item is unknown to the catalogue).
        target_id: (n,) item id of the target.
        weight: (n,) label weight by event type.
        time_ms: (n,) event time of the target.
        user_spend: (n,) the user's mean price before the target (NaN unknown).
        session_id: (n,) session of each example.
    """

    session: np.ndarray
    history: np.ndarray
    dense: np.ndarray
    target: np.ndarray
    target_id: np.ndarray
    weight: np.ndarray
    time_ms: np.ndarray
    user_spend: np.ndarray
    session_id: np.ndarray

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def subset(self, rows: np.ndarray) -> Examples:
        """The examples at ``rows`` (indices or a boolean mask)."""
        return Examples(**{k: getattr(self, k)[rows] for k in self.__dataclass_fields__})


DENSE_FEATURES = (
    names.SESSION_EVENT_COUNT,
    names.SESSION_VIEW_COUNT,
    names.SESSION_CART_COUNT,
    names.SESSION_PURCHASE_COUNT,
    names.SESSION_DISTINCT_CATEGORIES,
    names.SESSION_DWELL_S,
    "user_history_length",
)
"""Dense query features: session counters from the shared fold, plus the user's history length."""


def build_examples(events: pd.DataFrame, catalogue: Catalogue) -> Examples:
    """One example per event with a non-empty session prefix whose item differs from the last one.

    Args:
        events: Clean events sorted by time (see :func:`load_events`), train and test together.
        catalogue: The training catalogue (ids unknown to it become index 0).

    Returns:
        Examples in event-time order.
    """
    n = len(events)
    session_mat = np.zeros((n, RECENT_ITEMS), np.int64)
    history_mat = np.zeros((n, HISTORY_ITEMS), np.int64)
    dense = np.zeros((n, len(DENSE_FEATURES)), np.float32)
    spend = np.full(n, np.nan)
    keep = np.zeros(n, bool)
    index = catalogue.item_index
    states: dict[str, SessionState] = {}
    session_history: dict[str, list[int]] = {}
    user_items: dict[str, list[int]] = {}
    user_price: dict[str, tuple[float, int]] = {}
    columns = ["event_id", "event_time", "session_id", "user_id", "item_id", "event_type", "price", "category"]
    records = events[columns].to_dict("records")
    for row, event in enumerate(records):
        session_id = str(event["session_id"])
        user = event["user_id"]
        user = None if user is None or (isinstance(user, float) and math.isnan(user)) else str(user)
        state = states.get(session_id)
        if state is None:
            state = states[session_id] = new_session_state(event)
            past = user_items.get(user, []) if user else []
            session_history[session_id] = past[-HISTORY_ITEMS:]
        features = session_features(state)
        recent = features[names.SESSION_RECENT_ITEMS]
        item_id = str(event["item_id"])
        if recent and recent[-1] != item_id:
            keep[row] = True
            codes = [index.get(i, PAD) for i in recent]
            session_mat[row, RECENT_ITEMS - len(codes) :] = codes
            past = session_history[session_id]
            if past:
                history_mat[row, HISTORY_ITEMS - len(past) :] = past
            dense[row] = [
                features[names.SESSION_EVENT_COUNT],
                features[names.SESSION_VIEW_COUNT],
                features[names.SESSION_CART_COUNT],
                features[names.SESSION_PURCHASE_COUNT],
                features[names.SESSION_DISTINCT_CATEGORIES],
                features[names.SESSION_DWELL_S] / 60.0,
                len(past),
            ]
            if user and user in user_price:
                total, count = user_price[user]
                spend[row] = total / count
        update_session(state, event)
        if user:
            user_items.setdefault(user, []).append(index.get(item_id, PAD))
            if len(user_items[user]) > 4 * HISTORY_ITEMS:
                del user_items[user][:-HISTORY_ITEMS]
            price = event["price"]
            if price is not None and not math.isnan(price) and price >= 0:
                total, count = user_price.get(user, (0.0, 0))
                user_price[user] = (total + float(price), count + 1)
    rows = np.flatnonzero(keep)
    target_ids = events["item_id"].astype(str).to_numpy()[rows]
    return Examples(
        session=session_mat[rows],
        history=history_mat[rows],
        dense=np.log1p(np.clip(dense[rows], 0, None)).astype(np.float32),
        target=np.array([index.get(i, PAD) for i in target_ids], np.int64),
        target_id=target_ids,
        weight=events["event_type"].map(EVENT_WEIGHTS).fillna(1.0).to_numpy(np.float32)[rows],
        time_ms=events["event_time"].to_numpy(np.int64)[rows],
        user_spend=spend[rows],
        session_id=events["session_id"].astype(str).to_numpy()[rows],
    )


@dataclass
class Split:
    """A temporal split: everything the models and baselines may learn from, and the future.

    Attributes:
        cut_ms: Events at or after this time are the future.
        train_events: Events before the cut (the only events any model or baseline fits on).
        catalogue: Fitted on ``train_events``.
        train: Examples whose target is before the cut.
        test: Examples whose target is at or after the cut (known-item and unseen targets).
        fingerprint: Dataset fingerprint.
        stats: Counts for the report.
    """

    cut_ms: int
    train_events: pd.DataFrame
    catalogue: Catalogue
    train: Examples
    test: Examples
    fingerprint: str
    stats: dict[str, Any] = field(default_factory=dict)


def temporal_split(
    events: pd.DataFrame, *, test_fraction: float = 0.2, max_test: int | None = 20_000, seed: int = 0
) -> Split:
    """Cut time so that the latest ``test_fraction`` of the events fall after it.

    The cut is a point in time (a quantile of event times, robust to a few outlying
    timestamps): everything before it is the past models learn from, everything at or
    after it is the future they are tested on.

    Args:
        events: Clean sorted events (:func:`load_events`).
        test_fraction: Share of the events at or after the cut.
        max_test: Keep at most this many test examples (a seeded sample) to bound evaluation time.
        seed: Sampling seed.

    Raises:
        DatasetTooSmallError: Too few examples on either side of the cut.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    start, end = int(events["event_time"].iloc[0]), int(events["event_time"].iloc[-1])
    if end <= start:
        raise DatasetTooSmallError("all events share one timestamp; a temporal split needs a time span")
    cut = int(np.quantile(events["event_time"].to_numpy(), 1.0 - test_fraction))
    if cut <= start:
        cut = start + 1
    train_events = events[events["event_time"] < cut]
    if len(train_events) < MIN_EVENTS // 2:
        raise DatasetTooSmallError(f"{len(train_events)} events before the cut; need at least {MIN_EVENTS // 2}")
    catalogue = build_catalogue(train_events)
    examples = build_examples(events, catalogue)
    is_test = examples.time_ms >= cut
    train, test = examples.subset(~is_test), examples.subset(is_test)
    if len(train) < MIN_TRAIN_EXAMPLES:
        raise DatasetTooSmallError(
            f"{len(train)} next-item examples before the cut; need at least {MIN_TRAIN_EXAMPLES} "
            "(sessions with two or more distinct consecutive items)"
        )
    if len(test) < MIN_TEST_EXAMPLES:
        raise DatasetTooSmallError(f"{len(test)} next-item examples after the cut; need at least {MIN_TEST_EXAMPLES}")
    n_test_all = len(test)
    if max_test is not None and len(test) > max_test:
        rows = np.sort(np.random.default_rng(seed).choice(len(test), max_test, replace=False))
        test = test.subset(rows)
    stats = {
        "events": len(events),
        "train_events": len(train_events),
        "items_in_train": catalogue.n_items - 1,
        "train_examples": len(train),
        "test_examples": n_test_all,
        "test_examples_evaluated": len(test),
        "test_unseen_target_share": float(np.mean(test.target == PAD)),
        "event_types": sorted(events["event_type"].unique().tolist()),
        "cut_ms": cut,
    }
    return Split(cut, train_events, catalogue, train, test, dataset_fingerprint(events), stats)

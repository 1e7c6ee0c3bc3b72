"""Training and evaluation examples read from the feature store, point in time.

A target is an event of the batch layer's silver events; its example is what the feature
services held just before it (``event_time - 1`` ms): the session so far and the user's
30-day history (``retrieval_v2`` through a :class:`~lambdarec.models.sources.FeatureSource`),
assembled by :func:`lambdarec.models.inputs.assemble_queries` — the function serving calls on
online rows. So an example only ever sees the past, on either side of the temporal cut.

The temporal split cuts time (a quantile of event times): events before the cut are the
training set, the examples whose target lies after the cut are the test set (their session
prefix may start before the cut — that is the past at prediction time). Targets that repeat
the item just before them are skipped (a reload is not a recommendation), as in the
session-based recommendation literature.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lambdarec import names
from lambdarec.models.inputs import PAD, QueryInputs, Vocabulary, assemble_queries, number

if TYPE_CHECKING:
    from lambdarec.models.sources import FeatureSource

Catalogue = Vocabulary
"""The baselines' name for the training vocabulary (ids, content, popularity)."""

MIN_EVENTS = 200
"""Fewer events than this cannot train or evaluate anything meaningful."""
MIN_TRAIN_EXAMPLES = 50
"""Next-item examples needed before the cut."""
MIN_TEST_EXAMPLES = 10
"""Next-item examples needed after the cut."""
PRICE_BUCKETS = 10
"""Price buckets (quantiles of log price over the training items); bucket 0 = unknown price."""
EVENT_WEIGHTS: dict[str, float] = {
    names.EventType.VIEW.value: 1.0,
    names.EventType.CART.value: 3.0,
    names.EventType.PURCHASE.value: 5.0,
}
"""Label weight of a target by its event type (purchase > cart > view)."""


class DatasetError(ValueError):
    """The dataset cannot be used to train or evaluate the models."""


class DatasetTooSmallError(DatasetError):
    """Too few events or examples; the message names the minimum."""


def load_events(
    spec_or_table: str | pa.Table | pd.DataFrame, *, limit: int | None = None, earliest_ms: int | None = None
) -> pd.DataFrame:
    """Read events (``<adapter>:<path>``, an Arrow table or a frame) into a clean, sorted frame.

    Duplicates by ``event_id`` are dropped; rows are ordered by ``(event_time, event_id)``.
    ``earliest_ms`` is the earliest accepted event time for a spec (``Settings.earliest_event_ms``;
    default 2000-01-01); too few events from a spec name the adapter's drop reasons.

    Raises:
        DatasetTooSmallError: Fewer than :data:`MIN_EVENTS` events.
    """
    if isinstance(spec_or_table, str):
        from lambdarec.data.registry import open_dataset

        tables = []
        rows = 0
        adapter = open_dataset(spec_or_table, earliest_ms=earliest_ms)
        for table in adapter.iter_tables():
            tables.append(table)
            rows += table.num_rows
            if limit is not None and rows >= limit:
                break
        # The adapter knows why rows fell (e.g. every one before the earliest accepted time): say so.
        dropped = adapter.report.drop_reasons()
        if not tables:
            why = f": {dropped}" if dropped else ""
            raise DatasetTooSmallError(f"{spec_or_table}: no valid events (need at least {MIN_EVENTS}){why}")
        if rows < MIN_EVENTS and dropped:
            raise DatasetTooSmallError(
                f"{spec_or_table}: {rows} events; the models need at least {MIN_EVENTS}; {dropped}"
            )
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
        user_id: (n,) user of each example (``""``: anonymous).
        recent_ids: (n,) per example, the session's item ids so far, oldest first (a list each).
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
    user_id: np.ndarray
    recent_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def subset(self, rows: np.ndarray) -> Examples:
        """The examples at ``rows`` (indices or a boolean mask)."""
        return Examples(**{k: getattr(self, k)[rows] for k in self.__dataclass_fields__})

    def queries(self) -> QueryInputs:
        """The query-side model inputs of the examples (what :func:`assemble_queries` gave)."""
        return QueryInputs(self.session, self.history, self.dense, self.user_spend, list(self.recent_ids))


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def examples_from_rows(targets: pd.DataFrame, rows: dict[str, list[Any]], vocab: Vocabulary) -> Examples:
    """Next-item examples from target events and their ``retrieval_v2`` rows (one per target, same order).

    An example needs a session with at least one earlier item, and a target that is not the item
    just before it (a reload is not a recommendation, as in the session-based literature).

    Args:
        targets: Events (``event_time, session_id, user_id, item_id, event_type``) whose item is the target.
        rows: Their query rows, read at ``event_time - 1`` ms (so never the target itself).
        vocab: The training vocabulary.
    """
    queries = assemble_queries(rows, vocab)
    target_ids = targets["item_id"].astype(str).to_numpy()
    last = np.array([r[-1] if r else "" for r in queries.recent_ids], dtype=object)
    keep = (last != "") & (last != target_ids)
    users = targets["user_id"] if "user_id" in targets else pd.Series([None] * len(targets))
    user_ids = np.array(["" if u is None or (isinstance(u, float) and math.isnan(u)) else str(u) for u in users])
    examples = Examples(
        session=queries.session,
        history=queries.history,
        dense=queries.dense,
        target=vocab.codes(list(target_ids)),
        target_id=target_ids.astype(object),
        weight=targets["event_type"].map(EVENT_WEIGHTS).fillna(1.0).to_numpy(np.float32),
        time_ms=targets["event_time"].to_numpy(np.int64),
        user_spend=queries.user_spend,
        session_id=targets["session_id"].astype(str).to_numpy().astype(object),
        user_id=user_ids.astype(object),
        recent_ids=_object_array(queries.recent_ids),
    )
    return examples.subset(keep)


def fit_vocabulary(train_events: pd.DataFrame, content: dict[str, list[Any]]) -> Vocabulary:
    """The item vocabulary of the training events, with content encoders fitted on their feature rows.

    Args:
        train_events: Events before the cut (ids and popularity come from them).
        content: ``ranking_v2`` rows of those items at the cut (``item_id``, ``item_category``,
            ``item_brand``, ``item_price_mean_30d``): the content serving will read too.
    """
    popularity = train_events["item_id"].astype(str).value_counts().sort_index()
    item_ids = ["", *popularity.index.tolist()]
    by_item = {
        str(i): (c, b, number(p))
        for i, c, b, p in zip(
            content["item_id"],
            content["item_category"],
            content["item_brand"],
            content["item_price_mean_30d"],
            strict=True,
        )
    }
    categories = sorted({c for c, _, _ in by_item.values() if isinstance(c, str)})
    brands = sorted({b for _, b, _ in by_item.values() if isinstance(b, str)})
    prices = np.array([p for _, _, p in by_item.values()], np.float64)
    known = prices[np.isfinite(prices) & (prices >= 0)]
    edges: list[float] = (
        np.unique(np.quantile(np.log1p(known), np.linspace(0, 1, PRICE_BUCKETS + 1)[1:-1])).tolist()
        if known.size
        else []
    )
    zeros = [0] * len(item_ids)
    vocab = Vocabulary(item_ids, categories, brands, edges, zeros, zeros, zeros)
    rows = [by_item.get(i, (None, None, math.nan)) for i in item_ids]
    vocab.item_category = vocab.category_codes([c for c, _, _ in rows])
    vocab.item_brand = vocab.brand_codes([b for _, b, _ in rows])
    vocab.item_price_bucket = vocab.price_bucket([p for _, _, p in rows])
    vocab.item_category[PAD] = vocab.item_brand[PAD] = vocab.item_price_bucket[PAD] = PAD
    vocab.item_popularity = np.r_[0.0, popularity.to_numpy(np.float64)]
    return vocab


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
        items: ``ranking_v2`` rows of the items known before the cut (the evaluation's item index).
        stats: Counts for the report.
    """

    cut_ms: int
    train_events: pd.DataFrame
    catalogue: Catalogue
    train: Examples
    test: Examples
    fingerprint: str
    items: dict[str, list[Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def temporal_split(
    events: pd.DataFrame,
    source: FeatureSource,
    *,
    test_fraction: float = 0.2,
    max_test: int | None = 5_000,
    max_train: int | None = 200_000,
    seed: int = 0,
) -> Split:
    """Cut time so that the latest ``test_fraction`` of the events fall after it; read every example's
    features from ``source`` as of just before its target.

    The cut is a point in time (a quantile of event times, robust to a few outlying timestamps):
    everything before it is the past models learn from, everything at or after it is the future
    they are tested on. Examples on both sides are read the same way (point in time), so a test
    example sees its session up to the event before its target, as a request would.

    Args:
        events: Clean sorted events (:func:`load_events`): the batch layer's silver events.
        source: Where the query and content rows are read (offline store: point in time).
        test_fraction: Share of the events at or after the cut.
        max_test: Keep at most this many test examples (a seeded sample) to bound evaluation time.
        max_train: Keep at most this many (latest) training examples.
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
    # Only events with an earlier event in their session can be examples: skip the rest unread.
    later = events[events.duplicated("session_id")]
    train_targets = later[later["event_time"] < cut]
    if max_train is not None and len(train_targets) > max_train:
        train_targets = train_targets.iloc[-max_train:]
    test_targets = later[later["event_time"] >= cut]
    if max_test is not None and len(test_targets) > 2 * max_test:
        # Twice the cap: some are dropped below (a repeat of the item just before).
        rows = np.sort(np.random.default_rng(seed).choice(len(test_targets), 2 * max_test, replace=False))
        test_targets = test_targets.iloc[rows]
    items = sorted(train_events["item_id"].astype(str).unique().tolist())
    content = source.candidate_rows([""] * len(items), items, [cut] * len(items))
    vocab = fit_vocabulary(train_events, content)
    targets = pd.concat([train_targets, test_targets])
    query_rows = source.query_rows(
        targets["session_id"].astype(str).tolist(),
        targets["user_id"].tolist(),
        (targets["event_time"].to_numpy(np.int64) - 1).tolist(),
    )
    examples = examples_from_rows(targets, query_rows, vocab)
    is_test = examples.time_ms >= cut
    train, test = examples.subset(~is_test), examples.subset(is_test)
    if len(train) < MIN_TRAIN_EXAMPLES:
        raise DatasetTooSmallError(
            f"{len(train)} next-item examples before the cut; need at least {MIN_TRAIN_EXAMPLES} "
            "(sessions with two or more distinct consecutive items, with features in the store)"
        )
    if len(test) < MIN_TEST_EXAMPLES:
        raise DatasetTooSmallError(f"{len(test)} next-item examples after the cut; need at least {MIN_TEST_EXAMPLES}")
    n_test_all = len(test)
    if max_test is not None and len(test) > max_test:
        keep = np.sort(np.random.default_rng(seed).choice(len(test), max_test, replace=False))
        test = test.subset(keep)
    stats = {
        "events": len(events),
        "train_events": len(train_events),
        "items_in_train": vocab.n_items - 1,
        "train_examples": len(train),
        "test_examples": n_test_all,
        "test_examples_evaluated": len(test),
        "test_unseen_target_share": float(np.mean(test.target == PAD)),
        "event_types": sorted(events["event_type"].unique().tolist()),
        "cut_ms": cut,
    }
    return Split(cut, train_events, vocab, train, test, dataset_fingerprint(events), content, stats)


def validation_split(split: Split, fraction: float = 0.2, max_examples: int | None = 5_000, seed: int = 0) -> Split:
    """A split carved from ``split``'s past alone: where settings are chosen, never on the test side.

    The latest ``fraction`` of the training examples become the "test" examples, the earlier ones
    train; baselines fit on the events before that second cut. The vocabulary, the content rows and
    the item index stay ``split``'s (items first seen in the validation window have ids no model
    trained, so they are as cold as at test time), and a validation target first seen in that
    window is a miss for every method, as an unseen test target is.

    Args:
        split: The temporal split whose training side is carved.
        fraction: Latest share of the training examples held out for validation.
        max_examples: Score at most this many validation examples (a seeded sample).
        seed: Sampling seed.

    Raises:
        DatasetTooSmallError: Too few training examples to carve a validation window.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    train = split.train
    if len(train) < 2 * MIN_TRAIN_EXAMPLES:
        raise DatasetTooSmallError(f"{len(train)} training examples are too few to carve a validation window")
    cut = int(train.time_ms[int(len(train) * (1.0 - fraction))])
    first = int(np.searchsorted(train.time_ms, cut))
    events = split.train_events[split.train_events["event_time"] < cut]
    held = train.subset(np.arange(first, len(train)))
    seen = set(events["item_id"].astype(str))
    known = np.array([str(t) in seen for t in held.target_id], bool)
    held = replace(held, target=np.where(known, held.target, PAD))
    if max_examples is not None and len(held) > max_examples:
        held = held.subset(np.sort(np.random.default_rng(seed).choice(len(held), max_examples, replace=False)))
    stats = {
        "train_events": len(events),
        "train_examples": first,
        "validation_examples": len(held),
        "validation_unseen_target_share": float(np.mean(held.target == PAD)),
        "cut_ms": cut,
    }
    return Split(
        cut, events, split.catalogue, train.subset(np.arange(first)), held, split.fingerprint, split.items, stats
    )

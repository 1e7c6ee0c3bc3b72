"""Leak-free examples, the temporal split and the bad-input paths (before any PyTorch call)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from fake_source import EventFeatureSource
from lambdarec.models.data import (
    MIN_EVENTS,
    DatasetError,
    DatasetTooSmallError,
    dataset_fingerprint,
    examples_from_rows,
    fit_vocabulary,
    load_events,
    temporal_split,
)
from lambdarec.models.inputs import PAD


def _examples(events: pd.DataFrame) -> Any:
    """Every event as a target, read through the in-process stand-in one millisecond before it."""
    source = EventFeatureSource(events)
    items = sorted(events["item_id"].astype(str).unique())
    vocab = fit_vocabulary(events, source.candidate_rows([""] * len(items), items, [0] * len(items)))
    rows = source.query_rows(
        events["session_id"].tolist(), events["user_id"].tolist(), (events["event_time"] - 1).tolist()
    )
    return examples_from_rows(events, rows, vocab), vocab


def _events(rows: list[tuple[int, str, str, str]], **extra: Any) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["event_time", "session_id", "item_id", "event_type"])
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    frame["user_id"] = extra.get("user_id")
    frame["price"] = extra.get("price", 1.0)
    frame["category"] = extra.get("category", "c")
    frame["brand"] = extra.get("brand")
    return frame


def test_split_trains_only_on_the_past(tiny_split: Any) -> None:
    split = tiny_split
    assert (split.train_events["event_time"] < split.cut_ms).all()
    assert (split.train.time_ms < split.cut_ms).all()
    assert (split.test.time_ms >= split.cut_ms).all()
    # The catalogue knows only items seen before the cut.
    assert set(split.catalogue.item_index) == set(split.train_events["item_id"].astype(str))
    # Training targets are all known items; test targets may be unseen (index 0).
    assert (split.train.target != PAD).all()


def test_examples_use_the_session_prefix_from_the_feature_rows() -> None:
    events = _events([(1000, "s", "a", "view"), (2000, "s", "b", "view"), (3000, "s", "c", "purchase")])
    examples, vocab = _examples(events)
    # The first event has no prefix; the next two see ["a"] and ["a", "b"].
    assert len(examples) == 2
    index = vocab.item_index
    assert examples.session[0, -1] == index["a"] and (examples.session[0, :-1] == PAD).all()
    assert examples.session[1, -2:].tolist() == [index["a"], index["b"]]
    assert examples.target_id.tolist() == ["b", "c"]
    assert examples.weight.tolist() == [1.0, 5.0]  # purchase weighs more than a view
    assert [list(r) for r in examples.recent_ids] == [["a"], ["a", "b"]]


def test_repeated_item_is_not_a_target() -> None:
    events = _events([(1000, "s", "a", "view"), (2000, "s", "a", "view"), (3000, "s", "b", "view")])
    examples, _ = _examples(events)
    assert examples.target_id.tolist() == ["b"]


def test_nan_prices_and_unknown_content_fall_back_to_bucket_zero() -> None:
    events = _events([(1000 + i, f"s{i % 7}", f"i{i % 11}", "view") for i in range(60)], price=np.nan, category=None)
    _, vocab = _examples(events)
    assert (vocab.item_price_bucket == PAD).all()
    assert (vocab.item_category == PAD).all()
    unseen = vocab.content_inputs(
        {"item_id": ["never-seen"], "item_category": ["new"], "item_brand": [None], "item_price_mean_30d": [None]}
    )
    assert unseen["item"].tolist() == [PAD] and unseen["price"].tolist() == [PAD]


def test_empty_and_tiny_datasets_are_rejected_with_the_minimum() -> None:
    with pytest.raises(DatasetTooSmallError, match=str(MIN_EVENTS)):
        load_events(_events([(1000, "s", "a", "view")]))
    with pytest.raises(DatasetError, match="columns"):
        load_events(pd.DataFrame({"item_id": ["a"]}))


def test_one_timestamp_cannot_be_split() -> None:
    events = load_events(_events([(1000, f"s{i}", f"i{i}", "purchase") for i in range(MIN_EVENTS)]))
    with pytest.raises(DatasetTooSmallError, match="timestamp"):
        temporal_split(events, EventFeatureSource(events))


def test_one_event_type_is_fine(tiny_events: pd.DataFrame) -> None:
    purchases = tiny_events.assign(event_type="purchase")
    split = temporal_split(purchases, EventFeatureSource(purchases))
    assert split.stats["event_types"] == ["purchase"]
    assert len(split.train) > 0


def test_fingerprint_ignores_row_order(tiny_events: pd.DataFrame) -> None:
    assert dataset_fingerprint(tiny_events) == dataset_fingerprint(tiny_events.iloc[::-1])


def test_validation_split_carves_the_training_side_and_never_reads_the_test_side(tiny_split: Any) -> None:
    from lambdarec.models.data import PAD, validation_split

    carved = validation_split(tiny_split, 0.2)
    train = tiny_split.train
    assert len(carved.train) + carved.stats["validation_examples"] == len(train)
    assert carved.train.time_ms.max() < carved.cut_ms <= carved.test.time_ms.min()
    assert carved.test.time_ms.max() < tiny_split.cut_ms  # the test side is untouched
    assert (carved.train_events["event_time"] < carved.cut_ms).all()
    assert carved.catalogue is tiny_split.catalogue and carved.items is tiny_split.items
    seen = set(carved.train_events["item_id"].astype(str))
    unseen = np.array([str(t) not in seen for t in carved.test.target_id])
    assert ((carved.test.target == PAD) == unseen).all()  # first seen in the window: a miss, as at test time
    with pytest.raises(ValueError, match="fraction"):
        validation_split(tiny_split, 1.0)

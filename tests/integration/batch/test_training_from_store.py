"""Training examples read from the feature store never see their own future (real Spark, real Feast).

A seeded synthetic shop goes into a lake (no Kafka), the batch layer builds gold for every date,
and the training examples are read point in time through ``retrieval_v2``: every session value
describes exactly the session's events *before* the target, every user value exactly the user's
30 days before the target's day (the previous day's snapshot) — nothing at or after the example.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lambdarec import names
from lambdarec.settings import Settings, load_settings

# Module fixtures run real Kafka, Flink and Spark jobs and a training: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def store_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A lake with silver and gold for every date of a 3-day synthetic shop, and its Feast registry."""
    import pyarrow.parquet as pq

    from lambdarec.batch.pipeline import run_batch
    from lambdarec.data import generate_events_table
    from lambdarec.data.generator import GeneratorConfig
    from lambdarec.featurestore.store import apply

    root = tmp_path_factory.mktemp("store-training")
    config = GeneratorConfig(start=datetime(2024, 5, 1, tzinfo=UTC), days=3, idle_gap_share=0.2)
    path = Path(root) / "shop.parquet"
    pq.write_table(generate_events_table(4_000, 300, 150, seed=8, config=config), path)
    settings = load_settings("local", state_dir=Path(root) / "state")
    run_batch(settings, dataset=f"synthetic:{path}", gold_days=None, materialize=False)
    apply(settings)
    return settings


def test_no_training_row_holds_a_value_observed_at_or_after_its_time(store_settings: Settings) -> None:
    from lambdarec.batch.lake import Lake
    from lambdarec.featurestore.store import open_store
    from lambdarec.models.commands import silver_events
    from lambdarec.models.sources import OfflineFeatureSource

    events = silver_events(Lake.under(store_settings.state_dir))
    targets = events[events.duplicated("session_id")].sample(n=300, random_state=2).sort_values("event_time")
    moments = (targets["event_time"] - 1).tolist()
    rows = OfflineFeatureSource(open_store(store_settings)).query_rows(
        targets["session_id"].astype(str).tolist(), targets["user_id"].tolist(), moments
    )
    by_session = dict(list(events.groupby("session_id")))
    by_user = dict(list(events.groupby("user_id")))
    with_history = 0
    for i, (_, target) in enumerate(targets.iterrows()):
        t = int(target["event_time"])
        before = by_session[target["session_id"]]
        before = before[before["event_time"] < t]
        # The session as it was just before the target: its events before t, no more, no less.
        assert rows[names.SESSION_EVENT_COUNT][i] == len(before), target["event_id"]
        assert rows[names.SESSION_LAST_EVENT_MS][i] == int(before["event_time"].max()) < t
        assert rows[names.SESSION_RECENT_ITEMS][i][-1] == str(before.iloc[-1]["item_id"])
        user = target["user_id"]
        if user is None or user != user:
            assert rows["user_events_30d"][i] is None  # anonymous: no user's values
            continue
        day_start = t // DAY_MS * DAY_MS
        history = by_user[user]
        history = history[(history["event_time"] < day_start) & (history["event_time"] >= day_start - 30 * DAY_MS)]
        if len(history):
            with_history += 1
            assert rows["user_events_30d"][i] == len(history)
            assert rows["user_recent_items_30d"][i][-1] == str(history.iloc[-1]["item_id"])
        else:
            assert rows["user_events_30d"][i] is None  # the user's first day: no snapshot yet
    assert with_history > 20  # the user side was exercised, not only the anonymous path


def test_training_from_the_store_trains_both_models(store_settings: Settings) -> None:
    pytest.importorskip("torch")
    from lambdarec.models.commands import train_from_store
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    config = PipelineConfig(
        two_tower=TwoTowerConfig(dim=16, hidden=32, epochs=2, batch_size=256),
        deepfm=DeepFMConfig(embedding_dim=4, hidden=(16,), epochs=2, batch_size=512),
        retrieval_k=30,
        neighbour_k=10,
        ranker_queries=300,
    )
    result, recommender, _ = train_from_store(store_settings, label="store", config=config, max_test=200)
    assert result.split["train_examples"] > 500 and result.split["test_examples_evaluated"] > 50
    assert result.training["ranker_rows"] > 0
    assert len(recommender.index_ids) >= recommender.vocab.n_items - 1
    pipeline = next(r for r in result.rows if r["method"].startswith("two-stage"))
    assert 0.0 < pipeline["recall@100"] <= 1.0
    assert np.isfinite(result.ranker["ranker_auc"])

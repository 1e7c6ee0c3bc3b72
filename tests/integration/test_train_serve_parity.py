"""Train where you serve: the model inputs assembled from the online store equal the training rows.

One dataset (seeded synthetic shop, with sessions that sit idle for over 30 minutes) goes through
the real engines both ways:

- **serving side**: Kafka → the real Flink speed layer → the pusher → Feast's online store (session
  features), plus the batch views materialized;
- **training side**: Kafka → the real Spark batch layer (bronze → silver → gold for every date) →
  Feast's offline store, read point in time.

At one moment just after the last daily snapshot, for up to 200 (session, user) pairs that are live
(their newest event within the session view's 12 h TTL), the query inputs assembled from the online
rows equal those assembled from the offline rows, and a model trained through the offline store gives
every candidate the same score through either store: same candidates, same features, same numbers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lambdarec import names
from lambdarec.settings import Settings, load_settings

# Module fixtures run real Kafka, Flink and Spark jobs and a training: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
torch = pytest.importorskip("torch")

N_EVENTS = 8_000
DAYS = 2
SAMPLE = 200
SESSION_TTL_MS = 12 * 3600 * 1000


@pytest.fixture(scope="module")
def parity_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A state folder private to this module: its lake, feature store and job checkpoints."""
    return load_settings("local", state_dir=tmp_path_factory.mktemp("parity-state"))


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """The dataset: two days of a seeded synthetic shop, a fifth of its sessions with a long idle gap."""
    from lambdarec.data import generate_events_table
    from lambdarec.data.generator import GeneratorConfig

    start = datetime(2024, 3, 1, tzinfo=UTC)
    config = GeneratorConfig(start=start, days=DAYS, idle_gap_share=0.2)
    frame = generate_events_table(N_EVENTS, 600, 400, seed=21, config=config).to_pandas()
    # Whole days only (sessions started late spill into the next one): the comparison moment is
    # just after the last day's snapshot, and the sessions of that day's last 12 h are live then.
    end_ms = int((start + timedelta(days=DAYS)).timestamp() * 1000)
    frame = frame[frame["event_time"] < end_ms]
    return frame.sort_values(["event_time", "event_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def both_sides(parity_settings: Settings, kafka_bootstrap: str, events: pd.DataFrame) -> Iterator[tuple[Settings, int]]:
    """Publish the events, run the speed layer into the online store and the batch layer into gold.

    Yields:
        The settings and the moment (epoch ms) at which both stores are compared.
    """
    import orjson
    from confluent_kafka import Producer

    from lambdarec.batch.bronze import ingest_bronze
    from lambdarec.batch.gold import build_gold_range
    from lambdarec.batch.lake import Lake, parse_date, snapshot_time
    from lambdarec.batch.silver import build_silver, silver_dates
    from lambdarec.batch.spark import build_spark, kafka_jars
    from lambdarec.events.admin import ensure_topics
    from lambdarec.featurestore.store import apply, materialize, open_store
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.stream.feast_local import online_session_features
    from lambdarec.stream.service import PusherService, StreamJobService

    settings = parity_settings
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"{k}-{tag}" for k in ("clicks", "dlq", "session", "user", "item")}
    ensure_topics(kafka_bootstrap, {topics["clicks"]: 4, topics["dlq"]: 1, topics["session"]: 2, topics["user"]: 1,
                                    topics["item"]: 1})  # fmt: skip
    apply(settings)
    job = StreamJobService(
        settings,
        kafka_bootstrap,
        job_args=[
            "--source-topic", topics["clicks"], "--dlq-topic", topics["dlq"], "--session-topic", topics["session"],
            "--user-topic", topics["user"], "--item-topic", topics["item"], "--group-id", f"job-{tag}",
            "--checkpoint-ms", "2000", "--flush-ms", "20",
        ],
    )  # fmt: skip
    pusher = PusherService(
        settings,
        kafka_bootstrap,
        pusher_args=["--topic", topics["session"], "--user-topic", topics["user"], "--item-topic", topics["item"],
                     "--group-id", f"pusher-{tag}"],
    )  # fmt: skip
    supervisor = Supervisor(settings, [job, pusher])
    supervisor.up()
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "log_level": 0})
        records = events.astype(object).where(events.notna(), None).to_dict("records")
        for record in records:
            producer.produce(
                topics["clicks"],
                orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY),
                key=str(record["session_id"]).encode(),
            )
        assert producer.flush(60) == 0

        # The speed layer has caught up when every session's online count equals its events.
        counts = events.groupby("session_id").size()
        store = open_store(settings)
        sessions = counts.index.astype(str).tolist()

        def caught_up() -> bool:
            online = online_session_features(store, sessions)
            return all(
                (online.get(s) or {}).get(names.SESSION_EVENT_COUNT) == int(n)
                for s, n in zip(sessions, counts, strict=True)
            )

        _wait(caught_up, 300, "the speed layer's session features of every session online")

        lake = Lake.under(settings.state_dir)
        spark = build_spark(jars=kafka_jars(settings.resolved_jars_dir()))
        try:
            report = ingest_bronze(spark, lake, kafka_bootstrap, topics["clicks"])
            build_silver(spark, lake, sorted(report.by_date))
            days = silver_dates(lake)
            build_gold_range(spark, lake, days)
        finally:
            spark.stop()
        moment = snapshot_time(parse_date(days[-1])) + timedelta(minutes=1)
        views = [names.USER_HISTORY_FEATURE_VIEW, names.ITEM_STATS_FEATURE_VIEW, names.ITEM_NEIGHBOURS_FEATURE_VIEW]
        materialize(settings, moment - timedelta(days=31), moment, views)
        yield settings, int(moment.timestamp() * 1000)
    finally:
        supervisor.down()


def _wait(check: Any, timeout_s: float, what: str) -> None:
    import time

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def trained(both_sides: tuple[Settings, int]) -> Any:
    """A small two-stage model trained through the offline store of the batch layer's lake."""
    from lambdarec.models.commands import train_from_store
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    torch.set_num_threads(2)
    settings, _ = both_sides
    # The sequence-aware query tower (issue 17): it reads session_recent_items in order, so the online
    # and offline rows must agree on the order too, not only on the set.
    config = PipelineConfig(
        two_tower=TwoTowerConfig(
            dim=16, hidden=32, epochs=2, batch_size=256, sequence_encoder="attention", min_sequence_examples=50
        ),
        deepfm=DeepFMConfig(embedding_dim=4, hidden=(16,), epochs=2, batch_size=512),
        retrieval_k=30,
        neighbour_k=10,
        ranker_queries=500,
    )
    _, recommender, _ = train_from_store(settings, label="parity", config=config, max_test=300)
    assert recommender.config.two_tower.sequence_encoder == "attention", recommender.retrieval.history.fallback
    return recommender


def _live_pairs(events: pd.DataFrame, moment_ms: int) -> pd.DataFrame:
    last = events.groupby("session_id").agg(last=("event_time", "max"), user_id=("user_id", "last"))
    live = last[(last["last"] < moment_ms) & (last["last"] >= moment_ms - SESSION_TTL_MS)]
    picked = live.sample(n=min(SAMPLE, len(live)), random_state=3) if len(live) else live
    return picked.reset_index()


def test_online_query_inputs_equal_the_training_rows(
    both_sides: tuple[Settings, int], events: pd.DataFrame, trained: Any
) -> None:
    from lambdarec.featurestore.store import open_store
    from lambdarec.models.inputs import assemble_queries, id_list
    from lambdarec.models.sources import OfflineFeatureSource, OnlineFeatureSource

    settings, moment = both_sides
    pairs = _live_pairs(events, moment)
    assert len(pairs) >= 100, f"only {len(pairs)} live sessions to compare"
    idle = events.sort_values("event_time").groupby("session_id")["event_time"].apply(lambda t: t.diff().max())
    assert (idle[pairs["session_id"]] > 30 * 60 * 1000).any(), "the sample holds no session with a long idle gap"
    sessions, users = pairs["session_id"].astype(str).tolist(), pairs["user_id"].tolist()
    store = open_store(settings)
    offline_rows = OfflineFeatureSource(store).query_rows(sessions, users, [moment] * len(pairs))
    offline_rules = OfflineFeatureSource(store).session_rule_rows(sessions, [moment] * len(pairs))
    online = OnlineFeatureSource(store)
    try:
        online_rows = online.query_rows(sessions, users, [moment] * len(pairs))
        online_rules = online.session_rule_rows(sessions, [moment] * len(pairs))
    finally:
        online.close()
    # The request path's rule (items bought in the session are left out) reads the same both ways.
    bought = names.SESSION_PURCHASED_ITEMS
    assert [id_list(v) for v in online_rules[bought]] == [id_list(v) for v in offline_rules[bought]]
    assert any(id_list(v) for v in online_rules[bought]), "no sampled session bought anything"
    offline = assemble_queries(offline_rows, trained.vocab)
    served = assemble_queries(online_rows, trained.vocab)
    assert offline.recent_ids == served.recent_ids
    np.testing.assert_array_equal(offline.session, served.session)
    np.testing.assert_array_equal(offline.history, served.history)
    np.testing.assert_allclose(offline.dense, served.dense, rtol=0, atol=1e-6)
    np.testing.assert_allclose(offline.user_spend, served.user_spend, rtol=0, atol=1e-6)
    # Not vacuous: sessions with history and users with a 30-day past are among them.
    assert (offline.session != 0).any(axis=1).mean() > 0.9
    assert (offline.history != 0).any()


def test_served_scores_equal_the_offline_scores(
    both_sides: tuple[Settings, int], events: pd.DataFrame, trained: Any, tmp_path: Path
) -> None:
    from lambdarec.featurestore.store import open_store
    from lambdarec.models.data import Examples
    from lambdarec.models.inputs import assemble_queries
    from lambdarec.models.sources import OfflineFeatureSource, OnlineFeatureSource

    settings, moment = both_sides
    pairs = _live_pairs(events, moment)
    sessions, users = pairs["session_id"].astype(str).tolist(), pairs["user_id"].tolist()
    store = open_store(settings)
    offline_source, online_source = OfflineFeatureSource(store), OnlineFeatureSource(store)
    try:
        rows = online_source.query_rows(sessions, users, [moment] * len(pairs))
        queries = assemble_queries(rows, trained.vocab)
        n = len(pairs)
        recent = np.empty(n, dtype=object)
        recent[:] = queries.recent_ids
        examples = Examples(
            session=queries.session,
            history=queries.history,
            dense=queries.dense,
            target=np.zeros(n, np.int64),
            target_id=np.array([""] * n, dtype=object),
            weight=np.ones(n, np.float32),
            time_ms=np.full(n, moment + 1, np.int64),  # the models read as of time_ms - 1
            user_spend=queries.user_spend,
            session_id=np.array(sessions, dtype=object),
            user_id=np.array(["" if u is None or u != u else str(u) for u in users], dtype=object),
            recent_ids=recent,
        )
        served_pairs, served = trained.score(examples, online_source)
        offline_pairs, offline = trained.score(examples, offline_source)
    finally:
        online_source.close()
    assert len(served_pairs) > 10 * n  # candidates from the index, the neighbours and the session
    np.testing.assert_array_equal(served_pairs.query, offline_pairs.query)
    assert served_pairs.item_ids.tolist() == offline_pairs.item_ids.tolist()
    np.testing.assert_array_equal(served_pairs.source, offline_pairs.source)
    np.testing.assert_allclose(served_pairs.neighbour, offline_pairs.neighbour, rtol=0, atol=1e-6)
    assert (served_pairs.neighbour > 0).any()  # the batch layer's neighbours were read, not empty
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-6)

"""A dataset straight into the lake (no Kafka): ``run_batch(dataset=...)`` on a real local[2] Spark."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lambdarec import names
from lambdarec.batch.gold import GOLD_TABLES
from lambdarec.batch.lake import Lake
from lambdarec.batch.silver import silver_dates
from lambdarec.settings import load_settings


def test_a_dataset_runs_through_bronze_silver_and_gold_without_kafka(
    spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lambdarec.batch.spark as spark_module
    import lambdarec.featurestore.store as store_module
    from lambdarec.batch.pipeline import run_batch
    from lambdarec.data.generator import GeneratorConfig, generate_events

    config = GeneratorConfig(days=3, idle_gap_share=0.3)
    generated = generate_events(4_000, 300, 100, 21, tmp_path / "gen", config=config, progress=False)
    # The session's Spark serves the run (a second one cannot start), and run_batch must not stop
    # it; Feast is not this test's subject (the lead's repo may be mid-change), so apply is a stub.
    monkeypatch.setattr(spark_module, "build_spark", lambda **_: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)
    monkeypatch.setattr(store_module, "apply", lambda settings: {})
    settings = load_settings("local", state_dir=tmp_path / "state")

    summary = run_batch(settings, dataset=f"synthetic:{tmp_path / 'gen'}", gold_days=None, materialize=False)

    lake = Lake.under(settings.state_dir)
    events = pq.read_table(generated.out_path).sort_by("event_id")
    silver = pq.read_table(lake.silver).sort_by("event_id")
    assert summary.bronze["records"] == events.num_rows == silver.num_rows
    for column in events.column_names:  # the events as they are: the cleaning rules found nothing
        assert silver[column].to_pylist() == events[column].to_pylist(), column
    assert not pc.any(silver["is_late"]).as_py()
    assert sum(sum(r["rejected"].values()) + r["duplicates"] for r in summary.silver) == 0
    # The reports count sessions by the shop's id (idle gaps included) per date.
    by_date = silver.to_pandas().groupby(silver["event_date"].cast("string").to_pandas())[names.SESSION_ID].nunique()
    assert {r["date"]: r["sessions"] for r in summary.silver} == by_date.to_dict()
    # Gold for every silver date, in one pass.
    dates = silver_dates(lake)
    assert len(dates) >= 3 and [g["date"] for g in summary.gold] == dates
    for table in GOLD_TABLES:
        assert sorted(p.name for p in lake.gold(table).glob("date=*")) == [f"date={d}" for d in dates]
    assert not lake.offsets("clicks").exists()  # the Kafka ledger is not this path's

"""Pure batch logic: session prefix snapshots, offsets planning, training labels, dataset → bronze, CLI wiring."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdarec import names
from lambdarec.batch.bronze import plan_offsets, run_id
from lambdarec.batch.lake import Lake, read_json, snapshot_time, write_json_atomic
from lambdarec.batch.sessions import EVENT_TIMESTAMP, SNAPSHOT_DATE, session_prefix_frame
from lambdarec.batch.silver import check_bronze_file
from lambdarec.batch.testing import BRONZE_SCHEMA, bronze_table
from lambdarec.features.session import fold_session, session_prefix_rows

T0 = 1_704_067_200_000  # 2024-01-01


def ev(i: int, session: str, t: int, kind: str = "view", item: str | None = None, **extra: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "event_time": t,
        "session_id": session,
        "user_id": extra.get("user_id", "u1"),
        "item_id": item or f"i{i % 5}",
        "event_type": kind,
        "price": 10.0,
        "category": extra.get("category"),
        "brand": None,
    }


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_prefix_frame_rows_are_the_shared_fold_of_each_prefix() -> None:
    rng = random.Random(3)
    day = "2024-01-02"
    # The day before (state only) and the day itself, with a 75-minute idle gap inside it.
    times = [T0 + 86_400_000 - 5_000 + i * 1000 for i in range(10)] + [
        T0 + 86_400_000 + 75 * 60_000 + i * 1000 for i in range(30)
    ]
    rows = [
        ev(i, "s", t, rng.choice(["view", "cart", "purchase"]), category=rng.choice([None, "x", "y"]))
        for i, t in enumerate(times)
    ]
    frame = pd.DataFrame(rows + rows[:5]).assign(**{SNAPSHOT_DATE: day})  # duplicates are harmless
    out = session_prefix_frame(frame.sample(frac=1, random_state=4))
    own = [r for r in rows if int(r["event_time"]) >= T0 + 86_400_000]  # type: ignore[call-overload]
    assert len(out) == len(own) == 35  # one row per event of the day (times are distinct here)
    assert set(out[names.SESSION_ID]) == {"s"}  # the idle gap split nothing
    assert (out[EVENT_TIMESTAMP] == pd.to_datetime(out[names.SESSION_LAST_EVENT_MS], unit="ms", utc=True)).all()
    for record in _records(out):
        prefix = [r for r in rows if int(r["event_time"]) <= record[names.SESSION_LAST_EVENT_MS]]  # type: ignore[call-overload]
        expected = fold_session(prefix)
        for name in names.SESSION_FEATURES:
            actual = record[name]
            assert (list(actual) if name == names.SESSION_RECENT_ITEMS else actual) == expected[name], name
    assert out[names.SESSION_DISTINCT_CATEGORIES].max() <= 2  # missing categories are not "nan"


def test_prefix_frame_folds_each_date_and_session_on_its_own() -> None:
    rng = random.Random(7)
    rows = [
        ev(i, rng.choice("abc"), T0 + i * 60_000 * rng.choice([1, 45]), rng.choice(["view", "cart"]), category="x")
        for i in range(60)
    ]
    events = pd.DataFrame(rows)
    # The same events serve two snapshot dates; each date's rows start at its own midnight.
    days = ["2024-01-01", "2024-01-02"]
    frame = pd.concat([events.assign(**{SNAPSHOT_DATE: d}) for d in days]).sample(frac=1, random_state=2)
    out = session_prefix_frame(frame)
    expected = []
    for d, start in zip(days, (T0, T0 + 86_400_000), strict=True):
        for _session, group in events.groupby(names.SESSION_ID):
            expected += [{**r, SNAPSHOT_DATE: d} for r in session_prefix_rows(_records(group), emit_from_ms=start)]
    assert len(out) == len(expected) > 40
    got = sorted(
        _records(out.drop(columns=[EVENT_TIMESTAMP])),
        key=lambda r: (r[SNAPSHOT_DATE], r["session_id"], r[names.SESSION_LAST_EVENT_MS]),
    )
    want = sorted(expected, key=lambda r: (r[SNAPSHOT_DATE], r["session_id"], r[names.SESSION_LAST_EVENT_MS]))
    for g, w in zip(got, want, strict=True):
        assert {**g, names.SESSION_RECENT_ITEMS: list(g[names.SESSION_RECENT_ITEMS])} == w


def test_offsets_plan_starts_where_the_ledger_ends() -> None:
    start, end = plan_offsets({"0": 10, "1": 3}, {0: (0, 25), 1: (5, 9), 2: (0, 4)})
    assert start == {"0": 10, "1": 5, "2": 0}  # 1 fell below retention: restart at the low mark
    assert end == {"0": 25, "1": 9, "2": 4}
    assert run_id("clicks", start) == run_id("clicks", dict(reversed(start.items())))
    assert run_id("clicks", start) != run_id("clicks", end)


def test_json_ledger_is_written_atomically(tmp_path: Path) -> None:
    path = Lake(tmp_path).offsets("clicks")
    write_json_atomic(path, {"committed": {"0": 1}})
    write_json_atomic(path, {"committed": {"0": 2}})
    assert read_json(path) == {"committed": {"0": 2}}
    assert [p.name for p in path.parent.iterdir()] == ["clicks.json"]


def test_snapshot_is_visible_only_after_its_day() -> None:
    from datetime import date

    assert snapshot_time(date(2024, 1, 5)).isoformat() == "2024-01-06T00:00:00+00:00"


def test_corrupt_and_drifted_bronze_files_are_recognised(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    table = bronze_table(pa.Table.from_pylist([ev(1, "a", T0)]))
    pq.write_table(table, good)
    assert check_bronze_file(good) is None
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    assert "unreadable" in (check_bronze_file(corrupt) or "")
    drifted = tmp_path / "drifted.parquet"
    pq.write_table(table.rename_columns([*BRONZE_SCHEMA.names[:-1], "payload"]), drifted)
    assert "value" in (check_bronze_file(drifted) or "")
    retyped = tmp_path / "retyped.parquet"
    pq.write_table(table.set_column(1, "kafka_offset", table["kafka_offset"].cast(pa.string())), retyped)
    assert "kafka_offset" in (check_bronze_file(retyped) or "")


def test_spark_archive_holds_the_package_and_the_jobs(tmp_path: Path) -> None:
    from lambdarec.batch.package import build_spark_archive

    archive, launcher = build_spark_archive(tmp_path)
    names_in = zipfile.ZipFile(archive).namelist()
    assert "lambdarec/batch/silver.py" in names_in
    assert "lambdarec_spark_jobs/build_gold.py" in names_in
    assert launcher.name == "run_job.py"
    first = archive.read_bytes()
    assert build_spark_archive(tmp_path)[0].read_bytes() == first  # reproducible bytes


def test_feature_store_config_fills_placeholders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdarec.featurestore.store import load_config_dict
    from lambdarec.settings import load_settings

    local = load_config_dict(load_settings("local", state_dir=tmp_path))
    assert local["online_store"] == {"type": "sqlite", "path": f"{tmp_path}/feast/online.db"}
    prod = load_settings("prod", state_dir=tmp_path, secret_key="s3cret")
    monkeypatch.delenv("LAMBDAREC_REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="LAMBDAREC_REDIS_URL"):
        load_config_dict(prod)
    monkeypatch.setenv("LAMBDAREC_REDIS_URL", "redis.internal:6379")
    assert load_config_dict(prod)["online_store"]["connection_string"] == "redis.internal:6379"
    # An explicit setting wins over the variable (a test or a CLI passing its own server).
    pinned = load_settings("prod", state_dir=tmp_path, secret_key="s3cret", redis_url="127.0.0.1:7000")
    assert load_config_dict(pinned)["online_store"]["connection_string"] == "127.0.0.1:7000"


def test_feature_repo_defines_the_versioned_services(tmp_path: Path) -> None:
    pytest.importorskip("feast")
    from lambdarec.featurestore.store import load_definitions
    from lambdarec.settings import load_settings

    objects = {type(o).__name__ + ":" + o.name: o for o in load_definitions(load_settings("local", state_dir=tmp_path))}
    assert f"FeatureService:{names.RETRIEVAL_FEATURE_SERVICE}" in objects
    assert f"FeatureService:{names.RANKING_FEATURE_SERVICE}" in objects
    push = objects[f"PushSource:{names.SESSION_PUSH_SOURCE}"]
    view = objects[f"FeatureView:{names.SESSION_FEATURE_VIEW}"]
    assert {f.name for f in view.features} == set(names.SESSION_FEATURES)
    assert view.stream_source is push
    assert str(tmp_path) in json.dumps(objects["FileSource:user_history_source"].path)


def test_dataset_goes_to_bronze_as_the_kafka_ingest_writes_it(tmp_path: Path) -> None:
    from lambdarec.batch.dataset import DATASET_PARTITION, dataset_run_id, ingest_dataset
    from lambdarec.data.generator import GeneratorConfig, generate_events

    generated = generate_events(3_000, 200, 50, 4, tmp_path / "gen", config=GeneratorConfig(days=3), progress=False)
    events = pq.read_table(generated.out_path)
    lake = Lake(tmp_path / "lake")
    spec = f"synthetic:{tmp_path / 'gen'}"
    report = ingest_dataset(lake, spec, batch_size=700)  # several batches, several dates each
    assert report.records == events.num_rows == sum(report.by_date.values())
    assert len(report.by_date) >= 3 and report.adapter["events_emitted"] == events.num_rows
    bronze = pq.read_table(lake.bronze / f"ingest={dataset_run_id(spec)}")
    assert bronze.num_rows == events.num_rows
    assert set(bronze["kafka_partition"].to_pylist()) == {DATASET_PARTITION}
    assert sorted(bronze["kafka_offset"].to_pylist()) == list(range(events.num_rows))
    decoded = {e["event_id"]: e for e in (json.loads(v) for v in bronze["value"].to_pylist())}
    for row in events.to_pylist()[:200]:
        assert decoded[row["event_id"]] == {k: v for k, v in row.items() if v is not None}
    # Broker time = event time: silver flags nothing late and sees no clock skew.
    first = bronze.sort_by("kafka_offset").slice(0, 1).to_pylist()[0]
    assert int(first["kafka_timestamp"].timestamp() * 1000) == json.loads(first["value"])["event_time"]
    assert check_bronze_file(next((lake.bronze / f"ingest={dataset_run_id(spec)}").rglob("*.parquet"))) is None
    assert not lake.offsets("clicks").exists()  # the Kafka ledger is not this path's
    # A rerun replaces the run folder: the same bronze, never a second copy.
    assert ingest_dataset(lake, spec).records == report.records
    assert pq.read_table(lake.bronze).num_rows == events.num_rows


def test_gold_dates_latest_n_listed_or_all() -> None:
    from lambdarec.batch.pipeline import select_gold_dates

    available = ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert select_gold_dates(available, 2) == available[1:]
    assert select_gold_dates(available, None) == available
    assert select_gold_dates(available, 0) == []
    assert select_gold_dates(available, ["2024-01-03", "2024-01-01", "2024-01-03"]) == ["2024-01-01", "2024-01-03"]


def test_cli_batch_run_passes_the_dataset_and_the_gold_dates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import lambdarec.batch.pipeline as pipeline
    from lambdarec.cli import app

    calls: list[dict[str, object]] = []

    def fake_run_batch(settings: object, **kwargs: object) -> pipeline.BatchSummary:
        calls.append(kwargs)
        return pipeline.BatchSummary()

    monkeypatch.setattr(pipeline, "run_batch", fake_run_batch)
    runner = CliRunner()
    base = ["--state-dir", str(tmp_path), "batch", "run", "--no-materialize"]
    result = runner.invoke(app, [*base, "--dataset", "uci:data/retail.xlsx", "--gold-all"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "--gold-date", "2024-01-02", "--gold-date", "2024-01-01"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert [(c["dataset"], c["gold_days"]) for c in calls] == [
        ("uci:data/retail.xlsx", None),
        (None, ["2024-01-02", "2024-01-01"]),
        (None, 2),
    ]

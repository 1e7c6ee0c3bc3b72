"""Pure batch logic: sessionization, the session fold per visit, offsets planning, training labels."""

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
from lambdarec.batch.sessions import SESSION_GAP_MS, SESSION_KEY, session_feature_frame, sessionize_frame
from lambdarec.batch.silver import check_bronze_file
from lambdarec.batch.testing import BRONZE_SCHEMA, bronze_table
from lambdarec.batch.training import LABEL, ranking_examples, retrieval_examples
from lambdarec.features.session import fold_session

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


def test_sessionize_splits_after_thirty_idle_minutes() -> None:
    events = pd.DataFrame(
        [
            ev(1, "a", T0),
            ev(2, "a", T0 + SESSION_GAP_MS),  # exactly 30 min: same visit
            ev(3, "a", T0 + 2 * SESSION_GAP_MS + 1),  # 30 min + 1 ms idle: new visit
            ev(4, "b", T0 + 5),
            ev(5, "a", T0 + 10 * SESSION_GAP_MS),
        ]
    ).sample(frac=1, random_state=1)
    out = sessionize_frame(events)
    keys = dict(zip(out["event_id"], out[SESSION_KEY], strict=True))
    assert keys == {"e1": "a", "e2": "a", "e3": "a#1", "e4": "b", "e5": "a#2"}


def test_visit_features_are_the_shared_fold() -> None:
    rng = random.Random(3)
    rows = [
        ev(i, "s", T0 + i * 1000, rng.choice(["view", "cart", "purchase"]), category=rng.choice([None, "x", "y"]))
        for i in range(40)
    ]
    frame = sessionize_frame(pd.DataFrame(rows + rows[:5]))  # duplicates are harmless
    features = session_feature_frame(frame).iloc[0].to_dict()
    expected = fold_session(rows)
    for name in names.SESSION_FEATURES:
        assert features[name] == expected[name], name
    assert features[names.SESSION_DISTINCT_CATEGORIES] == 2  # missing categories are not "nan"


def test_each_visit_of_a_frame_is_folded_on_its_own() -> None:
    rng = random.Random(7)
    rows = [
        ev(i, rng.choice("abc"), T0 + i * 60_000 * rng.choice([1, 45]), rng.choice(["view", "cart"]), category="x")
        for i in range(60)
    ]
    frame = sessionize_frame(pd.DataFrame(rows)).sample(frac=1, random_state=2)  # any order
    features = session_feature_frame(frame).set_index(names.SESSION_ID)
    assert len(features) == frame[SESSION_KEY].nunique() > 3
    for key, visit in frame.groupby(SESSION_KEY):
        records = visit.astype(object).where(visit.notna(), None).to_dict("records")
        expected = fold_session([{**r, names.SESSION_ID: key} for r in records])
        for name in names.SESSION_FEATURES:
            assert features.loc[key, name] == expected[name], (key, name)


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


def test_ranking_labels_come_from_later_conversions_in_the_visit() -> None:
    events = sessionize_frame(
        pd.DataFrame(
            [
                ev(1, "s", T0, "view", "A"),
                ev(2, "s", T0 + 1000, "view", "B"),
                ev(3, "s", T0 + 2000, "cart", "A"),
                ev(4, "s", T0 + 3000, "view", "A"),  # second view of A: not a new example
                ev(5, "t", T0, "view", "C", user_id=None),  # anonymous: no example
            ]
        )
    )
    ranking = ranking_examples(events).set_index(names.ITEM_ID)
    assert ranking[LABEL].to_dict() == {"A": 1, "B": 0}
    assert ranking.loc["A", "request_time_ms"] == T0
    retrieval = retrieval_examples(events)
    assert retrieval[[names.USER_ID, names.ITEM_ID]].values.tolist() == [["u1", "A"]]


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

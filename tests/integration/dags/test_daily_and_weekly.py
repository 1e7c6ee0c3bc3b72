"""``daily_features`` and ``weekly_retrain`` end to end with ``dag.test()`` on the real engines.

A seeded synthetic shop (4 days) goes into the session's Kafka broker; ``daily_features`` for the
last day reads it into bronze, silver and gold through the packaged Spark jobs under ``spark-submit``
(backfilling gold for the earlier days on this first run), validates the day with Great Expectations
and materializes it into Feast's online store; ``weekly_retrain`` for the same interval trains both
models through the feature store (MLflow run, registered versions, Milvus collection), measures
drift, and records every gate's verdict on the challenger's run before promoting it or recording
the block. Each DAG is run twice on the same interval: the rerun is safe (same gold, same online
values, no event ingested twice; a second challenger whose decision is as consistent as the
first's).

The DAGs' tasks read their settings from ``LAMBDAREC_*`` variables, as a deployment does: a private
state folder (lake, Feast registry and online store, GX results, its own MLflow and Milvus started by
the supervisor) and the session's Kafka broker (``tests/conftest.py``).
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd
import pytest

from lambdarec import names
from lambdarec.settings import Settings, load_settings

# Spark twice, a training twice, on a shared 2-core machine: minutes, not seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DAGS = Path(__file__).resolve().parents[3] / "dags"
# After the DAGs' start_date (2026-01-01): a logical date before it creates no task instance at all,
# and dag.test() reports the empty run successful.
START = datetime(2026, 3, 1, tzinfo=UTC)
SHOP_DAYS = 4
DAY = "2026-03-04"
"""The interval's day: ``dag.test(logical_date=2026-03-05)`` processes the day before."""
LOGICAL_DATE = (2026, 3, 5)
WALL: dict[str, float] = {}
"""Seconds per ``dag.test()`` call (printed at the end of the module, for the report)."""


def succeeded(run: Any) -> bool:
    """The run and every one of its tasks succeeded."""
    done = {"success", "DagRunState.SUCCESS", "TaskInstanceState.SUCCESS"}
    return str(run.state) in done and all(state in done for state in run.task_states.values())


def run_dag(dag_id: str, label: str) -> Any:
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.get_dag(dag_id)
    assert dag is not None
    started = time.monotonic()
    run = dag.test(logical_date=pendulum.datetime(*LOGICAL_DATE, tz="UTC"))
    WALL[label] = round(time.monotonic() - started, 1)
    print(f"dag.test {label}: {WALL[label]} s")  # noqa: T201 - the figure the report quotes
    # Every task of the DAG ran (a run without task instances, e.g. before start_date, "succeeds" too).
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert set(states) == set(dag.task_ids), states
    run.task_states = states
    return run


@pytest.fixture(scope="module")
def dag_settings(
    airflow_env: dict[str, str], kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The tasks' environment: a private state folder with its own MLflow and Milvus, the session's broker.

    MLflow and Milvus are this module's own (under the same supervisor as the session's): the weekly
    retrain registers versions, moves the champion alias and builds ``item_embeddings_v<N>``
    collections, which must not become the "first versions ever" that the model tests expect to
    register themselves. The broker is shared: only this module writes the ``clicks`` topic on it.
    """
    from lambdarec.runtime.errors import PrerequisiteError
    from lambdarec.runtime.milvus import MilvusService
    from lambdarec.runtime.mlflow import MlflowService
    from lambdarec.runtime.supervisor import Supervisor

    state = tmp_path_factory.mktemp("dag-engines-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAMBDAREC_STATE_DIR", str(state))
        patch.setenv("LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
        settings = load_settings("local")
        milvus = MilvusService(settings)
        try:
            milvus.check_prerequisites()
        except PrerequisiteError as err:
            pytest.skip(str(err))  # "runs on Linux only" is CI's one allowed skip; anything else fails CI
        # The tasks find both through the state folder's service records, as after `services up`.
        supervisor = Supervisor(settings, [MlflowService(settings), milvus])
        supervisor.up()
        try:
            yield settings
        finally:
            supervisor.down()


@pytest.fixture(scope="module")
def published(dag_settings: Settings) -> int:
    """The synthetic shop on the broker's ``clicks`` topic; returns how many events were accepted."""
    import pyarrow.compute as pc

    from lambdarec.data import generate_events_table
    from lambdarec.data.generator import GeneratorConfig
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.events.producer import EventPublisher

    config = GeneratorConfig(start=START, days=SHOP_DAYS)
    table = generate_events_table(4_000, 300, 150, seed=21, config=config)
    end_ms = int(START.timestamp() * 1000) + SHOP_DAYS * 86_400_000
    table = table.filter(pc.less(table["event_time"], end_ms)).sort_by("event_time")
    with EventPublisher(kafka_bootstrap(dag_settings)) as publisher:
        for row in table.to_pylist():
            publisher.publish({k: v for k, v in row.items() if v is not None})
        stats = publisher.flush()
    assert stats.balanced and stats.rejected == 0, stats.as_dict()
    return int(stats.accepted)


def gold_day(settings: Settings, table: str, day: str = DAY) -> pd.DataFrame:
    from lambdarec.batch.lake import Lake

    frame = pd.read_parquet(Lake.under(settings.state_dir).gold(table) / f"date={day}")
    # List cells (recent items, neighbours) as lists, so rows compare and sort by their scalar columns.
    frame = frame.map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    scalar = [c for c in frame.columns if not frame[c].map(lambda v: isinstance(v, list)).any()]
    return frame.sort_values(scalar).reset_index(drop=True)


def batch_report(settings: Settings) -> dict[str, Any]:
    """The summary the ``build_batch`` task wrote (``<lake>/_reports/batch.json``)."""
    from lambdarec.batch.lake import Lake

    return dict(json.loads((Lake.under(settings.state_dir).root / "_reports" / "batch.json").read_text()))


def check_submitted(settings: Settings, batch: dict[str, Any], *, silver: bool = True) -> dict[str, Any]:
    """The batch ran as the packaged jobs under ``spark-submit``, not in process; returns what was submitted.

    ``silver=False``: the run had nothing new to clean, so ``build_silver`` was not submitted.
    """
    from lambdarec.batch.package import JOBS

    expected = [job for job in JOBS if silver or job != "build_silver"]

    submitted = batch["submitted"]
    archive = Path(submitted["archive"])
    assert archive.parent == settings.state_dir.resolve() / "spark" / "dist" and archive.is_file(), submitted
    with zipfile.ZipFile(archive) as packaged:
        assert {f"lambdarec_spark_jobs/{job}.py" for job in JOBS} <= set(packaged.namelist())
    assert [job["job"] for job in submitted["jobs"]] == expected
    for job in submitted["jobs"]:
        command = job["command"]
        assert Path(command[0]).name == "spark-submit", command
        assert command[command.index("--master") + 1] == settings.spark_master == "local[2]"
        assert command[command.index("--py-files") + 1 :][:3] == [str(archive), submitted["launcher"], job["job"]]
        assert job["reports"] > 0 and Path(job["log"]).stat().st_size > 0, job
    # Only the Kafka ingest carries the connector jars.
    assert ["--jars" in job["command"] for job in submitted["jobs"]] == [True] + [False] * (len(expected) - 1)
    return dict(submitted)


def online_values(settings: Settings) -> tuple[dict[str, list[Any]], pd.DataFrame, pd.DataFrame]:
    """``ranking_v1`` online for the day's busiest user and top items, with the day's gold rows of both."""
    from lambdarec.batch.gold import ITEM_STATS, USER_HISTORY
    from lambdarec.featurestore.store import get_online_features, open_store

    users = gold_day(settings, USER_HISTORY).sort_values(["user_events_30d", "user_id"], ascending=[False, True])
    items = gold_day(settings, ITEM_STATS).sort_values(["item_popularity_30d", "item_id"], ascending=[False, True])
    user, top = str(users["user_id"].iloc[0]), [str(i) for i in items["item_id"].head(3)]
    # A fixed request time: the on-demand features (recency) are relative to it.
    request_ms = int(START.timestamp() * 1000) + (SHOP_DAYS + 1) * 86_400_000
    values = get_online_features(open_store(settings), user, top, request_time_ms=request_ms)
    return values, users[users["user_id"] == user], items.set_index("item_id").loc[top].reset_index()


@pytest.fixture(scope="module")
def daily(dag_settings: Settings, published: int) -> dict[str, Any]:
    """``daily_features`` once for the interval, and what it left."""
    from lambdarec.batch.gold import GOLD_TABLES
    from lambdarec.batch.lake import Lake

    run = run_dag("daily_features", "daily_features")
    lake = Lake.under(dag_settings.state_dir)
    return {
        "run": run,
        "batch": batch_report(dag_settings),
        "gold": {t: gold_day(dag_settings, t) for t in GOLD_TABLES},
        "mtimes": {p: p.stat().st_mtime_ns for p in (lake.root / "gold").rglob("*.parquet") if DAY not in str(p)},
        "online": online_values(dag_settings),
    }


def test_daily_features_builds_validates_and_materializes_the_day(
    dag_settings: Settings, published: int, daily: dict[str, Any]
) -> None:
    import pyarrow.parquet as pq

    from lambdarec.batch.gold import GOLD_TABLES, USER_HISTORY
    from lambdarec.batch.lake import Lake
    from lambdarec.quality.validation import gx_root

    assert succeeded(daily["run"]), daily["run"].state
    lake = Lake.under(dag_settings.state_dir)
    # Every event on the broker reached bronze once, and silver kept them all (a clean shop).
    assert pq.read_table(lake.bronze).num_rows == published
    assert pq.read_table(lake.silver).num_rows == published
    # Through spark-submit: the jobs' own reports, parsed from their stdout, say the same.
    batch = daily["batch"]
    submitted = check_submitted(dag_settings, batch)
    assert submitted["archive_built"] is True  # a fresh state folder: the archive was built for this run
    assert batch["bronze"]["records"] == published
    assert sum(report["events"] for report in batch["silver"]) == published
    assert sorted(report["date"] for report in batch["gold"]) == [f"2026-03-0{d}" for d in range(1, SHOP_DAYS + 1)]
    # Gold for the day and, on this first run, the days before it (the weekly retrain needs every date).
    for table in GOLD_TABLES:
        built = sorted(p.name for p in lake.gold(table).glob("date=*"))
        assert built == [f"date=2026-03-0{d}" for d in range(1, SHOP_DAYS + 1)], (table, built)
        assert len(daily["gold"][table]) > 0, table
    # GX validated the day (both suites, keyed by the day) before anything was materialized.
    results = {p.name for p in gx_root(dag_settings.state_dir).rglob(f"*{DAY}*")}
    assert results, f"no validation result named {DAY} under {gx_root(dag_settings.state_dir)}"
    # The online store answers the day's gold values.
    values, user_row, item_rows = daily["online"]
    assert values[names.USER_ID] == [user_row["user_id"].iloc[0]] * len(item_rows)
    assert values["user_events_30d"] == [int(user_row["user_events_30d"].iloc[0])] * len(item_rows)
    assert values["item_popularity_30d"] == [int(v) for v in item_rows["item_popularity_30d"]]
    assert USER_HISTORY in daily["gold"]


def test_daily_features_rerun_of_the_interval_is_idempotent(
    dag_settings: Settings, published: int, daily: dict[str, Any]
) -> None:
    import pyarrow.parquet as pq

    from lambdarec.batch.lake import Lake

    again = run_dag("daily_features", "daily_features (rerun)")
    assert succeeded(again), again.state
    lake = Lake.under(dag_settings.state_dir)
    assert pq.read_table(lake.bronze).num_rows == published  # nothing ingested twice
    batch = batch_report(dag_settings)
    check_submitted(dag_settings, batch, silver=False)
    assert batch["bronze"]["records"] == 0
    assert batch["silver"] == []  # nothing new in Kafka and silver in step with bronze: no silver job
    assert [report["date"] for report in batch["gold"]] == [DAY]
    for table, frame in daily["gold"].items():
        pd.testing.assert_frame_equal(gold_day(dag_settings, table), frame, obj=table)
    # The rerun rebuilt the day alone: the backfilled days were not touched.
    assert {p: p.stat().st_mtime_ns for p in daily["mtimes"]} == daily["mtimes"]
    values, _, _ = online_values(dag_settings)
    assert values == daily["online"][0]


def registry_state(settings: Settings) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from lambdarec.index.milvus import connect_settings, current_collection
    from lambdarec.vectors import mlflow_tracking_uri

    client = MlflowClient(tracking_uri=mlflow_tracking_uri(settings))
    versions = client.search_model_versions(f"name='{names.TWO_TOWER_MODEL}'")
    champions = {}
    for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
        try:
            champions[model] = client.get_model_version_by_alias(model, names.CHAMPION_ALIAS)
        except Exception:  # no champion yet
            champions[model] = None
    milvus = connect_settings(settings)
    try:
        alias_target = current_collection(milvus)
        collections = set(milvus.list_collections())
    finally:
        milvus.close()
    return {
        "client": client,
        "latest": max(versions, key=lambda v: int(v.version)) if versions else None,
        "champions": champions,
        "alias": alias_target,
        "collections": collections,
    }


def check_weekly_run(settings: Settings, before: dict[str, Any]) -> dict[str, Any]:
    """A finished ``weekly_retrain``: a new challenger, every gate on its run, aliases as the decision says."""
    from lambdarec.index.milvus import collection_name
    from lambdarec.quality.gates import DRIFT_GATE, PERFORMANCE_GATE, QUALITY_GATE

    after = registry_state(settings)
    latest = after["latest"]
    assert latest is not None
    assert before["latest"] is None or int(latest.version) > int(before["latest"].version)
    client = after["client"]
    run = client.get_run(latest.run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert metrics["two-stage.recall_at_20"] >= 0.0  # trained and evaluated through the store
    verdicts = {gate: tags[f"gate.{gate}"] for gate in (QUALITY_GATE, DRIFT_GATE, PERFORMANCE_GATE)}
    assert set(verdicts.values()) <= {"passed", "failed"}
    for gate in verdicts:
        assert tags[f"gate.{gate}.detail"], gate
        assert f"gate.{gate}.passed" in metrics, gate
    # A clean, stationary shop: the data gates hold.
    assert verdicts[QUALITY_GATE] == "passed", tags[f"gate.{QUALITY_GATE}.detail"]
    assert verdicts[DRIFT_GATE] == "passed", tags[f"gate.{DRIFT_GATE}.detail"]
    promoted = all(v == "passed" for v in verdicts.values())
    assert tags["promotion.decision"] == ("promoted" if promoted else "blocked")
    if before["champions"][names.TWO_TOWER_MODEL] is None:
        assert promoted, tags  # nothing to beat: the first challenger is promoted
    champion = after["champions"][names.TWO_TOWER_MODEL]
    assert champion is not None
    # The new version's collection was built either way; the aliases moved only on promotion.
    assert collection_name(latest.version) in after["collections"]
    if promoted:
        assert champion.version == latest.version
        assert after["champions"][names.DEEPFM_MODEL].run_id == latest.run_id
        assert after["alias"] == collection_name(latest.version)
    else:
        assert champion.version == before["champions"][names.TWO_TOWER_MODEL].version
        assert after["alias"] == before["alias"]
    return after


def test_weekly_retrain_trains_through_the_store_and_records_every_gate(
    dag_settings: Settings, daily: dict[str, Any]
) -> None:
    before = registry_state(dag_settings)
    run = run_dag("weekly_retrain", "weekly_retrain")
    assert succeeded(run), run.state
    first = check_weekly_run(dag_settings, before)

    # The same interval again: another challenger on the same window, gated the same way; nothing breaks.
    again = run_dag("weekly_retrain", "weekly_retrain (rerun)")
    assert succeeded(again), again.state
    second = check_weekly_run(dag_settings, first)
    # The gate re-scored the champion on the rerun's test window: the same lake gives the same window
    # and the champion's item tower re-embeds the same items known before the cut, so the champion (the
    # first run's version) scores there exactly what its own run logged. (Scored on its served index
    # instead — every item known at registration, the test window's new items included — it missed one
    # of 522 targets more: the gate compared the challenger and the champion on different indexes.)
    if first["champions"][names.TWO_TOWER_MODEL].version == first["latest"].version:
        logged = first["client"].get_run(first["latest"].run_id).data.metrics["two-stage.recall_at_20"]
        gate = second["client"].get_run(second["latest"].run_id).data
        assert "on the same window" in gate.tags["gate.performance.detail"]
        assert gate.metrics["gate.performance.champion"] == pytest.approx(logged, abs=1e-9)
    print(f"dag.test wall times (s): {WALL}")  # noqa: T201


def test_the_demos_gates_record_on_the_run_and_link_the_docs(dag_settings: Settings, daily: dict[str, Any]) -> None:
    """``gate_trained_models`` (what ``make demo`` runs after training): the weekly gates on models already trained."""
    from lambdarec.quality.gates import DRIFT_GATE, PERFORMANCE_GATE, QUALITY_GATE
    from lambdarec.quality.steps import gate_trained_models

    latest = registry_state(dag_settings)["latest"]
    assert latest is not None, "the weekly retrain test trains first"
    result = gate_trained_models({"run_id": latest.run_id, "two_tower_version": latest.version}, dag_settings)
    assert result["day"] == DAY
    assert [g["name"] for g in result["gates"]] == [QUALITY_GATE, DRIFT_GATE, PERFORMANCE_GATE]
    assert result["mlflow_run_url"].endswith(f"/runs/{latest.run_id}")
    assert result["data_docs"] and Path(url2pathname(urlparse(result["data_docs"]).path)).is_file()
    tags = registry_state(dag_settings)["client"].get_run(latest.run_id).data.tags
    assert tags["promotion.decision"] == ("promoted" if result["promote"] else "blocked")
    details = {g["name"]: g["detail"] for g in result["gates"]}
    assert tags[f"gate.{QUALITY_GATE}.detail"] == details[QUALITY_GATE]

"""The Airflow DAGs on a real Airflow 3 (metadata DB migrated into a private AIRFLOW_HOME, ``conftest.py``).

DagBag integrity (no import errors, tags, retries, nothing heavy at the top of a DAG file), and
``drift_monitor`` run end to end with ``dag.test()`` on a lake whose latest day has prices in cents:
the run succeeds, the report names price with its PSI, an alert is written, and a rerun of the same
interval gives the same report.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[3] / "dags"
EXPECTED = {"daily_features", "weekly_retrain", "drift_monitor"}
ALLOWED_TOP_LEVEL = {"__future__", "typing", "pendulum", "airflow.sdk"}
DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def test_the_dagbag_imports_cleanly_with_tags_and_retries(airflow_env: dict[str, str]) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED
    for dag_id in EXPECTED:
        dag = bag.get_dag(dag_id)
        assert dag is not None and "lambdarec" in dag.tags
        assert dag.catchup is False
        # Retries are a decision per DAG (weekly_retrain: none, a half-trained challenger is not retried blindly).
        assert "retries" in dag.default_args, dag_id
        assert {t.retries for t in dag.tasks} == {dag.default_args["retries"]}
        assert dag.doc_md


def test_dag_files_import_nothing_heavy_at_the_top() -> None:
    for path in DAGS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                modules = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules = {node.module or ""}
            else:
                continue
            assert modules <= ALLOWED_TOP_LEVEL, f"{path.name} imports {modules} at the top"


def write_silver_day(state: Path, day: int, seed: int, price_scale: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    n = 1_500
    frame = pd.DataFrame(
        {
            "event_id": [f"d{day}-e{i}" for i in range(n)],
            "event_time": START_MS + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, n)),
            "session_id": [f"d{day}-s{i // 6}" for i in range(n)],
            "user_id": [f"u{k}" for k in rng.integers(0, 200, n)],
            "item_id": [f"i{k}" for k in rng.integers(0, 300, n)],
            "event_type": rng.choice(["view", "cart", "purchase"], n, p=[0.8, 0.15, 0.05]),
            "price": rng.lognormal(3.0, 0.6, n) * price_scale,
            "category": rng.choice(["shoes", "bags", "hats"], n),
            "brand": rng.choice(["acme", "zeta"], n),
        }
    )
    folder = state / "lake" / "silver" / "events" / f"event_date=2026-01-{day + 1:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "part-0.parquet", index=False)


def test_drift_monitor_runs_end_to_end_and_reruns_safely(airflow_env: dict[str, str]) -> None:
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    from lambdarec.batch.lake import Lake

    state = Path(airflow_env["LAMBDAREC_STATE_DIR"])
    assert Lake.under(state).silver == state / "lake" / "silver" / "events"
    for day in range(6):
        write_silver_day(state, day, seed=day)
    write_silver_day(state, 6, seed=6, price_scale=100.0)  # 2026-01-07: prices in cents

    dag = DagBag(dag_folder=str(DAGS)).get_dag("drift_monitor")
    assert dag is not None
    run = dag.test(logical_date=pendulum.datetime(2026, 1, 8, tz="UTC"))
    assert str(run.state) in {"success", "DagRunState.SUCCESS"}
    report_path = state / "quality" / "drift" / "2026-01-07.json"
    report = json.loads(report_path.read_text())
    assert report["level"] == "block"
    assert report["features"][0]["feature"] == "price" and report["features"][0]["psi"] > 1.0
    assert report["reference_rows"] == 6 * 1_500 and report["current_rows"] == 1_500
    alert = json.loads((state / "quality" / "alerts" / "2026-01-07.json").read_text())
    assert alert["level"] == "block" and "price PSI" in alert["summary"]

    # The same interval again: the same day, the same figures, overwritten in place.
    again = dag.test(logical_date=pendulum.datetime(2026, 1, 8, tz="UTC"))
    assert str(again.state) in {"success", "DagRunState.SUCCESS"}
    rerun = json.loads(report_path.read_text())
    assert rerun["features"] == report["features"]

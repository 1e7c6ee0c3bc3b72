"""### daily_features

The batch layer for the day before the run's data interval ends: Kafka → bronze → silver → gold
by the packaged Spark jobs, submitted with `spark-submit` to the `spark_master` setting as a cluster
runs them (`lambdarec batch run` runs the same stages in process), then Great Expectations on
the day's silver events and gold item stats, then — only when every suite is green — the day's
features into the online store (Feast materialize). A failed suite fails `validate` with the
expectation and column named, and nothing is materialized; rerunning the interval rebuilds the
same day.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

DEFAULT_ARGS = {"owner": "lambdarec", "retries": 1, "retry_delay": pendulum.duration(minutes=5)}


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lambdarec", "features", "quality"],
    doc_md=__doc__,
)
def daily_features() -> None:
    """Batch layer → GX validation → Feast materialize, for one day."""

    @task
    def pick_day(data_interval_end: Any = None) -> str:
        """The day this run processes."""
        from lambdarec.quality.steps import interval_day

        return interval_day(data_interval_end)

    @task
    def build_batch(day: str) -> dict[str, Any]:
        """Bronze, silver and gold for the day (the packaged Spark jobs under spark-submit)."""
        from lambdarec.quality.steps import run_daily_batch

        return run_daily_batch(day)

    @task
    def validate(day: str, _batch: dict[str, Any]) -> dict[str, Any]:
        """GX suites on the day's silver events and gold item stats; fails on any failed expectation."""
        from lambdarec.quality.steps import validate_day

        return validate_day(day)

    @task
    def materialize(day: str, _validation: dict[str, Any]) -> dict[str, Any]:
        """The day's gold snapshots into the online store."""
        from lambdarec.quality.steps import materialize_day

        return materialize_day(day)

    day = pick_day()
    materialize(day, validate(day, build_batch(day)))


daily_features()

"""### drift_monitor

Two comparisons of the latest day, each a report under `<state>/quality/drift/`:

1. **the data**: PSI and KL per feature of the day's events against the 28 days before it (`<day>.json`);
2. **what the model read**: the query inputs the recommender assembled and served that day (the sampled
   `features.served` log) against the reference saved with the champion at training (`served-<day>.json`);
   "not measured" with the reason when there is no champion or no logged request yet.

Drift at the *retrain* level or above writes an alert: it is the reason to retrain (see the policy in
`lambdarec.quality.drift`), not a failure of this DAG.
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
    tags=["lambdarec", "quality", "drift"],
    doc_md=__doc__,
)
def drift_monitor() -> None:
    """Drift report → alert."""

    @task
    def pick_day(data_interval_end: Any = None) -> str:
        """The day compared with its reference."""
        from lambdarec.quality.steps import interval_day

        return interval_day(data_interval_end)

    @task
    def measure_drift(day: str) -> dict[str, Any]:
        """PSI / KL per feature, written as a JSON report."""
        from lambdarec.quality.steps import drift_report

        return drift_report(day)

    @task
    def alert(report: dict[str, Any]) -> dict[str, Any]:
        """An alert file and a warning when any feature drifted (the DAG succeeds either way)."""
        from lambdarec.quality.steps import alert_on_drift

        return alert_on_drift(report)

    @task
    def measure_served_drift(day: str) -> dict[str, Any]:
        """PSI / KL of the served query inputs against the champion's training reference."""
        from lambdarec.quality.steps import served_drift_report

        return served_drift_report(day)

    day = pick_day()
    alert.override(task_id="alert_data")(measure_drift(day))
    alert.override(task_id="alert_served")(measure_served_drift(day))


drift_monitor()

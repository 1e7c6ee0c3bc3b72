"""### weekly_retrain

Retrain through the feature store and promote only through the gates:

1. GX on the latest day's silver events and gold item stats (recorded, not raised: it is a gate);
2. train the two-tower and DeepFM models from the lake through Feast (`lambdarec train`): MLflow run,
   registered versions (alias `challenger`), their Milvus collection; before registering, GX's
   `training_examples` suite on the training examples, and the champion scored on the challenger's
   own test window;
3. drift of the latest day against the week before it (PSI / KL per feature, policy in
   `lambdarec.quality.drift`);
4. the promotion gate: GX green (the latest day and the training examples), no feature at the drift
   *block* level, challenger not worse than the champion beyond 2% on the same test window. Every
   gate's verdict and figures go on the challenger's MLflow run (tags `gate.*`, `promotion.decision`);
   only when all pass do the `champion` aliases of both models and the Milvus `item_embeddings`
   alias move to the challenger.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

DEFAULT_ARGS = {"owner": "lambdarec", "retries": 0}


@dag(
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lambdarec", "models", "quality"],
    doc_md=__doc__,
)
def weekly_retrain() -> None:
    """GX gate → train (MLflow) → drift gate → gated promotion (MLflow + Milvus aliases)."""

    @task
    def pick_day(data_interval_end: Any = None) -> str:
        """The latest day of the training window."""
        from lambdarec.quality.steps import interval_day

        return interval_day(data_interval_end)

    @task
    def validate_latest(day: str) -> dict[str, Any]:
        """GX suites on the latest day (the verdict feeds the promotion gate)."""
        from lambdarec.quality.steps import validate_day

        return validate_day(day, raise_on_failure=False)

    @task
    def train(day: str, _validation: dict[str, Any]) -> dict[str, Any]:
        """Both models through the feature store (examples validated, champion re-scored on the same
        window); registered as challenger with their index."""
        from lambdarec.quality.steps import train_challenger

        return train_challenger(run_name=day)

    @task
    def measure_drift(day: str) -> dict[str, Any]:
        """PSI / KL of the latest day against the week before it."""
        from lambdarec.quality.steps import TRAINING_REFERENCE_DAYS, drift_report

        return drift_report(day, reference_days=TRAINING_REFERENCE_DAYS)

    @task
    def promote(challenger: dict[str, Any], validation: dict[str, Any], drift: dict[str, Any]) -> dict[str, Any]:
        """Record every gate on the challenger's run; move the aliases only when all pass."""
        from lambdarec.quality.steps import decide_promotion

        return decide_promotion(challenger, validation, drift)

    day = pick_day()
    validation = validate_latest(day)
    promote(train(day, validation), validation, measure_drift(day))


weekly_retrain()

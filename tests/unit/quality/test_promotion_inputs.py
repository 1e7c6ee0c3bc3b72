"""How ``decide_promotion`` (the weekly retrain's last step) reads what training judged, MLflow and Milvus faked.

The training examples' suite joins the data-quality gate; the champion's score on the challenger's
own window, when there is one, is what the performance gate compares (not the champion's older,
self-logged number).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lambdarec.quality import gates, steps
from lambdarec.quality.drift import compare
from lambdarec.quality.gates import DRIFT_GATE, PERFORMANCE_GATE, QUALITY_GATE, PromotionDecision
from lambdarec.quality.validation import Failure, ValidationOutcome
from lambdarec.settings import Settings

METRIC = "two-stage.recall_at_20"


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[PromotionDecision]:
    """MLflow and the registry faked: the champion's run logged 0.50, the challenger's 0.30."""
    import lambdarec.vectors

    decisions: list[PromotionDecision] = []
    monkeypatch.setattr(lambdarec.vectors, "mlflow_tracking_uri", lambda settings: "http://mlflow.invalid")
    monkeypatch.setattr(steps, "champion_run", lambda settings: "champion-run")
    monkeypatch.setattr(steps, "run_metrics", lambda run, settings: {METRIC: 0.50 if run == "champion-run" else 0.30})

    def gate(uri: str, version: str, results: list[gates.GateResult], **_: Any) -> PromotionDecision:
        decisions.append(PromotionDecision(list(results)))
        return decisions[-1]

    monkeypatch.setattr(gates, "gate_promotion", gate)
    return decisions


def inputs(judged: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The three XComs of ``promote``, through JSON as Airflow passes them."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"price": rng.lognormal(3, 0.5, 500), "category": rng.choice(["a", "b"], 500)})
    day = ValidationOutcome("silver_events", True, 12, [], 500, "2026-03-04")
    challenger: dict[str, Any] = {"run_id": "challenger-run", "two_tower_version": "7"}
    if judged is not None:
        challenger["judged"] = judged
    xcom = {
        "challenger": challenger,
        "validation": {"outcomes": [day.to_dict()]},
        "drift": compare(frame, frame, ["price", "category"]).to_dict(),
    }
    plain = json.loads(json.dumps(xcom, default=str))
    return plain["challenger"], plain["validation"], plain["drift"]


def test_the_champion_is_judged_on_the_challengers_window_when_it_was_scored_there(
    recorded: list[PromotionDecision],
) -> None:
    same = {"version": "6", "examples": 480, "metrics": {METRIC: 0.30}}
    result = steps.decide_promotion(
        *inputs({"examples": None, "champion_same_window": same}), Settings(), swap_index=False
    )
    assert result["promote"] is True
    performance = {g.name: g for g in recorded[-1].gates}[PERFORMANCE_GATE]
    assert performance.metrics["champion"] == 0.30  # not the 0.50 its own run logged
    assert "on the same window (480 test examples)" in performance.detail


def test_without_a_same_window_score_the_champions_logged_metric_is_used(recorded: list[PromotionDecision]) -> None:
    failed = {"version": "6", "error": "BundleError: feature services differ"}
    result = steps.decide_promotion(
        *inputs({"examples": None, "champion_same_window": failed}), Settings(), swap_index=False
    )
    assert result["promote"] is False and result["blocked_by"] == [PERFORMANCE_GATE]
    assert "on the champion's own window" in {g.name: g for g in recorded[-1].gates}[PERFORMANCE_GATE].detail


def test_failed_training_examples_block_through_the_quality_gate(recorded: list[PromotionDecision]) -> None:
    examples = ValidationOutcome(
        "training_examples",
        False,
        11,
        [Failure("expect_column_values_to_not_be_null", "target_id", 10, {})],
        400,
        "2026-03-04",
    ).to_dict()
    same = {"version": "6", "examples": 480, "metrics": {METRIC: 0.29}}
    result = steps.decide_promotion(
        *inputs({"examples": examples, "champion_same_window": same}), Settings(), swap_index=False
    )
    assert result["blocked_by"] == [QUALITY_GATE]
    quality = {g.name: g for g in recorded[-1].gates}[QUALITY_GATE]
    assert quality.metrics["suites"] == 2.0
    assert "training_examples" in quality.detail and "target_id" in quality.detail
    assert {g.name for g in recorded[-1].gates if g.passed} == {DRIFT_GATE, PERFORMANCE_GATE}


def test_a_trailing_partial_day_is_not_the_day_the_demo_gates() -> None:
    dates = [f"2024-01-{d:02d}" for d in range(24, 32)]
    # The synthetic shop's last date holds the 20 events of sessions that spilled past midnight.
    assert steps.latest_complete_day(dates, [250, 270, 424, 203, 223, 196, 210, 20]) == "2024-01-30"
    assert steps.latest_complete_day(dates, [250, 270, 424, 203, 223, 196, 210, 150]) == "2024-01-31"
    assert steps.latest_complete_day(dates[-1:], [5]) == "2024-01-31"
    # Two trailing partial days (a replay's last half-day, then a few live events of today): both skipped.
    assert steps.latest_complete_day(dates, [250, 270, 424, 203, 223, 196, 10, 24]) == "2024-01-29"

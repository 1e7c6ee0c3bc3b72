"""The promotion gate's verdicts (no MLflow: the integration test records them on a real server), the
offline rewrite of data-docs pages, and the day a DAG run processes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lambdarec.quality import gates
from lambdarec.quality.docs_site import ASSETS, make_offline
from lambdarec.quality.drift import compare
from lambdarec.quality.gates import PromotionDecision, drift_gate, performance_gate, quality_gate
from lambdarec.quality.steps import interval_day
from lambdarec.quality.validation import Failure, ValidationOutcome


def outcome(success: bool, suite: str = "silver_events") -> ValidationOutcome:
    failures = [] if success else [Failure("expect_column_values_to_not_be_null", "item_id", {"unexpected_count": 3})]
    return ValidationOutcome(suite, success, 14, failures, 100, "2026-01-07", "validations/silver_events/x.html")


def test_the_quality_gate_names_the_expectation_column_and_page() -> None:
    assert quality_gate([outcome(True), outcome(True, "gold_item_stats")]).passed
    gate = quality_gate([outcome(True), outcome(False)], docs_url="http://127.0.0.1:8765/")
    assert not gate.passed
    assert "expect_column_values_to_not_be_null on item_id" in gate.detail
    assert gate.detail.endswith("(data docs: http://127.0.0.1:8765/validations/silver_events/x.html)")
    assert gate.metrics == {"suites": 2.0, "suites_failed": 1.0, "expectations_failed": 1.0}
    # No validation at all is not a pass.
    assert not quality_gate([]).passed


def test_the_drift_gate_blocks_only_at_the_block_level() -> None:
    reference = pd.DataFrame({"x": [float(i) for i in range(1, 11)]})
    moderate = pd.DataFrame({"x": [1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]})  # PSI 0.169 (retrain)
    assert drift_gate(compare(reference, moderate, bins=2)).passed
    shifted = pd.DataFrame({"x": [float(i) * 100 for i in range(1, 11)]})
    gate = drift_gate(compare(reference, shifted, bins=2))
    assert not gate.passed and "x PSI" in gate.detail and gate.metrics["features_blocking"] == 1.0


@pytest.mark.parametrize(
    ("challenger", "champion", "passed"),
    [
        (0.30, None, True),  # nothing to beat
        (0.30, 0.30, True),
        (0.2941, 0.30, True),  # 1.97% below: within 2%
        (0.2939, 0.30, False),  # 2.03% below
        (0.35, 0.30, True),
    ],
)
def test_the_performance_gate_tolerates_two_percent(challenger: float, champion: float | None, passed: bool) -> None:
    metric = gates.DEFAULT_METRIC
    gate = performance_gate({metric: challenger}, None if champion is None else {metric: champion})
    assert gate.passed is passed


def test_a_lower_is_better_metric_and_a_missing_one() -> None:
    assert performance_gate({"loss": 0.50}, {"loss": 0.495}, metric="loss", higher_is_better=False).passed
    assert not performance_gate({"loss": 0.52}, {"loss": 0.50}, metric="loss", higher_is_better=False).passed
    assert not performance_gate({}, {"loss": 0.5}, metric="loss").passed


def test_a_decision_promotes_only_when_every_gate_passes() -> None:
    ok = gates.GateResult("a", True, "fine")
    bad = gates.GateResult("b", False, "broken")
    assert PromotionDecision([ok, ok]).promote
    assert not PromotionDecision([ok, bad]).promote
    assert PromotionDecision([ok, bad]).blocked_by == ["b"]
    assert not PromotionDecision([]).promote


def test_gate_promotion_records_first_and_swaps_the_index_only_when_promoted(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    import lambdarec.index.milvus as milvus
    import lambdarec.tracking.mlflow_log as mlflow_log

    monkeypatch.setattr(gates, "run_of_version", lambda uri, version: f"run-{version}")
    monkeypatch.setattr(gates, "record_gates", lambda uri, run, decision: calls.append(("record", run)))
    monkeypatch.setattr(mlflow_log, "promote", lambda uri, version: calls.append(("promote", version)))
    monkeypatch.setattr(milvus, "swap_alias", lambda client, version: calls.append(("swap", version)))
    blocked = gates.gate_promotion(
        "uri", "2", [gates.GateResult("drift", False, "price PSI 4.2")], milvus_client=object()
    )
    assert not blocked.promote and calls == [("record", "run-2")]
    calls.clear()
    gates.gate_promotion("uri", "2", [gates.GateResult("drift", True, "ok")], milvus_client=object())
    assert calls == [("record", "run-2"), ("promote", "2"), ("swap", "2")]


def test_make_offline_points_every_cdn_asset_at_a_local_copy(tmp_path: Path) -> None:
    vendored = tmp_path / "vendor"
    for asset in ASSETS:
        (vendored / asset.local).parent.mkdir(parents=True, exist_ok=True)
        (vendored / asset.local).write_text(f"/* {asset.package} */")
    (vendored / "@fortawesome__fontawesome-free@6.6.0" / "webfonts").mkdir(parents=True)
    (vendored / "@fortawesome__fontawesome-free@6.6.0" / "webfonts" / "fa-solid-900.woff2").write_bytes(b"font")
    site = tmp_path / "site"
    page = site / "validations" / "suite" / "run" / "page.html"
    page.parent.mkdir(parents=True)
    (site / "static" / "images").mkdir(parents=True)
    (site / "static" / "images" / "logo-long.png").write_bytes(b"png")
    tags = "\n".join(
        f'<script src="{a.url}" integrity="sha384-abc" crossorigin="anonymous"></script>'
        if not a.path.endswith(".css")
        else f'<link rel="stylesheet" href="{a.url}">'
        for a in ASSETS
    )
    logo = (
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=x">'
    )
    page.write_text(f'<html><head>{tags}</head><body>{logo}<a href="https://greatexpectations.io">gx</a></body></html>')

    assert make_offline(site, vendored) == []
    text = page.read_text()
    assert "integrity" not in text and "amazonaws" not in text
    assert 'src="../../../static/vendor/jquery@3.7.1/dist/jquery.min.js"' in text
    assert '<img src="../../../static/vendor/../images/logo-long.png">' in text
    assert 'href="https://greatexpectations.io"' in text  # a plain link stays (nothing is loaded from it)
    assert (
        site / "static" / "vendor" / "@fortawesome__fontawesome-free@6.6.0" / "webfonts" / "fa-solid-900.woff2"
    ).is_file()
    # Idempotent: a second pass changes nothing.
    assert make_offline(site, vendored) == [] and page.read_text() == text


def test_the_day_of_a_run_is_the_day_before_its_interval_ends() -> None:
    assert interval_day(datetime(2026, 1, 8, tzinfo=UTC)) == "2026-01-07"
    assert interval_day("2026-01-08T00:00:00+00:00") == "2026-01-07"
    assert interval_day(datetime(2026, 1, 8, 6, 30, tzinfo=UTC)) == "2026-01-07"

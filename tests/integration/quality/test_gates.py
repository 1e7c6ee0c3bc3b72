"""Quality gates on the real engines: Great Expectations checkpoints in a file context, the offline data-docs
site, and the promotion gate against the embedded MLflow server.

The bad batch (null item ids, prices shifted x100 as if a column moved to cents) must be caught by GX
(naming the expectation and the column) and by the drift gate (naming price with its PSI), and must
leave the champion where it was; a clean batch promotes, and each gate's result is on the MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lambdarec import names
from lambdarec.quality import drift
from lambdarec.quality.docs_site import make_offline, missing_assets, vendor_assets
from lambdarec.quality.gates import (
    DRIFT_GATE,
    PERFORMANCE_GATE,
    QUALITY_GATE,
    drift_gate,
    gate_promotion,
    performance_gate,
    quality_gate,
)
from lambdarec.quality.validation import SUITES, build_expectations, load_spec, site_dir, validate
from lambdarec.settings import Settings

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
ROWS = 3_000
DRIFT_FEATURES = ["price", "event_type", "category"]


def events(day: int, seed: int, *, price_scale: float = 1.0, null_items: int = 0) -> pd.DataFrame:
    """One day of silver-shaped events (lognormal prices, a view/cart/purchase funnel)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "event_id": [f"d{day}-e{i}" for i in range(ROWS)],
            "event_time": START_MS + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, ROWS)),
            "session_id": [f"d{day}-s{i // 8}" for i in range(ROWS)],
            "user_id": [f"u{k}" for k in rng.integers(0, 300, ROWS)],
            "item_id": [f"i{k}" for k in rng.zipf(1.5, ROWS) % 500],
            "event_type": rng.choice(["view", "cart", "purchase"], ROWS, p=[0.8, 0.15, 0.05]),
            "price": rng.lognormal(3.0, 0.6, ROWS) * price_scale,
            "category": rng.choice(["shoes", "bags", "hats", "coats"], ROWS),
            "brand": rng.choice(["acme", None], ROWS),
        }
    )
    if null_items:
        frame.loc[: null_items - 1, "item_id"] = None
    return frame


@pytest.fixture(scope="module")
def state_dir(engine_settings: Settings) -> Path:
    return engine_settings.state_dir


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.concat([events(d, seed=d) for d in range(3)], ignore_index=True)


@pytest.fixture(scope="module")
def vendored() -> Path:
    """The npm copies of the docs assets (setup vendors them; fetched here if a fresh checkout lacks them)."""
    return vendor_assets()


def as_of(day: int) -> int:
    return START_MS + (day + 1) * DAY_MS


def test_every_suite_file_builds_into_expectations() -> None:
    for suite in SUITES:
        spec = load_spec(suite)
        built = build_expectations(spec, reference=None, as_of_ms=as_of(3))
        assert len(built) >= 3, suite


def test_a_clean_day_passes_and_its_page_works_offline(
    state_dir: Path, reference: pd.DataFrame, vendored: Path
) -> None:
    outcome = validate(
        events(3, seed=3),
        "silver_events",
        state_dir=state_dir,
        reference=reference,
        as_of_ms=as_of(3),
        run_name="2026-01-04",
    )
    assert outcome.success, outcome.summary()
    # not-null x5, unique, between x2, in-set, columns, rows, freshness, learned mean + median
    assert outcome.evaluated == 14
    assert outcome.docs_page and outcome.docs_page.startswith("validations/silver_events/")
    site = site_dir(state_dir)
    page = (site / outcome.docs_page).read_text()
    assert missing_assets(vendored) == []
    assert make_offline(site, vendored) == []
    for cdn in (
        "cdn.jsdelivr.net",
        "cdnjs.cloudflare.com",
        "code.jquery.com",
        "bootstrapcdn.com",
        "unpkg.com",
        "amazonaws.com",
    ):
        assert cdn not in page
    # Every local asset a page names exists in the site.
    for relative in __import__("re").findall(r'(?:src|href)="([^"]*static/vendor/[^"]*)"', page):
        assert ((site / outcome.docs_page).parent / relative).resolve().is_file(), relative


def test_rerunning_an_interval_gives_the_same_answer_and_page(state_dir: Path, reference: pd.DataFrame) -> None:
    first = validate(
        events(4, seed=4),
        "silver_events",
        state_dir=state_dir,
        reference=reference,
        as_of_ms=as_of(4),
        run_name="2026-01-05",
    )
    again = validate(
        events(4, seed=4),
        "silver_events",
        state_dir=state_dir,
        reference=reference,
        as_of_ms=as_of(4),
        run_name="2026-01-05",
    )
    assert (first.success, first.evaluated, first.docs_page) == (again.success, again.evaluated, again.docs_page)


def test_a_stale_day_fails_freshness(state_dir: Path, reference: pd.DataFrame) -> None:
    outcome = validate(
        events(3, seed=3),
        "silver_events",
        state_dir=state_dir,
        reference=reference,
        as_of_ms=as_of(6),
        run_name="stale",
    )
    assert not outcome.success
    assert [(f.expectation, f.column) for f in outcome.failures] == [("expect_column_max_to_be_between", "event_time")]


def test_the_bad_batch_is_caught_and_blocks_promotion(
    state_dir: Path, reference: pd.DataFrame, mlflow_tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_tracking_uri)
    versions = register_two_runs(client)

    bad = events(5, seed=5, price_scale=100.0, null_items=30)
    outcome = validate(
        bad, "silver_events", state_dir=state_dir, reference=reference, as_of_ms=as_of(5), run_name="2026-01-06"
    )
    failed = {(f.expectation, f.column) for f in outcome.failures}
    assert ("expect_column_values_to_not_be_null", "item_id") in failed
    assert ("expect_column_mean_to_be_between", "price") in failed
    assert ("expect_column_median_to_be_between", "price") in failed
    report = drift.compare(reference, bad, DRIFT_FEATURES)
    assert report.features[0].feature == "price" and report.features[0].level == drift.DriftLevel.BLOCK

    gates = [
        quality_gate([outcome], docs_url="http://127.0.0.1:8765/"),
        drift_gate(report),
        performance_gate({"two-stage.recall_at_20": 0.31}, {"two-stage.recall_at_20": 0.30}),
    ]
    decision = gate_promotion(mlflow_tracking_uri, versions["challenger"], gates)
    assert not decision.promote
    assert decision.blocked_by == [QUALITY_GATE, DRIFT_GATE]
    # Nothing moved: both champions are still the first run's versions.
    for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
        assert client.get_model_version_by_alias(model, names.CHAMPION_ALIAS).version == versions["champion"]
    # The MLflow run says why.
    run = client.get_run(versions["challenger_run"])
    assert run.data.tags["promotion.decision"] == "blocked"
    assert run.data.tags[f"gate.{QUALITY_GATE}"] == "failed"
    assert "expect_column_values_to_not_be_null on item_id" in run.data.tags[f"gate.{QUALITY_GATE}.detail"]
    assert "http://127.0.0.1:8765/validations/silver_events/" in run.data.tags[f"gate.{QUALITY_GATE}.detail"]
    assert "price PSI" in run.data.tags[f"gate.{DRIFT_GATE}.detail"]
    assert run.data.tags[f"gate.{PERFORMANCE_GATE}"] == "passed"
    assert run.data.metrics[f"gate.{DRIFT_GATE}.max_psi"] > 1.0
    assert run.data.metrics[f"gate.{QUALITY_GATE}.passed"] == 0.0

    # A clean batch on the same window promotes both models of the challenger's run.
    clean = events(5, seed=50)
    good = validate(
        clean, "silver_events", state_dir=state_dir, reference=reference, as_of_ms=as_of(5), run_name="2026-01-06"
    )
    gates = [
        quality_gate([good]),
        drift_gate(drift.compare(reference, clean, DRIFT_FEATURES)),
        performance_gate({"two-stage.recall_at_20": 0.297}, {"two-stage.recall_at_20": 0.30}),
    ]
    decision = gate_promotion(mlflow_tracking_uri, versions["challenger"], gates)
    assert decision.promote, decision.summary()
    for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
        assert client.get_model_version_by_alias(model, names.CHAMPION_ALIAS).version == versions["challenger"]
    assert client.get_run(versions["challenger_run"]).data.tags["promotion.decision"] == "promoted"


def test_the_weekly_promotion_step_blocks_a_weaker_challenger(
    engine_settings: Settings, reference: pd.DataFrame, mlflow_tracking_uri: str
) -> None:
    """``decide_promotion`` as ``weekly_retrain`` calls it, its inputs through JSON (XCom) as Airflow passes them."""
    from mlflow.tracking import MlflowClient

    from lambdarec.quality.steps import decide_promotion

    client = MlflowClient(tracking_uri=mlflow_tracking_uri)
    experiment = client.create_experiment("weekly-step-it")
    versions: dict[str, str] = {}
    for role, recall in (("champion", 0.30), ("challenger", 0.25)):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "two-stage.recall_at_20", recall)
        client.set_terminated(run.info.run_id)
        for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
            if not client.search_registered_models(f"name='{model}'"):
                client.create_registered_model(model)
            version = client.create_model_version(
                model, source=f"{run.info.artifact_uri}/{model}", run_id=run.info.run_id
            )
            if role == "champion":
                client.set_registered_model_alias(model, names.CHAMPION_ALIAS, version.version)
            versions[f"{role}.{model}"] = str(version.version)
        versions[f"{role}_run"] = run.info.run_id
    clean = events(6, seed=60)
    validation = {
        "outcomes": [
            validate(
                clean,
                "silver_events",
                state_dir=engine_settings.state_dir,
                reference=reference,
                as_of_ms=as_of(6),
                run_name="2026-01-07",
            ).to_dict()
        ]
    }
    drift_dict = drift.compare(reference, clean, DRIFT_FEATURES).to_dict()
    challenger = {
        "run_id": versions["challenger_run"],
        "two_tower_version": versions[f"challenger.{names.TWO_TOWER_MODEL}"],
    }
    xcom = json.loads(
        json.dumps({"challenger": challenger, "validation": validation, "drift": drift_dict}, default=str)
    )

    result = decide_promotion(xcom["challenger"], xcom["validation"], xcom["drift"], engine_settings, swap_index=False)
    assert result["promote"] is False and result["blocked_by"] == [PERFORMANCE_GATE]
    assert "worse than the champion's 0.3000" in result["summary"]
    assert (
        client.get_model_version_by_alias(names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS).version
        == versions[f"champion.{names.TWO_TOWER_MODEL}"]
    )
    tags = client.get_run(versions["challenger_run"]).data.tags
    assert (tags[f"gate.{QUALITY_GATE}"], tags[f"gate.{DRIFT_GATE}"], tags[f"gate.{PERFORMANCE_GATE}"]) == (
        "passed",
        "passed",
        "failed",
    )


def test_the_training_examples_suite_fits_the_examples_frame(state_dir: Path) -> None:
    from types import SimpleNamespace

    from lambdarec.models.inputs import QUERY_DENSE
    from lambdarec.quality.frames import examples_frame

    rng = np.random.default_rng(3)
    n = 400
    examples = SimpleNamespace(
        session_id=np.array([f"s{i // 4}" for i in range(n)], dtype=object),
        user_id=np.array([f"u{i % 30}" for i in range(n)], dtype=object),
        target_id=np.array([f"i{k}" for k in rng.integers(0, 50, n)], dtype=object),
        time_ms=START_MS + np.arange(n, dtype=np.int64) * 60_000,
        weight=rng.choice([1.0, 3.0, 5.0], n),
        dense=np.log1p(rng.integers(0, 40, (n, len(QUERY_DENSE))).astype(np.float32)),
    )
    frame = examples_frame(examples)
    good = validate(frame, "training_examples", state_dir=state_dir, reference=frame, run_name="examples")
    assert good.success, good.summary()
    frame.loc[:9, "target_id"] = None
    frame.loc[:, "weight"] = 2.0
    bad = validate(frame, "training_examples", state_dir=state_dir, reference=frame, run_name="examples-bad")
    failed = {(f.expectation, f.column) for f in bad.failures}
    assert failed == {
        ("expect_column_values_to_not_be_null", "target_id"),
        ("expect_column_values_to_be_in_set", "weight"),
    }


def register_two_runs(client: object) -> dict[str, str]:
    """A champion run and a challenger run, each with a two-tower and a DeepFM version (no weights needed)."""
    from mlflow.tracking import MlflowClient

    assert isinstance(client, MlflowClient)
    experiment = client.create_experiment("gates-it")
    out: dict[str, str] = {}
    for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
        if not client.search_registered_models(f"name='{model}'"):
            client.create_registered_model(model)
    for role in ("champion", "challenger"):
        run = client.create_run(experiment)
        client.set_terminated(run.info.run_id)
        for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
            version = client.create_model_version(
                model, source=f"{run.info.artifact_uri}/{model}", run_id=run.info.run_id
            )
            if role == "champion":
                client.set_registered_model_alias(model, names.CHAMPION_ALIAS, version.version)
        out[role] = str(version.version)
        out[f"{role}_run"] = run.info.run_id
    return out

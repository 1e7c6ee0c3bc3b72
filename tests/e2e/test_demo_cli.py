"""The main job through the real CLI: `lambdarec demo`, status, replay, dlq."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e_cli import run_cli

# The first test to ask for `demo_state` runs the whole demo (tests/e2e/conftest.py); pytest-timeout
# counts that fixture's setup against the test.
pytestmark = pytest.mark.timeout(2700)


def test_demo_replays_the_synthetic_shop_and_accounts_for_every_event(demo_state: Path) -> None:
    summary = json.loads((demo_state / "demo" / "summary.json").read_text())
    publish = summary["publish"]
    assert summary["dataset"].startswith("synthetic:")
    assert publish["offered"] == summary["adapter_report"]["events_emitted"] > 19_000
    assert publish["offered"] == publish["accepted"] + publish["rejected"]
    assert publish["delivered"] == publish["accepted"] and publish["failed"] == 0
    # The broker holds exactly what was accepted, and the DLQ what was rejected plus the malformed examples.
    # ... plus the live shoppers' events the demo publishes at the end.
    assert summary["topic_sizes"]["clicks"] == publish["accepted"] + summary["stream"]["live_events_published"]
    assert summary["topic_sizes"]["clicks.dlq"] == publish["rejected"] + summary["malformed_examples_sent"]
    assert {s["name"] for s in summary["services"]} == {"kafka", "milvus", "mlflow", "recommender", "storefront"}


def test_demo_shows_every_stage_done_and_ends_with_the_urls(demo_state: Path) -> None:
    summary = json.loads((demo_state / "demo" / "summary.json").read_text())
    assert summary["ok"] is True and summary["replay_skipped"] is None
    assert {name: stage["state"] for name, stage in summary["stages"].items()} == dict.fromkeys(
        ("engines", "speed", "dataset", "replay", "dlq", "batch", "models", "live", "recommender", "storefront"),
        "done",
    )
    urls = summary["urls"]
    assert urls["storefront"].startswith("http://127.0.0.1:") and urls["recommender API"].endswith("/docs")
    assert urls["MLflow"].startswith("http://127.0.0.1:")
    # Engine and library output went to the demo's log, not into the progress view.
    assert (demo_state / "demo" / "demo.log").stat().st_size > 0


def test_demo_trains_registers_and_indexes_the_models(demo_state: Path) -> None:
    models = json.loads((demo_state / "demo" / "summary.json").read_text())["models"]
    assert str(models["two_tower_version"]) == str(models["deepfm_version"]) == "1"
    assert models["champion"] is True  # the first versions ever registered
    assert models["index"]["rows"] > 0 and models["index"]["alias"] == "swapped"
    methods = {row["method"] for row in models["evaluation"]["rows"]}
    assert {"most-popular", "item-kNN", "session-kNN"} <= methods
    # Trained through the feature store: examples read point in time, the index over the catalogue.
    assert models["train_from_store_s"] > 0
    assert models["evaluation"]["split"]["train_examples"] > 100
    assert models["index"]["rows"] >= models["evaluation"]["split"]["items_in_train"]


def test_demo_runs_the_batch_layer_into_the_online_store(demo_state: Path) -> None:
    batch = json.loads((demo_state / "demo" / "summary.json").read_text())["batch"]
    assert {"bronze", "silver", "gold"} <= set(batch["stages_s"])
    assert batch["bronze"]["records"] > 19_000
    assert sum(batch["materialize"]["rows"].values()) > 0


def test_demo_shows_live_session_features_changing_online(demo_state: Path) -> None:
    stream = json.loads((demo_state / "demo" / "summary.json").read_text())["stream"]
    assert stream["report"]["job"]["state"] == "healthy"
    live = stream["live_sessions"]
    assert len(live) == 3
    for session, seen in live.items():
        counts = seen["event_counts_seen"]
        # Seen online while the events arrived: several distinct, growing counts up to the whole session.
        assert counts == sorted(counts) and len(counts) >= 2, (session, counts)
        assert counts[-1] == seen["published"] == 8, (session, counts)


def test_status_shows_every_service_healthy(demo_state: Path) -> None:
    result = run_cli(demo_state, "services", "status", "--json")
    statuses = json.loads(result.stdout)
    assert {s["name"]: s["state"] for s in statuses} == {"kafka": "healthy", "milvus": "healthy", "mlflow": "healthy"}
    assert all(s["pid"] and s["ports"] and s["endpoint"] for s in statuses)


def test_replay_of_a_real_dataset_reports_counts(demo_state: Path, shared_datasets: Path) -> None:
    spec = f"otto:{shared_datasets / 'otto_sample' / 'train.jsonl'}"
    result = run_cli(demo_state, "replay", spec, "--speed", "max")
    assert "events sent" in result.stdout and "accepted" in result.stdout
    assert "rejected" in result.stdout


def test_dlq_show_lists_reasons(demo_state: Path) -> None:
    result = run_cli(demo_state, "dlq", "show", "--limit", "10")
    assert "event_type" in result.stdout and "not valid JSON" in result.stdout


def test_bad_arguments_get_a_clear_error(demo_state: Path) -> None:
    bad_speed = run_cli(demo_state, "replay", "otto:/nonexistent", "--speed", "warp", check=False)
    assert bad_speed.returncode != 0 and "speed must be" in bad_speed.stderr
    bad_spec = run_cli(demo_state, "replay", "nosuchformat:/tmp/x", check=False)
    assert bad_spec.returncode == 1 and "unknown adapter" in bad_spec.stderr


def test_a_rerun_of_the_demo_does_not_replay_the_dataset_again(demo_state: Path) -> None:
    from lambdarec.events.admin import topic_size

    summary_path = demo_state / "demo" / "summary.json"
    first = json.loads(summary_path.read_text())
    kafka = next(s["endpoint"] for s in first["services"] if s["name"] == "kafka")
    before = {topic: topic_size(kafka, topic) for topic in ("clicks", "clicks.dlq")}
    try:
        # --smoke: the same 20,000-event synthetic shop as the session's demo, the JSON summary on stdout.
        rerun = run_cli(
            demo_state,
            "demo",
            "--smoke",
            "--keep-running",
            "--no-batch",
            "--no-models",
            "--no-stream",
            "--no-storefront",
            timeout=300,
        )
    finally:
        summary_path.write_text(json.dumps(first, indent=2))  # the later modules read the first run's summary
    second = json.loads(rerun.stdout)
    assert second["replay_skipped"].startswith("already replayed into clicks")
    assert second["dataset"] == first["dataset"] and second["publish"] == first["publish"]
    assert second["stages"]["replay"]["state"] == second["stages"]["dlq"]["state"] == "skipped"
    assert {topic: topic_size(kafka, topic) for topic in ("clicks", "clicks.dlq")} == before
    assert "already replayed" in rerun.stderr  # the progress view says so

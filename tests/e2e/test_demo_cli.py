"""The main job through the real CLI: `lambdarec demo`, status, replay, dlq, down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

LAMBDAREC = [sys.executable, "-m", "lambdarec.cli"]
# The first test runs the whole demo in its fixture: engines, replay, gold for every date, training
# through the feature store (pytest-timeout counts fixture setup against that test).
pytestmark = pytest.mark.timeout(2700)


def run_cli(state: Path, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    result = subprocess.run(
        [*LAMBDAREC, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lambdarec {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the demo once (services stay up) and stop everything at the end."""
    state = tmp_path_factory.mktemp("demo-state")
    try:
        # Gold for every date and training through the feature store: ~15 min on 2 cores.
        run_cli(state, "demo", "--events", "20000", "--train-budget", "30", timeout=2400)
        yield state
    finally:
        run_cli(state, "services", "down", check=False)


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
    assert {s["name"] for s in summary["services"]} == {"kafka", "milvus", "mlflow"}


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


def test_down_stops_every_process(tmp_path: Path, demo_state: Path) -> None:
    statuses = json.loads(run_cli(demo_state, "services", "status", "--json").stdout)
    pids = [s["pid"] for s in statuses]
    run_cli(demo_state, "services", "down")
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    stopped = run_cli(demo_state, "services", "status", check=False)
    assert stopped.returncode == 1 and "stopped" in stopped.stdout

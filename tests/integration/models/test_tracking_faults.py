"""Fault: MLflow down during promotion (``lambdarec index swap``) and training (``lambdarec train``).

The real session MLflow and Milvus (tests/conftest.py), the real CLI in a subprocess. MLflow is
killed with ``kill -9`` (the embedded server) or named by a configured URI that no longer answers
(staging and prod configure one). Each time the command must fail in seconds with a clear message
and a non-zero exit, and move nothing: both MLflow champions and the Milvus alias stay where they
were. After MLflow restarts, the same swap moves all three together.

Named to sort after ``test_tracking_and_index.py``, whose assertions count versions from 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from lambdarec import names
from lambdarec.runtime.mlflow import MlflowService
from lambdarec.runtime.service import pick_free_port
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import Settings

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")

LAMBDAREC = str(Path(sys.executable).with_name("lambdarec"))


def lambdarec(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run the real CLI on the session's state folder; return its exit code, output and seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [LAMBDAREC, "--state-dir", str(settings.state_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "300", **(env or {})},
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def aliases(tracking_uri: str, milvus_client: Any) -> dict[str, str | None]:
    """Where the three aliases point: both MLflow champions and the Milvus index alias."""
    from lambdarec.index.milvus import current_collection
    from lambdarec.tracking.mlflow_log import alias_version

    return {
        model: alias_version(tracking_uri, model, names.CHAMPION_ALIAS)
        for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL)
    } | {"milvus": current_collection(milvus_client)}


def assert_clean_failure(code: int, output: str) -> None:
    """A non-zero exit with the CLI's one-line error, no Python traceback."""
    assert code != 0, output
    assert "error:" in output and "mlflow" in output.lower(), output
    assert "Traceback" not in output, output


def test_mlflow_down_during_promotion_moves_no_alias(
    engine_settings: Settings, mlflow_tracking_uri: str, milvus_uri: str, trained: tuple[Any, Any]
) -> None:
    from lambdarec.index.milvus import build_collection, collection_name, connect
    from lambdarec.tracking.mlflow_log import log_training_run

    recommender, result = trained
    ids, vectors = list(recommender.index_ids), recommender.index_vectors
    # Two versions with their collections; the first is made champion through the real command.
    first = log_training_run(mlflow_tracking_uri, recommender, result, dataset="synthetic:faults")
    second = log_training_run(mlflow_tracking_uri, recommender, result, dataset="synthetic:faults")
    client = connect(milvus_uri)
    try:
        for tracked in (first, second):
            build_collection(client, ids, vectors, tracked.two_tower_version, replace=True)
        code, output, _ = lambdarec(engine_settings, "index", "swap", "--model-version", first.two_tower_version)
        assert code == 0, output
        before = aliases(mlflow_tracking_uri, client)
        assert before == {
            names.TWO_TOWER_MODEL: first.two_tower_version,
            names.DEEPFM_MODEL: first.deepfm_version,
            "milvus": collection_name(first.two_tower_version),
        }

        mlflow = Supervisor(engine_settings, [MlflowService(engine_settings)])
        (status,) = mlflow.status()
        assert status.pid is not None
        killed_at = time.monotonic()
        os.killpg(status.pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(status.pid)], timeout=10)
        try:
            # 1. The embedded server is gone (its record names a dead process).
            code, output, embedded_s = lambdarec(
                engine_settings, "index", "swap", "--model-version", second.two_tower_version
            )
            assert_clean_failure(code, output)
            # 2. A configured server (staging, prod) that does not answer: the client would retry
            #    for minutes, then the Milvus alias stayed on the new collection (before the fix).
            dead = {"LAMBDAREC_MLFLOW__TRACKING_URI": f"http://127.0.0.1:{pick_free_port()}"}
            code, output, configured_s = lambdarec(
                engine_settings, "index", "swap", "--model-version", second.two_tower_version, env=dead
            )
            assert_clean_failure(code, output)
            assert "does not answer" in output and "nothing was changed" in output, output
            # 3. Training checks before it trains (and again before it logs).
            code, output, train_s = lambdarec(engine_settings, "train", "--no-index", env=dead)
            assert_clean_failure(code, output)
            assert "does not answer" in output, output  # before any training
        finally:
            mlflow.up()
        downtime_s = time.monotonic() - killed_at
        assert mlflow.endpoint(MlflowService.name) == mlflow_tracking_uri  # the session's URI again
        assert aliases(mlflow_tracking_uri, client) == before, "an alias moved while MLflow was down"

        # Back up: the same swap moves the three aliases together.
        code, output, _ = lambdarec(engine_settings, "index", "swap", "--model-version", second.two_tower_version)
        assert code == 0, output
        assert aliases(mlflow_tracking_uri, client) == {
            names.TWO_TOWER_MODEL: second.two_tower_version,
            names.DEEPFM_MODEL: second.deepfm_version,
            "milvus": collection_name(second.two_tower_version),
        }
    finally:
        client.close()
    print(
        f"\nMLflow down: index swap failed cleanly in {embedded_s:.1f}s (embedded, kill -9) and "
        f"{configured_s:.1f}s (configured URI); train failed in {train_s:.1f}s; "
        f"MLflow down {downtime_s:.1f}s in all; aliases unchanged"
    )

"""Fault: the state folder's disk is nearly full when an engine starts.

The state folder is a size-limited tmpfs mounted for the test (the test runs as root, as CI does;
a filler file leaves 160 KiB free), so every write of the process under test really fails with
ENOSPC. ``lambdarec services up mlflow`` (the real CLI) must fail with a clear message and a non-zero
exit and leave nothing half-made; once space is freed, the next start must come up on the same
state folder and work.

MLflow is the engine here because its first start writes its state (the SQLite schema) in the state
folder: a start that ran out of space used to leave a half-migrated database that every later
start refused ("table _alembic_tmp_trace_tags already exists").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdarec.runtime.mlflow import MlflowService
from lambdarec.runtime.service import ServiceRecord
from lambdarec.settings import load_settings

LAMBDAREC = str(Path(sys.executable).with_name("lambdarec"))
FREE_BYTES = 160 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, nearly filled; unmounted at the end."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        # A skip, so `make test` as a normal user runs the rest; under CI=true the skip guard
        # (tests/conftest.py) turns it into a failure, since CI runs as root.
        pytest.skip(f"mounting a size-limited tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def lambdarec(state: Path, *args: str) -> tuple[int, str, float]:
    """The real CLI on ``state``; its exit code, output and seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [LAMBDAREC, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_nearly_full_state_disk_fails_clearly_and_the_next_start_works(small_disk: Path) -> None:
    from mlflow.tracking import MlflowClient

    state = small_disk / "lambdarec"
    filler = small_disk / "filler"
    stat = os.statvfs(small_disk)
    with filler.open("wb") as handle:
        handle.write(b"\0" * (stat.f_bavail * stat.f_frsize - FREE_BYTES))
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    load = os.getloadavg()[0]

    code, output, failed_s = lambdarec(state, "services", "up", "mlflow")
    assert code != 0, output
    assert "error:" in output and "full" in output.lower(), output
    assert "Traceback" not in output, output
    database = state / "services" / "mlflow" / "data" / "mlflow.db"
    assert not database.exists(), "a failed first start left a database behind"
    assert not list(database.parent.glob("*.partial")), "a failed first start left a partial database"
    message = " ".join(output.split())

    filler.unlink()
    try:
        code, output, started_s = lambdarec(state, "services", "up", "mlflow")
        assert code == 0, output
        service = MlflowService(load_settings("local", state_dir=state))
        record = ServiceRecord.load(service.record_path)
        assert record is not None
        client = MlflowClient(tracking_uri=service.endpoint(record.ports))
        experiment = client.create_experiment("after-a-full-disk")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "m", 1.5)
        assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    finally:
        lambdarec(state, "services", "down", "mlflow")
    print(
        f"\ndisk nearly full ({free // 1024} KiB free): services up mlflow failed cleanly in {failed_s:.1f}s, "
        f"nothing half-made; after freeing space it started in {started_s:.1f}s and works; load {load:.1f}\n"
        f"  the message: {message}"
    )

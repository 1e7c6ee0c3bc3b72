"""The deployable artifact (dist/lambdarec-flink-job.zip) runs the job on the mini-cluster.

The job runs from the unpacked archive with the archive's ``pylib/`` first on the path (its own
copy of the lambdarec core and dependencies) and the archive's connector jar.
"""

from __future__ import annotations

import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream_helpers import job_args, wait_for

from lambdarec import names
from lambdarec.events.consumer import read_topic
from lambdarec.features.session import fold_session
from lambdarec.runtime.supervisor import Supervisor, tail
from lambdarec.settings import Settings, find_project_root
from lambdarec.stream.service import FLINK_PYTHON, StreamJobService


def test_packaged_job_runs_from_the_archive_alone(
    stream_settings: Settings,
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
    produce: Callable[[str, list[Any]], None],
    tmp_path: Path,
) -> None:
    root = find_project_root()
    assert root is not None
    archive = tmp_path / "lambdarec-flink-job.zip"
    subprocess.run(
        [str(root / FLINK_PYTHON), str(root / "jobs" / "flink" / "package.py"), "--out", str(archive)], check=True
    )
    unpacked = tmp_path / "job"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    assert (unpacked / "flink-sql-connector-kafka-5.0.0-2.2.jar").is_file()
    assert (unpacked / "pylib" / "lambdarec" / "features" / "session.py").is_file()

    service = StreamJobService(
        stream_settings,
        kafka_bootstrap,
        job_script=unpacked / "speed_layer.py",
        extra_env={"PYTHONPATH": str(unpacked / "pylib")},
        job_args=job_args(stream_topics, "--sessions-only"),
    )
    supervisor = Supervisor(stream_settings, [service])
    supervisor.up()
    try:
        assert f"lambdarec core from {unpacked / 'pylib' / 'lambdarec'}" in tail(service.log_path, 400)
        base = int(time.time() * 1000)
        events = [
            {"event_id": f"p{i}", "event_time": base + i, "session_id": "packaged", "item_id": f"i{i}",
             "event_type": "view"}
            for i in range(5)
        ]  # fmt: skip
        produce(stream_topics["source"], events)
        expected = fold_session(events)

        def arrived() -> bool:
            rows = read_topic(kafka_bootstrap, stream_topics["session"], timeout_s=5)
            return any(row[names.SESSION_EVENT_COUNT] == 5 for row in rows)

        wait_for(arrived, 90, "the packaged job's session row")
        rows = read_topic(kafka_bootstrap, stream_topics["session"], timeout_s=5)
        final = max(rows, key=lambda r: r[names.SESSION_EVENT_COUNT])
        assert {k: final[k] for k in expected} == expected
    finally:
        supervisor.down()

"""Fault: a Spark batch job is killed (``kill -9``, driver JVM included) in the middle of a stage.

A batch job (bronze from a fresh topic of the session's broker, silver, gold; the calls
``lambdarec batch run`` makes) runs in its own process with its own Spark, and is killed while
Spark writes bronze (before its commit): the offsets ledger must not have moved. A rerun of the same dates with the
session's Spark must then give gold identical to an uninterrupted run of the same input, and bronze
must hold each record once (the rerun replaced the killed run's partial folder).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from lambdarec.batch.bronze import ingest_bronze, run_id
from lambdarec.batch.gold import build_gold_range
from lambdarec.batch.lake import Lake
from lambdarec.batch.silver import build_silver
from lambdarec.events.admin import ensure_topics
from lambdarec.events.producer import EventPublisher

EVENTS = 1_500

JOB = """
import sys
from pathlib import Path
from lambdarec.batch.bronze import ingest_bronze, run_id
from lambdarec.batch.gold import build_gold_range
from lambdarec.batch.lake import Lake
from lambdarec.batch.silver import build_silver
from lambdarec.batch.spark import build_spark, kafka_jars
from lambdarec.settings import load_settings

lake, bootstrap, topic, dates = Lake(Path(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4].split(",")
spark = build_spark("fault-killed", master="local[2]", shuffle_partitions=2,
                    jars=kafka_jars(load_settings().resolved_jars_dir()))
print("spark up", flush=True)
ingest_bronze(spark, lake, bootstrap, topic)
build_silver(spark, lake, dates)
build_gold_range(spark, lake, dates)
print("finished", flush=True)
"""


def publish(bootstrap: str, topic: str) -> list[str]:
    """``EVENTS`` events over two days (across a midnight, two days back); returns their dates."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000
    start_ms = int(midnight) - 86_400_000 - 3_600_000
    times = []
    with EventPublisher(bootstrap, topic=topic, dlq_topic=f"{topic}.dlq") as publisher:
        for i in range(EVENTS):
            event_ms = start_ms + i * 4_000  # 100 minutes: an hour before midnight, 40 after
            times.append(event_ms)
            event = {
                "event_id": f"sk-{i}",
                "event_time": event_ms,
                "session_id": f"s-{i % 53}",
                "user_id": f"u-{i % 17}",
                "item_id": f"i-{(i * 7) % 89}",
                "event_type": ("view", "view", "cart", "view", "purchase")[i % 5],
            }
            assert publisher.publish(event) is None
    return sorted({datetime.fromtimestamp(t / 1000, UTC).date().isoformat() for t in times})


def gold_digest(lake: Lake) -> dict[str, str]:
    """A digest of every gold table's rows (order-free)."""
    out = {}
    for table_dir in sorted(p for p in (lake.root / "gold").iterdir() if p.is_dir()):
        rows = ds.dataset(str(table_dir), partitioning="hive").to_table().to_pylist()
        lines = sorted(orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str) for row in rows)
        out[table_dir.name] = f"{len(rows)} rows {hashlib.sha256(b''.join(lines)).hexdigest()[:16]}"
    return out


# Two whole batch runs and a third Spark: over the suite's 600 s at load 20 on 2 cores (the reference
# run was in its last gold table); a quiet machine needs a fraction of it.
@pytest.mark.timeout(1200)
def test_spark_job_killed_mid_stage_leaves_the_ledger_and_a_rerun_gives_identical_gold(
    spark: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"clicks-sk-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 3, f"{topic}.dlq": 1})
    dates = publish(kafka_bootstrap, topic)
    assert len(dates) == 2

    # The killed run, in its own process group (the Python driver and Spark's JVM). Its bronze folder
    # is known in advance (the run is named after its starting offsets): it appears when Spark's
    # write job starts, and the ledger is committed only after the write and a count of what was
    # written, so a kill as soon as it appears lands inside the bronze stage.
    killed = Lake(tmp_path / "killed")
    target = killed.bronze / f"ingest={run_id(topic, {str(p): 0 for p in range(3)})}"
    load = os.getloadavg()[0]
    started = time.monotonic()
    log_path = tmp_path / "killed-job.log"
    with log_path.open("wb") as log:
        job = subprocess.Popen(
            [sys.executable, "-c", JOB, str(killed.root), kafka_bootstrap, topic, ",".join(dates)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while not target.exists():
            assert job.poll() is None, f"the job ended before its bronze write: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the job never started writing bronze"
            time.sleep(0.005)
        os.killpg(job.pid, signal.SIGKILL)
        killed_after_s = time.monotonic() - started
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    psutil.wait_procs([p for p in psutil.process_iter() if _in_group(p, job.pid)], timeout=10)
    assert not killed.offsets(topic).exists(), "the killed run advanced the offsets ledger"
    # Spark stages a dynamic partition overwrite in .spark-staging-<job> (its _temporary inside).
    mid_write = any(target.glob(".spark-staging-*")) or (target / "_temporary").exists()

    # The rerun of the same dates, and an uninterrupted run of the same input for reference.
    rerun_started = time.monotonic()
    again = ingest_bronze(spark, killed, kafka_bootstrap, topic)
    build_silver(spark, killed, dates)
    build_gold_range(spark, killed, dates)
    rerun_s = time.monotonic() - rerun_started
    reference = Lake(tmp_path / "reference")
    first = ingest_bronze(spark, reference, kafka_bootstrap, topic)
    build_silver(spark, reference, dates)
    build_gold_range(spark, reference, dates)

    assert again.run == first.run and again.records == first.records == EVENTS
    event_ids = [orjson.loads(v)["event_id"] for v in pq.read_table(killed.bronze)["value"].to_pylist()]
    assert sorted(event_ids) == sorted(f"sk-{i}" for i in range(EVENTS)), "bronze lost or doubled a record"
    assert orjson.loads(killed.offsets(topic).read_bytes())["committed"] == first.end
    digest = gold_digest(killed)
    assert digest == gold_digest(reference)
    assert len(digest) >= 3 and all(not d.startswith("0 rows") for d in digest.values()), digest
    print(
        f"\nspark job kill -9 {killed_after_s:.1f}s after launch, in the bronze stage "
        f"({'Spark writing' if mid_write else 'written, not committed'}): ledger not advanced; "
        f"rerun of {', '.join(dates)} in {rerun_s:.1f}s, gold identical ({len(digest)} tables: "
        f"{'; '.join(f'{k} {v}' for k, v in digest.items())}); load {load:.1f}"
    )


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid
    except (ProcessLookupError, psutil.Error):
        return False

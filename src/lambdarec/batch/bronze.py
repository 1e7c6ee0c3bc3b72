"""Bronze: Kafka records → raw Parquet partitioned by event date, with an offsets ledger.

Each run reads an explicit offset range per partition: from the committed offsets (or the
earliest) to the high watermarks seen when the run starts. The run writes to a folder named after
its starting offsets (``ingest=<run>``) and commits the end offsets atomically only after the
write succeeded. A rerun after a crash therefore starts from the same offsets and overwrites the
same folder: nothing is skipped and nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lambdarec.batch.lake import Lake, read_json, write_json_atomic

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EARLIEST = -2
"""Kafka's marker for "from the earliest offset" in Spark's offsets JSON."""


@dataclass
class IngestReport:
    """What one bronze run read and wrote."""

    topic: str
    run: str
    start: dict[str, int]
    end: dict[str, int]
    records: int = 0
    by_date: dict[str, int] = field(default_factory=dict)
    unparseable_time: int = 0
    seconds: float = 0.0
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def watermarks(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, tuple[int, int]]:
    """Low and high watermark of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lambdarec-bronze-probe"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise ValueError(f"topic {topic!r} not found on {bootstrap}")
        out = {}
        for partition in sorted(meta.topics[topic].partitions):
            out[partition] = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        return out
    finally:
        consumer.close()


def plan_offsets(committed: dict[str, int], marks: dict[int, tuple[int, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """The explicit offset range of the next run.

    Args:
        committed: Next offset to read per partition (from the ledger).
        marks: Low/high watermarks per partition.

    Returns:
        ``(start, end)`` per partition; a partition never seen starts at its low watermark, and one
        whose committed offset fell below the low watermark (retention) restarts there.
    """
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for partition, (low, high) in sorted(marks.items()):
        key = str(partition)
        start[key] = max(committed.get(key, low), low)
        end[key] = max(high, start[key])
    return start, end


def run_id(topic: str, start: dict[str, int]) -> str:
    """A run's folder name: a hash of where it starts, so a rerun lands in the same folder."""
    digest = hashlib.sha1(json.dumps({topic: start}, sort_keys=True).encode()).hexdigest()[:12]
    return f"from-{digest}"


def ingest_bronze(
    spark: SparkSession,
    lake: Lake,
    bootstrap: str,
    topic: str,
    *,
    max_records: int | None = None,
) -> IngestReport:
    """Read the next offset range of ``topic`` in batch mode and write it to bronze.

    Args:
        spark: A session with the Spark Kafka connector on its classpath.
        lake: The lake to write to.
        bootstrap: Kafka bootstrap servers.
        topic: The topic (``clicks``).
        max_records: Cap per partition for this run (the rest waits for the next run).

    Returns:
        The run's report (also written under ``_reports/bronze``).
    """
    from pyspark.sql import functions as F

    started = time.monotonic()
    ledger_path = lake.offsets(topic)
    ledger = read_json(ledger_path, {"topic": topic, "committed": {}, "runs": []})
    start, end = plan_offsets(ledger["committed"], watermarks(bootstrap, topic))
    if max_records is not None:
        end = {p: min(end[p], start[p] + max_records) for p in end}
    run = run_id(topic, start)
    report = IngestReport(topic=topic, run=run, start=start, end=end)
    if all(end[p] <= start[p] for p in end):
        report.skipped = True
        report.seconds = time.monotonic() - started
        return report

    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", json.dumps({topic: start}))
        .option("endingOffsets", json.dumps({topic: end}))
        .option("failOnDataLoss", "false")
        .load()
    )
    # try_cast: under ANSI SQL a record whose event_time is text (an ISO date) failed the whole
    # ingest; it lands under the broker's date instead and silver quarantines it.
    event_ms = F.get_json_object(F.col("value").cast("string"), "$.event_time").try_cast("long")
    bronze = raw.select(
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value").cast("string").alias("value"),
        # Records whose time cannot be read still land in bronze (under the broker's date):
        # silver quarantines them with the reason.
        F.to_date(F.coalesce(F.timestamp_millis(event_ms), F.col("timestamp"))).alias("event_date"),
    )
    target = lake.bronze / f"ingest={run}"
    bronze.write.mode("overwrite").partitionBy("event_date").parquet(str(target))

    written = spark.read.parquet(str(target))
    counts = {
        str(r["event_date"]): int(r["n"]) for r in written.groupBy("event_date").agg(F.count("*").alias("n")).collect()
    }
    report.records = sum(counts.values())
    report.by_date = dict(sorted(counts.items()))
    # Commit only now: the data is on disk, so the next run starts where this one ended.
    ledger["committed"] = {**ledger["committed"], **end}
    ledger["runs"] = [*ledger["runs"][-99:], {"run": run, "start": start, "end": end, "records": report.records}]
    write_json_atomic(ledger_path, ledger)
    report.seconds = time.monotonic() - started
    write_json_atomic(lake.report("bronze", run), report.to_dict())
    return report


def bronze_dates(lake: Lake) -> list[str]:
    """Event dates present in bronze (``YYYY-MM-DD``), sorted."""
    found = {p.name.split("=", 1)[1] for p in lake.bronze.glob("ingest=*/event_date=*") if p.is_dir()}
    return sorted(d for d in found if d != "__HIVE_DEFAULT_PARTITION__")

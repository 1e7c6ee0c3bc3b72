"""Helpers to put events straight into bronze, as the Kafka ingest would (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lambdarec.batch.lake import Lake

BRONZE_SCHEMA = pa.schema(
    [
        pa.field("kafka_partition", pa.int32()),
        pa.field("kafka_offset", pa.int64()),
        pa.field("kafka_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("kafka_key", pa.string()),
        pa.field("value", pa.string()),
    ]
)


def bronze_table(events: pa.Table, *, partitions: int = 4, broker_lag_ms: int = 50) -> pa.Table:
    """Bronze rows for an event table: JSON values, round-robin partitions, broker time ≈ event time."""
    rows = events.to_pylist()
    values = [orjson.dumps({k: v for k, v in row.items() if v is not None}).decode() for row in rows]
    n = len(rows)
    part = [i % partitions for i in range(n)]
    offsets = [i // partitions for i in range(n)]
    broker = pc.add(events.column("event_time"), broker_lag_ms).cast(pa.timestamp("ms", tz="UTC"))
    return pa.table(
        {
            "kafka_partition": pa.array(part, pa.int32()),
            "kafka_offset": pa.array(offsets, pa.int64()),
            "kafka_timestamp": broker.cast(pa.timestamp("us", tz="UTC")),
            "kafka_key": events.column("session_id"),
            "value": pa.array(values, pa.string()),
        },
        schema=BRONZE_SCHEMA,
    )


def write_bronze(lake: Lake, table: pa.Table, run: str = "test") -> list[Path]:
    """Write bronze rows (see :func:`bronze_table`) under ``ingest=<run>``, one file per event date."""
    dates = pc.strftime(table.column("kafka_timestamp"), format="%Y-%m-%d")
    written = []
    for day in sorted(set(dates.to_pylist())):
        part = table.filter(pc.equal(dates, day))
        path = lake.bronze / f"ingest={run}" / f"event_date={day}" / "part-00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path)
        written.append(path)
    return written

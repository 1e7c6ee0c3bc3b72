"""Shared constants and helpers of the batch-layer integration tests."""

from __future__ import annotations

import hashlib

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lambdarec.batch.lake import Lake
from lambdarec.batch.testing import BRONZE_SCHEMA

DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]
LAST = DAYS[-1]


def bad_rows(day_ms: int) -> pa.Table:
    """Records silver must quarantine, each with a known reason."""
    broker = day_ms + 3_600_000
    values = [
        "this is not json",
        orjson.dumps({"event_id": "x1", "event_time": broker, "session_id": "s", "event_type": "view"}).decode(),
        orjson.dumps(
            {"event_id": "x2", "event_time": broker, "session_id": "s", "item_id": "i", "event_type": "click"}
        ).decode(),
        orjson.dumps(
            {
                "event_id": "x3",
                "event_time": broker + 3 * 86_400_000,
                "session_id": "s",
                "item_id": "i",
                "event_type": "view",
            }
        ).decode(),
        orjson.dumps(
            {
                "event_id": "x4",
                "event_time": broker,
                "session_id": "s",
                "item_id": "i",
                "event_type": "view",
                "price": -1,
            }
        ).decode(),
    ]
    return records(values, broker)


def records(values: list[str], broker_ms: int) -> pa.Table:
    n = len(values)
    return pa.table(
        {
            "kafka_partition": pa.array([9] * n, pa.int32()),
            "kafka_offset": pa.array(range(n), pa.int64()),
            "kafka_timestamp": pa.array([broker_ms * 1000] * n, pa.timestamp("us", tz="UTC")),
            "kafka_key": pa.array(["s"] * n),
            "value": pa.array(values),
        },
        schema=BRONZE_SCHEMA,
    )


def silver_hash(lake: Lake) -> str:
    table = pq.read_table(lake.silver).drop_columns(["event_date"])
    table = table.sort_by([("event_id", "ascending")])
    return hashlib.sha256(orjson.dumps(table.to_pylist(), option=orjson.OPT_SORT_KEYS)).hexdigest()

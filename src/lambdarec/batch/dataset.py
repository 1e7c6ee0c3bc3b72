"""A dataset straight into bronze, without Kafka: ``lambdarec batch run --dataset <adapter>:<path>``.

A dataset adapter (:func:`lambdarec.data.registry.open_dataset`) streams event tables; each event
becomes the bronze record the Kafka ingest would have written for it (the event as JSON, the
event's own time as the broker's time), so silver applies exactly the same cleaning rules to it
(one set of rules, no second copy for this path). The records carry ``kafka_partition = -1``
(:data:`DATASET_PARTITION`: not from Kafka) and their position in the dataset as the offset, so
silver's "first copy wins" keeps the dataset's order. The Kafka offsets ledger is not touched.

A run writes ``bronze/clicks/ingest=dataset-<hash of the spec>/event_date=*/`` and replaces that
folder first: ingesting the same spec again gives the same bronze, never a second copy.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lambdarec.batch.lake import Lake, write_json_atomic
from lambdarec.batch.testing import BRONZE_SCHEMA

DATASET_PARTITION = -1
"""``kafka_partition`` of records that came from a dataset file, not from a broker."""


@dataclass
class DatasetIngestReport:
    """What one dataset ingest wrote to bronze.

    Attributes:
        spec: The dataset spec (``<adapter>:<path>``).
        run: The bronze run folder (``ingest=<run>``).
        records: Bronze records written (the events the adapter emitted).
        by_date: Records per event date.
        adapter: The adapter's own report (rows read, dropped with reasons).
        seconds: Wall time.
    """

    spec: str
    run: str
    records: int = 0
    by_date: dict[str, int] = field(default_factory=dict)
    adapter: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def dataset_run_id(spec: str) -> str:
    """The bronze run folder of a dataset: a hash of the adapter and the resolved path."""
    from lambdarec.data.registry import parse_spec

    name, path = parse_spec(spec)
    digest = hashlib.sha1(f"{name}:{Path(path).resolve()}".encode()).hexdigest()[:12]
    return f"dataset-{digest}"


def bronze_records(events: pa.Table, first_offset: int) -> pa.Table:
    """Bronze rows for an event table, as the Kafka ingest writes them.

    Args:
        events: Events in the event schema (:data:`lambdarec.data.EVENT_SCHEMA`).
        first_offset: The offset of the first row (rows are numbered on from it).

    Returns:
        A table in :data:`lambdarec.batch.testing.BRONZE_SCHEMA`: the event as JSON (null fields
        left out, as the producer sends them), its time as the broker's, partition
        :data:`DATASET_PARTITION`, the session as the key.
    """
    columns = {name: events.column(name).to_pylist() for name in events.column_names}
    keys = list(columns)
    values = [
        orjson.dumps({k: v for k, v in zip(keys, row, strict=True) if v is not None}).decode()
        for row in zip(*columns.values(), strict=True)
    ]
    n = events.num_rows
    return pa.table(
        {
            "kafka_partition": pa.array([DATASET_PARTITION] * n, pa.int32()),
            "kafka_offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
            "kafka_timestamp": events.column("event_time")
            .cast(pa.timestamp("ms", tz="UTC"))
            .cast(pa.timestamp("us", tz="UTC")),
            "kafka_key": events.column("session_id").cast(pa.string()),
            "value": pa.array(values, pa.string()),
        },
        schema=BRONZE_SCHEMA,
    )


def ingest_dataset(lake: Lake, spec: str, **options: Any) -> DatasetIngestReport:
    """Write a dataset's events to bronze as the Kafka ingest would (no broker, no Spark).

    Memory holds one adapter batch at a time; each batch is appended to one file per event date.

    Args:
        lake: The lake to write to.
        spec: ``<adapter>:<path>`` (see :func:`lambdarec.data.registry.open_dataset`).
        **options: Passed to the adapter (``batch_size``, ``timezone``, ``mapping``, ...).

    Returns:
        The report (also written under ``_reports/bronze/<run>.json``); ``by_date`` names the
        event dates silver should (re)build.
    """
    from lambdarec.data.registry import open_dataset

    started = time.monotonic()
    adapter = open_dataset(spec, **options)
    run = dataset_run_id(spec)
    report = DatasetIngestReport(spec=spec, run=run)
    target = lake.bronze / f"ingest={run}"
    if target.exists():  # a rerun replaces the run, even when the dataset shrank
        shutil.rmtree(target)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}
    try:
        for table in adapter.iter_tables():
            bronze = bronze_records(table, report.records)
            report.records += bronze.num_rows
            dates = pc.strftime(bronze.column("kafka_timestamp"), format="%Y-%m-%d")
            for day in pc.unique(dates).to_pylist():
                part = bronze.filter(pc.equal(dates, day))
                writer = writers.get(day)
                if writer is None:
                    path = target / f"event_date={day}" / "part-00000.parquet"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writer = writers[day] = pq.ParquetWriter(path, BRONZE_SCHEMA, compression="zstd")
                writer.write_table(part)
                counts[day] = counts.get(day, 0) + part.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    report.by_date = dict(sorted(counts.items()))
    report.adapter = adapter.report.to_dict()
    report.seconds = time.monotonic() - started
    write_json_atomic(lake.report("bronze", run), report.to_dict())
    return report

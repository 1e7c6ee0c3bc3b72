"""Bronze from the real Kafka broker: explicit offset ranges, a committed ledger, no skips, no duplicates."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from lambdarec.batch.bronze import ingest_bronze, watermarks
from lambdarec.batch.lake import Lake, read_json
from lambdarec.events.admin import ensure_topics
from lambdarec.events.producer import EventPublisher

NOW_MS = int(time.time() * 1000)


def _publish(bootstrap: str, topic: str, first: int, count: int) -> None:
    with EventPublisher(bootstrap, topic=topic, dlq_topic=f"{topic}.dlq") as publisher:
        for i in range(first, first + count):
            event = {
                "event_id": f"k-{i}",
                "event_time": NOW_MS - 3_600_000 + i,
                "session_id": f"s-{i % 9}",
                "item_id": f"i-{i % 13}",
                "event_type": "view",
            }
            assert publisher.publish(event) is None


def test_ingest_reads_each_offset_once(spark: object, kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"clicks-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 3, f"{topic}.dlq": 1})
    lake = Lake(tmp_path / "lake")
    _publish(kafka_bootstrap, topic, 0, 300)

    first = ingest_bronze(spark, lake, kafka_bootstrap, topic)  # type: ignore[arg-type]
    assert first.records == 300 and sum(first.end.values()) == 300
    assert ingest_bronze(spark, lake, kafka_bootstrap, topic).skipped  # type: ignore[arg-type]

    # A crash after the write but before the commit: the ledger still says where the run started,
    # so the rerun lands in the same folder and replaces it.
    ledger_path = lake.offsets(topic)
    ledger_before = ledger_path.read_text()
    _publish(kafka_bootstrap, topic, 300, 120)
    second = ingest_bronze(spark, lake, kafka_bootstrap, topic)  # type: ignore[arg-type]
    ledger_path.write_text(ledger_before)  # forget the commit
    _publish(kafka_bootstrap, topic, 420, 30)
    retried = ingest_bronze(spark, lake, kafka_bootstrap, topic)  # type: ignore[arg-type]
    assert retried.run == second.run and retried.records == 150

    # Bronze holds every published event exactly once: none skipped, none twice (the retried run
    # replaced its folder instead of adding 120 more rows).
    table = pq.read_table(lake.bronze)
    event_ids = [orjson.loads(value)["event_id"] for value in table["value"].to_pylist()]
    assert len(event_ids) == 450
    assert Counter(event_ids) == Counter(f"k-{i}" for i in range(450))
    # Each partition's offsets run without a gap from 0 to the committed end, which is the broker's end.
    offsets: dict[int, list[int]] = defaultdict(list)
    for partition, offset in zip(table["kafka_partition"].to_pylist(), table["kafka_offset"].to_pylist(), strict=True):
        offsets[partition].append(offset)
    committed = {int(k): v for k, v in read_json(ledger_path)["committed"].items()}
    assert set(offsets) == {0, 1, 2}
    assert {p: sorted(found) for p, found in offsets.items()} == {p: list(range(end)) for p, end in committed.items()}
    marks = watermarks(kafka_bootstrap, topic)
    assert committed == {p: high for p, (_low, high) in marks.items()}

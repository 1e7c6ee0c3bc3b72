"""The shared corpus (tests/data/events) through the real Kafka broker, bronze and silver on real Spark.

Every record is produced as it is (bytes, no publisher) to a fresh topic, read into bronze by
``ingest_bronze`` and cleaned by ``build_silver``: a rejected record must sit in silver's
quarantine with the contract's reason (``field: text``), an accepted one in silver with the
contract's canonical fields. The publisher and the Flink job run the same corpus.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.parquet as pq

from event_corpus import load_corpus
from lambdarec.batch.bronze import bronze_dates, ingest_bronze
from lambdarec.batch.lake import Lake
from lambdarec.batch.silver import build_silver
from lambdarec.events.admin import ensure_topics
from lambdarec.events.contract import DEFAULT_BOUNDS, decode_record

CANONICAL = ("event_id", "event_time", "session_id", "user_id", "item_id", "event_type", "price", "category", "brand")


def test_silver_reaches_the_contracts_verdict_and_reason_on_the_shared_corpus(
    spark: object, kafka_bootstrap: str, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    cases = load_corpus()
    topic = f"corpus-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 1})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "log_level": 0})
    for case in cases:  # one partition: offset i is case i
        producer.produce(topic, case.raw)
    assert producer.flush(30) == 0

    lake = Lake(tmp_path / "lake")
    assert ingest_bronze(spark, lake, kafka_bootstrap, topic).records == len(cases)  # type: ignore[arg-type]
    reports = build_silver(spark, lake, bronze_dates(lake))  # type: ignore[arg-type]

    quarantined = pq.read_table(lake.quarantine("silver"), columns=["kafka_offset", "reason"]).to_pylist()
    reasons = {row["kafka_offset"]: row["reason"] for row in quarantined}
    silver = {row["kafka_offset"]: row for row in pq.read_table(lake.silver).to_pylist()}
    assert len(reasons) + len(silver) == len(cases)
    for offset, case in enumerate(cases):
        if case.accept:
            assert offset in silver, f"{case.name}: quarantined as {reasons.get(offset)!r}"
            expected = decode_record(case.raw, DEFAULT_BOUNDS)
            assert isinstance(expected, dict)
            assert {name: silver[offset][name] for name in CANONICAL} == {
                name: expected.get(name) for name in CANONICAL
            }, case.name
        else:
            assert reasons.get(offset) == case.reason(DEFAULT_BOUNDS), case.name
    # The reports count the same reasons.
    counted: dict[str, int] = {}
    for report in reports:
        for reason, n in report.rejected.items():
            counted[reason] = counted.get(reason, 0) + n
    assert sum(counted.values()) == sum(not case.accept for case in cases)

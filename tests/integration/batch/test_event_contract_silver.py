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


def test_the_publisher_reaches_the_contracts_verdict_and_reason_on_the_real_broker(kafka_bootstrap: str) -> None:
    """Every corpus record offered to ``EventPublisher``: events on clicks, the rest dead-lettered with the reason."""
    from lambdarec.events.consumer import read_topic
    from lambdarec.events.producer import EventPublisher

    cases = load_corpus()
    topic = f"corpus-pub-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 1, f"{topic}.dlq": 1})
    with EventPublisher(kafka_bootstrap, topic=topic, dlq_topic=f"{topic}.dlq") as publisher:
        for i, case in enumerate(cases):
            publisher.publish(case.raw, origin={"case": i})
    stats = publisher.stats
    assert stats.balanced, stats.as_dict()
    accepted = read_topic(kafka_bootstrap, topic, timeout_s=10)
    letters = {letter["origin"]["case"]: letter for letter in read_topic(kafka_bootstrap, f"{topic}.dlq", timeout_s=10)}
    expected_accepted = [decode_record(case.raw, DEFAULT_BOUNDS) for case in cases if case.accept]
    assert accepted == expected_accepted  # canonical JSON, in order (one partition)
    assert sorted(letters) == [i for i, case in enumerate(cases) if not case.accept]
    for i, letter in letters.items():
        case = cases[i]
        assert (letter["field"], letter["code"], letter["source"]) == (case.field, case.code, "producer"), case.name
        line = f"{letter['field']}: {letter['reason']}" if letter["field"] else letter["reason"]
        assert line == case.reason(DEFAULT_BOUNDS), case.name

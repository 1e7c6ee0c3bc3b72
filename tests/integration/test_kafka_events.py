"""Events through the real Kafka broker: round trip, dead letters, garbage bytes, restarts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psutil
import pytest

from lambdarec.events.admin import ensure_topics
from lambdarec.events.consumer import EventConsumer, read_topic
from lambdarec.events.producer import EventPublisher
from lambdarec.runtime.kafka import KafkaService
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import load_settings

NOW_MS = int(time.time() * 1000)


def fresh_topics(bootstrap: str) -> tuple[str, str]:
    """A private clicks/DLQ topic pair so tests sharing the broker never see each other's data."""
    suffix = uuid.uuid4().hex[:8]
    clicks, dlq = f"clicks-{suffix}", f"clicks-{suffix}.dlq"
    ensure_topics(bootstrap, {clicks: 3, dlq: 1})
    return clicks, dlq


def valid_event(i: int, session: str | None = None) -> dict[str, object]:
    return {
        "event_id": f"e-{i}",
        "event_time": NOW_MS - 60_000 + i,
        "session_id": session or f"s-{i % 7}",
        "user_id": f"u-{i % 5}" if i % 3 else None,
        "item_id": 1000 + i % 50,
        "event_type": ["view", "view", "cart", "purchase"][i % 4],
        "price": 9.99,
        "category": "electronics.audio",
    }


def test_round_trip_preserves_every_event_and_session_order(kafka_bootstrap: str) -> None:
    clicks, dlq = fresh_topics(kafka_bootstrap)
    sent = [valid_event(i) for i in range(2_000)]
    with EventPublisher(kafka_bootstrap, topic=clicks, dlq_topic=dlq) as publisher:
        publisher.publish_many(sent)
    assert publisher.stats.balanced and publisher.stats.delivered == 2_000

    with EventConsumer(kafka_bootstrap, f"g-{uuid.uuid4().hex}", topic=clicks, dlq_topic=dlq) as consumer:
        received = list(consumer.iter_events(idle_timeout_s=3.0))
    assert sorted(e.event_id for e in received) == sorted(str(e["event_id"]) for e in sent)
    # Keyed by session: within one session the broker keeps the publish order.
    for session in {e.session_id for e in received}:
        times = [e.event_time for e in received if e.session_id == session]
        assert times == sorted(times)
    by_id = {e.event_id: e for e in received}
    assert by_id["e-1"].user_id == "u-1" and by_id["e-0"].user_id is None
    assert by_id["e-3"].event_type == "purchase" and by_id["e-3"].item_id == "1003"


BAD_EVENTS: list[tuple[object, str | None]] = [
    ({**valid_event(1), "event_id": ""}, "event_id"),
    ({k: v for k, v in valid_event(2).items() if k != "session_id"}, "session_id"),
    ({**valid_event(3), "event_type": "click"}, "event_type"),
    ({**valid_event(4), "event_time": "yesterday"}, "event_time"),
    ({**valid_event(5), "event_time": 1234}, "event_time"),
    ({**valid_event(6), "event_time": NOW_MS + 30 * 86_400_000}, "event_time"),
    ({**valid_event(7), "price": "cheap"}, "price"),
    ({**valid_event(8), "price": -1}, "price"),
    ({**valid_event(9), "item_id": 3.5}, "item_id"),
    ({**valid_event(10), "unexpected": 1}, "unexpected"),
    (b"\xff\xfe not json", None),
    (b"[1, 2, 3]", None),
    (b'{"event_id": "big", "pad": "' + b"x" * 40_000 + b'"}', None),
]


def test_every_bad_event_lands_in_the_dlq_with_its_reason(kafka_bootstrap: str) -> None:
    clicks, dlq = fresh_topics(kafka_bootstrap)
    with EventPublisher(kafka_bootstrap, topic=clicks, dlq_topic=dlq) as publisher:
        for i, (raw, _field) in enumerate(BAD_EVENTS):
            publisher.publish(raw, origin={"case": i})  # type: ignore[arg-type]
        publisher.publish(valid_event(99))
    stats = publisher.stats
    assert stats.offered == len(BAD_EVENTS) + 1 == stats.accepted + stats.rejected
    assert (stats.rejected, stats.dead_lettered, stats.delivered) == (len(BAD_EVENTS), len(BAD_EVENTS), 1)

    letters = sorted(read_topic(kafka_bootstrap, dlq), key=lambda r: r["origin"]["case"])
    assert [r["origin"]["case"] for r in letters] == list(range(len(BAD_EVENTS)))
    for letter, (raw, field) in zip(letters, BAD_EVENTS, strict=True):
        assert letter["reason"] and letter["source"] == "producer"
        assert letter["field"] == field
        # Nothing lost: the payload travels with the reason.
        if isinstance(raw, dict):
            assert letter["raw_json"]["event_id"] == raw["event_id"]
        elif raw.startswith(b"\xff"):
            assert "raw_b64" in letter
        else:
            assert letter["raw"].encode() == raw
    assert "exceeds" in letters[-1]["reason"]
    assert [r["event_id"] for r in read_topic(kafka_bootstrap, clicks)] == ["e-99"]


def test_consumer_dead_letters_garbage_written_straight_to_the_topic(kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer

    clicks, dlq = fresh_topics(kafka_bootstrap)
    raw_producer = Producer({"bootstrap.servers": kafka_bootstrap})
    payloads = [b"\x00\x01\x02", b"{}", b'{"event_id": 5}', valid_event(1), b"", valid_event(2)]
    for payload in payloads:
        value = payload if isinstance(payload, bytes) else EventPublisher_json(payload)
        raw_producer.produce(clicks, value=value, key=b"k")
    raw_producer.flush(10)

    with EventConsumer(kafka_bootstrap, f"g-{uuid.uuid4().hex}", topic=clicks, dlq_topic=dlq) as consumer:
        events = list(consumer.iter_events(idle_timeout_s=3.0))
        assert consumer.stats.records == len(payloads)
        assert consumer.stats.dead_lettered == 4
    assert [e.event_id for e in events] == ["e-1", "e-2"]
    letters = read_topic(kafka_bootstrap, dlq)
    assert len(letters) == 4
    assert {r["origin"]["offset"] for r in letters} == {0, 1, 2, 4}
    assert all(r["source"] == "consumer" and r["origin"]["topic"] == clicks for r in letters)


def EventPublisher_json(event: dict[str, object]) -> bytes:  # noqa: N802 - reads as what it does
    import orjson

    return orjson.dumps(event)


def test_broker_restart_keeps_data_and_committed_offsets(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path)
    supervisor = Supervisor(settings, [KafkaService(settings)])
    supervisor.up()
    try:
        bootstrap = supervisor.endpoint("kafka")
        assert bootstrap is not None
        with EventPublisher(bootstrap) as publisher:
            publisher.publish_many(valid_event(i) for i in range(500))
        group = "restart-test"
        with EventConsumer(bootstrap, group) as consumer:
            first = list(consumer.iter_events(idle_timeout_s=3.0, limit=200))
        assert len(first) == 200

        pid = supervisor.status()[0].pid
        assert supervisor.down() == ["kafka"]
        assert pid is not None and not psutil.pid_exists(pid)
        assert supervisor.status()[0].state == "stopped"

        status = supervisor.up()[0]
        assert status.healthy and status.endpoint == bootstrap  # same port after restart
        assert len(read_topic(bootstrap, "clicks")) == 500
        with EventConsumer(bootstrap, group) as consumer:
            rest = list(consumer.iter_events(idle_timeout_s=3.0))
        # The committed position survived: the rest, no loss and no repeats.
        assert len(rest) == 300
        assert {e.event_id for e in first} | {e.event_id for e in rest} == {f"e-{i}" for i in range(500)}
    finally:
        supervisor.down()
    assert not any(
        "kafka.Kafka" in " ".join(p.info["cmdline"] or []) and str(tmp_path) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
    )


@pytest.mark.parametrize("topic", ["clicks", "clicks.dlq", "features.session"])
def test_core_topics_exist_after_up(kafka_bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert topic in topics


def test_history_is_stamped_with_publish_time_so_retention_keeps_it(kafka_bootstrap: str) -> None:
    """A 2019 event must not carry a 2019 record timestamp: 7-day retention would delete it at once."""
    from confluent_kafka import Consumer, TopicPartition

    clicks, dlq = fresh_topics(kafka_bootstrap)
    before_ms = int(time.time() * 1000)
    with EventPublisher(kafka_bootstrap, topic=clicks, dlq_topic=dlq) as publisher:
        publisher.publish({**valid_event(1, session="old"), "event_time": 1_569_888_000_000})
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"ts-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(clicks, timeout=10).topics[clicks].partitions
        consumer.assign([TopicPartition(clicks, p, 0) for p in partitions])
        messages: list[object] = []
        deadline = time.monotonic() + 20
        while not messages and time.monotonic() < deadline:
            messages = [m for m in consumer.consume(10, timeout=1.0) if m.error() is None]
        (message,) = messages
        _kind, stamp = message.timestamp()  # type: ignore[attr-defined]
        assert stamp >= before_ms - 1000  # publish time, not 2019
        assert b'"event_time":1569888000000' in message.value()  # type: ignore[attr-defined]
    finally:
        consumer.close()

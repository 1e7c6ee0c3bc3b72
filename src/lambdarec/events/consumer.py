"""Reading validated events back, sending undecodable records to the dead-letter topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lambdarec.events.admin import partition_watermarks
from lambdarec.events.dlq import dead_letter
from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC
from lambdarec.schemas import ClickEvent, EventRejection, validate_event


@dataclass
class ConsumeStats:
    """What a consumer has seen: ``records == events + dead_lettered``."""

    records: int = 0
    events: int = 0
    dead_lettered: int = 0


class EventConsumer:
    """Consume ``clicks`` as :class:`ClickEvent`s; anything else goes to ``clicks.dlq``.

    Offsets are committed only by :meth:`commit`, after the caller has processed what it
    got (at-least-once; event_id makes the rare redelivery harmless downstream).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        *,
        topic: str = CLICKS_TOPIC,
        dlq_topic: str = CLICKS_DLQ_TOPIC,
        from_beginning: bool = True,
        max_event_bytes: int = 2 * 2**20,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Consumer, Producer

        self.topic = topic
        self.dlq_topic = dlq_topic
        self.max_event_bytes = max_event_bytes
        self.stats = ConsumeStats()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.partition.eof": False,
                "logger": logging.getLogger("lambdarec.kafka.consumer"),
                **(config or {}),
            }
        )
        self._dlq = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "logger": logging.getLogger("lambdarec.kafka.producer"),
            }
        )
        self._assigned = False
        self._next_offsets: dict[int, int] = {}
        self._consumer.subscribe([topic], on_assign=self._on_assign)

    def _on_assign(self, _consumer: Any, _partitions: Any) -> None:
        self._assigned = True

    def poll(self, timeout_s: float = 1.0, max_records: int = 10_000) -> list[ClickEvent]:
        """Return the next batch of valid events (possibly empty).

        Records that are not valid events are dead-lettered with their topic, partition
        and offset, so the batch never raises on bad bytes. The whole batch counts as
        processed at the next :meth:`commit`.
        """
        batch = self._poll_positions(timeout_s, max_records)
        for _event, partition, offset in batch:
            self._mark(partition, offset)
        return [event for event, _p, _o in batch]

    def _poll_positions(self, timeout_s: float, max_records: int) -> list[tuple[ClickEvent, int, int]]:
        from confluent_kafka import KafkaError

        messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        events: list[tuple[ClickEvent, int, int]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consumer error: {error}")
            self.stats.records += 1
            # Consumed messages always carry a partition and an offset; the stubs say Optional.
            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
            value = message.value() or b""
            result = validate_event(value, max_bytes=self.max_event_bytes, max_future_ms=2**62)
            if isinstance(result, EventRejection):
                origin = {"topic": message.topic(), "partition": partition, "offset": offset}
                self._dlq.produce(self.dlq_topic, dead_letter(value, result, source="consumer", origin=origin))
                self.stats.dead_lettered += 1
                # A dead letter is handled once the DLQ acknowledges it (flushed in commit()).
                self._mark(partition, offset)
            else:
                events.append((result, partition, offset))
                self.stats.events += 1
        self._dlq.poll(0)
        return events

    def _mark(self, partition: int, offset: int) -> None:
        if offset + 1 > self._next_offsets.get(partition, -1):
            self._next_offsets[partition] = offset + 1

    def iter_events(
        self, idle_timeout_s: float = 5.0, limit: int | None = None, join_timeout_s: float = 60.0
    ) -> Iterator[ClickEvent]:
        """Yield events until none arrived for ``idle_timeout_s`` (or ``limit`` is reached).

        The idle clock starts once the group has assigned partitions (joining a group can
        take seconds on a fresh broker). An event counts as processed once the caller asks
        for the next one; offsets are committed after each batch and when stopping, so a
        consumer stopped by ``limit`` resumes right after the last event it yielded.

        Raises:
            TimeoutError: No partitions were assigned within ``join_timeout_s``.
        """
        join_deadline = time.monotonic() + join_timeout_s
        pending: list[tuple[ClickEvent, int, int]] = []
        while not self._assigned and not pending:
            if time.monotonic() > join_deadline:
                raise TimeoutError(f"no partitions of {self.topic} assigned within {join_timeout_s}s")
            pending = self._poll_positions(0.5, 10_000)
        last = time.monotonic()
        seen = 0
        while pending or time.monotonic() - last < idle_timeout_s:
            batch, pending = pending or self._poll_positions(min(1.0, idle_timeout_s), 10_000), []
            if batch:
                last = time.monotonic()
            for event, partition, offset in batch:
                yield event
                self._mark(partition, offset)
                seen += 1
                if limit is not None and seen >= limit:
                    self.commit()
                    return
            self.commit()

    def commit(self) -> None:
        """Commit the offsets of everything processed so far, after flushing dead letters."""
        from confluent_kafka import TopicPartition

        self._dlq.flush(30)
        if not self._next_offsets:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(self._next_offsets.items())]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self._next_offsets.clear()

    def close(self) -> None:
        """Flush dead letters and leave the group."""
        self._dlq.flush(30)
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_topic(bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Read a whole topic from the beginning to its current end, as decoded JSON values.

    A helper for tests, the demo summary and DLQ inspection: it uses no consumer group
    offsets (assigns partitions directly) and stops at the high watermarks read at start.
    Values that are not JSON come back as ``{"_raw": bytes}``.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"read-{time.time_ns()}", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        ends = {}
        assignments = []
        for partition in partitions:
            low, high = partition_watermarks(consumer, TopicPartition(topic, partition), timeout_s)
            if high > low:
                ends[partition] = high
                assignments.append(TopicPartition(topic, partition, low))
        if not assignments:
            return []
        consumer.assign(assignments)
        out: list[dict[str, Any]] = []
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is not None:
                    continue
                value = message.value() or b""
                try:
                    out.append(orjson.loads(value))
                except orjson.JSONDecodeError:
                    out.append({"_raw": value})
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                if offset + 1 >= ends[partition]:
                    done.add(partition)
        if len(done) < len(ends):
            raise TimeoutError(f"read {len(out)} records of {topic} but did not reach its end in {timeout_s}s")
        return out
    finally:
        consumer.close()

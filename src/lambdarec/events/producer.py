"""The validating, idempotent clickstream publisher.

Every event offered to :class:`EventPublisher` ends in exactly one place: ``clicks`` when
it validates, ``clicks.dlq`` with the reason when it does not. The counts add up:
``offered == accepted + rejected``; after :meth:`EventPublisher.flush`,
``accepted == delivered`` and ``rejected == dead_lettered`` unless the broker failed a
delivery, which is counted in ``failed`` and reported, never hidden.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdarec.events.contract import EARLIEST_EVENT_MS
from lambdarec.events.dlq import dead_letter
from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC
from lambdarec.schemas import ClickEvent, EncodedEvent, EventRejection, encode_event

# Throughput-oriented defaults; idempotence and acks=all keep them safe under retries.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "message.timeout.ms": 120_000,
}


@dataclass
class PublishStats:
    """Where every offered event went.

    Attributes:
        offered: Raw events handed to the publisher.
        accepted: Valid events produced to the clicks topic.
        rejected: Invalid events produced to the dead-letter topic.
        delivered: Accepted events the broker acknowledged.
        dead_lettered: Rejected events the broker acknowledged on the DLQ.
        failed: Deliveries the broker failed (after the client's retries).
        reasons: Rejection count per field/reason.
    """

    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """True when every offered event is accounted for and acknowledged."""
        return (
            self.offered == self.accepted + self.rejected
            and self.delivered == self.accepted
            and self.dead_lettered == self.rejected
            and self.failed == 0
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {
            "offered": self.offered,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "failed": self.failed,
            "reasons": dict(self.reasons.most_common()),
        }


class DeliveryError(RuntimeError):
    """The broker did not acknowledge some messages within the flush timeout."""


class EventPublisher:
    """Validate raw events and publish them to ``clicks`` or, with the reason, to ``clicks.dlq``.

    Example:
        >>> with EventPublisher("127.0.0.1:9092") as publisher:  # doctest: +SKIP
        ...     publisher.publish({"event_id": "e1", ...})
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = CLICKS_TOPIC,
        dlq_topic: str = CLICKS_DLQ_TOPIC,
        max_event_bytes: int = 16_384,
        max_future_ms: int = 86_400_000,
        earliest_ms: int = EARLIEST_EVENT_MS,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.dlq_topic = dlq_topic
        self.max_event_bytes = max_event_bytes
        self.max_future_ms = max_future_ms
        self.earliest_ms = earliest_ms
        self.stats = PublishStats()
        self._producer = Producer(
            {
                **PRODUCER_DEFAULTS,
                # librdkafka's own log lines go through Python logging, not straight to stderr.
                "logger": logging.getLogger("lambdarec.kafka.producer"),
                **(config or {}),
                "bootstrap.servers": bootstrap_servers,
            }
        )
        self._since_poll = 0

    # -- publishing ----------------------------------------------------------------------
    def publish(
        self, raw: Mapping[str, Any] | bytes | str, origin: Mapping[str, Any] | None = None
    ) -> EventRejection | None:
        """Validate one raw event and send it to the right topic.

        Args:
            raw: A mapping (from an adapter) or JSON bytes/text (from a client).
            origin: Where it came from, kept in the dead letter if it is rejected.

        Returns:
            None when the event went to the clicks topic, else the rejection that sent it
            to the DLQ.
        """
        self.stats.offered += 1
        result = encode_event(
            raw, max_bytes=self.max_event_bytes, max_future_ms=self.max_future_ms, earliest_ms=self.earliest_ms
        )
        if type(result) is EncodedEvent:
            self.stats.accepted += 1
            self._produce(self.topic, result.key, result.value, dlq=False)
            return None
        assert isinstance(result, EventRejection)
        self.reject(raw, result, origin=origin, count_offered=False)
        return result

    def publish_many(self, raws: Iterable[Mapping[str, Any] | bytes | str]) -> PublishStats:
        """Publish every raw event of an iterable; returns the running stats."""
        for raw in raws:
            self.publish(raw)
        return self.stats

    def publish_event(self, event: ClickEvent) -> None:
        """Publish an event that is already validated (e.g. built by the generator)."""
        self.stats.offered += 1
        self.stats.accepted += 1
        self._produce(self.topic, event.session_id.encode(), event.to_json(), dlq=False)

    def reject(
        self,
        raw: Any,
        rejection: EventRejection,
        *,
        origin: Mapping[str, Any] | None = None,
        count_offered: bool = True,
    ) -> None:
        """Send a payload that failed validation elsewhere (an adapter, a parser) to the DLQ."""
        if count_offered:
            self.stats.offered += 1
        self.stats.rejected += 1
        self.stats.reasons[rejection.describe()[:120]] += 1
        self._produce(self.dlq_topic, None, dead_letter(raw, rejection, source="producer", origin=origin), dlq=True)

    def _produce(self, topic: str, key: bytes | None, value: bytes, *, dlq: bool) -> None:
        # The Kafka record timestamp is the time of publishing, not the event time (which is
        # in the payload): replays of history would otherwise be deleted at once by time-based
        # retention, and Kafka 4 refuses record timestamps more than an hour ahead.
        callback = self._on_dlq_delivery if dlq else self._on_delivery
        kwargs: dict[str, Any] = {"on_delivery": callback}
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, **kwargs)
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.05)
        self._since_poll += 1
        if self._since_poll >= 1000:
            self._producer.poll(0)
            self._since_poll = 0

    # -- delivery reports ---------------------------------------------------------------------
    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self._record_failure(err)

    def _on_dlq_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.stats.dead_lettered += 1
        else:
            self._record_failure(err)

    def _record_failure(self, err: Any) -> None:
        self.stats.failed += 1
        if len(self.stats.failures) < 20:
            self.stats.failures.append(str(err))

    # -- lifecycle -------------------------------------------------------------------------------
    def flush(self, timeout_s: float = 60.0) -> PublishStats:
        """Wait until the broker acknowledged everything sent so far.

        Raises:
            DeliveryError: Messages are still unacknowledged after ``timeout_s``.
        """
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} messages not acknowledged after {timeout_s}s")
        return self.stats

    def close(self) -> PublishStats:
        """Flush and return the final stats."""
        return self.flush()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.flush()

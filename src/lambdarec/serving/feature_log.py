"""The served-features log: a sample of the model inputs the recommender assembled, as it served them.

``drift_monitor`` compares production with the training reference; "production" must be what the
models actually read, not the lake: the online store can lag, lose a field or be fed by another
path. So the request path hands every batch's assembled query inputs (the same
:data:`~lambdarec.models.inputs.QUERY_DENSE` columns the query tower reads, built by the one
assembly function) to :class:`ServedFeatureLog`, which keeps a random ``rate`` of the requests and
produces one JSON record each to the ``features.served`` topic.

Bounded everywhere: the sample rate, a producer queue that drops (and counts) rather than grow when
Kafka is away, and the topic's retention (a week, 256 MiB). Logging never slows or fails a request:
``produce`` only enqueues.

One record::

    {"ts_ms": 1764720000000, "model": "3", "features": {"session_event_count": 1.39, ...}}
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lambdarec.names import SERVED_FEATURES_TOPIC

log = logging.getLogger(__name__)

TS_FIELD = "ts_ms"
MODEL_FIELD = "model"

PRODUCER_CONFIG: dict[str, Any] = {
    # A sample, not a ledger: one acknowledgement is enough, and a full queue drops records.
    "acks": "1",
    "linger.ms": 500,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 20_000,
    "queue.buffering.max.kbytes": 16 * 1024,
    "message.timeout.ms": 30_000,
    # librdkafka would print every reconnect attempt while Kafka is away; the counts say it instead.
    "log_level": 0,
}


@dataclass
class FeatureLogStats:
    """What happened to the sampled requests.

    Attributes:
        seen: Requests offered to the log (answered by the models).
        sampled: Of those, kept by the sample.
        delivered: Acknowledged by Kafka.
        dropped: Not enqueued because the producer's bounded queue was full (Kafka away).
        failed: Enqueued but not delivered in time.
    """

    seen: int = 0
    sampled: int = 0
    delivered: int = 0
    dropped: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return asdict(self)


def encode_record(ts_ms: int, model: str, features: dict[str, float]) -> bytes:
    """One log record (the format :func:`decode_records` reads)."""
    return json.dumps({TS_FIELD: ts_ms, MODEL_FIELD: model, "features": features}, separators=(",", ":")).encode()


def decode_records(values: Sequence[bytes]) -> pd.DataFrame:
    """Records → one row each: ``ts_ms``, ``model`` and one column per feature (unreadable records skipped)."""
    rows = []
    for value in values:
        try:
            record = json.loads(value)
            rows.append({TS_FIELD: int(record[TS_FIELD]), MODEL_FIELD: str(record[MODEL_FIELD]), **record["features"]})
        except (ValueError, KeyError, TypeError):
            log.warning("skipped an unreadable served-features record (%d bytes)", len(value))
    return pd.DataFrame(rows)


class ServedFeatureLog:
    """Samples requests' assembled query inputs into the ``features.served`` topic.

    Args:
        producer: A ``confluent_kafka.Producer`` (or anything with ``produce`` / ``poll`` / ``flush``).
        rate: Share of the requests kept, in ``[0, 1]``.
        feature_names: The columns of the dense inputs handed to :meth:`log`.
        topic: Where the records go.
        seed: Seed of the sample (tests).
    """

    def __init__(
        self,
        producer: Any,
        rate: float,
        feature_names: Sequence[str],
        *,
        topic: str = SERVED_FEATURES_TOPIC,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"feature_log_rate must be within [0, 1], got {rate}")
        self.producer = producer
        self.rate = rate
        self.feature_names = tuple(feature_names)
        self.topic = topic
        self.stats = FeatureLogStats()
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # the stats are updated from the request and delivery threads

    def _delivered(self, err: Any, _message: Any) -> None:
        with self._lock:
            if err is None:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1

    def log(self, model: str, dense: np.ndarray, ts_ms: int) -> int:
        """Offer a batch's assembled query inputs; a sample of its rows is produced.

        Args:
            model: The served model version.
            dense: ``(requests, len(feature_names))`` inputs, as the query tower read them.
            ts_ms: The request time.

        Returns:
            How many rows were enqueued.
        """
        from confluent_kafka import KafkaException

        rows = [i for i in range(len(dense)) if self._random.random() < self.rate]
        enqueued = dropped = 0
        for i in rows:
            features = {name: float(v) for name, v in zip(self.feature_names, dense[i].tolist(), strict=True)}
            try:
                self.producer.produce(self.topic, encode_record(ts_ms, model, features), on_delivery=self._delivered)
                enqueued += 1
            except (BufferError, KafkaException):
                dropped += 1
        self.producer.poll(0)  # serve delivery callbacks; never waits
        with self._lock:
            self.stats.seen += len(dense)
            self.stats.sampled += len(rows)
            self.stats.dropped += dropped
        return enqueued

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what is queued, waiting at most ``timeout_s``."""
        self.producer.flush(timeout_s)


def open_feature_log(bootstrap: str, rate: float, feature_names: Sequence[str]) -> ServedFeatureLog | None:
    """A log producing to ``bootstrap``; None when ``rate`` is 0 (logging off)."""
    if rate <= 0:
        return None
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    return ServedFeatureLog(producer, rate, feature_names)


def read_served_features(
    bootstrap: str,
    start_ms: int,
    end_ms: int,
    *,
    topic: str = SERVED_FEATURES_TOPIC,
    max_rows: int = 2_000_000,
    timeout_s: float = 30.0,
) -> pd.DataFrame:
    """The records logged with ``start_ms <= ts_ms < end_ms`` (a day, for ``drift_monitor``).

    Each partition is read from the first offset at or after ``start_ms`` (Kafka's time index) to
    its end as of now; reading stops at ``max_rows`` (bounded memory; the report says how many).

    Raises:
        TimeoutError: Kafka did not answer within ``timeout_s``.
    """
    import time

    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lambdarec-drift-{uuid.uuid4().hex[:8]}",  # reads by offset; commits nothing
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as err:
            raise TimeoutError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {err}") from err
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            return decode_records([])
        wanted = [TopicPartition(topic, p, start_ms) for p in sorted(described.partitions)]
        starts = consumer.offsets_for_times(wanted, timeout=timeout_s)
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout_s)[1] for tp in wanted}
        todo = [tp for tp in starts if tp.offset >= 0 and tp.offset < ends[tp.partition]]
        if not todo:
            return decode_records([])
        consumer.assign(todo)
        open_partitions = {tp.partition for tp in todo}
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while open_partitions and len(values) < max_rows and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                partition = int(message.partition() or 0)
                if message.error() is not None:
                    open_partitions.discard(partition)  # end of partition (or an error: stop reading it)
                    continue
                if int(message.offset() or 0) >= ends[partition] - 1:
                    open_partitions.discard(partition)
                _, ts = message.timestamp()
                if start_ms <= ts < end_ms:
                    values.append(message.value() or b"")
        frame = decode_records(values[:max_rows])
        if len(frame):
            frame = frame[(frame[TS_FIELD] >= start_ms) & (frame[TS_FIELD] < end_ms)].reset_index(drop=True)
        return frame
    finally:
        consumer.close()

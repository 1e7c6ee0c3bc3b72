"""The pusher's Kafka loop: consume the feature topics, write the newest row per key, commit.

Rows are full snapshots, so the write is an idempotent upsert: a snapshot re-emitted after a
job restart writes the same values again. Per key the loop keeps the newest row of a batch by
the feed's rank, remembers the rank it last wrote and skips older rows (which arrive after a
restart from a checkpoint, or across topic partitions). Offsets are committed after the writes
(at-least-once); a failed write keeps its rows for the next batch and commits nothing. Each
update's freshness is recorded per topic (:class:`~lambdarec.stream.metrics.FreshnessMetrics`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from lambdarec import names
from lambdarec.stream.feeds import FEEDS, Feed, newest_per_key
from lambdarec.stream.metrics import FreshnessMetrics
from lambdarec.stream.writer import FeedWriter

log = logging.getLogger("lambdarec.stream.pusher")  # the pusher's logger, as before the split by roles

PUSHER_GROUP = "lambdarec-stream-pusher"
MAX_TRACKED_SESSIONS = 500_000
"""Sessions whose last pushed event count the pusher remembers (least recently pushed evicted)."""


class FeaturePusher:
    """Consumes the feature topics and writes the newest row of each key per batch to the online store.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        store: A ``feast.FeatureStore``.
        metrics_path: Where to write the freshness summary (JSON; ``.prom`` beside it).
        topics: Topic of each feed kind to consume (default: the session topic only).
        group_id: Consumer group (offsets committed after each write).
        max_batch: Most records consumed per step.
        consumer: A consumer to use instead of a Kafka one (tests, benchmarks): ``consume``,
            ``commit`` and ``close`` like ``confluent_kafka.Consumer``.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        store: Any,
        metrics_path: Path,
        *,
        topics: Mapping[str, str] | None = None,
        group_id: str = PUSHER_GROUP,
        max_batch: int = 5_000,
        consumer: Any = None,
    ) -> None:
        self.store = store
        self.metrics_path = metrics_path
        self.max_batch = max_batch
        self.topics = dict(topics or {"session": names.SESSION_FEATURES_TOPIC})
        unknown = set(self.topics) - set(FEEDS)
        if unknown:
            raise ValueError(f"unknown feeds: {sorted(unknown)}")
        self._feed_of_topic = {topic: FEEDS[kind] for kind, topic in self.topics.items()}
        self.metrics = FreshnessMetrics()
        for topic in self.topics.values():
            self.metrics.topic(topic)
        self._written: dict[str, OrderedDict[str, tuple[int, ...]]] = {kind: OrderedDict() for kind in self.topics}
        self._pending: dict[str, list[dict[str, Any]]] = {kind: [] for kind in self.topics}
        self._writers: dict[str, FeedWriter] = {}
        if consumer is None:
            from confluent_kafka import Consumer

            consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap_servers,
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 10,
                    "log_level": 3,
                }
            )
            consumer.subscribe(list(self.topics.values()))
        self._consumer = consumer

    @property
    def tracker(self) -> Any:
        """The freshness figures of all topics together."""
        return self.metrics.total

    def step(self, timeout_s: float = 0.2) -> int:
        """Consume one batch, write it, commit; return the number of rows written.

        The batch is what has arrived: the records waiting now, or else the first record within
        ``timeout_s`` and those that came with it. A record is never held back to fill a batch
        (a ``consume(max_batch, timeout)`` waits out the whole timeout unless the batch fills up,
        which added up to ``timeout_s`` to every update's freshness); under load the batches grow
        by themselves, with what arrived while the previous one was being written.

        When a feed's online write fails (store not applied yet, locked, ...) its rows are kept
        and retried with the next batch, and offsets are not committed: nothing is lost.
        """
        messages = self._arrived(timeout_s)
        for message in messages:
            if message.error() is not None:
                log.warning("consume error: %s", message.error())
                continue
            topic = message.topic()
            feed = self._feed_of_topic[topic]
            value = message.value()
            if value is None:
                self.metrics.count(topic, "tombstones")
                continue
            try:
                row = orjson.loads(value)
            except orjson.JSONDecodeError:
                row = None
            if isinstance(row, dict) and feed.key not in row and message.key():
                row[feed.key] = message.key().decode("utf-8", "replace")
            if not isinstance(row, dict) or row.get(feed.key) is None or row.get(feed.event_time) is None:
                self.metrics.count(topic, "undecodable")
                continue
            self._pending[feed.kind].append(row)
        written = 0
        failed = False
        for kind, topic in self.topics.items():
            rows = self._pending[kind]
            if not rows:
                continue
            try:
                written += self._write_feed(FEEDS[kind], topic, rows)
            except Exception as err:  # noqa: BLE001 - keep the rows and retry; the log says why
                log.warning("online write of %d %s rows failed, retrying: %s", len(rows), kind, err)
                self._pending[kind] = rows[-self.max_batch * 20 :]
                failed = True
                continue
            self._pending[kind] = []
        if failed:
            time.sleep(1.0)
            return written
        if any(m.error() is None for m in messages):
            # Only real records move offsets (a batch of errors, e.g. a topic not created yet,
            # has nothing to commit and Kafka would refuse the commit).
            self._consumer.commit(asynchronous=False)
        return written

    def _arrived(self, timeout_s: float) -> list[Any]:
        """The records waiting now; if none, the first within ``timeout_s`` and those waiting behind it."""
        messages: list[Any] = self._consumer.consume(self.max_batch, timeout=0)
        if messages or self.max_batch < 2:
            return messages or self._consumer.consume(self.max_batch, timeout=timeout_s)
        # consume(1, ...) returns as soon as one record is there.
        first: list[Any] = self._consumer.consume(1, timeout=timeout_s)
        if not first:
            return []
        return first + self._consumer.consume(self.max_batch - 1, timeout=0)

    def _write_feed(self, feed: Feed, topic: str, rows: list[dict[str, Any]]) -> int:
        written_ranks = self._written[feed.kind]
        fresh = []
        for key, row in newest_per_key(feed, rows).items():
            rank = feed.rank(row)
            if key in written_ranks and written_ranks[key] >= rank:
                self.metrics.count(topic, "skipped_stale")
                continue
            fresh.append(row)
        writer = self._writers.get(feed.kind)
        if writer is None:
            writer = self._writers[feed.kind] = FeedWriter(self.store, feed)
        written = writer.write(fresh)
        visible_ms = int(time.time() * 1000)
        for row in fresh:
            key = str(row[feed.key])
            written_ranks[key] = feed.rank(row)
            written_ranks.move_to_end(key)
        while len(written_ranks) > MAX_TRACKED_SESSIONS:
            written_ranks.popitem(last=False)
        for row in rows:
            self.metrics.record(topic, feed.source_event_ms(row), visible_ms)
        late = sum(1 for row in rows if row.get("late"))
        if late:
            self.metrics.count(topic, "late", late)
        if written:
            self.metrics.count(topic, "pushes")
        return written

    def run(self, stop: threading.Event, metrics_every_s: float = 1.0) -> None:
        """Push until ``stop`` is set, writing the metrics file at least every ``metrics_every_s``."""
        last_write = 0.0
        while not stop.is_set():
            self.step()
            if time.monotonic() - last_write >= metrics_every_s:
                self.metrics.write(self.metrics_path)
                last_write = time.monotonic()
        self.metrics.write(self.metrics_path)

    def close(self) -> None:
        """Leave the consumer group."""
        self._consumer.close()


class SessionPusher(FeaturePusher):
    """The session feed alone (the pusher before the user and item feeds; ``topic`` is its topic)."""

    def __init__(
        self,
        bootstrap_servers: str,
        store: Any,
        metrics_path: Path,
        *,
        topic: str = names.SESSION_FEATURES_TOPIC,
        group_id: str = PUSHER_GROUP,
        max_batch: int = 5_000,
    ) -> None:
        super().__init__(
            bootstrap_servers, store, metrics_path, topics={"session": topic}, group_id=group_id, max_batch=max_batch
        )

"""The pusher: the speed layer's feature topics (written by the Flink job) → the Feast online store.

Three topics, one process: ``features.session`` (session snapshots), ``features.user`` (recent
items per user) and ``features.item`` (trending count per item and sliding window), each to
its push source and feature view (:data:`FEEDS`). The job writes them with ``upsert-kafka``:
the record key is the entity id, the value a JSON row, and a null value a tombstone (a deleted
key), which is counted and skipped.

Rows are full snapshots, so the write is an idempotent upsert: a snapshot re-emitted after a
job restart writes the same values again. The pusher keeps, per key, the newest row of a batch
by the feed's rank (sessions: most events, then latest event, then latest emission; users:
latest event; items: latest window), remembers the rank it last wrote and skips older rows
(which arrive after a restart from a checkpoint, or across topic partitions).

Rows become Feast's protos directly and go through the online store's ``online_write_batch``
(:class:`lambdarec.featurestore.push.PushWriter`): the same bytes ``store.push`` writes, without
building a DataFrame per batch. Offsets are committed after the writes (at-least-once), and each
update's freshness (visible time − source event time) is recorded per topic by
:class:`~lambdarec.stream.metrics.FreshnessMetrics`.

Run: ``python -m lambdarec.stream.pusher --bootstrap HOST:PORT --metrics metrics.json``
(``--topic`` / ``--user-topic`` / ``--item-topic`` override the topics; ``--feast-repo`` a
standalone repo). Feeds whose push source the store lacks are not consumed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lambdarec import names
from lambdarec.stream.metrics import FreshnessMetrics

log = logging.getLogger(__name__)

PUSHER_GROUP = "lambdarec-stream-pusher"
MAX_TRACKED_SESSIONS = 500_000
"""Sessions whose last pushed event count the pusher remembers (least recently pushed evicted)."""


def snapshot_rank(row: Mapping[str, Any]) -> tuple[int, int, int]:
    """Order of two snapshots of one session: more events, later event, later emission wins."""
    return (
        int(row.get(names.SESSION_EVENT_COUNT, 0)),
        int(row.get(names.SESSION_LAST_EVENT_MS, 0)),
        int(row.get("emitted_ms", 0)),
    )


def newest_per_session(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest snapshot of each session among ``rows``."""
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        session = str(row[names.SESSION_ID])
        current = newest.get(session)
        if current is None or snapshot_rank(row) > snapshot_rank(current):
            newest[session] = row
    return newest


def _int(row: Mapping[str, Any], field: str) -> int:
    value = row.get(field)
    return int(value) if value is not None else 0


@dataclass(frozen=True)
class Feed:
    """One feature topic of the speed layer and where its rows go in Feast.

    Attributes:
        kind: ``session``, ``user`` or ``item``.
        key: The entity's join key (also the Kafka record key).
        push_source: The push source the rows are pushed to.
        feature_view: The feature view the push source fills.
        features: The feature columns of a row.
        event_time: The row field that is the row's event time in Feast (epoch ms).
        rank: Which of two rows of one key is newer (larger wins).
    """

    kind: str
    key: str
    push_source: str
    feature_view: str
    features: tuple[str, ...]
    event_time: str
    rank: Callable[[Mapping[str, Any]], tuple[int, ...]]

    def source_event_ms(self, row: Mapping[str, Any]) -> int:
        """The event time of the newest event folded into the row (freshness is measured from it)."""
        return int(row.get("source_event_ms") or row[self.event_time])


FEEDS: dict[str, Feed] = {
    "session": Feed(
        "session",
        names.SESSION_ID,
        names.SESSION_PUSH_SOURCE,
        names.SESSION_FEATURE_VIEW,
        names.SESSION_FEATURES,
        names.SESSION_LAST_EVENT_MS,
        snapshot_rank,
    ),
    "user": Feed(
        "user",
        names.USER_ID,
        names.USER_PUSH_SOURCE,
        names.USER_STREAM_FEATURE_VIEW,
        (names.USER_RECENT_ITEMS,),
        "source_event_ms",
        lambda row: (_int(row, "source_event_ms"), _int(row, "emitted_ms")),
    ),
    "item": Feed(
        "item",
        names.ITEM_ID,
        names.ITEM_PUSH_SOURCE,
        names.ITEM_STREAM_FEATURE_VIEW,
        (names.ITEM_TRENDING_COUNT,),
        names.ITEM_TRENDING_WINDOW_END_MS,
        lambda row: (
            _int(row, names.ITEM_TRENDING_WINDOW_END_MS),
            _int(row, "source_event_ms"),
            _int(row, "emitted_ms"),
        ),
    ),
}
"""The speed layer's feeds, by kind."""

DEFAULT_TOPICS: dict[str, str] = {
    "session": names.SESSION_FEATURES_TOPIC,
    "user": names.USER_FEATURES_TOPIC,
    "item": names.ITEM_FEATURES_TOPIC,
}


def feed_frame(feed: Feed, rows: Sequence[Mapping[str, Any]], timestamp_field: str = "event_timestamp") -> Any:
    """A DataFrame of a feed's rows as Feast's push path expects it.

    Args:
        feed: The feed.
        rows: Rows with the feed's key and feature columns.
        timestamp_field: The feature view's event timestamp column (the feed's event time).

    Returns:
        A pandas DataFrame: the key, the features, the timestamp column.
    """
    import pandas as pd

    frame = pd.DataFrame(
        {
            feed.key: [str(r[feed.key]) for r in rows],
            **{feature: [r.get(feature) for r in rows] for feature in feed.features},
        }
    )
    frame[timestamp_field] = pd.to_datetime([int(r[feed.event_time]) for r in rows], unit="ms", utc=True)
    return frame


def session_frame(rows: Sequence[Mapping[str, Any]], timestamp_field: str = "event_timestamp") -> Any:
    """A DataFrame of session snapshots as Feast's push path expects it (:func:`feed_frame` of sessions)."""
    return feed_frame(FEEDS["session"], rows, timestamp_field)


def resolve_push_target(store: Any, feed: Feed | None = None) -> tuple[str | None, str]:
    """Where a feed's rows go in a store: (push source name or None, event timestamp column).

    The feed's push source when the repo defines it, else None (then the feed's feature view is
    written directly: the same online write a push makes). The session feed by default.

    Raises:
        Exception: Feast's own when the store has no such feature view (not applied yet).
    """
    feed = feed or FEEDS["session"]
    view = store.get_feature_view(feed.feature_view)
    source = view.stream_source or view.batch_source
    batch_source = getattr(source, "batch_source", None) or source
    timestamp_field = getattr(batch_source, "timestamp_field", None) or "event_timestamp"
    push_sources = {ds.name for ds in store.list_data_sources() if type(ds).__name__ == "PushSource"}
    return (feed.push_source if feed.push_source in push_sources else None), timestamp_field


def push_frame(
    store: Any, feed: Feed, rows: Sequence[Mapping[str, Any]], target: tuple[str | None, str] | None = None
) -> int:
    """Write a feed's rows through Feast's DataFrame push path (``store.push``, ``to=ONLINE``).

    Args:
        store: A ``feast.FeatureStore``.
        feed: The feed.
        rows: Rows; at most one per key.
        target: What :func:`resolve_push_target` returns (resolved here when None).

    Returns:
        How many rows were written.
    """
    if not rows:
        return 0
    from feast.data_source import PushMode

    push_source, timestamp_field = target or resolve_push_target(store, feed)
    frame = feed_frame(feed, rows, timestamp_field)
    if push_source is not None:
        store.push(push_source, frame, to=PushMode.ONLINE)
    else:
        store.write_to_online_store(feed.feature_view, df=frame)
    return len(frame)


def push_session_features(
    store: Any, rows: Sequence[Mapping[str, Any]], target: tuple[str | None, str] | None = None
) -> int:
    """Write session snapshots through Feast's DataFrame push path (:func:`push_frame` of sessions)."""
    return push_frame(store, FEEDS["session"], rows, target)


def newest_per_key(feed: Feed, rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest row of each key among ``rows``, by the feed's rank."""
    newest: dict[str, Mapping[str, Any]] = {}
    ranks: dict[str, tuple[int, ...]] = {}
    for row in rows:
        key = str(row[feed.key])
        rank = feed.rank(row)
        if key not in ranks or rank > ranks[key]:
            newest[key] = row
            ranks[key] = rank
    return newest


class FeedWriter:
    """Writes one feed's rows to the online store.

    Through :class:`~lambdarec.featurestore.push.PushWriter` (prebuilt protos, the online store's
    ``online_write_batch``) when the store has the feed's push source; else through Feast's
    DataFrame path (:func:`push_frame`: ``write_to_online_store`` of the view for a repo without
    the push source).

    Raises:
        Exception: Feast's own when the store has neither the push source nor the view.
    """

    def __init__(self, store: Any, feed: Feed) -> None:
        from feast.errors import PushSourceNotFoundException

        from lambdarec.featurestore.push import PushWriter

        self.feed = feed
        self.store = store
        self._writer: PushWriter | None = None
        self._target: tuple[str | None, str] | None = None
        try:
            self._writer = PushWriter(store, feed.push_source)
        except (NotImplementedError, PushSourceNotFoundException) as why:
            log.info("%s: writing through DataFrames (%s)", feed.feature_view, why)
            self._target = resolve_push_target(store, feed)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write rows (at most one per key); return how many were written."""
        if not rows:
            return 0
        if self._writer is None:
            return push_frame(self.store, self.feed, rows, self._target)
        from lambdarec.featurestore.push import naive_utc_from_ms

        feed = self.feed
        columns: dict[str, list[Any]] = {feed.key: [str(r[feed.key]) for r in rows]}
        for feature in feed.features:
            columns[feature] = [r.get(feature) for r in rows]
        stamps = [naive_utc_from_ms(int(r[feed.event_time])) for r in rows]
        return self._writer.write(columns, stamps)


def available_feeds(store: Any, kinds: Iterable[str]) -> list[str]:
    """The kinds whose push source the store has; the session feed always (its writes retry until applied)."""
    try:
        sources = {ds.name for ds in store.list_data_sources()}
    except Exception:  # noqa: BLE001 - registry not there yet: only the session feed, which retries
        sources = set()
    return [kind for kind in kinds if kind == "session" or FEEDS[kind].push_source in sources]


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

        When a feed's online write fails (store not applied yet, locked, ...) its rows are kept
        and retried with the next batch, and offsets are not committed: nothing is lost.
        """
        messages = self._consumer.consume(self.max_batch, timeout=timeout_s)
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


def open_store(repo: Path | None = None, *, env: str | None = None, state_dir: Path | None = None) -> Any:
    """The Feast store to push to.

    Args:
        repo: A standalone Feast repo folder (with its ``feature_store.yaml``); when None, the
            project's store of the environment (``lambdarec.featurestore``, ``features/``).
        env: The environment of the project's store.
        state_dir: The state folder of the project's store (its registry and SQLite online store).
    """
    if repo is not None:
        from feast import FeatureStore

        return FeatureStore(repo_path=str(repo))
    from lambdarec.featurestore.store import open_store as open_project_store
    from lambdarec.settings import load_settings

    overrides = {"state_dir": state_dir} if state_dir is not None else {}
    return open_project_store(load_settings(env, **overrides))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the pusher until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Push the speed layer's feature topics to the Feast online store.")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--feast-repo", type=Path, default=None, help="Standalone repo (default: the project's).")
    parser.add_argument("--env", default=None, help="Environment of the project's store.")
    parser.add_argument("--state-dir", type=Path, default=None, help="State folder of the project's store.")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--topic", default=DEFAULT_TOPICS["session"], help="The session features topic.")
    parser.add_argument("--user-topic", default=DEFAULT_TOPICS["user"])
    parser.add_argument("--item-topic", default=DEFAULT_TOPICS["item"])
    parser.add_argument(
        "--feeds", default="session,user,item", help="Feeds to consume (those the store has a push source for)."
    )
    parser.add_argument("--group-id", default=PUSHER_GROUP)
    parser.add_argument("--max-batch", type=int, default=5_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)  # a registry-refresh line per push otherwise
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = open_store(args.feast_repo, env=args.env, state_dir=args.state_dir)
    wanted = [kind.strip() for kind in args.feeds.split(",") if kind.strip()]
    given = {"session": args.topic, "user": args.user_topic, "item": args.item_topic}
    kinds = available_feeds(store, wanted)
    for kind in sorted(set(wanted) - set(kinds)):
        log.info("not consuming %s: the store has no push source %s", given[kind], FEEDS[kind].push_source)
    topics = {kind: given[kind] for kind in kinds}
    pusher = FeaturePusher(
        args.bootstrap, store, args.metrics, topics=topics, group_id=args.group_id, max_batch=args.max_batch
    )
    where = args.feast_repo or f"project store, {args.env}"
    log.info("pushing %s to the online store (%s)", ", ".join(topics.values()), where)
    try:
        pusher.run(stop)
    finally:
        pusher.close()


if __name__ == "__main__":
    main()

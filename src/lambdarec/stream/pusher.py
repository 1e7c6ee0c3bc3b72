"""The pusher: ``features.session`` (written by the Flink job) → the Feast online store.

Rows on the topic are full snapshots of a session's features, so the push is an idempotent
upsert: a snapshot re-emitted after a job restart writes the same values again. Since a
session's state only grows, the newest snapshot is the one with the most events; the pusher
keeps, per session, the largest ``session_event_count`` it has pushed and skips older ones
(which arrive after a restart from a checkpoint, or across topic partitions).

Offsets are committed after the write (at-least-once), and each update's freshness
(visible time − source event time) is recorded by :class:`~lambdarec.stream.metrics.FreshnessTracker`.

Run: ``python -m lambdarec.stream.pusher --bootstrap HOST:PORT --feast-repo features/``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from lambdarec import names
from lambdarec.stream.metrics import FreshnessTracker

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


def session_frame(rows: Sequence[Mapping[str, Any]], timestamp_field: str = "event_timestamp") -> Any:
    """A DataFrame of session feature rows as Feast's push path expects it.

    Args:
        rows: Snapshots with the :data:`lambdarec.names.SESSION_FEATURES` columns.
        timestamp_field: The feature view's event timestamp column; the session's last event time.

    Returns:
        A pandas DataFrame: ``session_id``, the features, the timestamp column.
    """
    import pandas as pd

    frame = pd.DataFrame(
        {
            names.SESSION_ID: [str(r[names.SESSION_ID]) for r in rows],
            **{feature: [r[feature] for r in rows] for feature in names.SESSION_FEATURES},
        }
    )
    frame[timestamp_field] = pd.to_datetime([int(r[names.SESSION_LAST_EVENT_MS]) for r in rows], unit="ms", utc=True)
    return frame


def resolve_push_target(store: Any) -> tuple[str | None, str]:
    """Where session rows go in a store: (push source name or None, event timestamp column).

    The push source :data:`lambdarec.names.SESSION_PUSH_SOURCE` when the repo defines it, else
    None (then the feature view :data:`lambdarec.names.SESSION_FEATURE_VIEW` is written directly:
    the same online write a push makes).

    Raises:
        Exception: Feast's own when the store has no session feature view (not applied yet).
    """
    view = store.get_feature_view(names.SESSION_FEATURE_VIEW)
    source = view.stream_source or view.batch_source
    batch_source = getattr(source, "batch_source", None) or source
    timestamp_field = getattr(batch_source, "timestamp_field", None) or "event_timestamp"
    push_sources = {ds.name for ds in store.list_data_sources() if type(ds).__name__ == "PushSource"}
    return (names.SESSION_PUSH_SOURCE if names.SESSION_PUSH_SOURCE in push_sources else None), timestamp_field


def push_session_features(
    store: Any, rows: Sequence[Mapping[str, Any]], target: tuple[str | None, str] | None = None
) -> int:
    """Write session snapshots to the online store through Feast's push path.

    Args:
        store: A ``feast.FeatureStore``.
        rows: Snapshots; at most one per session.
        target: What :func:`resolve_push_target` returns (resolved here when None).

    Returns:
        How many rows were written.
    """
    if not rows:
        return 0
    from feast.data_source import PushMode

    push_source, timestamp_field = target or resolve_push_target(store)
    frame = session_frame(rows, timestamp_field)
    if push_source is not None:
        store.push(push_source, frame, to=PushMode.ONLINE)
    else:
        store.write_to_online_store(names.SESSION_FEATURE_VIEW, df=frame)
    return len(frame)


class SessionPusher:
    """Consumes session snapshots and pushes the newest of each batch to the online store.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        store: A ``feast.FeatureStore`` (or anything :func:`push_session_features` accepts).
        metrics_path: Where to write the freshness summary (JSON; ``.prom`` beside it).
        topic: The session features topic.
        group_id: Consumer group (offsets committed after each write).
        max_batch: Most rows consumed per write.
    """

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
        from confluent_kafka import Consumer

        self.store = store
        self.metrics_path = metrics_path
        self.max_batch = max_batch
        self.tracker = FreshnessTracker()
        self._pushed: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        self._pending: list[dict[str, Any]] = []
        self._target: tuple[str | None, str] | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        self._consumer.subscribe([topic])

    def step(self, timeout_s: float = 0.2) -> int:
        """Consume one batch, push it, commit; return the number of rows written.

        When the online write fails (store not applied yet, locked, ...) the rows are kept and
        retried with the next batch, and offsets are not committed: nothing is lost.
        """
        messages = self._consumer.consume(self.max_batch, timeout=timeout_s)
        rows = self._pending
        for message in messages:
            if message.error() is not None:
                log.warning("consume error: %s", message.error())
                continue
            try:
                row = orjson.loads(message.value() or b"")
            except orjson.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or names.SESSION_ID not in row:
                self.tracker.undecodable += 1
                continue
            rows.append(row)
        if not rows:
            return 0
        fresh = []
        for session, row in newest_per_session(rows).items():
            rank = snapshot_rank(row)
            if session in self._pushed and self._pushed[session] >= rank:
                self.tracker.skipped_stale += 1
                continue
            fresh.append(row)
        try:
            if self._target is None:
                self._target = resolve_push_target(self.store)
            written = push_session_features(self.store, fresh, self._target)
        except Exception as err:  # noqa: BLE001 - keep the rows and retry; the log says why
            log.warning("online write of %d rows failed, retrying: %s", len(fresh), err)
            self._pending = rows[-self.max_batch * 20 :]
            time.sleep(1.0)
            return 0
        self._pending = []
        visible_ms = int(time.time() * 1000)
        for row in fresh:
            self._remember(str(row[names.SESSION_ID]), snapshot_rank(row))
        for row in rows:
            source_ms = row.get("source_event_ms") or row[names.SESSION_LAST_EVENT_MS]
            self.tracker.record(int(source_ms), visible_ms)
            self.tracker.late += bool(row.get("late"))
        self.tracker.pushes += 1 if written else 0
        self._consumer.commit(asynchronous=False)
        return written

    def _remember(self, session: str, rank: tuple[int, int, int]) -> None:
        self._pushed[session] = rank
        self._pushed.move_to_end(session)
        while len(self._pushed) > MAX_TRACKED_SESSIONS:
            self._pushed.popitem(last=False)

    def run(self, stop: threading.Event, metrics_every_s: float = 1.0) -> None:
        """Push until ``stop`` is set, writing the metrics file at least every ``metrics_every_s``."""
        last_write = 0.0
        while not stop.is_set():
            self.step()
            if time.monotonic() - last_write >= metrics_every_s:
                self.tracker.write(self.metrics_path)
                last_write = time.monotonic()
        self.tracker.write(self.metrics_path)

    def close(self) -> None:
        """Leave the consumer group."""
        self._consumer.close()


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
    parser = argparse.ArgumentParser(description="Push features.session rows to the Feast online store.")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--feast-repo", type=Path, default=None, help="Standalone repo (default: the project's).")
    parser.add_argument("--env", default=None, help="Environment of the project's store.")
    parser.add_argument("--state-dir", type=Path, default=None, help="State folder of the project's store.")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--topic", default=names.SESSION_FEATURES_TOPIC)
    parser.add_argument("--group-id", default=PUSHER_GROUP)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)  # a registry-refresh line per push otherwise
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = open_store(args.feast_repo, env=args.env, state_dir=args.state_dir)
    pusher = SessionPusher(args.bootstrap, store, args.metrics, topic=args.topic, group_id=args.group_id)
    log.info("pushing %s to the online store (%s)", args.topic, args.feast_repo or f"project store, {args.env}")
    try:
        pusher.run(stop)
    finally:
        pusher.close()


if __name__ == "__main__":
    main()

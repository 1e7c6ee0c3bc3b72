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

The roles live in their own modules, re-exported here: :mod:`~lambdarec.stream.feeds` (the feeds
and the newest-row rules), :mod:`~lambdarec.stream.writer` (online writes),
:mod:`~lambdarec.stream.loop` (the Kafka loop), :mod:`~lambdarec.stream.metrics` (freshness),
:mod:`~lambdarec.stream.store` (opening the store); this module is the command line.

Run: ``python -m lambdarec.stream.pusher --bootstrap HOST:PORT --metrics metrics.json``
(``--topic`` / ``--user-topic`` / ``--item-topic`` override the topics; ``--feast-repo`` a
standalone repo). Feeds whose push source the store lacks are not consumed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from lambdarec.stream.feeds import (
    DEFAULT_TOPICS,
    FEEDS,
    Feed,
    feed_frame,
    newest_per_key,
    newest_per_session,
    session_frame,
    snapshot_rank,
)
from lambdarec.stream.loop import MAX_TRACKED_SESSIONS, PUSHER_GROUP, FeaturePusher, SessionPusher
from lambdarec.stream.store import open_store
from lambdarec.stream.writer import FeedWriter, available_feeds, push_frame, push_session_features, resolve_push_target

__all__ = [
    "DEFAULT_TOPICS",
    "FEEDS",
    "MAX_TRACKED_SESSIONS",
    "PUSHER_GROUP",
    "FeaturePusher",
    "Feed",
    "FeedWriter",
    "SessionPusher",
    "available_feeds",
    "feed_frame",
    "main",
    "newest_per_key",
    "newest_per_session",
    "open_store",
    "push_frame",
    "push_session_features",
    "resolve_push_target",
    "session_frame",
    "snapshot_rank",
]

log = logging.getLogger(__name__)


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

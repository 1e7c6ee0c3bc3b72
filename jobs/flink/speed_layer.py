"""The speed layer: ``clicks`` → session / user / item features within a second.

A PyFlink DataStream job with event-time semantics:

* reads ``clicks`` from Kafka (any bytes: what does not decode as an event goes to
  ``clicks.dlq`` with the reason, in the format of :func:`lambdarec.events.dlq.dead_letter`);
* assigns event time from ``event_time`` with bounded out-of-orderness watermarks; events
  behind the watermark are still folded (the fold is order-insensitive) and counted as late;
* per session: keyed state holding :class:`lambdarec.features.session.SessionState`,
  updated with :func:`~lambdarec.features.session.update_session` — the very fold the batch
  layer runs — and a full feature snapshot emitted to ``features.session`` on every change;
* per user: the latest items across sessions, to ``features.user``;
* per item: trending counts over a sliding event-time window (10 min sliding by 1 min), to
  ``features.item``;
* checkpoints (exactly-once state, hashmap backend, retained on cancellation) so that a
  killed job restarts from its latest checkpoint with ``--restore latest``.

Every output row carries ``source_event_ms`` (the event that caused it) and ``emitted_ms``
(processing time) so the pusher can measure freshness. Sinks are at-least-once: rows are
full snapshots of a key, so a re-emission after a restart writes the same values again
(idempotent upserts), and the newest snapshot of a session is the one with the largest
``session_event_count``.

Run locally (mini-cluster)::

    jobs/flink/.venv/bin/python jobs/flink/speed_layer.py --bootstrap 127.0.0.1:9092 \\
        --state-dir .lambdarec/services/stream-job/data --restore latest

On a cluster: see ``jobs/flink/README.md`` (``flink run -py speed_layer.py -pyfs ... -j ...``).
Imports only the ``lambdarec`` core package (names, the session fold, the DLQ format).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from lambdarec import names
from lambdarec.events.dlq import dead_letter
from lambdarec.features.session import new_session_state, session_features, update_session
from lambdarec.schemas import EventRejection

log = logging.getLogger("lambdarec.speed_layer")

JOB_NAME = "lambdarec-speed-layer"
CONNECTOR_JAR = "flink-sql-connector-kafka-5.0.0-2.2.jar"
USER_RECENT_LIMIT = 20
MINUTE_MS = 60_000
_REQUIRED_TEXT = ("event_id", "session_id", "item_id", "event_type")
_EVENT_TYPES = frozenset(t.value for t in names.EventType)


# -- pure helpers (unit-tested without Flink) ---------------------------------------------------------
def decode_event(raw: str | bytes) -> dict[str, Any] | EventRejection:
    """Decode one ``clicks`` record, or explain why it is not an event.

    The producer validated events at the edge; this is the job's guard against any bytes on the
    topic, so it checks only what the fold needs (cheap: it runs on every record).

    Args:
        raw: The record value.

    Returns:
        The event as a dict, or the rejection (field + reason) for the dead-letter topic.
    """
    if isinstance(raw, str) and "\ufffd" in raw:
        return EventRejection("record value is not valid UTF-8")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return EventRejection(f"not JSON: {err}")
    if not isinstance(event, dict):
        return EventRejection(f"expected a JSON object, got {type(event).__name__}")
    for key in _REQUIRED_TEXT:
        value = event.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            event[key] = value = str(value)
        if not isinstance(value, str) or not value:
            return EventRejection("missing or not a non-empty string", key)
    if event["event_type"] not in _EVENT_TYPES:
        return EventRejection(f"unknown event type {event['event_type']!r}", "event_type")
    event_time = event.get("event_time")
    if not isinstance(event_time, int) or isinstance(event_time, bool) or event_time <= 0:
        return EventRejection("missing or not epoch milliseconds", "event_time")
    user = event.get("user_id")
    if user is not None and not isinstance(user, str):
        event["user_id"] = str(user)
    return event


def dump_row(row: dict[str, Any]) -> str:
    """Serialize an output row (JSON text for the Kafka sink)."""
    return orjson.dumps(row).decode()


def push_recent(recent: list[list[Any]], event: dict[str, Any], limit: int = USER_RECENT_LIMIT) -> bool:
    """Insert ``[event_time, event_id, item_id]`` in event-time order, keeping the latest ``limit``.

    Returns:
        False when the event is already there (a duplicate), else True.
    """
    entry = [int(event["event_time"]), str(event["event_id"]), str(event["item_id"])]
    if entry in recent:
        return False
    recent.append(entry)
    recent.sort()
    del recent[:-limit]
    return True


def trending_count(buckets: dict[int, int], window_end_ms: int, window_ms: int) -> int:
    """Events in the minute buckets of the window ``(window_end - window, window_end]``."""
    start = window_end_ms - window_ms
    return sum(count for minute, count in buckets.items() if start <= minute < window_end_ms)


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (``<job-id>/chk-N`` holding ``_metadata``) under a folder."""
    candidates = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata") if meta.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))


# -- the Flink operators ------------------------------------------------------------------------------
def build_job(args: argparse.Namespace) -> Any:
    """Build the execution environment with the whole pipeline on it (nothing runs yet).

    Imported lazily: the helpers above must stay importable without a JVM.
    """
    from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.datastream import (
        CheckpointingMode,
        ExternalizedCheckpointRetention,
        KeyedProcessFunction,
        OutputTag,
        ProcessFunction,
        RuntimeContext,
        StreamExecutionEnvironment,
    )
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetsInitializer,
        KafkaRecordSerializationSchema,
        KafkaSink,
        KafkaSource,
    )
    from pyflink.datastream.state import ValueStateDescriptor

    dlq_tag = OutputTag("dlq", Types.STRING())
    source_topic = args.source_topic

    class DecodeEvents(ProcessFunction):  # type: ignore[misc]
        """Records → event dicts; anything else → the DLQ side output (the job keeps running)."""

        def open(self, runtime_context: RuntimeContext) -> None:
            group = runtime_context.get_metrics_group()
            self.dead_lettered = group.counter("dead_lettered")

        def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
            decoded = decode_event(value)
            if isinstance(decoded, EventRejection):
                self.dead_lettered.inc()
                letter = dead_letter(value, decoded, source="flink", origin={"topic": source_topic})
                yield dlq_tag, letter.decode()
                return
            yield decoded

    class EventTime(TimestampAssigner):  # type: ignore[misc]
        def extract_timestamp(self, value: dict[str, Any], record_timestamp: int) -> int:
            return int(value["event_time"])

    idle_ms = args.session_idle_min * MINUTE_MS

    def _cleanup_at(last_ms: int) -> int:
        # One timer per key and 10 minutes of event time: re-registering the same instant is free.
        return (last_ms + idle_ms) // (10 * MINUTE_MS) * (10 * MINUTE_MS) + 10 * MINUTE_MS

    def _is_late(ctx: Any) -> bool:
        watermark = ctx.timer_service().current_watermark()
        return ctx.timestamp() is not None and ctx.timestamp() < watermark

    class SessionFeatures(KeyedProcessFunction):  # type: ignore[misc]
        """Keyed by session_id: the shared session fold, one snapshot per change."""

        def open(self, runtime_context: RuntimeContext) -> None:
            # No state TTL: Python state with TTL is not cached in the worker (a JVM round trip per
            # access, 3x slower); idle state is dropped by an event-time timer instead.
            self.state = runtime_context.get_state(ValueStateDescriptor("session", Types.PICKLED_BYTE_ARRAY()))
            group = runtime_context.get_metrics_group()
            self.late_events = group.counter("late_events")
            self.duplicates = group.counter("duplicate_events")

        def process_element(self, value: dict[str, Any], ctx: KeyedProcessFunction.Context) -> Iterator[str]:
            state = self.state.value()
            if state is None:
                state = new_session_state(value)
            late = _is_late(ctx)
            if late:
                self.late_events.inc()  # folded anyway: the fold does not care about order
            if not update_session(state, value):
                self.duplicates.inc()
                return
            self.state.update(state)
            if idle_ms:
                ctx.timer_service().register_event_time_timer(_cleanup_at(state.last_ms))
            row = session_features(state)
            row["source_event_ms"] = int(value["event_time"])
            row["emitted_ms"] = int(time.time() * 1000)
            row["late"] = late
            yield dump_row(row)

        def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
            state = self.state.value()
            if state is not None and _cleanup_at(state.last_ms) <= timestamp:
                self.state.clear()  # idle for longer than --session-idle-min of event time
            return iter(())

    class UserRecentItems(KeyedProcessFunction):  # type: ignore[misc]
        """Keyed by user_id: the latest items across the user's sessions."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("recent", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, value: dict[str, Any], ctx: KeyedProcessFunction.Context) -> Iterator[str]:
            recent = self.state.value() or []
            if not push_recent(recent, value):
                return
            self.state.update(recent)
            yield dump_row(
                {
                    names.USER_ID: value["user_id"],
                    names.USER_RECENT_ITEMS: [item for _t, _id, item in recent],
                    "source_event_ms": int(value["event_time"]),
                    "emitted_ms": int(time.time() * 1000),
                }
            )

    window_ms = args.trending_window_min * MINUTE_MS

    class ItemTrending(KeyedProcessFunction):  # type: ignore[misc]
        """Keyed by item_id: counts per event-time minute, emitted as a sliding-window sum.

        The window ``[end - 10 min, end)`` slides by one minute; its count only changes when a
        minute bucket enters (``bucket + 1 min``) or leaves (``bucket + 10 min + 1 min``), so
        an event-time timer fires at those instants only and a row is emitted when the count
        changed (down to 0, then the state is dropped). Late events still land in their bucket.
        """

        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(ValueStateDescriptor("trend", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, value: dict[str, Any], ctx: KeyedProcessFunction.Context) -> Iterator[str]:
            time_ms = int(value["event_time"])
            minute = time_ms // MINUTE_MS * MINUTE_MS
            trend = self.state.value() or {"buckets": {}, "emitted": 0, "last_event": 0}
            trend["buckets"][minute] = trend["buckets"].get(minute, 0) + 1
            trend["last_event"] = max(trend["last_event"], time_ms)
            self.state.update(trend)
            ctx.timer_service().register_event_time_timer(minute + MINUTE_MS - 1)
            ctx.timer_service().register_event_time_timer(minute + window_ms + MINUTE_MS - 1)
            return iter(())

        def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
            trend = self.state.value()
            if trend is None:
                return
            end = timestamp + 1
            count = trending_count(trend["buckets"], end, window_ms)
            trend["buckets"] = {m: c for m, c in trend["buckets"].items() if m >= end - window_ms}
            if count != trend["emitted"]:
                yield dump_row(
                    {
                        names.ITEM_ID: ctx.get_current_key(),
                        names.ITEM_TRENDING_COUNT: count,
                        "window_end_ms": end,
                        "source_event_ms": int(trend["last_event"]),
                        "emitted_ms": int(time.time() * 1000),
                    }
                )
            trend["emitted"] = count
            if trend["buckets"]:
                self.state.update(trend)
            else:
                self.state.clear()

    config = Configuration()
    config.set_string("execution.checkpointing.storage", "filesystem")
    config.set_string("execution.checkpointing.dir", Path(args.state_dir, "checkpoints").resolve().as_uri())
    config.set_string("execution.checkpointing.num-retained", "3")
    config.set_string("state.backend.type", "hashmap")
    config.set_string("rest.port", str(args.rest_port))
    config.set_string("rest.address", "127.0.0.1")
    config.set_string("python.fn-execution.bundle.time", str(args.bundle_ms))
    config.set_string("python.fn-execution.bundle.size", str(args.bundle_size))
    config.set_string("python.state.cache-size", str(args.state_cache))
    config.set_string("python.execution-mode", args.execution_mode)
    config.set_string("pipeline.name", JOB_NAME)
    if args.python_executable:
        # The Python workers must run the interpreter that has pyflink and lambdarec.
        config.set_string("python.executable", args.python_executable)
    if args.restore:
        config.set_string("execution.state-recovery.path", str(args.restore))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(args.parallelism)
    pylib = Path(__file__).resolve().parent / "pylib"
    if pylib.is_dir():
        # Running from the packaged artifact: ship its Python dependencies to the workers.
        env.add_python_file(str(pylib))
    jar = _connector_jar(args.jar)
    if jar is not None:
        env.add_jars(jar.resolve().as_uri())
    env.enable_checkpointing(args.checkpoint_ms, CheckpointingMode.EXACTLY_ONCE)
    checkpoints = env.get_checkpoint_config()
    checkpoints.set_externalized_checkpoint_retention(ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION)
    checkpoints.set_min_pause_between_checkpoints(min(500, args.checkpoint_ms))

    source = (
        KafkaSource.builder()
        .set_bootstrap_servers(args.bootstrap)
        .set_topics(source_topic)
        .set_group_id(args.group_id)
        # No checkpoint: rebuild the state from the whole topic; a restore overrides this.
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("partition.discovery.interval.ms", "10000")
        .build()
    )

    def sink(topic: str) -> Any:
        return (
            KafkaSink.builder()
            .set_bootstrap_servers(args.bootstrap)
            .set_record_serializer(
                KafkaRecordSerializationSchema.builder()
                .set_topic(topic)
                .set_value_serialization_schema(SimpleStringSchema())
                .build()
            )
            .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
            .set_property("linger.ms", "5")
            .build()
        )

    raw = env.from_source(source, WatermarkStrategy.no_watermarks(), "clicks")
    decoded = raw.process(DecodeEvents(), output_type=Types.PICKLED_BYTE_ARRAY()).name("decode")
    decoded.get_side_output(dlq_tag).sink_to(sink(args.dlq_topic)).name("dlq")
    events = decoded.assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_millis(args.out_of_orderness_ms)
        ).with_timestamp_assigner(EventTime())
    )
    sessions = events.key_by(lambda e: e["session_id"], key_type=Types.STRING()).process(
        SessionFeatures(), output_type=Types.STRING()
    )
    sessions.name("session-features").sink_to(sink(args.session_topic)).name("features.session")
    if not args.sessions_only:
        users = (
            events.filter(lambda e: bool(e.get("user_id")))
            .key_by(lambda e: e["user_id"], key_type=Types.STRING())
            .process(UserRecentItems(), output_type=Types.STRING())
        )
        users.name("user-recent-items").sink_to(sink(args.user_topic)).name("features.user")
        items = events.key_by(lambda e: e["item_id"], key_type=Types.STRING()).process(
            ItemTrending(), output_type=Types.STRING()
        )
        items.name("item-trending").sink_to(sink(args.item_topic)).name("features.item")
    return env


def _connector_jar(explicit: str | None) -> Path | None:
    """The Kafka connector jar: ``--jar``, beside this file (packaged), or the checkout's cache.

    Returns None when the jar is already on the cluster's classpath (``flink run -j``).
    """
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve().parent
    for candidate in (here / CONNECTOR_JAR, here.parents[1] / ".cache" / "jars" / "flink" / CONNECTOR_JAR):
        if candidate.is_file():
            return candidate
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--source-topic", default=names.CLICKS_TOPIC)
    parser.add_argument("--dlq-topic", default=names.CLICKS_DLQ_TOPIC)
    parser.add_argument("--session-topic", default=names.SESSION_FEATURES_TOPIC)
    parser.add_argument("--user-topic", default=names.USER_FEATURES_TOPIC)
    parser.add_argument("--item-topic", default=names.ITEM_FEATURES_TOPIC)
    parser.add_argument("--group-id", default=JOB_NAME)
    parser.add_argument("--state-dir", default=".lambdarec/services/stream-job/data")
    parser.add_argument(
        "--restore",
        default=None,
        help="'latest' (newest retained checkpoint under --state-dir, if any) or a checkpoint path.",
    )
    parser.add_argument("--checkpoint-ms", type=int, default=2000)
    parser.add_argument("--out-of-orderness-ms", type=int, default=5000)
    parser.add_argument("--trending-window-min", type=int, default=10)
    parser.add_argument(
        "--session-idle-min",
        type=int,
        default=24 * 60,
        help="Drop a session's state after this much event time without events (0 = keep forever).",
    )
    parser.add_argument("--bundle-ms", type=int, default=50, help="Python bundle time: latency vs throughput.")
    parser.add_argument("--bundle-size", type=int, default=10_000, help="Python bundle size (records).")
    parser.add_argument("--state-cache", type=int, default=100_000, help="Keys whose state the workers cache.")
    parser.add_argument(
        "--execution-mode",
        choices=("process", "thread"),
        default="process",
        help="Python workers as processes (Beam) or threads in the JVM (pemja).",
    )
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--rest-port", type=int, default=8081)
    parser.add_argument("--jar", default=None, help="Kafka connector jar (default: packaged or .cache/jars).")
    parser.add_argument(
        "--python-executable",
        default=sys.executable,
        help="Interpreter of the Python workers (default: this one); '' keeps the cluster's setting.",
    )
    parser.add_argument("--sessions-only", action="store_true", help="Only the session features (tests, bench).")
    args = parser.parse_args(argv)
    if args.restore == "latest":
        found = latest_checkpoint(Path(args.state_dir, "checkpoints"))
        args.restore = str(found) if found else None
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Build and run the job until it is cancelled or killed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    import lambdarec

    log.info("lambdarec core from %s", Path(lambdarec.__file__).parent)
    log.info("restoring from %s", args.restore or "nothing (reading the topic from the earliest offset)")
    env = build_job(args)
    sys.stdout.flush()
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main()

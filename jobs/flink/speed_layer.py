"""The speed layer: ``clicks`` → session / user / item features within a second.

A PyFlink job whose operators are Flink SQL, so every event is handled in the JVM (the Python
worker only builds dead letters, which are rare). With event-time semantics:

* reads ``clicks`` from Kafka as raw bytes, parsed once by ``PARSE_CLICK`` (Java, ``udf/``): a
  record that is not an event by the event contract (:mod:`lambdarec.events.contract`: the same
  rules as the publisher and silver) goes to ``clicks.dlq`` with the reason from :func:`decode_event`, in the format of
  :func:`lambdarec.events.dlq.dead_letter`, and the job keeps running;
* event time from ``event_time`` with bounded out-of-orderness watermarks; events behind the
  watermark are still folded into the session and user features (those folds do not depend on
  the order) and are counted as late;
* duplicates by ``event_id`` count once (``COUNT(DISTINCT event_id)``); per session: the latest 20 items
  in event-time order and the latest 20 purchased items, counts per event type, distinct categories,
  first and last event time and dwell — the same features, names and rules as
  :mod:`lambdarec.features.session`, which the batch layer folds; the latest items come from the
  ``RECENT_ITEMS`` aggregate (``udf/``, Java), which orders by (event time, event id) like the Python fold;
* per user: the latest items across sessions (``RECENT_ITEMS`` again), to ``features.user``;
* per item: trending counts over a sliding event-time window (10 min sliding by 1 min) for the
  items seen at least ``--trending-min-count`` times in it, to ``features.item`` (a window is
  emitted when the watermark passes its end);
* checkpoints (exactly-once state, retained on cancellation) so that a killed job restarts from
  its latest checkpoint with ``--restore latest``.

Sinks are ``upsert-kafka`` keyed by the entity: each row is the full, current snapshot of a key,
so a re-emission after a restart writes the same values again (idempotent upserts). Every row
carries ``source_event_ms`` (the event time of the latest event to arrive for the key) and ``emitted_ms``
(processing time) so the pusher can measure freshness.

Run locally (mini-cluster)::

    jobs/flink/.venv/bin/python jobs/flink/speed_layer.py --bootstrap 127.0.0.1:9092 \\
        --state-dir .lambdarec/services/stream-job/data --restore latest

On a cluster: see ``jobs/flink/README.md`` (``flink run -py speed_layer.py -pyfs ... -j ...``).
Imports only the ``lambdarec`` core package (names, the session rules, the DLQ format).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lambdarec import names
from lambdarec.events.contract import (
    DEFAULT_BOUNDS,
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_FUTURE_MS,
    EARLIEST_EVENT_MS,
    Bounds,
    Violation,
    decode_record,
)
from lambdarec.events.dlq import dead_letter
from lambdarec.features.session import MAX_TRACKED_CATEGORIES, PURCHASED_ITEMS, RECENT_ITEMS
from lambdarec.schemas import EventRejection

log = logging.getLogger("lambdarec.speed_layer")

JOB_NAME = "lambdarec-speed-layer"
CONNECTOR_JAR = "flink-sql-connector-kafka-5.0.0-2.2.jar"
UDF_JAR = "lambdarec-flink-udfs.jar"
RECENT_ITEMS_CLASS = "lambdarec.flink.RecentItems"
PARSE_CLICK_CLASS = "lambdarec.flink.ParseClick"
EVENT_TIME_OF_CLASS = "lambdarec.flink.EventTimeOf"
USER_RECENT_LIMIT = 20
MINUTE_MS = 60_000


# -- pure helpers (unit-tested without Flink) ---------------------------------------------------------
def decode_event(
    raw: str | bytes | None, bounds: Bounds = DEFAULT_BOUNDS, broker_ms: int | None = None
) -> dict[str, Any] | EventRejection:
    """Decode one ``clicks`` record, or explain why it is not an event.

    The event contract's reference decoder (:func:`lambdarec.events.contract.decode_record`), which
    ``PARSE_CLICK`` (``udf/lambdarec/flink/ParseClick.java``) follows in one Jackson pass, and the
    source of the reason written to the dead-letter topic.

    Args:
        raw: The record value.
        bounds: The contract's bounds in force (the job's ``--earliest-event-ms`` and friends).
        broker_ms: The record's Kafka timestamp, the clock of the ``in_future`` rule.

    Returns:
        The event's canonical fields, or the rejection (field, reason, code) for the dead-letter topic.
    """
    result = decode_record(raw, bounds, clock_ms=broker_ms)
    if isinstance(result, Violation):
        return EventRejection.of(result, bounds)
    return result


def letter_for(
    raw: bytes | None,
    partition: int | None,
    offset: int | None,
    topic: str,
    bounds: Bounds = DEFAULT_BOUNDS,
    broker_ms: int | None = None,
) -> bytes:
    """The dead letter of a record ``PARSE_CLICK`` rejected (reason from :func:`decode_event`).

    Args:
        raw: The record value, untouched.
        partition: Its partition.
        offset: Its offset.
        topic: The topic it was read from.
        bounds: The contract's bounds the job runs with.
        broker_ms: The record's Kafka timestamp.

    Returns:
        The JSON value for the dead-letter topic.
    """
    decoded = decode_event(raw, bounds, broker_ms)
    if not isinstance(decoded, EventRejection):
        # PARSE_CLICK disagrees with the reference (a bug in one of them): the record is kept,
        # with that explanation, rather than lost.
        decoded = EventRejection("rejected by PARSE_CLICK but not by decode_event (jobs/flink/udf)")
    origin = {"topic": topic, "partition": partition, "offset": offset}
    return dead_letter(raw or b"", decoded, source="flink", origin=origin)


def _with_emitted_ms(query: str) -> str:
    """``query`` with an ``emitted_ms`` column: the processing time of each row, epoch ms.

    The timestamp is taken once per row (in the inner query) so seconds and milliseconds agree.
    """
    millis = "EXTRACT(EPOCH FROM now_ts) * 1000 + MOD(EXTRACT(MILLISECOND FROM now_ts), 1000)"
    stamped = f"SELECT *, CURRENT_ROW_TIMESTAMP() AS now_ts FROM ({query})"
    return f"SELECT *, CAST({millis} AS BIGINT) AS emitted_ms FROM ({stamped})"


def job_statements(args: argparse.Namespace) -> list[str]:
    """Every SQL statement of the job, in order: tables, views, then the INSERTs.

    Pure (no Flink needed), so the SQL is unit-tested for the names it must use.

    Args:
        args: The parsed command line (:func:`parse_args`).

    Returns:
        DDL statements followed by the ``INSERT INTO`` statements run as one statement set.
    """
    kafka = f"'properties.bootstrap.servers' = '{args.bootstrap}'"
    out_of_order_s = args.out_of_orderness_ms / 1000

    def upsert_sink(table: str, topic: str, key: str, columns: str) -> str:
        return (
            f"CREATE TEMPORARY TABLE {table} ({columns}, PRIMARY KEY ({key}) NOT ENFORCED) WITH ("
            f"'connector' = 'upsert-kafka', 'topic' = '{topic}', {kafka}, "
            "'key.format' = 'raw', 'value.format' = 'json', 'value.fields-include' = 'ALL', "
            # The buffer keeps the newest row per key: a busy session is written once per flush.
            f"'sink.buffer-flush.max-rows' = '{args.flush_rows}', "
            f"'sink.buffer-flush.interval' = '{args.flush_ms} ms', "
            "'properties.linger.ms' = '5')"
        )

    tables = [
        f"""CREATE TEMPORARY TABLE clicks_source (
            payload BYTES,
            kafka_partition INT METADATA FROM 'partition' VIRTUAL,
            kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
            kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
            ts AS TO_TIMESTAMP_LTZ(COALESCE(EVENT_TIME_OF(payload), 0), 3),
            WATERMARK FOR ts AS ts - INTERVAL '{out_of_order_s:.3f}' SECOND
        ) WITH (
            'connector' = 'kafka', 'topic' = '{args.source_topic}', {kafka},
            'properties.group.id' = '{args.group_id}',
            'scan.startup.mode' = 'earliest-offset',
            'scan.topic-partition-discovery.interval' = '10 s',
            'format' = 'raw'
        )""",
        f"""CREATE TEMPORARY TABLE dlq_sink (letter BYTES) WITH (
            'connector' = 'kafka', 'topic' = '{args.dlq_topic}', {kafka}, 'format' = 'raw',
            'sink.delivery-guarantee' = 'at-least-once'
        )""",
        upsert_sink(
            "session_sink",
            args.session_topic,
            names.SESSION_ID,
            f"{names.SESSION_ID} STRING, {names.SESSION_RECENT_ITEMS} ARRAY<STRING>, "
            f"{names.SESSION_EVENT_COUNT} BIGINT, {names.SESSION_VIEW_COUNT} BIGINT, "
            f"{names.SESSION_CART_COUNT} BIGINT, {names.SESSION_PURCHASE_COUNT} BIGINT, "
            f"{names.SESSION_DISTINCT_CATEGORIES} BIGINT, {names.SESSION_START_MS} BIGINT, "
            f"{names.SESSION_LAST_EVENT_MS} BIGINT, {names.SESSION_DWELL_S} DOUBLE, "
            f"{names.SESSION_PURCHASED_ITEMS} ARRAY<STRING>, "
            "source_event_ms BIGINT, emitted_ms BIGINT, late BOOLEAN, late_events BIGINT",
        ),
        upsert_sink(
            "user_sink",
            args.user_topic,
            names.USER_ID,
            f"{names.USER_ID} STRING, {names.USER_RECENT_ITEMS} ARRAY<STRING>, "
            "source_event_ms BIGINT, emitted_ms BIGINT",
        ),
        upsert_sink(
            "item_sink",
            args.item_topic,
            names.ITEM_ID,
            f"{names.ITEM_ID} STRING, {names.ITEM_TRENDING_COUNT} BIGINT, window_end_ms BIGINT, "
            "source_event_ms BIGINT, emitted_ms BIGINT",
        ),
        # The contract's bounds that are settings go in as arguments (the broker's time is the
        # clock of the in_future rule, as in silver).
        f"""CREATE TEMPORARY VIEW checked AS SELECT
            payload, kafka_partition, kafka_offset, ts, c.valid AS valid,
            COALESCE(ts < CURRENT_WATERMARK(ts), FALSE) AS is_late,
            c.event_id, c.session_id, c.user_id, c.item_id, c.event_type, c.category,
            c.event_time AS event_ms, c.broker_ms
        FROM clicks_source, LATERAL TABLE(PARSE_CLICK(payload, kafka_ts,
            CAST({args.earliest_event_ms} AS BIGINT), CAST({args.max_future_ms} AS BIGINT),
            CAST({args.max_event_bytes} AS BIGINT))) AS c""",
        "CREATE TEMPORARY VIEW events AS SELECT * FROM checked WHERE valid",
    ]
    # Duplicates (same event_id) count once: every session count is a COUNT(DISTINCT event_id),
    # whose per-session id set lives and expires with the session; RECENT_ITEMS ignores a
    # repeated (time, id); MIN / MAX / LAST_VALUE do not care. No separate dedup state.
    distinct = "COUNT(DISTINCT event_id) FILTER (WHERE {})"
    sessions = f"""SELECT session_id,
            RECENT_ITEMS(event_ms, event_id, item_id, {RECENT_ITEMS}) AS recent,
            RECENT_ITEMS(event_ms, event_id, CASE WHEN event_type = 'purchase' THEN item_id END,
                {PURCHASED_ITEMS}) AS purchased,
            COUNT(DISTINCT event_id) AS n_events,
            {distinct.format("event_type = 'view'")} AS n_views,
            {distinct.format("event_type = 'cart'")} AS n_carts,
            {distinct.format("event_type = 'purchase'")} AS n_purchases,
            LEAST(COUNT(DISTINCT NULLIF(category, '')), {MAX_TRACKED_CATEGORIES}) AS n_categories,
            MIN(event_ms) AS first_ms, MAX(event_ms) AS last_ms,
            LAST_VALUE(event_ms) AS source_event_ms,
            LAST_VALUE(is_late) AS late,
            {distinct.format("is_late")} AS late_events
        FROM events GROUP BY session_id"""
    inserts = [
        """INSERT INTO dlq_sink
            SELECT dead_letter_for(payload, kafka_partition, kafka_offset, broker_ms) FROM checked WHERE NOT valid""",
        f"""INSERT INTO session_sink SELECT
            session_id, recent, n_events, n_views, n_carts, n_purchases, n_categories, first_ms, last_ms,
            CAST(last_ms - first_ms AS DOUBLE) / 1000, purchased, source_event_ms, emitted_ms, late, late_events
        FROM ({_with_emitted_ms(sessions)})""",
    ]
    if not args.sessions_only:
        users = f"""SELECT user_id, RECENT_ITEMS(event_ms, event_id, item_id, {USER_RECENT_LIMIT}) AS recent,
                LAST_VALUE(event_ms) AS source_event_ms
            FROM events WHERE CHAR_LENGTH(COALESCE(user_id, '')) > 0 GROUP BY user_id"""
        window = f"INTERVAL '{args.trending_window_min}' MINUTE"
        # COUNT(*), not COUNT(DISTINCT event_id): it lets Flink share one-minute slices between the
        # ten overlapping windows (each event updates one slice instead of ten windows' id sets).
        # A duplicate delivery therefore counts twice in trending — a popularity signal, where
        # that is noise — never in the session and user features. Items seen fewer than
        # --trending-min-count times in a window are not written: a sliding window emits a row
        # per item and window, ten per long-tail item seen once, which would cost more than
        # everything else the job does (a Top-N per window costs nearly as much, in sorting).
        items = f"""SELECT item_id, COUNT(*) AS n, EXTRACT(EPOCH FROM window_end) * 1000 AS window_end_ms,
                MAX(event_ms) AS source_event_ms
            FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE, {window}))
            GROUP BY item_id, window_start, window_end
            HAVING COUNT(*) >= {args.trending_min_count}"""
        inserts += [
            f"""INSERT INTO user_sink SELECT user_id, recent, source_event_ms, emitted_ms
                FROM ({_with_emitted_ms(users)})""",
            f"""INSERT INTO item_sink SELECT item_id, n, CAST(window_end_ms AS BIGINT), source_event_ms, emitted_ms
                FROM ({_with_emitted_ms(items)})""",
        ]
    return [*tables, *inserts]


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (``<job-id>/chk-N`` holding ``_metadata``) under a folder."""
    candidates = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata") if meta.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))


# -- the Flink job --------------------------------------------------------------------------------------
def checkpoint_uri(state_dir: str) -> str:
    """The checkpoint folder under ``--state-dir``: a local path as a ``file://`` URI, a URI as it is.

    A cluster's checkpoints go to storage every node reaches (``s3://...``, ``hdfs://...`` or a
    shared mount): a URI must not be resolved against the client's working folder.
    """
    if "://" in state_dir:
        return state_dir.rstrip("/") + "/checkpoints"
    return Path(state_dir, "checkpoints").resolve().as_uri()


def job_configuration(
    args: argparse.Namespace, *, submitted: bool = False, cluster_parallelism: int | None = None
) -> dict[str, str]:
    """Flink settings of the job: checkpoints, state, mini-batches, Python workers.

    Args:
        args: The parsed command line (:func:`parse_args`).
        submitted: True under ``flink run`` (a session or application cluster): the cluster owns its
            addresses and ports, so the mini-cluster's REST and bind settings are left out.
        cluster_parallelism: The parallelism ``flink run -p`` gave (``parallelism.default`` of the
            client), used when ``--parallelism`` is not given.
    """
    parallelism = args.parallelism or (cluster_parallelism if submitted else None) or 1
    config = {
        "execution.checkpointing.interval": f"{args.checkpoint_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.min-pause": f"{min(500, args.checkpoint_ms)} ms",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.storage": "filesystem",
        "execution.checkpointing.dir": checkpoint_uri(args.state_dir),
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": args.state_backend,
        # RocksDB checkpoints only what changed; the heap backend writes its whole state.
        "execution.checkpointing.incremental": str(args.state_backend == "rocksdb").lower(),
        "parallelism.default": str(parallelism),
        "pipeline.name": JOB_NAME,
        # No mini-batches: heap state is cheap per event, and the sinks' buffers already
        # coalesce the rows of a busy key.
        "table.exec.mini-batch.enabled": "false",
        # A partition without traffic must not hold the watermark back forever.
        "table.exec.source.idle-timeout": "5 s",
        # Session and user state (with their event-id sets) idle this long (processing time) is dropped.
        "table.exec.state.ttl": f"{args.state_ttl_h} h",
        "python.execution-mode": "process",
        # SQL operators never hold on to input rows: chained operators may pass them on uncopied.
        "pipeline.object-reuse": "true",
        # Parallelism 1 by default: a local pre-aggregation before the shuffle would only add work.
        "table.optimizer.agg-phase-strategy": "ONE_PHASE" if parallelism == 1 else "AUTO",
    }
    if not submitted:
        config |= {
            "rest.port": str(args.rest_port),
            "rest.address": "127.0.0.1",
            # Flink binds every interface unless told: the REST API, the blob server, the task manager.
            "rest.bind-address": "127.0.0.1",
            "jobmanager.bind-host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
        }
    if args.python_executable:
        # The Python worker (dead letters) must run the interpreter that has pyflink and lambdarec.
        config["python.executable"] = args.python_executable
    if args.restore:
        config["execution.state-recovery.path"] = str(args.restore)
    return config


def _python_workers_on_loopback() -> None:
    """Make PyFlink's Python worker pool listen on 127.0.0.1.

    On a mini-cluster PyFlink serves its Python UDF workers from a gRPC server in this process
    (``BeamFnLoopbackWorkerPoolServicer.start``), bound to ``[::]:0``, every interface, with no
    setting to change it; this replaces ``start`` with the same server bound to loopback.
    """
    import atexit
    import functools

    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.utils import thread_pool_executor
    from pyflink.fn_execution.beam.beam_worker_pool_service import BeamFnLoopbackWorkerPoolServicer

    def start(self: Any) -> str:
        if not self._worker_address:
            server = grpc.server(thread_pool_executor.shared_unbounded_instance())
            port = server.add_insecure_port("127.0.0.1:0")
            beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(self, server)
            server.start()
            self._worker_address = f"127.0.0.1:{port}"
            atexit.register(functools.partial(server.stop, 1))
        return str(self._worker_address)

    BeamFnLoopbackWorkerPoolServicer.start = start  # type: ignore[method-assign]


def is_submitted(conf: Any) -> bool:
    """True when ``flink run`` runs this script (its client sets ``execution.target``: remote, yarn-...)."""
    return conf.get("execution.target", "local") not in ("", "local")


def build_job(args: argparse.Namespace) -> tuple[Any, bool]:
    """The job's statement set, ready to execute (nothing runs yet), and whether to wait for the job.

    PyFlink is imported here, lazily: the helpers above must stay importable without a JVM.

    Returns:
        ``(statement_set, attached)``: ``attached`` is False under ``flink run -d``, whose client
        must return once the job is submitted.
    """
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.udf import udf

    # Before the environment exists: creating it starts the mini-cluster's worker pool (under
    # `flink run` the task managers start their own workers and the patch is never used).
    _python_workers_on_loopback()
    settings = EnvironmentSettings.new_instance().in_streaming_mode().build()
    t_env = TableEnvironment.create(settings)
    conf = t_env.get_config()
    submitted = is_submitted(conf)
    cluster_parallelism = int(conf.get("parallelism.default", "1") or 1)
    for key, value in job_configuration(args, submitted=submitted, cluster_parallelism=cluster_parallelism).items():
        conf.set(key, value)
    jars = [j.resolve().as_uri() for j in (_jar(args.jar, CONNECTOR_JAR), _jar(args.udf_jar, UDF_JAR)) if j]
    if jars:
        conf.set("pipeline.jars", ";".join(jars))
    pylib = Path(__file__).resolve().parent / "pylib"
    if pylib.is_dir() and not conf.get("python.files", ""):
        # Running from the packaged artifact: ship its Python dependencies to the workers (unless
        # `flink run --pyFiles` already does; the same folder twice fails the submission).
        t_env.add_python_file(str(pylib))

    source_topic = args.source_topic
    bounds = Bounds(
        earliest_ms=args.earliest_event_ms, max_future_ms=args.max_future_ms, max_bytes=args.max_event_bytes
    )

    @udf(result_type=DataTypes.BYTES())  # type: ignore[misc]
    def dead_letter_for(
        payload: bytes | None, partition: int | None, offset: int | None, broker_ms: int | None
    ) -> bytes:
        return letter_for(payload, partition, offset, source_topic, bounds, broker_ms)

    t_env.create_temporary_function("dead_letter_for", dead_letter_for)
    java_functions = {
        "RECENT_ITEMS": RECENT_ITEMS_CLASS,
        "PARSE_CLICK": PARSE_CLICK_CLASS,
        "EVENT_TIME_OF": EVENT_TIME_OF_CLASS,
    }
    for name, java_class in java_functions.items():
        t_env.execute_sql(f"CREATE TEMPORARY FUNCTION {name} AS '{java_class}' LANGUAGE JAVA")
    statements = job_statements(args)
    statement_set = t_env.create_statement_set()
    for statement in statements:
        if statement.lstrip().upper().startswith("INSERT"):
            statement_set.add_insert_sql(statement)
        else:
            t_env.execute_sql(statement)
    return statement_set, conf.get("execution.attached", "true").lower() != "false"


def _jar(explicit: str | None, name: str) -> Path | None:
    """A jar: the explicit path, beside this file (packaged), or the checkout's ``.cache/jars/flink``.

    Returns None when the jar is already on the cluster's classpath (``flink run -j``).
    """
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parents[1] / ".cache" / "jars" / "flink" / name):
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
    parser.add_argument(
        "--checkpoint-ms",
        type=int,
        default=10_000,
        help="Checkpoint interval: a restart reprocesses at most this much (sinks are idempotent upserts).",
    )
    parser.add_argument("--out-of-orderness-ms", type=int, default=5000)
    parser.add_argument("--trending-window-min", type=int, default=10)
    parser.add_argument(
        "--trending-min-count",
        type=int,
        default=3,
        help="Items need this many events in a window to be written to features.item (the long tail is not).",
    )
    parser.add_argument(
        "--state-ttl-h",
        type=int,
        default=24,
        help="Drop a session's / user's state after this many hours without events.",
    )
    parser.add_argument(
        "--state-backend",
        choices=("hashmap", "rocksdb"),
        default="hashmap",
        help="hashmap: fastest, state on the heap (local); rocksdb: state on disk, incremental checkpoints.",
    )
    parser.add_argument("--flush-ms", type=int, default=100, help="Sinks flush the newest row per key this often.")
    parser.add_argument("--flush-rows", type=int, default=5000, help="... or when this many keys are buffered.")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=None,
        help="Parallelism of every operator (default: 1 on the mini-cluster, `flink run -p` on a cluster).",
    )

    parser.add_argument("--rest-port", type=int, default=8081)
    parser.add_argument("--jar", default=None, help="Kafka connector jar (default: packaged or .cache/jars).")
    parser.add_argument("--udf-jar", default=None, help="The job's Java UDF jar (default: packaged or .cache/jars).")
    parser.add_argument(
        "--python-executable",
        default=sys.executable,
        help="Interpreter of the Python worker (default: this one); '' keeps the cluster's setting.",
    )
    parser.add_argument("--sessions-only", action="store_true", help="Only the session features (tests, bench).")
    parser.add_argument(
        "--earliest-event-ms",
        type=int,
        default=EARLIEST_EVENT_MS,
        help="Earlier event times are dead-lettered (the event contract; Settings.earliest_event_time).",
    )
    parser.add_argument(
        "--max-future-ms",
        type=int,
        default=DEFAULT_MAX_FUTURE_MS,
        help="Event times further ahead of the record's Kafka timestamp are dead-lettered.",
    )
    parser.add_argument(
        "--max-event-bytes", type=int, default=DEFAULT_MAX_EVENT_BYTES, help="Longer records are dead-lettered."
    )
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
    statement_set, attached = build_job(args)
    sys.stdout.flush()
    result = statement_set.execute()
    job_client = result.get_job_client()
    if job_client is not None:
        log.info("job %s submitted", job_client.get_job_id())
    if not attached:
        # `flink run -d`: the client returns once the cluster has the job (waiting would hold it forever).
        return
    result.wait()


if __name__ == "__main__":
    main()

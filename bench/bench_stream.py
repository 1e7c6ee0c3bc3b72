"""Speed layer: Kafka → PyFlink job → features.session → pusher → Feast online store (SQLite).

Starts a private broker (KRaft) and a standalone Feast repo in a temporary state folder, then:
  1. throughput: N events preloaded on ``clicks``; the job (parallelism 1) and the pusher run
     until every session's final snapshot is on ``features.session`` (Flink done) and the pusher
     has written all of it to the online store (its committed offset reaches the topic's end);
     events/s from job RUNNING to each of those points; a sample of sessions is then read back
     from the online store and checked against the expected counts;
  2. freshness: events produced at a steady rate (default 1k/s) with event_time = produce time;
     the pusher's lag (feature visible − event time) p50/p99 over the last 10k updates;
  3. recovery: kill -9 of the job while events keep arriving at the same rate; restart from the
     latest checkpoint; seconds from the kill until updates are fresh again (lag < 1 s).
Writes bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import signal
import sys
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import orjson
from bench_common import LoadSampler, tree_cpu_s
from feast import FeatureStore

from lambdarec import names
from lambdarec.events.admin import ensure_topics
from lambdarec.runtime.kafka import KafkaService
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import load_settings
from lambdarec.stream.feast_local import build_session_repo, online_session_features
from lambdarec.stream.metrics import read_metrics
from lambdarec.stream.service import PusherService, StreamJobService

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ["view"] * 8 + ["cart", "purchase"]


PER_SESSION = 12


def event(i: int, time_ms: int, prefix: str) -> bytes:
    """One wire-format event of a shop with 12 events per session."""
    return orjson.dumps(
        {
            "event_id": f"{prefix}-{i}",
            "event_time": time_ms,
            "session_id": f"{prefix}-s{i // PER_SESSION}",
            "user_id": f"u{i % 50_000}",
            # Log-uniform popularity over 200k items (a few hot items, a long tail), deterministic.
            "item_id": f"i{int(200_000 ** ((i * 0.6180339887) % 1))}",
            "event_type": KINDS[i % 10],
            "price": 19.99,
            "category": "electronics.smartphone",
        }
    )


def steady(producer: Any, topic: str, rate: int, seconds: float, prefix: str, stop: threading.Event) -> int:
    """Produce ``rate`` events/s with event_time = now for ``seconds`` (or until ``stop``); return the count."""
    sent, started = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        now_ms = int(time.time() * 1000)
        while sent < due:
            producer.produce(topic, event(sent, now_ms, prefix), key=f"{prefix}-s{sent // PER_SESSION}")
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(30)
    return sent


def expected_counts(n_events: int, prefix: str) -> dict[str, int]:
    """Each session's final event count for events 0..n-1 of :func:`event`."""
    counts: dict[str, int] = {}
    for i in range(n_events):
        key = f"{prefix}-s{i // PER_SESSION}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def watch_sessions(bootstrap: str, topic: str, expected: dict[str, int], done: threading.Event, out: dict) -> None:
    """Follow the session topic until every session of ``expected`` reached its final count."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-watch-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0})  # fmt: skip
    consumer.subscribe([topic])
    missing = set(expected)
    rows = 0
    while missing and not done.is_set():
        for message in consumer.consume(5000, timeout=0.2):
            if message.error() is not None or not message.value():
                continue
            row = orjson.loads(message.value() or b"{}")
            rows += 1
            sid = row[names.SESSION_ID]
            if sid in missing and row[names.SESSION_EVENT_COUNT] == expected[sid]:
                missing.discard(sid)
    out["finished_at"] = time.monotonic()
    out["rows"] = rows
    consumer.close()


def pusher_caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """True when the pusher's committed offsets reach the end of every partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        for tp in committed:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > 0 and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    """Poll ``check()`` until true (raises naming ``what`` on timeout)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def wait_metrics(path: Path, check: Any, timeout_s: float) -> dict[str, Any]:
    """Poll the pusher's metrics until ``check(metrics)``; return them (raises on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        metrics = read_metrics(path)
        if metrics and check(metrics):
            return metrics
        time.sleep(0.2)
    raise TimeoutError(f"metrics never satisfied the check: {read_metrics(path)}")


# -- sustained mode: a producer at a fixed rate, lag and freshness per rate --------------------------
LIVE_SESSIONS = 20_000
USERS = 7_000
USER_SHARE = 0.6
ITEMS = 50_000
CATEGORIES = 300
LATE_MAX_MS = 5_000
DUPLICATE_SHARE = 0.01
PROBES_PER_S = 5


def sustained_producer(
    bootstrap: str, topic: str, rate: int, seconds: float, prefix: str, late_share: float, probes: Any, out: Any
) -> None:
    """Produce issue 16's workload at ``rate`` events/s for ``seconds`` (run in a process of its own).

    20k live sessions (each a random 4-20 events long, then replaced by a new one), 60% of them with
    a user among 7k, items log-uniform over 50k (a few hot, a long tail) in 300 categories, event
    time = wall clock except for ``late_share`` of the events, which are up to 5 s late, and 1% of
    the deliveries sent twice (same event id). The parity of event_time marks the late events
    (odd ms) so the readers can tell on-time rows from rows whose newest event was late.
    About ``PROBES_PER_S`` on-time events a second go to ``probes`` as (session, its event count
    after this event, produce ms); the totals go to ``out`` at the end.
    """
    from confluent_kafka import Producer

    rng = random.Random(zlib.crc32(prefix.encode()))
    cpu_at_start = tree_cpu_s()  # the imports of this process are not the producer's work
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})
    live: list[list[Any]] = []
    made = 0

    def new_session() -> list[Any]:
        nonlocal made
        made += 1
        user = f"u{rng.randrange(USERS)}" if rng.random() < USER_SHARE else ""
        return [f"{prefix}-s{made}", user, rng.randint(4, 20), 0]

    live = [new_session() for _ in range(LIVE_SESSIONS)]
    sent = distinct = duplicates = late = 0
    next_probe = 0.0
    out.put(int(time.time() * 1000))  # the window starts now, after this process's imports
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        now_ms = int(time.time() * 1000)
        while distinct < due:
            slot = rng.randrange(LIVE_SESSIONS)
            session = live[slot]
            session[3] += 1
            is_late = rng.random() < late_share
            if is_late:
                event_ms = (now_ms - rng.randrange(100, LATE_MAX_MS)) | 1
                late += 1
            else:
                event_ms = now_ms & ~1
            item = int(ITEMS ** rng.random())
            value = orjson.dumps(
                {
                    "event_id": f"{prefix}-{distinct}",
                    "event_time": event_ms,
                    "session_id": session[0],
                    "user_id": session[1],
                    "item_id": f"i{item}",
                    "event_type": KINDS[rng.randrange(10)],
                    "price": 19.99,
                    "category": f"c{item % CATEGORIES}",
                }
            )
            copies = 2 if rng.random() < DUPLICATE_SHARE else 1
            for _ in range(copies):
                while True:
                    try:
                        producer.produce(topic, value, key=session[0])
                        break
                    except BufferError:
                        producer.poll(0.01)
            sent += copies
            duplicates += copies - 1
            distinct += 1
            if not is_late and elapsed >= next_probe:
                probes.put((session[0], session[3], now_ms))
                next_probe = elapsed + 1 / PROBES_PER_S
            session[2] -= 1
            if session[2] <= 0:
                live[slot] = new_session()
        producer.poll(0)
        time.sleep(0.002)
    elapsed = time.monotonic() - started
    producer.flush(60)
    out.put(
        {
            "seconds": round(elapsed, 1),
            "events": distinct,
            "deliveries": sent,
            "duplicates": duplicates,
            "late_events": late,
            "sessions_started": made,
            "producer_cpu_s": round(tree_cpu_s() - cpu_at_start, 1),
        }
    )


def pct(values: list[float], q: float) -> float | None:
    """The ``q``-quantile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class EmitWatcher:
    """Follows ``features.session``: per row, emitted_ms − source_event_ms for rows whose newest event was on time."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.samples: list[tuple[int, int]] = []  # (emitted ms, lag ms)
        self.sink_delays: list[tuple[int, int]] = []  # (emitted ms, Kafka record time − emitted ms)
        self.rows = 0
        self.late_rows = 0
        self._stop = threading.Event()
        group = f"bench-emit-{uuid.uuid4().hex[:6]}"
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "latest",
                                   "enable.auto.commit": False, "log_level": 0})  # fmt: skip
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(5000, timeout=0.2):
                if message.error() is not None or not message.value():
                    continue
                row = orjson.loads(message.value() or b"{}")
                self.rows += 1
                source, emitted = row.get("source_event_ms"), row.get("emitted_ms")
                if source is None or emitted is None:
                    continue
                if source % 2:
                    self.late_rows += 1
                    continue
                self.samples.append((emitted, emitted - source))
                kind, stamp = message.timestamp()
                if kind != 0 and stamp > 0:  # the record's Kafka time: when Flink's sink sent it
                    self.sink_delays.append((emitted, stamp - emitted))
        self._consumer.close()

    def between(self, start_ms: int, end_ms: int, sink: bool = False) -> list[tuple[int, int]]:
        """The samples (or the sink delays) of rows emitted in [start, end)."""
        return [s for s in (self.sink_delays if sink else self.samples) if start_ms <= s[0] < end_ms]

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(10)


class OnlineProber:
    """Reads probed sessions from the online store until their event count shows the probed event.

    Online freshness of an on-time event = first read that shows it − its produce time (reads every
    ``every_s``; the SQLite online store read directly through Feast's provider, one query per tick).
    """

    def __init__(self, repo: Path, probes: Any, every_s: float = 0.02, give_up_s: float = 60) -> None:
        from feast import FeatureStore

        self.store = FeatureStore(repo_path=str(repo))
        self.view = self.store.get_feature_view(names.SESSION_FEATURE_VIEW)
        self.provider = self.store._get_provider()
        self.probes = probes
        self.every_s = every_s
        self.give_up_s = give_up_s
        self.samples: list[tuple[int, int]] = []  # (produce ms, freshness ms)
        self.lost: list[int] = []  # produce ms of probes never seen within give_up_s
        self.reads = 0
        self.pending: list[tuple[str, int, int]] = []  # probes not seen yet (session, count, produce ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _counts(self, sessions: list[str]) -> list[int]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        keys = [EntityKey(join_keys=[names.SESSION_ID], entity_values=[Value(string_val=s)]) for s in sessions]
        found = self.provider.online_read(
            config=self.store.config, table=self.view, entity_keys=keys,
            requested_features=[names.SESSION_EVENT_COUNT],
        )  # fmt: skip
        self.reads += 1
        return [int(values[names.SESSION_EVENT_COUNT].int64_val) if values else 0 for _ts, values in found]

    def _run(self) -> None:
        import queue

        pending: list[tuple[str, int, int]] = []
        while not self._stop.is_set():
            while True:
                try:
                    pending.append(self.probes.get_nowait())
                except queue.Empty:
                    break
            if pending:
                try:
                    counts = self._counts([p[0] for p in pending])
                except Exception:  # noqa: BLE001 - the store is busy being written: read again next tick
                    counts = [0] * len(pending)
                now_ms = int(time.time() * 1000)
                keep = []
                for (session, count, produced_ms), seen in zip(pending, counts, strict=True):
                    if seen >= count:
                        self.samples.append((produced_ms, now_ms - produced_ms))
                    elif now_ms - produced_ms > self.give_up_s * 1000:
                        self.lost.append(produced_ms)
                    else:
                        keep.append((session, count, produced_ms))
                pending = keep
            self.pending = list(pending)
            time.sleep(self.every_s)

    def between(self, start_ms: int, end_ms: int) -> list[int]:
        """Freshness (ms) of the probes produced in [start, end)."""
        return [f for p, f in self.samples if start_ms <= p < end_ms]

    def stop(self) -> None:
        """Stop reading."""
        self._stop.set()
        self._thread.join(10)


def offsets_lag(consumer: Any, topic: str, group_partitions: list[Any]) -> int:
    """End offsets of ``topic`` minus the offsets the job's group committed (checkpointed), summed."""
    committed = consumer.committed(group_partitions, timeout=10)
    lag = 0
    for tp in committed:
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        lag += high - max(tp.offset, 0)
    return lag


def process_cpu(root_pid: int, role: str) -> dict[int, tuple[str, float, float]]:
    """pid → (role of the process, CPU seconds so far, RSS MB) for a service's process tree.

    The job's tree is split into the Flink JVM (``java``), the job's Python driver (the root) and the
    Python UDF worker (any other process).
    """
    import psutil

    out: dict[int, tuple[str, float, float]] = {}
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        try:
            times = proc.cpu_times()
            name = proc.name()
            rss = proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
        if role == "job":
            part = "flink_jvm" if name == "java" else "job_driver_python" if proc.pid == root_pid else "python_worker"
        else:
            part = role
        out[proc.pid] = (part, times.user + times.system, rss)
    return out


def cpu_delta(
    before: dict[int, tuple[str, float, float]], after: dict[int, tuple[str, float, float]]
) -> dict[str, float]:
    """CPU seconds per role between two :func:`process_cpu` readings (new processes from zero)."""
    parts: dict[str, float] = {}
    for pid, (part, cpu, _rss) in after.items():
        parts[part] = parts.get(part, 0.0) + cpu - (before[pid][1] if pid in before else 0.0)
    return parts


def rss_by_role(reading: dict[int, tuple[str, float, float]]) -> dict[str, int]:
    """RSS MB per role of a :func:`process_cpu` reading."""
    parts: dict[str, float] = {}
    for part, _cpu, rss in reading.values():
        parts[part] = parts.get(part, 0.0) + rss
    return {k: round(v) for k, v in parts.items()}


def per_window(samples: list[tuple[int, int]], start_ms: int, window_ms: int) -> list[float | None]:
    """p99 of the samples' values per ``window_ms`` from ``start_ms`` (spikes show as one window)."""
    buckets: dict[int, list[float]] = {}
    for t, value in samples:
        buckets.setdefault((t - start_ms) // window_ms, []).append(float(value))
    return [pct(buckets.get(i, []), 0.99) for i in range(max(buckets, default=-1) + 1)]


def thirds_p50(samples: list[tuple[int, int]], start_ms: int, end_ms: int) -> tuple[float | None, float | None]:
    """Median lag of the samples in the middle and in the last third of [start, end)."""
    third = (end_ms - start_ms) / 3
    middle = [float(lag) for t, lag in samples if start_ms + third <= t < start_ms + 2 * third]
    last = [float(lag) for t, lag in samples if t >= start_ms + 2 * third]
    return pct(middle, 0.5), pct(last, 0.5)


def run_rate(ctx: dict[str, Any], rate: int, seconds: float, late_share: float, label: str) -> dict[str, Any]:
    """One rung of the ladder: produce at ``rate`` for ``seconds``, measure, then let the job drain."""
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    out_q = mp.Queue()
    procs = {"job": ctx["job_pid"], "pusher": ctx["pusher_pid"]}
    producer = mp.Process(
        target=sustained_producer,
        args=(ctx["bootstrap"], ctx["topic"], rate, seconds, label, late_share, ctx["probes"], out_q),
    )
    producer.start()
    start_ms = out_q.get(timeout=300)
    before = {pid: v for role, root in procs.items() for pid, v in process_cpu(root, role).items()}
    load = LoadSampler().start()
    lags: list[tuple[float, int]] = []
    t0 = time.monotonic()
    while producer.is_alive():
        lags.append((round(time.monotonic() - t0, 1), offsets_lag(ctx["offsets"], ctx["topic"], ctx["tps"])))
        producer.join(2.0)
    end_ms = int(time.time() * 1000)
    produced = out_q.get(timeout=60)
    after = {pid: v for role, root in procs.items() for pid, v in process_cpu(root, role).items()}
    load.stop()
    metrics = read_metrics(ctx["metrics_path"]) or {}
    # Wait for the probes of the window's last seconds, then let the job catch up before the next rung.
    time.sleep(3)
    drain_started = time.monotonic()
    drained = False
    while time.monotonic() - drain_started < ctx["drain_s"]:
        if offsets_lag(ctx["offsets"], ctx["topic"], ctx["tps"]) <= rate * 3:
            drained = True
            break
        time.sleep(2)
    drain_s = time.monotonic() - drain_started

    emitted = ctx["emit"].between(start_ms, end_ms)
    emit_lags = [lag for _t, lag in emitted]
    middle, last = thirds_p50(emitted, start_ms, end_ms)
    fresh = ctx["prober"].between(start_ms, end_ms)
    fresh_at = [(p, f) for p, f in ctx["prober"].samples if start_ms <= p < end_ms]
    sink = [float(d) for _t, d in ctx["emit"].between(start_ms, end_ms, sink=True)]
    lost = [p for p in ctx["prober"].lost if start_ms <= p < end_ms]
    lost += [p[2] for p in ctx["prober"].pending if start_ms <= p[2] < end_ms]
    n = max(1, len(lags))
    lag_middle = [lag for _t, lag in lags[n // 3 : 2 * n // 3]] or [0]
    lag_last = [lag for _t, lag in lags[2 * n // 3 :]] or [0]
    # Bounded: neither the median emit lag nor the checkpointed offset lag of the last third grows
    # beyond the middle third's (with a floor for noise: 0.5 s, two checkpoints of events).
    emit_bounded = middle is not None and last is not None and last <= 1.5 * middle + 500
    offsets_bounded = max(lag_last) <= 1.5 * max(lag_middle) + 2 * rate * ctx["checkpoint_s"]
    achieved = produced["events"] / produced["seconds"]
    cpu = cpu_delta(before, after)
    flink_cpu = sum(v for k, v in cpu.items() if k != "pusher")
    events_k = produced["events"] / 1000
    fresh_p99 = pct([float(f) for f in fresh], 0.99) if not lost else None
    result = {
        "rate_events_per_s": rate,
        "achieved_events_per_s": round(achieved),
        "producer": produced,
        "emit_lag_ms": {
            "means": "Flink's emitted_ms − event time, rows whose newest event was on time (event time = produce time)",
            "rows": len(emitted),
            "p50": pct([float(x) for x in emit_lags], 0.5),
            "p99": pct([float(x) for x in emit_lags], 0.99),
            "max": max(emit_lags) if emit_lags else None,
            "p50_middle_third": middle,
            "p50_last_third": last,
            "p99_per_10_s": per_window(emitted, start_ms, 10_000),
        },
        "sink_delay_ms": {
            "means": "Kafka record time of the row on features.session − Flink's emitted_ms (the sink's buffer)",
            "p50": pct(sink, 0.5),
            "p99": pct(sink, 0.99),
        },
        "offset_lag_events": {
            "means": "clicks end offsets − the job's committed offsets (committed at each checkpoint), every 2 s",
            "series": lags,
            "max_middle_third": max(lag_middle),
            "max_last_third": max(lag_last),
        },
        "online_freshness_ms": {
            "means": "first read of the online store that shows a probed on-time event − its produce time "
            f"({PROBES_PER_S} probes/s, reads every 20 ms)",
            "probes": len(fresh),
            "not_seen": len(lost),
            "not_seen_means": "probes not visible within 60 s or by the end of the drain (none allowed)",
            "p50": pct([float(f) for f in fresh], 0.5),
            "p99": fresh_p99,
            "max": max(fresh) if fresh else None,
            "p99_per_10_s": per_window(fresh_at, start_ms, 10_000),
        },
        "pusher_metrics_at_end": {
            "means": "the pusher's own lag (visible − event time of the row's newest event, late events included) "
            "over its last 10k updates",
            "p50_ms": metrics.get("lag_p50_ms"),
            "p99_ms": metrics.get("lag_p99_ms"),
            "updates": metrics.get("updates"),
            "late_updates": metrics.get("late_updates"),
        },
        "cpu_s": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "cpu_s_per_1k_events": {
            "flink": round(flink_cpu / events_k, 3),
            "pusher": round(cpu.get("pusher", 0.0) / events_k, 3),
            "producer": round(produced["producer_cpu_s"] / events_k, 3),
        },
        "cores": {
            "flink": round(flink_cpu / produced["seconds"], 2),
            "pusher": round(cpu.get("pusher", 0.0) / produced["seconds"], 2),
            "producer": round(produced["producer_cpu_s"] / produced["seconds"], 2),
        },
        "rss_mb_at_end": rss_by_role(after),
        "drained_after_s": round(drain_s, 1) if drained else None,
        "lag_bounded": bool(emit_bounded and offsets_bounded),
        "producer_kept_rate": achieved >= 0.95 * rate,
        **load.summary(),
    }
    result["kept"] = bool(
        result["lag_bounded"] and result["producer_kept_rate"] and fresh_p99 is not None and fresh_p99 <= 1000
    )
    return result


def profile_rate(ctx: dict[str, Any], rate: int, seconds: float, late_share: float, out_dir: Path) -> dict[str, Any]:
    """Where the CPU goes at ``rate``: JFR on the Flink JVM, py-spy on the pusher and the Python worker."""
    import shutil
    import subprocess

    job_tree = process_cpu(ctx["job_pid"], "job")
    jvm = next((pid for pid, (part, _c, _r) in job_tree.items() if part == "flink_jvm"), None)
    workers = [pid for pid, (part, _c, _r) in job_tree.items() if part == "python_worker"]
    out_dir.mkdir(parents=True, exist_ok=True)
    record_s = int(seconds - 10)
    spies: list[tuple[str, Any, Path]] = []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    has_py_spy = Path(py_spy).is_file()  # in the dev group; missing only where the venv was synced without it
    jfr_file = out_dir / "flink.jfr"

    def start_profilers() -> None:
        time.sleep(8)
        if jvm is not None:
            subprocess.run(["jcmd", str(jvm), "JFR.start", "name=bench", f"duration={record_s}s",
                            f"filename={jfr_file}", "settings=profile"], capture_output=True, timeout=60)  # fmt: skip
        for name, pid in [("pusher", ctx["pusher_pid"]), *(("python_worker", w) for w in workers[:1])]:
            if not has_py_spy:
                break
            target = out_dir / f"{name}.txt"
            proc = subprocess.Popen([py_spy, "record", "-p", str(pid), "-d", str(record_s), "-r", "50",
                                     "-f", "raw", "-o", str(target), "--nonblocking", "--idle"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            spies.append((name, proc, target))

    starter = threading.Thread(target=start_profilers, daemon=True)
    starter.start()
    threads_before = thread_cpu(jvm) if jvm is not None else {}
    measured = run_rate(ctx, rate, seconds, late_share, f"profile{rate}")
    threads_after = thread_cpu(jvm) if jvm is not None else {}
    starter.join(30)
    for _name, proc, _target in spies:
        proc.wait(60)
    profile: dict[str, Any] = {"rate_events_per_s": rate, "run": measured}
    if jvm is not None:
        spent = {k: v - threads_before.get(k, 0.0) for k, v in threads_after.items()}
        total = sum(spent.values()) or 1.0
        profile["flink_jvm_threads_cpu"] = {
            "means": "CPU seconds of the JVM's threads over the run (/proc task stats, by thread name), and share",
            "total_cpu_s": round(total, 1),
            "by_thread": [
                (k, round(v, 1), round(100 * v / total, 1))
                for k, v in sorted(spent.items(), key=lambda kv: -kv[1])[:15]
            ],
        }
    for name, _proc, target in spies:
        profile[name] = top_python_frames(target)
    if not has_py_spy:
        profile["pusher"] = {"error": f"py-spy not found ({py_spy}): install it into the venv to profile the pusher"}
    if jvm is not None:
        time.sleep(3)
        profile["flink_jvm"] = top_jfr_frames(jfr_file)
    profile["summary"] = profile_summary(profile)
    return profile


def profile_summary(profile: dict[str, Any]) -> str:
    """One paragraph: cores per process at the profiled rate, the JVM's threads, the pusher's time."""
    run = profile["run"]
    cpu, seconds = run["cpu_s"], run["producer"]["seconds"]
    parts = [
        f"at {fmt_int(profile['rate_events_per_s'])} events/s (load {run['load_1m_mean']}, profilers attached; "
        f"online freshness p50/p99 {run['online_freshness_ms']['p50']}/{run['online_freshness_ms']['p99']} ms, "
        f"Flink emit lag p99 {run['emit_lag_ms']['p99']} ms): "
        + ", ".join(f"{k} {v / seconds:.2f} cores" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    ]
    threads = (profile.get("flink_jvm_threads_cpu") or {}).get("by_thread") or []
    if threads:
        parts.append("JVM threads: " + ", ".join(f"{name} {share}%" for name, _cpu, share in threads[:6]))
    jfr = profile.get("flink_jvm") or {}
    if jfr.get("threads"):
        parts.append("JFR samples by thread: " + ", ".join(f"{t[:40]} {share}%" for t, share in jfr["threads"][:4]))
    pusher = profile.get("pusher") or {}
    if pusher.get("self_top"):
        parts.append(
            "pusher wall time (py-spy, idle included): "
            + ", ".join(f"{frame} {share}%" for frame, share in pusher["self_top"][:4])
        )
    return "; ".join(parts)


def fmt_int(value: int) -> str:
    """1500 → 1,500."""
    return f"{value:,}"


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (digits stripped: one entry per pool) of a process, from /proc."""
    import re

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        key = re.sub(r"[0-9#-]+$", "", re.sub(r"[0-9]+", "N", name)).strip() or name
        out[key] = out.get(key, 0.0) + cpu
    return out


def top_python_frames(raw: Path, n: int = 12) -> dict[str, Any]:
    """The leaf functions (self time) and the pusher-level callers of a py-spy raw (collapsed) profile."""
    if not raw.is_file():
        return {"error": "no py-spy output"}
    leaves: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        leaves[leaf] = leaves.get(leaf, 0) + int(count)
        total += int(count)
    top = sorted(leaves.items(), key=lambda kv: -kv[1])[:n]
    return {"samples": total, "self_top": [(f, round(100 * c / max(1, total), 1)) for f, c in top]}


def top_jfr_frames(jfr_file: Path, n: int = 15) -> dict[str, Any]:
    """The top methods (self samples) and top packages of a JFR recording's execution samples."""
    import subprocess

    if not jfr_file.is_file():
        return {"error": "no JFR recording"}
    done = subprocess.run(["jfr", "print", "--json", "--events", "jdk.ExecutionSample", str(jfr_file)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    events = json.loads(done.stdout).get("recording", {}).get("events", [])
    methods: dict[str, int] = {}
    packages: dict[str, int] = {}
    threads: dict[str, int] = {}
    for ev in events:
        values = ev.get("values", {})
        frames = (values.get("stackTrace") or {}).get("frames") or []
        thread = str((values.get("sampledThread") or {}).get("javaName", "?"))
        thread = thread.split(" (")[0].rstrip("0123456789#- ")
        threads[thread] = threads.get(thread, 0) + 1
        if not frames:
            continue
        method = frames[0].get("method", {})
        cls = str((method.get("type") or {}).get("name", "?"))
        name = f"{cls}.{method.get('name', '?')}"
        methods[name] = methods.get(name, 0) + 1
        package = ".".join(cls.split("/")[:3] if "/" in cls else cls.split(".")[:3])
        packages[package] = packages.get(package, 0) + 1
    total = max(1, len(events))

    def top(d: dict[str, int], k: int) -> list[tuple[str, float]]:
        return [(key, round(100 * c / total, 1)) for key, c in sorted(d.items(), key=lambda kv: -kv[1])[:k]]

    return {
        "samples": len(events),
        "threads": top(threads, 8),
        "self_top": top(methods, n),
        "packages": top(packages, 10),
    }


def sustained(args: argparse.Namespace) -> None:
    """The sustained-rate ladder (``--sustained``): see :func:`run_rate`; writes ``--out``."""
    import multiprocessing

    from confluent_kafka import Consumer, TopicPartition

    results: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    ctx: dict[str, Any] = {"drain_s": args.drain_s, "checkpoint_s": args.checkpoint_ms / 1000}
    with tempfile.TemporaryDirectory(prefix="lambdarec-bench-sustained-") as state:
        settings = load_settings("local", state_dir=Path(state))
        kafka = Supervisor(settings, [KafkaService(settings)])
        kafka.up()
        stream: Supervisor | None = None
        emit: EmitWatcher | None = None
        prober: OnlineProber | None = None
        try:
            bootstrap = kafka.endpoint("kafka")
            assert bootstrap
            tag = uuid.uuid4().hex[:6]
            topics = {k: f"bench-{k}-{tag}" for k in ("clicks", "dlq", "session", "user", "item")}
            ensure_topics(bootstrap, {t: 4 if k == "clicks" else 1 for k, t in topics.items()})
            repo = Path(state) / "feast"
            build_session_repo(repo)
            flink_group = f"bench-flink-{tag}"
            job_args = [
                "--source-topic", topics["clicks"], "--dlq-topic", topics["dlq"],
                "--session-topic", topics["session"], "--user-topic", topics["user"],
                "--item-topic", topics["item"], "--checkpoint-ms", str(args.checkpoint_ms),
                "--group-id", flink_group, *args.job_arg,
                *(["--sessions-only"] if args.sessions_only else []),
            ]  # fmt: skip
            job = StreamJobService(settings, bootstrap, job_args=job_args)
            pusher = PusherService(
                settings, bootstrap, repo,
                pusher_args=["--topic", topics["session"], "--group-id", f"bench-pusher-{tag}", *args.pusher_arg],
            )  # fmt: skip
            stream = Supervisor(settings, [pusher, job])
            stream.up([pusher.name])
            stream.up([job.name])
            job_pid = stream.status([job.name])[0].pid
            pusher_pid = stream.status([pusher.name])[0].pid
            assert job_pid is not None and pusher_pid is not None
            offsets = Consumer({"bootstrap.servers": bootstrap, "group.id": flink_group, "log_level": 0})
            tps = [TopicPartition(topics["clicks"], p) for p in range(4)]
            probes = multiprocessing.get_context("spawn").Queue()
            emit = EmitWatcher(bootstrap, topics["session"])
            prober = OnlineProber(repo, probes)
            ctx |= {"bootstrap": bootstrap, "topic": topics["clicks"], "job_pid": job_pid, "pusher_pid": pusher_pid,
                    "metrics_path": pusher.metrics_path, "offsets": offsets, "tps": tps, "probes": probes,
                    "emit": emit, "prober": prober}  # fmt: skip
            if args.warmup_s > 0:
                print(f"warm-up: {args.rates[0]} events/s for {args.warmup_s} s", flush=True)
                run_rate(ctx, args.rates[0], args.warmup_s, args.late_share, "warmup")
            passed: list[int] = []
            failed: list[int] = []
            for rate in args.rates:
                result = run_rate(ctx, rate, args.seconds, args.late_share, f"r{rate}")
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "offset_lag_events"}), flush=True)
                (passed if result["kept"] else failed).append(rate)
                if not result["kept"] and not args.keep_going:
                    break
            for _ in range(args.refine):
                if not passed or not failed or min(failed) - max(passed) <= 200:
                    break
                rate = int(round((max(passed) + min(failed)) / 2, -2))
                result = run_rate(ctx, rate, args.seconds, args.late_share, f"r{rate}b")
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "offset_lag_events"}), flush=True)
                (passed if result["kept"] else failed).append(rate)
            # The highest kept rate, else the highest rate whose lag stayed bounded (freshness aside).
            bounded = [r["rate_events_per_s"] for r in results if r["lag_bounded"]]
            profile_at = args.profile_rate or max(passed or bounded or args.rates[:1])
            if args.profile_seconds > 0:
                print(f"profile at {profile_at} events/s", flush=True)
                profile = profile_rate(ctx, profile_at, args.profile_seconds, args.late_share, Path(state) / "profile")
            offsets.close()
        finally:
            if emit is not None:
                emit.stop()
            if prober is not None:
                prober.stop()
            if stream is not None:
                stream.down()
            kafka.down()

    kept = [r for r in results if r["kept"]]
    best = max(kept, key=lambda r: r["rate_events_per_s"]) if kept else None
    lowest_failed = min((r["rate_events_per_s"] for r in results if not r["kept"]), default=None)
    # The invocation as typed: every flag that shaped the run (checkpoints, profile, backend) is in it.
    command = shlex.join([".venv/bin/python", "bench/bench_stream.py", *sys.argv[1:]])
    payload: dict[str, Any] = {
        "benchmark": "stream_sustained",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "job": "sessions only" if args.sessions_only else "sessions + users + items",
        "parallelism": 1,
        "online_store": "Feast SQLite (standalone repo, push source)",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "workload": {
            "live_sessions": LIVE_SESSIONS,
            "session_length_events": "uniform 4-20, then a new session",
            "users": USERS,
            "sessions_with_user": USER_SHARE,
            "items": ITEMS,
            "item_popularity": "log-uniform",
            "categories": CATEGORIES,
            "late_share": args.late_share,
            "late_by_ms": f"uniform 100-{LATE_MAX_MS}",
            "duplicate_deliveries": DUPLICATE_SHARE,
            "event_time": "wall clock at produce (late: minus the delay)",
            "seconds_per_rate": args.seconds,
            "checkpoint_ms": args.checkpoint_ms,
            "job_args": args.job_arg,
            "pusher_args": args.pusher_arg,
        },  # fmt: skip
        "criteria": (
            "a rate is kept when the producer held it (≥ 95%), lag stayed bounded (the median emit lag and the "
            "committed-offset lag of the window's last third are not above 1.5× the middle third's, plus 0.5 s / "
            "two checkpoints of events), and the online freshness p99 of the probed on-time events ≤ 1000 ms with "
            "every probe seen"
        ),
        "sustained": {
            "events_per_s": best["rate_events_per_s"] if best else None,
            "goal_events_per_s": 20_000,
            "lowest_failed_events_per_s": lowest_failed,
            "freshness_p50_ms": best["online_freshness_ms"]["p50"] if best else None,
            "freshness_p99_ms": best["online_freshness_ms"]["p99"] if best else None,
            "flink_cpu_s_per_1k_events": best["cpu_s_per_1k_events"]["flink"] if best else None,
            "pusher_cpu_s_per_1k_events": best["cpu_s_per_1k_events"]["pusher"] if best else None,
            "load_1m_mean": best["load_1m_mean"] if best else None,
            "load_1m_max": best["load_1m_max"] if best else None,
            "ladder": [
                {
                    "rate": r["rate_events_per_s"],
                    "kept": r["kept"],
                    "lag_bounded": r["lag_bounded"],
                    "freshness_p50_ms": r["online_freshness_ms"]["p50"],
                    "freshness_p99_ms": r["online_freshness_ms"]["p99"],
                    "emit_lag_p99_ms": r["emit_lag_ms"]["p99"],
                    "flink_cores": r["cores"]["flink"],
                    "pusher_cores": r["cores"]["pusher"],
                    "load_1m_mean": r["load_1m_mean"],
                }
                for r in results
            ],  # fmt: skip
        },
        "rates": results,
        "profile": profile,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}: sustained {payload['sustained']['events_per_s']} events/s")


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="preloaded events for the throughput phase")
    parser.add_argument("--rate", type=int, default=1000, help="events/s of the freshness and recovery phases")
    parser.add_argument("--seconds", type=float, default=30, help="length of the freshness phase")
    parser.add_argument("--sessions-only", action="store_true", help="run only the session operator")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON goes")
    sus = parser.add_argument_group("sustained mode (--sustained): a fixed-rate ladder, writes stream_sustained.json")
    sus.add_argument("--sustained", action="store_true", help="measure the sustained rate instead")
    sus.add_argument("--rates", type=int, nargs="+", default=[1000, 1500, 2000, 2500, 3000], help="events/s, ascending")
    sus.add_argument("--keep-going", action="store_true", help="go on up the ladder after a rate fails")
    sus.add_argument("--refine", type=int, default=1, help="bisection steps between the best kept and first failed")
    sus.add_argument("--late-share", type=float, default=0.05, help="share of events up to 5 s late")
    sus.add_argument("--warmup-s", type=float, default=20, help="unmeasured seconds at the first rate")
    sus.add_argument("--drain-s", type=float, default=120, help="most seconds to wait for the job to catch up")
    sus.add_argument("--checkpoint-ms", type=int, default=10_000, help="the job's own default")
    sus.add_argument("--profile-rate", type=int, default=None, help="default: the highest kept (else bounded) rate")
    sus.add_argument("--profile-seconds", type=float, default=45, help="0: no profile")
    sus.add_argument("--job-arg", action="append", default=[], help="extra speed_layer.py argument (repeat)")
    sus.add_argument("--pusher-arg", action="append", default=[], help="extra pusher argument (repeat)")
    args = parser.parse_args()
    if args.sustained:
        args.out = args.out or RESULTS / "stream_sustained.json"
        sustained(args)
        return
    args.out = args.out or RESULTS / "stream.json"
    from confluent_kafka import Producer

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lambdarec-bench-stream-") as state:
        settings = load_settings("local", state_dir=Path(state))
        kafka = Supervisor(settings, [KafkaService(settings)])
        kafka.up()
        stream: Supervisor | None = None
        try:
            bootstrap = kafka.endpoint("kafka")
            assert bootstrap
            tag = uuid.uuid4().hex[:6]
            topics = {k: f"bench-{k}-{tag}" for k in ("clicks", "dlq", "session", "user", "item")}
            ensure_topics(bootstrap, {t: 4 if k == "clicks" else 1 for k, t in topics.items()})
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 0})

            base = int(time.time() * 1000) - 3_600_000
            for i in range(args.events):
                value, key = event(i, base + i * 10, "bulk"), f"bulk-s{i // PER_SESSION}"
                while True:
                    try:
                        producer.produce(topics["clicks"], value, key=key)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain it
                        producer.poll(0.05)
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(60)
            expected = expected_counts(args.events, "bulk")

            repo = Path(state) / "feast"
            build_session_repo(repo)
            job_args = [
                "--source-topic", topics["clicks"], "--dlq-topic", topics["dlq"],
                "--session-topic", topics["session"], "--user-topic", topics["user"],
                "--item-topic", topics["item"], "--checkpoint-ms", "2000",
                *(["--sessions-only"] if args.sessions_only else []),
            ]  # fmt: skip
            group = f"bench-pusher-{tag}"
            job = StreamJobService(settings, bootstrap, job_args=job_args)
            pusher = PusherService(
                settings, bootstrap, repo, pusher_args=["--topic", topics["session"], "--group-id", group]
            )
            stream = Supervisor(settings, [pusher, job])
            stream.up([pusher.name])
            watched: dict[str, Any] = {}
            done = threading.Event()
            watcher = threading.Thread(
                target=watch_sessions, args=(bootstrap, topics["session"], expected, done, watched), daemon=True
            )
            watcher.start()
            up_started = time.monotonic()
            load = LoadSampler().start()
            stream.up([job.name])
            running_at = time.monotonic()
            job_pid = stream.status([job.name])[0].pid
            assert job_pid is not None
            cpu_at_running = tree_cpu_s(job_pid)
            watcher.join(1800)
            flink_s = watched["finished_at"] - running_at
            flink_cpu_s = tree_cpu_s(job_pid) - cpu_at_running
            load_at_flink_done = os.getloadavg()[0]
            wait_until(lambda: pusher_caught_up(bootstrap, group, topics["session"]), 1800, "the pusher")
            online_s = time.monotonic() - running_at
            load.stop()
            sample = random.Random(7).sample(sorted(expected), k=min(200, len(expected)))
            store = FeatureStore(repo_path=str(repo))
            online = online_session_features(store, sample)
            wrong = [s for s in sample if online.get(s, {}).get(names.SESSION_EVENT_COUNT) != expected[s]]
            metrics = read_metrics(pusher.metrics_path) or {}
            results["throughput"] = {
                "events": args.events,
                "sessions": len(expected),
                "job_start_s": round(running_at - up_started, 1),
                "flink_done_s": round(flink_s, 1),
                "flink_events_per_s": round(args.events / flink_s),
                "flink_cpu_s": round(flink_cpu_s, 1),
                "flink_events_per_cpu_s": round(args.events / flink_cpu_s),
                "load_average_1m_at_end": round(load_at_flink_done, 1),
                "online_done_s": round(online_s, 1),
                "events_per_s": round(args.events / online_s),
                "session_rows_on_topic": watched["rows"],
                "online_writes": metrics.get("pushes"),
                "sample_checked_in_online_store": len(sample),
                "sample_wrong": len(wrong),
                **load.summary(),
            }
            print("throughput:", results["throughput"], flush=True)
            if wrong:
                raise AssertionError(f"online store disagrees for {len(wrong)} sampled sessions, e.g. {wrong[:3]}")

            # A fresh pusher (same group: it resumes at the topic's end) so that the freshness
            # figures cover live rows only, not the backlog of the throughput phase.
            stream.down([pusher.name])
            stream.up([pusher.name])
            stop = threading.Event()
            load = LoadSampler().start()
            sent = steady(producer, topics["clicks"], args.rate, args.seconds, "live", stop)
            time.sleep(3)
            wait_until(lambda: pusher_caught_up(bootstrap, group, topics["session"]), 600, "the pusher (live)")
            metrics = read_metrics(pusher.metrics_path) or {}
            load.stop()
            results["freshness"] = {
                "rate_events_per_s": args.rate,
                "events": sent,
                "samples": metrics["lag_samples"],
                "p50_ms": metrics["lag_p50_ms"],
                "p99_ms": metrics["lag_p99_ms"],
                "max_ms": metrics["lag_max_ms"],
                "lag_means": "online write visible − event time of the newest event in the row",
                **load.summary(),
            }
            print("freshness:", results["freshness"], flush=True)

            feeder = threading.Thread(
                target=steady, args=(producer, topics["clicks"], args.rate, 240, "recovery", stop), daemon=True
            )
            feeder.start()
            time.sleep(5)
            record = stream.status([job.name])[0]
            assert record.pid is not None
            killed_at = time.monotonic()
            os.killpg(record.pid, signal.SIGKILL)
            time.sleep(1)
            stream.up([job.name])
            healthy_s = time.monotonic() - killed_at

            def fresh(m: dict[str, Any]) -> bool:
                return m["updated_at"] > time.time() - 2 and time.time() * 1000 - m["last_event_ms"] < 1000

            wait_metrics(pusher.metrics_path, fresh, 300)
            caught_up_s = time.monotonic() - killed_at
            stop.set()
            feeder.join(30)
            results["recovery"] = {
                "rate_events_per_s": args.rate,
                "kill_to_running_s": round(healthy_s, 1),
                "kill_to_caught_up_s": round(caught_up_s, 1),
                "caught_up_means": "newest event in the online store is < 1 s old again",
            }
            print("recovery:", results["recovery"], flush=True)
            results["rss_mb"] = {s.name: round(s.rss_mb or 0) for s in stream.status()}
        finally:
            if stream is not None:
                stream.down()
            kafka.down()

    payload = {
        "benchmark": "stream_kafka_flink_online_store",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "job": "sessions only" if args.sessions_only else "sessions + users + items",
        "parallelism": 1,
        "online_store": "Feast SQLite (standalone repo, push source)",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "feature_names": list(names.SESSION_FEATURES),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

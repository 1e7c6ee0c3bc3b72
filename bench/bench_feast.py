"""Benchmark the feature store: materialize throughput and online read latency of ranking_v1.

Builds gold-shaped tables (N users, M items) in a temporary lake, applies the Feast repo,
materializes (rows/s), then reads ranking_v1 for 1 user + 100 items many times and reports
p50/p99 of two paths over the same requests — Feast's ``get_online_features`` with the feature
service (``feast``) and :class:`lambdarec.featurestore.online.OnlineFeatureReader` (``reader``,
what serving and ``lambdarec features get`` use) — on SQLite (local) and, when `redis-server`
is installed, on Redis (prod config) too. Wall-clock percentiles, plus the reading thread's
CPU time (the machine is shared: wall time includes waiting for a core). Writes
bench/results/feast.json (or --out):

    .venv/bin/python bench/bench_feast.py --users 50000 --items 20000 --reads 300

``--pusher`` measures the pusher alone instead (no Kafka: a stand-in consumer hands it JSON
records) writing session rows into the SQLite online store, through its proto path and, for
comparison, through ``store.push`` DataFrames, and updates the ``pusher`` section of the JSON:

    .venv/bin/python bench/bench_feast.py --pusher --rows 50000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_common import LoadSampler

SNAPSHOT = datetime(2024, 1, 31, tzinfo=UTC)


def write_gold(lake: Path, n_users: int, n_items: int, seed: int = 7) -> None:
    """Gold-shaped Parquet tables with random but plausible values."""
    rng = np.random.default_rng(seed)
    cats = np.array([f"cat.c{i:03d}" for i in range(50)])
    stamp = pd.Timestamp(SNAPSHOT)
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n_users)],
            "user_events_30d": rng.integers(1, 200, n_users),
            "user_views_30d": rng.integers(1, 150, n_users),
            "user_carts_30d": rng.integers(0, 20, n_users),
            "user_purchases_30d": rng.integers(0, 5, n_users),
            "user_spend_30d": rng.gamma(2.0, 50.0, n_users),
            "user_distinct_items_30d": rng.integers(1, 100, n_users),
            "user_visits_30d": rng.integers(1, 30, n_users),
            "user_last_event_ms": int(stamp.timestamp() * 1000) - rng.integers(0, 86_400_000, n_users),
            "user_days_since_last_event": rng.random(n_users),
            "user_top_categories": [list(rng.choice(cats, 3, replace=False)) for _ in range(n_users)],
            "user_recent_items_30d": [[f"i{j}" for j in rng.integers(0, n_items, 30)] for _ in range(n_users)],
            "event_timestamp": stamp,
        }
    )
    items: dict[str, Any] = {"item_id": [f"i{i}" for i in range(n_items)]}
    for days in (1, 7, 30):
        for kind in ("views", "carts", "purchases", "popularity"):
            items[f"item_{kind}_{days}d"] = rng.integers(0, 100 * days, n_items)
    items |= {
        "item_cart_rate_30d": rng.random(n_items),
        "item_conversion_rate_30d": rng.random(n_items) / 10,
        "item_price_mean_30d": rng.gamma(2.0, 20.0, n_items),
        "item_category": rng.choice(cats, n_items),
        "item_brand": rng.choice(cats, n_items),
        "event_timestamp": stamp,
    }
    neighbours = pd.DataFrame(
        {
            "item_id": items["item_id"],
            "copurchase_items": [[f"i{j}" for j in rng.integers(0, n_items, 5)] for _ in range(n_items)],
            "copurchase_scores": [sorted(rng.random(5), reverse=True) for _ in range(n_items)],
            "coview_items": [[f"i{j}" for j in rng.integers(0, n_items, 5)] for _ in range(n_items)],
            "coview_scores": [sorted(rng.random(5), reverse=True) for _ in range(n_items)],
            "event_timestamp": stamp,
        }
    )
    sessions = pd.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(1000)],
            "session_recent_items": [[f"i{j}" for j in rng.integers(0, n_items, 5)] for _ in range(1000)],
            **{
                name: rng.integers(0, 10, 1000)
                for name in (
                    "session_event_count",
                    "session_view_count",
                    "session_cart_count",
                    "session_purchase_count",
                    "session_distinct_categories",
                    "session_start_ms",
                    "session_last_event_ms",
                )
            },
            "session_dwell_s": rng.random(1000) * 600,
            "event_timestamp": stamp,
        }
    )
    for table, frame in (
        ("user_history", users),
        ("item_stats", pd.DataFrame(items)),
        ("item_neighbours", neighbours),
        ("session_features", sessions),
    ):
        folder = lake / "gold" / table / f"date={SNAPSHOT.date() - timedelta(days=1)}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / "part-0.parquet", index=False)


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.array(values)
    return {
        "p50_ms": round(float(np.percentile(array, 50)), 2),
        "p99_ms": round(float(np.percentile(array, 99)), 2),
        "mean_ms": round(float(array.mean()), 2),
    }


def read_latency(store: Any, n_users: int, n_items: int, reps: int, warmup: int, seed: int = 3) -> dict[str, Any]:
    """ranking_v1 reads of 1 user + 100 items through Feast and through the reader, in ms.

    Both paths read the same requests, interleaved, after ``warmup`` untimed reads each (a
    serving process reads continuously; the reader's conversions warm up); every reader result
    is checked against Feast's.
    """
    from lambdarec.featurestore.store import get_online_features, online_reader, read_online_features

    reader = online_reader(store)
    rng = np.random.default_rng(seed)
    wall: dict[str, list[float]] = {"feast": [], "reader": []}
    cpu: dict[str, list[float]] = {"feast": [], "reader": []}
    now_ms = int(SNAPSHOT.timestamp() * 1000)
    for rep in range(reps + warmup):
        user = f"u{rng.integers(0, n_users)}"
        items = [f"i{j}" for j in rng.integers(0, n_items, 100)]
        results = {}
        for path in ("feast", "reader"):
            started, started_cpu = time.perf_counter(), time.thread_time()
            if path == "feast":
                values = get_online_features(store, user, items, request_time_ms=now_ms)
            else:
                values = read_online_features(reader, user, items, request_time_ms=now_ms)
            elapsed, elapsed_cpu = (time.perf_counter() - started) * 1000, (time.thread_time() - started_cpu) * 1000
            if rep >= warmup:
                wall[path].append(elapsed)
                cpu[path].append(elapsed_cpu)
            results[path] = values
        assert results["reader"] == results["feast"], "the reader differs from get_online_features"
        assert results["reader"]["user_events_30d"][0] is not None
    # Then the reader alone, as a serving process uses it: no Feast call between two reads
    # evicting its caches (the interleaved figures above are the pessimistic ones).
    for _ in range(reps):
        user = f"u{rng.integers(0, n_users)}"
        items = [f"i{j}" for j in rng.integers(0, n_items, 100)]
        started, started_cpu = time.perf_counter(), time.thread_time()
        read_online_features(reader, user, items, request_time_ms=now_ms)
        wall.setdefault("reader_alone", []).append((time.perf_counter() - started) * 1000)
        cpu.setdefault("reader_alone", []).append((time.thread_time() - started_cpu) * 1000)
    paths = ("feast", "reader", "reader_alone")
    return {
        path: {**_percentiles(wall[path]), "cpu": _percentiles(cpu[path]), "reads": reps, "warmup_reads": warmup}
        for path in paths
    }


class _Record:
    """A Kafka record as the pusher reads it."""

    def __init__(self, topic: str, key: bytes, value: bytes | None) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> None:
        return None


class _Consumer:
    """Hands the pusher prepared batches, like ``confluent_kafka.Consumer.consume``."""

    def __init__(self, records: list[_Record], batch: int) -> None:
        self.batches = [records[i : i + batch] for i in range(0, len(records), batch)]

    def consume(self, n: int, timeout: float) -> list[_Record]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, asynchronous: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def session_records(n_rows: int, n_sessions: int, topic: str, seed: int = 5) -> list[_Record]:
    """``n_rows`` session snapshots as the Flink job writes them, over ``n_sessions`` sessions.

    A session's snapshots are consecutive (one partition, one visit at a time), so with fewer
    sessions than rows a batch holds several snapshots of a session and the pusher writes the newest.
    """
    import orjson

    from lambdarec import names

    rng = np.random.default_rng(seed)
    counts = [0] * n_sessions
    base = int(SNAPSHOT.timestamp() * 1000)
    records = []
    per_session = max(1, n_rows // n_sessions)
    for i in range(n_rows):
        s = (i // per_session) % n_sessions
        counts[s] += 1
        n = counts[s]
        row = {
            names.SESSION_ID: f"s{s}",
            names.SESSION_RECENT_ITEMS: [f"i{j}" for j in rng.integers(0, 50_000, min(n, 20))],
            names.SESSION_EVENT_COUNT: n,
            names.SESSION_VIEW_COUNT: n,
            names.SESSION_CART_COUNT: n // 5,
            names.SESSION_PURCHASE_COUNT: n // 20,
            names.SESSION_DISTINCT_CATEGORIES: min(n, 7),
            names.SESSION_START_MS: base + s,
            names.SESSION_LAST_EVENT_MS: base + s + n * 1_000,
            names.SESSION_DWELL_S: n * 1.0,
            "source_event_ms": base + s + n * 1_000,
            "emitted_ms": base + s + n * 1_000 + 20,
            "late": False,
            "late_events": 0,
        }
        records.append(_Record(topic, f"s{s}".encode(), orjson.dumps(row)))
    return records


def pusher_throughput(state: Path, n_rows: int, n_sessions: int, batch: int) -> dict[str, Any]:
    """Session rows per second from records to the SQLite online store: the pusher vs ``store.push``.

    Each path writes into its own freshly applied store. ``pusher``: the whole step (decode,
    newest row per session, protos, ``online_write_batch``, metrics). ``store_push``: the same
    newest rows of each batch through Feast's DataFrame push, what the pusher did before.
    """
    import orjson

    from lambdarec import names
    from lambdarec.featurestore.store import apply, open_store
    from lambdarec.settings import load_settings
    from lambdarec.stream.pusher import FEEDS, FeaturePusher, newest_per_key, push_frame

    def fresh_store(name: str) -> Any:
        settings = load_settings("local", state_dir=state / name)
        apply(settings)
        return open_store(settings)

    topic = names.SESSION_FEATURES_TOPIC
    records = session_records(n_rows, n_sessions, topic)
    records.append(_Record(topic, b"gone", None))  # a tombstone: counted, skipped
    result: dict[str, Any] = {"records": n_rows, "sessions": n_sessions, "batch": batch}
    load = LoadSampler().start()

    store = fresh_store("pusher")
    pusher = FeaturePusher("-", store, state / "metrics.json", topics={"session": topic}, max_batch=batch,
                           consumer=_Consumer(records, batch))  # fmt: skip
    written = pusher.step(timeout_s=0)  # the first step resolves Feast's objects, as a running pusher has
    started, started_cpu = time.perf_counter(), time.process_time()
    while pusher._consumer.batches:
        written += pusher.step(timeout_s=0)
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    timed = n_rows - batch
    tracker = pusher.metrics.total
    assert tracker.tombstones == 1 and tracker.undecodable == 0
    result["pusher"] = {
        "rows_written": written,
        "timed_records": timed,
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3),
        "records_per_s": round(timed / seconds),
        "rows_written_per_s": round(timed / seconds * written / n_rows),
        "rows_written_per_cpu_s": round(timed / cpu * written / n_rows),
    }

    store = fresh_store("store-push")
    feed = FEEDS["session"]
    rows = [orjson.loads(r.value() or b"") for r in records if r.value() is not None]
    batches = [list(newest_per_key(feed, rows[i : i + batch]).values()) for i in range(0, len(rows), batch)]
    push_frame(store, feed, batches[0])
    baseline_written = 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for newest in batches[1:]:
        baseline_written += push_frame(store, feed, newest)
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    result["store_push"] = {
        "rows_written": baseline_written,
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3),
        "rows_written_per_s": round(baseline_written / seconds),
        "rows_written_per_cpu_s": round(baseline_written / cpu),
    }
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result.update(load.stop().summary())
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_backend(env: str, state: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Apply, materialize and read on one environment's online store."""
    from lambdarec.featurestore.store import apply, materialize, open_store
    from lambdarec.settings import load_settings

    overrides: dict[str, Any] = {"state_dir": state}
    if env != "local":
        overrides["secret_key"] = "bench-only"
    settings = load_settings(env, **overrides)
    load = LoadSampler().start()
    apply(settings)
    report = materialize(settings, SNAPSHOT - timedelta(days=31), SNAPSHOT + timedelta(seconds=1))
    latency = read_latency(open_store(settings), args.users, args.items, args.reads, args.warmup)
    result = {"materialize": report.to_dict(), "ranking_v1_1_user_100_items": latency}
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result.update(load.stop().summary())
    print(env, json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark on SQLite and Redis and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--reads", type=int, default=500, help="timed reads per backend")
    parser.add_argument("--warmup", type=int, default=100, help="untimed reads per backend before them")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "feast.json")
    parser.add_argument("--pusher", action="store_true", help="benchmark the pusher alone (updates 'pusher')")
    parser.add_argument("--rows", type=int, default=50_000, help="pusher: session records")
    parser.add_argument("--batch", type=int, default=5_000, help="pusher: records per consume")
    args = parser.parse_args(argv)
    if args.pusher:
        with tempfile.TemporaryDirectory(prefix="lambdarec-bench-pusher-") as tmp:
            section = {
                "goal": ">= 5000 session rows/s into the SQLite online store",
                "command": "bench/bench_feast.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                "all_distinct": pusher_throughput(Path(tmp) / "distinct", args.rows, args.rows, args.batch),
                "snapshots_per_session_5": pusher_throughput(Path(tmp) / "dup", args.rows, args.rows // 5, args.batch),
            }
        print("pusher", json.dumps(section), flush=True)
        previous = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "feast"}
        previous["pusher"] = section
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(previous, indent=2))
        return previous
    result: dict[str, Any] = {
        "benchmark": "feast",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "users": args.users,
        "items": args.items,
        "goal": "p99 <= 5 ms on SQLite for ranking_v1, 1 user + 100 items",
        "command": "bench/bench_feast.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="lambdarec-bench-feast-") as tmp:
        state = Path(tmp)
        write_gold(state / "lake", args.users, args.items)
        result["backends"]["sqlite"] = run_backend("local", state, args)
        binary = shutil.which("redis-server")
        if binary:
            port = _free_port()
            redis = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            try:
                time.sleep(0.5)
                os.environ["LAMBDAREC_REDIS_URL"] = f"127.0.0.1:{port}"
                os.environ["FEAST_DIR"] = str(state / "feast-redis")
                result["backends"]["redis"] = run_backend("prod", state, args)
            finally:
                redis.terminate()
                redis.wait(timeout=10)
        else:
            result["backends"]["redis"] = {"skipped": "redis-server not installed"}
    if args.out.exists():
        pusher = json.loads(args.out.read_text()).get("pusher")
        if pusher:
            result["pusher"] = pusher
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

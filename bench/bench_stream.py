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
import signal
import tempfile
import threading
import time
import uuid
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
            row = orjson.loads(message.value())
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


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="preloaded events for the throughput phase")
    parser.add_argument("--rate", type=int, default=1000, help="events/s of the freshness and recovery phases")
    parser.add_argument("--seconds", type=float, default=30, help="length of the freshness phase")
    parser.add_argument("--sessions-only", action="store_true", help="run only the session operator")
    parser.add_argument("--out", type=Path, default=RESULTS / "stream.json", help="where the JSON goes")
    args = parser.parse_args()
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
            load = os.getloadavg()[0]
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
                "load_average_1m_at_end": round(load, 1),
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

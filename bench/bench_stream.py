"""Speed layer: Kafka → PyFlink job → features.session → pusher → Feast online store (SQLite).

Starts a private broker (KRaft) and a standalone Feast repo in a temporary state folder, then:
  1. throughput: N events preloaded on ``clicks``; the job (parallelism 1) and the pusher run
     until every update is visible in the online store; events/s from job RUNNING to the last push;
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
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from lambdarec import names
from lambdarec.events.admin import ensure_topics
from lambdarec.runtime.kafka import KafkaService
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import load_settings
from lambdarec.stream.feast_local import build_session_repo
from lambdarec.stream.metrics import read_metrics
from lambdarec.stream.service import PusherService, StreamJobService

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ["view"] * 8 + ["cart", "purchase"]


def event(i: int, time_ms: int, prefix: str) -> bytes:
    """One wire-format event of a shop with ~12 events per session."""
    return orjson.dumps(
        {
            "event_id": f"{prefix}-{i}",
            "event_time": time_ms,
            "session_id": f"{prefix}-s{i // 12}",
            "user_id": f"u{i % 50_000}",
            "item_id": f"i{(i * 7919) % 200_000}",
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
            producer.produce(topic, event(sent, now_ms, prefix))
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(30)
    return sent


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
                producer.produce(topics["clicks"], event(i, base + i * 10, "bulk"))
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(60)

            repo = Path(state) / "feast"
            build_session_repo(repo)
            job_args = [
                "--source-topic", topics["clicks"], "--dlq-topic", topics["dlq"],
                "--session-topic", topics["session"], "--user-topic", topics["user"],
                "--item-topic", topics["item"], "--checkpoint-ms", "2000",
                *(["--sessions-only"] if args.sessions_only else []),
            ]  # fmt: skip
            job = StreamJobService(settings, bootstrap, job_args=job_args)
            pusher = PusherService(settings, bootstrap, repo, pusher_args=["--topic", topics["session"]])
            stream = Supervisor(settings, [pusher, job])
            stream.up([pusher.name])
            up_started = time.monotonic()
            stream.up([job.name])
            running_at = time.monotonic()
            metrics = wait_metrics(pusher.metrics_path, lambda m: m["updates"] >= args.events, 1800)
            seconds = time.monotonic() - running_at
            results["throughput"] = {
                "events": args.events,
                "job_start_s": round(running_at - up_started, 1),
                "seconds_after_running": round(seconds, 1),
                "events_per_s": round(args.events / seconds),
                "online_writes": metrics["pushes"],
            }
            print("throughput:", results["throughput"], flush=True)

            stop = threading.Event()
            sent = steady(producer, topics["clicks"], args.rate, args.seconds, "live", stop)
            time.sleep(3)
            metrics = wait_metrics(pusher.metrics_path, lambda m: m["updates"] >= args.events + sent, 600)
            results["freshness"] = {
                "rate_events_per_s": args.rate,
                "events": sent,
                "samples": metrics["lag_samples"],
                "p50_ms": metrics["lag_p50_ms"],
                "p99_ms": metrics["lag_p99_ms"],
                "max_ms": metrics["lag_max_ms"],
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

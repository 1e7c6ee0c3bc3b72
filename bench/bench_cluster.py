"""Broker-failover pause of the cluster profile's Kafka: three KRaft brokers, one ``kill -9``'d mid-stream.

Starts the profile's three brokers (``lambdarec --profile cluster services up kafka``) in a fresh
temporary state folder, then, ``--runs`` times: publishes ``--rate`` events/s through the project's
``EventPublisher`` (``acks=all``, idempotent; topics with replication factor 3, ``min.insync.replicas=2``),
``kill -9``s the broker leading ``clicks`` partition 0, keeps publishing, and records the longest gap
between consecutive acknowledged deliveries (the failover pause, in ms); the killed broker is restarted
(and the cluster back to full ISR) before the next run. Also checks that every acknowledged event is in
``clicks`` exactly once. The machine's load is sampled throughout: the figure depends on it.
Writes bench/results/cluster.json; the brokers are stopped at the end, also on failure.

``--stream`` measures the speed layer instead (and merges a ``stream`` block into the same file, keeping
the failover figures): Kafka → Flink job → pusher → Feast online store (standalone SQLite repo) at a
fixed rate, once on the single-process path (mini-cluster, parallelism 1) and once on the cluster
profile's Flink session cluster (JobManager + 2 TaskManagers, ``flink run`` of the packaged job at
parallelism 2), one Kafka broker for both so only Flink differs. For each: whether it kept up (every
session's final count in the online store), the pusher's freshness p50/p99 (online write − event time),
the Flink processes' CPU seconds per 1k events (the overhead), start-up times and the load average.

Usage: python bench/bench_cluster.py [--runs 3] [--rate 400] [--before-s 6] [--after-s 30]
       python bench/bench_cluster.py --stream [--stream-rate 500] [--stream-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench_common import LoadSampler

from lambdarec import names
from lambdarec.events.consumer import EventConsumer
from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC, KAFKA_SERVICE
from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.failover import run_failover_drill
from lambdarec.runtime.kafka import broker_name, kafka_services
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import load_settings

OUT = Path(__file__).parent / "results" / "cluster.json"


def _read_back(bootstrap: str) -> Counter[str]:
    with EventConsumer(bootstrap, f"bench-{uuid.uuid4().hex[:8]}", topic=CLICKS_TOPIC, dlq_topic=CLICKS_DLQ_TOPIC) as c:
        return Counter(e.event_id for e in c.iter_events(idle_timeout_s=8.0))


def _flink_pids(supervisors: list[Supervisor]) -> list[int]:
    return [s.pid for sup in supervisors for s in sup.status() if s.pid is not None]


def _stream_path(
    label: str, settings: Any, bootstrap: str, repo: Path, rate: int, seconds: float, producer: Any
) -> dict[str, Any]:
    """One path (mini-cluster or session cluster) at ``rate`` events/s for ``seconds``: kept up, freshness, CPU."""
    from bench_common import tree_cpu_s
    from bench_stream import expected_counts, pusher_caught_up, steady, wait_until

    from lambdarec.events.admin import ensure_topics
    from lambdarec.runtime.flink_cluster import flink_cluster_services
    from lambdarec.stream.feast_local import online_session_features
    from lambdarec.stream.metrics import read_metrics
    from lambdarec.stream.service import PusherService, stream_job_service

    tag = f"{label}-{uuid.uuid4().hex[:6]}"
    topics = {k: f"bench-{k}-{tag}" for k in ("clicks", "dlq", "session")}
    ensure_topics(bootstrap, {topics["clicks"]: 4, topics["dlq"]: 1, topics["session"]: 2})
    cluster = Supervisor(settings, flink_cluster_services(settings))
    out: dict[str, Any] = {}
    started = time.monotonic()
    cluster.up()  # nothing on the single-process path
    out["cluster_start_s"] = round(time.monotonic() - started, 1)
    job_args = [
        "--source-topic", topics["clicks"], "--dlq-topic", topics["dlq"], "--session-topic", topics["session"],
        "--group-id", f"bench-{tag}", "--checkpoint-ms", "2000", "--sessions-only",
    ]  # fmt: skip
    job = stream_job_service(settings, bootstrap, job_args=job_args)
    group = f"bench-pusher-{tag}"
    pusher = PusherService(settings, bootstrap, repo, pusher_args=["--topic", topics["session"], "--group-id", group])
    stream = Supervisor(settings, [pusher, job])
    try:
        stream.up([pusher.name])
        started = time.monotonic()
        stream.up([job.name])
        out["job_start_s"] = round(time.monotonic() - started, 1)
        pids = _flink_pids([stream, cluster]) if settings.flink_cluster.session else _flink_pids([stream])
        pids = [pid for pid in pids if pid != stream.status([pusher.name])[0].pid]
        cpu_before = sum(tree_cpu_s(pid) for pid in pids)
        load = LoadSampler().start()
        stop = threading.Event()
        produced_at = time.monotonic()
        sent = steady(producer, topics["clicks"], rate, seconds, tag, stop)
        wait_until(lambda: pusher_caught_up(bootstrap, group, topics["session"]), 600, f"the pusher ({label})")
        drained_s = time.monotonic() - produced_at
        load.stop()
        cpu_s = sum(tree_cpu_s(pid) for pid in pids) - cpu_before
        expected = expected_counts(sent, tag)
        from feast import FeatureStore

        online = online_session_features(FeatureStore(repo_path=str(repo)), sorted(expected))
        wrong = [s for s, n in expected.items() if online.get(s, {}).get(names.SESSION_EVENT_COUNT) != n]
        metrics = read_metrics(pusher.metrics_path) or {}
        out |= {
            "events": sent,
            "sessions": len(expected),
            "sessions_wrong_in_online_store": len(wrong),
            "kept_up": not wrong and drained_s < seconds + 30,
            "produce_s": round(seconds, 1),
            "produced_to_online_s": round(drained_s, 1),
            "events_per_s": round(sent / drained_s),
            "freshness_p50_ms": metrics.get("lag_p50_ms"),
            "freshness_p99_ms": metrics.get("lag_p99_ms"),
            "flink_cpu_s": round(cpu_s, 1),
            "flink_cpu_s_per_1k_events": round(1000 * cpu_s / max(sent, 1), 2),
            "flink_processes": len(pids),
            "rss_mb": {s.name: round(s.rss_mb or 0) for s in [*cluster.status(), *stream.status()]},
            **load.summary(),
        }
    finally:
        stream.down()
        cluster.down()
    print(f"{label}: {out}", file=sys.stderr)
    return out


def stream_main(args: argparse.Namespace) -> int:
    """The speed layer on both paths at one fixed rate; merged into the results file as ``stream``."""
    from confluent_kafka import Producer

    from lambdarec.runtime.kafka import KafkaService
    from lambdarec.stream.feast_local import build_session_repo

    with tempfile.TemporaryDirectory(prefix="bench-cluster-stream-") as state:
        single = load_settings("local", state_dir=Path(state) / "single")
        on_cluster = load_settings("local", state_dir=Path(state) / "cluster", **profile_overrides("cluster"))
        kafka = Supervisor(single, [KafkaService(single)])
        kafka.up()
        try:
            bootstrap = kafka.endpoint(KAFKA_SERVICE)
            assert bootstrap is not None
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 0})
            paths = {}
            for label, settings in (("single_process", single), ("cluster", on_cluster)):
                repo = Path(state) / f"feast-{label}"
                build_session_repo(repo)
                paths[label] = _stream_path(
                    label, settings, bootstrap, repo, args.stream_rate, args.stream_seconds, producer
                )
        finally:
            kafka.down()
    flink = on_cluster.flink_cluster
    block = {
        "benchmark": "Kafka -> Flink -> pusher -> Feast online store (SQLite), fixed rate, sessions only",
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rate_events_per_s": args.stream_rate,
        "seconds": args.stream_seconds,
        "kafka": "one broker for both paths (only Flink differs)",
        "single_process": {"flink": "mini-cluster in one JVM, parallelism 1", **paths["single_process"]},
        "cluster": {
            "flink": f"session cluster: JobManager {flink.jobmanager_memory} + {flink.task_managers} TaskManagers "
            f"x {flink.slots} slots ({flink.taskmanager_memory}), flink run -p {flink.parallelism}",
            **paths["cluster"],
        },
        "note": "parity and overhead on one 2-core machine shared with other work (see the load averages), "
        "not speed: both paths run the same packaged SQL plan; the cluster adds the JobManager, a network "
        "shuffle between TaskManagers and a second Python worker",
    }
    existing = json.loads(args.out.read_text()) if args.out.is_file() else {}
    existing["stream"] = block
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps(block, indent=2))
    return 0 if all(p["sessions_wrong_in_online_store"] == 0 for p in paths.values()) else 1


def main() -> int:
    """Run the drills and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=400.0, help="events offered per second")
    parser.add_argument("--before-s", type=float, default=6.0)
    parser.add_argument("--after-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--stream", action="store_true", help="the speed layer on both paths instead")
    parser.add_argument("--stream-rate", type=int, default=500, help="events/s of the --stream runs")
    parser.add_argument("--stream-seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.stream:
        return stream_main(args)

    load = LoadSampler().start()
    runs: list[dict[str, Any]] = []
    all_acked: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as state:
        settings = load_settings("local", state_dir=Path(state), **profile_overrides("cluster"))
        supervisor = Supervisor(settings, kafka_services(settings))
        try:
            started = time.monotonic()
            supervisor.up()
            startup_s = time.monotonic() - started
            bootstrap = supervisor.endpoint(KAFKA_SERVICE)
            assert bootstrap is not None
            from confluent_kafka.admin import AdminClient

            for n in range(args.runs):
                metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(CLICKS_TOPIC, timeout=10)
                victim = broker_name(metadata.topics[CLICKS_TOPIC].partitions[0].leader)
                pid = next(s.pid for s in supervisor.status() if s.name == victim)

                def kill_9(pid: int | None = pid) -> None:
                    import psutil

                    process = psutil.Process(pid)
                    process.kill()
                    process.wait(10)

                report = run_failover_drill(
                    bootstrap,
                    kill_9,
                    topic=CLICKS_TOPIC,
                    rate_per_s=args.rate,
                    before_s=args.before_s,
                    after_s=args.after_s,
                    id_prefix=f"run{n}",
                )
                all_acked.update(report.acked_ids)
                restarted = time.monotonic()
                supervisor.up([victim])
                runs.append({**report.summary(), "killed": victim, "rejoin_s": round(time.monotonic() - restarted, 1)})
                print(f"run {n + 1}: {runs[-1]}", file=sys.stderr)
            received = _read_back(bootstrap)
        finally:
            supervisor.down()
    load.stop()
    missing = sum(1 for event_id in all_acked if received[event_id] == 0)
    doubled = sum(1 for n in received.values() if n > 1)
    pauses = [r["gap_after_kill_ms"] for r in runs]
    result = {
        "benchmark": "broker failover pause, cluster profile (3 KRaft brokers, RF 3, min ISR 2, acks=all)",
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cluster_startup_s": round(startup_s, 1),
        "failover_pause_ms": {
            "runs": pauses,
            "median": round(statistics.median(pauses), 1),
            "max": round(max(pauses), 1),
        },
        "acknowledged": len(all_acked),
        "lost": missing,
        "doubled": doubled,
        "runs": runs,
        "note": "pause = longest gap between consecutive acknowledged deliveries that ends after the kill; "
        "Kafka defaults broker.session.timeout.ms=9000 and replica.lag.time.max.ms=30000",
        **load.summary(),
    }
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if "stream" in previous:
        result["stream"] = previous["stream"]  # the --stream figures are another run's: keep them
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("failover_pause_ms", "lost", "doubled")}))
    return 0 if missing == 0 and doubled == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Broker-failover pause of the cluster profile's Kafka: three KRaft brokers, one ``kill -9``'d mid-stream.

Starts the profile's three brokers (``lambdarec --profile cluster services up kafka``) in a fresh
temporary state folder, then, ``--runs`` times: publishes ``--rate`` events/s through the project's
``EventPublisher`` (``acks=all``, idempotent; topics with replication factor 3, ``min.insync.replicas=2``),
``kill -9``s the broker leading ``clicks`` partition 0, keeps publishing, and records the longest gap
between consecutive acknowledged deliveries (the failover pause, in ms); the killed broker is restarted
(and the cluster back to full ISR) before the next run. Also checks that every acknowledged event is in
``clicks`` exactly once. The machine's load is sampled throughout: the figure depends on it.
Writes bench/results/cluster.json; the brokers are stopped at the end, also on failure.

Usage: python bench/bench_cluster.py [--runs 3] [--rate 400] [--before-s 6] [--after-s 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench_common import LoadSampler

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


def main() -> int:
    """Run the drills and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=400.0, help="events offered per second")
    parser.add_argument("--before-s", type=float, default=6.0)
    parser.add_argument("--after-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("failover_pause_ms", "lost", "doubled")}))
    return 0 if missing == 0 and doubled == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

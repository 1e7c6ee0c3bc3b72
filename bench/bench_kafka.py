"""Kafka produce + consume throughput on loopback, through lambdarec's own publisher and consumer.

Starts a private broker (KRaft, the embedded runtime) in a temporary state folder, then:
  1. produce N events through EventPublisher (validation + JSON + idempotent acks=all producer);
  2. produce N pre-validated events through EventPublisher.publish_event (no validation);
  3. consume all of them through EventConsumer (decode + validation per record).
Writes bench/results/kafka.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
import uuid
from pathlib import Path

from bench_common import LoadSampler

from lambdarec.events.admin import ensure_topics
from lambdarec.events.consumer import EventConsumer
from lambdarec.events.producer import EventPublisher
from lambdarec.runtime.kafka import KafkaService
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.schemas import ClickEvent
from lambdarec.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def make_events(n: int) -> list[dict[str, object]]:
    """N plausible raw events (what an adapter hands the publisher)."""
    base = int(time.time() * 1000) - 3_600_000
    kinds = ["view"] * 8 + ["cart", "purchase"]
    return [
        {
            "event_id": f"bench-{i}",
            "event_time": base + i,
            "session_id": f"s{i // 12}",
            "user_id": f"u{i % 50_000}" if i % 4 else None,
            "item_id": f"i{(i * 7919) % 200_000}",
            "event_type": kinds[i % 10],
            "price": 19.99,
            "category": "electronics.smartphone",
            "brand": "acme",
        }
        for i in range(n)
    ]


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per phase (default 1M)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the bench topic")
    parser.add_argument("--out", type=Path, default=RESULTS / "kafka.json", help="where the JSON goes")
    args = parser.parse_args()

    raws = make_events(args.events)
    with tempfile.TemporaryDirectory(prefix="lambdarec-bench-") as state:
        settings = load_settings("local", state_dir=Path(state))
        supervisor = Supervisor(settings, [KafkaService(settings)])
        supervisor.up()
        try:
            bootstrap = supervisor.endpoint("kafka")
            assert bootstrap
            topic = f"bench-{uuid.uuid4().hex[:6]}"
            ensure_topics(bootstrap, {topic: args.partitions, f"{topic}.dlq": 1})
            results: dict[str, object] = {}
            load = LoadSampler().start()  # over the three timed phases

            publisher = EventPublisher(bootstrap, topic=topic, dlq_topic=f"{topic}.dlq")
            started = time.perf_counter()
            for raw in raws:
                publisher.publish(raw)
            publisher.flush()
            seconds = time.perf_counter() - started
            wire_bytes = sum(len(ClickEvent.model_validate(r).to_json()) for r in raws[:10_000]) / 10_000
            results["produce_validated"] = {
                "events": args.events,
                "seconds": round(seconds, 2),
                "events_per_s": round(args.events / seconds),
                "mb_per_s": round(args.events * wire_bytes / seconds / 2**20, 1),
                "delivered": publisher.stats.delivered,
            }
            print("produce (validate + send):", results["produce_validated"])

            events = [ClickEvent.model_validate(r) for r in raws]
            publisher = EventPublisher(bootstrap, topic=topic, dlq_topic=f"{topic}.dlq")
            started = time.perf_counter()
            for event in events:
                publisher.publish_event(event)
            publisher.flush()
            seconds = time.perf_counter() - started
            results["produce_prevalidated"] = {
                "events": args.events,
                "seconds": round(seconds, 2),
                "events_per_s": round(args.events / seconds),
                "mb_per_s": round(args.events * wire_bytes / seconds / 2**20, 1),
                "delivered": publisher.stats.delivered,
            }
            print("produce (pre-validated):", results["produce_prevalidated"])
            del events

            total = 2 * args.events
            consumer = EventConsumer(bootstrap, f"bench-{uuid.uuid4().hex[:6]}", topic=topic)
            started = time.perf_counter()
            count = sum(1 for _ in consumer.iter_events(idle_timeout_s=5.0))
            seconds = time.perf_counter() - started - 5.0  # the idle wait that ends the loop
            consumer.close()
            results["consume_validated"] = {
                "events": count,
                "expected": total,
                "seconds": round(seconds, 2),
                "events_per_s": round(count / seconds),
                "mb_per_s": round(count * wire_bytes / seconds / 2**20, 1),
            }
            print("consume (decode + validate):", results["consume_validated"])
            results.update(load.stop().summary())
            results["broker_rss_mb"] = round(supervisor.status()[0].rss_mb or 0)
        finally:
            supervisor.down()

    payload = {
        "benchmark": "kafka_produce_consume",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "avg_event_bytes": round(wire_bytes),
        "peak_rss_mb_client": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Fault: the broker is killed (``kill -9``) in the middle of a replay, then restarted.

The session's real broker (``kafka_service``) and Spark session (``spark``). A paced replay runs
through the validating publisher in a thread; the broker's whole process group is killed a moment
in and started again by its supervisor. Then every accepted event must be on the topic exactly
once by ``event_id`` (the idempotent producer's retries add no copy), every rejected one on the
DLQ once, the publisher's counts must add up, and bronze (the raw records) and silver read by Spark
must hold each accepted event once, silver's sessions equal to a recount.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

from lambdarec.batch.bronze import ingest_bronze
from lambdarec.batch.lake import Lake
from lambdarec.batch.silver import build_silver
from lambdarec.events.admin import ensure_topics
from lambdarec.events.consumer import read_topic
from lambdarec.events.producer import EventPublisher, PublishStats
from lambdarec.features.session import fold_session
from lambdarec.replay import ReplaySpeed, replay_events
from lambdarec.runtime.supervisor import Supervisor

EVENTS = 2_400
BAD_EVERY = 60  # one invalid event in 60 goes to the DLQ with its reason
REPLAY_S = 8.0  # the replay's length at its pace; the broker dies 2 s in


def replay_input(seed: int = 3) -> list[dict[str, Any]]:
    """``EVENTS`` events in event-time order over the last two hours, some of them invalid."""
    import random

    rng = random.Random(seed)
    start_ms = int(time.time() * 1000) - 2 * 3_600_000
    events: list[dict[str, Any]] = []
    for i in range(EVENTS):
        event: dict[str, Any] = {
            "event_id": f"bk-{i}",
            "event_time": start_ms + i * 1000,
            "session_id": f"s-{i % 97}",
            "user_id": f"u-{i % 31}",
            "item_id": f"i-{rng.randint(0, 200)}",
            "event_type": rng.choice(("view", "view", "view", "cart", "purchase")),
        }
        if i % BAD_EVERY == 0:
            event["event_type"] = "click"  # not a known type: rejected
        events.append(event)
    return events


def test_broker_kill_mid_replay_loses_and_doubles_nothing(
    kafka_service: Supervisor, kafka_bootstrap: str, spark: Any, tmp_path: Path
) -> None:
    topic = f"clicks-bk-{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}.dlq"
    ensure_topics(kafka_bootstrap, {topic: 3, dlq: 1})
    events = replay_input()
    span_s = (events[-1]["event_time"] - events[0]["event_time"]) / 1000
    outcome: dict[str, Any] = {}

    def replay() -> None:
        try:
            with EventPublisher(kafka_bootstrap, topic=topic, dlq_topic=dlq) as publisher:
                outcome["stats"] = replay_events(events, publisher, speed=ReplaySpeed(span_s / REPLAY_S))
        except BaseException as err:  # noqa: BLE001 - reported by the test thread below
            outcome["error"] = err

    load = os.getloadavg()[0]
    thread = threading.Thread(target=replay, name="replay")
    started = time.monotonic()
    thread.start()
    time.sleep(2.0)
    (status,) = kafka_service.status()
    assert status.pid is not None and thread.is_alive(), "the replay must still be running when the broker dies"
    os.killpg(status.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(status.pid)], timeout=10)
    killed_at = time.monotonic() - started
    kafka_service.up()  # same state folder, same ports: the broker recovers its log
    downtime_s = time.monotonic() - started - killed_at
    assert kafka_service.endpoint("kafka") == kafka_bootstrap
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    replay_s = time.monotonic() - started
    stats: PublishStats = outcome["stats"]

    valid = [e for i, e in enumerate(events) if i % BAD_EVERY != 0]
    # The publisher's ledger: every offered event went to one place, and the broker acknowledged it
    # or the failure is counted (nothing silently lost).
    assert stats.offered == len(events)
    assert (stats.accepted, stats.rejected) == (len(valid), len(events) - len(valid))
    assert stats.delivered + stats.dead_lettered + stats.failed == stats.offered, stats.as_dict()
    assert stats.failed == 0, stats.failures  # the client's retries outlast a broker restart

    # Downstream: exactly once by event_id on the topic, and every dead letter once.
    on_topic = Counter(row["event_id"] for row in read_topic(kafka_bootstrap, topic, timeout_s=60))
    assert on_topic == Counter(e["event_id"] for e in valid), "lost or doubled on the topic"
    letters = read_topic(kafka_bootstrap, dlq, timeout_s=30)
    assert len(letters) == stats.rejected

    # Bronze (raw records) and silver from Spark: each accepted event once; silver's sessions equal a
    # recount of what was accepted.
    lake = Lake(tmp_path / "lake")
    bronze = ingest_bronze(spark, lake, kafka_bootstrap, topic)
    assert bronze.records == len(valid)
    dates = sorted({datetime.fromtimestamp(e["event_time"] / 1000, UTC).date().isoformat() for e in valid})
    build_silver(spark, lake, dates)
    import orjson

    raw_ids = Counter(orjson.loads(v)["event_id"] for v in pq.read_table(lake.bronze)["value"].to_pylist())
    assert raw_ids == on_topic
    silver = pq.read_table(lake.silver).to_pylist()
    assert Counter(row["event_id"] for row in silver) == Counter(e["event_id"] for e in valid)
    assert recount(silver) == recount(valid)
    print(
        f"\nbroker kill -9 at {killed_at:.1f}s into a {REPLAY_S:.0f}s replay: down {downtime_s:.1f}s, replay done "
        f"in {replay_s:.1f}s; offered {stats.offered}, accepted {stats.accepted} (delivered {stats.delivered}), "
        f"rejected {stats.rejected} (dead-lettered {stats.dead_lettered}), failed {stats.failed}; on the topic "
        f"{sum(on_topic.values())} records, {len(on_topic)} event ids; load {load:.1f}"
    )


def recount(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The session fold over each session's events (the speed layer's and the batch layer's rule)."""
    by_session: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_session.setdefault(event["session_id"], []).append(event)
    return {sid: fold_session(evs) for sid, evs in by_session.items()}

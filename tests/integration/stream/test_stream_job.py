"""The real PyFlink job (mini-cluster, parallelism 1) against the real broker.

One job runs for the whole module (PyFlink takes ~20-40 s to start on 2 cores); the tests
run in order: parity with the batch fold and bad bytes → DLQ; then kill -9 and restart from
the checkpoint with a recount; then the pusher into a real Feast online store (SQLite).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from stream_helpers import build_session_repo, job_args, online_session_features, wait_for

from lambdarec import names
from lambdarec.events.consumer import read_topic
from lambdarec.features.session import fold_session
from lambdarec.runtime.supervisor import Supervisor, tail
from lambdarec.settings import Settings
from lambdarec.stream.pusher import newest_per_session
from lambdarec.stream.service import PusherService, StreamJobService, latest_checkpoint

EVENT_TYPES = ("view", "view", "view", "cart", "purchase")


def make_events(prefix: str, sessions: int, per_session: int, base_ms: int, seed: int) -> list[dict[str, Any]]:
    """Events for ``sessions`` sessions, shuffled (out of order), with some duplicates."""
    rng = random.Random(seed)
    events = []
    for s in range(sessions):
        for i in range(per_session):
            events.append(
                {
                    "event_id": f"{prefix}-{s}-{i}",
                    "event_time": base_ms + s * 1000 + i * 700 + rng.randint(0, 300),
                    "session_id": f"s{s}",
                    "user_id": f"u{s % 5}",
                    "item_id": f"i{rng.randint(0, 40)}",
                    "event_type": rng.choice(EVENT_TYPES),
                    "category": f"c{rng.randint(0, 6)}",
                }
            )
    rng.shuffle(events)
    events += rng.sample(events, k=len(events) // 20)  # redelivered duplicates
    return events


def recount(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The batch recount: fold_session over each session's events."""
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_session[event["session_id"]].append(event)
    return {sid: fold_session(evs) for sid, evs in by_session.items()}


def streamed(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """The newest snapshot per session on the features topic."""
    rows = read_topic(bootstrap, topic, timeout_s=10)
    return {sid: dict(row) for sid, row in newest_per_session(rows).items()}


def features_only(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (names.SESSION_ID, *names.SESSION_FEATURES)}


def matches(bootstrap: str, topic: str, expected: dict[str, dict[str, Any]]) -> bool:
    got = streamed(bootstrap, topic)
    return all(sid in got and features_only(got[sid]) == row for sid, row in expected.items())


@pytest.fixture(scope="module")
def job(
    stream_settings: Settings, kafka_bootstrap: str, stream_topics: dict[str, str]
) -> Iterator[tuple[Supervisor, StreamJobService]]:
    """The speed-layer job from the source tree, started once for the module."""
    service = StreamJobService(stream_settings, kafka_bootstrap, job_args=job_args(stream_topics))
    supervisor = Supervisor(stream_settings, [service])
    supervisor.up()
    yield supervisor, service
    supervisor.down()


@pytest.fixture(scope="module")
def published() -> list[dict[str, Any]]:
    """Every valid event this module published, for the recounts."""
    return []


def test_session_features_equal_the_batch_fold_and_bad_bytes_go_to_the_dlq(
    job: tuple[Supervisor, StreamJobService],
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
    produce: Callable[[str, list[Any]], None],
    published: list[dict[str, Any]],
) -> None:
    supervisor, service = job
    base = int(time.time() * 1000) - 3_600_000
    events = make_events("a", sessions=25, per_session=12, base_ms=base, seed=1)
    garbage = [b"\xff\xfe\x00 not utf-8", b"not json at all", b'{"event_id": "x"}', b"[1, 2]", b""]
    produce(stream_topics["source"], [*events[:150], *garbage, *events[150:]])
    published.extend(events)

    expected = recount(published)
    wait_for(lambda: matches(kafka_bootstrap, stream_topics["session"], expected), 120, "the batch-fold parity")

    letters = read_topic(kafka_bootstrap, stream_topics["dlq"], timeout_s=10)
    assert len(letters) == len(garbage)
    assert {letter["source"] for letter in letters} == {"flink"}
    assert all(letter["reason"] for letter in letters)
    assert supervisor.status()[0].healthy, "the job must keep running after bad bytes"
    # An event a minute behind everything seen (so behind the watermark, whenever it was last
    # emitted) is folded all the same, and counted as late.
    late_event = {**events[0], "event_id": "a-late", "event_time": base - 60_000, "item_id": "i-late"}
    produce(stream_topics["source"], [late_event])
    published.append(late_event)
    expected = recount(published)
    wait_for(lambda: matches(kafka_bootstrap, stream_topics["session"], expected), 60, "the late event folded in")
    rows = read_topic(kafka_bootstrap, stream_topics["session"], timeout_s=10)
    newest = newest_per_session(rows)[late_event["session_id"]]
    assert newest["late"] and newest["late_events"] >= 1
    assert all(row["source_event_ms"] <= row["emitted_ms"] for row in rows)
    # The user and item outputs run too.
    users = read_topic(kafka_bootstrap, stream_topics["user"], timeout_s=10)
    assert {row[names.USER_ID] for row in users} == {f"u{i}" for i in range(5)}
    assert all(len(row[names.USER_RECENT_ITEMS]) <= 20 for row in users)


def test_kill_and_restart_from_checkpoint_recounts_exactly(
    job: tuple[Supervisor, StreamJobService],
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
    produce: Callable[[str, list[Any]], None],
    published: list[dict[str, Any]],
) -> None:
    supervisor, service = job
    base = int(time.time() * 1000) - 1_800_000
    before_kill = make_events("b", sessions=30, per_session=10, base_ms=base, seed=2)
    produce(stream_topics["source"], before_kill)
    published.extend(before_kill)
    wait_for(lambda: matches(kafka_bootstrap, stream_topics["session"], recount(published)), 120, "rows before kill")
    time.sleep(3)  # let a checkpoint complete after the rows are out
    assert latest_checkpoint(service.checkpoint_dir) is not None

    record = supervisor.status()[0]
    assert record.pid is not None
    os.killpg(record.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(record.pid)], timeout=10) if psutil.pid_exists(record.pid) else None
    rows_before_restart = len(read_topic(kafka_bootstrap, stream_topics["session"], timeout_s=10))

    # Events keep arriving while the job is down: some new sessions, some old ones continued.
    while_down = make_events("c", sessions=40, per_session=5, base_ms=base + 60_000, seed=3)
    produce(stream_topics["source"], while_down)
    published.extend(while_down)

    killed_at = time.monotonic()
    supervisor.up()  # restores from the newest retained checkpoint
    expected = recount(published)
    wait_for(lambda: matches(kafka_bootstrap, stream_topics["session"], expected), 180, "the recount after restart")
    caught_up_s = time.monotonic() - killed_at

    assert "restoring from " in tail(service.log_path, 400) and "chk-" in tail(service.log_path, 400)
    got = streamed(kafka_bootstrap, stream_topics["session"])
    for sid, row in expected.items():
        assert features_only(got[sid]) == row, f"session {sid} differs from the batch recount"
    # Restored, not rebuilt: far fewer rows than a replay of the whole topic would emit.
    emitted_after = len(read_topic(kafka_bootstrap, stream_topics["session"], timeout_s=10)) - rows_before_restart
    assert emitted_after < len({e["event_id"] for e in published}) / 2
    print(f"restart from checkpoint caught up in {caught_up_s:.1f}s")


def test_pusher_makes_the_features_visible_in_the_feast_online_store(
    job: tuple[Supervisor, StreamJobService],
    stream_settings: Settings,
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
    produce: Callable[[str, list[Any]], None],
    published: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    store = build_session_repo(tmp_path / "feast")
    pusher = PusherService(
        stream_settings, kafka_bootstrap, tmp_path / "feast", pusher_args=["--topic", stream_topics["session"]]
    )
    supervisor = Supervisor(stream_settings, [pusher])
    supervisor.up()
    try:
        live = make_events("d", sessions=10, per_session=4, base_ms=int(time.time() * 1000), seed=4)
        produce(stream_topics["source"], live)
        published.extend(live)
        expected = recount(published)

        def visible() -> bool:
            online = online_session_features(store, sorted(expected))
            return all(
                online[sid][f] == pytest.approx(row[f]) if f == names.SESSION_DWELL_S else online[sid][f] == row[f]
                for sid, row in expected.items()
                for f in names.SESSION_FEATURES
            )

        wait_for(visible, 90, "the session features in the online store")
        metrics = pusher.metrics_path
        wait_for(lambda: metrics.exists() and '"lag_p99_ms": null' not in metrics.read_text(), 10, "freshness")
        assert "lambdarec_stream_freshness_ms" in metrics.with_suffix(".prom").read_text()
    finally:
        supervisor.down()

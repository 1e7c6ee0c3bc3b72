"""The real PyFlink job (mini-cluster, parallelism 1) against the real broker.

One job runs for the whole module (PyFlink takes ~20-40 s to start on 2 cores); the tests
run in order: parity with the batch fold and bad bytes → DLQ; then kill -9 and restart from
the checkpoint with a recount; then the pusher into the project's Feast repo (``features/``, SQLite online
store) for the session, user and item views.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from stream_helpers import job_args, online_session_features, wait_for

from lambdarec import names
from lambdarec.events.consumer import read_topic
from lambdarec.features.session import fold_session
from lambdarec.featurestore.store import apply as apply_feature_repo
from lambdarec.featurestore.store import open_store
from lambdarec.runtime.exposure import exposed_sockets, listening_sockets
from lambdarec.runtime.service import ServiceRecord
from lambdarec.runtime.supervisor import Supervisor, tail
from lambdarec.settings import Settings
from lambdarec.stream.pusher import FEEDS, Feed, newest_per_key, newest_per_session
from lambdarec.stream.service import PusherService, StreamJobService, job_overview, latest_checkpoint

EVENT_TYPES = ("view", "view", "view", "cart", "purchase")
BEAM_GRPC_SERVERS = 6  # the Python operator's Beam servers in the JVM, which listen on every interface


def make_events(
    prefix: str, sessions: int, per_session: int, base_ms: int, seed: int, idle_every: int = 0
) -> list[dict[str, Any]]:
    """Events for ``sessions`` sessions, shuffled (out of order), with some duplicates.

    With ``idle_every``, every such session sits idle 45, 60 or 75 minutes halfway through: it
    stays one session (the key is the shop's session id, idle time splits nothing).
    """
    rng = random.Random(seed)
    events = []
    for s in range(sessions):
        idle_ms = (45 + 15 * (s // idle_every % 3)) * 60_000 if idle_every and s % idle_every == 0 else 0
        for i in range(per_session):
            events.append(
                {
                    "event_id": f"{prefix}-{s}-{i}",
                    "event_time": base_ms + s * 1000 + i * 700 + rng.randint(0, 300) + idle_ms * (2 * i >= per_session),
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
    # Three hours back, so that sessions resuming after their idle gap still lie in the past.
    base = int(time.time() * 1000) - 3 * 3_600_000
    events = make_events("a", sessions=25, per_session=12, base_ms=base, seed=1, idle_every=4)
    assert len({e["session_id"] for e in events if e["event_time"] > base + 30 * 60_000}) == 7  # s0, s4, .. s24 idle
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


def test_the_job_listens_on_loopback_only(job: tuple[Supervisor, StreamJobService]) -> None:
    """The mini-cluster's REST API, its RPC and blob servers and the Python workers stay on this machine."""
    _, service = job
    record = ServiceRecord.load(service.record_path)
    assert record is not None
    found = listening_sockets(record.pid)
    assert any(s.port == record.ports["rest_port"] for s in found), found  # the check sees the REST port
    exposed = exposed_sockets(record.pid)
    # The known exception: Beam's gRPC servers in the Flink JVM for the Python UDF operator (control,
    # data, state, logging, artifact retrieval, provisioning) bind every interface, as Beam's
    # ServerFactory.createServer builds them with NettyServerBuilder.forPort(port), dropping the
    # loopback address it was given; no Flink setting reaches them. Nothing else may be exposed.
    assert all(s.process == "java" and s.port != record.ports["rest_port"] for s in exposed), exposed
    assert len(exposed) <= BEAM_GRPC_SERVERS, f"the Flink job listens beyond loopback: {exposed}"


def test_the_running_job_checkpoints_exactly_once(job: tuple[Supervisor, StreamJobService]) -> None:
    """What Flink itself reports for the running job (a misspelt option would be silently ignored)."""
    _, service = job
    record = ServiceRecord.load(service.record_path)
    assert record is not None
    rest = f"http://127.0.0.1:{record.ports['rest_port']}"
    (running,) = [j for j in job_overview(record.ports["rest_port"]) if j["state"] == "RUNNING"]
    config = rest_json(f"{rest}/jobs/{running['jid']}/checkpoints/config")
    assert config["mode"] == "exactly_once"
    assert config["interval"] == 1000  # --checkpoint-ms 1000 (job_args)
    assert config["externalization"]["enabled"] and not config["externalization"]["delete_on_cancellation"]
    wait_for(
        lambda: rest_json(f"{rest}/jobs/{running['jid']}/checkpoints")["counts"]["completed"] > 0,
        30,
        "a completed checkpoint",
    )


def rest_json(url: str) -> dict[str, Any]:
    """GET a Flink REST resource."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
        return dict(json.load(response))


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
) -> None:
    # The project's Feast repo (features/, environments/local/feature_store.yaml), applied to this
    # module's state folder: the pusher writes the session, user and item views the services read.
    apply_feature_repo(stream_settings)
    store = open_store(stream_settings)
    topics = ["--topic", stream_topics["session"], "--user-topic", stream_topics["user"]]
    topics += ["--item-topic", stream_topics["item"], "--group-id", f"pusher-{stream_topics['session']}"]
    pusher = PusherService(stream_settings, kafka_bootstrap, pusher_args=topics)
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
        # The user and item views hold the newest row of each key on their topics.
        users = newest_rows(kafka_bootstrap, stream_topics["user"], FEEDS["user"])
        assert set(users) == {event["user_id"] for event in published}
        wait_for(lambda: online_equals_topic(store, FEEDS["user"], users), 30, "the user features online")
        wait_for(
            lambda: online_equals_topic(
                store, FEEDS["item"], newest_rows(kafka_bootstrap, stream_topics["item"], FEEDS["item"])
            ),
            30,
            "the item features online",
        )
        metrics = pusher.metrics_path
        wait_for(lambda: metrics.exists() and '"lag_p99_ms": null' not in metrics.read_text(), 10, "freshness")
        assert "lambdarec_stream_freshness_ms" in metrics.with_suffix(".prom").read_text()
    finally:
        supervisor.down()


def online_equals_recount(store: Any, expected: dict[str, dict[str, Any]]) -> bool:
    """True when the online store holds every session's recounted features."""
    if not expected:
        return True  # nothing published yet (the test run on its own)
    online = online_session_features(store, sorted(expected))
    return all(
        online[sid][f] == pytest.approx(row[f]) if f == names.SESSION_DWELL_S else online[sid][f] == row[f]
        for sid, row in expected.items()
        for f in names.SESSION_FEATURES
    )


def test_pusher_kill_9_under_load_converges_to_the_recount(
    job: tuple[Supervisor, StreamJobService],
    stream_settings: Settings,
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
    produce: Callable[[str, list[Any]], None],
    published: list[dict[str, Any]],
) -> None:
    """Fault: the pusher is killed (``kill -9``, whole process group) while rows stream in, more arrive
    while it is down, and after a restart the online store converges to the batch recount."""
    apply_feature_repo(stream_settings)
    store = open_store(stream_settings)
    args = ["--topic", stream_topics["session"], "--user-topic", stream_topics["user"]]
    args += ["--item-topic", stream_topics["item"], "--group-id", f"pusher-kill-{stream_topics['session']}"]
    pusher = PusherService(stream_settings, kafka_bootstrap, pusher_args=args)
    supervisor = Supervisor(stream_settings, [pusher])
    supervisor.up()
    try:
        base = int(time.time() * 1000) - 600_000
        wait_for(lambda: online_equals_recount(store, recount(published)), 90, "the pusher caught up before the kill")
        load = os.getloadavg()[0]
        under_load = make_events("e", sessions=30, per_session=8, base_ms=base, seed=5)
        produce(stream_topics["source"], under_load)
        published.extend(under_load)
        time.sleep(1.0)  # the job emits the new rows and the pusher writes them: kill it in the middle
        record = supervisor.status()[0]
        assert record.pid is not None and record.healthy
        os.killpg(record.pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(record.pid)], timeout=10)
        killed_at = time.monotonic()
        while_down = make_events("f", sessions=30, per_session=6, base_ms=base + 30_000, seed=6)
        produce(stream_topics["source"], while_down)
        published.extend(while_down)
        expected = recount(published)
        assert not online_equals_recount(store, expected), (
            "the store cannot hold rows produced while the pusher was down"
        )
        supervisor.up()
        restarted_s = time.monotonic() - killed_at
        wait_for(lambda: online_equals_recount(store, expected), 120, "the recount after the restart")
        converged_s = time.monotonic() - killed_at
    finally:
        supervisor.down()
    print(
        f"\npusher kill -9 1 s after {len(under_load)} events were produced, {len(while_down)} more while down: "
        f"up again {restarted_s:.1f}s after the kill, online store equal to the recount of {len(expected)} "
        f"sessions {converged_s:.1f}s after the kill; load {load:.1f}"
    )


def test_broker_kill_9_mid_replay_the_job_still_equals_the_recount(
    job: tuple[Supervisor, StreamJobService],
    kafka_service: Supervisor,
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
    published: list[dict[str, Any]],
) -> None:
    """Fault: the broker dies (``kill -9``) in the middle of a paced replay through the validating
    publisher and is restarted; the publisher's counts add up and the running job's session rows
    equal the recount of everything accepted (the Flink side of the broker fault; bronze and silver
    are in tests/integration/batch/test_fault_broker_kill.py)."""
    import threading

    from lambdarec.events.producer import EventPublisher
    from lambdarec.replay import ReplaySpeed, replay_events

    base = int(time.time() * 1000) - 900_000
    events = sorted(make_events("g", sessions=40, per_session=8, base_ms=base, seed=7), key=lambda e: e["event_time"])
    span_s = (events[-1]["event_time"] - events[0]["event_time"]) / 1000
    outcome: dict[str, Any] = {}

    def replay() -> None:
        with EventPublisher(kafka_bootstrap, topic=stream_topics["source"], dlq_topic=stream_topics["dlq"]) as pub:
            outcome["stats"] = replay_events(events, pub, speed=ReplaySpeed(span_s / 6.0))

    load = os.getloadavg()[0]
    thread = threading.Thread(target=replay, name="replay")
    thread.start()
    time.sleep(2.0)
    (broker,) = kafka_service.status()
    assert broker.pid is not None and thread.is_alive()
    os.killpg(broker.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(broker.pid)], timeout=10)
    killed_at = time.monotonic()
    kafka_service.up()
    downtime_s = time.monotonic() - killed_at
    thread.join(timeout=300)
    assert "stats" in outcome, "the replay did not finish"
    stats = outcome["stats"]
    assert stats.offered == stats.accepted == stats.delivered == len(events) and stats.failed == 0, stats.as_dict()
    published.extend(events)
    expected = recount(published)
    converged_s = wait_for(
        lambda: matches(kafka_bootstrap, stream_topics["session"], expected),
        240,
        "the recount after the broker restart",
    )
    assert job[0].status()[0].healthy
    print(
        f"\nbroker kill -9 under the running job: down {downtime_s:.1f}s; {stats.offered} offered, "
        f"{stats.delivered} delivered, {stats.failed} failed; the job's {len(expected)} sessions equal the "
        f"recount {converged_s:.1f}s after the replay ended; load {load:.1f}"
    )


def newest_rows(bootstrap: str, topic: str, feed: Feed) -> dict[str, Any]:
    """The newest row of each key on a feature topic (tombstones left out)."""
    rows = [row for row in read_topic(bootstrap, topic, timeout_s=10) if feed.key in row]
    return dict(newest_per_key(feed, rows))


def online_equals_topic(store: Any, feed: Feed, newest: dict[str, Any]) -> bool:
    """True when the online store holds exactly the newest row of each key (and there is one)."""
    if not newest:
        return False
    refs = [f"{feed.feature_view}:{f}" for f in feed.features]
    online = store.get_online_features(features=refs, entity_rows=[{feed.key: key} for key in newest]).to_dict()
    return all(online[f][i] == row[f] for i, row in enumerate(newest.values()) for f in feed.features)


def test_the_job_reaches_the_contracts_verdict_and_reason_on_the_shared_corpus(
    job: tuple[Supervisor, StreamJobService],
    kafka_bootstrap: str,
    stream_topics: dict[str, str],
) -> None:
    """Every corpus record (tests/data/events) through PARSE_CLICK and the dead-letter UDF of the running job.

    Last in the module: its sessions and dead letters stay out of the recounts above. A rejected
    record's dead letter carries the contract's field, code and reason; an accepted one is folded
    into its session like the batch fold of the contract's decoded event.
    """
    from confluent_kafka import Producer

    from event_corpus import load_corpus
    from lambdarec.events.contract import DEFAULT_BOUNDS, decode_record

    supervisor, _ = job
    cases = load_corpus()
    where: dict[tuple[int, int], str] = {}
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "log_level": 0})
    for case in cases:
        # The broker's record time (the producer's clock, now) is the job's clock for in_future.
        producer.produce(
            stream_topics["source"],
            case.raw,
            on_delivery=lambda err, msg, name=case.name: (
                where.update({(msg.partition(), msg.offset()): name}) if err is None else None
            ),
        )
    assert producer.flush(30) == 0 and len(where) == len(cases)
    by_name = {case.name: case for case in cases}
    rejected = {name for name, case in by_name.items() if not case.accept}

    def letters() -> dict[str, dict[str, Any]]:
        found = {}
        for letter in read_topic(kafka_bootstrap, stream_topics["dlq"], timeout_s=10):
            origin = letter.get("origin", {})
            name = where.get((origin.get("partition"), origin.get("offset")))
            if name is not None:
                found[name] = letter
        return found

    wait_for(lambda: set(letters()) == rejected, 90, "a dead letter for every rejected corpus record")
    for name, letter in letters().items():
        case = by_name[name]
        assert (letter["field"], letter["code"]) == (case.field, case.code), name
        assert (f"{letter['field']}: {letter['reason']}" if letter["field"] else letter["reason"]) == case.reason(
            DEFAULT_BOUNDS
        ), name
    accepted = [decode_record(case.raw, DEFAULT_BOUNDS) for case in cases if case.accept]
    assert all(isinstance(event, dict) for event in accepted)
    expected = recount(accepted)  # type: ignore[arg-type]
    wait_for(lambda: matches(kafka_bootstrap, stream_topics["session"], expected), 90, "the accepted corpus records")
    assert supervisor.status()[0].healthy

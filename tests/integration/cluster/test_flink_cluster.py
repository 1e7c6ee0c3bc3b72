"""The cluster profile's Flink: a session cluster (JobManager + 2 TaskManagers) running the packaged speed layer.

The JobManager and TaskManagers (PyFlink's ``jobmanager.sh`` / ``taskmanager.sh``, separate JVMs under the
supervisor) start once for this module, as does the speed layer submitted to them by ``flink run -d`` from
the packaged archive at parallelism 2 (:class:`~lambdarec.stream.service.SessionStreamJobService`). Kafka
is the session's single broker (the replicated brokers have their own test). The tests run in order:

1. the cluster: three processes, both TaskManagers registered, every socket on loopback;
2. events published through :class:`~lambdarec.events.producer.EventPublisher` give session features
   equal to a recount (``fold_session``) and, row for row, to the single-process path (the mini-cluster
   job reading the same topic);
3. ``kill -9`` of a TaskManager while events flow: the job restarts from its checkpoint on the remaining
   TaskManager (2 slots hold the whole job) without the supervisor's help, and the session counts still
   equal a recount; the supervisor then brings the lost TaskManager back;
4. a ``kill -9`` of the local keeper process leaves the job running; its replacement adopts it;
5. ``stream stop`` cancels the job (checkpoints retained) and the next start restores from the newest one
   with ``flink run -s``; events published while it was down are counted exactly.

Correctness only: no assertion is about speed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from lambdarec import names
from lambdarec.events.consumer import read_topic
from lambdarec.events.producer import EventPublisher
from lambdarec.features.session import fold_session
from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.exposure import exposed_sockets
from lambdarec.runtime.flink_cluster import FLINK_SERVICE, flink_cluster_services, rest_json, taskmanager_name
from lambdarec.runtime.supervisor import Supervisor, tail
from lambdarec.settings import Settings, load_settings
from lambdarec.stream.pusher import newest_per_session
from lambdarec.stream.service import SessionStreamJobService, StreamJobService, latest_checkpoint, stream_job_service

pytestmark = pytest.mark.integration

EVENT_TYPES = ("view", "view", "view", "cart", "purchase")


def make_events(prefix: str, sessions: int, per_session: int, base_ms: int, seed: int) -> list[dict[str, Any]]:
    """Events of ``sessions`` sessions, shuffled (out of order), with 5% redelivered duplicates."""
    rng = random.Random(seed)
    events = [
        {
            "event_id": f"{prefix}-{s}-{i}",
            "event_time": base_ms + s * 1000 + i * 700 + rng.randint(0, 300),
            "session_id": f"{prefix}s{s}",
            "user_id": f"u{s % 5}",
            "item_id": f"i{rng.randint(0, 40)}",
            "event_type": rng.choice(EVENT_TYPES),
            "category": f"c{rng.randint(0, 6)}",
        }
        for s in range(sessions)
        for i in range(per_session)
    ]
    rng.shuffle(events)
    return events + rng.sample(events, k=len(events) // 20)


def recount(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The batch recount: ``fold_session`` over each session's events."""
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_session[event["session_id"]].append(event)
    return {sid: fold_session(evs) for sid, evs in by_session.items()}


def features_only(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (names.SESSION_ID, *names.SESSION_FEATURES)}


def streamed(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """The newest snapshot per session on a features topic, features only."""
    rows = read_topic(bootstrap, topic, timeout_s=10)
    return {sid: features_only(dict(row)) for sid, row in newest_per_session(rows).items()}


def matches(bootstrap: str, topic: str, expected: dict[str, dict[str, Any]]) -> bool:
    got = streamed(bootstrap, topic)
    return all(got.get(sid) == row for sid, row in expected.items())


def wait_for(check: Any, timeout_s: float, what: str, interval_s: float = 2.0) -> None:
    """Poll ``check`` until it is true, or fail naming ``what`` (a bound on a hang, not a speed goal)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass  # a REST call while the cluster recovers
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def publish(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Through the project's publisher (validation, keys, acks); every event must be accepted."""
    with EventPublisher(bootstrap, topic=topic) as publisher:
        publisher.publish_many(events)
        stats = publisher.flush(60)
    assert stats.accepted == len(events) and stats.rejected == 0, stats


def job_args(topics: dict[str, str], session_topic: str, group: str) -> list[str]:
    return [
        "--source-topic", topics["source"], "--dlq-topic", topics["dlq"], "--session-topic", session_topic,
        "--group-id", group, "--checkpoint-ms", "1000", "--flush-ms", "20", "--sessions-only",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Supervisor]]:
    """The JobManager and two TaskManagers of the cluster profile; stopped after the module."""
    settings = load_settings(
        "local", state_dir=tmp_path_factory.mktemp("flink-cluster"), **profile_overrides("cluster")
    )
    supervisor = Supervisor(settings, flink_cluster_services(settings))
    try:
        supervisor.up()
        yield settings, supervisor
    finally:
        supervisor.down()


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh topics for this module: several partitions, so parallelism 2 has work on both subtasks."""
    from lambdarec.events.admin import ensure_topics

    tag = uuid.uuid4().hex[:8]
    out = {
        "source": f"clicks-fc-{tag}",
        "dlq": f"clicks-dlq-fc-{tag}",
        "session": f"features-session-fc-{tag}",
        "single": f"features-session-single-{tag}",
    }
    ensure_topics(kafka_bootstrap, {out["source"]: 4, out["dlq"]: 1, out["session"]: 2, out["single"]: 2})
    return out


@pytest.fixture(scope="module")
def cluster_job(
    flink_cluster: tuple[Settings, Supervisor], kafka_bootstrap: str, topics: dict[str, str]
) -> Iterator[tuple[Supervisor, SessionStreamJobService]]:
    """The speed layer submitted to the session cluster (what `lambdarec stream start` does in the profile)."""
    settings, _ = flink_cluster
    args = job_args(topics, topics["session"], f"speed-layer-{topics['source']}")
    service = stream_job_service(settings, kafka_bootstrap, job_args=args)
    assert isinstance(service, SessionStreamJobService)
    supervisor = Supervisor(settings, [service])
    try:
        supervisor.up()
        yield supervisor, service
    finally:
        supervisor.down()


@pytest.fixture(scope="module")
def published() -> list[dict[str, Any]]:
    """Every event this module published, for the recounts."""
    return []


def rest(settings: Settings) -> str:
    endpoint = Supervisor(settings, flink_cluster_services(settings)).endpoint(FLINK_SERVICE)
    assert endpoint is not None
    return endpoint


def test_jobmanager_and_two_taskmanagers_are_separate_processes_on_loopback(
    flink_cluster: tuple[Settings, Supervisor],
) -> None:
    settings, supervisor = flink_cluster
    statuses = supervisor.status()
    assert [s.name for s in statuses] == [FLINK_SERVICE, taskmanager_name(1), taskmanager_name(2)]
    assert all(s.healthy for s in statuses) and len({s.pid for s in statuses}) == 3
    overview = rest_json(rest(settings), "/overview")
    assert overview["taskmanagers"] == 2 and overview["slots-total"] == 4
    registered = {t["id"] for t in rest_json(rest(settings), "/taskmanagers")["taskmanagers"]}
    assert registered == {taskmanager_name(1), taskmanager_name(2)}
    for status in statuses:
        assert status.pid is not None and exposed_sockets(status.pid) == [], status.name


def test_cluster_sessions_equal_the_recount_and_the_single_process_path(
    cluster_job: tuple[Supervisor, SessionStreamJobService],
    flink_cluster: tuple[Settings, Supervisor],
    kafka_bootstrap: str,
    topics: dict[str, str],
    published: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings, _ = flink_cluster
    _, service = cluster_job
    jid = service.current_job_id()
    assert jid is not None
    vertices = rest_json(rest(settings), f"/jobs/{jid}")["vertices"]
    assert vertices and all(v["parallelism"] == 2 for v in vertices)
    assert "Job has been submitted with JobID" in tail(service.log_path, 400)

    base = int(time.time() * 1000) - 3_600_000
    events = make_events("a", sessions=40, per_session=10, base_ms=base, seed=11)
    publish(kafka_bootstrap, topics["source"], events)
    published.extend(events)
    expected = recount(published)
    wait_for(lambda: matches(kafka_bootstrap, topics["session"], expected), 300, "the cluster job's recount parity")

    # The single-process path: the mini-cluster job (parallelism 1) over the same topic, its own output.
    single_settings = load_settings("local", state_dir=tmp_path_factory.mktemp("flink-single"))
    assert not single_settings.flink_cluster.session
    single = stream_job_service(
        single_settings, kafka_bootstrap, job_args=job_args(topics, topics["single"], f"single-{topics['source']}")
    )
    assert isinstance(single, StreamJobService)
    single_supervisor = Supervisor(single_settings, [single])
    single_supervisor.up()
    try:
        wait_for(lambda: matches(kafka_bootstrap, topics["single"], expected), 300, "the single-process recount")
        on_cluster = streamed(kafka_bootstrap, topics["session"])
        on_one = streamed(kafka_bootstrap, topics["single"])
        assert on_cluster == on_one, "the cluster and the single-process path disagree on a session row"
        assert set(on_cluster) == set(expected)
    finally:
        single_supervisor.down()


def test_kill_9_of_a_taskmanager_restarts_the_job_from_its_checkpoint_on_the_other(
    cluster_job: tuple[Supervisor, SessionStreamJobService],
    flink_cluster: tuple[Settings, Supervisor],
    kafka_bootstrap: str,
    topics: dict[str, str],
    published: list[dict[str, Any]],
) -> None:
    settings, cluster = flink_cluster
    _, service = cluster_job
    address, jid = rest(settings), service.current_job_id()
    wait_for(lambda: rest_json(address, f"/jobs/{jid}/checkpoints")["counts"]["completed"] > 0, 120, "a checkpoint")
    restored_before = rest_json(address, f"/jobs/{jid}/checkpoints")["counts"]["restored"]

    # Events keep flowing while the TaskManager dies: batches of new and continued sessions.
    stop = threading.Event()
    base = int(time.time() * 1000) - 1_800_000

    def flow() -> None:
        batch = 0
        while not stop.is_set():
            events = make_events(f"k{batch}", sessions=10, per_session=5, base_ms=base + batch * 5000, seed=batch)
            publish(kafka_bootstrap, topics["source"], events)
            published.extend(events)
            batch += 1
            time.sleep(0.5)

    flowing = threading.Thread(target=flow, daemon=True)
    flowing.start()
    try:
        time.sleep(5)
        victim = next(s for s in cluster.status() if s.name == taskmanager_name(1))
        assert victim.pid is not None
        os.killpg(victim.pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(victim.pid)], timeout=10) if psutil.pid_exists(victim.pid) else None

        def recovered() -> bool:
            counts = rest_json(address, f"/jobs/{jid}/checkpoints")["counts"]
            job = rest_json(address, f"/jobs/{jid}")
            running = all(v["status"] == "RUNNING" for v in job["vertices"])
            return counts["restored"] > restored_before and job["state"] == "RUNNING" and running

        wait_for(recovered, 300, "the job restored from its checkpoint after the TaskManager loss")
        time.sleep(3)  # events keep arriving on the recovered job
    finally:
        stop.set()
        flowing.join(timeout=120)

    # It runs on the remaining capacity: every subtask on the surviving TaskManager, the same job.
    job = rest_json(address, f"/jobs/{jid}")
    hosts = {
        tm["taskmanager-id"]
        for v in job["vertices"]
        for tm in rest_json(address, f"/jobs/{jid}/vertices/{v['id']}/taskmanagers")["taskmanagers"]
    }
    assert hosts == {taskmanager_name(2)}, hosts
    latest = rest_json(address, f"/jobs/{jid}/checkpoints")["latest"]["restored"]
    assert latest is not None and "chk-" in latest["external_path"]

    expected = recount(published)
    wait_for(lambda: matches(kafka_bootstrap, topics["session"], expected), 300, "the recount after the TM loss")
    # The supervisor brings the lost TaskManager back: it registers again under its own id.
    cluster.up([taskmanager_name(1)])
    registered = {t["id"] for t in rest_json(address, "/taskmanagers")["taskmanagers"]}
    assert taskmanager_name(1) in registered


def test_a_killed_keeper_is_replaced_and_adopts_the_job_it_left_running(
    cluster_job: tuple[Supervisor, SessionStreamJobService], flink_cluster: tuple[Settings, Supervisor]
) -> None:
    """``flink run -d`` leaves the job to the cluster: losing the local keeper loses no job, nor doubles it."""
    settings, _ = flink_cluster
    supervisor, service = cluster_job
    address, jid = rest(settings), service.current_job_id()
    (status,) = supervisor.status()
    assert status.pid is not None
    os.killpg(status.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(status.pid)], timeout=10) if psutil.pid_exists(status.pid) else None
    assert rest_json(address, f"/jobs/{jid}")["state"] == "RUNNING"
    supervisor.up()
    assert service.current_job_id() == jid and f"adopting job {jid}" in tail(service.log_path, 50)
    active = [j for j in rest_json(address, "/jobs/overview")["jobs"] if j["state"] == "RUNNING"]
    assert [j["jid"] for j in active] == [jid]


def test_stop_cancels_keeping_checkpoints_and_start_restores_from_the_newest(
    cluster_job: tuple[Supervisor, SessionStreamJobService],
    flink_cluster: tuple[Settings, Supervisor],
    kafka_bootstrap: str,
    topics: dict[str, str],
    published: list[dict[str, Any]],
) -> None:
    settings, _ = flink_cluster
    supervisor, service = cluster_job
    address, old_jid = rest(settings), service.current_job_id()
    assert supervisor.down() == [names.STREAM_JOB_SERVICE]
    assert rest_json(address, f"/jobs/{old_jid}")["state"] == "CANCELED"
    retained = latest_checkpoint(service.checkpoint_dir)
    assert retained is not None and retained.parent.name == old_jid

    base = int(time.time() * 1000) - 900_000
    while_down = make_events("d", sessions=20, per_session=4, base_ms=base, seed=99)
    # Some continue sessions the job already holds: the restored state must carry them on.
    while_down += [{**e, "event_id": f"{e['event_id']}-more"} for e in published[:30]]
    publish(kafka_bootstrap, topics["source"], while_down)
    published.extend(while_down)

    supervisor.up()
    new_jid = service.current_job_id()
    assert new_jid is not None and new_jid != old_jid
    assert f"restoring from {retained}" in tail(service.log_path, 400)
    assert f"-s {retained}" in tail(service.log_path, 400)
    restored = rest_json(address, f"/jobs/{new_jid}/checkpoints")["latest"]["restored"]
    assert restored is not None and restored["external_path"].endswith(f"{old_jid}/{retained.name}")
    expected = recount(published)
    wait_for(lambda: matches(kafka_bootstrap, topics["session"], expected), 300, "the recount after the restore")

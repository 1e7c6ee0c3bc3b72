"""The cluster profile's Kafka: three KRaft brokers as separate processes, replicated topics, a broker lost.

The brokers are started once for this module (``lambdarec --profile cluster services up kafka`` does the
same) and stopped after it. The failover test publishes at a steady rate through the project's
``EventPublisher`` (``acks=all``, idempotent), ``kill -9``s the broker leading ``clicks`` partition 0,
keeps publishing, then reads ``clicks`` back: every acknowledged ``event_id`` exactly once. The longest
gap between acknowledgements (the failover pause) is printed as a figure, bounded only generously here:
timing belongs to ``bench/bench_cluster.py``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lambdarec.events.admin import ensure_topics
from lambdarec.events.consumer import EventConsumer
from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC, KAFKA_SERVICE
from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.runtime.failover import run_failover_drill
from lambdarec.runtime.kafka import CORE_TOPICS, KafkaService, broker_name, kafka_services
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration

FAILOVER_BOUND_S = 60.0
"""Generous on purpose (a loaded 2-core machine): the test fails if ingest stops, not if it is slow."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Supervisor]]:
    """Three brokers of the cluster profile under their own state folder; stopped after the module."""
    state_dir = tmp_path_factory.mktemp("kafka-cluster")
    settings = load_settings("local", state_dir=state_dir, **profile_overrides("cluster"))
    assert settings.kafka.brokers == 3 and settings.kafka.replication_factor == 3
    supervisor = Supervisor(settings, kafka_services(settings))
    try:
        supervisor.up()
        yield settings, supervisor
    finally:
        supervisor.down()


@pytest.fixture(scope="module")
def bootstrap(cluster: tuple[Settings, Supervisor]) -> str:
    """The bootstrap list of all three brokers (the ``kafka`` service's endpoint)."""
    endpoint = cluster[1].endpoint(KAFKA_SERVICE)
    assert endpoint is not None
    return endpoint


def test_three_brokers_are_three_processes_with_their_own_ports_and_log_dirs(
    cluster: tuple[Settings, Supervisor], bootstrap: str
) -> None:
    settings, supervisor = cluster
    statuses = supervisor.status()
    assert [s.name for s in statuses] == [broker_name(n) for n in (1, 2, 3)]
    assert all(s.healthy for s in statuses)
    pids = {s.pid for s in statuses}
    assert len(pids) == 3 and all(psutil.Process(p).is_running() for p in pids if p)
    ports = [port for s in statuses for port in s.ports.values()]
    assert len(set(ports)) == 6  # a client and a controller port each
    assert bootstrap.count(",") == 2 and all(f":{s.ports['port']}" in bootstrap for s in statuses)
    log_dirs = {KafkaService(settings, n).data_dir for n in (1, 2, 3)}
    assert len(log_dirs) == 3 and all((d / "meta.properties").is_file() for d in log_dirs)
    cluster_ids = {_meta(d)["cluster.id"] for d in log_dirs}
    assert len(cluster_ids) == 1  # one cluster, not three


def _meta(folder: Path) -> dict[str, str]:
    lines = (folder / "meta.properties").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_pipeline_topics_have_three_replicas_in_sync_and_min_isr_2(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10)
    assert set(metadata.brokers) == {1, 2, 3}
    for name in CORE_TOPICS:
        partitions = metadata.topics[name].partitions.values()
        assert partitions, name
        for p in partitions:
            assert len(p.replicas) == 3 and set(p.isrs) == set(p.replicas), (name, p.id, p.replicas, p.isrs)
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name) for name in CORE_TOPICS])
    for resource, future in futures.items():
        assert future.result(timeout=10)["min.insync.replicas"].value == "2", resource


def test_a_replication_factor_above_the_brokers_fails_at_once_naming_the_setting(bootstrap: str) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeServiceError, match=r"kafka\.replication_factor is 4 .* 3 broker"):
        ensure_topics(bootstrap, {f"too-many-{uuid.uuid4().hex[:6]}": 1}, replication_factor=4)
    assert time.monotonic() - started < 15


def test_kill_9_of_a_broker_mid_stream_loses_and_doubles_nothing(
    cluster: tuple[Settings, Supervisor], bootstrap: str
) -> None:
    from confluent_kafka.admin import AdminClient

    settings, supervisor = cluster
    leader = AdminClient({"bootstrap.servers": bootstrap}).list_topics(CLICKS_TOPIC, timeout=10)
    victim = broker_name(leader.topics[CLICKS_TOPIC].partitions[0].leader)
    pid = next(s.pid for s in supervisor.status() if s.name == victim)
    assert pid is not None

    def kill_9() -> None:
        process = psutil.Process(pid)
        process.kill()
        process.wait(10)

    report = run_failover_drill(bootstrap, kill_9, topic=CLICKS_TOPIC, rate_per_s=400, before_s=6, after_s=30)
    print(f"\nbroker failover ({victim} killed): {report.summary()}")  # the figure, shown with -s

    assert report.failed == 0, report.publish_stats
    assert len(report.acked_ids) == report.offered  # every offered event acknowledged (acks=all, min ISR 2)
    assert report.acked_after_kill > 0.5 * report.rate_per_s * 20  # ingest went on after the kill
    assert report.gap_after_kill_ms < FAILOVER_BOUND_S * 1000
    assert {s.name: s.state for s in supervisor.status()}[victim] == "stopped"

    group = f"failover-check-{uuid.uuid4().hex[:8]}"
    with EventConsumer(bootstrap, group, topic=CLICKS_TOPIC, dlq_topic=CLICKS_DLQ_TOPIC) as consumer:
        received = Counter(e.event_id for e in consumer.iter_events(idle_timeout_s=8.0))
    acked = Counter(report.acked_ids)
    assert max(acked.values()) == 1  # one acknowledgement per event
    missing = [event_id for event_id in acked if received[event_id] == 0]
    doubled = [event_id for event_id, n in received.items() if n > 1]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    assert not doubled, f"{len(doubled)} events written twice, e.g. {doubled[:5]}"
    assert set(received) == set(acked)  # nothing that was not acknowledged either

    # The lost broker comes back under the same supervisor and catches up: full ISR again.
    supervisor.up([victim])
    deadline = time.monotonic() + 60
    while not all(s.healthy for s in supervisor.status()) and time.monotonic() < deadline:
        time.sleep(1)
    assert {s.name: s.state for s in supervisor.status()} == dict.fromkeys(map(broker_name, (1, 2, 3)), "healthy")

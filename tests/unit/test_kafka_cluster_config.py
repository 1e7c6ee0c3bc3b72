"""The cluster profile's Kafka configuration and the supervisor's start groups, without engines."""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from lambdarec.runtime.cluster import available_profiles, profile_overrides
from lambdarec.runtime.errors import PrerequisiteError
from lambdarec.runtime.kafka import KafkaService, broker_name, kafka_services
from lambdarec.runtime.service import ManagedService, ServiceRecord
from lambdarec.runtime.supervisor import Supervisor, _start_batches, default_services
from lambdarec.settings import Settings, load_settings


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def cluster_settings(tmp_path: Path) -> Settings:
    return load_settings("local", state_dir=tmp_path, **profile_overrides("cluster"))


def test_the_cluster_profile_is_three_brokers_replication_3_min_isr_2(cluster_settings: Settings) -> None:
    assert "cluster" in available_profiles()
    kafka = cluster_settings.kafka
    assert (kafka.brokers, kafka.replication_factor, kafka.min_insync_replicas) == (3, 3, 2)
    assert load_settings("local").kafka.brokers == 1  # the default stays one broker
    with pytest.raises(ValueError, match="unknown profile 'nope'.*cluster"):
        profile_overrides("nope")


def test_one_broker_keeps_its_single_node_configuration(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path)
    (service,) = kafka_services(settings)
    assert service.name == "kafka" and service.start_group is None
    props = _properties(service.server_properties({"port": 9092, "controller_port": 9093}))
    assert props["node.id"] == "1" and props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert "default.replication.factor" not in props and "min.insync.replicas" not in props
    assert [s.name for s in default_services(settings)][:2] == ["kafka", "milvus"]


def test_each_node_of_a_cluster_knows_every_voter_and_replicates(cluster_settings: Settings) -> None:
    services = kafka_services(cluster_settings)
    assert [s.name for s in services] == ["kafka", "kafka-2", "kafka-3"]
    assert {s.start_group for s in services} == {"kafka"}
    assert len({s.home for s in services}) == 3 and len({s.data_dir for s in services}) == 3
    for n, service in enumerate(services, start=1):
        service.ports_path.parent.mkdir(parents=True, exist_ok=True)
        ServiceRecord(service.name, 0, {"port": 9000 + n, "controller_port": 9100 + n}, 0.0, "").save(
            service.ports_path
        )
    props = _properties(services[1].server_properties({"port": 9002, "controller_port": 9102}))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert props["log.dirs"] == str(services[1].data_dir)
    assert props["default.replication.factor"] == "3" and props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3" and props["transaction.state.log.min.isr"] == "2"
    assert services[0].endpoint({"port": 9001, "controller_port": 9101}) == (
        "127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003"
    )
    assert services[2].endpoint({"port": 9003, "controller_port": 9103}) == "127.0.0.1:9003"
    assert [s.name for s in default_services(cluster_settings)][:4] == ["kafka", "kafka-2", "kafka-3", "milvus"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"replication_factor": 3}, r"kafka\.replication_factor is 3 .*kafka\.brokers = 1"),
        ({"brokers": 3, "replication_factor": 2, "min_insync_replicas": 3}, r"kafka\.min_insync_replicas is 3"),
    ],
)
def test_impossible_replication_settings_fail_before_anything_starts(
    tmp_path: Path, overrides: dict[str, int], named: str
) -> None:
    settings = load_settings("local", state_dir=tmp_path, kafka=overrides)
    supervisor = Supervisor(settings, kafka_services(settings))
    with pytest.raises(PrerequisiteError, match=named):
        supervisor.up()
    assert not any((s.home / "service.json").exists() for s in supervisor.services.values())


class GroupMember(ManagedService):
    """A stand-in quorum node: healthy only once every member of its group answers."""

    start_group = "quorum"
    startup_timeout_s = 20.0

    def __init__(self, settings: Settings, name: str, peers: list[str]) -> None:
        self.name = name
        self.peers = peers
        super().__init__(settings)

    def prepare(self, ports: Mapping[str, int]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "ok").write_text("ok")
        # Like a KRaft voter: its configuration needs its peers' ports, chosen before anyone starts.
        for peer in self.peers:
            assert ServiceRecord.load(self.home.parent / peer / "ports.json") is not None

    def command(self, ports: Mapping[str, int]) -> list[str]:
        return [sys.executable, "-m", "http.server", str(ports["port"]), "--bind", "127.0.0.1"]

    def working_dir(self) -> Path:
        return self.data_dir

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        for peer in self.peers:
            record = ServiceRecord.load(self.home.parent / peer / "ports.json")
            assert record is not None
            with urllib.request.urlopen(f"http://127.0.0.1:{record.ports['port']}/ok", timeout=1) as response:
                if response.read() != b"ok":
                    return False
        return True

    def endpoint(self, ports: Mapping[str, int]) -> str:
        return f"127.0.0.1:{ports['port']}"


def test_a_start_group_is_launched_together_and_named_as_one(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path)
    names = ["q1", "q2", "q3"]
    members = [GroupMember(settings, n, names) for n in names]
    assert _start_batches(members) == [members]
    supervisor = Supervisor(settings, members)
    try:
        started = time.monotonic()
        statuses = supervisor.up(["q2"])  # one member named: the whole group
        assert [s.name for s in statuses] == names and all(s.healthy for s in statuses)
        assert len({p for s in statuses for p in s.ports.values()}) == 3
        assert time.monotonic() - started < 20
    finally:
        assert sorted(supervisor.down(["q3"])) == names


def test_broker_names() -> None:
    assert [broker_name(n) for n in (1, 2, 3)] == ["kafka", "kafka-2", "kafka-3"]
    with pytest.raises(ValueError, match="node_id 2"):
        KafkaService(load_settings("local"), 2)

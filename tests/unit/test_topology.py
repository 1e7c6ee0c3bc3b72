"""The topology (lambdarec.runtime.topology) and the embedded runtime describe the same services.

The Pulumi program (infra/) declares its containers from the topology; these tests bind the
topology to what ``lambdarec services`` / ``lambdarec stream start`` really run, so the two
cannot drift apart: names, port names, client addresses, environment, start order.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambdarec import names
from lambdarec.runtime import topology
from lambdarec.runtime.airflow_server import AirflowService
from lambdarec.runtime.kafka import KafkaService
from lambdarec.runtime.milvus import MilvusService
from lambdarec.runtime.mlflow import MlflowService
from lambdarec.runtime.redis_server import RedisService
from lambdarec.runtime.supervisor import default_services
from lambdarec.settings import Settings, find_project_root
from lambdarec.stream.service import PusherService, StreamJobService


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def _runtime_services(settings: Settings) -> dict[str, object]:
    services = [
        KafkaService(settings),
        MilvusService(settings),
        MlflowService(settings),
        RedisService(settings),
        AirflowService(settings),
        StreamJobService(settings, "127.0.0.1:9092"),
        PusherService(settings, "127.0.0.1:9092"),
    ]
    return {s.name: s for s in services}


def test_every_embedded_service_is_in_the_topology_and_back(settings: Settings) -> None:
    embedded = {s.name for s in topology.SERVICES if s.embedded}
    assert embedded == set(_runtime_services(settings))


def test_port_names_agree(settings: Settings) -> None:
    runtime = _runtime_services(settings)
    for spec in topology.SERVICES:
        if not spec.embedded:
            continue
        ports = runtime[spec.name].port_names  # type: ignore[attr-defined]
        # The runtime may keep extra, process-internal ports (Milvus' etcd and components) after them.
        assert ports[: len(spec.port_names)] == spec.port_names, spec.name
    assert runtime[names.MILVUS_SERVICE].port_names[2:] == (  # type: ignore[attr-defined]
        "etcd_port",
        "etcd_peer_port",
        "proxy_internal_port",
        "root_coord_port",
        "query_coord_port",
        "query_node_port",
        "index_node_port",
        "data_coord_port",
        "data_node_port",
    )


@pytest.mark.parametrize(
    ("service_cls", "spec", "expected"),
    [
        (KafkaService, topology.KAFKA, "127.0.0.1:{port}"),
        (MilvusService, topology.MILVUS, "http://127.0.0.1:{port}"),
        (MlflowService, topology.MLFLOW, "http://127.0.0.1:{port}"),
        (RedisService, topology.REDIS, "127.0.0.1:{port}"),
    ],
)
def test_client_addresses_agree(settings: Settings, service_cls: type, spec: topology.Service, expected: str) -> None:
    ports = {name: 40_000 + i for i, name in enumerate(service_cls(settings).port_names)}
    assert service_cls(settings).endpoint(ports) == spec.address("127.0.0.1", ports)
    assert spec.address("127.0.0.1", ports) == expected.format(**ports)
    # In a container network the same template gives the service name and the well-known port.
    assert spec.address(spec.name) == expected.replace("127.0.0.1", spec.name).format(
        **{p.name: p.number for p in spec.ports}
    )


def test_runtime_environment_carries_the_topology_env(settings: Settings) -> None:
    runtime = _runtime_services(settings)
    for spec in topology.SERVICES:
        if spec.embedded:
            env = runtime[spec.name].environment()  # type: ignore[attr-defined]
            assert {k: env.get(k) for k in spec.env} == dict(spec.env), spec.name


def test_start_order_respects_dependencies(settings: Settings) -> None:
    order = [s.name for s in default_services(settings)]
    assert order == [s.name for s in topology.SERVICES if s.name in order]
    position = {s.name: i for i, s in enumerate(topology.SERVICES)}
    for spec in topology.SERVICES:
        for dep in spec.depends_on:
            assert position[dep] < position[spec.name], f"{spec.name} is listed before its dependency {dep}"
    # The speed layer starts after the broker it reads (`stream start` needs Kafka up).
    assert names.KAFKA_SERVICE in topology.STREAM_JOB.depends_on


def test_client_variables_configure_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(topology.KAFKA_BOOTSTRAP_ENV, topology.KAFKA.address("kafka"))
    monkeypatch.setenv(topology.MILVUS_URI_ENV, topology.MILVUS.address("milvus"))
    monkeypatch.setenv(topology.MLFLOW_URI_ENV, topology.MLFLOW.address("mlflow"))
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.milvus.uri == "http://milvus:19530"
    assert settings.mlflow.tracking_uri == "http://mlflow:5000"


def test_redis_variable_is_the_feast_placeholder() -> None:
    root = find_project_root()
    assert root is not None
    for env in ("staging", "prod"):
        text = (root / "environments" / env / "feature_store.yaml").read_text()
        assert "${" + topology.REDIS_URL_ENV + "}" in text


def test_published_ports_are_unique_and_lookups_name_the_choices() -> None:
    published = [(s.name, p.number) for s in topology.SERVICES for p in s.ports if p.public]
    numbers = [n for _, n in published]
    assert len(numbers) == len(set(numbers)), published
    assert topology.RECOMMENDER.port("http_port").number == 3000
    assert topology.RECOMMENDER.port("grpc_port").number == 50051
    with pytest.raises(KeyError, match="http_port"):
        topology.KAFKA.port("http_port")
    with pytest.raises(KeyError, match="kafka"):
        topology.service("zookeeper")


def test_client_environment_comes_from_the_dependencies() -> None:
    env = topology.client_environment(topology.RECOMMENDER_SERVICE)
    assert env == {
        topology.REDIS_URL_ENV: "redis:6379",
        topology.MILVUS_URI_ENV: "http://milvus:19530",
        topology.MLFLOW_URI_ENV: "http://mlflow:5000",
    }
    pusher = topology.client_environment(names.STREAM_PUSHER_SERVICE, {names.KAFKA_SERVICE: "broker"})
    assert pusher[topology.KAFKA_BOOTSTRAP_ENV] == "broker:9092" and pusher["PYTHONUNBUFFERED"] == "1"
    assert [s.name for s in topology.dependencies(topology.AIRFLOW_SERVICE)][0] == names.KAFKA_SERVICE


def test_topology_imports_nothing_heavy() -> None:
    code = (
        "import sys, lambdarec.runtime.topology as t; "
        "heavy = [m for m in ('pydantic', 'psutil', 'confluent_kafka', 'mlflow', 'pymilvus', 'yaml') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

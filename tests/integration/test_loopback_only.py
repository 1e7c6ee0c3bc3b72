"""Nothing listens beyond the machine by default: every socket of the embedded engines is on loopback.

The session's Kafka, Milvus, MLflow and Redis (the shared fixtures, started as `lambdarec services up`
starts them) are inspected with psutil: every listening TCP socket and bound UDP socket of each
engine's process tree must be on 127.0.0.0/8 or ::1. Opening Kafka and MLflow up is a deliberate
setting (``LAMBDAREC_LISTEN_HOST=0.0.0.0``). The speed layer's Flink job gets the same check in
``stream/test_stream_job.py``, where its job already runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdarec.names import KAFKA_SERVICE, MILVUS_SERVICE, MLFLOW_SERVICE, REDIS_SERVICE
from lambdarec.runtime.exposure import ListeningSocket, exposed_sockets, listening_sockets
from lambdarec.runtime.kafka import KafkaService
from lambdarec.runtime.milvus import _COMPONENT_PORTS
from lambdarec.runtime.mlflow import MlflowService
from lambdarec.runtime.service import ServiceRecord
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration

# Sockets an engine opens beyond loopback whatever we configure, by service: the named ports
# allowed to, and why. Anything else listening beyond loopback fails the test.
KNOWN_EXPOSED: dict[str, tuple[frozenset[str], str]] = {
    MILVUS_SERVICE: (
        frozenset({"port", "http_port", *_COMPONENT_PORTS}),
        "Milvus 2.3.5 has no listen-address setting: its proxy, coordinators, nodes and metrics server "
        'call net.Listen("tcp", ":<port>") (every interface; internal/distributed/*/service.go). Only '
        "the embedded etcd follows our loopback config. README: firewall them or run Milvus elsewhere.",
    ),
}

# The session fixture that starts each engine.
STARTED_BY = {
    KAFKA_SERVICE: "kafka_bootstrap",
    MILVUS_SERVICE: "milvus_uri",
    MLFLOW_SERVICE: "mlflow_tracking_uri",
    REDIS_SERVICE: "redis_url",
}


@pytest.mark.parametrize("service", [KAFKA_SERVICE, MLFLOW_SERVICE, MILVUS_SERVICE, REDIS_SERVICE])
def test_engine_listens_on_loopback_only(
    request: pytest.FixtureRequest, engine_settings: Settings, service: str
) -> None:
    request.getfixturevalue(STARTED_BY[service])
    record = ServiceRecord.load(engine_settings.state_dir.resolve() / "services" / service / "service.json")
    assert record is not None, f"{service} has no service record"
    found = listening_sockets(record.pid)
    # The check must see what it vets: the engine's client port is among the sockets listed.
    assert any(s.port == record.ports["port"] for s in found), found
    allowed_names, _why = KNOWN_EXPOSED.get(service, (frozenset(), ""))
    allowed = {record.ports[name] for name in allowed_names}
    unexpected: list[ListeningSocket] = [s for s in exposed_sockets(record.pid) if s.port not in allowed]
    assert unexpected == [], f"{service} listens beyond loopback: {unexpected}"


def test_opening_up_is_a_setting(tmp_path: Path) -> None:
    """The default config binds loopback; ``listen_host=0.0.0.0`` is what opens Kafka and MLflow."""
    ports = {"port": 9092, "controller_port": 9093}
    closed = load_settings("local", state_dir=tmp_path)
    opened = load_settings("local", state_dir=tmp_path, listen_host="0.0.0.0")
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in KafkaService(
        closed
    ).server_properties(ports)
    properties = KafkaService(opened).server_properties(ports)
    assert "listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093\n" in properties
    assert "advertised.listeners=PLAINTEXT://0.0.0.0" not in properties  # clients get a dialable name
    closed_argv = MlflowService(closed).command({"port": 5000})
    assert closed_argv[closed_argv.index("--host") + 1] == "127.0.0.1"
    opened_argv = MlflowService(opened).command({"port": 5000})
    assert opened_argv[opened_argv.index("--host") + 1] == "0.0.0.0"

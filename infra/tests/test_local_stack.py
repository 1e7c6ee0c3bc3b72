"""Stack ``local`` on Pulumi's mocks: every topology service is a container, wired as the topology says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambdarec import names
from lambdarec.runtime import topology
from tests.mocks import SECRETS, Recorder, build, walk_plain_strings

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> tuple[Recorder, Any]:
    return build("local")


@pytest.fixture(scope="module")
def rec(stack: tuple[Recorder, Any]) -> Recorder:
    return stack[0]


def _env(rec: Recorder, container: str) -> dict[str, str]:
    envs = rec.get(container).inputs["envs"]
    if isinstance(envs, dict):  # a secret list: {sig: ..., value: [...]}
        envs = envs["value"]
    return dict(item.split("=", 1) for item in envs)


def test_every_topology_service_has_a_container(rec: Recorder) -> None:
    containers = {r.name for r in rec.of_type(CONTAINER)}
    for spec in topology.SERVICES:
        assert spec.name in containers, spec.name
    # The speed layer is a JobManager, a TaskManager and the job's submission.
    assert {"stream-job", "stream-job-taskmanager", "stream-job-submit"} <= containers
    assert {"spark", "spark-worker-0"} <= containers
    assert len(rec.of_type("docker:index/network:Network")) == 1
    assert rec.of_type("docker:index/volume:Volume")


def test_published_ports_are_the_topology_ports(rec: Recorder) -> None:
    for spec in topology.SERVICES:
        published = {(p["internal"], p["external"]) for p in rec.get(spec.name).inputs.get("ports", [])}
        assert published == {(p.number, p.number) for p in spec.ports if p.public}, spec.name
    assert {(3000, 3000), (50051, 50051)} <= {
        (p["internal"], p["external"]) for p in rec.get(topology.RECOMMENDER_SERVICE).inputs["ports"]
    }


def test_every_container_is_on_the_network_by_its_name(rec: Recorder) -> None:
    for container in rec.of_type(CONTAINER):
        (net,) = container.inputs["networksAdvanced"]
        assert net["name"] == "lambdarec" and container.name in net["aliases"]


def test_environment_comes_from_the_dependencies(rec: Recorder) -> None:
    for spec in topology.SERVICES:
        env = _env(rec, spec.name)
        for key, value in topology.client_environment(spec.name).items():
            assert env.get(key) == value, (spec.name, key)
    recommender = _env(rec, topology.RECOMMENDER_SERVICE)
    assert recommender[topology.MILVUS_URI_ENV] == "http://milvus:19530"
    assert recommender[topology.REDIS_URL_ENV] == "redis:6379"
    assert recommender[topology.MLFLOW_URI_ENV] == "http://mlflow:5000"
    assert recommender["LAMBDAREC_ENV"] == "staging"
    pusher = _env(rec, names.STREAM_PUSHER_SERVICE)
    assert pusher[topology.KAFKA_BOOTSTRAP_ENV] == "kafka:9092"
    assert _env(rec, names.MLFLOW_SERVICE)[topology.MLFLOW_DB_URI_ENV] == "postgresql://mlflow@mlflow-db:5432/mlflow"
    kafka = _env(rec, names.KAFKA_SERVICE)
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert kafka["KAFKA_NUM_PARTITIONS"] == "4"


def test_dependencies_order_start_up(rec: Recorder) -> None:
    # Kafka before Flink (all three containers of the speed layer), Milvus before the recommender.
    for container in ("stream-job", "stream-job-taskmanager", "stream-job-submit"):
        assert names.KAFKA_SERVICE in rec.depends_on_closure(container), container
    assert {"stream-job", "stream-job-taskmanager"} <= rec.depends_on_closure("stream-job-submit")
    recommender = rec.depends_on_closure(topology.RECOMMENDER_SERVICE)
    assert {names.MILVUS_SERVICE, topology.REDIS_SERVICE, names.MLFLOW_SERVICE} <= recommender
    assert topology.MLFLOW_DB_SERVICE in rec.depends_on_closure(names.MLFLOW_SERVICE)
    # Every topology dependency is honoured, and nothing waits on what depends on it.
    for spec in topology.SERVICES:
        closure = rec.depends_on_closure(spec.name)
        for dep in topology.dependencies(spec.name):
            assert dep.name in closure, (spec.name, dep.name)
        assert spec.name not in closure


def test_services_others_wait_for_have_health_checks(rec: Recorder) -> None:
    awaited = {dep for spec in topology.SERVICES for dep in spec.depends_on}
    for name in awaited:
        container = rec.get(name).inputs
        assert container.get("healthcheck", {}).get("tests"), name
        assert container.get("wait") is True, name  # create returns once healthy


def test_no_secret_outside_a_pulumi_secret(rec: Recorder) -> None:
    for resource in rec.resources.values():
        for text in walk_plain_strings(resource.inputs):
            for key, secret in SECRETS.items():
                assert secret not in text, f"{key} in plain text in {resource.name}"
    # ... and the secrets do reach the containers that need them.
    assert "POSTGRES_PASSWORD=" + SECRETS["postgresPassword"] in _env(rec, topology.MLFLOW_DB_SERVICE).__repr__() or (
        _env(rec, topology.MLFLOW_DB_SERVICE)["POSTGRES_PASSWORD"] == SECRETS["postgresPassword"]
    )
    assert _env(rec, names.MLFLOW_SERVICE)["PGPASSWORD"] == SECRETS["postgresPassword"]
    assert _env(rec, topology.RECOMMENDER_SERVICE)["LAMBDAREC_SECRET_KEY"] == SECRETS["secretKey"]


def test_own_images_are_built_from_this_repo(rec: Recorder) -> None:
    images = {r.name: r.inputs for r in rec.of_type(IMAGE)}
    expected = {
        "flink-job": "jobs/flink/Dockerfile",
        "spark-jobs": "jobs/spark/Dockerfile",
        "recommender": "bentos/Dockerfile",
        "airflow": "dags/Dockerfile",
        "mlflow": "infra/images/mlflow/Dockerfile",
    }
    assert set(images) == set(expected)
    for key, dockerfile in expected.items():
        build = images[key]["build"]
        assert build["dockerfile"] == str(REPO / dockerfile) and (REPO / dockerfile).is_file()
        assert build["context"] == str(REPO)
        assert images[key]["skipPush"] is True  # local images stay local
    assert images["spark-jobs"]["build"]["target"] == "standalone"
    # The containers run those images.
    uses = {
        "stream-job": "flink-job",
        "stream-job-submit": "flink-job",
        "spark": "spark-jobs",
        topology.AIRFLOW_SERVICE: "airflow",
        topology.RECOMMENDER_SERVICE: "recommender",
        names.STREAM_PUSHER_SERVICE: "recommender",
        names.MLFLOW_SERVICE: "mlflow",
    }
    for container, key in uses.items():
        assert rec.get(container).inputs["image"] == images[key]["imageName"], container


def test_flink_job_is_submitted_with_the_packaged_layout(rec: Recorder) -> None:
    command = rec.get("stream-job-submit").inputs["command"]
    assert command[:2] == ["flink", "run"] and "--detached" in command
    assert command[command.index("--jobmanager") + 1] == "stream-job:8081"
    job_args = command[command.index("--") + 1 :]
    assert job_args[job_args.index("--bootstrap") + 1] == "kafka:9092"
    assert rec.get("stream-job-submit").inputs["mustRun"] is False

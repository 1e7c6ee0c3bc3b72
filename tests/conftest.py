"""Shared fixtures: each real engine starts once per test session, in a temporary state folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdarec.settings import Settings, load_settings

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder so `-m unit|integration|e2e` selects them without boilerplate."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "e2e"):
            if marker in parts and not item.get_closest_marker(marker):
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The real dataset samples beside the checkout (../shared/datasets)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"dataset samples not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def engine_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose state folder is private to this test session."""
    return load_settings("local", state_dir=tmp_path_factory.mktemp("lambdarec-state"))


@pytest.fixture(scope="session")
def kafka_service(engine_settings: Settings) -> Iterator[object]:
    """The real Kafka broker (KRaft), started once for the session and stopped at its end."""
    from lambdarec.runtime.kafka import KafkaService
    from lambdarec.runtime.supervisor import Supervisor

    service = KafkaService(engine_settings)
    supervisor = Supervisor(engine_settings, [service])
    supervisor.up()
    yield supervisor
    supervisor.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: object) -> str:
    """Bootstrap address of the session's broker."""
    from lambdarec.runtime.supervisor import Supervisor

    assert isinstance(kafka_service, Supervisor)
    endpoint = kafka_service.endpoint("kafka")
    assert endpoint is not None
    return endpoint


@pytest.fixture(scope="session")
def milvus_uri(engine_settings: Settings) -> Iterator[str]:
    """URI of a real embedded Milvus standalone server, started once for the session."""
    from lambdarec.runtime.errors import PrerequisiteError
    from lambdarec.runtime.milvus import MilvusService
    from lambdarec.runtime.supervisor import Supervisor

    service = MilvusService(engine_settings)
    try:
        service.check_prerequisites()
    except PrerequisiteError as err:
        pytest.skip(str(err))
    supervisor = Supervisor(engine_settings, [service])
    supervisor.up()
    try:
        endpoint = supervisor.endpoint("milvus")
        assert endpoint is not None
        yield endpoint
    finally:
        supervisor.down()


@pytest.fixture(scope="session")
def mlflow_tracking_uri(engine_settings: Settings) -> Iterator[str]:
    """URI of a real MLflow tracking server (SQLite + local artifacts), started once for the session."""
    from lambdarec.runtime.mlflow import MlflowService
    from lambdarec.runtime.supervisor import Supervisor

    supervisor = Supervisor(engine_settings, [MlflowService(engine_settings)])
    supervisor.up()
    try:
        endpoint = supervisor.endpoint("mlflow")
        assert endpoint is not None
        yield endpoint
    finally:
        supervisor.down()

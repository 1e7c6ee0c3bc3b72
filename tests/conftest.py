"""Shared fixtures (each real engine starts once per test session, in a temporary state folder) and the
CI skip guard: under ``CI=true`` a skipped test fails the run unless its reason is in :data:`ALLOWED_SKIPS`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdarec.settings import Settings, load_settings

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

ALLOWED_SKIPS: dict[str, str] = {
    # skip reason (a regular expression searched in it): why CI may skip the test for it
    r"the embedded Milvus runs on Linux only": (
        "no Milvus 2.3 server binary exists for other systems; CI on macOS runs everything else"
    ),
}
"""The only skips a CI run (``CI=true``) accepts. Anything else that skips there (a missing torch,
pyspark, feast, redis-server, Milvus prerequisite, ``../shared/datasets``...) fails the run: `make setup`
provides all of it, so a skip in CI means the environment is broken and the tests did not run."""


def in_ci() -> bool:
    """True when the run is a CI run (``CI=true``, as GitHub Actions, GitLab and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The reason a skipped report gives (``pytest.skip``, ``importorskip``, ``skipif``)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def unlisted_skip(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    """The skip reason when CI must not accept it; None for anything else (xfail is not a skip)."""
    if not in_ci() or not report.skipped or hasattr(report, "wasxfail"):
        return None
    reason = skip_reason(report)
    return None if any(re.search(pattern, reason) for pattern in ALLOWED_SKIPS) else reason


def _fail_unlisted_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    reason = unlisted_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true: {reason}\n"
            "CI accepts only the skips listed in ALLOWED_SKIPS (tests/conftest.py): install what is missing "
            "(`make setup`) or, if CI may really go without it, add the reason there with why."
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a test skipped for a reason not on the allow-list is reported failed."""
    outcome = yield
    _fail_unlisted_skip(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Under CI, a module skipped whole at import (``importorskip``) is a collection error."""
    outcome = yield
    _fail_unlisted_skip(outcome.get_result())  # type: ignore[attr-defined]


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


@pytest.fixture(scope="session")
def redis_url(engine_settings: Settings) -> Iterator[str]:
    """A real redis-server under the supervisor (``lambdarec services up redis``): Feast's ``host:port``."""
    from lambdarec.runtime.errors import PrerequisiteError
    from lambdarec.runtime.redis_server import RedisService
    from lambdarec.runtime.supervisor import Supervisor

    service = RedisService(engine_settings)
    try:
        service.check_prerequisites()
    except PrerequisiteError as err:
        pytest.skip(str(err))  # CI fails the run on it (not in ALLOWED_SKIPS): `make setup` installs it
    supervisor = Supervisor(engine_settings, [service])
    supervisor.up([service.name])
    try:
        endpoint = supervisor.endpoint(service.name)
        assert endpoint is not None
        yield endpoint
    finally:
        supervisor.down()

"""The embedded Milvus and MLflow servers, started by the supervisor as real processes.

Each server starts once per session in a temporary state folder and is stopped at the end.
The tests prove what the rest of the system relies on: Milvus answers an exact nearest-
neighbour search, keeps collections across a restart and leaves no process behind;
MLflow records runs and artifacts through its server and serves the model registry with
aliases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdarec.names import CHAMPION_ALIAS, MILVUS_SERVICE, MLFLOW_SERVICE, TWO_TOWER_MODEL
from lambdarec.runtime.errors import PrerequisiteError, ServiceNotRunningError
from lambdarec.runtime.service import ManagedService, ServiceRecord, tcp_answers
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration

DIM = 16
ROWS = 2_000
NLIST = 16
COLLECTION = "items_it_v1"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings over a fresh state folder shared by this file's servers."""
    return load_settings(state_dir=tmp_path_factory.mktemp("lambdarec-state"))


def _supervised(service: ManagedService) -> Iterator[Supervisor]:
    try:
        service.check_prerequisites()
    except PrerequisiteError as err:
        pytest.skip(str(err))
    supervisor = Supervisor(service.settings, [service])
    try:
        supervisor.up()
        yield supervisor
    finally:
        supervisor.down()


@pytest.fixture(scope="session")
def milvus(settings: Settings) -> Iterator[Supervisor]:
    """A running embedded Milvus (stopped at the end of the session)."""
    pytest.importorskip("pymilvus")
    from lambdarec.runtime.milvus import MilvusService

    yield from _supervised(MilvusService(settings))


@pytest.fixture(scope="session")
def mlflow_server(settings: Settings) -> Iterator[Supervisor]:
    """A running embedded MLflow tracking server (stopped at the end of the session)."""
    pytest.importorskip("mlflow")
    from lambdarec.runtime.mlflow import MlflowService

    yield from _supervised(MlflowService(settings))


def _family(pid: int) -> list[int]:
    """The pid and all its descendants' pids."""
    import psutil

    root = psutil.Process(pid)
    return [pid, *(child.pid for child in root.children(recursive=True))]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_healthy(supervisor: Supervisor, name: str) -> ServiceRecord:
    (status,) = supervisor.status([name])
    assert status.healthy, status
    assert status.pid is not None and _alive(status.pid)
    assert status.ports["port"] > 0
    assert status.endpoint == f"http://127.0.0.1:{status.ports['port']}"
    assert status.rss_mb is not None and status.rss_mb > 10
    record = ServiceRecord.load(supervisor.services[name].record_path)
    assert record is not None and record.pid == status.pid
    return record


def _stop_and_prove_gone(supervisor: Supervisor, name: str) -> None:
    """`down` must stop the recorded process and everything it started, and free the port."""
    record = ServiceRecord.load(supervisor.services[name].record_path)
    assert record is not None
    family = _family(record.pid)
    assert supervisor.down([name]) == [name]
    assert [pid for pid in family if _alive(pid)] == []
    assert not tcp_answers(record.ports["port"])
    assert supervisor.status([name])[0].state == "stopped"


# -- Milvus -----------------------------------------------------------------------------------


def _milvus_client(supervisor: Supervisor) -> Any:
    from pymilvus import MilvusClient

    from lambdarec.vectors import milvus_uri

    return MilvusClient(uri=milvus_uri(supervisor.settings), timeout=30)


@pytest.fixture(scope="session")
def item_vectors() -> Any:
    """Seeded random item vectors; row i has primary key i."""
    import numpy as np

    return np.random.default_rng(7).standard_normal((ROWS, DIM)).astype("float32")


@pytest.fixture(scope="session")
def filled_collection(milvus: Supervisor, item_vectors: Any) -> str:
    """A collection with ROWS vectors, flushed, IVF-indexed and loaded."""
    from pymilvus import DataType, MilvusClient

    client = _milvus_client(milvus)
    try:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("item_id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
        client.create_collection(COLLECTION, schema=schema)
        rows = [{"item_id": i, "embedding": vec.tolist()} for i, vec in enumerate(item_vectors)]
        assert client.insert(COLLECTION, rows)["insert_count"] == ROWS
        # Sealing the segment writes it to the local storage, so the index is built on it.
        client.flush(COLLECTION)
        index = client.prepare_index_params()
        index.add_index(field_name="embedding", index_type="IVF_FLAT", metric_type="L2", params={"nlist": NLIST})
        client.create_index(COLLECTION, index)
        client.load_collection(COLLECTION)
    finally:
        client.close()
    return COLLECTION


def _search_top1(client: Any, queries: Any) -> list[tuple[int, float]]:
    # nprobe = nlist scans every cluster: the IVF search is then exhaustive, i.e. exact.
    hits = client.search(
        COLLECTION,
        data=[q.tolist() for q in queries],
        limit=1,
        anns_field="embedding",
        search_params={"metric_type": "L2", "params": {"nprobe": NLIST}},
    )
    return [(int(h[0]["id"]), float(h[0]["distance"])) for h in hits]


def _brute_force_top1(vectors: Any, queries: Any) -> list[int]:
    import numpy as np

    distances = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2)
    return [int(i) for i in np.argmin(distances, axis=1)]


def test_milvus_status_reports_healthy_with_pid_and_ports(milvus: Supervisor) -> None:
    record = _assert_healthy(milvus, MILVUS_SERVICE)
    # Every internal port is one the supervisor chose, so two state folders never collide.
    assert set(record.ports) == set(milvus.services[MILVUS_SERVICE].port_names)
    assert len(set(record.ports.values())) == len(record.ports)


def test_milvus_search_returns_the_exact_nearest_neighbour(
    milvus: Supervisor, filled_collection: str, item_vectors: Any
) -> None:
    import numpy as np

    client = _milvus_client(milvus)
    try:
        described = client.describe_collection(filled_collection)
        assert {f["name"] for f in described["fields"]} == {"item_id", "embedding"}
        assert client.describe_index(filled_collection, "embedding")["index_type"] == "IVF_FLAT"

        # A stored vector finds itself at distance 0 ...
        (found, distance), *_ = _search_top1(client, item_vectors[[123]])
        assert found == 123 and distance == pytest.approx(0.0, abs=1e-5)
        # ... and fresh queries find the same neighbour as a brute-force scan.
        queries = np.random.default_rng(11).standard_normal((20, DIM)).astype("float32")
        assert [i for i, _ in _search_top1(client, queries)] == _brute_force_top1(item_vectors, queries)
    finally:
        client.close()


def test_milvus_restart_keeps_collection_and_leaves_no_process(
    milvus: Supervisor, filled_collection: str, item_vectors: Any
) -> None:
    from lambdarec.vectors import milvus_uri

    _stop_and_prove_gone(milvus, MILVUS_SERVICE)
    with pytest.raises(ServiceNotRunningError):
        milvus_uri(milvus.settings)

    milvus.up([MILVUS_SERVICE])
    _assert_healthy(milvus, MILVUS_SERVICE)
    client = _milvus_client(milvus)
    try:
        assert filled_collection in client.list_collections()
        client.load_collection(filled_collection)
        counted = client.query(filled_collection, filter="item_id >= 0", output_fields=["count(*)"])
        assert counted[0]["count(*)"] == ROWS
        (found, _), *_ = _search_top1(client, item_vectors[[1999]])
        assert found == 1999
    finally:
        client.close()


# -- MLflow -----------------------------------------------------------------------------------


def _mlflow_client(supervisor: Supervisor) -> Any:
    from mlflow import MlflowClient

    from lambdarec.vectors import mlflow_tracking_uri

    uri = mlflow_tracking_uri(supervisor.settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="session")
def logged_run(mlflow_server: Supervisor, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finished run with a param, a metric and an artifact logged through the server."""
    client = _mlflow_client(mlflow_server)
    experiment_id = client.create_experiment("it-two-tower")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "embedding_dim", DIM)
    client.log_metric(run.info.run_id, "recall_at_100", 0.42)
    card = tmp_path_factory.mktemp("artifacts") / "model_card.md"
    card.write_text("# two-tower\nrecall@100 = 0.42\n")
    client.log_artifact(run.info.run_id, str(card), artifact_path="model")
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def test_mlflow_status_reports_healthy_with_pid_and_port(mlflow_server: Supervisor) -> None:
    _assert_healthy(mlflow_server, MLFLOW_SERVICE)


def test_mlflow_run_param_metric_and_artifact_read_back(
    mlflow_server: Supervisor, logged_run: str, tmp_path: Path
) -> None:
    from lambdarec.runtime.mlflow import MlflowService

    client = _mlflow_client(mlflow_server)
    run = client.get_run(logged_run)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"embedding_dim": str(DIM)}
    assert run.data.metrics == {"recall_at_100": 0.42}
    # Artifacts go through the server (proxied), not to a path the client guessed.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert [a.path for a in client.list_artifacts(logged_run, "model")] == ["model/model_card.md"]
    local = Path(client.download_artifacts(logged_run, "model/model_card.md", str(tmp_path)))
    assert local.read_text() == "# two-tower\nrecall@100 = 0.42\n"
    service = mlflow_server.services[MLFLOW_SERVICE]
    assert isinstance(service, MlflowService)
    assert len(list(service.artifacts_dir.rglob("model_card.md"))) == 1


@pytest.fixture(scope="session")
def champion_version(mlflow_server: Supervisor, logged_run: str) -> str:
    """Version 1 of the two-tower model, registered from the run and aliased ``champion``."""
    client = _mlflow_client(mlflow_server)
    run = client.get_run(logged_run)
    client.create_registered_model(TWO_TOWER_MODEL)
    version = client.create_model_version(TWO_TOWER_MODEL, source=f"{run.info.artifact_uri}/model", run_id=logged_run)
    client.set_registered_model_alias(TWO_TOWER_MODEL, CHAMPION_ALIAS, version.version)
    return str(version.version)


def test_mlflow_registry_version_and_champion_alias(
    mlflow_server: Supervisor, logged_run: str, champion_version: str
) -> None:
    champion = _mlflow_client(mlflow_server).get_model_version_by_alias(TWO_TOWER_MODEL, CHAMPION_ALIAS)
    assert champion.version == champion_version == "1"
    assert champion.run_id == logged_run
    assert CHAMPION_ALIAS in champion.aliases


def test_mlflow_restart_keeps_runs_and_leaves_no_process(
    mlflow_server: Supervisor, logged_run: str, champion_version: str
) -> None:
    from lambdarec.vectors import mlflow_tracking_uri

    _stop_and_prove_gone(mlflow_server, MLFLOW_SERVICE)
    with pytest.raises(ServiceNotRunningError):
        mlflow_tracking_uri(mlflow_server.settings)

    mlflow_server.up([MLFLOW_SERVICE])
    _assert_healthy(mlflow_server, MLFLOW_SERVICE)
    client = _mlflow_client(mlflow_server)
    assert client.get_run(logged_run).data.metrics == {"recall_at_100": 0.42}
    assert client.get_model_version_by_alias(TWO_TOWER_MODEL, CHAMPION_ALIAS).version == champion_version

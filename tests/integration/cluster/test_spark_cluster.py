"""The cluster profile's Spark: a standalone master and two workers, the packaged jobs submitted to it.

The master and workers (``spark-class`` from pyspark, separate JVMs under the supervisor) start once
for this module and stop after it. The same small synthetic bronze goes through the packaged
``build_silver`` and ``build_gold`` under ``spark-submit --master local[2]`` and under
``--master spark://127.0.0.1:<port>``; gold must be identical, row for row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdarec.batch.lake import Lake
from lambdarec.batch.package import build_spark_archive
from lambdarec.batch.submit import gold_args, run_job, silver_args, submit_command, submit_env
from lambdarec.batch.testing import bronze_table, write_bronze
from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.runtime.service import pick_free_port
from lambdarec.runtime.spark_cluster import check_spark_master, master_state, spark_cluster_services
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.runtime.topology import SPARK_SERVICE
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration

DAYS = ["2024-03-01", "2024-03-02"]


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Supervisor]]:
    """The master and two workers of the cluster profile; stopped after the module."""
    state_dir = tmp_path_factory.mktemp("spark-cluster")
    settings = load_settings("local", state_dir=state_dir, **profile_overrides("cluster"))
    services = spark_cluster_services(settings)
    assert [s.name for s in services] == [SPARK_SERVICE, "spark-worker-1", "spark-worker-2"]
    supervisor = Supervisor(settings, services)
    try:
        supervisor.up()
        yield settings, supervisor
    finally:
        supervisor.down()


@pytest.fixture(scope="module")
def master_url(spark_cluster: tuple[Settings, Supervisor]) -> str:
    """``spark://127.0.0.1:<port>``, the master's endpoint."""
    endpoint = spark_cluster[1].endpoint(SPARK_SERVICE)
    assert endpoint is not None and endpoint.startswith("spark://127.0.0.1:")
    return endpoint


@pytest.fixture(scope="module")
def bronze(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """Two days of a seeded shop as bronze rows."""
    import pyarrow.compute as pc

    from lambdarec.data.generator import GeneratorConfig, generate_events_table

    start = datetime(2024, 3, 1, tzinfo=UTC)
    table = generate_events_table(
        n_events=3_000, n_items=200, n_users=100, seed=7, config=GeneratorConfig(start=start, days=2)
    )
    end_ms = int(start.timestamp() * 1000) + 2 * 86_400_000
    return bronze_table(table.filter(pc.less(table["event_time"], end_ms)))


def _gold_rows(lake: Lake) -> dict[str, list[str]]:
    """Every gold table as its rows in a canonical, sorted text form."""
    tables = {}
    for folder in sorted((lake.root / "gold").iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        rows = pq.read_table(folder).to_pylist()
        tables[folder.name] = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return tables


def _silver_then_gold(lake: Lake, master: str, settings: Settings, dist: Path, work: Path) -> list[str]:
    archive, launcher = dist / next(p.name for p in dist.glob("*.zip")), dist / "run_job.py"
    apps = []
    for job, args in (
        ("build_silver", silver_args(lake, DAYS, settings.event_bounds())),
        ("build_gold", gold_args(lake, DAYS)),
    ):
        command = submit_command(job, args, archive=archive, launcher=launcher, master=master, shuffle_partitions=2)
        tag = master.split(":")[0]
        # The driver on loopback too (the master and workers are): it would pick the host's address otherwise.
        env = {**submit_env(), "SPARK_LOCAL_IP": "127.0.0.1"}
        run = run_job(job, command, cwd=work, log=work / f"{job}-{tag}.log", env=env, timeout_s=600)
        assert run.reports, job
        apps.append(job)
    return apps


def test_master_and_two_workers_are_separate_processes_with_the_workers_registered(
    spark_cluster: tuple[Settings, Supervisor],
) -> None:
    statuses = spark_cluster[1].status()
    assert all(s.healthy for s in statuses) and len({s.pid for s in statuses}) == 3
    master = next(s for s in statuses if s.name == SPARK_SERVICE)
    state = master_state(master.ports["ui_port"])
    assert state["status"] == "ALIVE"
    alive = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2 and all(w["cores"] == 1 for w in alive)


@pytest.mark.timeout(1800)  # four spark-submits; ~10 min at load 14 on 2 cores
def test_packaged_jobs_on_the_standalone_cluster_give_the_same_gold_as_local(
    spark_cluster: tuple[Settings, Supervisor], master_url: str, bronze: pa.Table, tmp_path: Path
) -> None:
    settings, supervisor = spark_cluster
    dist = tmp_path / "dist"
    build_spark_archive(dist)
    work = tmp_path / "work"
    work.mkdir()
    local_lake, cluster_lake = Lake(tmp_path / "local-lake"), Lake(tmp_path / "cluster-lake")
    for lake in (local_lake, cluster_lake):
        write_bronze(lake, bronze, run="same")
    master = next(s for s in supervisor.status() if s.name == SPARK_SERVICE)
    before = len(master_state(master.ports["ui_port"]).get("completedapps", []))

    _silver_then_gold(local_lake, "local[2]", settings, dist, work)
    _silver_then_gold(cluster_lake, master_url, settings, dist, work)

    # The cluster ran them: two more applications completed on the master, on executors of its workers.
    completed = master_state(master.ports["ui_port"]).get("completedapps", [])
    assert len(completed) == before + 2, completed
    local_gold, cluster_gold = _gold_rows(local_lake), _gold_rows(cluster_lake)
    assert local_gold.keys() == cluster_gold.keys() and len(local_gold) >= 3
    assert all(local_gold[name] for name in local_gold)  # not vacuously equal
    for name in local_gold:
        assert cluster_gold[name] == local_gold[name], name


def test_a_wrong_master_url_fails_at_once_naming_spark_master(master_url: str) -> None:
    check_spark_master(master_url)  # the running master answers
    dead = f"spark://127.0.0.1:{pick_free_port()}"
    started = time.monotonic()
    with pytest.raises(RuntimeServiceError, match=r"spark_master is 'spark://127\.0\.0\.1:\d+' but no Spark master"):
        check_spark_master(dead)
    with pytest.raises(RuntimeServiceError, match="spark_master is 'spark://nohost'"):
        check_spark_master("spark://nohost")
    assert time.monotonic() - started < 15
    check_spark_master("local[2]")  # not a standalone URL: left to spark-submit

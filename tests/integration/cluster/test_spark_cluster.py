"""The cluster profile's Spark: a standalone master and two workers, the packaged jobs submitted to it.

The master and workers (``spark-class`` from pyspark, separate JVMs under the supervisor) start once
for this module and stop after it. The same small synthetic bronze goes through the packaged
``build_silver`` and ``build_gold`` under ``spark-submit --master local[2]`` and under
``--master spark://127.0.0.1:<port>``; gold must be identical, row for row. Then one worker is killed
(``kill -9`` of the worker JVM and of its executor JVM) while the packaged ``build_gold`` runs a task
on it: the application finishes on the other worker and its gold is still identical.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
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


DEMO_EVENTS = 3_000
"""The demo's synthetic shop (its generator and seed: ``lambdarec.demo.synthetic_dataset``), shrunk."""


@pytest.fixture()
def own_kafka_bootstrap(tmp_path: Path) -> Iterator[str]:
    """A broker of this test's own: the batch path reads the fixed ``clicks`` topic, and the session's
    broker's ``clicks`` belongs to the DAG tests (they count its events)."""
    from lambdarec.runtime.kafka import KafkaService

    settings = load_settings("local", state_dir=tmp_path / "kafka")
    supervisor = Supervisor(settings, [KafkaService(settings)])
    supervisor.up()
    try:
        endpoint = supervisor.endpoint("kafka")
        assert endpoint is not None
        yield endpoint
    finally:
        supervisor.down()


@pytest.mark.timeout(2400)  # a replay, an in-process batch and three spark-submits; many minutes at high load
def test_the_demos_data_through_the_clustered_daily_batch_gives_the_single_process_gold(
    spark_cluster: tuple[Settings, Supervisor], master_url: str, own_kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Kafka → ingest_bronze → build_silver → build_gold as the daily DAG submits them to ``spark://`` gives
    the gold of the demo's in-process batch (``run_batch`` on local[2]) over the same Kafka topic."""
    from lambdarec.batch.pipeline import run_batch
    from lambdarec.batch.silver import silver_dates
    from lambdarec.batch.submit import submit_daily_batch
    from lambdarec.demo import replay_dataset, synthetic_dataset
    from lambdarec.replay import ReplaySpeed

    kafka_bootstrap = own_kafka_bootstrap
    supervisor = spark_cluster[1]
    kafka = {"bootstrap_servers": kafka_bootstrap}
    single = load_settings("local", state_dir=tmp_path / "single", kafka=kafka)
    clustered = load_settings("local", state_dir=tmp_path / "clustered", kafka=kafka, spark_master=master_url)
    replayed = replay_dataset(single, synthetic_dataset(single, DEMO_EVENTS), speed=ReplaySpeed(None))
    assert replayed.stats.delivered > 0

    # Each lake keeps its own offsets ledger: both read the clicks topic from its start.
    run_batch(single, gold_days=None, materialize=False)
    day = silver_dates(Lake.under(single.state_dir))[-1]
    master = next(s for s in supervisor.status() if s.name == SPARK_SERVICE)
    before = len(master_state(master.ports["ui_port"]).get("completedapps", []))
    out = submit_daily_batch(clustered, day)

    assert out["submitted"]["master"] == master_url
    assert [j["job"] for j in out["submitted"]["jobs"]] == ["ingest_bronze", "build_silver", "build_gold"]
    completed = master_state(master.ports["ui_port"]).get("completedapps", [])
    assert len(completed) == before + 3 and all(a["state"] == "FINISHED" for a in completed[before:]), completed
    assert out["bronze"]["records"] >= replayed.stats.delivered
    single_gold, cluster_gold = _gold_rows(Lake.under(single.state_dir)), _gold_rows(Lake.under(clustered.state_dir))
    assert single_gold.keys() == cluster_gold.keys() and len(single_gold) >= 3
    assert all(single_gold[name] for name in single_gold)
    for name in single_gold:
        assert cluster_gold[name] == single_gold[name], name


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


_RUNNING = re.compile(r"Running task \S+ in stage \S+ \(TID (\d+)\)")
_FINISHED = re.compile(r"Finished task \S+ in stage \S+ \(TID (\d+)\)")


def _executor_logs(worker_dir: Path, app_id: str) -> dict[str, Path]:
    """Each executor this worker runs for ``app_id``: its id and stderr (``<work-dir>/<app>/<id>/stderr``)."""
    folder = worker_dir / app_id
    return {d.name: d / "stderr" for d in folder.iterdir() if (d / "stderr").is_file()} if folder.is_dir() else {}


def _running_tids(stderr: Path) -> set[int]:
    """Tasks the executor logged as started and not (yet) as finished."""
    text = stderr.read_text(errors="replace")
    return {int(t) for t in _RUNNING.findall(text)} - {int(t) for t in _FINISHED.findall(text)}


def _executor_jvm(worker_pid: int, app_id: str, executor_id: str) -> psutil.Process:
    """The executor JVM the worker launched for ``app_id`` (a child of the worker's JVM)."""
    for child in psutil.Process(worker_pid).children(recursive=True):
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in argv and app_id in argv:
            if argv[argv.index("--executor-id") + 1] == executor_id:
                return child
    raise AssertionError(f"no executor JVM {executor_id} of {app_id} under worker pid {worker_pid}")


def _active_app(master_ui: int) -> str | None:
    """The application the master runs now, if any (None also while the loaded master is slow to answer)."""
    try:
        apps = master_state(master_ui, timeout_s=5).get("activeapps", [])
    except OSError:
        return None
    return str(apps[0]["id"]) if apps else None


def _events(folder: Path) -> list[dict[str, Any]]:
    """The application's event log (one JSON object a line), as the driver wrote it."""
    (log,) = [p for p in folder.rglob("*") if p.is_file()]
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(1800)  # three spark-submits and a worker restart; minutes at high load on 2 cores
def test_a_worker_killed_mid_stage_the_stage_retries_on_the_other_and_gold_is_identical(
    spark_cluster: tuple[Settings, Supervisor], master_url: str, bronze: pa.Table, tmp_path: Path
) -> None:
    settings, supervisor = spark_cluster
    dist = tmp_path / "dist"
    archive, launcher = build_spark_archive(dist)
    work = tmp_path / "work"
    work.mkdir()
    env = {**submit_env(), "SPARK_LOCAL_IP": "127.0.0.1"}
    local_lake, cluster_lake = Lake(tmp_path / "local-lake"), Lake(tmp_path / "cluster-lake")
    write_bronze(local_lake, bronze, run="same")
    # Silver once (its cluster run is the test above); both lakes build gold from the same files.
    silver = submit_command(
        "build_silver",
        silver_args(local_lake, DAYS, settings.event_bounds()),
        archive=archive,
        launcher=launcher,
        master="local[2]",
        shuffle_partitions=2,
    )
    run_job("build_silver", silver, cwd=work, log=work / "build_silver.log", env=env, timeout_s=600)
    shutil.copytree(local_lake.silver, cluster_lake.silver)
    gold = submit_command(
        "build_gold",
        gold_args(local_lake, DAYS),
        archive=archive,
        launcher=launcher,
        master="local[2]",
        shuffle_partitions=2,
    )
    run_job("build_gold", gold, cwd=work, log=work / "build_gold-local.log", env=env, timeout_s=600)

    events = tmp_path / "events"
    events.mkdir()
    # The event log is how the run is read back after the driver is gone (the jobs turn the driver's UI
    # and its REST API off); one uncompressed file (Spark 4 rolls and compresses it by default).
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }
    command = submit_command(
        "build_gold",
        gold_args(cluster_lake, DAYS),
        archive=archive,
        launcher=launcher,
        master=master_url,
        shuffle_partitions=2,
        conf=conf,
    )
    statuses = {s.name: s for s in supervisor.status()}
    master_ui = statuses[SPARK_SERVICE].ports["ui_port"]
    workers = {name: s for name, s in statuses.items() if name != SPARK_SERVICE}
    worker_dirs = {name: supervisor.services[name].data_dir for name in workers}
    before = {a["id"] for a in master_state(master_ui).get("completedapps", [])}
    log = work / "build_gold-cluster.log"
    killed: tuple[str, str] | None = None  # (worker, executor id)
    with log.open("w") as err, (work / "build_gold-cluster.out").open("w") as out:
        driver = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            while killed is None and driver.poll() is None:
                app_id = _active_app(master_ui)
                executors = {name: _executor_logs(d, app_id) for name, d in worker_dirs.items()} if app_id else {}
                # Both workers run an executor, and one of them is running a task: kill that worker.
                if app_id and len(executors) == 2 and all(executors.values()):
                    for name, logs in executors.items():
                        executor_id, stderr = next(iter(logs.items()))
                        if _running_tids(stderr):
                            worker_pid = workers[name].pid
                            assert worker_pid is not None
                            worker_jvm = psutil.Process(worker_pid)  # spark-class execs java: the JVM
                            executor = _executor_jvm(worker_pid, app_id, executor_id)
                            worker_jvm.kill()  # kill -9 of the worker JVM ...
                            executor.kill()  # ... and of its executor JVM (its Python workers follow it)
                            psutil.wait_procs([worker_jvm, executor], timeout=30)
                            killed = (name, executor_id)
                            break
                time.sleep(0.1)
            assert driver.wait(timeout=900) == 0, log.read_text()[-3000:]
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    assert killed is not None, "the job ended before a task ran on both workers"
    worker, executor_id = killed
    try:
        # The driver lost that executor; a task died with it or a lost stage ran again; the job succeeded.
        log_events = _events(events)
        removed = [e for e in log_events if e["Event"] == "SparkListenerExecutorRemoved"]
        assert [e["Executor ID"] for e in removed] == [executor_id], removed
        at = log_events.index(removed[0])
        ends = [e for e in log_events if e["Event"] == "SparkListenerTaskEnd"]
        lost_tasks = [e for e in ends if e["Task Info"]["Executor ID"] == executor_id and e["Task Info"]["Failed"]]
        retried_stages = [
            e
            for e in log_events
            if e["Event"] == "SparkListenerStageSubmitted" and e["Stage Info"]["Stage Attempt ID"] > 0
        ]
        assert lost_tasks or retried_stages, "the kill cost the application nothing: no failed task, no stage rerun"
        # The work went on on the other worker's executor (a lost task's own end may be logged after the
        # removal, and a task reading the lost executor's shuffle files fails with FetchFailed: not these).
        after = [
            e
            for e in log_events[at:]
            if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] == "Success"
        ]
        assert after and all(e["Task Info"]["Executor ID"] != executor_id for e in after)
        reasons = sorted({e["Task End Reason"]["Reason"] for e in ends if e["Task Info"]["Failed"]})
        jobs = [e["Job Result"]["Result"] for e in log_events if e["Event"] == "SparkListenerJobEnd"]
        assert jobs and set(jobs) == {"JobSucceeded"}, jobs
        completed = [a for a in master_state(master_ui).get("completedapps", []) if a["id"] not in before]
        assert len(completed) == 1 and completed[0]["state"] == "FINISHED", completed
        print(
            f"killed {worker} (executor {executor_id}): {len(lost_tasks)} task(s) lost with it, failed tasks' "
            f"reasons {reasons}, {len(retried_stages)} stage re-attempt(s), {len(after)} tasks then succeeded "
            "on the other worker"
        )
        local_gold, cluster_gold = _gold_rows(local_lake), _gold_rows(cluster_lake)
        assert local_gold.keys() == cluster_gold.keys() and len(local_gold) >= 3
        assert all(local_gold[name] for name in local_gold)
        for name in local_gold:
            assert cluster_gold[name] == local_gold[name], name
    finally:
        # The module's cluster whole again for whatever runs after (same ports: the master takes it back).
        (status,) = supervisor.up([worker])
        assert status.healthy

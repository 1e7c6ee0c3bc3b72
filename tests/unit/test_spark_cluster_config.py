"""The cluster profile's Spark standalone services and the master check, without engines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.runtime.service import ServiceRecord, pick_free_port
from lambdarec.runtime.spark_cluster import (
    MASTER_CLASS,
    WORKER_CLASS,
    SparkWorkerService,
    check_spark_master,
    spark_cluster_services,
)
from lambdarec.runtime.supervisor import default_services
from lambdarec.settings import load_settings


def test_no_spark_cluster_by_default_and_master_plus_two_workers_in_the_profile(tmp_path: Path) -> None:
    assert spark_cluster_services(load_settings("local", state_dir=tmp_path)) == []
    assert not any(s.name.startswith("spark") for s in default_services(load_settings("local", state_dir=tmp_path)))
    settings = load_settings("local", state_dir=tmp_path, **profile_overrides("cluster"))
    master, *workers = spark_cluster_services(settings)
    assert master.name == "spark" and [w.name for w in workers] == ["spark-worker-1", "spark-worker-2"]
    assert master.endpoint({"master_port": 7077, "ui_port": 8090}) == "spark://127.0.0.1:7077"
    argv = master.command({"master_port": 7077, "ui_port": 8090})
    assert MASTER_CLASS in argv and argv[argv.index("--host") + 1] == "127.0.0.1"
    env = master.environment()
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1" and "rest.enabled=false" in env["SPARK_MASTER_OPTS"]


def test_a_worker_registers_with_the_masters_remembered_port(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path, **profile_overrides("cluster"))
    worker = SparkWorkerService(settings, 1)
    with pytest.raises(RuntimeServiceError, match="start the master first"):
        worker.command({"port": 1, "ui_port": 2})
    master_home = worker.home.parent / "spark"
    master_home.mkdir(parents=True)
    ServiceRecord("spark", 0, {"master_port": 7171, "ui_port": 8181}, 0.0, "").save(master_home / "ports.json")
    argv = worker.command({"port": 40001, "ui_port": 40002})
    assert WORKER_CLASS in argv and argv[-1] == "spark://127.0.0.1:7171"
    assert argv[argv.index("--cores") + 1] == "1" and argv[argv.index("--memory") + 1] == "1g"


def test_check_spark_master_names_the_setting_and_does_not_wait() -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeServiceError, match=r"spark_master is 'spark://127\.0\.0\.1:\d+' but no Spark master"):
        check_spark_master(f"spark://127.0.0.1:{pick_free_port()}")
    with pytest.raises(RuntimeServiceError, match="spark_master is 'spark://host-without-port'"):
        check_spark_master("spark://host-without-port")
    assert time.monotonic() - started < 10
    for other in ("local[2]", "local[*]", "yarn", "k8s://https://api:6443"):
        check_spark_master(other)  # left to spark-submit

"""The cluster profile's Flink session cluster and the ``flink run`` submission, without engines."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.runtime.flink_cluster import (
    FLINK_SERVICE,
    FlinkJobManagerService,
    FlinkTaskManagerService,
    check_flink_rest,
    cluster_config,
    flink_cluster_services,
    flink_run_command,
    render_config,
    write_lib_dir,
)
from lambdarec.runtime.service import ServiceRecord, pick_free_port
from lambdarec.runtime.supervisor import Supervisor, default_services
from lambdarec.settings import find_project_root, load_settings
from lambdarec.stream.commands import stream_services
from lambdarec.stream.service import SessionStreamJobService, StreamJobService, stream_job_service

JM_PORTS = {"rest_port": 48081, "rpc_port": 46123, "blob_port": 46124}
TM_PORTS = {"rpc_port": 46201, "data_port": 46202}
ROOT = find_project_root()


@pytest.fixture(scope="module")
def job() -> ModuleType:
    """jobs/flink/speed_layer.py, imported without Flink (its operators import pyflink lazily)."""
    assert ROOT is not None
    spec = importlib.util.spec_from_file_location("speed_layer_cluster", ROOT / "jobs" / "flink" / "speed_layer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_keep_the_mini_cluster_and_start_no_flink_processes(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path)
    assert not settings.flink_cluster.session and flink_cluster_services(settings) == []
    assert not any(s.name.startswith(FLINK_SERVICE) for s in default_services(settings))
    assert type(stream_job_service(settings, "127.0.0.1:9092")) is StreamJobService
    assert type(stream_services(settings, "-")[0]) is StreamJobService


def test_the_profile_starts_a_jobmanager_and_two_taskmanagers_and_submits_to_them(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path, **profile_overrides("cluster"))
    cluster = settings.flink_cluster
    assert cluster.session and cluster.task_managers == 2 and cluster.parallelism >= 2
    # One TaskManager alone can hold the whole job: losing the other leaves room to restart.
    assert cluster.slots >= cluster.parallelism
    services = flink_cluster_services(settings)
    assert [s.name for s in services] == ["flink", "flink-taskmanager-1", "flink-taskmanager-2"]
    names = [s.name for s in default_services(settings)]
    assert names.index("flink") < names.index("flink-taskmanager-1") < names.index("airflow")
    assert type(stream_job_service(settings, "127.0.0.1:9092")) is SessionStreamJobService
    jm, tm, _ = services
    assert jm.command(JM_PORTS)[1] == "start-foreground" and Path(jm.command(JM_PORTS)[0]).name == "jobmanager.sh"
    assert Path(tm.command(TM_PORTS)[0]).name == "taskmanager.sh"
    env = tm.environment()
    assert env["FLINK_CONF_DIR"] == str(tm.home / "conf") and env["FLINK_PID_DIR"] == str(tm.home)
    assert env["FLINK_LIB_DIR"] == str(jm.home / "lib") and "JVM_ARGS" not in env


def test_config_is_loopback_only_sized_for_two_cores_and_restarts_from_checkpoints(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path, **profile_overrides("cluster"))
    jm = cluster_config(settings, JM_PORTS)
    tm = cluster_config(settings, JM_PORTS, TM_PORTS, resource_id="flink-taskmanager-1")
    for config in (jm, tm):
        addresses = {k: v for k, v in config.items() if k.endswith(("bind-host", "bind-address", ".address", ".host"))}
        assert len(addresses) >= 6 and set(addresses.values()) == {"127.0.0.1"}, addresses
        assert config["rest.port"] == "48081" and config["jobmanager.rpc.port"] == "46123"
        assert config["blob.server.port"] == "46124"
        assert config["jobmanager.memory.process.size"] == "768m"
        assert config["taskmanager.memory.process.size"] == "1280m"
        assert config["taskmanager.numberOfTaskSlots"] == "2" and config["parallelism.default"] == "2"
        assert config["restart-strategy.type"] == "fixed-delay"
        assert config["python.executable"].endswith("jobs/flink/.venv/bin/python")
    assert tm["taskmanager.rpc.port"] == "46201" and tm["taskmanager.data.port"] == "46202"
    assert tm["taskmanager.resource-id"] == "flink-taskmanager-1" and "taskmanager.rpc.port" not in jm
    # The file is YAML 1.2 with every value a string, as Flink's standard parser reads it.
    assert yaml.safe_load(render_config(tm)) == tm
    if "env.java.opts.all" in tm:
        assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in tm["env.java.opts.all"]


def test_a_taskmanager_registers_with_the_remembered_jobmanager(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path, **profile_overrides("cluster"))
    tm = FlinkTaskManagerService(settings, 2)
    with pytest.raises(RuntimeServiceError, match="start the JobManager first"):
        tm.prepare(TM_PORTS)
    jm = FlinkJobManagerService(settings)
    jm.home.mkdir(parents=True)
    ServiceRecord("flink", 0, JM_PORTS, 0.0, "").save(jm.home / "ports.json")
    tm.prepare(TM_PORTS)
    written = yaml.safe_load((tm.home / "conf" / "config.yaml").read_text())
    assert written["jobmanager.rpc.port"] == "46123" and written["taskmanager.resource-id"] == "flink-taskmanager-2"
    assert (tm.home / "conf" / "log4j-console.properties").is_file()


def test_the_cluster_classpath_adds_flink_python_to_pyflinks_lib(tmp_path: Path) -> None:
    jars = sorted(p.name for p in write_lib_dir(tmp_path / "lib").iterdir())
    assert any(j.startswith("flink-python-") for j in jars) and any(j.startswith("flink-dist-") for j in jars)


def test_flink_run_command_submits_the_unpacked_archive_detached(tmp_path: Path) -> None:
    python = Path("/venv/bin/python")
    argv = flink_run_command(
        "127.0.0.1:48081", tmp_path, ["--bootstrap", "b:9092"], parallelism=2, python=python, flink=Path("flink")
    )
    assert argv[:7] == ["flink", "run", "-m", "127.0.0.1:48081", "-d", "-p", "2"] and "-s" not in argv
    assert argv[argv.index("--python") + 1] == str(tmp_path / "speed_layer.py")
    assert argv[argv.index("--pyFiles") + 1] == str(tmp_path / "pylib")
    assert argv[argv.index("--jarfile") + 1].endswith("flink-sql-connector-kafka-5.0.0-2.2.jar")
    assert argv[argv.index("--classpath") + 1] == (tmp_path / "lambdarec-flink-udfs.jar").as_uri()
    assert argv[argv.index("-pyexec") + 1] == str(python) and argv[-3:] == ["--", "--bootstrap", "b:9092"]
    restored = flink_run_command(
        "h:1", tmp_path, [], parallelism=2, python=python, restore_from=Path("/ck/j/chk-7"), flink=Path("flink")
    )
    assert restored[restored.index("-s") + 1] == "/ck/j/chk-7"


def test_the_session_job_passes_the_contract_and_checkpoints_to_the_job(tmp_path: Path) -> None:
    overrides = profile_overrides("cluster")
    overrides["flink_cluster"] = {**overrides["flink_cluster"], "rest_address": "jm:8081"}
    settings = load_settings("local", state_dir=tmp_path, **overrides)
    service = SessionStreamJobService(settings, "k:9092", job_args=["--sessions-only"])
    assert service.endpoint({}) == "http://jm:8081"
    argv = service.command({})
    job_args = argv[argv.index("--") + 1 :]
    assert job_args[job_args.index("--state-dir") + 1] == str(service.data_dir)
    assert job_args[job_args.index("--parallelism") + 1] == "2" and job_args[-1] == "--sessions-only"
    assert job_args[job_args.index("--earliest-event-ms") + 1] == str(settings.earliest_event_ms)
    assert argv[argv.index("--rest") + 1] == "jm:8081" and argv[2] == "lambdarec.stream.session_job"
    assert argv[argv.index("--checkpoint-dir") + 1] == str(service.data_dir / "checkpoints")
    # An existing cluster's checkpoints go where every TaskManager reaches; only a local folder is resumed from.
    for uri, local in (("s3://bucket/stream", service.data_dir), (str(tmp_path / "shared"), tmp_path / "shared")):
        overrides["flink_cluster"] = {**overrides["flink_cluster"], "state_uri": uri}
        remote = SessionStreamJobService(load_settings("local", state_dir=tmp_path, **overrides), "k:9092")
        remote_args = remote.command({})
        assert remote_args[remote_args.index("--state-dir") + 1] == uri
        assert remote.checkpoint_dir == local / "checkpoints"


def test_an_unanswering_jobmanager_fails_at_once_naming_the_setting(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{pick_free_port()}"
    started = time.monotonic()
    with pytest.raises(RuntimeServiceError, match=r"flink_cluster.rest_address is '127\.0\.0\.1:\d+' but no Flink"):
        check_flink_rest(dead)
    with pytest.raises(RuntimeServiceError, match="expected host:port"):
        check_flink_rest("jobmanager-without-port")
    settings = load_settings("local", state_dir=tmp_path, flink_cluster={"rest_address": dead})
    with pytest.raises(RuntimeServiceError, match="flink_cluster.rest_address"):
        Supervisor(settings, [stream_job_service(settings, "127.0.0.1:9092")]).up()
    assert time.monotonic() - started < 15
    # The profile without its JobManager running says how to start it.
    profile = load_settings("local", state_dir=tmp_path / "p", **profile_overrides("cluster"))
    with pytest.raises(RuntimeServiceError, match="services up flink"):
        Supervisor(profile, [stream_job_service(profile, "127.0.0.1:9092")]).up()


def test_under_flink_run_the_job_leaves_the_cluster_its_addresses_and_parallelism(job: ModuleType) -> None:
    local = job.job_configuration(job.parse_args([]))
    assert local["rest.bind-address"] == "127.0.0.1" and local["parallelism.default"] == "1"
    submitted = job.job_configuration(job.parse_args([]), submitted=True, cluster_parallelism=2)
    assert not any(k.startswith("rest.") or "bind-host" in k for k in submitted)
    assert submitted["parallelism.default"] == "2" and submitted["table.optimizer.agg-phase-strategy"] == "AUTO"
    explicit = job.job_configuration(job.parse_args(["--parallelism", "3"]), submitted=True, cluster_parallelism=2)
    assert explicit["parallelism.default"] == "3"
    remote = job.job_configuration(job.parse_args(["--state-dir", "s3://bucket/stream/"]), submitted=True)
    assert remote["execution.checkpointing.dir"] == "s3://bucket/stream/checkpoints"

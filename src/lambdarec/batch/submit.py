"""The daily batch layer as a cluster runs it: the packaged Spark jobs through ``spark-submit``.

:func:`submit_daily_batch` is what the ``daily_features`` DAG runs. It builds (or reuses) the job
archive under the state folder, then submits three applications, each its own driver::

    spark-submit --master <Settings.spark_master> --driver-memory 2g \\
        --conf spark.sql.shuffle.partitions=8 --jars <Kafka connector jars> \\
        --py-files <state>/spark/dist/lambdarec_spark_jobs-<ver>.zip <state>/spark/dist/run_job.py \\
        ingest_bronze --lake <lake> --bootstrap <kafka> --topic clicks
    ... build_silver --lake <lake> --earliest-event-ms <ms> --date <each date bronze touched>
    ... build_gold --lake <lake> --date <day> [--date <earlier date without gold> ...]

Each job prints its reports as JSON lines on stdout (parsed here) and logs to
``<state>/spark/logs/<job>.log``. ``run_batch`` (:mod:`lambdarec.batch.pipeline`) stays the
in-process path of the CLI and the demo; both apply the same date rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from lambdarec.batch.lake import Lake, write_json_atomic
from lambdarec.events.contract import Bounds
from lambdarec.names import CLICKS_TOPIC
from lambdarec.settings import Settings, find_project_root

DRIVER_MEMORY = "2g"
"""The driver heap ``build_spark`` asks for in process; under spark-submit only ``--driver-memory`` sets it."""
JOB_TIMEOUT_S = 3600.0
STDERR_TAIL_CHARS = 3000
_FINGERPRINT_SUFFIX = ".sources"


class SparkJobError(RuntimeError):
    """A submitted Spark job failed: the message names the job, its exit status and its stderr's tail."""


@dataclass
class JobRun:
    """One submitted job: its command line, wall time and the JSON reports it printed."""

    job: str
    command: list[str]
    wall_s: float
    reports: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the reports themselves go into the batch summary's stages)."""
        return {
            "job": self.job,
            "command": self.command,
            "wall_s": round(self.wall_s, 2),
            "reports": len(self.reports),
            "log": self.log,
        }


def spark_submit_path() -> Path:
    """The ``spark-submit`` script shipped with the installed pyspark.

    Raises:
        FileNotFoundError: pyspark is not installed or ships no ``bin/spark-submit``.
    """
    # find_spec locates the package without importing it (a pyspark import costs ~1 s).
    spec = find_spec("pyspark")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        script = Path(location) / "bin" / "spark-submit"
        if script.is_file():
            return script
    raise FileNotFoundError("spark-submit not found: install pyspark (make setup) in this environment")


def _sources(root: Path) -> list[Path]:
    """The files the archive is built from (see :func:`lambdarec.batch.package.build_spark_archive`)."""
    package = root / "src" / "lambdarec"
    files = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted([*files, *(root / "jobs" / "spark").glob("*.py")])


def _fingerprint(root: Path) -> str:
    # Names, sizes and mtimes: catches an edited, added or deleted module without reading them all.
    digest = hashlib.sha256()
    for path in _sources(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def ensure_archive(out_dir: Path, root: Path | None = None) -> tuple[Path, Path, bool]:
    """Build the job archive and launcher into ``out_dir``, or reuse them when the sources are unchanged.

    Args:
        out_dir: Where the archive lives (the DAG uses ``<state>/spark/dist``).
        root: The checkout (default: found from this package).

    Returns:
        ``(archive, launcher, built)``; ``built`` is False when an up-to-date archive was reused.

    Raises:
        FileNotFoundError: No checkout to build from and no archive already in ``out_dir``.
    """
    from lambdarec.batch.package import _version, build_spark_archive

    root = root or find_project_root()
    archive = out_dir / f"lambdarec_spark_jobs-{_version()}.zip"
    launcher = out_dir / "run_job.py"
    stamp = archive.with_name(archive.name + _FINGERPRINT_SUFFIX)
    if root is None or not (root / "jobs" / "spark").is_dir():
        # An installed wheel has no jobs/ to build from: a deployment ships a built archive instead.
        if archive.is_file() and launcher.is_file():
            return archive, launcher, False
        raise FileNotFoundError(
            f"no lambdarec checkout to build the Spark job archive from, and no {archive.name} in {out_dir}: "
            "run `lambdarec batch package --out <that folder>` where a checkout is"
        )
    fingerprint = _fingerprint(root)
    if archive.is_file() and launcher.is_file() and stamp.is_file() and stamp.read_text() == fingerprint:
        return archive, launcher, False
    archive, launcher = build_spark_archive(out_dir, root)
    stamp.write_text(fingerprint)
    return archive, launcher, True


def submit_command(
    job: str,
    job_args: Sequence[str],
    *,
    archive: Path,
    launcher: Path,
    master: str,
    shuffle_partitions: int = 8,
    jars: Iterable[Path] = (),
    spark_submit: Path | None = None,
    conf: Mapping[str, str] | None = None,
) -> list[str]:
    """The ``spark-submit`` command line of one packaged job.

    Args:
        job: ``ingest_bronze``, ``build_silver`` or ``build_gold``.
        job_args: The job's own arguments (after its name).
        archive: The job archive (``--py-files``): the only place the jobs import lambdarec from.
        launcher: ``run_job.py``, the application file.
        master: ``--master`` (``Settings.spark_master``).
        shuffle_partitions: ``spark.sql.shuffle.partitions``.
        jars: Extra jars for the driver and executors (the Kafka connector for ``ingest_bronze``).
        spark_submit: The script (default: pyspark's).
        conf: More ``--conf key=value`` pairs (e.g. an event log to read the run back from). The jobs'
            own session settings (``build_spark``) win over these.

    Returns:
        The argument list.

    Raises:
        ValueError: ``job`` is not one of the packaged jobs.
    """
    from lambdarec.batch.package import JOBS

    if job not in JOBS:
        raise ValueError(f"unknown Spark job {job!r}: one of {', '.join(JOBS)}")
    command = [str(spark_submit or spark_submit_path()), "--master", master, "--driver-memory", DRIVER_MEMORY]
    command += ["--conf", f"spark.sql.shuffle.partitions={shuffle_partitions}"]
    for key, value in (conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    jar_list = [str(j) for j in jars]
    if jar_list:
        command += ["--jars", ",".join(jar_list)]
    return [*command, "--py-files", str(archive), str(launcher), job, *job_args]


def ingest_args(lake: Lake, bootstrap: str, topic: str = CLICKS_TOPIC) -> list[str]:
    """``ingest_bronze``'s arguments: the next offset range of ``topic`` into the lake's bronze."""
    return ["--lake", str(lake.root), "--bootstrap", bootstrap, "--topic", topic]


def silver_args(lake: Lake, dates: Sequence[str], bounds: Bounds) -> list[str]:
    """``build_silver``'s arguments: the settings' event bounds (so the job cleans by the same rules as
    ``run_batch``); no dates means every date in bronze (the job's default)."""
    args = [
        "--lake",
        str(lake.root),
        "--earliest-event-ms",
        str(bounds.earliest_ms),
        "--max-skew-ms",
        str(bounds.max_future_ms),
        "--max-event-bytes",
        str(bounds.max_bytes),
    ]
    for day in dates:
        args += ["--date", day]
    return args


def _newest_mtime(folders: Iterable[Path]) -> float:
    """The newest modification time of a file under the folders (0 when none holds a file)."""
    return max((f.stat().st_mtime for folder in folders for f in folder.rglob("*") if f.is_file()), default=0.0)


def silver_dates_to_build(lake: Lake, touched: Sequence[str]) -> list[str]:
    """The dates whose silver the daily run rebuilds: those the ingest touched, and any bronze date whose
    silver is missing or older than its bronze (a run that failed between ingest and silver: the offsets
    were consumed, so its rerun touches nothing, yet its silver must still be built).

    An ingest that brought nothing and a lake in step rebuild no silver at all (the nightly run with no
    new events pays for gold only). A bronze date whose every record silver quarantines has no silver
    partition, so it is rebuilt on each run (that date alone).
    """
    from lambdarec.batch.bronze import bronze_dates

    stale = []
    for day in bronze_dates(lake):
        silver = lake.silver / f"event_date={day}"
        bronze = [p for p in lake.bronze.glob(f"ingest=*/event_date={day}") if p.is_dir()]
        if not silver.is_dir() or _newest_mtime(bronze) > _newest_mtime([silver]):
            stale.append(day)
    return sorted(set(touched) | set(stale))


def gold_args(lake: Lake, dates: Sequence[str]) -> list[str]:
    """``build_gold``'s arguments: these snapshot dates, in one Spark pass."""
    args = ["--lake", str(lake.root)]
    for day in dates:
        args += ["--date", day]
    return args


def run_job(
    job: str, command: list[str], *, cwd: Path, log: Path, env: dict[str, str], timeout_s: float = JOB_TIMEOUT_S
) -> JobRun:
    """Run one ``spark-submit`` command and parse the JSON reports the job prints on stdout.

    Args:
        job: The job's name (for messages).
        command: From :func:`submit_command`.
        cwd: Working folder of the driver (not the checkout, so nothing is imported from it by accident).
        log: Where the job's stderr (Spark's log) is written.
        env: The environment of spark-submit.
        timeout_s: The job is killed (its whole process group) after this long.

    Returns:
        The run, with one report per JSON line printed.

    Raises:
        SparkJobError: A non-zero exit, a timeout, or no report printed; with the tail of stderr.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as err:
        # Its own session: the JVM starts the Python driver as a child, and a timeout ends both.
        process = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
        )
        try:
            stdout, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise SparkJobError(
                f"{job} ran past {timeout_s:.0f} s under spark-submit and was killed{_tail(log)}"
            ) from None
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SparkJobError(f"{job} failed under spark-submit (exit {process.returncode}){_tail(log)}")
    reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if not reports:
        raise SparkJobError(f"{job} exited 0 but printed no JSON report; stdout: {stdout[-500:]!r}{_tail(log)}")
    return JobRun(job=job, command=command, wall_s=wall, reports=reports, log=str(log))


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.is_file() else ""
    return f"; log {log}; stderr tail:\n{text[-STDERR_TAIL_CHARS:]}"


_LOOPBACK_MASTER = ("spark://127.0.0.1:", "spark://localhost:")


def submit_env(base: dict[str, str] | None = None, master: str | None = None) -> dict[str, str]:
    """spark-submit's environment: this one, with this interpreter for the driver and workers unless set.

    The interpreter holds the archive's third-party requirements; a cluster whose nodes run another
    Python sets ``PYSPARK_PYTHON`` itself, which is kept. With a standalone ``master`` on loopback (the
    cluster profile's) the driver binds loopback too (``SPARK_LOCAL_IP``, unless set): it would
    otherwise advertise the host's address to executors that live on loopback.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", env["PYSPARK_PYTHON"])
    if master is not None and master.startswith(_LOOPBACK_MASTER):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def submit_daily_batch(
    settings: Settings, day: str, *, shuffle_partitions: int = 8, timeout_s: float = JOB_TIMEOUT_S
) -> dict[str, Any]:
    """Kafka → bronze → silver → gold for ``day`` through the packaged jobs under ``spark-submit``; then Feast apply.

    The same dates as ``run_batch(settings, gold_days=[day], gold_backfill=True, materialize=False)``:
    silver for the dates the ingest touched (every bronze date when it touched none), gold for
    ``day`` plus every earlier silver date without gold, in one pass.

    Args:
        settings: The environment (state folder, Kafka, ``spark_master``, event bounds, Feast).
        day: The snapshot date ``YYYY-MM-DD``.
        shuffle_partitions: ``spark.sql.shuffle.partitions``.
        timeout_s: Per job.

    Returns:
        The batch summary (``BatchSummary.to_dict()``'s keys, no materialize) plus ``submitted``: the
        master, archive, launcher, whether the archive was rebuilt, and each job's command line,
        wall time and log. Also written to ``<lake>/_reports/batch.json``.

    Raises:
        SparkJobError: A job failed (its stderr's tail in the message).
        RuntimeServiceError: ``spark_master`` is a ``spark://`` URL where no master answers.
    """
    from lambdarec.batch.pipeline import BatchSummary, dates_without_gold, select_gold_dates
    from lambdarec.batch.silver import silver_dates
    from lambdarec.batch.spark import kafka_jars
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.featurestore.store import apply
    from lambdarec.runtime.spark_cluster import check_spark_master

    # A dead standalone master fails here in seconds, naming the setting (spark-submit would retry a minute).
    check_spark_master(settings.spark_master)
    bounds = settings.event_bounds()
    # Absolute paths: the drivers run in another folder (and, on a cluster, another machine).
    state = settings.state_dir.resolve()
    lake = Lake.under(state)
    spark_dir = state / "spark"
    archive, launcher, built = ensure_archive(spark_dir / "dist")
    workdir = spark_dir / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    env = submit_env(master=settings.spark_master)
    script = spark_submit_path()
    runs: list[JobRun] = []
    summary = BatchSummary()

    def submit(job: str, job_args: list[str], jars: Sequence[Path] = ()) -> list[dict[str, Any]]:
        command = submit_command(
            job,
            job_args,
            archive=archive,
            launcher=launcher,
            master=settings.spark_master,
            shuffle_partitions=shuffle_partitions,
            jars=jars,
            spark_submit=script,
        )
        run = run_job(job, command, cwd=workdir, log=spark_dir / "logs" / f"{job}.log", env=env, timeout_s=timeout_s)
        runs.append(run)
        return run.reports

    (bronze,) = submit(
        "ingest_bronze",
        ingest_args(lake, kafka_bootstrap(settings)),
        kafka_jars(settings.resolved_jars_dir()),
    )
    summary.stages_s["bronze"] = runs[-1].wall_s
    summary.bronze = bronze
    touched = sorted(bronze.get("by_date", {}))
    todo = silver_dates_to_build(lake, touched)
    if todo:
        summary.silver = submit("build_silver", silver_args(lake, todo, bounds))
        summary.stages_s["silver"] = runs[-1].wall_s
    else:
        summary.stages_s["silver"] = 0.0  # nothing new in Kafka and silver in step with bronze
    available = silver_dates(lake)
    gold_dates = select_gold_dates(available, [day])
    gold_dates = sorted(set(gold_dates) | set(dates_without_gold(lake, available, gold_dates[-1])))
    summary.gold = submit("build_gold", gold_args(lake, gold_dates))
    summary.stages_s["gold"] = runs[-1].wall_s
    started = time.monotonic()
    summary.applied = apply(settings)
    summary.stages_s["feast apply"] = time.monotonic() - started
    out = summary.to_dict()
    out["submitted"] = {
        "spark_submit": str(script),
        "master": settings.spark_master,
        "archive": str(archive),
        "launcher": str(launcher),
        "archive_built": built,
        "jobs": [r.to_dict() for r in runs],
    }
    write_json_atomic(lake.root / "_reports" / "batch.json", out)
    return out

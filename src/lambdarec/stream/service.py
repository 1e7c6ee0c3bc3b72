"""The speed layer as managed local processes: the PyFlink job and the pusher.

* :class:`StreamJobService` runs ``jobs/flink/speed_layer.py`` with the Flink environment's
  interpreter (PyFlink mini-cluster); its health is the mini-cluster's REST API reporting the
  job RUNNING. Every start restores from the newest retained checkpoint, so ``stop`` (or a
  crash, or ``kill -9``) followed by ``start`` resumes where the state was.
* :class:`SessionStreamJobService` is the same job on a Flink session cluster (the cluster profile,
  or ``flink_cluster.rest_address``): the packaged archive submitted with ``flink run -d`` at
  ``flink_cluster.parallelism``, kept by :mod:`lambdarec.stream.session_job` (stop cancels the job,
  checkpoints retained; start restores from the newest with ``flink run -s``).
  :func:`stream_job_service` picks one of the two from the settings.
* :class:`PusherService` runs :mod:`lambdarec.stream.pusher` in the main environment; its
  health is a fresh metrics file (written every second).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lambdarec import names
from lambdarec.runtime.errors import PrerequisiteError
from lambdarec.runtime.service import ManagedService
from lambdarec.settings import Settings, find_project_root

JOB_SCRIPT = Path("jobs") / "flink" / "speed_layer.py"
FLINK_PYTHON = Path("jobs") / "flink" / ".venv" / "bin" / "python"
CONNECTOR_JAR = Path(".cache") / "jars" / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar"
UDF_JAR = Path(".cache") / "jars" / "flink" / "lambdarec-flink-udfs.jar"


def project_root() -> Path:
    """The checkout that holds the Flink job.

    Raises:
        PrerequisiteError: lambdarec is not running from a checkout.
    """
    root = find_project_root()
    if root is None:
        raise PrerequisiteError("the speed layer runs from a lambdarec checkout (jobs/flink/); none was found")
    return root


def job_overview(rest_port: int, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """The jobs the mini-cluster's REST API reports (``/jobs/overview``)."""
    url = f"http://127.0.0.1:{rest_port}/jobs/overview"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - local http only
        return list(json.load(response).get("jobs", []))


def jobs_at(address: str, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """The jobs a Flink REST API at ``host:port`` reports (``/jobs/overview``)."""
    url = f"http://{address.removeprefix('http://')}/jobs/overview"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - local or configured http
        return list(json.load(response).get("jobs", []))


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (``<job-id>/chk-N/_metadata``) under a folder."""
    candidates = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata") if meta.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))


class StreamJobService(ManagedService):
    """The PyFlink speed-layer job on a local mini-cluster.

    Args:
        settings: Settings (the state folder, Kafka).
        bootstrap_servers: Kafka bootstrap servers the job reads and writes.
        job_args: Extra arguments for ``speed_layer.py`` (topics, intervals, ...).
        job_script: The job's entry point (default: the checkout's ``jobs/flink/speed_layer.py``).
        python: The interpreter with PyFlink (default: ``jobs/flink/.venv/bin/python``).
        extra_env: Environment variables added for the job (e.g. ``PYTHONPATH``).
    """

    name = names.STREAM_JOB_SERVICE
    port_names = ("rest_port",)
    startup_timeout_s = 240.0
    stop_timeout_s = 20.0

    def __init__(
        self,
        settings: Settings,
        bootstrap_servers: str,
        *,
        job_args: Sequence[str] = (),
        job_script: Path | None = None,
        python: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings)
        self.bootstrap_servers = bootstrap_servers
        self.job_args = list(job_args)
        self._job_script = job_script
        self._python = python
        self.extra_env = dict(extra_env or {})

    @property
    def checkpoint_dir(self) -> Path:
        """Where the job's retained checkpoints are."""
        return self.data_dir / "checkpoints"

    def job_script(self) -> Path:
        """The job entry point."""
        return self._job_script or project_root() / JOB_SCRIPT

    def python(self) -> Path:
        """The Flink environment's interpreter."""
        return self._python or project_root() / FLINK_PYTHON

    def check_prerequisites(self) -> None:
        """Fail fast, naming the fix, when the Flink environment or the connector jar is missing."""
        if not self.python().is_file():
            raise PrerequisiteError(f"the Flink environment is missing ({self.python()}): run `make setup`")
        if not self.job_script().is_file():
            raise PrerequisiteError(f"the speed-layer job is missing: {self.job_script()}")
        root = find_project_root()
        if self._job_script is None and root is not None:
            for jar, what in ((CONNECTOR_JAR, "Flink Kafka connector"), (UDF_JAR, "speed layer's UDF")):
                if not (root / jar).is_file():
                    raise PrerequisiteError(f"the {what} jar is missing ({jar}): run `make setup`")

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Create the state folder (checkpoints live under it across restarts)."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run the job in the foreground, restoring from the newest checkpoint if there is one."""
        bounds = self.settings.event_bounds()
        return [
            str(self.python()),
            str(self.job_script()),
            "--bootstrap",
            self.bootstrap_servers,
            "--state-dir",
            str(self.data_dir),
            "--rest-port",
            str(ports["rest_port"]),
            "--restore",
            "latest",
            # The event contract's bounds that are settings, so Flink rejects what the publisher and silver do.
            "--earliest-event-ms",
            str(bounds.earliest_ms),
            "--max-future-ms",
            str(bounds.max_future_ms),
            "--max-event-bytes",
            str(bounds.max_bytes),
            *self.job_args,
        ]

    def environment(self) -> dict[str, str]:
        """The job's environment: ours, plus ``extra_env``; JVM output unbuffered into the log.

        The heap cap goes in ``JVM_ARGS``, which PyFlink puts before the JVM options of its own
        configuration (``FLINK_ENV_JAVA_OPTS`` would replace those, and Java 17 needs them).
        """
        env = super().environment()
        env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} -Xmx{self.settings.stream.heap}".strip()
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the job is RUNNING with every task running."""
        return any(_job_running(job) for job in job_overview(ports["rest_port"]))

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The mini-cluster's REST API."""
        return f"http://127.0.0.1:{ports['rest_port']}"

    def flink_jobs(self, ports: Mapping[str, int]) -> list[dict[str, Any]]:
        """The jobs of the mini-cluster (the speed layer)."""
        return job_overview(ports["rest_port"])


def _job_running(job: Mapping[str, Any]) -> bool:
    tasks = job.get("tasks", {})
    return bool(job.get("state") == "RUNNING" and tasks.get("running", 0) == tasks.get("total", -1))


class SessionStreamJobService(ManagedService):
    """The speed-layer job on a Flink session cluster, submitted from the packaged archive by ``flink run``.

    The process the supervisor runs is :mod:`lambdarec.stream.session_job`, which submits (or adopts)
    the job and cancels it on stop. The job's checkpoints go to ``<data>/checkpoints`` like the
    mini-cluster's: a folder every TaskManager reaches (here, this machine's disk).

    Args:
        settings: Settings (``flink_cluster``: the REST address, the parallelism; the state folder).
        bootstrap_servers: Kafka bootstrap servers the job reads and writes.
        job_args: Extra arguments for ``speed_layer.py`` (topics, intervals, ...).
    """

    name = names.STREAM_JOB_SERVICE
    port_names = ()
    # flink run plans the job in a client JVM + Python driver (a minute at load ~10 on 2 cores), then
    # the cluster deploys it; cancelling waits for the tasks to stop.
    startup_timeout_s = 480.0
    stop_timeout_s = 90.0

    def __init__(self, settings: Settings, bootstrap_servers: str, *, job_args: Sequence[str] = ()) -> None:
        super().__init__(settings)
        self.bootstrap_servers = bootstrap_servers
        self.job_args = list(job_args)

    @property
    def state_dir_arg(self) -> str:
        """The job's ``--state-dir``: ``flink_cluster.state_uri``, else this service's data folder."""
        return self.settings.flink_cluster.state_uri or str(self.data_dir)

    @property
    def checkpoint_dir(self) -> Path:
        """Where the job's retained checkpoints are, when that is a local folder (resumed from at start).

        A remote ``state_uri`` (``s3://``...) is not listed here: its newest checkpoint is passed by hand
        (``flink run -s``), and this local folder stays empty.
        """
        uri = self.settings.flink_cluster.state_uri
        if uri and ("://" not in uri or uri.startswith("file://")):
            return Path(uri.removeprefix("file://")) / "checkpoints"
        return self.data_dir / "checkpoints"

    @property
    def job_file(self) -> Path:
        """The id of the job submitted last (written by the keeper)."""
        return self.data_dir / "job.json"

    @property
    def dist_dir(self) -> Path:
        """Where the archive is built and unpacked (once per source state)."""
        return self.settings.state_dir.resolve() / "flink" / "dist"

    def rest_address(self) -> str:
        """The session cluster's REST ``host:port`` (configured, else the embedded JobManager's)."""
        from lambdarec.runtime.flink_cluster import flink_rest_address

        return flink_rest_address(self.settings)

    def check_prerequisites(self) -> None:
        """Fail at once, naming the setting, when no JobManager answers (not with a hung submission)."""
        from lambdarec.runtime.flink_cluster import check_flink_rest, flink_python

        if not flink_python().is_file():
            raise PrerequisiteError(f"the Flink environment is missing ({flink_python()}): run `make setup`")
        check_flink_rest(self.rest_address())

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Build (or reuse) the archive and unpack it; write the ``flink run`` client's conf folder."""
        from lambdarec.runtime.flink_cluster import ensure_job_archive, write_conf_dir

        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_job_archive(self.dist_dir)
        write_conf_dir(self.home / "client-conf", {"rest.address": "127.0.0.1"} | _client_java_opts())

    def job_arguments(self) -> list[str]:
        """``speed_layer.py``'s arguments: Kafka, the checkpoint folder, the contract's bounds, ``job_args``."""
        bounds = self.settings.event_bounds()
        return [
            "--bootstrap", self.bootstrap_servers,
            "--state-dir", self.state_dir_arg,
            "--parallelism", str(self.settings.flink_cluster.parallelism),
            # The workers' interpreter comes from `flink run -pyexec` (the cluster's setting otherwise).
            "--python-executable", "",
            "--earliest-event-ms", str(bounds.earliest_ms),
            "--max-future-ms", str(bounds.max_future_ms),
            "--max-event-bytes", str(bounds.max_bytes),
            *self.job_args,
        ]  # fmt: skip

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """The keeper (:mod:`lambdarec.stream.session_job`) with this interpreter (the main environment)."""
        from lambdarec.runtime.flink_cluster import CLIENT_HEAP, flink_python

        return [
            sys.executable, "-m", "lambdarec.stream.session_job",
            "--rest", self.rest_address(),
            "--job-dir", str(self.dist_dir / "job"),
            "--python", str(flink_python()),
            "--parallelism", str(self.settings.flink_cluster.parallelism),
            "--job-file", str(self.job_file),
            "--checkpoint-dir", str(self.checkpoint_dir),
            "--client-conf", str(self.home / "client-conf"),
            "--client-heap", CLIENT_HEAP,
            "--", *self.job_arguments(),
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """Unbuffered output, so the log shows the submission as it happens."""
        return {**super().environment(), "PYTHONUNBUFFERED": "1"}

    def current_job_id(self) -> str | None:
        """The id of the job the keeper submitted or adopted last."""
        from lambdarec.stream.session_job import read_job_file

        jid = read_job_file(self.job_file).get("jid")
        return str(jid) if jid else None

    def flink_jobs(self, ports: Mapping[str, int]) -> list[dict[str, Any]]:
        """The cluster's entry for our job (other jobs on a shared session cluster are not ours)."""
        jid = self.current_job_id()
        return [job for job in jobs_at(self.rest_address()) if job.get("jid") == jid] if jid else []

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the running keeper holds our job and it is RUNNING on the cluster with every task running."""
        from lambdarec.runtime.service import ServiceRecord
        from lambdarec.stream.session_job import read_job_file

        record = ServiceRecord.load(self.record_path)
        if record is None or read_job_file(self.job_file).get("keeper_pid") != record.pid:
            return False  # a job id left by an earlier keeper: not confirmed (adopted) yet
        return any(_job_running(job) for job in self.flink_jobs(ports))

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The session cluster's REST API."""
        from lambdarec.runtime.errors import RuntimeServiceError

        try:
            return f"http://{self.rest_address()}"
        except RuntimeServiceError:
            return "flink session cluster (its JobManager is not running)"


def _client_java_opts() -> dict[str, str]:
    from lambdarec.runtime.flink_cluster import _shipped_java_opts

    opts = _shipped_java_opts()
    return {"env.java.opts.all": opts} if opts else {}


def stream_job_service(
    settings: Settings, bootstrap_servers: str, *, job_args: Sequence[str] = ()
) -> StreamJobService | SessionStreamJobService:
    """The speed-layer job as the settings want it: on a session cluster (``flink_cluster``), else a mini-cluster."""
    if settings.flink_cluster.session:
        return SessionStreamJobService(settings, bootstrap_servers, job_args=job_args)
    return StreamJobService(settings, bootstrap_servers, job_args=job_args)


class PusherService(ManagedService):
    """The pusher from ``features.session`` to the Feast online store.

    Args:
        settings: Settings (the state folder; the environment of the project's store).
        bootstrap_servers: Kafka bootstrap servers.
        feast_repo: A standalone Feast repo folder; None pushes to the project's store
            (``features/`` with ``environments/<env>/feature_store.yaml``).
        pusher_args: Extra arguments for the pusher (topic, group).
    """

    name = names.STREAM_PUSHER_SERVICE
    port_names = ()
    startup_timeout_s = 120.0
    stop_timeout_s = 15.0

    def __init__(
        self,
        settings: Settings,
        bootstrap_servers: str,
        feast_repo: Path | None = None,
        *,
        pusher_args: Sequence[str] = (),
    ) -> None:
        super().__init__(settings)
        self.bootstrap_servers = bootstrap_servers
        self.feast_repo = feast_repo
        self.pusher_args = list(pusher_args)

    @property
    def metrics_path(self) -> Path:
        """The freshness summary the pusher writes every second."""
        return self.home / "metrics.json"

    def check_prerequisites(self) -> None:
        """The Feast configuration must exist."""
        if self.feast_repo is not None:
            yaml_file = self.feast_repo / "feature_store.yaml"
        else:
            yaml_file = project_root() / "environments" / self.settings.env / "feature_store.yaml"
        if not yaml_file.is_file():
            raise PrerequisiteError(f"no Feast configuration at {yaml_file}")

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Forget the previous run's metrics so health means this run wrote them."""
        self.metrics_path.unlink(missing_ok=True)

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run the pusher with this interpreter (the main environment)."""
        argv = [
            sys.executable,
            "-m",
            "lambdarec.stream.pusher",
            "--bootstrap",
            self.bootstrap_servers,
            "--metrics",
            str(self.metrics_path),
        ]
        if self.feast_repo is not None:
            argv += ["--feast-repo", str(self.feast_repo)]
        else:
            argv += ["--env", self.settings.env, "--state-dir", str(self.settings.state_dir.resolve())]
        return [*argv, *self.pusher_args]

    def environment(self) -> dict[str, str]:
        """Unbuffered output, so the log shows progress."""
        return {**super().environment(), "PYTHONUNBUFFERED": "1"}

    def working_dir(self) -> Path:
        """Feast resolves relative paths in a standalone ``feature_store.yaml`` from its repo."""
        return self.feast_repo or self.home

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the metrics file was written in the last 10 seconds."""
        try:
            return time.time() - self.metrics_path.stat().st_mtime < 10
        except FileNotFoundError:
            return False

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The metrics file (freshness p50/p99)."""
        return str(self.metrics_path)

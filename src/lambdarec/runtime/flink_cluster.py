"""A Flink session cluster as local processes: one JobManager and ``flink_cluster.task_managers`` TaskManagers.

Each is started from the scripts PyFlink ships (``pyflink/bin/jobmanager.sh start-foreground``,
``taskmanager.sh start-foreground``), its own JVM under the supervisor, with its own
``FLINK_CONF_DIR`` (a ``config.yaml`` rendered from the settings, under the service's state folder),
every socket on loopback and the ports the supervisor chose. Only the cluster profile starts it
(``flink_cluster.task_managers = 2``); the speed layer is then submitted to it with ``flink run``
(:mod:`lambdarec.stream.session_job`) instead of running on a mini-cluster.

The session cluster's classpath is PyFlink's ``lib/`` plus ``opt/flink-python-*.jar``: a Python job's
operators (``PythonScalarFunctionOperator``...) live there, and the JobManager must load them to
accept the job, as the PyFlink images do by copying that jar into ``lib/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lambdarec.runtime.errors import PrerequisiteError, RuntimeServiceError
from lambdarec.runtime.service import ManagedService, ServiceRecord, tcp_answers
from lambdarec.settings import Settings, find_project_root

FLINK_SERVICE = "flink"
"""The JobManager's service name (its endpoint is the REST address jobs are submitted to)."""
REST_ADDRESS_ENV = "LAMBDAREC_FLINK_CLUSTER__REST_ADDRESS"
FLINK_VENV = Path("jobs") / "flink" / ".venv"
JOB_ARCHIVE = "lambdarec-flink-job.zip"
CONNECTOR_JAR = "flink-sql-connector-kafka-5.0.0-2.2.jar"
UDF_JAR = "lambdarec-flink-udfs.jar"
CLIENT_HEAP = "512m"
"""Heap of the ``flink run`` client JVM (it plans the job; without a cap the JVM may reserve a quarter of RAM)."""
_LOG_CONFIGS = ("log4j-console.properties", "log4j-cli.properties")


def taskmanager_name(index: int) -> str:
    """The service name of TaskManager ``index`` (from 1)."""
    return f"{FLINK_SERVICE}-taskmanager-{index}"


def flink_home(root: Path | None = None) -> Path:
    """The ``pyflink`` package of the Flink environment: ``bin/``, ``conf/``, ``lib/``, ``opt/``.

    Raises:
        PrerequisiteError: No checkout, or no Flink environment in it (``make setup`` creates it).
    """
    root = root or find_project_root()
    found = sorted((root / FLINK_VENV / "lib").glob("python3*/site-packages/pyflink/bin/jobmanager.sh")) if root else []
    if not found:
        raise PrerequisiteError(f"PyFlink's scripts were not found in {FLINK_VENV}: run `make setup`")
    return found[0].parents[1]


def flink_python(root: Path | None = None) -> Path:
    """The Flink environment's interpreter (the ``flink run`` client's and the Python workers')."""
    root = root or find_project_root()
    if root is None:
        raise PrerequisiteError("the Flink environment lives in a lambdarec checkout (jobs/flink/.venv); none found")
    return root / FLINK_VENV / "bin" / "python"


def flink_cluster_services(settings: Settings) -> list[ManagedService]:
    """The JobManager and its TaskManagers, JobManager first; none when ``flink_cluster.task_managers`` is 0."""
    count = settings.flink_cluster.task_managers
    if count == 0:
        return []
    return [FlinkJobManagerService(settings), *(FlinkTaskManagerService(settings, i) for i in range(1, count + 1))]


def cluster_config(
    settings: Settings,
    jm_ports: Mapping[str, int],
    tm_ports: Mapping[str, int] | None = None,
    *,
    resource_id: str | None = None,
) -> dict[str, str]:
    """The ``config.yaml`` of one process of the session cluster (flat keys), pure.

    Args:
        settings: ``flink_cluster`` sizes the memory, the slots and the default parallelism.
        jm_ports: The JobManager's ``rest_port``, ``rpc_port`` and ``blob_port``.
        tm_ports: A TaskManager's ``rpc_port`` and ``data_port`` (None: the JobManager's file).
        resource_id: The TaskManager's id in ``/taskmanagers`` (its service name).

    Returns:
        ``{key: value}`` for Flink 2.2.
    """
    cluster = settings.flink_cluster
    config = {
        # Every socket on loopback: RPC, blob server, REST, data exchange, metrics query service.
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.rpc.port": str(jm_ports["rpc_port"]),
        "jobmanager.bind-host": "127.0.0.1",
        "blob.server.port": str(jm_ports["blob_port"]),
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": str(jm_ports["rest_port"]),
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "jobmanager.memory.process.size": cluster.jobmanager_memory,
        "taskmanager.memory.process.size": cluster.taskmanager_memory,
        # Managed memory serves the Python workers and RocksDB; the heap state backend needs none of it.
        "taskmanager.memory.managed.fraction": "0.25",
        "taskmanager.numberOfTaskSlots": str(cluster.slots),
        "parallelism.default": str(cluster.parallelism),
        # Spread a job's slots over the TaskManagers, so one lost TaskManager is a partial loss.
        "taskmanager.load-balance.mode": "SLOTS",
        "jobmanager.execution.failover-strategy": "region",
        # A killed TaskManager refuses connections: after 2 failed heartbeat RPCs (10 s) it is gone;
        # a live one slowed by a loaded machine gets 60 s before it is declared lost.
        "heartbeat.interval": "5000",
        "heartbeat.timeout": "60000",
        "heartbeat.rpc-failure-threshold": "2",
        # A lost TaskManager fails the job's tasks: restart them from the latest checkpoint, without end.
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "2147483647",
        "restart-strategy.fixed-delay.delay": "2 s",
        # PyFlink's Python workers start from the Flink environment (pyflink + lambdarec's dependencies).
        "python.executable": str(flink_python()),
    }
    java_opts = _shipped_java_opts()
    if java_opts:
        # JDK 17 needs the module openings PyFlink's own config.yaml carries.
        config["env.java.opts.all"] = java_opts
    if tm_ports is not None:
        config |= {
            "taskmanager.rpc.port": str(tm_ports["rpc_port"]),
            "taskmanager.data.port": str(tm_ports["data_port"]),
        }
        if resource_id:
            config["taskmanager.resource-id"] = resource_id
    return config


def _shipped_java_opts() -> str:
    """``env.java.opts.all`` of the ``config.yaml`` PyFlink ships (``--add-opens`` for JDK 17)."""
    try:
        text = (flink_home() / "conf" / "config.yaml").read_text()
    except (OSError, PrerequisiteError):
        return ""
    in_opts = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("opts:"):
            in_opts = True
        elif in_opts and stripped.startswith("all:"):
            return stripped.removeprefix("all:").strip()
    return ""


def render_config(config: Mapping[str, str]) -> str:
    """``config.yaml`` text: one flat ``key: value`` a line, each value a JSON string (valid YAML 1.2)."""
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in sorted(config.items()))


def write_conf_dir(conf_dir: Path, config: Mapping[str, str]) -> Path:
    """Write ``config.yaml`` and PyFlink's log4j files into ``conf_dir`` (the process's ``FLINK_CONF_DIR``)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    shipped = flink_home() / "conf"
    for name in _LOG_CONFIGS:
        if (shipped / name).is_file():
            shutil.copyfile(shipped / name, conf_dir / name)
    tmp = conf_dir / "config.yaml.tmp"
    tmp.write_text(render_config(config))
    tmp.replace(conf_dir / "config.yaml")
    return conf_dir


def write_lib_dir(lib_dir: Path) -> Path:
    """PyFlink's ``lib/`` jars plus ``opt/flink-python-*.jar``, as links (the cluster's ``FLINK_LIB_DIR``)."""
    home = flink_home()
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    for jar in [*sorted((home / "lib").glob("*.jar")), *sorted((home / "opt").glob("flink-python-*.jar"))]:
        (lib_dir / jar.name).symlink_to(jar)
    return lib_dir


def rest_json(address: str, path: str, timeout_s: float = 3.0, method: str = "GET") -> dict[str, Any]:
    """One call of a Flink REST API at ``host:port`` (or ``http://host:port``)."""
    base = address if address.startswith("http") else f"http://{address}"
    request = urllib.request.Request(base.rstrip("/") + path, method=method)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback/configured http
        body = response.read()
    return dict(json.loads(body)) if body.strip() else {}


class _FlinkDaemon(ManagedService):
    """What the JobManager and the TaskManagers share: the script, the environment and the conf folder."""

    startup_timeout_s = 180.0
    stop_timeout_s = 30.0
    script = ""

    @property
    def conf_dir(self) -> Path:
        """This process's ``FLINK_CONF_DIR``."""
        return self.home / "conf"

    @property
    def lib_dir(self) -> Path:
        """The cluster's ``FLINK_LIB_DIR`` (shared by its processes)."""
        return self.settings.state_dir.resolve() / "services" / FLINK_SERVICE / "lib"

    def check_prerequisites(self) -> None:
        """Fail fast when the Flink environment or the JDK is missing."""
        from lambdarec.runtime.jvm import java_executable

        java_executable()
        flink_home()

    def environment(self) -> dict[str, str]:
        """Our own conf, lib, log and pid folders, so nothing is shared with another Flink on this machine."""
        env = {
            **os.environ,
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.lib_dir),
            "FLINK_LOG_DIR": str(self.log_path.parent),
            "FLINK_PID_DIR": str(self.home),
        }
        # The scripts' memory settings come from config.yaml; a caller's JVM_ARGS heap would fight them.
        env.pop("JVM_ARGS", None)
        env.pop("FLINK_ENV_JAVA_OPTS", None)
        return env

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """``<pyflink>/bin/<script> start-foreground``."""
        return [str(flink_home() / "bin" / self.script), "start-foreground"]


class FlinkJobManagerService(_FlinkDaemon):
    """The session cluster's JobManager (standalone session entry point); its REST API takes ``flink run``."""

    name = FLINK_SERVICE
    port_names = ("rest_port", "rpc_port", "blob_port")
    script = "jobmanager.sh"

    def configured_ports(self) -> Mapping[str, int]:
        """The REST port pinned in settings (0 = pick a free one, kept across restarts)."""
        return {"rest_port": self.settings.flink_cluster.rest_port}

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Render the conf folder and link the cluster's lib folder."""
        write_lib_dir(self.lib_dir)
        write_conf_dir(self.conf_dir, cluster_config(self.settings, ports))

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """``127.0.0.1:<rest_port>``, what ``flink run -m`` takes."""
        return f"127.0.0.1:{ports['rest_port']}"

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the REST API answers ``/overview``."""
        return "flink-version" in rest_json(self.endpoint(ports), "/overview")

    def notes(self, ports: Mapping[str, int]) -> list[str]:
        """Where to submit and watch."""
        return [f"flink: submit with flink run -m {self.endpoint(ports)}; UI http://{self.endpoint(ports)}/"]


class FlinkTaskManagerService(_FlinkDaemon):
    """One TaskManager registered with the JobManager, with ``flink_cluster.slots`` slots."""

    port_names = ("rpc_port", "data_port")
    script = "taskmanager.sh"

    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.name = taskmanager_name(index)
        super().__init__(settings)

    def jobmanager_ports(self) -> Mapping[str, int]:
        """The JobManager's ports (its ``ports.json``).

        Raises:
            RuntimeServiceError: The JobManager was never started under this state folder.
        """
        record = ServiceRecord.load(self.home.parent / FLINK_SERVICE / "ports.json")
        if record is None:
            raise RuntimeServiceError(
                f"{self.name}: start the JobManager first (`lambdarec services up {FLINK_SERVICE}`)"
            )
        return record.ports

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Render this TaskManager's conf folder (its own ports and resource id)."""
        config = cluster_config(self.settings, self.jobmanager_ports(), ports, resource_id=self.name)
        write_conf_dir(self.conf_dir, config)

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The TaskManager's RPC address."""
        return f"127.0.0.1:{ports['rpc_port']}"

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the JobManager lists this TaskManager (by resource id and data port) in ``/taskmanagers``."""
        if not tcp_answers(ports["data_port"]):
            return False
        jm = f"127.0.0.1:{self.jobmanager_ports()['rest_port']}"
        listed = rest_json(jm, "/taskmanagers").get("taskmanagers", [])
        return any(t.get("id") == self.name and t.get("dataPort") == ports["data_port"] for t in listed)


# -- submitting to a session cluster ---------------------------------------------------------------------
def flink_rest_address(settings: Settings) -> str:
    """The session cluster's REST address: ``flink_cluster.rest_address``, else the embedded JobManager's.

    Raises:
        RuntimeServiceError: Neither is there (the message says how to start one or what to set).
    """
    configured = settings.flink_cluster.rest_address
    if configured:
        return configured.removeprefix("http://").rstrip("/")
    from lambdarec.runtime.supervisor import Supervisor

    endpoint = Supervisor(settings, [FlinkJobManagerService(settings)]).endpoint(FLINK_SERVICE)
    if endpoint is None:
        raise RuntimeServiceError(
            f"the embedded Flink JobManager is not running: start the session cluster "
            f"(`lambdarec --profile cluster services up {FLINK_SERVICE}`) or set {REST_ADDRESS_ENV}"
        )
    return endpoint


def check_flink_rest(address: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """Fail at once, naming ``flink_cluster.rest_address``, when no JobManager answers at ``address``.

    ``flink run`` itself retries an unreachable REST endpoint for minutes before it gives up.

    Returns:
        The cluster's ``/overview`` (task managers, slots, version).

    Raises:
        RuntimeServiceError: A malformed address, or no Flink REST API answering there.
    """
    host, _, port = address.removeprefix("http://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeServiceError(f"flink_cluster.rest_address is {address!r}: expected host:port ({REST_ADDRESS_ENV})")
    try:
        overview = rest_json(f"{host}:{port}", "/overview", timeout_s=timeout_s)
    except (OSError, urllib.error.URLError, ValueError) as err:
        raise RuntimeServiceError(
            f"flink_cluster.rest_address is {address!r} but no Flink JobManager answers there ({err}): start one "
            f"(`lambdarec --profile cluster services up {FLINK_SERVICE}`) or fix {REST_ADDRESS_ENV}"
        ) from None
    if "flink-version" not in overview:
        raise RuntimeServiceError(f"flink_cluster.rest_address is {address!r} but what answers is not Flink's REST API")
    return overview


def flink_run_command(
    rest_address: str,
    job_dir: Path,
    job_args: Sequence[str],
    *,
    parallelism: int,
    python: Path,
    restore_from: Path | None = None,
    flink: Path | None = None,
) -> list[str]:
    """The ``flink run`` command line of the packaged speed layer (unpacked in ``job_dir``), detached.

    Args:
        rest_address: The JobManager's REST ``host:port`` (``-m``).
        job_dir: The unpacked archive: ``speed_layer.py``, ``pylib/``, the two jars.
        job_args: The job's own arguments (after ``--``).
        parallelism: ``-p``.
        python: The interpreter of the client's Python driver and of the workers.
        restore_from: A retained checkpoint to start from (``-s``).
        flink: The ``flink`` script (default: PyFlink's).
    """
    command = [str(flink or flink_home() / "bin" / "flink"), "run", "-m", rest_address, "-d", "-p", str(parallelism)]
    if restore_from is not None:
        command += ["-s", str(restore_from)]
    command += ["-pyclientexec", str(python), "-pyexec", str(python)]
    command += ["--python", str(job_dir / "speed_layer.py"), "--pyFiles", str(job_dir / "pylib")]
    command += ["--jarfile", str(job_dir / CONNECTOR_JAR), "--classpath", (job_dir / UDF_JAR).resolve().as_uri()]
    return [*command, "--", *job_args]


def _archive_sources(root: Path) -> list[Path]:
    """What the job archive is built from: the core package, the job, its Java UDF sources."""
    core = [p for p in (root / "src" / "lambdarec").rglob("*.py") if "__pycache__" not in p.parts]
    job = [*(root / "jobs" / "flink").glob("*.py"), *(root / "jobs" / "flink" / "udf").rglob("*.java")]
    return sorted([*core, *job])


def _fingerprint(root: Path) -> str:
    # Names, sizes and mtimes: an edited, added or deleted source changes it without reading them all.
    digest = hashlib.sha256()
    for path in _archive_sources(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def ensure_job_archive(out_dir: Path, root: Path | None = None) -> tuple[Path, bool]:
    """Build ``lambdarec-flink-job.zip`` into ``out_dir`` and unpack it to ``out_dir/job``, once per source state.

    The build is ``jobs/flink/package.py`` run by the Flink environment (the archive carries that
    environment's copies of the core's dependencies); an unchanged checkout reuses the last one.

    Returns:
        ``(job_dir, built)``: the unpacked archive and whether it was (re)built now.

    Raises:
        PrerequisiteError: No checkout or Flink environment to build from, or the build failed.
    """
    root = root or find_project_root()
    if root is None:
        raise PrerequisiteError("the Flink job archive is built from a lambdarec checkout; none was found")
    archive, job_dir = out_dir / JOB_ARCHIVE, out_dir / "job"
    stamp = out_dir / (JOB_ARCHIVE + ".sources")
    fingerprint = _fingerprint(root)
    if archive.is_file() and (job_dir / "speed_layer.py").is_file() and stamp.is_file():
        if stamp.read_text() == fingerprint:
            return job_dir, False
    out_dir.mkdir(parents=True, exist_ok=True)
    build = [str(flink_python(root)), str(root / "jobs" / "flink" / "package.py"), "--out", str(archive)]
    done = subprocess.run(build, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PrerequisiteError(f"building {JOB_ARCHIVE} failed ({' '.join(build)}):\n{done.stderr[-2000:]}")
    if job_dir.exists():
        shutil.rmtree(job_dir)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(job_dir)
    stamp.write_text(fingerprint)
    return job_dir, True

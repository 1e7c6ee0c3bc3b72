"""A Spark standalone cluster as local processes: one master and ``spark_cluster.workers`` workers.

Started from the ``spark-class`` script of the installed pyspark (``org.apache.spark.deploy.master.Master``
and ``...worker.Worker``), each its own JVM under the supervisor, on loopback. The packaged batch jobs
then run on it with ``spark-submit --master spark://127.0.0.1:<master_port>`` (``spark_master``; the
``spark`` service's endpoint). Only the cluster profile starts it (``spark_cluster.workers = 2``).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lambdarec.runtime.errors import PrerequisiteError, RuntimeServiceError
from lambdarec.runtime.service import ManagedService, ServiceRecord, tcp_answers
from lambdarec.runtime.topology import SPARK, SPARK_SERVICE
from lambdarec.settings import Settings

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_class_path() -> Path:
    """The ``spark-class`` script shipped with the installed pyspark.

    Raises:
        PrerequisiteError: pyspark is missing or ships no ``bin/spark-class``.
    """
    from importlib.util import find_spec

    spec = find_spec("pyspark")
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        script = Path(location) / "bin" / "spark-class"
        if script.is_file():
            return script
    raise PrerequisiteError("spark-class not found: install pyspark (`make setup`) in this environment")


def worker_name(index: int) -> str:
    """The service name of worker ``index`` (from 1)."""
    return f"{SPARK_SERVICE}-worker-{index}"


def spark_cluster_services(settings: Settings) -> list[ManagedService]:
    """The master and its workers, master first; none when ``spark_cluster.workers`` is 0."""
    workers = settings.spark_cluster.workers
    if workers == 0:
        return []
    return [SparkMasterService(settings), *(SparkWorkerService(settings, i) for i in range(1, workers + 1))]


def master_state(ui_port: int, timeout_s: float = 2.0) -> dict[str, Any]:
    """The master's own view (``/json`` of its web UI): status, workers, applications."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=timeout_s) as response:
        return dict(json.loads(response.read()))


class _SparkDaemon(ManagedService):
    """What the master and the workers share: the ``spark-class`` command and a loopback environment."""

    startup_timeout_s = 90.0

    def check_prerequisites(self) -> None:
        """Fail fast when pyspark's scripts or the JDK are missing."""
        from lambdarec.runtime.jvm import java_executable

        java_executable()
        spark_class_path()

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Create the working folder (workers keep their executors' files there)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        """Loopback for every socket and web UI (``SPARK_LOCAL_IP``), a small daemon heap."""
        return {
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": self.settings.spark_cluster.daemon_memory,
            "SPARK_NO_DAEMONIZE": "1",
        }


class SparkMasterService(_SparkDaemon):
    """The standalone master (its endpoint is the ``spark://`` URL jobs are submitted to)."""

    name = SPARK_SERVICE
    port_names = SPARK.port_names  # ("master_port", "ui_port")

    def environment(self) -> dict[str, str]:
        """The daemons' environment, with the master's REST submission server off (a fixed port, 6066)."""
        return {**super().environment(), "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}

    def configured_ports(self) -> Mapping[str, int]:
        """The master port pinned in settings (0 = pick a free one, kept across restarts)."""
        return {"master_port": self.settings.spark_cluster.master_port}

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """``spark-class ...Master --host 127.0.0.1 --port P --webui-port U`` in the foreground."""
        return [
            str(spark_class_path()),
            MASTER_CLASS,
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["master_port"]),
            "--webui-port",
            str(ports["ui_port"]),
        ]

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """``spark://127.0.0.1:<master_port>``, the value of ``spark_master``."""
        return SPARK.address("127.0.0.1", ports)

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the master says it is ALIVE (it leads; a standby would say STANDBY)."""
        if not tcp_answers(ports["master_port"]):
            return False
        return master_state(ports["ui_port"]).get("status") == "ALIVE"

    def notes(self, ports: Mapping[str, int]) -> list[str]:
        """Where to submit and watch."""
        return [
            f"spark master: submit with --master {self.endpoint(ports)} (LAMBDAREC_SPARK_MASTER); "
            f"UI http://127.0.0.1:{ports['ui_port']}/"
        ]


class SparkWorkerService(_SparkDaemon):
    """One standalone worker registered with the master, with ``worker_cores`` and ``worker_memory``."""

    port_names = ("port", "ui_port")

    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.name = worker_name(index)
        super().__init__(settings)

    def master_ports(self) -> Mapping[str, int]:
        """The master's ports (its ``ports.json``).

        Raises:
            RuntimeServiceError: The master was never started under this state folder.
        """
        record = ServiceRecord.load(self.home.parent / SPARK_SERVICE / "ports.json")
        if record is None:
            raise RuntimeServiceError(f"{self.name}: start the master first (`lambdarec services up {SPARK_SERVICE}`)")
        return record.ports

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """``spark-class ...Worker --cores C --memory M --work-dir D spark://127.0.0.1:<master>``."""
        cluster = self.settings.spark_cluster
        return [
            str(spark_class_path()),
            WORKER_CLASS,
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["port"]),
            "--webui-port",
            str(ports["ui_port"]),
            "--cores",
            str(cluster.worker_cores),
            "--memory",
            cluster.worker_memory,
            "--work-dir",
            str(self.data_dir),
            SPARK.address("127.0.0.1", self.master_ports()),
        ]

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The worker's RPC address."""
        return f"127.0.0.1:{ports['port']}"

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the master lists this worker as ALIVE."""
        if not tcp_answers(ports["port"]):
            return False
        workers = master_state(self.master_ports()["ui_port"]).get("workers", [])
        return any(w.get("port") == ports["port"] and w.get("state") == "ALIVE" for w in workers)


_SPARK_URL = re.compile(r"^spark://(?P<hosts>[^/]+)$")


def check_spark_master(master: str, timeout_s: float = 3.0) -> None:
    """Fail at once, naming ``spark_master``, when a ``spark://`` master does not answer.

    ``spark-submit`` itself retries an unreachable standalone master for about a minute (three
    20-second registration attempts) before it gives up. ``local[...]``, ``yarn`` and ``k8s://``
    masters are left to ``spark-submit``.

    Raises:
        RuntimeServiceError: A ``spark://`` URL without a port, or no master answering at any of its hosts.
    """
    match = _SPARK_URL.match(master)
    if match is None:
        return
    addresses = []
    for part in match.group("hosts").split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise RuntimeServiceError(
                f"spark_master is {master!r}: a standalone master URL is spark://host:port[,host:port] "
                "(LAMBDAREC_SPARK_MASTER)"
            )
        addresses.append((host, int(port)))
    if not any(tcp_answers(port, host, timeout=timeout_s) for host, port in addresses):
        raise RuntimeServiceError(
            f"spark_master is {master!r} but no Spark master answers there: start one "
            f"(`lambdarec --profile cluster services up {SPARK_SERVICE}`) or fix LAMBDAREC_SPARK_MASTER"
        )

"""Start, health-check and stop the embedded services as real local processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.runtime.service import ManagedService, ServiceRecord, pick_free_port, port_is_free
from lambdarec.settings import Settings


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``lambdarec services status``."""

    name: str
    state: str  # "healthy", "starting", "unhealthy" or "stopped"
    pid: int | None
    ports: Mapping[str, int]
    endpoint: str | None
    rss_mb: float | None
    uptime_s: float | None

    @property
    def healthy(self) -> bool:
        """True when the service answers requests."""
        return self.state == "healthy"


def default_services(settings: Settings) -> list[ManagedService]:
    """The engines that ``services`` knows, in start order (a bare ``up`` skips those not started by default)."""
    # Imported here so that listing services never pays for every client library.
    from lambdarec.runtime.airflow_server import AirflowService
    from lambdarec.runtime.flink_cluster import flink_cluster_services
    from lambdarec.runtime.kafka import kafka_services
    from lambdarec.runtime.milvus import MilvusService
    from lambdarec.runtime.mlflow import MlflowService
    from lambdarec.runtime.redis_server import RedisService
    from lambdarec.runtime.spark_cluster import spark_cluster_services

    return [
        *kafka_services(settings),  # one broker, or kafka.brokers of them (the cluster profile)
        MilvusService(settings),
        MlflowService(settings),
        RedisService(settings),
        *spark_cluster_services(settings),  # none unless spark_cluster.workers (the cluster profile)
        *flink_cluster_services(settings),  # none unless flink_cluster.task_managers (the cluster profile)
        AirflowService(settings),
    ]


class Supervisor:
    """Owns the lifecycle of a set of :class:`ManagedService` under one state folder."""

    def __init__(self, settings: Settings, services: Iterable[ManagedService] | None = None) -> None:
        self.settings = settings
        self.services = {s.name: s for s in (services if services is not None else default_services(settings))}
        # A caller naming its services means all of them; the engines' defaults skip the on-request ones.
        self._all_by_default = services is not None

    def _select(self, names: Iterable[str] | None) -> list[ManagedService]:
        if not names:
            # "All" of `lambdarec services` is every engine started by default, plus the others (Redis)
            # while they run; a supervisor built over a given list of services means that list.
            return [
                s
                for s in self.services.values()
                if self._all_by_default or s.started_by_default or self._live_record(s) is not None
            ]
        unknown = [n for n in names if n not in self.services]
        if unknown:
            raise RuntimeServiceError(f"unknown service(s) {unknown}; known: {sorted(self.services)}")
        # One member of a start group means the group (a quorum node alone never becomes healthy),
        # its members in their own order at the place of the first one named; others as named.
        selected: list[ManagedService] = []
        for name in names:
            service = self.services[name]
            group = (
                [s for s in self.services.values() if s.start_group == service.start_group]
                if service.start_group is not None
                else [service]
            )
            selected += [s for s in group if s not in selected]
        return selected

    # -- lifecycle ---------------------------------------------------------------------
    def up(
        self,
        names: Iterable[str] | None = None,
        on_event: Callable[[str, str], None] | None = None,
    ) -> list[ServiceStatus]:
        """Start every selected service that is not running and wait until all are healthy.

        Args:
            names: Services to start; when empty, those started by default.
            on_event: Called with (service, message) as each one progresses.

        Returns:
            The status of each selected service.

        Raises:
            RuntimeServiceError: A service did not become healthy in time; its log tail is
                in the message and the process is stopped.
        """
        notify = on_event or (lambda _n, _m: None)
        selected = self._select(names)
        for service in selected:
            service.check_prerequisites()
        for batch in _start_batches(selected):
            pending = []
            for service in batch:
                if self._live_record(service) is not None:
                    notify(service.name, "already running")
                else:
                    pending.append(service)
            if pending:
                self._start_together(pending, notify)
        return [self.status_of(s) for s in selected]

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop the selected services (all by default), last started first.

        Returns:
            Names of the services that were running and are now stopped.
        """
        stopped = []
        for service in reversed(self._select(names)):
            record = ServiceRecord.load(service.record_path)
            if record is None:
                continue
            _terminate_group(record.pid, service.stop_timeout_s)
            service.record_path.unlink(missing_ok=True)
            stopped.append(service.name)
        return stopped

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        """Status of the selected services (all by default)."""
        return [self.status_of(s) for s in self._select(names)]

    def status_of(self, service: ManagedService) -> ServiceStatus:
        """Status of one service: is its process alive and does it answer?"""
        record = self._live_record(service)
        if record is None:
            return ServiceStatus(service.name, "stopped", None, {}, None, None, None)
        try:
            healthy = service.is_healthy(record.ports)
        except Exception:  # noqa: BLE001 - a health probe must never break `status`
            healthy = False
        return ServiceStatus(
            name=service.name,
            state="healthy" if healthy else "unhealthy",
            pid=record.pid,
            ports=record.ports,
            endpoint=service.endpoint(record.ports),
            rss_mb=_group_rss_mb(record.pid),
            uptime_s=time.time() - record.started_at,
        )

    def log_path(self, name: str) -> Path:
        """The log file of one service."""
        return self._select([name])[0].log_path

    def endpoint(self, name: str) -> str | None:
        """The client address of a running service, or None when it is stopped."""
        service = self._select([name])[0]
        record = self._live_record(service)
        return service.endpoint(record.ports) if record else None

    # -- internals -------------------------------------------------------------------------
    def _start_together(self, batch: list[ManagedService], notify: Callable[[str, str], None]) -> None:
        """Choose every member's ports, prepare and launch them all, then wait for each to be healthy.

        A single service is a batch of one. When one member fails, the members launched with it are
        stopped too (a quorum missing a node would only hang).
        """
        chosen: dict[str, dict[str, int]] = {}
        taken: set[int] = set()
        for service in batch:
            chosen[service.name] = self._choose_ports(service, avoid=taken)
            taken |= set(chosen[service.name].values())
        launched: list[tuple[ManagedService, ServiceRecord]] = []
        try:
            for service in batch:
                service.home.mkdir(parents=True, exist_ok=True)
                service.log_path.parent.mkdir(parents=True, exist_ok=True)
                service.prepare(chosen[service.name])
            for service in batch:
                record = self._launch(service, chosen[service.name])
                launched.append((service, record))
                notify(service.name, f"started pid {record.pid}, waiting for health")
            for service, record in launched:
                self._wait_healthy(service, record)
        except Exception:
            for service, record in launched:
                _terminate_group(record.pid, service.stop_timeout_s)
                service.record_path.unlink(missing_ok=True)
            raise
        for service, record in launched:
            service.after_healthy(record.ports)
            notify(service.name, f"healthy at {service.endpoint(record.ports)}")

    def _live_record(self, service: ManagedService) -> ServiceRecord | None:
        record = ServiceRecord.load(service.record_path)
        if record is None:
            return None
        if not _pid_alive(record.pid):
            # The leader died. Children it left in its process group still hold ports and
            # data: stop them before forgetting the service, so `up` starts clean.
            if _group_members(record.pid):
                _terminate_group(record.pid, service.stop_timeout_s)
            service.record_path.unlink(missing_ok=True)
            return None
        return record

    def _choose_ports(self, service: ManagedService, avoid: set[int] | None = None) -> dict[str, int]:
        previous = ServiceRecord.load(service.ports_path)
        remembered = previous.ports if previous else {}
        configured = service.configured_ports()
        chosen: dict[str, int] = {}
        avoid = avoid or set()
        for port_name in service.port_names:
            fixed = configured.get(port_name, 0)
            if fixed:
                if not port_is_free(fixed):
                    raise RuntimeServiceError(
                        f"{service.name}: configured {port_name} {fixed} is in use; free it or set it to 0"
                    )
                chosen[port_name] = fixed
                continue
            # Reuse the port of the last run so clients and stored configs keep working.
            old = remembered.get(port_name, 0)
            if old and port_is_free(old) and old not in chosen.values() and old not in avoid:
                chosen[port_name] = old
            else:
                chosen[port_name] = pick_free_port(avoid=set(chosen.values()) | avoid)
        service.ports_path.parent.mkdir(parents=True, exist_ok=True)
        ServiceRecord(service.name, 0, chosen, time.time(), str(service.log_path)).save(service.ports_path)
        return chosen

    def _launch(self, service: ManagedService, ports: Mapping[str, int]) -> ServiceRecord:
        argv = service.command(ports)
        with service.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            # A new session detaches the engine from this CLI process, and lets `down`
            # signal the whole process group (engines that fork helpers included).
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=service.working_dir(),
                env=service.environment(),
                start_new_session=True,
            )
        record = ServiceRecord(service.name, proc.pid, dict(ports), time.time(), str(service.log_path))
        record.save(service.record_path)
        return record

    def _wait_healthy(self, service: ManagedService, record: ServiceRecord) -> None:
        deadline = time.monotonic() + service.startup_timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(record.pid):
                service.record_path.unlink(missing_ok=True)
                raise RuntimeServiceError(
                    f"{service.name} exited during start-up; last log lines:\n{tail(service.log_path, 30)}"
                )
            try:
                if service.is_healthy(record.ports):
                    return
            except Exception:  # noqa: BLE001, S110 - not up yet; keep polling until the deadline
                pass
            time.sleep(0.5)
        _terminate_group(record.pid, service.stop_timeout_s)
        service.record_path.unlink(missing_ok=True)
        raise RuntimeServiceError(
            f"{service.name} was not healthy after {service.startup_timeout_s:.0f}s; last log lines:\n"
            f"{tail(service.log_path, 30)}"
        )


def _start_batches(services: list[ManagedService]) -> list[list[ManagedService]]:
    """The selected services in start order, the members of one start group together (at the first's place)."""
    batches: list[list[ManagedService]] = []
    by_group: dict[str, list[ManagedService]] = {}
    for service in services:
        if service.start_group is None:
            batches.append([service])
        elif service.start_group in by_group:
            by_group[service.start_group].append(service)
        else:
            by_group[service.start_group] = [service]
            batches.append(by_group[service.start_group])
    return batches


def tail(path: Path, lines: int = 50) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64_000))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_rss_mb(pid: int) -> float | None:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
    except psutil.Error:
        return None


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of the process group ``pgid`` (the service and whatever it forked)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _terminate_group(pid: int, timeout_s: float) -> None:
    """SIGTERM the whole process group (graceful shutdown), then SIGKILL what is left.

    The group, not just the leader's children, is the unit: a child whose parent died is
    re-parented away from the leader but stays in the group the supervisor created.
    """
    family = _group_members(pid)
    try:
        root = psutil.Process(pid)
        family += [p for p in [root, *root.children(recursive=True)] if p not in family]
    except psutil.Error:
        pass
    if not family:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        for proc in family:
            try:
                proc.terminate()
            except psutil.Error:
                pass
    _, alive = psutil.wait_procs(family, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def resolve_endpoint(settings: Settings, configured: str | None, service: ManagedService, env_var: str) -> str:
    """The configured address of an engine, else the endpoint of its running embedded service.

    Args:
        settings: The environment (its state folder holds the embedded services' records).
        configured: The address from settings, if any (it wins).
        service: The embedded service that stands in when nothing is configured.
        env_var: The variable that configures the address, named in the error.

    Raises:
        ServiceNotRunningError: Nothing is configured and the embedded service is not up.
    """
    if configured:
        return configured
    endpoint = Supervisor(settings, [service]).endpoint(service.name)
    if endpoint is None:
        from lambdarec.runtime.errors import ServiceNotRunningError

        raise ServiceNotRunningError(
            f"the embedded {service.name} service is not running: start it with "
            f"`lambdarec services up {service.name}` or set {env_var}"
        )
    return endpoint

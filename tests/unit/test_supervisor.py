"""The supervisor's lifecycle, on a tiny real process (Python's http.server), no engines."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psutil
import pytest

from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.runtime.service import ManagedService, port_is_free
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import Settings, load_settings


class HttpService(ManagedService):
    """A stand-in engine: serves its data folder over HTTP."""

    name = "web"
    startup_timeout_s = 20.0

    def prepare(self, ports: Mapping[str, int]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "hello.txt").write_text("hi")

    def command(self, ports: Mapping[str, int]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "http.server",
            str(ports["port"]),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(self.data_dir),
        ]

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        with urllib.request.urlopen(f"{self.endpoint(ports)}/hello.txt", timeout=1) as response:
            return bool(response.read() == b"hi")

    def endpoint(self, ports: Mapping[str, int]) -> str:
        return f"http://127.0.0.1:{ports['port']}"


class CrashingService(HttpService):
    name = "crash"

    def command(self, ports: Mapping[str, int]) -> list[str]:
        return [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings("local", state_dir=tmp_path)


def test_up_status_down_and_port_reuse(settings: Settings) -> None:
    supervisor = Supervisor(settings, [HttpService(settings)])
    try:
        (status,) = supervisor.up()
        assert status.healthy and status.pid and status.rss_mb and status.rss_mb > 0
        port = status.ports["port"]
        assert supervisor.up()[0].pid == status.pid  # idempotent: already running
        assert supervisor.down() == ["web"]
        assert not psutil.pid_exists(status.pid) or psutil.Process(status.pid).status() == psutil.STATUS_ZOMBIE
        assert port_is_free(port)
        assert supervisor.status()[0].state == "stopped"
        # A restart comes back on the same port, so clients keep working.
        assert supervisor.up()[0].ports["port"] == port
    finally:
        supervisor.down()
    assert supervisor.down() == []


def test_a_dead_process_is_reported_stopped_and_restarted(settings: Settings) -> None:
    supervisor = Supervisor(settings, [HttpService(settings)])
    try:
        (status,) = supervisor.up()
        assert status.pid is not None
        psutil.Process(status.pid).kill()
        psutil.Process(status.pid).wait(5)
        assert supervisor.status()[0].state == "stopped"
        assert supervisor.up()[0].healthy
    finally:
        supervisor.down()


def test_a_crash_at_start_shows_the_log(settings: Settings) -> None:
    supervisor = Supervisor(settings, [CrashingService(settings)])
    with pytest.raises(RuntimeServiceError, match="boom: bad config"):
        supervisor.up()
    assert supervisor.status()[0].state == "stopped"


def test_unknown_service_names_the_known_ones(settings: Settings) -> None:
    with pytest.raises(RuntimeServiceError, match=r"known: \['web'\]"):
        Supervisor(settings, [HttpService(settings)]).up(["nope"])


class ForkingService(HttpService):
    """A leader that forks the real server and then just waits (like `mlflow server` + uvicorn)."""

    name = "forking"

    def command(self, ports: Mapping[str, int]) -> list[str]:
        server = " ".join(HttpService.command(self, ports))
        return ["/bin/sh", "-c", f"{server} & wait"]


def test_children_orphaned_by_a_dead_leader_are_stopped(settings: Settings) -> None:
    supervisor = Supervisor(settings, [ForkingService(settings)])
    try:
        (status,) = supervisor.up()
        assert status.pid is not None
        children = psutil.Process(status.pid).children(recursive=True)
        assert children, "the leader should have forked the server"
        psutil.Process(status.pid).kill()  # the leader crashes; its child keeps the port
        psutil.Process(status.pid).wait(5)
        assert supervisor.status()[0].state == "stopped"
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "orphans of the dead leader must be stopped"
        assert port_is_free(status.ports["port"])
        assert supervisor.up()[0].healthy  # and the service starts again on its port
    finally:
        supervisor.down()


def test_kafka_cluster_ids_never_look_like_options() -> None:
    from lambdarec.runtime.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5_000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def test_endpoints_come_from_settings_else_the_running_service(settings: Settings) -> None:
    from lambdarec.runtime.errors import ServiceNotRunningError
    from lambdarec.runtime.supervisor import resolve_endpoint

    service = HttpService(settings)
    assert resolve_endpoint(settings, "http://elsewhere:1", service, "LAMBDAREC_X") == "http://elsewhere:1"
    with pytest.raises(ServiceNotRunningError, match=r"services up web.*LAMBDAREC_X"):
        resolve_endpoint(settings, None, service, "LAMBDAREC_X")
    supervisor = Supervisor(settings, [service])
    try:
        (status,) = supervisor.up()
        assert resolve_endpoint(settings, None, service, "LAMBDAREC_X") == status.endpoint
    finally:
        supervisor.down()


class OnRequestService(HttpService):
    """A stand-in for Redis: known to the supervisor, started only by name."""

    name = "on-request"
    started_by_default = False


def test_a_service_not_started_by_default_joins_down_and_status_while_it_runs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdarec.runtime import supervisor as supervisor_module

    engines = [HttpService(settings), OnRequestService(settings)]
    monkeypatch.setattr(supervisor_module, "default_services", lambda _settings: engines)
    supervisor = Supervisor(settings)  # as `lambdarec services` builds it
    try:
        assert [s.name for s in supervisor.up()] == ["web"]  # a bare `up` leaves it alone
        assert [s.name for s in supervisor.status()] == ["web"]
        (started,) = supervisor.up(["on-request"])
        assert started.healthy
        assert [s.name for s in supervisor.status()] == ["web", "on-request"]
        assert supervisor.down() == ["on-request", "web"]  # a bare `down` stops it too
        assert started.pid is not None
        assert not psutil.pid_exists(started.pid) or psutil.Process(started.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        supervisor.down(["web", "on-request"])
    # Over a list of its own, a bare `up` means that list (the fixtures' and subcommands' use).
    own = Supervisor(settings, [OnRequestService(settings)])
    try:
        assert [s.name for s in own.up()] == ["on-request"]
    finally:
        own.down()

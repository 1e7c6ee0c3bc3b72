"""The contract every embedded engine implements, and the record of a running one."""

from __future__ import annotations

import json
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lambdarec.settings import Settings


@dataclass
class ServiceRecord:
    """What the supervisor remembers about a started service (``service.json``).

    Attributes:
        name: Service name, e.g. ``kafka``.
        pid: Process id of the service's process-group leader.
        ports: Named ports the service listens on.
        started_at: Epoch seconds when it was launched.
        log_path: Where its stdout/stderr go.
    """

    name: str
    pid: int
    ports: dict[str, int]
    started_at: float
    log_path: str
    extra: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the record atomically, so a reader never sees half a file."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ServiceRecord | None:
        """Read a record, or None if there is none (or it is unreadable)."""
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


class ManagedService(ABC):
    """A real engine that the supervisor starts as a local process.

    Subclasses say which ports they need, how to prepare their data folder, how to
    start and how to tell that they are healthy. The supervisor does the rest: free
    ports, pid files, logs, health waits and stopping.
    """

    name: str
    port_names: tuple[str, ...] = ("port",)
    startup_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0
    started_by_default: bool = True
    """False: ``lambdarec services up`` without names leaves it alone (start it by name); ``down`` and
    ``status`` without names still include it while it runs."""
    start_group: str | None = None
    """Services sharing a group (the nodes of one Kafka quorum) cannot become healthy one by one: the
    supervisor chooses all their ports, prepares and launches them all, then waits for each; naming one
    of them to ``up`` or ``down`` means the whole group."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / "services" / self.name
        self.data_dir = self.home / "data"

    @property
    def record_path(self) -> Path:
        """Where the running service's record lives."""
        return self.home / "service.json"

    @property
    def ports_path(self) -> Path:
        """Ports chosen on first start, kept across restarts so clients keep working."""
        return self.home / "ports.json"

    @property
    def log_path(self) -> Path:
        """The service's combined stdout/stderr log."""
        return self.home / "logs" / f"{self.name}.log"

    def configured_ports(self) -> Mapping[str, int]:
        """Ports fixed by settings (0 or absent means: pick a free one)."""
        return {}

    def check_prerequisites(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~lambdarec.runtime.errors.PrerequisiteError` naming the fix, if any."""

    @abstractmethod
    def prepare(self, ports: Mapping[str, int]) -> None:
        """Create configuration and data folders (first start formats storage)."""

    @abstractmethod
    def command(self, ports: Mapping[str, int]) -> list[str]:
        """The argv that runs the engine in the foreground."""

    def environment(self) -> dict[str, str]:
        """Environment variables for the engine process (ours, with the settings' profile).

        A process of ours started with a profile (``lambdarec --profile cluster``) loads the same
        profile: the pusher then writes to the profile's online store, the recommender reads it.
        """
        env = dict(os.environ)
        if self.settings.profile:
            env["LAMBDAREC_PROFILE"] = self.settings.profile
        return env

    def working_dir(self) -> Path:
        """Working directory of the engine process."""
        return self.home

    @abstractmethod
    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the engine answers real requests (not merely a listening socket)."""

    def after_healthy(self, ports: Mapping[str, int]) -> None:  # noqa: B027 - optional hook
        """Run once the engine is healthy (create topics, ...)."""

    @abstractmethod
    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The address clients use, e.g. ``127.0.0.1:9092`` or ``http://127.0.0.1:5000``."""

    def notes(self, ports: Mapping[str, int]) -> list[str]:
        """Lines ``services up`` prints once the service is healthy (a UI's URL, where its login is)."""
        return []


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """Ask the OS for a free port (not one in ``avoid``)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if not avoid or port not in avoid:
            return port


def tcp_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False

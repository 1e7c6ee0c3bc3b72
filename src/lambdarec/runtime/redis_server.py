"""The embedded Redis: the Debian ``redis-server`` as the online store of a Redis environment run locally.

The local environment's Feast online store is SQLite (a file); staging and prod use Redis
(``environments/*/feature_store.yaml``), and so does any environment with ``online_store = "redis"``
(the cluster profile). ``lambdarec services up redis`` runs a real ``redis-server`` under the
supervisor so that a Redis environment, and the recommender's "online store down" fallback, can be
run and tested on one machine. A bare ``services up`` starts it only when ``online_store`` is
``redis`` (otherwise nothing of the local environment reads it); ``services down`` and
``services status`` include it while it runs.

The server always binds loopback: it has no password here, so ``listen_host`` does not open it.
Its data lives under the state folder with the append-only file on, so features written
before a crash or ``kill -9`` are there again after ``services up redis``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from lambdarec.names import REDIS_SERVICE
from lambdarec.runtime.service import ManagedService
from lambdarec.runtime.topology import REDIS
from lambdarec.settings import Settings

INSTALL_HINT = (
    "install it: `apt-get install -y redis-server` (Debian/Ubuntu), `brew install redis` (macOS), "
    "or `make setup`; or point LAMBDAREC_REDIS__SERVER at the executable"
)


class RedisService(ManagedService):
    """One ``redis-server`` on loopback with append-only persistence under the state folder."""

    name = REDIS_SERVICE
    port_names = REDIS.port_names  # ("port",)
    startup_timeout_s = 60.0  # replaying a large append-only file on restart
    stop_timeout_s = 20.0
    started_by_default = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # A bare `services up` starts it when these settings make Redis the online store (the cluster
        # profile): every store opened with them would otherwise fail for want of a server.
        self.started_by_default = settings.online_store == "redis"

    def configured_ports(self) -> Mapping[str, int]:
        """The port pinned in settings (0 = pick a free one, kept across restarts)."""
        return {"port": self.settings.redis.port}

    def executable(self) -> str:
        """The ``redis-server`` path.

        Raises:
            PrerequisiteError: It is not installed (the message names the fix).
        """
        from lambdarec.runtime.errors import PrerequisiteError

        found = shutil.which(self.settings.redis.server)
        if found is None:
            raise PrerequisiteError(f"`{self.settings.redis.server}` was not found: {INSTALL_HINT}")
        return found

    def check_prerequisites(self) -> None:
        """Fail fast, naming the fix, when ``redis-server`` is missing."""
        self.executable()

    @property
    def config_path(self) -> Path:
        """The generated ``redis.conf``."""
        return self.home / "redis.conf"

    def server_config(self, ports: Mapping[str, int]) -> str:
        """The server configuration for the given port."""
        lines = {
            "bind": "127.0.0.1",
            "port": str(ports["port"]),
            "protected-mode": "yes",
            "daemonize": "no",  # the supervisor owns the process (group) and its log
            "logfile": '""',  # stdout, i.e. the supervisor's log file
            "dir": str(self.data_dir),
            # The append-only file is written before each reply is sent, so a killed process loses
            # nothing acknowledged (fsync every second only matters if the machine itself dies).
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": '""',  # no RDB snapshots besides the AOF's own rewrites
            "databases": "1",
        }
        return "".join(f"{key} {value}\n" for key, value in lines.items())

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Write the configuration; the data folder is kept across restarts."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.server_config(ports))

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run ``redis-server redis.conf`` in the foreground."""
        return [self.executable(), str(self.config_path)]

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """Feast's connection string (``host:port``), the value of ``LAMBDAREC_REDIS_URL``."""
        return REDIS.address("127.0.0.1", ports)

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the server answers PING (it answers LOADING, an error, while replaying its file)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from lambdarec.runtime.service import tcp_answers

        if not tcp_answers(ports["port"]):
            return False
        client = redis.Redis(
            host="127.0.0.1",
            port=ports["port"],
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

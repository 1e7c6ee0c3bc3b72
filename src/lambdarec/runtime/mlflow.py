"""The embedded MLflow tracking server: SQLite backend and registry, proxied local artifacts."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from lambdarec.names import MLFLOW_SERVICE
from lambdarec.runtime.service import ManagedService
from lambdarec.runtime.topology import MLFLOW

# Builds MLflow's whole schema (tracking and registry) in the database named by argv[1].
_CREATE_SCHEMA = (
    "import sys\n"
    "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
    "SqlAlchemyStore(sys.argv[1], sys.argv[2])\n"
)


class MlflowService(ManagedService):
    """``mlflow server`` on loopback with one worker.

    Runs, params, metrics and the model registry live in ``<data>/mlflow.db``; artifacts
    are uploaded *through* the server (``mlflow-artifacts:/``) into ``<data>/artifacts``,
    so clients never need the server's file system and a remote store can replace the
    folder later without touching the clients.
    """

    name = MLFLOW_SERVICE
    port_names = MLFLOW.port_names
    startup_timeout_s = 120.0  # the first start creates the SQLite schema (alembic migrations)

    def configured_ports(self) -> Mapping[str, int]:
        """The port pinned in settings (0 = pick a free one)."""
        return {"port": self.settings.mlflow.port}

    def check_prerequisites(self) -> None:
        """Fail fast when MLflow is not installed in this environment."""
        from importlib.util import find_spec

        from lambdarec.runtime.errors import PrerequisiteError

        if find_spec("mlflow") is None:
            raise PrerequisiteError("MLflow is not installed: run `make setup` (uv sync --extra runtime)")

    @property
    def database_path(self) -> Path:
        """The SQLite file holding the tracking and registry data."""
        return self.data_dir / "mlflow.db"

    @property
    def artifacts_dir(self) -> Path:
        """Where the server stores the artifacts clients upload."""
        return self.data_dir / "artifacts"

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Create the data folders and, on first start, the database (all of it, or none of it).

        ``mlflow server`` would create the schema itself, migration by migration in the live file:
        a start that ran out of disk left a half-migrated database that every later start refused
        ("table _alembic_tmp_... already exists"). The schema is built in a temporary file here and
        renamed into place only when it is complete; a failure leaves no database, and the next
        start builds it again.

        Raises:
            RuntimeServiceError: The database could not be created (the message says why, e.g. a
                full disk).
        """
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        if self.database_path.exists():
            return  # an existing database is MLflow's to migrate on start
        partial = self.database_path.with_name(self.database_path.name + ".partial")
        partial.unlink(missing_ok=True)
        import subprocess

        created = subprocess.run(
            [sys.executable, "-c", _CREATE_SCHEMA, f"sqlite:///{partial}", self.artifacts_dir.as_uri()],
            capture_output=True,
            text=True,
            env=self.environment(),
            check=False,
        )
        if created.returncode != 0:
            partial.unlink(missing_ok=True)
            from lambdarec.runtime.errors import RuntimeServiceError

            lines = [line for line in created.stderr.strip().splitlines() if line.strip()]
            cause = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
            raise RuntimeServiceError(
                f"could not create MLflow's database in {self.data_dir}: {cause.strip()}; "
                "nothing was kept, so the next start creates it again"
            )
        os.replace(partial, self.database_path)

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run ``mlflow server`` in the foreground with this environment's Python.

        ``mlflow server`` stays in the foreground as the parent of one uvicorn process
        (same process group) and forwards SIGTERM to it.
        """
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.database_path}",
            "--serve-artifacts",
            "--artifacts-destination",
            self.artifacts_dir.as_uri(),
            "--default-artifact-root",
            "mlflow-artifacts:/",
            "--host",
            self.settings.listen_host,  # loopback unless the settings open it
            "--port",
            str(ports["port"]),
            "--workers",
            "1",
        ]

    def environment(self) -> dict[str, str]:
        """The caller's environment, without MLflow's background job runner.

        The job runner (huey consumers for GenAI scorers) adds processes and memory that
        tracking and the registry do not need.
        """
        env = dict(os.environ)
        env.update(MLFLOW.env)  # MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
        # A tracking URI inherited from the caller must not point the server at itself.
        env.pop("MLFLOW_TRACKING_URI", None)
        return env

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The tracking URI for ``mlflow.set_tracking_uri`` / ``MlflowClient``."""
        return MLFLOW.address("127.0.0.1", ports)

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when ``GET /health`` answers ``OK``."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.endpoint(ports)}/health", timeout=2) as resp:
                return resp.status == 200 and resp.read().strip() == b"OK"
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

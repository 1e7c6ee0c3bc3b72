"""The embedded Airflow: ``airflow standalone`` over our ``dags/`` folder, on request (``services up airflow``).

``airflow standalone`` runs the scheduler, the DAG processor, the triggerer and the API server (the
UI and the REST API) as children of one process, with a SQLite metadata database and the simple
auth manager. Here it gets:

- ``AIRFLOW_HOME`` under the state folder (``<state>/services/airflow/data``): its ``airflow.cfg``,
  the metadata database, task logs and the generated admin password
  (``simple_auth_manager_passwords.json.generated``, user ``admin``);
- our DAGs (``<checkout>/dags``), the examples off, new DAGs paused (a DAG unpaused by hand runs its
  latest interval on the real engines);
- the API server on loopback, on a port picked once and kept; the tasks' execution API at that port;
- the tasks' lambdarec settings: the same state folder and environment as the CLI that started it.

It is not started by a bare ``services up`` (about 1 GB of memory, ~45-60 s to become healthy);
``services down`` and ``services status`` include it while it runs. Stopping signals the whole
process group: SIGTERM to the parent alone would orphan its ~40 children.

Known exception to loopback-only: Airflow's log servers (the LocalExecutor's worker log server and
the triggerer's) bind every interface and have no setting for it (``airflow.utils.serve_logs``
passes ``host=""`` to uvicorn); they get free ports here and serve task logs only, to clients holding
the API server's JWT secret.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from lambdarec.runtime.service import ManagedService
from lambdarec.runtime.topology import AIRFLOW, AIRFLOW_SERVICE
from lambdarec.settings import Settings, find_project_root

ADMIN_USER = "admin"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
HEALTH_PATH = "/api/v2/monitor/health"


class AirflowService(ManagedService):
    """``airflow standalone`` with a private ``AIRFLOW_HOME``, our DAGs and its API server on loopback."""

    name = AIRFLOW_SERVICE
    # The topology's port first (the UI and REST API); then the log servers' ports, process-internal.
    port_names = (*AIRFLOW.port_names, "worker_log_port", "trigger_log_port")
    startup_timeout_s = 240.0  # ~45-60 s measured on an idle machine; a first start migrates the database
    stop_timeout_s = 30.0
    started_by_default = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._ports: dict[str, int] = {}

    @property
    def airflow_home(self) -> Path:
        """``AIRFLOW_HOME``: configuration, metadata database, logs, the generated password."""
        return self.data_dir

    @property
    def password_file(self) -> Path:
        """Where ``airflow standalone`` writes the ``admin`` user's generated password (JSON)."""
        return self.airflow_home / PASSWORD_FILE

    def dags_folder(self) -> Path:
        """The checkout's ``dags/`` folder.

        Raises:
            PrerequisiteError: lambdarec runs outside a checkout (no ``dags/`` to serve).
        """
        from lambdarec.runtime.errors import PrerequisiteError

        root = find_project_root()
        if root is None or not (root / "dags").is_dir():
            raise PrerequisiteError("the Airflow service serves the checkout's dags/ folder; run it from a checkout")
        return root / "dags"

    def bin_dir(self) -> Path:
        """This environment's ``bin``: ``airflow`` and the ``airflow`` its children run from ``PATH``."""
        return Path(sys.executable).parent

    def check_prerequisites(self) -> None:
        """Fail fast, naming the fix, when Airflow is not installed or there is no ``dags/`` folder."""
        from importlib.util import find_spec

        from lambdarec.runtime.errors import PrerequisiteError

        if find_spec("airflow") is None or not (self.bin_dir() / "airflow").exists():
            raise PrerequisiteError(
                "Apache Airflow is not installed in this environment: run `make setup` (uv sync --extra orchestration)"
            )
        self.dags_folder()

    def configured_ports(self) -> Mapping[str, int]:
        """No port is pinned: each is picked free on first start and kept after."""
        return {}

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Create ``AIRFLOW_HOME`` and keep the chosen ports for :meth:`environment`.

        ``airflow standalone`` creates its ``airflow.cfg`` (with the secrets its components share) and
        migrates the database itself on start; everything set here goes through ``AIRFLOW__*`` variables.
        """
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self._ports = dict(ports)

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run ``airflow standalone`` in the foreground."""
        return [str(self.bin_dir() / "airflow"), "standalone"]

    def environment(self) -> dict[str, str]:
        """The Airflow configuration (``AIRFLOW__*``) and the tasks' lambdarec settings.

        The port-dependent settings (API port and base URL, the tasks' execution API, the log servers)
        come from the ports :meth:`prepare` was given; before that they are left out.
        """
        ports = self._ports or None
        env = dict(os.environ)
        env.update(AIRFLOW.env)
        # standalone starts its children as `airflow` from PATH: without this environment's bin first,
        # they are not found (or another installation's are), and it waits forever.
        env["PATH"] = f"{self.bin_dir()}{os.pathsep}{env.get('PATH', '')}"
        home = self.airflow_home
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder()),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
                # The tasks read the same state folder and environment as the CLI that started Airflow.
                "LAMBDAREC_STATE_DIR": str(self.settings.state_dir.resolve()),
                "LAMBDAREC_ENV": self.settings.env,
            }
        )
        if ports is not None:
            base = self.endpoint(ports)
            env.update(
                {
                    "AIRFLOW__API__PORT": str(ports["port"]),
                    "AIRFLOW__API__BASE_URL": base,
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_log_port"]),
                    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_log_port"]),
                }
            )
        return env

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The UI and REST API base URL (no client of ours is configured from it: the topology gives none)."""
        return f"http://127.0.0.1:{ports['port']}"

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the API server answers its health check with the database and the scheduler healthy.

        Every other component it reports (DAG processor, triggerer) must be healthy too.
        """
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.endpoint(ports)}{HEALTH_PATH}", timeout=3) as resp:
                if resp.status != 200:
                    return False
                health = json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False
        statuses = {name: (part or {}).get("status") for name, part in health.items() if isinstance(part, dict)}
        if statuses.get("metadatabase") != "healthy" or statuses.get("scheduler") != "healthy":
            return False
        return all(status in (None, "healthy") for status in statuses.values())

    def admin_password(self) -> str | None:
        """The generated password of the ``admin`` user (None before the first start wrote it)."""
        try:
            value = json.loads(self.password_file.read_text()).get(ADMIN_USER)
        except (FileNotFoundError, ValueError):
            return None
        return str(value) if value else None

    def notes(self, ports: Mapping[str, int]) -> list[str]:
        """The UI's URL and where its admin password is, for ``services up`` to print."""
        return [
            f"Airflow UI: {self.endpoint(ports)}/ (user {ADMIN_USER}; password in {self.password_file})",
            "our DAGs start paused: unpause one in the UI to schedule it on this machine's engines",
        ]

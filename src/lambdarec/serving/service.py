"""The recommender as a managed local process: ``bentoml serve`` of ``bentos/recommender`` under the supervisor.

:class:`RecommenderService` starts the BentoML service of the checkout (HTTP on ``port``, the gRPC
server beside it on ``grpc_port``) with the environment's settings passed as ``LAMBDAREC_*``
variables, so the service reads the same state folder, MLflow, Milvus and feature store as the
CLI that started it. It is healthy when ``/livez`` answers: the recommender answers from its
fallbacks before a model is loaded, and ``/readyz`` says when the models serve.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from lambdarec.names import RECOMMENDER_SERVICE
from lambdarec.runtime.errors import PrerequisiteError
from lambdarec.runtime.service import ManagedService, ServiceRecord
from lambdarec.settings import find_project_root

BENTO_DIR = Path("bentos") / "recommender"


def bento_dir() -> Path:
    """The checkout's ``bentos/recommender`` folder.

    Raises:
        PrerequisiteError: lambdarec is not running from a checkout.
    """
    root = find_project_root()
    if root is None or not (root / BENTO_DIR / "service.py").is_file():
        raise PrerequisiteError("the recommender runs from a lambdarec checkout (bentos/recommender/); none was found")
    return root / BENTO_DIR


class RecommenderService(ManagedService):
    """``bentoml serve service:Recommender`` in ``bentos/recommender`` (one worker, loopback by default)."""

    name = RECOMMENDER_SERVICE
    port_names = ("port", "grpc_port")
    startup_timeout_s = 180.0  # torch, Feast and the bundle load before the first answer
    stop_timeout_s = 20.0

    def configured_ports(self) -> Mapping[str, int]:
        """The ports pinned in settings (0 = pick free ones, kept across restarts)."""
        return {"port": self.settings.serving.port, "grpc_port": self.settings.serving.grpc_port}

    def check_prerequisites(self) -> None:
        """Fail fast without BentoML or a checkout."""
        from importlib.util import find_spec

        if find_spec("bentoml") is None:
            raise PrerequisiteError("BentoML is not installed: run `make setup`")
        bento_dir()

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Create the bundle cache folder."""
        (self.settings.state_dir.resolve() / "serving").mkdir(parents=True, exist_ok=True)

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """``bentoml serve`` from this environment's interpreter."""
        return [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "service:Recommender",
            "--working-dir",
            str(bento_dir()),
            "--host",
            self.settings.listen_host,
            "--port",
            str(ports["port"]),
        ]

    def environment(self) -> dict[str, str]:
        """The settings as ``LAMBDAREC_*`` variables (the service loads them), quiet BentoML telemetry."""
        env = super().environment()
        env.update(
            {
                "LAMBDAREC_ENV": self.settings.env,
                "LAMBDAREC_STATE_DIR": str(self.settings.state_dir.resolve()),
                "LAMBDAREC_LISTEN_HOST": self.settings.listen_host,
                "LAMBDAREC_SERVING__GRPC_PORT": str(self._ports().get("grpc_port", 0)),
                "BENTOML_DO_NOT_TRACK": "True",
                "BENTOML_HOME": str(self.home / "bentoml"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _ports(self) -> dict[str, int]:
        """The ports the supervisor chose for this start (written before the launch)."""
        record = ServiceRecord.load(self.ports_path)
        return dict(record.ports) if record else {}

    def working_dir(self) -> Path:
        """The bento folder (``service.py`` imports from there)."""
        return bento_dir()

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The HTTP base URL (loopback works whatever interface it listens on)."""
        return f"http://127.0.0.1:{ports['port']}"

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when ``GET /livez`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.endpoint(ports)}/livez", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

"""Fixtures of the DAG tests: one private, migrated Airflow home per test session.

Airflow reads its configuration once, at import, so every DAG test module shares this one home
(session scope); each test points the tasks at its own lambdarec state folder through
``LAMBDAREC_*`` variables, as a deployment would.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[3] / "dags"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private AIRFLOW_HOME with a migrated SQLite metadata DB and a private lambdarec state folder."""
    # Airflow reads its configuration once, at import: the environment must be set before that.
    if "airflow" in sys.modules:
        pytest.fail("airflow was imported before its private AIRFLOW_HOME was set")
    if importlib.util.find_spec("airflow") is None:
        pytest.skip("apache-airflow is not installed (the 'orchestration' extra)")
    home = tmp_path_factory.mktemp("airflow-home")
    state = tmp_path_factory.mktemp("dag-state")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "LAMBDAREC_STATE_DIR": str(state),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # Airflow's children run `airflow` from PATH: the venv's bin must be on it.
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    subprocess.run(
        [str(Path(bin_dir) / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{bin_dir}:{path}"},
        timeout=300,
    )
    import airflow  # noqa: F401 - configured from the environment above

    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

"""MLflow's first start builds its database whole or not at all (a full disk left half a schema)."""

from __future__ import annotations

from pathlib import Path

import pytest

import lambdarec.runtime.mlflow as mlflow_service
from lambdarec.runtime.errors import RuntimeServiceError
from lambdarec.settings import load_settings

# Stand-ins for the schema builder: argv[1] is the SQLite URI of the file to create.
HALF_THEN_FULL = (
    "import sys\n"
    "open(sys.argv[1].removeprefix('sqlite:///'), 'wb').write(b'half a schema')\n"
    "raise OSError('sqlite3.OperationalError: database or disk is full')\n"
)
WHOLE = "import sys\nopen(sys.argv[1].removeprefix('sqlite:///'), 'wb').write(b'a whole schema')\n"


def test_a_failed_first_start_keeps_no_database_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service = mlflow_service.MlflowService(load_settings("local", state_dir=tmp_path))
    monkeypatch.setattr(mlflow_service, "_CREATE_SCHEMA", HALF_THEN_FULL)
    with pytest.raises(RuntimeServiceError, match="database or disk is full.*next start creates it again"):
        service.prepare({"port": 1})
    assert sorted(p.name for p in service.data_dir.iterdir()) == ["artifacts"]  # no database, no partial file

    monkeypatch.setattr(mlflow_service, "_CREATE_SCHEMA", WHOLE)
    service.prepare({"port": 1})
    assert service.database_path.read_bytes() == b"a whole schema"
    monkeypatch.setattr(mlflow_service, "_CREATE_SCHEMA", HALF_THEN_FULL)
    service.prepare({"port": 1})  # an existing database is MLflow's to migrate: left alone
    assert service.database_path.read_bytes() == b"a whole schema"

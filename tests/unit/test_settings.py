"""Settings per environment: files, environment variables, secret rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lambdarec.settings import Settings, find_project_root, load_settings


def test_local_defaults_come_from_the_environment_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDAREC_ENV", raising=False)
    settings = load_settings()
    assert settings.env == "local"
    assert settings.kafka.bootstrap_servers is None  # the embedded broker
    assert settings.kafka.partitions == 4


def test_environment_variables_override_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDAREC_KAFKA__PARTITIONS", "9")
    monkeypatch.setenv("LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    settings = load_settings("local")
    assert settings.kafka.partitions == 9
    assert settings.kafka.bootstrap_servers == "broker:9092"


def test_explicit_overrides_win(tmp_path: Path) -> None:
    assert load_settings("local", state_dir=tmp_path).state_dir == tmp_path


def test_explicit_overrides_win_over_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDAREC_STATE_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("LAMBDAREC_KAFKA__PARTITIONS", "9")
    settings = load_settings("local", state_dir=tmp_path / "explicit", kafka={"partitions": 3})
    assert settings.state_dir == tmp_path / "explicit"
    assert settings.kafka.partitions == 3
    # Variables the caller did not override still apply.
    monkeypatch.setenv("LAMBDAREC_SERVING__PORT", "4321")
    assert load_settings("local", state_dir=tmp_path).serving.port == 4321


def test_default_secret_is_refused_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDAREC_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="secret_key must be set"):
        load_settings("prod")
    monkeypatch.setenv("LAMBDAREC_SECRET_KEY", "s3cret")
    prod = load_settings("prod")
    assert prod.env == "prod" and prod.kafka.partitions == 48


def test_unknown_environment_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(env="qa")  # type: ignore[arg-type]


def test_project_root_and_jars_dir_are_found() -> None:
    root = find_project_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert load_settings("local").resolved_jars_dir() == root / ".cache" / "jars"

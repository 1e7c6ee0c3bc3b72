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


def test_a_profile_is_recorded_and_passed_to_the_processes_the_supervisor_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdarec.serving.service import RecommenderService
    from lambdarec.stream.service import PusherService

    monkeypatch.delenv("LAMBDAREC_PROFILE", raising=False)
    plain = load_settings("local", state_dir=tmp_path)
    assert plain.profile is None and plain.kafka.brokers == 1
    assert "LAMBDAREC_PROFILE" not in RecommenderService(plain).environment()

    chosen = load_settings("local", profile="cluster", state_dir=tmp_path)
    assert chosen.profile == "cluster" and chosen.kafka.brokers == 3 and chosen.online_store == "redis"
    for service in (RecommenderService(chosen), PusherService(chosen, "127.0.0.1:9092")):
        assert service.environment()["LAMBDAREC_PROFILE"] == "cluster"

    # What a child process started with that environment loads: the same profile, and the
    # caller's explicit values still win over it.
    monkeypatch.setenv("LAMBDAREC_PROFILE", "cluster")
    child = load_settings("local", state_dir=tmp_path, kafka={"brokers": 1, "replication_factor": 1})
    assert child.profile == "cluster" and child.online_store == "redis" and child.kafka.brokers == 1
    with pytest.raises(ValueError, match="unknown profile 'nope'; known: \\['cluster'\\]"):
        load_settings("local", profile="nope")

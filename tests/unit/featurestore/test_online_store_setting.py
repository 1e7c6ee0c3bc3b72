"""``online_store = "redis"`` (the cluster profile): Redis in place of the yaml's online store, nothing else.

The default (``environment``) must leave every ``feature_store.yaml`` as it is; ``redis`` replaces
local's SQLite with Redis at ``redis_url`` (else the embedded server's address), keeps a yaml that
already names Redis, and makes a bare ``services up`` start the embedded Redis.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lambdarec.featurestore.store import load_config_dict
from lambdarec.names import REDIS_SERVICE
from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.redis_server import RedisService
from lambdarec.runtime.service import ServiceRecord
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.runtime.topology import REDIS_URL_ENV
from lambdarec.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _no_redis_in_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's LAMBDAREC_REDIS_URL would otherwise answer for the settings under test.
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    monkeypatch.delenv("LAMBDAREC_ONLINE_STORE", raising=False)


def _cluster(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings("local", state_dir=tmp_path, **(profile_overrides("cluster") | overrides))


def test_the_default_keeps_the_environments_online_store(tmp_path: Path) -> None:
    settings = load_settings("local", state_dir=tmp_path)
    assert settings.online_store == "environment"
    block = load_config_dict(settings)["online_store"]
    assert block == {"type": "sqlite", "path": f"{tmp_path.resolve()}/feast/online.db"}
    assert RedisService(settings).started_by_default is False


def test_the_cluster_profile_sets_redis(tmp_path: Path) -> None:
    assert profile_overrides("cluster")["online_store"] == "redis"
    assert _cluster(tmp_path).online_store == "redis"


def test_redis_replaces_sqlite_at_the_configured_url(tmp_path: Path) -> None:
    settings = _cluster(tmp_path, redis_url="10.0.0.5:6380,password=x")
    data = load_config_dict(settings)
    assert data["online_store"] == {"type": "redis", "connection_string": "10.0.0.5:6380,password=x"}
    # Only the online store changes: registry and offline store are local's.
    assert data["offline_store"] == {"type": "duckdb"}
    assert data["registry"]["path"] == f"{tmp_path.resolve()}/feast/registry.db"


def test_redis_falls_back_to_the_running_embedded_server(tmp_path: Path) -> None:
    settings = _cluster(tmp_path)
    service = RedisService(settings)
    # The record a running server leaves, with a live pid (this process's): no server is started here.
    service.home.mkdir(parents=True)
    ServiceRecord(
        name=REDIS_SERVICE,
        pid=os.getpid(),
        ports={"port": 6399},
        started_at=time.time(),
        log_path=str(service.log_path),
    ).save(service.record_path)
    data = load_config_dict(settings)
    assert data["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6399"}


def test_redis_with_no_server_fails_naming_both_fixes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"online_store is 'redis' .*'sqlite'.*services up redis.*LAMBDAREC_REDIS_URL"):
        load_config_dict(_cluster(tmp_path))


def test_a_yaml_that_names_redis_keeps_its_block(tmp_path: Path) -> None:
    settings = load_settings(
        "prod", state_dir=tmp_path, secret_key="test-only", redis_url="r:6379", online_store="redis"
    )
    block = load_config_dict(settings)["online_store"]
    assert block == {"type": "redis", "connection_string": "r:6379", "key_ttl_seconds": 2592000}


def test_a_bare_services_up_starts_redis_under_the_profile_only(tmp_path: Path) -> None:
    def selected(settings: Settings) -> list[str]:
        return [s.name for s in Supervisor(settings)._select(None)]  # noqa: SLF001 - what a bare `up` starts

    assert REDIS_SERVICE in selected(_cluster(tmp_path / "cluster"))
    assert RedisService(_cluster(tmp_path / "cluster")).started_by_default is True
    assert REDIS_SERVICE not in selected(load_settings("local", state_dir=tmp_path / "local"))

"""The embedded Redis (``lambdarec services up redis``): a real redis-server under the supervisor.

It is the online store of a Redis environment (staging's ``feature_store.yaml``) run on one machine:
its address fills ``${LAMBDAREC_REDIS_URL}`` when nothing else does, its data survives ``kill -9``,
and a store opened on it fails fast while it is down and answers again once it is back, without
being reopened (what the recommender's ``online_store_unavailable`` fallback relies on).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lambdarec.names import REDIS_SERVICE
from lambdarec.runtime.exposure import exposed_sockets, listening_sockets
from lambdarec.runtime.redis_server import RedisService
from lambdarec.runtime.service import port_is_free
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """A private state folder: these tests kill and restart their server."""
    return load_settings("local", state_dir=tmp_path)


@pytest.fixture()
def supervisor(settings: Settings) -> Iterator[Supervisor]:
    """The supervisor of every embedded engine (as `lambdarec services` builds it); Redis stopped at the end."""
    service = RedisService(settings)
    service.check_prerequisites()  # a missing redis-server fails here, naming the fix
    supervisor = Supervisor(settings)
    yield supervisor
    supervisor.down([REDIS_SERVICE])


def kill_9(pid: int) -> None:
    process = psutil.Process(pid)
    process.kill()
    process.wait(10)


def test_services_up_redis_runs_it_on_loopback_and_it_keeps_its_data_after_kill_9(supervisor: Supervisor) -> None:
    import redis

    (status,) = supervisor.up([REDIS_SERVICE])
    assert status.healthy and status.pid is not None
    port = status.ports["port"]
    assert status.endpoint == f"127.0.0.1:{port}"
    assert any(s.port == port for s in listening_sockets(status.pid))  # the check sees what it vets
    assert exposed_sockets(status.pid) == []
    assert REDIS_SERVICE in {s.name for s in supervisor.status() if s.healthy}  # a running Redis joins a bare status
    client = redis.Redis(host="127.0.0.1", port=port)
    client.hset(b"features", mapping={b"a": b"1"})
    client.close()

    kill_9(status.pid)
    assert supervisor.status([REDIS_SERVICE])[0].state == "stopped"
    (again,) = supervisor.up([REDIS_SERVICE])
    assert again.pid != status.pid and again.ports["port"] == port  # same address: clients keep working
    client = redis.Redis(host="127.0.0.1", port=port)
    assert client.hgetall(b"features") == {b"a": b"1"}  # the append-only file had it
    client.close()

    assert supervisor.down() == [REDIS_SERVICE]  # a bare `services down` stops it
    assert port_is_free(port)


def test_a_store_on_it_fails_fast_while_it_is_down_and_answers_again_after_restart(
    supervisor: Supervisor, settings: Settings
) -> None:
    from feast.infra.online_stores.redis import RedisOnlineStore

    from lambdarec import names
    from lambdarec.featurestore.online import OnlineFeatureReader, bound_online_store_waits, ping_online_store
    from lambdarec.featurestore.store import apply, open_store

    with pytest.raises(ValueError, match="services up redis"):
        open_store(settings.model_copy(update={"env": "staging"}))  # no server, no LAMBDAREC_REDIS_URL
    (status,) = supervisor.up([REDIS_SERVICE])
    assert status.pid is not None
    staging = load_settings("staging", state_dir=settings.state_dir, secret_key="test-only-secret")
    apply(staging)  # the definitions into this state's registry (nothing materialized: empty rows)
    store = open_store(staging)  # ${LAMBDAREC_REDIS_URL} = the embedded server's address
    assert store.config.online_store.connection_string == status.endpoint
    assert bound_online_store_waits(store, 0.02)
    online = store._get_provider().online_store  # noqa: SLF001
    assert isinstance(online, RedisOnlineStore)
    client = online._get_client(store.config.online_store)  # noqa: SLF001
    assert client.get_retry().get_retries() == 1
    reader = OnlineFeatureReader(store, names.FALLBACK_FEATURE_SERVICE)
    rows = {names.USER_ID: ["", ""], names.ITEM_ID: ["i-1", "i-2"]}
    ping_online_store(store)
    assert reader.read(rows)[names.ITEM_TRENDING_COUNT] == [None, None]

    kill_9(status.pid)
    with pytest.raises(ConnectionError, match=f"Redis at {status.endpoint} does not answer"):
        ping_online_store(store)
    import redis

    with pytest.raises(redis.ConnectionError):
        reader.read(rows)

    supervisor.up([REDIS_SERVICE])
    ping_online_store(store)  # the same store object: its pool reconnects, nothing is reopened
    assert reader.read(rows)[names.ITEM_TRENDING_COUNT] == [None, None]

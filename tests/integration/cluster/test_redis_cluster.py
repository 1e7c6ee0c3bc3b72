"""The cluster profile's online store: Redis (the embedded redis-server), chosen by the profile's settings alone.

``lambdarec --profile cluster`` sets ``online_store = "redis"``: the local environment's
``feature_store.yaml`` (SQLite) is opened with Redis in its place, at the address of the embedded
server the profile's ``services up`` starts. Gold tables of a small seeded shop are materialized
through that store and read back through the reader the recommender uses; the values must equal
Feast's own read and the single-process path's (the same gold materialized into SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lambdarec import names
from lambdarec.batch.lake import Lake, parse_date, snapshot_time
from lambdarec.batch.pipeline import example_entities
from lambdarec.featurestore.store import (
    apply,
    get_online_features,
    materialize,
    online_reader,
    open_store,
    read_online_features,
)
from lambdarec.runtime.cluster import profile_overrides
from lambdarec.runtime.redis_server import RedisService
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.runtime.topology import REDIS_URL_ENV
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration

DAYS = ["2024-03-01", "2024-03-02"]
END = snapshot_time(parse_date(DAYS[-1])) + timedelta(seconds=1)
START = END - timedelta(days=31)
REQUEST_MS = 1_709_600_000_000


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state folder: its lake's gold is read by both the profile's store and the plain local one."""
    return tmp_path_factory.mktemp("redis-cluster")


@pytest.fixture(scope="module")
def profile(state_dir: Path) -> Iterator[Settings]:
    """The cluster profile's settings, with no Redis address in the shell (the embedded one must answer)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(REDIS_URL_ENV, raising=False)
        patch.delenv("LAMBDAREC_ONLINE_STORE", raising=False)
        yield load_settings("local", state_dir=state_dir, **profile_overrides("cluster"))


@pytest.fixture(scope="module")
def redis_endpoint(profile: Settings) -> Iterator[str]:
    """The embedded Redis under the profile, started as its bare ``services up`` would (it is in that set)."""
    RedisService(profile).check_prerequisites()  # a missing redis-server fails here, naming the fix
    supervisor = Supervisor(profile)
    redis = next(s for s in supervisor._select(None) if s.name == names.REDIS_SERVICE)  # noqa: SLF001
    supervisor = Supervisor(profile, [redis])
    try:
        (status,) = supervisor.up()
        assert status.healthy and status.endpoint is not None
        yield status.endpoint
    finally:
        supervisor.down()


@pytest.fixture(scope="module")
def gold(profile: Settings) -> Lake:
    """Silver and gold of two days of a seeded shop, built in process on local[1]."""
    import pyarrow.compute as pc

    from lambdarec.batch.gold import build_gold
    from lambdarec.batch.silver import build_silver
    from lambdarec.batch.spark import build_spark, jvm_running, stop_spark
    from lambdarec.batch.testing import bronze_table, write_bronze
    from lambdarec.data.generator import GeneratorConfig, generate_events_table

    start = datetime(2024, 3, 1, tzinfo=UTC)
    table = generate_events_table(
        n_events=2_000, n_items=150, n_users=80, seed=5, config=GeneratorConfig(start=start, days=2)
    )
    table = table.filter(pc.less(table["event_time"], int(start.timestamp() * 1000) + 2 * 86_400_000))
    lake = Lake.under(profile.state_dir)
    write_bronze(lake, bronze_table(table), run="first")
    ours = not jvm_running()
    spark = build_spark("lambdarec-redis-cluster-test", master="local[1]", shuffle_partitions=2)
    try:
        build_silver(spark, lake, DAYS)
        for day in DAYS:
            build_gold(spark, lake, day)
    finally:
        stop_spark(spark, jvm=ours)
    return lake


def test_the_profiles_store_materializes_into_the_embedded_redis_and_reads_what_sqlite_reads(
    profile: Settings, redis_endpoint: str, gold: Lake
) -> None:
    import redis

    store = open_store(profile)
    assert store.config.online_store.type == "redis"
    assert store.config.online_store.connection_string == redis_endpoint
    assert {names.RANKING_FEATURE_SERVICE} <= set(apply(profile)["FeatureService"])
    report = materialize(profile, START, END)
    assert report.rows[names.USER_HISTORY_FEATURE_VIEW] > 0 and report.rows[names.ITEM_STATS_FEATURE_VIEW] > 0
    host, port = redis_endpoint.split(":")
    client = redis.Redis(host=host, port=int(port))
    assert client.dbsize() > 0  # the rows are in Redis ...
    client.close()

    example = example_entities(profile)
    assert example is not None
    user, items = example
    candidates = [*items, "no-such-item"]
    reader = online_reader(store)  # the recommender's reader
    on_redis = read_online_features(reader, user, candidates, request_time_ms=REQUEST_MS)
    assert on_redis == get_online_features(store, user, candidates, request_time_ms=REQUEST_MS)
    assert all(v is not None and v > 0 for v in on_redis["user_events_30d"][: len(items)])

    # ... and the single-process path (local's SQLite over the same gold) reads the same values.
    local = load_settings("local", state_dir=profile.state_dir)
    assert local.online_store == "environment"
    sqlite_store = open_store(local)
    assert sqlite_store.config.online_store.type == "sqlite"
    apply(local)  # the same registry; this creates the SQLite tables
    materialize(local, START, END)
    assert read_online_features(online_reader(sqlite_store), user, candidates, request_time_ms=REQUEST_MS) == on_redis


def test_features_get_under_the_profile_reads_redis(profile: Settings, redis_endpoint: str, gold: Lake) -> None:
    from typer.testing import CliRunner

    from lambdarec.cli import app

    apply(profile)
    materialize(profile, START, END)
    example = example_entities(profile)
    assert example is not None
    user, items = example
    expected = get_online_features(open_store(profile), user, items)
    argv = ["--profile", "cluster", "--state-dir", str(profile.state_dir), "features", "get"]
    result = CliRunner().invoke(app, [*argv, "--user", user, "--items", ",".join(items), "--json"])
    assert result.exit_code == 0, result.output
    assert user in result.output and str(expected["user_events_30d"][0]) in result.output

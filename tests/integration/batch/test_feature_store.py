"""Feast over the gold tables: apply, materialize, online reads (SQLite, Redis)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from batch_lake_helpers import LAST

from feast_gold import online_cells
from lambdarec import names
from lambdarec.batch.lake import Lake, parse_date, snapshot_time
from lambdarec.batch.pipeline import example_entities
from lambdarec.featurestore.store import (
    BATCH_TABLES,
    apply,
    get_online_features,
    materialize,
    online_reader,
    open_store,
    read_online_features,
)
from lambdarec.settings import Settings, load_settings

END = snapshot_time(parse_date(LAST)) + timedelta(seconds=1)
START = END - timedelta(days=31)


@pytest.fixture(scope="module")
def applied(batch_settings: Settings, built: dict) -> Settings:
    applied = apply(batch_settings)
    assert {names.RETRIEVAL_FEATURE_SERVICE, names.RANKING_FEATURE_SERVICE} <= set(applied["FeatureService"])
    return batch_settings


def test_materialize_and_online_read_on_sqlite(applied: Settings) -> None:
    report = materialize(applied, START, END)
    assert report.rows[names.USER_HISTORY_FEATURE_VIEW] > 0 and report.rows_per_s > 0
    example = example_entities(applied)
    assert example is not None
    user, items = example
    values = get_online_features(open_store(applied), user, items)
    assert values[names.USER_ID] == [user] * len(items)
    assert all(v is not None and v > 0 for v in values["user_events_30d"])
    assert all(v is not None and v > 0 for v in values["item_popularity_30d"])
    assert set(values["item_in_user_top_categories"]) <= {0, 1}


def test_fast_reader_equals_feast_on_sqlite(applied: Settings) -> None:
    """The fast path returns exactly Feast's values on the materialized gold tables."""
    materialize(applied, START, END)
    example = example_entities(applied)
    assert example is not None
    user, items = example
    store = open_store(applied)
    reader = online_reader(store)
    for who, candidates in ((user, items), (user, [*items[:3], "no-such-item", items[0]]), ("no-such-user", items)):
        expected = get_online_features(store, who, candidates, request_time_ms=1_709_600_000_000)
        assert read_online_features(reader, who, candidates, request_time_ms=1_709_600_000_000) == expected


def test_cli_prints_online_values(applied: Settings) -> None:
    from typer.testing import CliRunner

    from lambdarec.cli import app

    materialize(applied, START, END)
    example = example_entities(applied)
    assert example is not None
    user, items = example
    result = CliRunner().invoke(
        app,
        [
            "--state-dir",
            str(applied.state_dir),
            "features",
            "get",
            "--user",
            user,
            "--items",
            ",".join(items),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "user_events_30d" in result.output and user in result.output


def test_redis_online_store(
    applied: Settings,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The prod feature_store.yaml (Redis online store) against a real redis-server."""
    import redis

    example = example_entities(applied)
    assert example is not None
    user, items = example
    materialize(applied, START, END)
    sqlite_values = get_online_features(open_store(applied), user, items, request_time_ms=1)
    monkeypatch.setenv("LAMBDAREC_REDIS_URL", redis_url)
    # Same lake, own registry: FEAST_DIR moves the registry out of the SQLite environment's folder.
    monkeypatch.setenv("FEAST_DIR", str(tmp_path_factory.mktemp("feast-prod")))
    monkeypatch.setenv("LAMBDAREC_LAKE_DIR", str(Lake.under(applied.state_dir).root))
    prod = load_settings("prod", state_dir=applied.state_dir, secret_key="test-only-secret")
    assert open_store(prod).config.online_store.type == "redis"
    apply(prod)
    report = materialize(prod, START, END)
    assert report.rows[names.ITEM_STATS_FEATURE_VIEW] > 0
    host, port = redis_url.split(":")
    assert redis.Redis(host=host, port=int(port)).dbsize() > 0
    redis_values = get_online_features(open_store(prod), user, items, request_time_ms=1)
    assert redis_values == sqlite_values
    # The fast path reads Redis through Feast's RedisOnlineStore.online_read: same values.
    assert read_online_features(online_reader(open_store(prod)), user, items, request_time_ms=1) == redis_values


def test_direct_load_writes_what_feast_materialize_writes(
    applied: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On Spark's gold (lists, nulls, sessions, neighbours) the SQLite load's cells are Feast's own."""
    materialize(applied, START, END)  # the direct load: the default on SQLite
    direct = online_cells(applied, BATCH_TABLES)
    monkeypatch.setenv("LAMBDAREC_LAKE_DIR", str(Lake.under(applied.state_dir).root))
    other = load_settings("local", state_dir=tmp_path_factory.mktemp("through-feast"))
    apply(other)
    materialize(other, START, END, list(BATCH_TABLES), through_feast=True)
    through_feast = online_cells(other, BATCH_TABLES)
    assert all(through_feast[view] for view in BATCH_TABLES)  # every batch view has cells
    assert direct == through_feast

"""The reader's direct Redis read returns exactly what Feast returns, on the embedded redis-server.

:class:`OnlineFeatureReader` reads Redis with its own pipelined ``HMGET`` of the hashes Feast
wrote (every view of one entity in one command). These tests materialize the awkward gold tables
into a real Redis and compare it, per service and per case (nulls, unknown users and items,
duplicate candidates), with Feast's ``get_online_features`` and with the reader going through
Feast's own ``RedisOnlineStore.online_read``; then a write through Feast is seen by the next read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from feast_gold import CASES, NOW_MS, SNAPSHOT, write_gold
from lambdarec import names
from lambdarec.featurestore.online import OnlineFeatureReader
from lambdarec.featurestore.store import (
    apply,
    get_online_features,
    materialize,
    open_store,
    ranking_columns,
)
from lambdarec.runtime.redis_server import RedisService
from lambdarec.runtime.supervisor import Supervisor
from lambdarec.settings import Settings, load_settings

pytestmark = pytest.mark.integration

SERVICES = [names.RANKING_FEATURE_SERVICE, names.CANDIDATE_FEATURE_SERVICE]


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A Redis environment (staging's feature_store.yaml) on the embedded server, gold materialized."""
    state: Path = tmp_path_factory.mktemp("redis-reader")
    local = load_settings("local", state_dir=state)
    RedisService(local).check_prerequisites()  # a missing redis-server fails here, naming the fix
    supervisor = Supervisor(local)
    supervisor.up([names.REDIS_SERVICE])
    try:
        write_gold(state / "lake")
        settings = load_settings("staging", state_dir=state, secret_key="test-only-secret")
        apply(settings)
        views = [names.USER_HISTORY_FEATURE_VIEW, names.ITEM_STATS_FEATURE_VIEW]
        materialize(settings, SNAPSHOT - timedelta(days=3), SNAPSHOT + timedelta(seconds=1), views)
        yield settings
    finally:
        supervisor.down([names.REDIS_SERVICE])


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(("user", "items"), CASES)
def test_direct_redis_read_equals_feast(staging: Settings, service: str, user: str, items: list[str]) -> None:
    store = open_store(staging)
    direct = OnlineFeatureReader(store, service)
    through_feast = OnlineFeatureReader(store, service, use_store_read=True)
    assert direct._direct_redis and not through_feast._direct_redis  # noqa: SLF001 - the path under test
    columns = ranking_columns(user, items, NOW_MS)
    expected = get_online_features(store, user, items, service=service, request_time_ms=NOW_MS)
    for reader in (direct, through_feast):
        got = reader.read(columns)
        assert got == expected
        assert {k: [type(v) for v in values] for k, values in got.items()} == {
            k: [type(v) for v in values] for k, values in expected.items()
        }
    if user == "u1":  # the case has data: the comparison above was not between two empty answers
        assert expected["item_category"] == ["c1", "c3", None]


def test_direct_redis_read_sees_new_writes_and_rows_own_their_lists(staging: Settings) -> None:
    store = open_store(staging)
    reader = OnlineFeatureReader(store, names.RANKING_FEATURE_SERVICE)  # user and item views in one read
    before = reader.read(ranking_columns("u1", ["i1", "i2"], NOW_MS))
    tops = before["user_top_categories"]
    assert tops[0] == ["c1", "c2"] and tops[0] is not tops[1]
    tops[0].append("mutated")  # a caller's change never reaches the next read (nor the memo)
    frame = pd.DataFrame(
        {
            "item_id": ["i2"],
            **{f"item_{k}_{d}d": [77] for d in (1, 7, 30) for k in ("views", "carts", "purchases", "popularity")},
            "item_cart_rate_30d": [0.5],
            "item_conversion_rate_30d": [0.25],
            "item_price_mean_30d": [12.5],
            "item_category": ["c9"],
            "item_brand": ["b9"],
            "event_timestamp": [pd.Timestamp(SNAPSHOT + timedelta(hours=1))],
        }
    )
    store.write_to_online_store(names.ITEM_STATS_FEATURE_VIEW, frame)
    after = reader.read(ranking_columns("u1", ["i1", "i2"], NOW_MS))
    assert after["user_top_categories"] == [["c1", "c2"], ["c1", "c2"]]
    assert after["item_category"] == ["c1", "c9"] and after["item_views_1d"] == [1, 77]
    assert after == get_online_features(
        store, "u1", ["i1", "i2"], service=names.RANKING_FEATURE_SERVICE, request_time_ms=NOW_MS
    )

"""OnlineFeatureReader returns exactly what Feast's get_online_features returns (project repo, SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("feast")

import pandas as pd  # noqa: E402

from lambdarec import names  # noqa: E402
from lambdarec.featurestore.online import OnlineFeatureReader, normalize  # noqa: E402
from lambdarec.featurestore.store import (  # noqa: E402
    apply,
    get_online_features,
    materialize,
    online_reader,
    open_store,
    read_online_features,
)
from lambdarec.settings import Settings, load_settings  # noqa: E402

SNAPSHOT = datetime(2024, 3, 5, tzinfo=UTC)
NOW_MS = int(SNAPSHOT.timestamp() * 1000) + 3_600_000


def write_gold(lake: Path) -> None:
    """Tiny gold tables with the awkward cases: nulls, no purchases, zero spend, empty lists."""
    stamp = pd.Timestamp(SNAPSHOT)
    last_ms = int(SNAPSHOT.timestamp() * 1000) - 60_000
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4"],
            "user_events_30d": [10, 3, 1, 7],
            "user_views_30d": [8, 3, 1, 5],
            "user_carts_30d": [1, 0, 0, 1],
            "user_purchases_30d": [2, 0, 1, 1],
            "user_spend_30d": [40.0, 0.0, 0.0, None],
            "user_distinct_items_30d": [5, 2, 1, 3],
            "user_visits_30d": [2, 1, 1, 2],
            "user_last_event_ms": [last_ms, last_ms - 5, None, last_ms],
            "user_days_since_last_event": [0.5, 1.5, None, 0.1],
            "user_top_categories": [["c1", "c2"], [], None, ["c3"]],
            "user_recent_items_30d": [["i1", "i2"], [], None, ["i3"]],
            "event_timestamp": stamp,
        }
    )
    items: dict[str, list[object]] = {"item_id": ["i1", "i2", "i3"]}
    for days in (1, 7, 30):
        for kind in ("views", "carts", "purchases", "popularity"):
            items[f"item_{kind}_{days}d"] = [days, 0, days * 3]
    items |= {
        "item_cart_rate_30d": [0.25, None, 0.5],
        "item_conversion_rate_30d": [0.1, 0.0, 0.05],
        "item_price_mean_30d": [20.0, 0.0, None],
        "item_category": ["c1", "c3", None],
        "item_brand": ["b1", None, "b2"],
        "event_timestamp": [stamp] * 3,
    }
    for table, frame in (("user_history", users), ("item_stats", pd.DataFrame(items))):
        folder = lake / "gold" / table / f"date={(SNAPSHOT - timedelta(days=1)).date()}"
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "part-0.parquet", index=False)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("feast-reader")
    write_gold(state / "lake")
    settings = load_settings("local", state_dir=state)
    apply(settings)
    views = [names.USER_HISTORY_FEATURE_VIEW, names.ITEM_STATS_FEATURE_VIEW]
    materialize(settings, SNAPSHOT - timedelta(days=3), SNAPSHOT + timedelta(seconds=1), views)
    return settings


CASES = [
    ("u1", ["i1", "i2", "i3"]),
    ("u2", ["i2", "i1", "i2", "nope"]),  # duplicates and an unknown item
    ("u3", ["i3", "i1", "i2"]),  # nulls, a zero ticket (inf) and 0/0
    ("u4", ["i1", "i3"]),
    ("ghost", ["i1", "ghost-item"]),  # unknown user
]


@pytest.mark.parametrize(("user", "items"), CASES)
def test_reader_equals_feast_on_sqlite(settings: Settings, user: str, items: list[str]) -> None:
    store = open_store(settings)
    expected = get_online_features(store, user, items, request_time_ms=NOW_MS)
    through_store = OnlineFeatureReader(store, names.RANKING_FEATURE_SERVICE, use_store_read=True)
    for reader in (online_reader(store), through_store):
        got = read_online_features(reader, user, items, request_time_ms=NOW_MS)
        assert got == expected
        assert list(got)[:2] == [names.USER_ID, names.ITEM_ID] and set(got) == set(expected)
        assert {k: [type(v) for v in values] for k, values in got.items()} == {
            k: [type(v) for v in values] for k, values in expected.items()
        }


def test_reader_rows_own_their_lists(settings: Settings) -> None:
    got = read_online_features(online_reader(open_store(settings)), "u1", ["i1", "i2"], request_time_ms=NOW_MS)
    tops = got["user_top_categories"]
    assert tops[0] == ["c1", "c2"] and tops[0] is not tops[1]
    tops[0].append("mutated")
    again = read_online_features(online_reader(open_store(settings)), "u1", ["i1"], request_time_ms=NOW_MS)
    assert again["user_top_categories"] == [["c1", "c2"]]


def test_reader_sees_new_writes_and_checks_rows(settings: Settings) -> None:
    store = open_store(settings)
    reader = online_reader(store)
    before = read_online_features(reader, "u1", ["i1"], request_time_ms=NOW_MS)
    frame = pd.DataFrame(
        {
            "item_id": ["i1"],
            **{f"item_{k}_{d}d": [99] for d in (1, 7, 30) for k in ("views", "carts", "purchases", "popularity")},
            "item_cart_rate_30d": [0.75],
            "item_conversion_rate_30d": [0.2],
            "item_price_mean_30d": [30.0],
            "item_category": ["c2"],
            "item_brand": ["b2"],
            "event_timestamp": [pd.Timestamp(SNAPSHOT + timedelta(hours=1))],
        }
    )
    store.write_to_online_store(names.ITEM_STATS_FEATURE_VIEW, frame)
    after = read_online_features(reader, "u1", ["i1"], request_time_ms=NOW_MS)
    assert before["item_views_1d"] == [1] and after["item_views_1d"] == [99]
    assert after == get_online_features(store, "u1", ["i1"], request_time_ms=NOW_MS)
    with pytest.raises(ValueError, match="request_time_ms"):
        reader.read({names.USER_ID: ["u1"], names.ITEM_ID: ["i1"]})
    with pytest.raises(ValueError, match="lengths"):
        reader.read({names.USER_ID: ["u1"], names.ITEM_ID: ["i1", "i2"], "request_time_ms": [1]})


def test_normalize_matches_feasts_round_trip() -> None:
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
    from feast.value_type import ValueType

    cases = [
        (["a", None, "b"], ValueType.STRING),
        ([1, None, 2**40], ValueType.INT64),
        ([1.5, float("nan"), None, float("inf")], ValueType.DOUBLE),
        ([3, 4], ValueType.UNKNOWN),
        ([1, 2.5], ValueType.DOUBLE),
        ([True, False], ValueType.BOOL),
        ([None, None], ValueType.INT64),
    ]
    for values, value_type in cases:
        expected = [feast_value_type_to_python_type(p) for p in python_values_to_proto_values(values, value_type)]
        assert normalize(values, value_type) == expected, (values, value_type)

"""OnlineFeatureReader returns exactly what Feast's get_online_features returns (project repo, SQLite)."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip("feast")

import pandas as pd  # noqa: E402

from feast_gold import CASES, NOW_MS, SNAPSHOT, write_gold  # noqa: E402
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


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("feast-reader")
    write_gold(state / "lake")
    settings = load_settings("local", state_dir=state)
    apply(settings)
    views = [names.USER_HISTORY_FEATURE_VIEW, names.ITEM_STATS_FEATURE_VIEW]
    materialize(settings, SNAPSHOT - timedelta(days=3), SNAPSHOT + timedelta(seconds=1), views)
    return settings


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


def test_batch_only_views_get_the_covering_read_index(settings: Settings) -> None:
    import sqlite3

    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from lambdarec.featurestore.sqlite_layout import add_read_indexes, select_packed, sqlite_table, sqlite_table_id
    from lambdarec.featurestore.store import READ_INDEXED_SERVICES

    store = open_store(settings)
    config = store.config
    views = {v.name: v for v in store.list_feature_views()}
    indexed = set(add_read_indexes(store, READ_INDEXED_SERVICES))  # again: idempotent
    assert indexed == {
        sqlite_table_id(config, views[names.ITEM_STATS_FEATURE_VIEW]),
        sqlite_table_id(config, views[names.USER_HISTORY_FEATURE_VIEW]),
    }
    pushed = [v for v in views.values() if v.stream_source is not None]
    assert pushed and not indexed & {sqlite_table_id(config, v) for v in pushed}
    assert add_read_indexes(store, ["no_such_service"]) == []
    with sqlite3.connect(SqliteOnlineStore._get_db_path(config)) as connection:  # noqa: SLF001
        names_there = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not any(
        n.startswith(sqlite_table_id(config, views[names.ITEM_NEIGHBOURS_FEATURE_VIEW]))
        and n.endswith("_lambdarec_read")
        for n in names_there
    )  # read for a few seed items only
    item_stats = sqlite_table(config, views[names.ITEM_STATS_FEATURE_VIEW])
    with sqlite3.connect(SqliteOnlineStore._get_db_path(config)) as connection:  # noqa: SLF001
        for wanted, view_features in ((8, 17), (2, 17)):
            sql = select_packed(item_stats, 120, wanted, view_features)
            rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", [b"k"] * 120 + ["f"] * (2 * wanted))
            plan = " ".join(str(row[-1]) for row in rows)
            assert "COVERING INDEX" in plan and "_lambdarec_read" in plan, plan
            # one range per entity when a third or more of the view's features are read
            assert "(entity_key=?)" in plan if wanted == 8 else "(entity_key=? AND feature_name=?)" in plan, plan
            assert ("+t.feature_name" in sql) == (wanted == 8)
            assert "TEMP B-TREE" not in plan, plan  # no sort: each entity's cells are grouped as read


def test_reader_equals_feast_without_the_read_index(settings: Settings) -> None:
    import sqlite3

    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from lambdarec.featurestore.sqlite_layout import add_read_indexes, read_index

    store = open_store(settings)
    path = SqliteOnlineStore._get_db_path(store.config)  # noqa: SLF001
    views = [store.get_feature_view(n) for n in (names.ITEM_STATS_FEATURE_VIEW, names.USER_HISTORY_FEATURE_VIEW)]
    with sqlite3.connect(path) as connection:
        for view in views:
            connection.execute(f"DROP INDEX {read_index(store.config, view)}")
    try:
        for user, items in CASES:
            expected = get_online_features(store, user, items, request_time_ms=NOW_MS)
            assert read_online_features(online_reader(store), user, items, request_time_ms=NOW_MS) == expected
    finally:
        from lambdarec.featurestore.store import READ_INDEXED_SERVICES

        add_read_indexes(store, READ_INDEXED_SERVICES)


def test_packed_read_splits_values_of_any_length() -> None:
    """select_packed + unpack give back every stored cell exactly, whatever its length or position."""
    import sqlite3

    from lambdarec.featurestore.sqlite_layout import PACKED_KEYS_MAX, select_packed, unpack

    # Lengths around each UTF-8 width of char() and each 16-bit boundary of a length, and past
    # the largest code point (0x10FFFF); NULs and 0xFF bytes inside values.
    lengths = [0, 1, 126, 127, 128, 2046, 2047, 2048, 65534, 65535, 65536, 65537, 70_000, 1_114_112, 1_200_000]
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE t (entity_key BLOB, feature_name TEXT, value BLOB, PRIMARY KEY (entity_key, feature_name))"
    )
    features = ["f_a", "f_b", "f_c"]
    stored: dict[tuple[bytes, str], bytes] = {}
    keys = [f"key-{i}".encode() + b"\x00" for i in range(PACKED_KEYS_MAX)]
    for i, length in enumerate(lengths):
        value = bytes((i + j) % 256 for j in range(length))
        key = keys[(i * 997) % len(keys)]
        for feature in features[: 1 + i % 3]:  # some entities lack features
            stored[(key, feature)] = value
    for i in range(0, len(keys), 500):  # many small entities, far positions included
        stored[(keys[i], "f_b")] = bytes([0, 255, i % 256])
    connection.executemany("INSERT OR REPLACE INTO t VALUES (?, ?, ?)", [(k, f, v) for (k, f), v in stored.items()])
    wanted = ["f_b", "f_a", "f_c"]
    sql = select_packed("t", len(keys), len(wanted), 3)
    (packed,) = connection.execute(sql, [*keys, *wanted, *wanted]).fetchone()
    got: dict[tuple[bytes, str], bytes] = {}
    for position, cells in unpack(packed):
        for f_index, value in unpack(cells):
            assert (keys[position], wanted[f_index]) not in got
            got[(keys[position], wanted[f_index])] = value
    assert got == stored
    (nothing,) = connection.execute(sql, [b"absent"] * len(keys) + [*wanted, *wanted]).fetchone()
    assert nothing is None and unpack(nothing) == []
    with pytest.raises(ValueError, match="overrun"):
        unpack(packed[:-1])
    with pytest.raises(ValueError, match="keys"):
        select_packed("t", PACKED_KEYS_MAX + 1, 1, 1)


def test_reader_reads_more_keys_than_one_statement_binds(settings: Settings) -> None:
    from lambdarec.featurestore.sqlite_layout import PACKED_KEYS_MAX

    store = open_store(settings)
    items = [f"absent-{i}" for i in range(PACKED_KEYS_MAX)] + ["i3", "i1", "absent-0", "i2"]
    got = read_online_features(online_reader(store), "u1", items, request_time_ms=NOW_MS)
    expected = get_online_features(store, "u1", items, request_time_ms=NOW_MS)
    assert got == expected
    assert got["item_views_30d"][-4:] == expected["item_views_30d"][-4:] and got["item_views_30d"][-1] is not None


def test_reader_remembers_decoded_rows_of_batch_views_only(settings: Settings) -> None:
    store = open_store(settings)
    reader = OnlineFeatureReader(store, names.QUERY_FEATURE_SERVICE)
    entries = reader._views.values()  # noqa: SLF001
    pushed = [e for e in entries if e.view.stream_source is not None]
    assert pushed and all(e.rows is None for e in pushed)  # a pushed row changes with every event
    assert all(e.rows == {} for e in entries if e.view.stream_source is None)
    ranking = online_reader(store)
    read_online_features(ranking, "u1", ["i1", "i2"], request_time_ms=NOW_MS)
    remembered = {name: len(e.rows or {}) for name, e in ranking._views.items()}  # noqa: SLF001
    assert remembered[names.ITEM_STATS_FEATURE_VIEW] == 2 and remembered[names.USER_HISTORY_FEATURE_VIEW] == 1

"""Bronze → silver → gold on a real local[2] Spark, with bad input, reruns and the parity check."""

from __future__ import annotations

import random
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from batch_lake_helpers import DAYS, LAST, silver_hash

from lambdarec import names
from lambdarec.batch.gold import build_gold_range
from lambdarec.batch.lake import Lake, day_start_ms, parse_date, read_json
from lambdarec.batch.silver import build_silver
from lambdarec.events.contract import Code, Violation
from lambdarec.features.session import (
    SESSION_KEY,
    fold_session,
    new_session_state,
    session_features,
    session_prefix_rows,
    update_session,
)


def test_silver_cleans_deduplicates_and_quarantines(built: dict, shop_events: pa.Table, batch_lake: Lake) -> None:
    reports = built["reports"]
    last = reports[LAST]
    assert sorted(last.quarantined_files) == [
        f"bronze/clicks/ingest=bad/event_date={LAST}/corrupt.parquet",
        f"bronze/clicks/ingest=bad/event_date={LAST}/drifted.parquet",
    ]
    assert "unreadable" in last.quarantined_files[f"bronze/clicks/ingest=bad/event_date={LAST}/corrupt.parquet"]
    # The event contract's reasons (lambdarec.events.contract), as every path writes them.
    assert set(last.rejected) == {
        Violation(code, field).describe()
        for code, field in [
            (Code.NOT_JSON, None),
            (Code.MISSING, "item_id"),
            (Code.UNKNOWN_TYPE, "event_type"),
            (Code.IN_FUTURE, "event_time"),
            (Code.NEGATIVE, "price"),
        ]
    }
    assert sum(r.duplicates for r in reports.values()) == 200
    silver = pq.read_table(batch_lake.silver)
    ids = silver.column("event_id")
    assert len(pc.unique(ids)) == silver.num_rows  # one row per event id
    assert silver.num_rows == shop_events.num_rows + 1  # + the late event
    quarantined = pq.read_table(batch_lake.quarantine("silver"))
    assert quarantined.num_rows == 5
    assert read_json(batch_lake.report("silver", LAST))["duplicates"] == last.duplicates


def test_late_event_is_kept_flagged_on_its_own_date(batch_lake: Lake, built: dict) -> None:
    silver = pq.read_table(batch_lake.silver / f"event_date={DAYS[0]}")
    late = silver.filter(pc.equal(silver["event_id"], "late-1"))
    assert late.num_rows == 1 and late["is_late"][0].as_py()
    assert pc.sum(silver["is_late"]).as_py() == 1
    assert built["reports"][DAYS[0]].late == 1


def test_rerun_of_the_same_dates_gives_the_same_output(spark: object, batch_lake: Lake, built: dict) -> None:
    build_silver(spark, batch_lake, DAYS)  # type: ignore[arg-type]
    assert silver_hash(batch_lake) == built["silver_hash"]


def test_a_date_built_alone_equals_the_date_built_with_the_others(spark: object, batch_lake: Lake, built: dict) -> None:
    """Silver of a date depends on its bronze and the previous date's only, not on the run."""
    build_silver(spark, batch_lake, [LAST])  # type: ignore[arg-type]
    assert silver_hash(batch_lake) == built["silver_hash"]


def _by_session(events: pd.DataFrame) -> dict[str, list[dict]]:
    records = events.astype(object).where(events.notna(), None).to_dict("records")
    out: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        out[record[names.SESSION_ID]].append(record)
    return out


def test_one_session_key_whatever_the_idle_time(batch_lake: Lake, built: dict, shop_events: pa.Table) -> None:
    """Silver keys a session by the shop's id over every idle gap and date, with the fold's counts."""
    silver = pq.read_table(batch_lake.silver).to_pandas()
    assert not {"session_key", "session_seq"} & set(silver.columns)
    events = shop_events.to_pandas()
    ordered = events.sort_values([names.SESSION_ID, "event_time"])
    idle = ordered.groupby(names.SESSION_ID)["event_time"].diff().groupby(ordered[names.SESSION_ID]).max()
    idle_sessions = set(idle.index[idle > 30 * 60_000])
    assert len(idle_sessions) > 50  # the shop has sessions that sat idle (idle_gap_share)
    counts = silver.groupby(SESSION_KEY).size()
    expected = {sid: fold_session(evs)[names.SESSION_EVENT_COUNT] for sid, evs in _by_session(events).items()}
    assert counts.drop("late-s").to_dict() == expected  # one key per shop session, the fold's counts
    days = silver.groupby(SESSION_KEY)["event_date"].nunique()
    assert (days[list(idle_sessions)] > 1).any()  # and over midnight too


def test_gold_tables(built: dict, batch_lake: Lake) -> None:
    gold = built["gold"][-1]
    assert all(gold.rows[t] > 0 for t in ("user_history", "item_stats", "item_neighbours", "session_features"))
    users = pq.read_table(batch_lake.gold("user_history") / f"date={LAST}").to_pandas()
    assert (
        users["user_views_30d"] + users["user_carts_30d"] + users["user_purchases_30d"] == users["user_events_30d"]
    ).all()
    assert users["user_top_categories"].map(len).between(0, 3).all()
    items = pq.read_table(batch_lake.gold("item_stats") / f"date={LAST}").to_pandas()
    assert (items["item_views_1d"] <= items["item_views_7d"]).all()
    assert (items["item_views_7d"] <= items["item_views_30d"]).all()
    assert items["item_conversion_rate_30d"].between(0, items["item_purchases_30d"].max()).all()
    neighbours = pq.read_table(batch_lake.gold("item_neighbours") / f"date={LAST}").to_pandas()
    row = neighbours[neighbours["coview_items"].map(len) > 1].iloc[0]
    assert row["item_id"] not in list(row["coview_items"])
    scores = list(row["coview_scores"])
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert neighbours["copurchase_items"].map(len).max() <= 20


def test_gold_windows_and_new_columns_against_pandas(built: dict, batch_lake: Lake) -> None:
    """The middle date's snapshot holds the events up to it and none after it, recounted in pandas."""
    day = DAYS[1]
    silver = pq.read_table(batch_lake.silver).to_pandas()
    silver["event_date"] = silver["event_date"].astype(str)
    window = silver[silver["event_date"] <= day].sort_values(["event_time", "event_id"])
    assert (silver["event_date"] > day).any()  # there are later events to leave out
    users = pq.read_table(batch_lake.gold("user_history") / f"date={day}").to_pandas().set_index(names.USER_ID)
    known = window[window[names.USER_ID].notna()]
    assert users["user_events_30d"].to_dict() == known.groupby(names.USER_ID).size().to_dict()
    recent = known.drop_duplicates([names.USER_ID, names.ITEM_ID], keep="last").groupby(names.USER_ID)[names.ITEM_ID]
    expected_recent = recent.apply(lambda items: list(items)[-30:]).to_dict()
    assert users["user_recent_items_30d"].map(list).to_dict() == expected_recent
    assert max(map(len, expected_recent.values())) == 30  # some users hit the cap
    items = pq.read_table(batch_lake.gold("item_stats") / f"date={day}").to_pandas().set_index(names.ITEM_ID)
    branded = window[window["brand"].notna()].groupby(names.ITEM_ID)["brand"].last()
    assert items["item_brand"].dropna().to_dict() == branded.to_dict()
    views_1d = window[(window["event_date"] == day) & (window["event_type"] == "view")].groupby(names.ITEM_ID).size()
    assert items["item_views_1d"][items["item_views_1d"] > 0].to_dict() == views_1d.to_dict()


def test_gold_of_many_dates_in_one_pass_equals_each_date_alone(
    spark: object, built: dict, batch_lake: Lake, tmp_path: Path
) -> None:
    """build_gold_range over every date writes the rows build_gold writes date by date (all four tables)."""
    lake = Lake(tmp_path / "lake")
    shutil.copytree(batch_lake.silver, lake.silver)
    reports = build_gold_range(spark, lake, list(reversed(DAYS)))  # type: ignore[arg-type]
    assert [r.date for r in reports] == DAYS
    assert [r.rows for r in reports] == [r.rows for r in built["gold"]]
    keys = {
        "user_history": [names.USER_ID],
        "item_stats": [names.ITEM_ID],
        "item_neighbours": [names.ITEM_ID],
        "session_features": [names.SESSION_ID, "event_timestamp"],
    }
    for table, key in keys.items():
        assert sorted(p.name for p in lake.gold(table).glob("date=*")) == [f"date={d}" for d in DAYS]
        for day in DAYS:
            alone = pq.read_table(batch_lake.gold(table) / f"date={day}").to_pandas()
            ranged = pq.read_table(lake.gold(table) / f"date={day}").to_pandas()
            assert list(ranged.columns) == list(alone.columns), table
            assert len(alone) > 0 and len(ranged) == len(alone), (table, day)
            alone = alone.sort_values(key).reset_index(drop=True)
            ranged = ranged.sort_values(key).reset_index(drop=True)
            for column in alone.columns:
                a, b = alone[column], ranged[column]
                if a.dtype == object and len(a) and isinstance(a.dropna().iloc[0], np.ndarray):
                    a, b = (
                        a.map(lambda v: None if v is None else list(v)),
                        b.map(lambda v: None if v is None else list(v)),
                    )
                if pd.api.types.is_float_dtype(a):
                    # Sums of doubles may add up in another order: equal to the last bits.
                    assert np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True), (table, day, column)
                else:
                    assert a.tolist() == b.tolist(), (table, day, column)


LIST_FEATURES = {names.SESSION_RECENT_ITEMS, names.SESSION_PURCHASED_ITEMS}
"""Session features whose Parquet values come back as arrays."""


def test_gold_session_rows_are_the_prefix_snapshots(built: dict, shop_events: pa.Table, batch_lake: Lake) -> None:
    """Each row of a date: the shared fold after one event time of a session (its events of D and D-1)."""
    gold = pq.read_table(batch_lake.gold("session_features") / f"date={LAST}").to_pandas()
    events = shop_events.to_pandas()
    day = pd.to_datetime(events["event_time"], unit="ms", utc=True).dt.date.astype(str)
    two_days = events[day.isin([DAYS[-2], LAST])]
    start = day_start_ms(parse_date(LAST))
    expected = [row for evs in _by_session(two_days).values() for row in session_prefix_rows(evs, emit_from_ms=start)]
    assert len(gold) == len(expected) > 1000
    assert len(gold) < (day == LAST).sum()  # events sharing a millisecond gave one row
    key = [names.SESSION_ID, names.SESSION_LAST_EVENT_MS]
    got = gold.sort_values(key).reset_index(drop=True)
    want = pd.DataFrame(expected).sort_values(key).reset_index(drop=True)
    assert (got["event_timestamp"] == pd.to_datetime(got[names.SESSION_LAST_EVENT_MS], unit="ms", utc=True)).all()
    for name in names.SESSION_FEATURES:
        actual = got[name].map(list) if name in LIST_FEATURES else got[name]
        assert actual.tolist() == want[name].tolist(), name
    assert got[names.SESSION_PURCHASED_ITEMS].map(len).gt(0).any()  # purchases are among them
    # Point in time: no session has two rows at one instant.
    assert not got.duplicated(key).any()


def test_parity_spark_batch_vs_streaming_fold(built: dict, shop_events: pa.Table, batch_lake: Lake) -> None:
    """The same events through the stream fold (shuffled, redelivered) and through Spark agree.

    The latest gold row of a session is its final state, the row the stream also holds (idle gaps included).
    """
    gold = pq.read_table(batch_lake.gold("session_features") / f"date={LAST}").to_pandas()
    gold = gold.sort_values("event_timestamp").groupby(names.SESSION_ID).last()
    events = shop_events.to_pandas()
    events["day"] = pd.to_datetime(events["event_time"], unit="ms", utc=True).dt.date.astype(str)
    rng = random.Random(5)
    compared = crossing = idle = 0
    for session_id, group in events.groupby(names.SESSION_ID):
        days = set(group["day"])
        if LAST not in days or not days <= {DAYS[-2], LAST}:
            continue  # no row on the snapshot date, or events before the two days gold folds
        crossing += len(days) > 1
        idle += group["event_time"].sort_values().diff().max() > 30 * 60_000
        records = group.drop(columns="day").astype(object).where(group.notna(), None).to_dict("records")
        arrivals = records + rng.sample(records, k=min(3, len(records)))  # at-least-once delivery
        rng.shuffle(arrivals)  # out of order
        state = new_session_state(arrivals[0])
        for record in arrivals:
            update_session(state, record)
        streamed = session_features(state)
        batch = gold.loc[session_id]
        for name in names.SESSION_FEATURES:
            expected, actual = streamed[name], batch[name]
            assert (list(actual) if name in LIST_FEATURES else actual) == expected, (session_id, name)
        compared += 1
    assert compared > 20
    assert crossing > 0  # sessions over midnight are folded whole, as the stream folds them
    assert idle > 10  # and sessions that sat idle for more than 30 minutes are one session, as in the stream


def test_quarantine_is_under_the_lake(batch_lake: Lake, built: dict) -> None:
    assert Path(batch_lake.quarantine("silver") / f"event_date={LAST}").is_dir()


def test_item_brand_and_recent_items_on_handmade_events(spark: object) -> None:
    """Brand: the latest event that has one; recent items: each at its latest occurrence, newest last, ties by id."""
    from pyspark.sql import functions as F

    from lambdarec.batch.gold import _in_windows, _snapshots, item_stats, user_history

    t0 = day_start_ms(parse_date(LAST))
    rows = [  # (event_id, time, item, brand)
        ("e1", t0 + 1, "x", "acme"),
        ("e2", t0 + 2, "x", "zeta"),
        ("e3", t0 + 3, "x", None),  # the latest event of x has no brand: zeta stays
        ("e4", t0 + 4, "y", None),
        ("e6", t0 + 5, "z", "b"),
        ("e5", t0 + 5, "y", None),  # same millisecond as e6: e5 < e6 by id, so y is older than z
        ("e7", t0 + 6, "x", None),  # x again: it moves to the end
    ]
    frame = spark.createDataFrame(  # type: ignore[attr-defined]
        [(i, t, "s", "u", item, "view", 1.0, "c", brand, LAST) for i, t, item, brand in rows],
        "event_id string, event_time long, session_id string, user_id string, item_id string, "
        "event_type string, price double, category string, brand string, event_date string",
    ).withColumn("event_date", F.to_date("event_date"))
    tagged = _in_windows(frame, _snapshots(spark, [LAST]))  # type: ignore[arg-type]
    brands = {r["item_id"]: r["item_brand"] for r in item_stats(tagged).collect()}
    assert brands == {"x": "zeta", "y": None, "z": "b"}
    (user,) = user_history(tagged).collect()
    assert user["user_recent_items_30d"] == ["y", "z", "x"]
    assert user["user_visits_30d"] == 1

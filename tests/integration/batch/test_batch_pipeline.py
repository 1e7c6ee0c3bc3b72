"""Bronze → silver → gold on a real local[2] Spark, with bad input, reruns and the parity check."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from batch_lake_helpers import DAYS, LAST, silver_hash

from lambdarec import names
from lambdarec.batch.lake import Lake, read_json
from lambdarec.batch.sessions import SESSION_KEY, SESSION_SEQ, sessionize, sessionize_frame
from lambdarec.batch.silver import build_silver
from lambdarec.features.session import new_session_state, session_features, update_session


def test_silver_cleans_deduplicates_and_quarantines(built: dict, shop_events: pa.Table, batch_lake: Lake) -> None:
    reports = built["reports"]
    last = reports[LAST]
    assert sorted(last.quarantined_files) == [
        f"bronze/clicks/ingest=bad/event_date={LAST}/corrupt.parquet",
        f"bronze/clicks/ingest=bad/event_date={LAST}/drifted.parquet",
    ]
    assert "unreadable" in last.quarantined_files[f"bronze/clicks/ingest=bad/event_date={LAST}/corrupt.parquet"]
    assert set(last.rejected) == {
        "not a JSON object",
        "item_id: missing",
        "event_type: unknown",
        "clock skew: event_time ahead of the broker's clock",
        "price: negative or NaN",
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


def test_spark_sessionize_is_the_pandas_rule(spark: object, shop_events: pa.Table) -> None:
    first = shop_events.select(["event_id", "event_time", "session_id"]).to_pandas()
    # The shop's sessions have no idle gap: return to every third one two hours later.
    again = first[first["session_id"].rank(method="dense") % 3 == 0].copy()
    again["event_id"] += "-again"
    again["event_time"] += 2 * 3_600_000
    events = pd.concat([first, again], ignore_index=True)
    expected = sessionize_frame(events).set_index("event_id")
    frame = spark.createDataFrame(events)  # type: ignore[attr-defined]
    actual = sessionize(frame).toPandas().set_index("event_id").loc[expected.index]
    assert (actual[SESSION_KEY] == expected[SESSION_KEY]).all()
    assert (actual[SESSION_SEQ] == expected[SESSION_SEQ]).all()
    assert (expected[SESSION_SEQ] > 0).any()  # the shop has idle gaps to split on


def test_a_visit_crossing_midnight_keeps_one_key(batch_lake: Lake, built: dict) -> None:
    frame = pq.read_table(batch_lake.silver, columns=["event_time", SESSION_KEY]).to_pandas()
    frame = frame.sort_values([SESSION_KEY, "event_time"])
    # Over the whole lake a key is one visit: no idle gap inside it, across dates too.
    idle = frame.groupby(SESSION_KEY)["event_time"].diff().max()
    assert idle <= 30 * 60 * 1000
    days = (frame["event_time"] // 86_400_000).groupby(frame[SESSION_KEY]).nunique()
    assert (days > 1).any()  # the shop has visits over midnight, and each kept one key


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


def test_parity_spark_batch_vs_streaming_fold(built: dict, shop_events: pa.Table, batch_lake: Lake) -> None:
    """The same events through the stream fold (shuffled, redelivered) and through Spark agree."""
    gold = pq.read_table(batch_lake.gold("session_features") / f"date={LAST}").to_pandas().set_index(names.SESSION_ID)
    events = shop_events.to_pandas()
    events["day"] = events["event_time"].map(
        lambda t: __import__("datetime").datetime.utcfromtimestamp(t / 1000).date().isoformat()
    )
    rng = random.Random(5)
    compared = crossing = 0
    for session_id, group in events.groupby(names.SESSION_ID):
        days = set(group["day"])
        if LAST not in days or not days <= {DAYS[-2], LAST}:
            continue  # not a visit of the snapshot date
        if session_id not in gold.index or f"{session_id}#1" in gold.index:
            continue  # sessions split by an idle gap are several visits in batch
        crossing += len(days) > 1
        records = group.astype(object).where(group.notna(), None).to_dict("records")
        arrivals = records + rng.sample(records, k=min(3, len(records)))  # at-least-once delivery
        rng.shuffle(arrivals)  # out of order
        state = new_session_state(arrivals[0])
        for record in arrivals:
            update_session(state, record)
        streamed = session_features(state)
        batch = gold.loc[session_id]
        for name in names.SESSION_FEATURES:
            expected, actual = streamed[name], batch[name]
            assert (list(actual) if name == names.SESSION_RECENT_ITEMS else actual) == expected, (session_id, name)
        compared += 1
    assert compared > 20
    assert crossing > 0  # visits over midnight are folded whole, as the stream folds them


def test_quarantine_is_under_the_lake(batch_lake: Lake, built: dict) -> None:
    assert Path(batch_lake.quarantine("silver") / f"event_date={LAST}").is_dir()

"""Co-view neighbours from daily counts: equal to their definition, and a nightly run counts what changed only.

Gold counts each date's co-views once (``coview_daily``: a session's views of one date are one basket) and
sums a window's 30 dates for each snapshot. The sums are recounted here from silver the slow way
(:func:`test_co_occurrence.reference`, every ordered pair of every capped basket), and a run after a
run must recount only the dates whose silver changed while writing the same neighbours.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from batch_lake_helpers import DAYS, LAST
from test_co_occurrence import reference

from lambdarec import names
from lambdarec.batch.gold import COVIEW_DAILY, ITEM_NEIGHBOURS, NEIGHBOURS_K, build_gold_range
from lambdarec.batch.lake import Lake
from lambdarec.features.session import SESSION_KEY

pytestmark = pytest.mark.integration


def coview(lake: Lake, day: str) -> dict[str, tuple[list[str], list[float]]]:
    """``item -> (co-view neighbours, scores)`` of one snapshot date, items with any."""
    table = pq.read_table(lake.gold(ITEM_NEIGHBOURS) / f"date={day}").to_pandas()
    return {
        r[names.ITEM_ID]: (list(r["coview_items"]), list(r["coview_scores"]))
        for r in table.to_dict("records")
        if len(r["coview_items"])
    }


def test_coview_neighbours_are_the_windows_session_day_baskets(built: dict, batch_lake: Lake) -> None:
    silver = pq.read_table(batch_lake.silver).to_pandas()
    silver["event_date"] = silver["event_date"].astype(str)
    views = silver[(silver["event_type"] == "view") & (silver["event_date"] <= LAST)]
    rows = [
        (LAST, f"{session}|{date}", item, int(t))
        for session, date, item, t in zip(
            views[SESSION_KEY], views["event_date"], views[names.ITEM_ID], views["event_time"], strict=True
        )
    ]
    want = {item: found for (_, item), found in reference(rows, NEIGHBOURS_K).items()}
    got = coview(batch_lake, LAST)
    assert len(want) > 100 and got.keys() == want.keys()
    different = {item: (got[item], want[item]) for item in want if got[item] != want[item]}
    assert not different, list(different.items())[:3]
    # The window spans dates: some sessions ran past midnight, and each of their dates is a basket.
    assert (views.groupby(SESSION_KEY)["event_date"].nunique() > 1).any()


def test_a_run_after_a_run_recounts_only_the_dates_whose_silver_changed(
    spark: Any, built: dict, batch_lake: Lake, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    shutil.copytree(batch_lake.silver, lake.silver)
    first = build_gold_range(spark, lake, [DAYS[1]])[0]
    assert first.coview_dates_counted == 2  # the window's two dates, none counted before
    nightly = build_gold_range(spark, lake, [LAST])[0]
    assert nightly.coview_dates_counted == 1  # the new date only
    assert coview(lake, LAST) == coview(batch_lake, LAST)
    again = build_gold_range(spark, lake, [LAST])[0]
    assert again.coview_dates_counted == 0

    # Silver rewrote the first date (a late event, say): that date is counted again, and only it.
    part = lake.silver / f"event_date={DAYS[0]}"
    for file in part.iterdir():
        os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 1_000_000_000))
    assert build_gold_range(spark, lake, [LAST])[0].coview_dates_counted == 1
    # A record lost (or a partition deleted): counted again rather than trusted.
    lake.report(COVIEW_DAILY, DAYS[1]).unlink()
    shutil.rmtree(lake.gold(COVIEW_DAILY) / f"date={LAST}")
    assert build_gold_range(spark, lake, [LAST])[0].coview_dates_counted == 2
    assert coview(lake, LAST) == coview(batch_lake, LAST)

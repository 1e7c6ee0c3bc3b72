"""Which dates a daily run's gold backfill builds (``run_batch(gold_backfill=True)``)."""

from __future__ import annotations

from pathlib import Path

from lambdarec.batch.gold import GOLD_TABLES, ITEM_STATS
from lambdarec.batch.lake import Lake
from lambdarec.batch.pipeline import dates_without_gold


def test_backfill_names_dates_missing_from_any_gold_table_up_to_the_day(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for table in GOLD_TABLES:
        (lake.gold(table) / "date=2025-09-01").mkdir(parents=True)
    (lake.gold(ITEM_STATS) / "date=2025-09-02").mkdir(parents=True)  # the other tables lack it: half built
    silver = ["2025-09-01", "2025-09-02", "2025-09-03", "2025-09-04", "2025-09-05"]

    assert dates_without_gold(lake, silver, "2025-09-04") == ["2025-09-02", "2025-09-03", "2025-09-04"]
    assert dates_without_gold(lake, silver, "2025-09-01") == []


def test_a_fresh_lake_backfills_every_date_up_to_the_day(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    assert dates_without_gold(lake, ["2025-09-01", "2025-09-02"], "2025-09-02") == ["2025-09-01", "2025-09-02"]

"""Spark job: silver → gold snapshots of one or many dates (user history, item stats, neighbours, session features).

Several dates are built in one Spark pass (``build_gold_range``); each table's `date=` partition is
replaced, so a rerun gives the same output. Training sets are built afterwards through Feast
(`lambdarec batch run`).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the stage, print one JSON report per date."""
    from lambdarec.batch.jobargs import base_parser, lake_of, master_of

    parser = base_parser(__doc__ or "")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--date", action="append", default=[], help="snapshot date YYYY-MM-DD (repeatable; default: latest in silver)"
    )
    which.add_argument("--all-dates", action="store_true", help="every date in silver")
    parser.add_argument("--neighbours", type=int, default=20, help="top-K neighbours per item")
    parser.add_argument(
        "--per-date", action="store_true", help="one Spark pass per date (the old way; for comparisons)"
    )
    args = parser.parse_args(argv)

    from lambdarec.batch.gold import build_gold, build_gold_range
    from lambdarec.batch.silver import silver_dates
    from lambdarec.batch.spark import build_spark

    lake = lake_of(args)
    dates = silver_dates(lake) if args.all_dates else args.date or silver_dates(lake)[-1:]
    if not dates:
        parser.error("silver is empty: run build_silver first")
    spark = build_spark("lambdarec-build-gold", master=master_of(args), shuffle_partitions=args.shuffle_partitions)
    try:
        if args.per_date:
            reports = [build_gold(spark, lake, day, k=args.neighbours) for day in dates]
        else:
            reports = build_gold_range(spark, lake, dates, k=args.neighbours)
    finally:
        spark.stop()
    for report in reports:
        print(json.dumps(report.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Spark job: silver → gold snapshots of a date (user history, item stats, neighbours, session features).

Each table's `date=` partition is replaced, so a rerun gives the same output. Training sets are
built afterwards through Feast (`lambdarec batch run`, or `--training-sets` here).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the stage, print one JSON report per date."""
    from lambdarec.batch.jobargs import base_parser, lake_of, master_of

    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--date", action="append", default=[], help="snapshot date YYYY-MM-DD (repeatable; default: latest in silver)"
    )
    parser.add_argument("--neighbours", type=int, default=20, help="top-K neighbours per item")
    args = parser.parse_args(argv)

    from lambdarec.batch.gold import build_gold
    from lambdarec.batch.silver import silver_dates
    from lambdarec.batch.spark import build_spark

    lake = lake_of(args)
    dates = args.date or silver_dates(lake)[-1:]
    if not dates:
        parser.error("silver is empty: run build_silver first")
    spark = build_spark("lambdarec-build-gold", master=master_of(args), shuffle_partitions=args.shuffle_partitions)
    try:
        for day in dates:
            print(json.dumps(build_gold(spark, lake, day, k=args.neighbours).to_dict()))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

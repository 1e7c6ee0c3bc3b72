"""Spark job: bronze → silver for the given event dates (clean, deduplicate by event_id).

Unreadable or schema-drifted bronze files and invalid records are quarantined with the reason;
each date's partition is replaced, so a rerun of a date gives the same output.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the stage, print one JSON report per date."""
    from lambdarec.batch.jobargs import base_parser, lake_of, master_of

    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--date", action="append", default=[], help="event date YYYY-MM-DD (repeatable; default: all in bronze)"
    )
    parser.add_argument(
        "--earliest-event-ms",
        type=int,
        default=None,
        help="earlier event times are quarantined (event contract; default 2000-01-01: Settings.earliest_event_time)",
    )
    parser.add_argument(
        "--max-skew-ms",
        type=int,
        default=None,
        help="events further ahead of the broker's clock are quarantined (default: Settings.max_clock_skew_s)",
    )
    parser.add_argument(
        "--max-event-bytes",
        type=int,
        default=None,
        help="longer records are quarantined (default: Settings.kafka.max_event_bytes)",
    )
    args = parser.parse_args(argv)

    from lambdarec.batch.bronze import bronze_dates
    from lambdarec.batch.silver import build_silver
    from lambdarec.batch.spark import build_spark

    lake = lake_of(args)
    dates = args.date or bronze_dates(lake)
    spark = build_spark("lambdarec-build-silver", master=master_of(args), shuffle_partitions=args.shuffle_partitions)
    try:
        given = {
            "earliest_ms": args.earliest_event_ms,
            "max_skew_ms": args.max_skew_ms,
            "max_event_bytes": args.max_event_bytes,
        }
        bounds = {name: value for name, value in given.items() if value is not None}
        reports = build_silver(spark, lake, dates, **bounds)
    finally:
        spark.stop()
    for report in reports:
        print(json.dumps(report.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

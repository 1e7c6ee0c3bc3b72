"""Spark job: ingest the next Kafka offset range of `clicks` into bronze (raw Parquet by event date).

Reads in batch mode from the committed offsets to the current high watermarks, writes
`<lake>/bronze/clicks/ingest=<run>/event_date=*/`, then commits the end offsets. A rerun after a
failure starts from the same offsets and overwrites the same run folder.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the stage, print its report as JSON."""
    from lambdarec.batch.jobargs import base_parser, lake_of, master_of
    from lambdarec.names import CLICKS_TOPIC

    parser = base_parser(__doc__ or "")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", default=CLICKS_TOPIC, help="topic to ingest (default: clicks)")
    parser.add_argument("--jars", default="", help="comma-separated connector jars (if spark-submit lacks them)")
    parser.add_argument("--max-records", type=int, default=None, help="cap per partition for this run")
    args = parser.parse_args(argv)

    from pathlib import Path

    from lambdarec.batch.bronze import ingest_bronze
    from lambdarec.batch.spark import build_spark

    jars = [Path(j) for j in args.jars.split(",") if j]
    spark = build_spark(
        "lambdarec-ingest-bronze", master=master_of(args), shuffle_partitions=args.shuffle_partitions, jars=jars
    )
    try:
        report = ingest_bronze(spark, lake_of(args), args.bootstrap, args.topic, max_records=args.max_records)
    finally:
        spark.stop()
    print(json.dumps(report.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

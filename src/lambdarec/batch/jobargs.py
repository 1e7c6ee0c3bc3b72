"""Arguments shared by the Spark job entry points in ``jobs/spark/``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lambdarec.batch.lake import Lake


def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``--state-dir``/``--lake``, ``--master`` and ``--shuffle-partitions``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-dir", type=Path, default=Path(".lambdarec"), help="state folder (lake = <it>/lake)")
    where.add_argument("--lake", type=Path, help="the lake folder itself")
    parser.add_argument("--master", default=None, help="Spark master (default: what spark-submit set, else local[2])")
    parser.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    return parser


def lake_of(args: argparse.Namespace) -> Lake:
    """The lake the arguments name."""
    return Lake(args.lake.resolve()) if args.lake else Lake.under(args.state_dir)


def master_of(args: argparse.Namespace) -> str | None:
    """The master to set: the argument, else none under spark-submit, else ``local[2]``."""
    import os

    if args.master:
        return str(args.master)
    # spark-submit exports SPARK_SUBMIT_OPTS / sets spark.master through the launcher environment.
    return None if os.environ.get("SPARK_ENV_LOADED") or os.environ.get("PYSPARK_GATEWAY_PORT") else "local[2]"

"""Launcher that spark-submit runs: `run_job.py <job> [job args]`, the job coming from the archive.

    spark-submit --py-files lambdarec_spark_jobs-<ver>.zip run_job.py build_silver --state-dir ... --date ...

Jobs: ingest_bronze, build_silver, build_gold (each has --help).
"""

from __future__ import annotations

import importlib
import sys

JOBS = ("ingest_bronze", "build_silver", "build_gold")


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``lambdarec_spark_jobs.<job>.main``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in JOBS:
        print(__doc__, file=sys.stderr)
        return 2
    module = importlib.import_module(f"lambdarec_spark_jobs.{args[0]}")
    code: int = module.main(args[1:])
    return code


if __name__ == "__main__":
    sys.exit(main())

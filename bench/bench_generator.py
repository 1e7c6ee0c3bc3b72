"""Benchmark the synthetic generator: wall time and peak memory to stream N events to Parquet.

Writes the figures to bench/results/generator.json (or --out). Run from the repository root:

    .venv/bin/python bench/bench_generator.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import LoadSampler

from lambdarec.data import generate_events


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux and bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(
        description="Generate N synthetic events to Parquet in a temporary folder; "
        "record wall time, throughput and peak RSS as JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="number of events to generate")
    parser.add_argument("--items", type=int, default=1_000_000, help="catalogue size")
    parser.add_argument("--users", type=int, default=500_000, help="number of known shoppers")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--chunk-size", type=int, default=500_000, help="events per Parquet row group")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "generator.json",
        help="where the JSON result goes",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark once and write its result; returns the result."""
    args = parse_args(argv)
    rss_before = _peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="lambdarec-bench-") as tmp:
        load = LoadSampler().start()
        started = time.perf_counter()
        report = generate_events(
            args.events,
            args.items,
            args.users,
            args.seed,
            Path(tmp) / "events.parquet",
            chunk_size=args.chunk_size,
            progress=not args.no_progress,
        )
        seconds = time.perf_counter() - started
        load.stop()
        file_mib = Path(report.out_path or "").stat().st_size / (1024 * 1024)
    result = {
        "benchmark": "generator",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "params": {
            "events": args.events,
            "items": args.items,
            "users": args.users,
            "seed": args.seed,
            "chunk_size": args.chunk_size,
        },
        "seconds": round(seconds, 3),
        "events_per_second": round(args.events / seconds),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "peak_rss_before_run_mib": round(rss_before, 1),
        "parquet_mib": round(file_mib, 1),
        **load.summary(),
        "report": {k: v for k, v in report.to_dict().items() if k != "out_path"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

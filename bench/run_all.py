"""Run every benchmark in this folder, one after the other; each writes its JSON to bench/results/.

Usage: python bench/run_all.py [--only NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, full-size args, quick args)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "kafka": ("bench_kafka.py", ["--events", "1000000"], ["--events", "100000"]),
    "generator": ("bench_generator.py", ["--events", "10000000"], ["--events", "1000000"]),
    "services": ("bench_services.py", [], []),
    "batch": ("bench_batch.py", ["--events", "1000000", "10000000"], ["--events", "100000", "300000"]),
    "feast": ("bench_feast.py", [], ["--users", "20000", "--items", "10000", "--reads", "200"]),
    "stream": ("bench_stream.py", ["--events", "200000", "--sessions-only"], ["--events", "20000", "--sessions-only"]),
    # models writes the trained embeddings that retrieval then indexes at 1M items: keep this order.
    "models": ("bench_models.py", [], ["--quick"]),
    "retrieval": ("bench_retrieval.py", ["--items", "1000000"], ["--items", "100000"]),
    # its own 20k-event demo (engines, speed layer, batch layer, training, recommender), then the load
    "serving": ("bench_serving.py", ["--max-search"], ["--rates", "50", "100", "--duration", "20"]),
    "drift": ("bench_drift.py", ["--features", "100", "--rows", "1000000"], ["--features", "100", "--rows", "100000"]),
}


def main() -> int:
    """Run the selected benchmarks; return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    failed = []
    for name in args.only or list(BENCHMARKS):
        script, full, quick = BENCHMARKS[name]
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / script), *(quick if args.quick else full)])
        print(f"=== {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.monotonic() - started:.0f}s")
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

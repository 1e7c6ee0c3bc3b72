"""Run every benchmark in this folder, one after the other, then write the report.

Each benchmark writes its JSON to bench/results/; bench/report.py then reads all of them and writes
bench/results/REPORT.md, report.json and plots/ (also after a failed benchmark: the report shows
whatever results exist, and what is missing).

Usage: python bench/run_all.py [--only NAME ...] [--quick] [--report-only]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# name -> (script, full-size args, quick args). Where a benchmark runs at several sizes or settings,
# each writes its own file, so that the report can set them side by side.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "kafka": ("bench_kafka.py", ["--events", "1000000"], ["--events", "100000"]),
    "generator": ("bench_generator.py", ["--events", "10000000"], ["--events", "1000000"]),
    "services": ("bench_services.py", [], []),
    # A whole `make demo` (200k events) with every process of the stack sampled; quick: a 20k-event demo.
    "stack_memory": ("bench_stack_memory.py", [], ["--events", "20000", "--train-budget", "30", "--steady-s", "20"]),
    "batch": ("bench_batch.py", ["--events", "1000000", "10000000"], ["--events", "100000", "300000"]),
    "feast": ("bench_feast.py", [], ["--users", "20000", "--items", "10000", "--reads", "200"]),
    "feast_pusher": ("bench_feast.py", ["--pusher", "--rows", "50000"], ["--pusher", "--rows", "10000"]),
    # The full job (sessions + users + items) is what the speed-layer goal is about; sessions only beside it.
    "stream": ("bench_stream.py", ["--events", "1000000"], ["--events", "20000"]),
    "stream_sessions_only": (
        "bench_stream.py",
        ["--events", "1000000", "--sessions-only", "--out", str(RESULTS / "stream_sessions_only.json")],
        ["--events", "20000", "--sessions-only", "--out", str(RESULTS / "stream_sessions_only.json")],
    ),
    # models writes the trained embeddings that retrieval then indexes: keep this order.
    "models": ("bench_models.py", [], ["--quick"]),
    "retrieval_300k": (
        "bench_retrieval.py",
        ["--items", "300000", "--out", str(RESULTS / "retrieval_300k.json")],
        ["--items", "30000", "--out", str(RESULTS / "retrieval_300k.json")],
    ),
    "retrieval_1m": (
        "bench_retrieval.py",
        ["--items", "1000000", "--out", str(RESULTS / "retrieval_1m.json")],
        ["--items", "100000", "--out", str(RESULTS / "retrieval_1m.json")],
    ),
    # Each runs its own 20k-event demo (engines, speed layer, batch layer, training, recommender), then the load.
    "serving": ("bench_serving.py", ["--max-search"], ["--rates", "50", "100", "--duration", "20"]),
    "serving_1m": (
        "bench_serving.py",
        ["--index-items", "1000000", "--out", str(RESULTS / "serving_1m.json")],
        ["--index-items", "100000", "--rates", "50", "--duration", "20", "--out", str(RESULTS / "serving_1m.json")],
    ),
    "drift": ("bench_drift.py", ["--features", "100", "--rows", "1000000"], ["--features", "100", "--rows", "100000"]),
}


def report() -> int:
    """Write REPORT.md, report.json and the plots from the results there are."""
    return subprocess.call([sys.executable, str(HERE / "report.py")])


def main() -> int:
    """Run the selected benchmarks, then the report; return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--report-only", action="store_true", help="run no benchmark: only rewrite the report")
    args = parser.parse_args()
    if args.report_only:
        return report()
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
    print("\n=== report ===", flush=True)
    return 1 if failed or report() else 0


if __name__ == "__main__":
    sys.exit(main())

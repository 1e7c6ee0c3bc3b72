"""Benchmark PSI / KL drift: profile a reference window and compare a current one, F features × N rows each.

Half the features are numeric (lognormal, decile bins), half categorical (Zipf-like over 1,000 values,
top-20 + other). Writes bench/results/drift.json (or --out). Run from the repository root:

    .venv/bin/python bench/bench_drift.py --features 100 --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from bench_common import LoadSampler

from lambdarec.quality.drift import compare_profile, profile


def frame(features: int, rows: int, seed: int, shift: float) -> pd.DataFrame:
    """``features`` columns of ``rows`` values; ``shift`` moves the numeric means and the category mix."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    weights = 1.0 / np.arange(1, 1001) ** (1.1 + shift)
    weights /= weights.sum()
    categories = np.array([f"v{i}" for i in range(1000)])
    for i in range(features):
        if i % 2 == 0:
            columns[f"num_{i}"] = rng.lognormal(3.0 + shift, 1.0, rows)
        else:
            columns[f"cat_{i}"] = pd.Categorical(categories[rng.choice(1000, rows, p=weights)])
    return pd.DataFrame(columns)


def main() -> None:
    """Time profile + compare and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/drift.json"))
    args = parser.parse_args()
    reference = frame(args.features, args.rows, 1, 0.0)
    current = frame(args.features, args.rows, 2, 0.05)
    load = LoadSampler().start()
    started, cpu_started = time.perf_counter(), time.process_time()
    prof = profile(reference)
    profiled = time.perf_counter()
    report = compare_profile(prof, current)
    compared, cpu_done = time.perf_counter(), time.process_time()
    load.stop()
    load_at_end = os.getloadavg()[0]
    result = {
        "benchmark": "drift",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "features": args.features,
        "rows_per_window": args.rows,
        "profile_reference_s": round(profiled - started, 3),
        "compare_current_s": round(compared - profiled, 3),
        "total_s": round(compared - started, 3),
        # On a shared machine wall time mostly measures the others; CPU time is the work itself.
        "total_cpu_s": round(cpu_done - cpu_started, 3),
        "load_average_1m": round(load_at_end, 2),
        **load.summary(),
        "goal_s": 10.0,
        "level": str(report.level),
        "max_psi": round(max(f.psi for f in report.features), 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

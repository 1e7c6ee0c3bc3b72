"""Benchmark the DAGs' tasks: wall and CPU seconds of each step of ``daily_features`` and ``weekly_retrain``.

Runs the same step functions the DAGs call (``lambdarec.quality.steps``), in order, on the state of a
finished demo (its engines still up: `make demo`, or `lambdarec demo --events N`), for the lake's
latest day. ``daily_features`` there is the nightly incremental run: the day's gold rebuilt on the
history already in the lake (nothing new in Kafka unless events were published since), through the
packaged jobs under ``spark-submit``. ``weekly_retrain`` trains both models through the feature store
within ``--train-budget``, registers them, builds their index and runs the promotion gate (it may move
the demo's champion). CPU seconds include the finished child processes (``spark-submit`` drivers).

Writes bench/results/dags.json (or --out). Run from the repository root:

    .venv/bin/python bench/bench_dags.py --state .lambdarec --train-budget 450
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import LoadSampler, tree_cpu_s

from lambdarec.settings import load_settings


def cpu_s() -> float:
    """CPU seconds of this process, its live children and its finished, waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return tree_cpu_s() + children.ru_utime + children.ru_stime


def timed(step: Callable[[], Any], into: dict[str, Any], name: str) -> Any:
    """Run one step, recording its wall and CPU seconds and the load while it ran."""
    load = LoadSampler().start()
    cpu, wall = cpu_s(), time.monotonic()
    result = step()
    into[name] = {"wall_s": round(time.monotonic() - wall, 2), "cpu_s": round(cpu_s() - cpu, 2)}
    into[name].update(load.stop().summary())
    print(f"{name}: {into[name]['wall_s']:.1f} s wall, {into[name]['cpu_s']:.1f} CPU-s", flush=True)
    return result


def main() -> None:
    """Time each task of both DAGs and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=Path(".lambdarec"), help="state folder of a finished demo")
    parser.add_argument("--train-budget", type=float, default=450.0, help="weekly_retrain's training budget (s)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/dags.json"))
    args = parser.parse_args()

    from lambdarec.quality import steps

    settings = load_settings("local", state_dir=args.state)
    dates = steps.silver_dates(settings)
    if not dates:
        raise SystemExit(f"no silver in {args.state}: run `make demo` (or `lambdarec demo`) first")
    day = dates[-1]
    summary = json.loads((args.state / "demo" / "summary.json").read_text())
    events = summary.get("publish", {}).get("accepted")
    print(f"the DAGs' tasks on {args.state} ({len(dates)} silver dates, day {day})", flush=True)

    daily: dict[str, Any] = {"day": day}
    batch = timed(lambda: steps.run_daily_batch(day, settings), daily, "build_batch")
    later = [d for d in steps.silver_dates(settings) if d > day]
    if later:
        # The ingest brought later dates (the demo's live events carry today's time): the next daily
        # run builds them, as the scheduler would, and the weekly retrain then trains up to them.
        day = later[-1]
        print(f"the ingest brought {len(later)} later date(s): the daily run of {day} builds them", flush=True)
        batch = timed(lambda: steps.run_daily_batch(day, settings), daily, "build_batch_next_day")
        daily["day"] = day
    timed(lambda: steps.validate_day(day, settings), daily, "validate")
    timed(lambda: steps.materialize_day(day, settings), daily, "materialize")
    daily["jobs"] = {run["job"]: run["wall_s"] for run in batch.get("submitted", {}).get("jobs", [])}
    daily["gold_dates"] = len(batch.get("gold", []))

    # The weekly run gates the latest *complete* day, as the demo's gates do (a trailing partial day,
    # e.g. the demo's few live events of today, is not judged against full days).
    dates = steps.silver_dates(settings)
    day = steps.latest_complete_day(dates, [steps._silver_rows(settings, d) for d in dates])  # noqa: SLF001
    weekly: dict[str, Any] = {"day": day}
    validation = timed(lambda: steps.validate_day(day, settings, raise_on_failure=False), weekly, "validate_latest")
    challenger = timed(
        lambda: steps.train_challenger(settings, train_budget_s=args.train_budget, run_name=day), weekly, "train"
    )
    drift = timed(
        lambda: steps.drift_report(day, settings, reference_days=steps.TRAINING_REFERENCE_DAYS), weekly, "measure_drift"
    )
    decision = timed(lambda: steps.decide_promotion(challenger, validation, drift, settings), weekly, "promote")
    weekly["promoted"] = bool(decision.get("promote"))
    weekly["blocked_by"] = decision.get("blocked_by")
    weekly["train_budget_s"] = args.train_budget

    result = {
        "benchmark": "dags",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "state": str(args.state),
        "events": events,
        "silver_dates": len(dates),
        "daily_day": daily["day"],
        "silver_rows_of_day": {d: steps._silver_rows(settings, d) for d in {daily["day"], day}},  # noqa: SLF001
        "daily_features": daily,
        "weekly_retrain": weekly,
        "daily_features_total_s": round(
            sum(v["wall_s"] for v in daily.values() if isinstance(v, dict) and "wall_s" in v), 2
        ),
        "weekly_retrain_total_s": round(
            sum(v["wall_s"] for v in weekly.values() if isinstance(v, dict) and "wall_s" in v), 2
        ),
        "command": f".venv/bin/python bench/bench_dags.py --state {args.state} --train-budget {args.train_budget:g}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.endswith("_s") or k.endswith("day")}), flush=True)


if __name__ == "__main__":
    main()

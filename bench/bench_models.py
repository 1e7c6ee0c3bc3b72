"""Benchmark model quality and training cost: the two-stage pipeline beside the baselines.

For each dataset (REES46 and UCI samples from ../shared/datasets, and a seeded synthetic
log of --synthetic-events events) it runs the same temporal split and evaluation as
`lambdarec evaluate`, in a child process per dataset (so peak memory is per dataset), and
records the quality table, training time of both models and peak RSS in
bench/results/models.json. Nothing is tuned on the test split: configs are the defaults,
with a training-time budget per model (--two-tower-budget-s, --deepfm-budget-s).

    .venv/bin/python bench/bench_models.py                      # all three
    .venv/bin/python bench/bench_models.py --only rees46 --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"
DATASETS = {
    "rees46": f"rees46:{SHARED / 'rees46_2019oct_head' / '2019-Oct.head.clean.csv'}",
    "uci": f"uci:{SHARED / 'uci_online_retail' / 'retail_session.parquet.snappy'}",
    "synthetic": "synthetic",
}


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_one(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate one dataset in this process; return its figures."""
    import torch

    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.models.data import load_events, temporal_split
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    torch.set_num_threads(2)
    started = time.monotonic()
    events = load_events(spec)
    split = temporal_split(events, max_test=args.max_test)
    prepared = time.monotonic() - started
    config = PipelineConfig(
        two_tower=TwoTowerConfig(max_train_seconds=args.two_tower_budget_s),
        deepfm=DeepFMConfig(max_train_seconds=args.deepfm_budget_s),
    )
    result, recommender = evaluate_split(split, config, dataset=spec)
    if args.embeddings_out:
        import numpy as np

        out = Path(args.embeddings_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            out,
            items=recommender.item_vectors,
            queries=recommender.retrieval.query_embeddings(split.test),
        )
    figures = result.to_dict()
    figures.update(
        prepare_s=prepared,
        two_tower_train_s=result.training["two_tower_train_s"],
        deepfm_train_s=result.training["deepfm_train_s"],
        train_both_s=result.training["two_tower_train_s"] + result.training["deepfm_train_s"],
        total_s=time.monotonic() - started,
        peak_rss_mib=_peak_rss_mib(),
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the selected datasets (each in a child process) and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(DATASETS), help="datasets to run")
    parser.add_argument("--synthetic-events", type=int, default=1_000_000)
    parser.add_argument("--synthetic-items", type=int, default=50_000)
    parser.add_argument("--two-tower-budget-s", type=float, default=300.0)
    parser.add_argument("--deepfm-budget-s", type=float, default=150.0)
    parser.add_argument("--max-test", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="100k synthetic events, small budgets")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "models.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--embeddings-out", help="save trained item/query embeddings (npz) for bench_retrieval.py")
    args = parser.parse_args(argv)
    if args.quick:
        args.synthetic_events, args.two_tower_budget_s, args.deepfm_budget_s = 100_000, 60.0, 30.0
    if args.child:
        Path(args.child_out).write_text(json.dumps(run_one(args.child, args), default=str))
        return 0

    results: dict[str, Any] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text()).get("datasets", {})
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(DATASETS):
            spec = DATASETS[name]
            if name == "synthetic":
                from lambdarec.data import generate_events

                path = Path(tmp) / "synthetic.parquet"
                generate_events(
                    args.synthetic_events, args.synthetic_items, args.synthetic_events // 20, 42, path, progress=False
                )
                spec = f"synthetic:{path}"
            out = Path(tmp) / f"{name}.json"
            command = [
                sys.executable,
                __file__,
                "--child",
                spec,
                "--child-out",
                str(out),
                "--two-tower-budget-s",
                str(args.two_tower_budget_s),
                "--deepfm-budget-s",
                str(args.deepfm_budget_s),
                "--max-test",
                str(args.max_test),
            ]
            if name == "synthetic":
                command += ["--embeddings-out", str(HERE.parent / ".cache" / "bench" / "synthetic_embeddings.npz")]
            print(f"=== {name}: {spec}", flush=True)
            code = subprocess.call(command)
            if code or not out.exists():
                results[name] = {"error": f"exit code {code}"}
                continue
            figures = json.loads(out.read_text())
            figures["dataset"] = spec if name != "synthetic" else f"synthetic ({args.synthetic_events:,} events)"
            results[name] = figures
            for row in figures["rows"]:
                print(
                    f"  {row['method']:<34} R@20 {row['recall@20']:.4f}  R@100 {row['recall@100']:.4f}  "
                    f"NDCG@10 {row['ndcg@10']:.4f}  MRR@20 {row['mrr@20']:.4f}"
                )
            ranker = figures["ranker"]
            print(
                f"  ranker AUC {ranker['ranker_auc']:.4f} logloss {ranker['ranker_logloss']:.4f}; "
                f"train both {figures['train_both_s']:.0f}s; peak RSS {figures['peak_rss_mib']:.0f} MiB; "
                f"beats baselines: {figures['beats_baselines']}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "models",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch_threads": 2},
                "goals": {
                    "quality": "two-stage beats every baseline on recall@20 and ndcg@10",
                    "train_both_s_at_1M_events": 600,
                },
                "datasets": results,
            },
            indent=2,
            default=str,
        )
    )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score model settings on the training window only: how the defaults are chosen (issue 17).

For each dataset of a lake that `bench_models.py` built (`.cache/bench/models/<name>/state`), the
split is the one `bench_models.py` scores; `models.data.validation_split` then carves its training
side: the earlier 80% of the training examples train, the later 20% are scored. The test side is
never read. Each variant is the CLI's config (`models.commands._config`) with some fields changed:

    .venv/bin/python bench/bench_validation.py --datasets rees46 \\
        --variants base refit_retrieval=False deepfm.batch_size=4096,deepfm.min_steps_per_epoch=1

A field is `name=value` (PipelineConfig), `two_tower.name=value` or `deepfm.name=value`; values are
Python literals (bare words are strings). The table of every variant (the baselines too, fitted on
the events before the validation cut) is printed and written to bench/results/validation.json.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = ROOT / ".cache" / "bench" / "models"
OUT = HERE / "results" / "validation.json"


def parse_variant(spec: str, base: Any) -> Any:
    """``base`` with the fields of ``spec`` (``"base"`` or ``a=1,two_tower.b=2,deepfm.c=x``) changed."""
    if spec == "base":
        return base
    changes: dict[str, dict[str, Any]] = {"": {}, "two_tower": {}, "deepfm": {}}
    for part in spec.split(","):
        name, _, raw = part.partition("=")
        if not raw:
            raise SystemExit(f"variant {spec!r}: {part!r} is not name=value")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        group, _, field = name.rpartition(".")
        if group not in changes:
            raise SystemExit(f"variant {spec!r}: {group!r} is not two_tower or deepfm")
        changes[group][field] = value
    config = dataclasses.replace(
        base,
        two_tower=dataclasses.replace(base.two_tower, **changes["two_tower"]),
        deepfm=dataclasses.replace(base.deepfm, **changes["deepfm"]),
    )
    return dataclasses.replace(config, **changes[""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["rees46"], help="lakes under .cache/bench/models")
    parser.add_argument("--variants", nargs="+", default=["base"], help="base or name=value,... (see above)")
    parser.add_argument("--train-budget", type=float, default=450.0, help="seconds, both models (as the CLI)")
    parser.add_argument("--fraction", type=float, default=0.2, help="latest share of training examples scored")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import torch

    from lambdarec.batch.lake import Lake
    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.featurestore.store import apply, open_store
    from lambdarec.models.commands import _config, silver_events
    from lambdarec.models.data import temporal_split, validation_split
    from lambdarec.models.sources import OfflineFeatureSource
    from lambdarec.settings import load_settings

    torch.set_num_threads(min(torch.get_num_threads(), 2))  # as the CLI does
    doc: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"datasets": {}}
    for name in args.datasets:
        state = WORK / name / "state"
        if not (state / "lake").exists():
            print(f"{name}: no lake at {state}; build it with bench/bench_models.py --datasets {name}", file=sys.stderr)
            return 2
        settings = load_settings().model_copy(update={"state_dir": state})
        apply(settings)
        source = OfflineFeatureSource(open_store(settings))
        split = temporal_split(silver_events(Lake.under(state)), source, test_fraction=0.2, max_test=5_000)
        carved = validation_split(split, args.fraction)
        print(f"=== {name}: {carved.stats}", flush=True)
        runs = doc["datasets"].setdefault(name, {"variants": {}})
        runs["validation"] = carved.stats
        for spec in args.variants:
            config = parse_variant(spec, _config(args.train_budget))
            started, load = time.monotonic(), os.getloadavg()[0]
            result, recommender = evaluate_split(carved, source, config, dataset=f"{name} (validation)")
            seconds = time.monotonic() - started
            runs["variants"][spec] = {
                "rows": result.rows,
                "ranker": result.ranker,
                "two_tower_best_epoch": recommender.retrieval.history.best_epoch,
                "deepfm_batch_size": recommender.ranker.history.batch_size,
                "seconds": round(seconds, 1),
                "load_1m_at_start": round(load, 2),
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            print(f"--- {spec} ({seconds:.0f} s)")
            for row in result.rows:
                print(
                    f"    {row['method']:<34} R@20 {row['recall@20']:.4f}  R@100 {row['recall@100']:.4f}  "
                    f"NDCG@10 {row['ndcg@10']:.4f}"
                )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A peer library side by side: RecBole's SASRec and GRU4Rec on exactly the project's split and metrics.

Issue 17 asks whether the project's retrieval earns its place next to well-known sequential
recommenders. RecBole does not co-resolve with the project's environment, so it runs in its own
(bench/peers/.venv from the pinned bench/peers/requirements.txt; `make bench-peers` creates it):

1. here (project env): the split `bench_models.py` scored, rebuilt from its cached lake the same
   way (`temporal_split` over the lake's silver events, every example read point in time through
   Feast, the same `max_test` seeded sample, the same `max_train` cap), written to files: the
   training examples (session prefix → next item) as RecBole's benchmark files, the training
   window's latest examples held out as validation (early stopping; never the test window), the
   test prefixes, and, apart from them, the test targets;
2. the peer env (`bench/peers/run_recbole.py`) trains one model on the training part only and writes
   its top-100 list per test case, in the project's item codes;
3. here again: the lists are scored with the project's own `next_item_metrics` (Recall@20/@100,
   NDCG@10, MRR@20) against the project's targets (an item unknown at training time is a miss for
   every method), and written to bench/results/peers.json with the training time, the epochs, the
   1-minute load average while the peer ran, RecBole's version and config. A run that fails or is
   cut short says so there.

As a check that the split is the one in models.json, item-kNN is scored again on the rebuilt split
and set beside models.json's figure.

    .venv/bin/python bench/bench_peers.py --datasets rees46 uci synthetic
    .venv/bin/python bench/bench_peers.py --datasets rees46 --models GRU4Rec --budget-s 120

Needs the lakes bench_models.py left under .cache/bench/models/ (run it first, or `--reuse-lake`
there); a dataset without one is recorded as not run, with the command that builds it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_ENV = HERE / "peers" / ".venv"
PEER_RUNNER = HERE / "peers" / "run_recbole.py"
MODELS_WORK = ROOT / ".cache" / "bench" / "models"
WORK = ROOT / ".cache" / "bench" / "peers"
OUT = HERE / "results" / "peers.json"
MODELS_JSON = HERE / "results" / "models.json"
MODELS = ("SASRec", "GRU4Rec")
DATASETS = ("uci", "rees46", "synthetic")
K = 100
HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"


# -- the split as files ---------------------------------------------------------------------------
def _inter_lines(session: np.ndarray, target: np.ndarray, rows: np.ndarray) -> str:
    """RecBole benchmark rows: a row id as the session token, the known prefix items, the target."""
    lines = [HEADER]
    for i in rows:
        prefix = " ".join(str(int(v)) for v in session[i] if v != 0)
        lines.append(f"{int(i)}\t{prefix}\t{int(target[i])}\n")
    return "".join(lines)


def export_split(train: Any, test: Any, folder: Path, valid_share: float = 0.1, valid_cap: int = 5_000) -> dict:
    """Write a split's examples for the peer environment.

    ``folder/input`` is all the peer reads: ``peer/peer.{train,valid,test}.inter`` (RecBole's
    benchmark files; ``test`` is a copy of ``valid``, RecBole's loader wants three) and
    ``test_prefixes.tsv`` (one test case a line, its known prefix items oldest first). The targets
    go to ``folder/targets.npy``, outside it. Items are the project's catalogue codes; padding and
    items unknown at training time (code 0) are left out of the prefixes.

    Args:
        train: Training examples (``session`` (n, L) codes left-padded with 0, ``target``, ``time_ms``).
        test: Test examples (``session``, ``target``), in the order they are scored.
        folder: Where to write.
        valid_share: Share of the training examples, latest in time, held out for early stopping.
        valid_cap: At most this many validation examples (the latest).

    Returns:
        Counts of what was written.
    """
    peer = folder / "input" / "peer"
    peer.mkdir(parents=True, exist_ok=True)
    train_session, train_target = np.asarray(train.session), np.asarray(train.target)
    order = np.argsort(np.asarray(train.time_ms), kind="stable")
    has_prefix = (train_session[order] != 0).any(axis=1) & (train_target[order] != 0)
    order = order[has_prefix]
    n_valid = min(valid_cap, max(1, int(round(valid_share * len(order)))))
    fit_rows, valid_rows = np.sort(order[:-n_valid]), np.sort(order[-n_valid:])
    (peer / "peer.train.inter").write_text(_inter_lines(train_session, train_target, fit_rows))
    valid_text = _inter_lines(train_session, train_target, valid_rows)
    (peer / "peer.valid.inter").write_text(valid_text)
    (peer / "peer.test.inter").write_text(valid_text)
    test_session = np.asarray(test.session)
    prefixes = [" ".join(str(int(v)) for v in row if v != 0) + "\n" for row in test_session]
    (folder / "input" / "test_prefixes.tsv").write_text("".join(prefixes))
    np.save(folder / "targets.npy", np.asarray(test.target, np.int64))
    valid_times = np.asarray(train.time_ms)[valid_rows]
    return {
        "train_examples": int(len(fit_rows)),
        "valid_examples": int(len(valid_rows)),
        "valid_from_ms": int(valid_times.min()) if len(valid_rows) else None,
        "train_examples_dropped_no_prefix": int((~has_prefix).sum()),
        "test_cases": int(len(test_session)),
        "test_cases_without_known_prefix_item": int(sum(1 for p in prefixes if p == "\n")),
    }


def score_topk(folder: Path, topk_path: Path) -> dict[str, float]:
    """Score a peer's top-k lists against the exported targets with the project's metric functions.

    Raises:
        ValueError: The lists are not one row of ``K`` per test case.
    """
    from lambdarec.evaluate.metrics import next_item_metrics

    targets = np.load(folder / "targets.npy")
    ranked = np.load(topk_path)
    if ranked.ndim != 2 or ranked.shape[0] != len(targets) or ranked.shape[1] < K:
        raise ValueError(f"expected ({len(targets)}, >={K}) lists, got {ranked.shape}")
    return next_item_metrics(ranked[:, :K], targets)


# -- the split as bench_models.py scored it ---------------------------------------------------------
def state_dir(name: str, events: int) -> Path:
    """The private state folder (lake + feature store) bench_models.py used for a dataset."""
    return MODELS_WORK / (f"synthetic-{events}" if name == "synthetic" else name) / "state"


def rebuild_split(name: str, state: Path, max_test: int) -> Any:
    """`temporal_split` over the cached lake's silver events, read through the lake's Feast store:
    what `train_from_store` does before it trains (same arguments, same seed)."""
    from lambdarec.batch.lake import Lake
    from lambdarec.featurestore.store import apply, open_store
    from lambdarec.models.commands import check_gold_coverage, silver_events
    from lambdarec.models.data import temporal_split
    from lambdarec.models.sources import OfflineFeatureSource
    from lambdarec.settings import load_settings

    settings = load_settings().model_copy(update={"state_dir": state})
    lake = Lake.under(state)
    events = silver_events(lake)
    check_gold_coverage(lake, events)
    apply(settings)
    source = OfflineFeatureSource(open_store(settings))
    return temporal_split(events, source, test_fraction=0.2, max_test=max_test)


def split_check(name: str, split: Any) -> dict[str, Any]:
    """Item-kNN on the rebuilt split beside models.json's item-kNN on its split (equal: same split)."""
    from lambdarec.evaluate.baselines import ItemKnn
    from lambdarec.evaluate.metrics import next_item_metrics

    here = next_item_metrics(ItemKnn(split.train_events, split.catalogue).recommend(split.test, K), split.test.target)
    there: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    if MODELS_JSON.exists():
        fig = json.loads(MODELS_JSON.read_text()).get("after", {}).get("datasets", {}).get(name, {})
        there = next((r for r in fig.get("rows", []) if r["method"] == "item-kNN"), {})
        stats = fig.get("split", {})
    keys = ("events", "train_examples", "test_examples", "test_examples_evaluated", "cut_ms")
    return {
        "item_knn_here": {m: round(here[m], 6) for m in here},
        "item_knn_models_json": {m: round(there[m], 6) for m in here if m in there},
        "same_metrics": bool(there) and all(abs(here[m] - there[m]) < 1e-9 for m in here),
        "same_split_stats": bool(stats) and all(stats.get(k) == split.stats.get(k) for k in keys),
    }


# -- the peer run ---------------------------------------------------------------------------------
def run_peer(model: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train and rank in the peer env; return its run.json with the wall time and the load around it."""
    sys.path.insert(0, str(HERE))
    from bench_common import LoadSampler

    out = folder / (f"{model}+{args.tag}" if args.tag else model)
    out.mkdir(parents=True, exist_ok=True)
    (out / "topk.npy").unlink(missing_ok=True)
    (out / "run.json").unlink(missing_ok=True)
    command = [
        str(PEER_ENV / "bin" / "python"),
        str(PEER_RUNNER),
        "--data",
        str(folder / "input"),
        "--model",
        model,
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--patience",
        str(args.patience),
        "--budget-s",
        str(args.budget_s),
        "--batch-size",
        str(args.batch_size),
        "--k",
        str(K),
        "--threads",
        str(args.threads),
    ]
    started = time.monotonic()
    with LoadSampler() as load, (out / "log.txt").open("w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout_s)
    figures: dict[str, Any] = {"wall_s": round(time.monotonic() - started, 2), **load.summary(), "exit_code": code}
    if code == 0 and (out / "run.json").exists():
        figures.update(json.loads((out / "run.json").read_text()))
    else:
        tail = (out / "log.txt").read_text().splitlines()[-15:]
        figures.update(status="failed", error=f"exit code {code}", log_tail=tail)
    figures["command"] = " ".join(command)
    return figures


def _machine() -> dict[str, Any]:
    import psutil

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "torch_threads": 2,
    }


def _write(doc: dict[str, Any], path: Path) -> None:
    doc["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Per dataset: rebuild the split, export it, train and rank each peer, score, write peers.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events (as bench_models.py)")
    parser.add_argument("--max-test", type=int, default=5_000, help="test targets evaluated (as bench_models.py)")
    parser.add_argument("--epochs", type=int, default=50, help="epoch cap of each peer")
    parser.add_argument("--patience", type=int, default=10, help="epochs not better before stopping (RecBole's 10)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="a peer stops training after this, mid-epoch too")
    parser.add_argument("--batch-size", type=int, default=256, help="RecBole's train batch (its default 2048)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of a peer (1: see run_recbole.py)")
    parser.add_argument("--reuse-export", action="store_true", help="keep a split exported by an earlier run")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="kill a peer run after this")
    parser.add_argument(
        "--tag", help="record as <dataset>+<tag> (an experiment beside the plain run; reuses its export)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not (PEER_ENV / "bin" / "python").exists():
        print(f"no peer environment at {PEER_ENV}: run `make bench-peers` (it creates it)", file=sys.stderr)
        return 2

    doc: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc.update(
        benchmark="peers",
        machine=_machine(),
        how="bench_models.py's split rebuilt from its cached lake (temporal_split through Feast, max_test "
        f"{args.max_test} seeded, max_train 200,000 latest) → RecBole trains on the training examples "
        "(latest 10% of them, at most 5,000, held out for early stopping on Recall@20) → top-100 per "
        "test case → the project's next_item_metrics",
    )
    datasets = doc.setdefault("datasets", {})
    for name in args.datasets:
        if args.tag:  # an experiment: the plain run's exported split, its own entry
            plain = datasets.get(name) or {}
            entry = datasets.setdefault(f"{name}+{args.tag}", {})
            entry.update({k: plain[k] for k in ("dataset", "split", "export", "split_check") if k in plain})
            entry["experiment"] = f"{args.tag}: budget {args.budget_s:.0f} s, epochs {args.epochs}"
            args.reuse_export = True
        else:
            entry = datasets.setdefault(name, {})
        entry.setdefault("models", {})
        state = state_dir(name, args.events)
        if not (state / "lake").exists():
            build = f".venv/bin/python bench/bench_models.py --datasets {name}"
            entry["not_run"] = f"no lake at {state}: build it with `{build}`, then rerun bench_peers.py"
            for model in args.models:
                entry["models"][model] = {"status": "not run", "reason": entry["not_run"]}
            _write(doc, args.out)
            continue
        entry.pop("not_run", None)
        folder = WORK / name
        if args.reuse_export and (folder / "targets.npy").exists() and entry.get("export"):
            print(f"=== {name}: reusing the split exported at {entry.get('exported_at')}", flush=True)
        else:
            print(f"=== {name}: rebuilding the split (load {os.getloadavg()[0]:.1f})", flush=True)
            started = time.monotonic()
            split = rebuild_split(name, state, args.max_test)
            entry.update(
                dataset=name if name != "synthetic" else f"synthetic ({args.events:,} events, seed 42)",
                split={k: v for k, v in split.stats.items() if k != "event_types"},
                split_s=round(time.monotonic() - started, 2),
                export=export_split(split.train, split.test, folder),
                exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
                split_check=split_check(name, split),
            )
            print(f"  split {entry['split']}\n  export {entry['export']}\n  check {entry['split_check']}", flush=True)
            del split
            _write(doc, args.out)
        for model in args.models:
            print(f"  {model}: training in the peer env (load {os.getloadavg()[0]:.1f})", flush=True)
            try:
                figures = run_peer(model, folder, args)
            except subprocess.TimeoutExpired:
                figures = {"status": "failed", "error": f"killed after {args.timeout_s:.0f} s"}
            if figures.get("status") != "failed":
                out = folder / (f"{model}+{args.tag}" if args.tag else model)
                figures["metrics"] = score_topk(folder, out / "topk.npy")
                cut = figures.get("stopped", "").startswith("time budget")
                figures["status"] = "cut short by the time budget" if cut else "ok"
                print(f"  {model}: {figures['metrics']} train {figures.get('train_s')} s", flush=True)
            else:
                print(f"  {model}: {figures.get('error')}", flush=True)
            entry["models"][model] = figures
            _write(doc, args.out)
    _write(doc, args.out)
    print(f"written {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train one of RecBole's sequential recommenders on an exported split and write its top-k lists.

Runs in the peer environment (bench/peers/.venv, bench/peers/requirements.txt), never in the
project's: it imports RecBole and torch only, no lambdarec. `bench/bench_peers.py` (project env)
writes the split and scores what this writes, so the peers are judged by the project's own metric
functions on the project's own test cases.

Input folder (written by `bench_peers.export_split`):
    peer/peer.train.inter   training examples (session, prefix, next item) of the training window
    peer/peer.valid.inter   the training window's latest examples, held out for early stopping
    peer/peer.test.inter    a copy of valid (RecBole's loader wants three files; never scored)
    test_prefixes.tsv       one test case a line: its session prefix, item codes oldest first
Items are the project's catalogue codes (tokens), so the lists come back in the project's codes.
The test targets are not in the folder this reads.

Output folder:
    topk.npy                (n_test, k) item codes, best first
    run.json                training time, epochs, validation history, config, versions

    bench/peers/.venv/bin/python bench/peers/run_recbole.py --data DIR --model SASRec --out DIR \
        --epochs 20 --budget-s 300
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

INTER_NAME = "peer"
MAX_LEN = 20  # the project's session prefix (RECENT_ITEMS)


def recbole_config(model: str, data_dir: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The config handed to RecBole: its model defaults, except what is named here."""
    return {
        "model": model,
        "dataset": INTER_NAME,
        "data_path": str(data_dir),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": None,
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG", "MRR"],
        "topk": [10, 20],
        "valid_metric": "Recall@20",
        "train_batch_size": args.batch_size,
        "eval_batch_size": 1024,
        "epochs": args.epochs,
        "stopping_step": args.patience,
        "learning_rate": 0.001,
        "use_gpu": False,
        "device": "cpu",
        "seed": args.seed,
        "reproducibility": True,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(work / "saved"),
        "log_wandb": False,
    }


def read_prefixes(path: Path) -> list[list[str]]:
    """The test prefixes, one list of item tokens per line (an empty line: no known item)."""
    return [line.split() for line in path.read_text().split("\n")[:-1]]


def main(argv: list[str] | None = None) -> int:
    """Train with early stopping on the held-out validation examples, then rank for every test prefix."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the export folder")
    parser.add_argument("--model", required=True, choices=["SASRec", "GRU4Rec"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap")
    parser.add_argument("--patience", type=int, default=3, help="epochs without a better validation score")
    parser.add_argument("--budget-s", type=float, default=300.0, help="training stops after this (mid-epoch too)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--k", type=int, default=100)
    # One thread: on the shared 2-core machine under load, two torch threads cost 9x the CPU per step
    # (1.20 vs 0.13 CPU-s for a SASRec step at load 10-12; the threads wait on each other).
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args(argv)

    import numpy as np
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(args.threads)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    os.chdir(args.out)  # RecBole writes its log/ and log_tensorboard/ folders under the working directory
    settings = recbole_config(args.model, args.data, args.out, args)  # RecBole reads <data>/peer/peer.*.inter
    config = Config(model=args.model, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    started = time.monotonic()
    cpu0 = time.process_time()
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    prepare_s = time.monotonic() - started

    history: list[dict[str, Any]] = []
    best_score, best_epoch, best_state, stale = -1.0, -1, None, 0
    stopped = "epoch cap"
    fit_started, fit_cpu = time.monotonic(), time.process_time()
    deadline = fit_started + args.budget_s
    for epoch in range(args.epochs):
        epoch_started = time.monotonic()
        loss_value, steps, whole = train_epoch(model, trainer.optimizer, train_data, deadline)
        score, result = trainer._valid_epoch(valid_data, show_progress=False)
        if not np.isfinite(loss_value):
            stopped = "non-finite loss"
            history.append({"epoch": epoch, "train_loss": loss_value, "steps": steps})
            break
        history.append(
            {
                "epoch": epoch,
                "train_loss_mean": round(loss_value, 4),
                "steps": steps,
                "whole_epoch": whole,
                "valid": {k: round(float(v), 4) for k, v in result.items()},
                "seconds": round(time.monotonic() - epoch_started, 2),
            }
        )
        print(f"{args.model} epoch {epoch}: {steps} steps, loss {loss_value:.3f} valid {dict(result)}", flush=True)
        if score > best_score:
            best_score, best_epoch, stale = float(score), epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if stale >= args.patience:
            stopped = f"early stop (patience {args.patience})"
            break
        if time.monotonic() >= deadline:
            stopped = f"time budget ({args.budget_s:.0f} s)" + ("" if whole else ", mid-epoch")
            break
    fit_s, fit_cpu_s = time.monotonic() - fit_started, time.process_time() - fit_cpu
    if best_state is not None:
        model.load_state_dict(best_state)

    # Rank the catalogue for every test prefix (the padding id never recommended).
    predict_started = time.monotonic()
    token_ids = dataset.field2token_id[dataset.iid_field]
    id_tokens = dataset.field2id_token[dataset.iid_field]
    prefixes = read_prefixes(args.data / "test_prefixes.tsv")
    coded = [[token_ids[t] for t in p if t in token_ids][-MAX_LEN:] for p in prefixes]
    popular = np.asarray(train_data.dataset.inter_feat[dataset.iid_field].numpy())
    counts = np.bincount(popular, minlength=len(id_tokens))
    counts[0] = -1
    popular_ids = np.argsort(-counts, kind="stable")[: args.k]
    ranked = np.zeros((len(coded), args.k), np.int64)
    empty = [i for i, p in enumerate(coded) if not p]
    ranked[empty] = popular_ids
    rows = [i for i, p in enumerate(coded) if p]
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), 512):
            part = rows[start : start + 512]
            seq = torch.zeros((len(part), MAX_LEN), dtype=torch.long)
            for j, i in enumerate(part):
                seq[j, : len(coded[i])] = torch.tensor(coded[i])
            lengths = torch.tensor([len(coded[i]) for i in part], dtype=torch.long)
            batch = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths})
            scores = model.full_sort_predict(batch)
            scores[:, 0] = -torch.inf
            ranked[part] = torch.topk(scores, args.k, dim=1).indices.numpy()
    tokens = id_tokens[ranked]
    np.save(args.out / "topk.npy", tokens.astype(np.int64))
    predict_s = time.monotonic() - predict_started

    report = {
        "model": args.model,
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "torch_threads": args.threads,
        "train_examples": len(train_data.dataset),
        "valid_examples": len(valid_data.dataset),
        "items": int(dataset.item_num - 1),
        "test_cases": len(coded),
        "test_cases_without_known_prefix_item": len(empty),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_valid_recall@20": round(best_score, 4),
        "stopped": stopped,
        "prepare_s": round(prepare_s, 2),
        "train_s": round(fit_s, 2),
        "train_cpu_s": round(fit_cpu_s, 2),
        "predict_s": round(predict_s, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "history": history,
        "config": {
            k: settings[k]
            for k in (
                "MAX_ITEM_LIST_LENGTH",
                "loss_type",
                "train_batch_size",
                "epochs",
                "stopping_step",
                "learning_rate",
                "valid_metric",
                "seed",
            )
        }
        | {"time_budget_s": args.budget_s}
        | {k: config[k] for k in model_keys(args.model)},
    }
    (args.out / "run.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.model}: {stopped} after {len(history)} epochs, {fit_s:.0f} s; best epoch {best_epoch}", flush=True)
    return 0


def train_epoch(model: Any, optimizer: Any, train_data: Any, deadline: float) -> tuple[float, int, bool]:
    """One pass over the training batches (RecBole's own loss), stopping at ``deadline`` if it comes first.

    RecBole's trainer checks time only between epochs; on a shared 2-core machine one epoch of 200k
    examples can outlast the whole budget, so the budget is checked after every step here.

    Returns:
        ``(mean loss per step, steps, whether the whole epoch ran)``.
    """
    import time

    model.train()
    total, steps = 0.0, 0
    for interaction in train_data:
        interaction = interaction.to(model.device)
        optimizer.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        optimizer.step()
        total += float(loss.item())
        steps += 1
        if time.monotonic() >= deadline:
            return total / steps, steps, False
    return total / max(steps, 1), steps, True


def model_keys(model: str) -> tuple[str, ...]:
    """The model's own hyper-parameters (RecBole's defaults unless named in the config)."""
    if model == "SASRec":
        return ("n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob", "attn_dropout_prob")
    return ("embedding_size", "hidden_size", "num_layers", "dropout_prob")


if __name__ == "__main__":
    sys.exit(main())

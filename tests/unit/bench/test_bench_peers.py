"""bench/bench_peers.py: the split written for the peer environment and the peers' lists scored back.

No RecBole: the peer's side is played by reading the files the way bench/peers/run_recbole.py reads
them (its `read_prefixes`, importable without RecBole) and writing lists as it writes them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from lambdarec.evaluate.metrics import next_item_metrics

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _load(name: str, file: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


peers = _load("bench_peers_under_test", BENCH / "bench_peers.py")
runner = _load("run_recbole_under_test", BENCH / "peers" / "run_recbole.py")


def _examples(session: list[list[int]], target: list[int], time_ms: list[int]) -> SimpleNamespace:
    return SimpleNamespace(
        session=np.array(session, np.int64), target=np.array(target, np.int64), time_ms=np.array(time_ms, np.int64)
    )


@pytest.fixture
def split() -> tuple[SimpleNamespace, SimpleNamespace]:
    # Prefixes left-padded with 0, as the project's Examples; the fourth training example has no known
    # prefix item and the fifth an unknown target: neither can train a peer.
    train = _examples(
        [[0, 1, 2], [0, 0, 3], [4, 5, 6], [0, 0, 0], [0, 0, 2], [0, 7, 8], [0, 0, 9], [0, 1, 3], [0, 2, 4], [0, 5, 1]],
        [3, 4, 7, 2, 0, 9, 1, 5, 6, 8],
        [50, 10, 40, 5, 60, 30, 20, 90, 80, 70],
    )
    test = _examples([[0, 3, 4], [0, 0, 0], [6, 0, 2]], [5, 7, 0], [100, 110, 120])
    return train, test


def test_export_writes_recbole_files_and_keeps_targets_out_of_the_peer_input(tmp_path, split) -> None:
    train, test = split
    stats = peers.export_split(train, test, tmp_path, valid_share=0.25)

    folder = tmp_path / "input" / "peer"
    train_lines = (folder / "peer.train.inter").read_text().splitlines()
    valid_lines = (folder / "peer.valid.inter").read_text().splitlines()
    assert train_lines[0] == valid_lines[0] == peers.HEADER.strip("\n")
    assert (folder / "peer.test.inter").read_text() == (folder / "peer.valid.inter").read_text()
    # 8 usable examples; the latest 2 in time (rows 7 and 8: times 90, 80) validate, the rest train.
    assert stats["train_examples_dropped_no_prefix"] == 2
    assert (stats["train_examples"], stats["valid_examples"]) == (6, 2)
    assert [line.split("\t") for line in valid_lines[1:]] == [["7", "1 3", "5"], ["8", "2 4", "6"]]
    assert ["0", "1 2", "3"] in [line.split("\t") for line in train_lines[1:]]
    assert stats["valid_from_ms"] == 80
    # The peer reads only input/: the targets are beside it.
    assert not list((tmp_path / "input").rglob("*.npy"))
    assert np.load(tmp_path / "targets.npy").tolist() == [5, 7, 0]
    assert runner.read_prefixes(tmp_path / "input" / "test_prefixes.tsv") == [["3", "4"], [], ["6", "2"]]
    assert stats["test_cases"] == 3 and stats["test_cases_without_known_prefix_item"] == 1


def test_peer_lists_are_scored_with_the_project_metrics(tmp_path, split) -> None:
    train, test = split
    peers.export_split(train, test, tmp_path)
    ranked = np.tile(np.arange(10, 10 + peers.K), (3, 1))
    ranked[0, 4] = 5  # the first target at rank 5; the second missed; the third unknown (0): a miss
    np.save(tmp_path / "topk.npy", ranked)

    metrics = peers.score_topk(tmp_path, tmp_path / "topk.npy")

    assert metrics == next_item_metrics(ranked, np.array([5, 7, 0]))
    assert metrics["recall@20"] == pytest.approx(1 / 3)
    assert metrics["ndcg@10"] == pytest.approx(1 / np.log2(6) / 3)


def test_lists_of_the_wrong_shape_are_refused(tmp_path, split) -> None:
    train, test = split
    peers.export_split(train, test, tmp_path)
    np.save(tmp_path / "short.npy", np.zeros((2, peers.K), np.int64))
    with pytest.raises(ValueError, match="expected"):
        peers.score_topk(tmp_path, tmp_path / "short.npy")


report = _load("bench_report_for_peers", BENCH / "report.py")


def _models_run(r100: float, encoder: str) -> dict:
    stage = "two-stage (two-tower + DeepFM)"
    rows = [
        {"method": "most-popular", "recall@20": 0.01, "recall@100": 0.1, "ndcg@10": 0.01, "mrr@20": 0.01},
        {"method": "item-kNN", "recall@20": 0.2, "recall@100": 0.45, "ndcg@10": 0.1, "mrr@20": 0.1, "seconds": 2.0},
        {"method": "two-tower (retrieval only)", "recall@20": 0.1, "recall@100": r100, "ndcg@10": 0.05, "mrr@20": 0.04},
        {"method": stage, "recall@20": 0.3, "recall@100": 0.5, "ndcg@10": 0.2, "mrr@20": 0.2},
    ]
    timings = {
        "two_tower": {"loop_wall_s": 100.0, "epochs": 4, "load_1m_mean": 2.5, "load_1m_max": 3.0},
        "deepfm": {"loop_wall_s": 20.0, "epochs": 5},
    }
    split = {"events": 1000, "train_examples": 600, "test_examples_evaluated": 50, "test_unseen_target_share": 0.1}
    return {"rows": rows, "timings": timings, "split": split, "two_tower_encoder": encoder}


def test_the_quality_table_sets_the_peers_beside_our_towers_from_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    models = {
        "benchmark": "models",
        "after": {"measured_at": "2026-01-01T00:00:00Z", "datasets": {"uci": _models_run(0.40, "mean")}},
        "sequence": {"measured_at": "2026-01-02T00:00:00Z", "datasets": {"uci": _models_run(0.42, "attention")}},
    }
    sasrec = {
        "status": "ok",
        "recbole_version": "1.2.1",
        "metrics": {"recall@20": 0.3456, "recall@100": 0.6123, "ndcg@10": 0.2, "mrr@20": 0.15},
        "train_s": 321.0,
        "train_cpu_s": 150.0,
        "epochs_run": 7,
        "best_epoch": 5,
        "load_1m_mean": 4.25,
        "load_1m_max": 6.0,
    }
    peers_doc = {
        "benchmark": "peers",
        "measured_at": "2026-01-03T00:00:00Z",
        "datasets": {
            "uci": {
                "split_check": {"same_metrics": True, "same_split_stats": True, "item_knn_here": {"recall@100": 0.45}},
                "export": {"train_examples": 540, "valid_examples": 60, "test_cases": 50},
                "models": {
                    "SASRec": sasrec,
                    "GRU4Rec": {"status": "failed", "error": "exit code 1", "recbole_version": "1.2.1"},
                },
            },
            "uci+b900": {"experiment": "b900: budget 900 s", "models": {"SASRec": {**sasrec, "train_s": 900.0}}},
        },
    }
    (folder / "models.json").write_text(json.dumps(models))
    (folder / "peers.json").write_text(json.dumps(peers_doc))

    built = report.build(folder, folder)
    text = (folder / "REPORT.md").read_text()

    table = next(t for t in built["quality"] if t["dataset"] == "uci")
    methods = [row[0] for row in table["rows"]]
    assert methods == [
        "most-popular",
        "item-kNN",
        "two-tower alone, mean query tower",
        "two-stage, mean query tower + DeepFM",
        "two-tower alone, attention query tower",
        "two-stage, attention query tower + DeepFM",
        "SASRec (RecBole 1.2.1, peer)",
        "GRU4Rec (RecBole 1.2.1, peer)",
        "SASRec (RecBole 1.2.1, peer, b900: budget 900 s)",
    ]
    assert table["rows"][-1][5].startswith("900 (")
    sas = table["rows"][-3]
    assert sas[1:5] == ["0.3456", "0.6123", "0.2000", "0.1500"]
    assert (sas[5], sas[6]) == ("321 (7, best: epoch 6)", "150") and "mean 4.2" in sas[7]
    assert table["rows"][-2][5].startswith("failed: exit code 1")
    assert "recall@100: best peer SASRec 0.6123 vs our two-tower (attention tower) 0.4200" in text
    assert "checked: item-kNN on it gives models.json's figures" in text
    peer_figure = next(f for f in built["figures"] if f["name"].startswith("GRU4Rec"))
    assert peer_figure["status"] == "missing" and "--models GRU4Rec" in peer_figure["command"]

"""bench/bench_retrieval.py's pure helpers: exact top-k, recall, latency summary, Milvus histogram deltas.

No Milvus, no timing assertions: only the arithmetic the benchmark's figures are made of.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _load(name: str, file: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the benchmark imports bench_common as a sibling
    spec = importlib.util.spec_from_file_location(name, BENCH / file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


retrieval = _load("bench_retrieval_under_test", "bench_retrieval.py")


def test_exact_top_k_returns_primary_keys_of_the_best_rows() -> None:
    vectors = np.eye(4, dtype=np.float32)
    queries = np.array([[0.1, 0.9, 0.5, 0.0]], np.float32)
    top = retrieval.exact_top_k(vectors, queries, 2)
    assert sorted(top[0].tolist()) == [2, 3]  # rows 1 and 2, keys start at 1


def test_recall_counts_the_exact_top_k_found() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert retrieval.recall_at_k([[1, 2, 3, 4], [5, 6, 9, 10]], truth) == pytest.approx(0.75)
    assert retrieval.recall_at_k([[4, 3], []], truth) == pytest.approx(0.25)


def test_latency_summary_percentiles() -> None:
    summary = retrieval.latency_summary(list(range(1, 101)))
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == 100


def test_make_vectors_names_trained_and_jittered_rows() -> None:
    trained = np.vstack([np.zeros((1, 8)), np.eye(8)]).astype(np.float32)  # row 0: the unknown item
    vectors, n_trained = retrieval.make_vectors(trained, 20)
    assert n_trained == 8 and vectors.shape == (20, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_histogram_deltas_between_scrapes_keep_search_series() -> None:
    before = "\n".join(
        [
            'milvus_proxy_sq_latency_bucket{query_type="search",le="1"} 0',
            'milvus_proxy_sq_latency_bucket{query_type="search",le="2"} 0',
            'milvus_proxy_sq_latency_bucket{query_type="search",le="+Inf"} 0',
            'milvus_proxy_sq_latency_sum{query_type="search"} 0',
            'milvus_proxy_sq_latency_count{query_type="search"} 0',
            'milvus_proxy_sq_latency_count{query_type="query"} 7',
        ]
    )
    after = "\n".join(
        [
            'milvus_proxy_sq_latency_bucket{query_type="search",le="1"} 90',
            'milvus_proxy_sq_latency_bucket{query_type="search",le="2"} 99',
            'milvus_proxy_sq_latency_bucket{query_type="search",le="+Inf"} 100',
            'milvus_proxy_sq_latency_sum{query_type="search"} 150',
            'milvus_proxy_sq_latency_count{query_type="search"} 100',
            'milvus_proxy_sq_latency_count{query_type="query"} 9',
            "other_metric 3",
        ]
    )
    deltas = retrieval.histogram_deltas(before, after, ("milvus_proxy_sq",))
    figure = deltas["milvus_proxy_sq_latency"]
    assert figure["calls"] == 100
    assert figure["mean"] == pytest.approx(1.5)
    assert figure["p50_bucket_le"] == 1.0
    assert figure["p99_bucket_le"] == 2.0


def _trained_doc(p99_one: float, p99_four: float) -> dict[str, object]:
    def best(p99: float, n: int) -> dict[str, object]:
        return {
            "index_type": "IVF_FLAT",
            "build_params": {"nlist": 1024},
            "search_params": {"nprobe": 16},
            "recall_at_100": 0.97,
            "p50_ms": 2.0,
            "p99_ms": p99,
            "queries_per_s": 100.0 * n,
            "load_1m_mean": 2.5,
            "meets_goal": p99 <= 5.0,
        }

    return {
        "benchmark": "retrieval",
        "vectors": "trained",
        "measured_at": "2026-01-05T00:00:00+00:00",
        "command": ".venv/bin/python bench/bench_retrieval.py --vectors trained --clients 1 4",
        "items": 1_000_000,
        "trained_items": 1_000_000,
        "jittered_items": 0,
        "how_the_vectors_were_made": {
            "events": 200_000,
            "catalogue_items": 1_000_000,
            "items_seen_in_training_embedded_with_id": 90_000,
            "items_embedded_from_content_only": 910_000,
        },
        "dim": 64,
        "queries": 500,
        "k": 100,
        "clients": [1, 4],
        "goal": "p99 <= 5 ms at recall@100 >= 0.95 vs exact search, 1 and 4 concurrent clients",
        "best_by_clients": {"1": best(p99_one, 1), "4": best(p99_four, 4)},
        "profile": {"notes": ["the round trip dominates."]},
    }


def test_report_fills_the_trained_catalogue_row_with_both_client_counts() -> None:
    report = _load("bench_report_for_retrieval", "report.py")
    docs = {"retrieval_1m_trained.json": (Path("retrieval_1m_trained.json"), _trained_doc(4.0, 9.0))}
    section, _ = report.retrieval_section(docs)
    (row,) = [f for f in section.figures if "trained on a 1M-item catalogue" in f.name]
    assert (row.value, row.status) == (9.0, "not met")  # the worst client count decides
    assert "1 client: p99 4" in row.shown and "4 clients: p99 9" in row.shown
    assert "trained vectors, no jittered copies" in row.meaning and "910,000 from content only" in row.meaning
    assert "--clients 1 4" in row.command and "mean 2.5" in row.load_1m

    met = {"retrieval_1m_trained.json": (Path("retrieval_1m_trained.json"), _trained_doc(4.0, 4.5))}
    (row,) = [f for f in report.retrieval_section(met)[0].figures if "trained on a 1M-item" in f.name]
    assert row.status == "met"


def test_report_keeps_the_trained_catalogue_row_missing_without_a_trained_run() -> None:
    report = _load("bench_report_for_retrieval_missing", "report.py")
    section, _ = report.retrieval_section({})
    (row,) = [f for f in section.figures if "trained on a 1M-item catalogue" in f.name]
    assert row.status == "missing" and "--vectors trained" in row.command


def test_recall_with_ties_accepts_an_equally_scored_item() -> None:
    # Rows 2 and 3 (keys 3 and 4) are the same vector: either may fill a top-2 after row 0.
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.8, 0.6]], np.float32)
    queries = np.array([[1.0, 0.0]], np.float32)
    truth = retrieval.exact_top_k(vectors, queries, 2)
    kth = retrieval.kth_scores(vectors, queries, truth)
    assert kth[0] == pytest.approx(0.8)
    assert retrieval.recall_with_ties([[1, 4]], vectors, queries, kth, 2) == 1.0
    assert retrieval.recall_with_ties([[1, 3]], vectors, queries, kth, 2) == 1.0
    assert retrieval.recall_with_ties([[1, 2]], vectors, queries, kth, 2) == 0.5
    assert retrieval.recall_with_ties([[1, 1]], vectors, queries, kth, 2) == 0.5  # a repeat counts once


def _paced(p99_by_rate: dict[float, float], clients: int = 4) -> dict[str, object]:
    return {
        str(clients): {
            "clients": clients,
            "seconds": 20.0,
            "by_rate": {
                f"{rate:g}": {"offered_per_s": rate, "achieved_per_s": rate, "p50_ms": 1.0, "p99_ms": p99}
                for rate, p99 in p99_by_rate.items()
            },
        }
    }


def test_best_paced_is_the_highest_rate_within_the_goal_at_enough_recall() -> None:
    indexes = [
        {
            "index_type": "IVF_FLAT",
            "build_params": {"nlist": 1024},
            "runs": [
                # Holds the goal up to 400 q/s but misses recall: never the answer.
                {"params": {"nprobe": 2}, "recall_at_100": 0.90, "paced": _paced({400.0: 2.0, 800.0: 3.0})},
                {
                    "params": {"nprobe": 16},
                    "recall_at_100": 0.99,
                    "paced": _paced({100.0: 3.0, 300.0: 4.9, 500.0: 7.0}),
                },
                {"params": {"nprobe": 48}, "recall_at_100": 0.999, "paced": _paced({100.0: 4.0, 200.0: 6.0})},
                {"params": {"nprobe": 64}, "recall_at_100": 0.999},  # no paced rounds
            ],
        }
    ]
    best = retrieval.best_paced(indexes)["4"]
    assert best is not None
    assert (best["search_params"], best["offered_per_s"], best["p99_ms"]) == ({"nprobe": 16}, 300.0, 4.9)
    assert best["meets_goal"] is (300.0 >= retrieval.PACED_GOAL_RATE)
    assert retrieval.best_paced([{**indexes[0], "runs": indexes[0]["runs"][2:3]}])["4"]["offered_per_s"] == 100.0
    slow = {**indexes[0], "runs": [{"params": {}, "recall_at_100": 0.99, "paced": _paced({100.0: 5.1})}]}
    assert retrieval.best_paced([slow]) == {"4": None}
    # A light load that misses is not hidden by a heavier one that meets the goal.
    idle = {**indexes[0], "runs": [{"params": {}, "recall_at_100": 0.99, "paced": _paced({50.0: 7.0, 200.0: 4.7})}]}
    assert retrieval.best_paced([idle]) == {"4": None}
    both = {
        **indexes[0],
        "runs": [{"params": {}, "recall_at_100": 0.99, "paced": {**_paced({50.0: 4.0}, 1), **_paced({50.0: 9.0})}}],
    }
    assert {n: b and b["offered_per_s"] for n, b in retrieval.best_paced([both]).items()} == {"1": 50.0, "4": None}


def test_report_adds_the_paced_row_only_for_runs_with_paced_rounds() -> None:
    report = _load("bench_report_for_paced", "report.py")
    doc = _trained_doc(4.0, 9.0)
    doc["indexes"] = [
        {
            "index_type": "IVF_FLAT",
            "build_params": {"nlist": 1024},
            "runs": [{"params": {"nprobe": 16}, "recall_at_100": 0.99, "paced": _paced({100.0: 3.0, 400.0: 4.0})}],
        }
    ]
    doc["paced_goal_rate_per_s"] = 200.0
    doc["best_paced"] = retrieval.best_paced(doc["indexes"])
    rows = [f for f in report.retrieval_section({"r.json": (Path("r.json"), doc)})[0].figures if "fixed pace" in f.name]
    assert len(rows) == 1 and (rows[0].value, rows[0].status) == (400.0, "met")
    assert "400 q/s offered by 4 clients: p99 4" in rows[0].shown and "100, 400" in rows[0].meaning

    doc["indexes"][0]["runs"][0]["paced"] = _paced({100.0: 6.0})
    doc["best_paced"] = retrieval.best_paced(doc["indexes"])
    (row,) = [
        f for f in report.retrieval_section({"r.json": (Path("r.json"), doc)})[0].figures if "fixed pace" in f.name
    ]
    assert (row.value, row.status) == (None, "not met") and "p99 6 ms at 100 q/s offered" in row.shown

    del doc["best_paced"]
    assert not [
        f for f in report.retrieval_section({"r.json": (Path("r.json"), doc)})[0].figures if "fixed pace" in f.name
    ]

"""Ranking metrics for next-item prediction and classification metrics for the ranker.

Every next-item metric takes ranked item lists (one row per example, best first) and one
target per example; a target of index 0 (an item unknown at training time) is a miss for
every method, which keeps methods comparable on the same test set.
"""

from __future__ import annotations

import numpy as np

CUTOFFS = {"recall": (20, 100), "ndcg": (10,), "mrr": (20,)}
"""The cut-offs reported: Recall@20/@100, NDCG@10, MRR@20."""


def target_ranks(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its list, or -1 when absent (or the target is 0).

    Args:
        ranked: (n, k) item indices, best first.
        targets: (n,) item indices.
    """
    ranked = np.asarray(ranked)
    targets = np.asarray(targets)
    if ranked.ndim != 2 or ranked.shape[0] != targets.shape[0]:
        raise ValueError(f"ranked must be (n, k) with n = len(targets); got {ranked.shape} and {targets.shape}")
    hits = (ranked == targets[:, None]) & (targets[:, None] != 0)
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1), -1)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of examples whose target is in the top ``k`` (one target each: hit rate)."""
    return float(np.mean((ranks >= 0) & (ranks < k))) if ranks.size else 0.0


def ndcg_at(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@k with one relevant item: ``1 / log2(rank + 2)`` inside the top ``k``."""
    if not ranks.size:
        return 0.0
    gains = np.where((ranks >= 0) & (ranks < k), 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return float(gains.mean())


def mrr_at(ranks: np.ndarray, k: int) -> float:
    """Mean reciprocal rank, counting only targets in the top ``k``."""
    if not ranks.size:
        return 0.0
    return float(np.where((ranks >= 0) & (ranks < k), 1.0 / (np.maximum(ranks, 0) + 1.0), 0.0).mean())


def next_item_metrics(ranked: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Recall@20, Recall@100, NDCG@10 and MRR@20 of ranked lists against targets."""
    ranks = target_ranks(ranked, targets)
    out: dict[str, float] = {}
    for k in CUTOFFS["recall"]:
        out[f"recall@{k}"] = recall_at(ranks, k)
    for k in CUTOFFS["ndcg"]:
        out[f"ndcg@{k}"] = ndcg_at(ranks, k)
    for k in CUTOFFS["mrr"]:
        out[f"mrr@{k}"] = mrr_at(ranks, k)
    return out


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 labels."""
    labels = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    if not labels.size:
        return float("nan")
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

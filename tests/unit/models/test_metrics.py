"""Ranking and classification metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lambdarec.evaluate.metrics import log_loss, next_item_metrics, roc_auc, target_ranks


def test_ranks_find_the_target_and_never_match_the_unknown_item() -> None:
    ranked = np.array([[5, 3, 9], [1, 2, 3], [0, 7, 8]])
    assert target_ranks(ranked, np.array([9, 4, 0])).tolist() == [2, -1, -1]


def test_next_item_metrics_by_hand() -> None:
    # Target at rank 0, rank 14, rank 50 and absent.
    ranked = np.tile(np.arange(1, 101), (4, 1))
    targets = np.array([1, 15, 51, 999])
    m = next_item_metrics(ranked, targets)
    assert m["recall@20"] == pytest.approx(2 / 4)
    assert m["recall@100"] == pytest.approx(3 / 4)
    assert m["ndcg@10"] == pytest.approx(1.0 / 4)  # only the rank-0 hit is inside the top 10
    assert m["mrr@20"] == pytest.approx((1 + 1 / 15) / 4)


def test_ndcg_discounts_by_log_rank() -> None:
    m = next_item_metrics(np.array([[7, 8, 9]]), np.array([9]))
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(4))


def test_auc_and_logloss_by_hand() -> None:
    labels = np.array([1, 0, 1, 0])
    assert roc_auc(labels, np.array([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert roc_auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(labels, np.array([0.1, 0.9, 0.2, 0.8])) == 0.0
    assert math.isnan(roc_auc(np.ones(3), np.ones(3)))
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ranked must be"):
        target_ranks(np.zeros((3, 2)), np.zeros(2))

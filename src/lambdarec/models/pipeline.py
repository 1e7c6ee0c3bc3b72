"""The two-stage recommender: two-tower retrieval, then DeepFM ranking of the candidates.

Candidates for a query are the two-tower top ``retrieval_k`` (the Milvus ANN search in
serving) plus the co-occurrence top ``covisit_k`` of the session (the co-purchase
fallback of the architecture) plus the session's own items (shoppers come back to what
they viewed). DeepFM ranks their union. The ranker is trained on the candidates of the
latest training queries: the other candidates are hard negatives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lambdarec.evaluate.baselines import ItemKnn
from lambdarec.models.data import PAD, Catalogue, DatasetTooSmallError, Examples, Split
from lambdarec.models.deepfm import DeepFMConfig, DeepFMModel
from lambdarec.models.two_tower import TwoTowerConfig, TwoTowerModel, validation_cut

SPARSE_FIELDS = (
    "item",
    "category",
    "brand",
    "price_bucket",
    "last_item",
    "last_category",
    "user_spend_bucket",
    "session_position",
    "same_category_as_last",
    "source",
)
"""Sparse fields of the ranker (FM + deep part)."""
DENSE_RANKING_FEATURES = (
    "two_tower_score",
    "two_tower_rank",
    "co_purchase_score",
    "log_co_purchase_score",
    "item_popularity",
    "price_vs_user_spend",
    "price_vs_user_spend_known",
    "session_event_count",
    "session_view_count",
    "session_cart_count",
    "session_purchase_count",
    "session_distinct_categories",
    "session_dwell_min",
    "user_history_length",
)
"""Dense features of the ranker; missing values are imputed (unknown price ratio -> 0 plus a flag)."""
SESSION_POSITIONS = 7
MIN_RETRIEVAL_EXAMPLES = 40


@dataclass
class PipelineConfig:
    """Sizes of the two stages.

    Attributes:
        two_tower: Retrieval model hyper-parameters.
        deepfm: Ranker hyper-parameters.
        retrieval_k: Two-tower candidates per query.
        covisit_k: Co-occurrence candidates per query.
        ranker_fraction: Latest share of training examples reserved for the ranker (retrieval and
            co-occurrence are fitted on the earlier ones).
        ranker_queries: At most this many (latest) ranker-window queries train the ranker.
        negatives: Hard negatives sampled per ranker training query.
    """

    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    deepfm: DeepFMConfig = field(default_factory=DeepFMConfig)
    retrieval_k: int = 100
    covisit_k: int = 50
    ranker_fraction: float = 0.2
    ranker_queries: int = 40_000
    negatives: int = 20


@dataclass
class Candidates:
    """Candidates per query, (n, C) item indices (0 = empty slot) with their retrieval signals."""

    items: np.ndarray
    two_tower_score: np.ndarray
    two_tower_rank: np.ndarray
    source: np.ndarray


class TwoStageRecommender:
    """Retrieval + ranking over one catalogue.

    Args:
        catalogue: The training catalogue.
        config: Stage sizes and hyper-parameters.
    """

    def __init__(self, catalogue: Catalogue, config: PipelineConfig | None = None) -> None:
        self.catalogue = catalogue
        self.config = config or PipelineConfig()
        self.retrieval = TwoTowerModel(catalogue, self.config.two_tower)
        self.covisit: ItemKnn | None = None
        self.field_sizes = [
            catalogue.n_items,
            len(catalogue.categories) + 1,
            len(catalogue.brands) + 1,
            len(catalogue.price_edges) + 2,
            catalogue.n_items,
            len(catalogue.categories) + 1,
            len(catalogue.price_edges) + 2,
            SESSION_POSITIONS,
            3,
            8,
        ]
        self.ranker = DeepFMModel(self.field_sizes, len(DENSE_RANKING_FEATURES), self.config.deepfm)
        self.dense_mean = np.zeros(len(DENSE_RANKING_FEATURES), np.float32)
        self.dense_std = np.ones(len(DENSE_RANKING_FEATURES), np.float32)
        self.item_vectors: np.ndarray | None = None
        self.timings: dict[str, float] = {}

    # -- candidates and features ------------------------------------------------------------
    def candidates(self, examples: Examples) -> Candidates:
        """The union of two-tower, co-occurrence and session candidates of each example."""
        assert self.covisit is not None and self.item_vectors is not None, "fit first"
        cfg = self.config
        tt_items, _ = self.retrieval.recommend(examples, cfg.retrieval_k, self.item_vectors)
        knn_items = self.covisit.recommend(examples, cfg.covisit_k)
        stacked = np.concatenate([tt_items, knn_items, examples.session], 1)
        items = np.sort(stacked, 1)
        items[:, 1:][items[:, 1:] == items[:, :-1]] = PAD
        items = -np.sort(-items, 1)  # real items first, empty slots (0) last
        width = int((items != PAD).sum(1).max(initial=1))
        items = items[:, :width]
        queries = self.retrieval.query_embeddings(examples)
        score = np.einsum("nd,ncd->nc", queries, self.item_vectors[items])
        rank = np.full(items.shape, float(cfg.retrieval_k), np.float32)
        source = np.zeros(items.shape, np.int64)
        for start in range(0, len(items), 1024):
            block = items[start : start + 1024, :, None]
            in_tt = block == tt_items[start : start + 1024, None, :]
            found = in_tt.any(2)
            rank[start : start + 1024][found] = in_tt.argmax(2)[found]
            source[start : start + 1024] += found * 1
            source[start : start + 1024] += (block == knn_items[start : start + 1024, None, :]).any(2) * 2
            source[start : start + 1024] += (block == examples.session[start : start + 1024, None, :]).any(2) * 4
        source[items == PAD] = 0
        return Candidates(items, score.astype(np.float32), rank / cfg.retrieval_k, source)

    def features(self, examples: Examples, cands: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (n, C, F) and dense (n, C, D) ranking features, NaN-free."""
        assert self.covisit is not None
        cat = self.catalogue
        items = cands.items
        n, c = items.shape
        last = examples.session[:, -1]
        sparse = np.zeros((n, c, len(SPARSE_FIELDS)), np.int32)
        sparse[..., 0] = items
        sparse[..., 1] = cat.item_category[items]
        sparse[..., 2] = cat.item_brand[items]
        sparse[..., 3] = cat.item_price_bucket[items]
        sparse[..., 4] = last[:, None]
        sparse[..., 5] = cat.item_category[last][:, None]
        sparse[..., 6] = cat.price_bucket(examples.user_spend)[:, None]
        # Steps back in the session where the candidate was last seen (0: not in the session).
        back = np.zeros((n, c), np.int64)
        width = examples.session.shape[1]
        for pos in range(width):
            hit = (items == examples.session[:, pos : pos + 1]) & (items != PAD)
            back[hit] = np.minimum(width - pos, SESSION_POSITIONS - 1)
        sparse[..., 7] = back
        cand_cat, last_cat = cat.item_category[items], cat.item_category[last][:, None]
        sparse[..., 8] = np.where((cand_cat == PAD) | (last_cat == PAD), 0, np.where(cand_cat == last_cat, 1, 2))
        sparse[..., 9] = cands.source
        co = np.zeros((n, c), np.float32)
        for start in range(0, n, 512):
            part = examples.subset(np.arange(start, min(start + 512, n)))
            scores = self.covisit.scores(part)
            co[start : start + 512] = np.take_along_axis(scores, items[start : start + 512], 1)
        price = cat.item_price[items]
        spend = examples.user_spend[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.log(price / spend)
        known = np.isfinite(ratio)
        dense = np.zeros((n, c, len(DENSE_RANKING_FEATURES)), np.float32)
        dense[..., 0] = cands.two_tower_score
        dense[..., 1] = cands.two_tower_rank
        dense[..., 2] = co
        dense[..., 3] = np.log1p(10 * co)
        dense[..., 4] = np.log1p(cat.item_popularity[items])
        dense[..., 5] = np.where(known, np.clip(ratio, -5, 5), 0.0)
        dense[..., 6] = known
        dense[..., 7:] = examples.dense[:, None, :]
        return sparse, np.nan_to_num(dense, nan=0.0, posinf=0.0, neginf=0.0)

    def _standardise(self, dense: np.ndarray) -> np.ndarray:
        return ((dense - self.dense_mean) / self.dense_std).astype(np.float32)

    # -- training ---------------------------------------------------------------------------
    def fit(self, split: Split, progress: Callable[[str, int, int, float], None] | None = None) -> dict[str, Any]:
        """Train retrieval on the earlier training examples, then the ranker on the later ones' candidates.

        Returns:
            Training statistics (rows, positives in candidates, seconds per stage).
        """
        # The ranker learns on a later window than the one retrieval and co-occurrence are fitted
        # on, so its features look like they will at test time (no pair counts its own session).
        train = split.train.subset(split.train.target != PAD)
        window = validation_cut(len(train), self.config.ranker_fraction)
        if window < MIN_RETRIEVAL_EXAMPLES or len(train) - window < 10:
            raise DatasetTooSmallError(
                f"{len(train)} training examples cannot be split into retrieval and ranker windows; "
                f"need at least {MIN_RETRIEVAL_EXAMPLES + 10}"
            )
        window_ms = int(train.time_ms[window])
        started = time.monotonic()
        self.retrieval.fit(train.subset(np.arange(window)), progress)
        self.item_vectors = self.retrieval.item_embeddings()
        self.timings["two_tower_train_s"] = time.monotonic() - started
        started = time.monotonic()
        self.covisit = ItemKnn(split.train_events[split.train_events["event_time"] < window_ms], self.catalogue)
        queries = train.subset(np.arange(window, len(train)))
        queries = queries.subset(np.arange(max(0, len(queries) - self.config.ranker_queries), len(queries)))
        cands = self.candidates(queries)
        positive = cands.items == queries.target[:, None]
        has_positive = positive.any(1)
        queries = queries.subset(has_positive)
        fields = ("items", "two_tower_score", "two_tower_rank", "source")
        cands = Candidates(*(getattr(cands, f)[has_positive] for f in fields))
        positive = positive[has_positive]
        if len(queries) < 10:
            raise DatasetTooSmallError(
                f"only {len(queries)} training queries have their target among the candidates; "
                "too few to train the ranker (need 10)"
            )
        sparse, dense = self.features(queries, cands)
        rng = np.random.default_rng(self.config.deepfm.seed)
        rows, cols, labels, weights = [], [], [], []
        for q in range(len(queries)):
            valid = np.flatnonzero(cands.items[q] != PAD)
            pos = valid[positive[q, valid]]
            neg = valid[~positive[q, valid]]
            if len(neg) > self.config.negatives:
                neg = rng.choice(neg, self.config.negatives, replace=False)
            picked = np.concatenate([pos, neg])
            rows.append(np.full(len(picked), q))
            cols.append(picked)
            labels.append(np.r_[np.ones(len(pos)), np.zeros(len(neg))])
            weights.append(np.r_[np.full(len(pos), queries.weight[q]), np.ones(len(neg))])
        r, c = np.concatenate(rows), np.concatenate(cols)
        train_dense = dense[r, c]
        self.dense_mean = train_dense.mean(0)
        self.dense_std = np.maximum(train_dense.std(0), 1e-3)
        self.ranker.fit(
            sparse[r, c], self._standardise(train_dense), np.concatenate(labels), np.concatenate(weights), progress
        )
        self.timings["deepfm_train_s"] = time.monotonic() - started
        # Serving and evaluation use co-occurrence over every training event.
        self.covisit = ItemKnn(split.train_events, self.catalogue)
        return {
            "ranker_queries": len(queries),
            "ranker_rows": len(r),
            "ranker_positive_in_candidates": float(has_positive.mean()),
            **self.timings,
        }

    # -- inference --------------------------------------------------------------------------
    def rank(self, examples: Examples, k: int) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
        """Top ``k`` items per example after ranking, with the ranker's AUC/logloss on the candidates.

        Returns:
            ``(items (n, k), ranker_metrics, two_tower_items (n, k))``.
        """
        from lambdarec.evaluate.metrics import log_loss, roc_auc

        cands = self.candidates(examples)
        sparse, dense = self.features(examples, cands)
        n, c = cands.items.shape
        probs = self.ranker.predict(sparse.reshape(n * c, -1), self._standardise(dense.reshape(n * c, -1))).reshape(
            n, c
        )
        valid = cands.items != PAD
        probs = np.where(valid, probs, -1.0)
        order = np.argsort(-probs, 1, kind="stable")[:, :k]
        items = np.take_along_axis(cands.items, order, 1)
        if items.shape[1] < k:
            items = np.hstack([items, np.zeros((n, k - items.shape[1]), items.dtype)])
        labels = (cands.items == examples.target[:, None]) & (examples.target[:, None] != PAD)
        metrics = {
            "ranker_auc": roc_auc(labels[valid], probs[valid]),
            "ranker_logloss": log_loss(labels[valid], probs[valid]),
            "candidate_recall": float(labels.any(1).mean()),
            "candidates_per_query": float(valid.sum(1).mean()),
        }
        tt_items, _ = self.retrieval.recommend(examples, k, self.item_vectors)
        return items, metrics, tt_items

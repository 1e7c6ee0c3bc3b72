"""The two-stage recommender: two-tower retrieval, then DeepFM ranking of the candidates.

Every input comes from the feature services through a :class:`~lambdarec.models.sources.FeatureSource`
(offline point in time for training and evaluation, online for serving) and is turned into arrays
by :mod:`lambdarec.models.inputs` — the same calls on both sides.

Candidates of a query are the two-tower top ``retrieval_k`` over the catalogue-wide index (Milvus
in serving, an exact search here), united with the best ``neighbour_k`` co-view / co-purchase
neighbours of the session's latest items (the batch layer's ``item_neighbours``) and the session's
own items. DeepFM ranks the union. The ranker learns on a later window of the training examples
than retrieval, so its two-tower features look like they will at test time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lambdarec.models.data import DatasetTooSmallError, Examples
from lambdarec.models.deepfm import DeepFMConfig, DeepFMModel
from lambdarec.models.inputs import (
    PAD,
    RANKING_DENSE,
    SESSION_POSITIONS,
    SOURCES,
    SPARSE_FIELDS,
    Vocabulary,
    assemble_candidates,
    neighbour_scores,
    seed_items,
)
from lambdarec.models.sources import FeatureSource
from lambdarec.models.two_tower import TwoTowerConfig, TwoTowerModel, validation_cut

MIN_RETRIEVAL_EXAMPLES = 40
SOURCE_TWO_TOWER, SOURCE_NEIGHBOURS, SOURCE_SESSION = 1, 2, 4


@dataclass
class PipelineConfig:
    """Sizes of the two stages (saved in the serving bundle as the candidate settings).

    Attributes:
        two_tower: Retrieval model hyper-parameters.
        deepfm: Ranker hyper-parameters.
        retrieval_k: Two-tower candidates per query.
        neighbour_k: Co-view / co-purchase candidates per query.
        ranker_fraction: Latest share of training examples reserved for the ranker.
        ranker_queries: At most this many (latest) ranker-window queries train the ranker.
        negatives: Hard negatives sampled per ranker training query.
        refit_retrieval: After the ranker is trained, retrain the two-tower on every training
            example (retrieval and ranker windows) for the epochs its validation chose, and serve
            that one. Otherwise the served two-tower never sees the latest 20% of the training
            window — the days closest to the ones it will serve. Chosen on REES46's validation
            window (``bench/bench_validation.py``, ``bench/results/validation.json``): the two-tower
            alone Recall@100 0.237 → 0.304 (item-kNN 0.268), the two-stage Recall@20 0.196 → 0.223
            (session-kNN 0.215). Costs a second two-tower fit (best epoch + 1 epochs).
    """

    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    deepfm: DeepFMConfig = field(default_factory=DeepFMConfig)
    retrieval_k: int = 100
    neighbour_k: int = 50
    ranker_fraction: float = 0.2
    ranker_queries: int = 8_000
    negatives: int = 20
    refit_retrieval: bool = True


@dataclass
class CandidatePairs:
    """Candidates of a batch of queries, flattened: one entry per (query, candidate) pair.

    Attributes:
        query: (m,) the query of each pair (row of the examples).
        item_ids: (m,) the candidate's item id.
        two_tower_score: (m,) query · item embedding.
        two_tower_rank: (m,) rank in the two-tower list over ``retrieval_k`` (1.0 when not retrieved).
        neighbour: (m, 2) co-view and co-purchase scores.
        source: (m,) bit set: 1 two-tower, 2 neighbours, 4 the session.
    """

    query: np.ndarray
    item_ids: np.ndarray
    two_tower_score: np.ndarray
    two_tower_rank: np.ndarray
    neighbour: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.query)

    def subset(self, rows: np.ndarray) -> CandidatePairs:
        """The pairs at ``rows``."""
        return CandidatePairs(**{k: getattr(self, k)[rows] for k in self.__dataclass_fields__})


def _user_ids(examples: Examples) -> list[str]:
    return [str(u) for u in examples.user_id]


class TwoStageRecommender:
    """Retrieval + ranking over one vocabulary and a catalogue-wide item index.

    Args:
        vocab: The training vocabulary (id maps and content encoders).
        config: Stage sizes and hyper-parameters.
    """

    def __init__(self, vocab: Vocabulary, config: PipelineConfig | None = None) -> None:
        self.vocab = vocab
        self.config = config or PipelineConfig()
        self.retrieval = TwoTowerModel(vocab, self.config.two_tower)
        self.field_sizes = [
            vocab.n_items,
            len(vocab.categories) + 1,
            len(vocab.brands) + 1,
            vocab.n_price_buckets,
            vocab.n_items,
            len(vocab.categories) + 1,
            vocab.n_price_buckets,
            SESSION_POSITIONS,
            3,
            SOURCES,
        ]
        assert len(self.field_sizes) == len(SPARSE_FIELDS)
        self.ranker = DeepFMModel(self.field_sizes, len(RANKING_DENSE), self.config.deepfm)
        self.dense_mean = np.zeros(len(RANKING_DENSE), np.float32)
        self.dense_std = np.ones(len(RANKING_DENSE), np.float32)
        self.index_ids: np.ndarray = np.zeros(0, object)
        self.index_vectors: np.ndarray = np.zeros((0, self.config.two_tower.dim), np.float32)
        self._index_row: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    # -- the item index ---------------------------------------------------------------------
    def build_index(self, item_rows: dict[str, Sequence[Any]]) -> None:
        """Embed every catalogue item (vocabulary items by id + content, others by content alone).

        Args:
            item_rows: Columns ``item_id``, ``item_category``, ``item_brand``, ``item_price_mean_30d``
                of every item the batch layer knows (``ranking_v2`` rows).
        """
        ids = np.array([str(i) for i in item_rows["item_id"]], dtype=object)
        self.index_vectors = self.retrieval.embed_item_inputs(self.vocab.content_inputs(item_rows))
        self.index_ids = ids
        self._index_row = {item: row for row, item in enumerate(ids)}

    def item_vectors_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """Index vectors of items (zeros for items outside the index)."""
        out = np.zeros((len(item_ids), self.index_vectors.shape[1]), np.float32)
        rows = np.array([self._index_row.get(str(i), -1) for i in item_ids], np.int64)
        found = rows >= 0
        out[found] = self.index_vectors[rows[found]]
        return out

    # -- candidates -------------------------------------------------------------------------
    def retrieve(self, examples: Examples, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact two-tower top ``k`` over the index (Milvus answers the same search in serving).

        Returns:
            ``(rows into the index (n, k), scores (n, k))``, best first.
        """
        queries = self.retrieval.query_embeddings(examples)
        k = min(k, len(self.index_ids))
        rows, scores = [], []
        for start in range(0, len(queries), 2048):
            sims = queries[start : start + 2048] @ self.index_vectors.T
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            part_scores = np.take_along_axis(sims, part, 1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            rows.append(np.take_along_axis(part, order, 1))
            scores.append(np.take_along_axis(part_scores, order, 1))
        if not rows:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.vstack(rows), np.vstack(scores)

    def candidates(
        self,
        examples: Examples,
        source: FeatureSource,
        retrieved: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> CandidatePairs:
        """The union of two-tower, neighbour and session candidates of each example.

        Args:
            examples: The queries.
            source: Where neighbour rows are read.
            retrieved: The two-tower top ``retrieval_k`` as ``(item ids, scores)``, best first, when
                an index (Milvus) answered it; None searches the index exactly here. Empty ids are
                empty slots (fewer hits than asked). Ids outside this model's index (an index
                rebuilt for a grown catalogue) keep the index's score as their two-tower score.
        """
        cfg = self.config
        n = len(examples)
        moments = examples.time_ms - 1
        if retrieved is None:
            index_rows, tt_scores = self.retrieve(examples, cfg.retrieval_k)
            tt_ids = (
                np.where(index_rows >= 0, self.index_ids[np.maximum(index_rows, 0)], "")
                if index_rows.size
                else index_rows.astype(object)
            )
        else:
            tt_ids, tt_scores = retrieved
        outside: dict[tuple[int, str], float] = {}
        seeds = [seed_items(list(r)) for r in examples.recent_ids]
        flat = [item for s in seeds for item in s]
        flat_moments = [int(moments[q]) for q, s in enumerate(seeds) for _ in s]
        rows = source.neighbour_rows(flat, flat_moments) if flat else {}
        neighbours = neighbour_scores(seeds, rows) if flat else [{} for _ in range(n)]
        queries: list[int] = []
        items: list[str] = []
        ranks: list[float] = []
        nb: list[tuple[float, float]] = []
        sources: list[int] = []
        for q in range(n):
            found: dict[str, int] = {}
            rank_of: dict[str, float] = {}
            for r, item in enumerate(tt_ids[q]):
                if not item:
                    continue
                found[item] = found.get(item, 0) | SOURCE_TWO_TOWER
                rank_of.setdefault(item, r / cfg.retrieval_k)
                if item not in self._index_row:
                    outside.setdefault((q, item), float(tt_scores[q][r]))
            best = sorted(neighbours[q].items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))[: cfg.neighbour_k]
            for item, _ in best:
                found[item] = found.get(item, 0) | SOURCE_NEIGHBOURS
            for item in examples.recent_ids[q]:
                found[item] = found.get(item, 0) | SOURCE_SESSION
            for item, bits in found.items():
                queries.append(q)
                items.append(item)
                ranks.append(rank_of.get(item, 1.0))
                nb.append(neighbours[q].get(item, (0.0, 0.0)))
                sources.append(bits)
        query = np.asarray(queries, np.int64)
        item_ids = np.asarray(items, dtype=object)
        query_vectors = self.retrieval.query_embeddings(examples)
        score = np.einsum("md,md->m", query_vectors[query], self.item_vectors_of(items)) if len(items) else np.zeros(0)
        for m, (q, item) in enumerate(zip(queries, items, strict=True)):
            if (q, item) in outside:
                score[m] = outside[(q, item)]
        return CandidatePairs(
            query=query,
            item_ids=item_ids,
            two_tower_score=score.astype(np.float32),
            two_tower_rank=np.asarray(ranks, np.float32),
            neighbour=np.asarray(nb, np.float32).reshape(-1, 2),
            source=np.asarray(sources, np.int64),
        )

    def features(
        self, examples: Examples, pairs: CandidatePairs, source: FeatureSource
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sparse and dense ranker inputs of the pairs (``ranking_v2`` rows, assembled)."""
        users = _user_ids(examples)
        moments = examples.time_ms - 1
        rows = source.candidate_rows(
            [users[q] for q in pairs.query], list(pairs.item_ids), [int(moments[q]) for q in pairs.query]
        )
        return assemble_candidates(
            examples.queries(),
            pairs.query.tolist(),
            list(pairs.item_ids),
            rows,
            two_tower_score=pairs.two_tower_score,
            two_tower_rank=pairs.two_tower_rank,
            neighbour=pairs.neighbour,
            source=pairs.source,
            vocab=self.vocab,
        )

    def _standardise(self, dense: np.ndarray) -> np.ndarray:
        return ((dense - self.dense_mean) / self.dense_std).astype(np.float32)

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        train: Examples,
        source: FeatureSource,
        item_rows: dict[str, Sequence[Any]],
        progress: Callable[[str, int, int, float], None] | None = None,
    ) -> dict[str, Any]:
        """Train retrieval on the earlier training examples, then the ranker on the later ones' candidates.

        Args:
            train: Training examples in time order (targets in the vocabulary or not).
            source: Where candidate and neighbour rows are read (offline: point in time).
            item_rows: The catalogue the index holds (see :meth:`build_index`).
            progress: ``progress(stage, step, total, loss)`` for progress bars.

        Returns:
            Training statistics (rows, positives in candidates, seconds per stage).
        """
        known = train.subset(train.target != PAD)
        window = validation_cut(len(known), self.config.ranker_fraction)
        if window < MIN_RETRIEVAL_EXAMPLES or len(known) - window < 10:
            raise DatasetTooSmallError(
                f"{len(known)} training examples cannot be split into retrieval and ranker windows; "
                f"need at least {MIN_RETRIEVAL_EXAMPLES + 10}"
            )
        started = time.monotonic()
        self.retrieval.fit(known.subset(np.arange(window)), progress)
        # A sequence encoder may have fallen back to the mean one: the bundle records what was trained.
        self.config = replace(self.config, two_tower=self.retrieval.config)
        self.build_index(item_rows)
        self.timings["two_tower_train_s"] = time.monotonic() - started
        started = time.monotonic()
        queries = known.subset(np.arange(window, len(known)))
        queries = queries.subset(np.arange(max(0, len(queries) - self.config.ranker_queries), len(queries)))
        pairs = self.candidates(queries, source)
        positive = pairs.item_ids == queries.target_id[pairs.query]
        has_positive = np.zeros(len(queries), bool)
        has_positive[pairs.query[positive]] = True
        if int(has_positive.sum()) < 10:
            raise DatasetTooSmallError(
                f"only {int(has_positive.sum())} training queries have their target among the candidates; "
                "too few to train the ranker (need 10)"
            )
        rng = np.random.default_rng(self.config.deepfm.seed)
        picked: list[np.ndarray] = []
        order = np.argsort(pairs.query, kind="stable")
        bounds = np.searchsorted(pairs.query[order], np.arange(len(queries) + 1))
        for q in np.flatnonzero(has_positive):
            own = order[bounds[q] : bounds[q + 1]]
            pos, neg = own[positive[own]], own[~positive[own]]
            if len(neg) > self.config.negatives:
                neg = rng.choice(neg, self.config.negatives, replace=False)
            picked.append(np.concatenate([pos, np.sort(neg)]))
        chosen = pairs.subset(np.concatenate(picked))
        labels = (chosen.item_ids == queries.target_id[chosen.query]).astype(np.float32)
        weights = np.where(labels > 0, queries.weight[chosen.query], 1.0).astype(np.float32)
        sparse, dense = self.features(queries, chosen, source)
        self.dense_mean = dense.mean(0).astype(np.float32)
        self.dense_std = np.maximum(dense.std(0), 1e-3).astype(np.float32)
        self.ranker.fit(sparse, self._standardise(dense), labels, weights, progress)
        self.timings["deepfm_train_s"] = time.monotonic() - started
        if self.config.refit_retrieval:
            # The ranker learned how two-tower scores look on queries the model never trained on;
            # the refitted model meets test and serving queries it never trained on just the same.
            started = time.monotonic()
            self.retrieval.refit(known, self.retrieval.history.best_epoch + 1, progress)
            self.build_index(item_rows)
            self.timings["two_tower_refit_s"] = time.monotonic() - started
        return {
            "ranker_queries": int(has_positive.sum()),
            "ranker_rows": len(chosen),
            "ranker_positive_in_candidates": float(has_positive.mean()),
            **self.timings,
        }

    # -- inference --------------------------------------------------------------------------
    def score(self, examples: Examples, source: FeatureSource) -> tuple[CandidatePairs, np.ndarray]:
        """Every candidate of every example with the ranker's probability."""
        pairs = self.candidates(examples, source)
        if not len(pairs):
            return pairs, np.zeros(0, np.float32)
        sparse, dense = self.features(examples, pairs, source)
        return pairs, self.ranker.predict(sparse, self._standardise(dense))

    def rank(
        self, examples: Examples, source: FeatureSource, k: int
    ) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
        """Top ``k`` items per example after ranking, with the ranker's AUC/logloss on the candidates.

        Returns:
            ``(items (n, k), ranker_metrics, two_tower_items (n, k))`` as vocabulary indices (items
            outside the vocabulary are index 0, a miss for every metric, as for the baselines).
        """
        from lambdarec.evaluate.metrics import log_loss, roc_auc

        n = len(examples)
        pairs, probs = self.score(examples, source)
        ranked = top_k_ids(pairs, probs, n, k)
        items = np.stack([self.vocab.codes(r) for r in ranked]) if n else np.zeros((0, k), np.int64)
        labels = pairs.item_ids == examples.target_id[pairs.query]
        counts = np.bincount(pairs.query, minlength=n)
        metrics = {
            "ranker_auc": roc_auc(labels, probs) if len(labels) else float("nan"),
            "ranker_logloss": log_loss(labels, probs) if len(labels) else float("nan"),
            "candidate_recall": float(np.bincount(pairs.query[labels], minlength=n).clip(0, 1).mean()) if n else 0.0,
            "candidates_per_query": float(counts.mean()) if n else 0.0,
        }
        tt_rows, _ = self.retrieve(examples, k)
        tt_items = np.stack([self.vocab.codes(list(self.index_ids[r])) for r in tt_rows]) if n else items
        return items, metrics, tt_items


def top_k_ids(pairs: CandidatePairs, probs: np.ndarray, n: int, k: int) -> list[list[str]]:
    """Per query, its ``k`` best candidate ids by probability (ties: retrieval order), padded with ``""``."""
    order = np.lexsort((np.arange(len(probs)), -probs, pairs.query))
    out: list[list[str]] = [[] for _ in range(n)]
    for row in order:
        q = int(pairs.query[row])
        if len(out[q]) < k:
            out[q].append(str(pairs.item_ids[row]))
    return [r + [""] * (k - len(r)) for r in out]

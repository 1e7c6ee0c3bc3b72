"""The request path, one straight line: request → online features → query tower → index → ranker → answer.

:class:`RequestPath` answers a batch of requests at once, so concurrent requests share one online
read per feature service, one query-tower forward pass, one index search and one ranker forward
pass (the BentoML service batches them adaptively). Each step is a small named method timed in
``timings_ms``. The model inputs come from :mod:`lambdarec.models.inputs` and
:class:`~lambdarec.models.pipeline.TwoStageRecommender` — the code that trained and evaluated
the model — read from the online store through :class:`~lambdarec.models.sources.OnlineFeatureSource`.

A valid request always gets an answer: when the model, the online store or the index cannot
answer within the latency budget, :class:`~lambdarec.serving.fallbacks.Fallbacks` does, and the
answer says why (``fallback``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from lambdarec import names
from lambdarec.models.data import Examples
from lambdarec.models.inputs import PAD, QUERY_FIELDS, assemble_queries, id_list
from lambdarec.models.pipeline import (
    SOURCE_NEIGHBOURS,
    SOURCE_SESSION,
    SOURCE_TWO_TOWER,
    CandidatePairs,
    TwoStageRecommender,
)
from lambdarec.models.sources import FeatureSource
from lambdarec.serving.contract import FallbackReason, RecommendedItem, RecommendRequest, RecommendResponse, Source
from lambdarec.serving.fallbacks import Fallbacks
from lambdarec.serving.feature_log import ServedFeatureLog

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE_BITS: tuple[tuple[int, Source], ...] = (
    (SOURCE_TWO_TOWER, "two_tower"),
    (SOURCE_NEIGHBOURS, "neighbours"),
    (SOURCE_SESSION, "session"),
)


class StageTimeoutError(TimeoutError):
    """A stage did not answer within the latency budget."""


class ItemIndex(Protocol):
    """The vector index the query tower searches (Milvus in serving)."""

    def search(self, vectors: np.ndarray, k: int, collection: str, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per vector: ``(rows into the model's index ids (n, k), scores (n, k))``; -1 pads."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version with the collection that holds its item vectors.

    Attributes:
        version: The two-tower model version (the DeepFM of the same run ranks).
        recommender: The two-stage recommender rebuilt from the version's serving bundle.
        feature_services: Role → feature service name the bundle reads.
        collection: The Milvus collection of this version (searched by name, so the vectors
            always belong to the loaded model, also while the alias moves).
    """

    version: str
    recommender: TwoStageRecommender
    feature_services: dict[str, str]
    collection: str


@dataclass
class StageTimer:
    """Milliseconds per named stage of one batch."""

    timings_ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block under ``name`` (added up when a stage runs twice)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + (time.perf_counter() - started) * 1000


class _TimedSource:
    """A feature source whose reads are timed as the ``neighbours`` and ``candidate_features`` stages."""

    def __init__(self, source: FeatureSource, timer: StageTimer, budget: Callable[[Callable[[], Any]], Any]) -> None:
        self.source, self.timer, self.budget = source, timer, budget

    def query_rows(self, session_ids: Sequence[str], user_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        return self.source.query_rows(session_ids, user_ids, moments_ms)

    def candidate_rows(self, user_ids: Sequence[str], item_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        with self.timer.stage("candidate_features"):
            return self.budget(lambda: self.source.candidate_rows(user_ids, item_ids, moments_ms))

    def neighbour_rows(self, item_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        with self.timer.stage("neighbours"):
            return self.budget(lambda: self.source.neighbour_rows(item_ids, moments_ms))

    def session_rule_rows(self, session_ids: Sequence[str], moments_ms: Sequence[int]) -> Any:
        return self.source.session_rule_rows(session_ids, moments_ms)


class RequestPath:
    """Answers batches of requests with the served model, or with the fallbacks.

    Args:
        model: The served model, or None before one is loaded (the fallbacks answer).
        features: The online feature source (None: the online store is not reachable).
        index: The vector index (None: not reachable; the ranker then sees neighbour and session
            candidates only).
        fallbacks: Neighbours → trending → popular, for whatever the models cannot answer.
        latency_budget_ms: Longest an online read or index search may take before the request
            is answered without it.
        clock_ms: The request time (milliseconds since the epoch); a parameter for tests.
        feature_log: Where a sample of the assembled query inputs goes (None: not logged).
    """

    def __init__(
        self,
        model: ServedModel | None,
        features: FeatureSource | None,
        index: ItemIndex | None,
        fallbacks: Fallbacks,
        *,
        latency_budget_ms: float = 50.0,
        clock_ms: Callable[[], int] | None = None,
        feature_log: ServedFeatureLog | None = None,
    ) -> None:
        self.model = model
        self.features = features
        self.index = index
        self.fallbacks = fallbacks
        self.latency_budget_ms = latency_budget_ms
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.feature_log = feature_log
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambdarec-io")

    # -- the budget ---------------------------------------------------------------------------
    def _within_budget(self, call: Callable[[], T]) -> T:
        """Run an I/O call, giving up after the latency budget (the call is left to finish alone)."""
        future = self._pool.submit(call)
        try:
            return future.result(timeout=self.latency_budget_ms / 1000)
        except concurrent.futures.TimeoutError as err:
            raise StageTimeoutError(f"no answer within {self.latency_budget_ms:.0f} ms") from err

    # -- the path -----------------------------------------------------------------------------
    def recommend(self, requests: Sequence[RecommendRequest]) -> list[RecommendResponse]:
        """Answer every request of a batch (never raises for a valid request).

        Args:
            requests: Validated requests.

        Returns:
            One response per request, in order.
        """
        timer = StageTimer()
        model = self.model  # one model for the whole batch, even if a reload swaps it meanwhile
        now = self.clock_ms()
        n = len(requests)
        if n == 0:
            return []
        reasons: list[FallbackReason | None] = [None] * n
        rows = self.read_online_features(requests, now, timer)
        if rows is None:
            reasons = ["online_store_unavailable"] * n
            sessions: list[list[str]] = [[] for _ in range(n)]
            bought: list[set[str]] = [set() for _ in range(n)]
            ages: list[int | None] = [None] * n
        else:
            sessions = [id_list(v) for v in rows[names.SESSION_RECENT_ITEMS]]
            bought = [set(id_list(v)) for v in rows[names.SESSION_PURCHASED_ITEMS]]
            ages = [_age(now, v) for v in rows[names.SESSION_LAST_EVENT_MS]]
            for i, items in enumerate(sessions):
                if not items:
                    reasons[i] = "unknown_session"
                elif model is None:
                    reasons[i] = "model_not_loaded"
        ranked: dict[int, list[RecommendedItem]] = {}
        two_stage = [i for i in range(n) if reasons[i] is None]
        if two_stage and model is not None and rows is not None and self.features is not None:
            subset = {k: [v[i] for i in two_stage] for k, v in rows.items()}
            answered, index_down = self.rank_two_stage(model, [requests[i] for i in two_stage], subset, now, timer)
            for i, found in zip(two_stage, answered, strict=True):
                if found is None:
                    reasons[i] = "online_store_unavailable"
                elif not found:
                    reasons[i] = "no_candidates"
                else:
                    ranked[i] = found
                    if index_down:
                        reasons[i] = "index_unavailable"
        with timer.stage("fallbacks"):
            neighbours = self._neighbour_reader() if rows is not None else None
            for i in range(n):
                if i not in ranked:
                    wanted = requests[i].k + len(requests[i].exclude) + len(bought[i])
                    ranked[i] = self.fallbacks.answer(sessions[i], wanted, neighbours)
        return [
            self.answer(requests[i], ranked[i], model, reasons[i], ages[i], timer.timings_ms, n, bought=bought[i])
            for i in range(n)
        ]

    def warm_up(self, model: ServedModel, item_id: str) -> dict[str, float]:
        """Run one made-up session through every stage of ``model`` (torch, Milvus, the store's readers).

        The first pass through a freshly loaded model pays for lazy initialisation (tens of ms),
        which would push a real request past the latency budget; a reload warms the new model up
        before it is swapped in.

        Returns:
            The warm-up's stage timings.
        """
        timer = StageTimer()
        rows: dict[str, list[Any]] = {name: [None] for name in QUERY_FIELDS}
        rows[names.SESSION_RECENT_ITEMS] = [[item_id]]
        if self.features is not None:
            request = RecommendRequest(session_id="lambdarec-warm-up")
            self.rank_two_stage(model, [request], rows, self.clock_ms(), timer, log_inputs=False)
        return timer.timings_ms

    def _neighbour_reader(self) -> Callable[[list[str]], Any] | None:
        """``neighbours_v1`` rows of seed items, within the budget (for the fallbacks)."""
        features = self.features
        if features is None:
            return None
        return lambda seeds: self._within_budget(lambda: features.neighbour_rows(seeds, [0] * len(seeds)))

    def read_online_features(
        self, requests: Sequence[RecommendRequest], now_ms: int, timer: StageTimer
    ) -> dict[str, list[Any]] | None:
        """``retrieval_v2`` rows of every request's session and user, with the session's purchased items.

        The purchased items come from ``session_rules_v1`` (no model reads them; the answer leaves
        them out). Both reads share the latency budget.

        Returns:
            Columns by feature name, one value per request (None: the store did not answer).
        """
        if self.features is None:
            return None
        features = self.features
        session_ids = [r.session_id for r in requests]
        moments = [now_ms] * len(requests)

        def read() -> dict[str, list[Any]]:
            rows = dict(features.query_rows(session_ids, [r.user_id or "" for r in requests], moments))
            rules = features.session_rule_rows(session_ids, moments)
            rows[names.SESSION_PURCHASED_ITEMS] = list(rules[names.SESSION_PURCHASED_ITEMS])
            return rows

        with timer.stage("online_features"):
            try:
                return self._within_budget(read)
            except Exception as err:  # noqa: BLE001 - any store failure becomes a fallback, logged
                log.warning("online store read failed: %s", err)
                return None

    def log_served_inputs(self, model: ServedModel, examples: Examples, now_ms: int) -> None:
        """Offer the batch's assembled query inputs to the served-features log (drift_monitor's sample)."""
        if self.feature_log is None:
            return
        try:
            self.feature_log.log(model.version, examples.dense, now_ms)
        except Exception as err:  # noqa: BLE001 - a log must never fail a request
            log.warning("served-features log failed: %s", err)

    def embed_queries(self, model: ServedModel, examples: Examples, timer: StageTimer) -> np.ndarray:
        """The query tower's vectors of the batch (one forward pass)."""
        with timer.stage("query_tower"):
            return model.recommender.retrieval.query_embeddings(examples)

    def search_index(
        self, model: ServedModel, vectors: np.ndarray, timer: StageTimer
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The two-tower top ``retrieval_k`` from the index (None: the index did not answer in time)."""
        if self.index is None:
            return None
        index = self.index
        k = model.recommender.config.retrieval_k
        with timer.stage("index_search"):
            try:
                return self._within_budget(
                    lambda: index.search(vectors, k, model.collection, self.latency_budget_ms / 1000)
                )
            except Exception as err:  # noqa: BLE001 - the ranker still sees neighbours and the session
                log.warning("index search failed: %s", err)
                return None

    def rank_two_stage(
        self,
        model: ServedModel,
        requests: Sequence[RecommendRequest],
        rows: dict[str, list[Any]],
        now_ms: int,
        timer: StageTimer,
        *,
        log_inputs: bool = True,
    ) -> tuple[list[list[RecommendedItem] | None], bool]:
        """Candidates from the index, the neighbours and the session, ranked by DeepFM.

        ``log_inputs=False`` keeps the batch out of the served-features log (the warm-up's made-up session).

        Returns:
            ``(per request: ranked items, or None when a feature read failed; whether the index was down)``.
        """
        assert self.features is not None
        recommender = model.recommender
        examples = query_examples(rows, requests, recommender, now_ms)
        if log_inputs:
            self.log_served_inputs(model, examples, now_ms)
        vectors = self.embed_queries(model, examples, timer)
        retrieved = self.search_index(model, vectors, timer)
        index_down = retrieved is None
        if retrieved is None:
            # No two-tower candidates: an empty top-k, so the ranker sees neighbours and the session.
            retrieved = (np.full((len(examples), 0), "", dtype=object), np.zeros((len(examples), 0), np.float32))
        source = _TimedSource(self.features, timer, self._within_budget)
        try:
            pairs = recommender.candidates(examples, source, retrieved=retrieved)
            if not len(pairs):
                return [[] for _ in requests], index_down
            sparse, dense = recommender.features(examples, pairs, source)
        except Exception as err:  # noqa: BLE001 - a failed read answers from the fallbacks
            log.warning("candidate features failed: %s", err)
            return [None for _ in requests], index_down
        with timer.stage("ranker"):
            scores = recommender.ranker.predict(sparse, recommender._standardise(dense))  # noqa: SLF001
        return split_ranked(pairs, scores, len(requests)), index_down

    def answer(
        self,
        request: RecommendRequest,
        ranked: Sequence[RecommendedItem],
        model: ServedModel | None,
        reason: FallbackReason | None,
        age_ms: int | None,
        timings_ms: dict[str, float],
        batch_size: int,
        *,
        bought: Collection[str] = (),
    ) -> RecommendResponse:
        """The top ``k`` of ``ranked`` without the request's ``exclude`` and the items ``bought`` in the session."""
        excluded = set(request.exclude) | set(bought)
        items = [item for item in ranked if item.item_id not in excluded][: request.k]
        return RecommendResponse(
            items=items,
            model_version=model.version if model is not None else None,
            feature_services=dict(model.feature_services) if model is not None else {},
            fallback=reason,
            features_age_ms=age_ms,
            timings_ms={k: round(v, 3) for k, v in timings_ms.items()},
            batch_size=batch_size,
        )

    def close(self) -> None:
        """Stop the I/O threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _age(now_ms: int, last_event_ms: Any) -> int | None:
    if last_event_ms is None or isinstance(last_event_ms, float) and last_event_ms != last_event_ms:
        return None
    return max(0, now_ms - int(last_event_ms))


def query_examples(
    rows: dict[str, list[Any]], requests: Sequence[RecommendRequest], recommender: TwoStageRecommender, now_ms: int
) -> Examples:
    """The requests as query examples, assembled from their online rows exactly as in training.

    The moment is the request time (``time_ms - 1`` is what the pipeline reads at, as for a
    training example read just before its target).
    """
    queries = assemble_queries(rows, recommender.vocab)
    n = len(requests)
    recent = np.empty(n, dtype=object)
    recent[:] = queries.recent_ids
    return Examples(
        session=queries.session,
        history=queries.history,
        dense=queries.dense,
        target=np.full(n, PAD, np.int64),
        target_id=np.array([""] * n, dtype=object),
        weight=np.ones(n, np.float32),
        time_ms=np.full(n, now_ms + 1, np.int64),
        user_spend=queries.user_spend,
        session_id=np.array([r.session_id for r in requests], dtype=object),
        user_id=np.array([r.user_id or "" for r in requests], dtype=object),
        recent_ids=recent,
    )


def sources_of(bits: int) -> list[Source]:
    """The candidate sources named in a source bit set."""
    return [name for bit, name in SOURCE_BITS if bits & bit]


def split_ranked(pairs: CandidatePairs, scores: np.ndarray, n: int) -> list[list[RecommendedItem] | None]:
    """Per query, its candidates best first (ties broken by item id, so answers are stable)."""
    out: list[list[RecommendedItem] | None] = [[] for _ in range(n)]
    order = np.lexsort((pairs.item_ids.astype(str), -scores, pairs.query))
    for row in order:
        q = int(pairs.query[row])
        bucket = out[q]
        assert bucket is not None
        bucket.append(
            RecommendedItem(
                item_id=str(pairs.item_ids[row]), score=float(scores[row]), sources=sources_of(int(pairs.source[row]))
            )
        )
    return out

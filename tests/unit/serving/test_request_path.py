"""The request path on a tiny trained model, with the feature store and index faked (no engines).

The real engines are exercised in ``tests/integration/serving``; here the path's own logic: it
ranks exactly as evaluation does, and every failure becomes a named fallback, never an error.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from lambdarec.models.pipeline import TwoStageRecommender
from lambdarec.serving.contract import RecommendRequest
from lambdarec.serving.fallbacks import Fallbacks, popular_from_vocabulary
from lambdarec.serving.path import RequestPath, ServedModel

pytestmark = pytest.mark.unit


class ExactIndex:
    """The index as an exact search over the model's item vectors (what Milvus approximates)."""

    def __init__(self, recommender: TwoStageRecommender, delay_s: float = 0.0, broken: bool = False) -> None:
        self.recommender, self.delay_s, self.broken = recommender, delay_s, broken
        self.calls = 0

    def search(self, vectors: np.ndarray, k: int, collection: str, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        if self.broken:
            raise ConnectionError("milvus is down")
        time.sleep(self.delay_s)
        sims = vectors @ self.recommender.index_vectors.T
        rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return self.recommender.index_ids[rows], np.take_along_axis(sims, rows, 1)


class DownSource:
    """An online store that refuses every read."""

    def query_rows(self, *args: Any) -> Any:
        raise ConnectionError("redis is down")

    candidate_rows = neighbour_rows = query_rows


@pytest.fixture(scope="module")
def trained(tiny_split: Any, tiny_source: Any, tiny_config: Any) -> TwoStageRecommender:
    from lambdarec.evaluate.report import evaluate_split

    _, recommender = evaluate_split(tiny_split, tiny_source, tiny_config, dataset="synthetic:tiny")
    return recommender


def served(recommender: TwoStageRecommender) -> ServedModel:
    return ServedModel("7", recommender, {"query": "retrieval_v2"}, "item_embeddings_v7")


def path_at(moment: int, recommender: TwoStageRecommender | None, source: Any, index: Any, **kw: Any) -> RequestPath:
    fallbacks = Fallbacks(
        popular_from_vocabulary(recommender.vocab.item_ids, recommender.vocab.item_popularity)
        if recommender is not None
        else [("p1", 9.0), ("p2", 5.0), ("p3", 1.0)]
    )
    model = served(recommender) if recommender is not None else None
    kw.setdefault("latency_budget_ms", 60_000.0)  # the in-process stand-in store is slow; budgets tested apart
    return RequestPath(model, source, index, fallbacks, clock_ms=lambda: moment, **kw)


def test_the_served_ranking_is_the_evaluated_ranking(
    trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any
) -> None:
    """Served top-k = the ranker's order of the same candidates in evaluation, at the same moment."""
    test = tiny_split.test
    checked = 0
    for row in range(0, min(len(test), 60), 3):
        example = test.subset(np.array([row]))
        moment = int(example.time_ms[0]) - 1  # evaluation reads just before the target
        path = path_at(moment, trained, tiny_source, ExactIndex(trained))
        request = RecommendRequest(session_id=str(example.session_id[0]), user_id=str(example.user_id[0]) or None, k=10)
        response = path.recommend([request])[0]
        pairs, scores = trained.score(example, tiny_source)
        order = np.lexsort((pairs.item_ids.astype(str), -scores))
        # The answer leaves out what the session bought (a request rule, not a model input).
        bought = set(tiny_source.session_rule_rows([request.session_id], [moment])["session_purchased_items"][0] or [])
        kept = [i for i in order if str(pairs.item_ids[i]) not in bought][:10]
        assert response.fallback is None and response.model_version == "7"
        assert [i.item_id for i in response.items] == [str(pairs.item_ids[i]) for i in kept]
        assert np.allclose([i.score for i in response.items], scores[kept], atol=1e-6)
        assert {"online_features", "query_tower", "index_search", "neighbours", "candidate_features", "ranker"} <= set(
            response.timings_ms
        )
        checked += 1
    assert checked >= 10


def test_a_batch_answers_each_request_as_alone(trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any) -> None:
    test = tiny_split.test
    moment = int(test.time_ms[len(test) // 2])
    requests = [
        RecommendRequest(session_id=str(s), user_id=(str(u) or None), k=5)
        for s, u in zip(test.session_id[:12], test.user_id[:12], strict=True)
    ]
    path = path_at(moment, trained, tiny_source, ExactIndex(trained))
    together = path.recommend(requests)
    alone = [path.recommend([r])[0] for r in requests]
    assert [[i.item_id for i in a.items] for a in together] == [[i.item_id for i in a.items] for a in alone]
    assert all(a.batch_size == 12 for a in together)


def test_excluded_items_never_come_back(trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any) -> None:
    example = tiny_split.test.subset(np.array([0]))
    path = path_at(int(example.time_ms[0]) - 1, trained, tiny_source, ExactIndex(trained))
    request = RecommendRequest(session_id=str(example.session_id[0]), k=10)
    first = [i.item_id for i in path.recommend([request])[0].items]
    again = path.recommend([request.model_copy(update={"exclude": first[:4]})])[0]
    assert not set(first[:4]) & {i.item_id for i in again.items}
    assert len(again.items) == 10


class BoughtSource:
    """The stand-in store, with ``bought`` as every session's purchased items (``session_rules_v1``)."""

    def __init__(self, source: Any, bought: list[str]) -> None:
        self.source, self.bought = source, bought

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def session_rule_rows(self, session_ids: Any, moments_ms: Any) -> Any:
        return {"session_id": list(session_ids), "session_purchased_items": [list(self.bought) for _ in session_ids]}


def test_items_bought_in_the_session_never_come_back(
    trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any
) -> None:
    """What the session bought is left out of the models' answer and of every fallback's."""
    example = tiny_split.test.subset(np.array([0]))
    moment = int(example.time_ms[0]) - 1
    request = RecommendRequest(session_id=str(example.session_id[0]), k=10)
    plain = path_at(moment, trained, tiny_source, ExactIndex(trained))
    first = [i.item_id for i in plain.recommend([request])[0].items]
    path = path_at(moment, trained, BoughtSource(tiny_source, first[:3]), ExactIndex(trained))
    again = path.recommend([request])[0]
    assert again.fallback is None
    assert [i.item_id for i in again.items] == first[3:] + [i.item_id for i in again.items][7:]
    assert len(again.items) == 10
    # A fallback answer (an unknown session: trending, then popular) leaves them out too.
    popular = [item for item, _ in path.fallbacks.popular[:4]]
    path = path_at(10**13, trained, BoughtSource(tiny_source, popular[:2]), ExactIndex(trained))
    unknown = path.recommend([RecommendRequest(session_id="never-seen", k=4)])[0]
    assert unknown.fallback == "unknown_session"
    assert [i.item_id for i in unknown.items][:2] == popular[2:4]
    assert not set(popular[:2]) & {i.item_id for i in unknown.items}


class GrownIndex(ExactIndex):
    """An index rebuilt for a grown catalogue: one item the model's bundle has never seen comes first."""

    def search(self, vectors: np.ndarray, k: int, collection: str, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = super().search(vectors, k, collection, timeout_s)
        ids = np.concatenate([np.full((len(ids), 1), "new-item", dtype=object), ids[:, :-1]], axis=1)
        scores = np.concatenate([np.full((len(scores), 1), 0.75, np.float32), scores[:, :-1]], axis=1)
        return ids, scores


def test_items_outside_the_bundle_are_ranked_with_the_index_score(
    trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any
) -> None:
    """A collection holding items the bundle does not know (ids past its rows) still answers two-stage."""
    example = tiny_split.test.subset(np.array([2]))
    moment = int(example.time_ms[0]) - 1
    path = path_at(moment, trained, tiny_source, GrownIndex(trained))
    response = path.recommend([RecommendRequest(session_id=str(example.session_id[0]), k=100)])[0]
    assert response.fallback is None
    assert "new-item" in [i.item_id for i in response.items]
    query = trained.retrieval.query_embeddings(example)
    retrieved = GrownIndex(trained).search(query, trained.config.retrieval_k, "c", 1.0)
    pairs = trained.candidates(example, tiny_source, retrieved=retrieved)
    new = [m for m, item in enumerate(pairs.item_ids) if item == "new-item"]
    assert len(new) == 1 and pairs.two_tower_score[new[0]] == pytest.approx(0.75)
    assert pairs.two_tower_rank[new[0]] == 0.0


def test_a_down_online_store_answers_popular_items(trained: TwoStageRecommender) -> None:
    path = path_at(0, trained, DownSource(), ExactIndex(trained))
    response = path.recommend([RecommendRequest(session_id="s", k=5)])[0]
    assert response.fallback == "online_store_unavailable"
    expected = popular_from_vocabulary(trained.vocab.item_ids, trained.vocab.item_popularity)[:5]
    assert [i.item_id for i in response.items] == [item for item, _ in expected]
    assert all(i.sources == ["popular"] for i in response.items)


@pytest.mark.parametrize("index", ["broken", "slow"])
def test_an_index_down_or_slow_still_ranks_neighbours_and_the_session(
    trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any, index: str
) -> None:
    example = tiny_split.test.subset(np.array([1]))
    slow = ExactIndex(trained, delay_s=5.0) if index == "slow" else ExactIndex(trained, broken=True)
    path = path_at(int(example.time_ms[0]) - 1, trained, tiny_source, slow, latency_budget_ms=1_000)
    started = time.monotonic()
    response = path.recommend([RecommendRequest(session_id=str(example.session_id[0]), k=10)])[0]
    assert time.monotonic() - started < 4.0  # the budget, not the 5 s index, bounds the answer
    assert response.fallback == "index_unavailable"
    assert response.items and all("two_tower" not in i.sources for i in response.items)


def test_an_unknown_session_gets_trending_then_popular(trained: TwoStageRecommender, tiny_source: Any) -> None:
    path = path_at(10**13, trained, tiny_source, ExactIndex(trained))
    popular = path.fallbacks.popular
    path.fallbacks.trending = [(popular[5][0], 40.0), (popular[7][0], 3.0)]
    response = path.recommend([RecommendRequest(session_id="never-seen", k=4)])[0]
    assert response.fallback == "unknown_session"
    assert [i.item_id for i in response.items] == [popular[5][0], popular[7][0], popular[0][0], popular[1][0]]
    assert [i.sources for i in response.items] == [["trending"], ["trending"], ["popular"], ["popular"]]
    assert response.features_age_ms is None


def test_without_a_model_the_sessions_neighbours_answer(tiny_split: Any, tiny_source: Any) -> None:
    example = tiny_split.test.subset(np.array([2]))
    path = path_at(int(example.time_ms[0]) - 1, None, tiny_source, None)
    response = path.recommend([RecommendRequest(session_id=str(example.session_id[0]), k=30)])[0]
    assert response.fallback == "model_not_loaded" and response.model_version is None
    sources = [i.sources[0] for i in response.items]
    assert sources[0] == "neighbours"
    # neighbours first, then the popular list fills up: never interleaved
    assert sources == sorted(sources, key=lambda s: ["neighbours", "trending", "popular"].index(s))
    assert response.features_age_ms is not None and response.features_age_ms >= 0


def test_warm_up_runs_every_stage_of_a_new_model(trained: TwoStageRecommender, tiny_source: Any) -> None:
    index = ExactIndex(trained)
    path = path_at(10**13, None, tiny_source, index)
    timings = path.warm_up(served(trained), trained.vocab.item_ids[1])
    assert {"query_tower", "index_search", "neighbours", "candidate_features", "ranker"} <= set(timings)
    assert index.calls == 1 and path.model is None  # warming up serves nothing


class RecordingProducer:
    """A Kafka producer that keeps what it is given (delivered at the next poll)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []
        self._pending: list[Any] = []

    def produce(self, topic: str, value: bytes, on_delivery: Any = None) -> None:
        self.records.append((topic, value))
        self._pending.append(on_delivery)

    def poll(self, _timeout: float) -> int:
        for callback in self._pending:
            callback(None, None)
        done, self._pending = len(self._pending), []
        return done

    def flush(self, _timeout: float) -> int:
        return self.poll(0)


def test_the_logged_served_inputs_are_what_evaluation_assembled(
    trained: TwoStageRecommender, tiny_split: Any, tiny_source: Any
) -> None:
    """The served-features log carries the query inputs the model read: the training assembly's values."""
    from lambdarec.models.inputs import QUERY_DENSE
    from lambdarec.names import SERVED_FEATURES_TOPIC
    from lambdarec.serving.feature_log import ServedFeatureLog, decode_records

    test = tiny_split.test
    producer = RecordingProducer()
    feature_log = ServedFeatureLog(producer, 1.0, QUERY_DENSE)
    index = ExactIndex(trained)
    logged = 0
    for row in range(0, min(len(test), 30), 3):
        example = test.subset(np.array([row]))
        moment = int(example.time_ms[0]) - 1
        path = path_at(moment, trained, tiny_source, index, feature_log=feature_log)
        request = RecommendRequest(session_id=str(example.session_id[0]), user_id=str(example.user_id[0]) or None)
        if path.recommend([request])[0].fallback is not None:
            continue
        topic, value = producer.records[-1]
        record = decode_records([value]).iloc[0]
        assert topic == SERVED_FEATURES_TOPIC and record["model"] == "7" and record["ts_ms"] == moment
        assert np.allclose([record[name] for name in QUERY_DENSE], example.dense[0], atol=1e-6)
        logged += 1
    assert logged >= 5 and feature_log.stats.delivered == logged == feature_log.stats.sampled
    # The warm-up's made-up session is not production traffic: it is not logged.
    warming = path_at(10**13, None, tiny_source, index, feature_log=feature_log)
    warming.warm_up(served(trained), trained.vocab.item_ids[1])
    assert len(producer.records) == logged

"""Real MLflow server and real Milvus: runs logged, models registered with aliases, index built and swapped.

Uses the session fixtures ``mlflow_tracking_uri`` and ``milvus_uri`` (tests/conftest.py), so
each server starts once per test session.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lambdarec import names

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained() -> tuple[Any, Any]:
    """A tiny two-stage recommender trained on seeded synthetic events, with its evaluation."""
    from lambdarec.data import generate_events_table
    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.models.data import load_events, temporal_split
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    torch.set_num_threads(2)
    split = temporal_split(load_events(generate_events_table(4000, 150, 80, seed=5)))
    config = PipelineConfig(
        two_tower=TwoTowerConfig(dim=16, hidden=32, epochs=2, batch_size=256),
        deepfm=DeepFMConfig(embedding_dim=4, hidden=(16,), epochs=2, batch_size=512),
        retrieval_k=30,
        covisit_k=10,
    )
    result, recommender = evaluate_split(split, config, dataset="synthetic:it")
    return recommender, result


def test_training_run_is_logged_and_registered_with_aliases(mlflow_tracking_uri: str, trained: Any) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from lambdarec.tracking.mlflow_log import alias_version, load_item_embeddings, log_training_run, promote

    recommender, result = trained
    first = log_training_run(mlflow_tracking_uri, recommender, result, dataset="synthetic:it")
    assert first.champion  # the first version ever becomes champion
    second = log_training_run(mlflow_tracking_uri, recommender, result, dataset="synthetic:it")
    assert not second.champion
    for model in (names.TWO_TOWER_MODEL, names.DEEPFM_MODEL):
        assert alias_version(mlflow_tracking_uri, model, names.CHAMPION_ALIAS) == "1"
        assert alias_version(mlflow_tracking_uri, model, names.CHALLENGER_ALIAS) == "2"

    run = MlflowClient(mlflow_tracking_uri).get_run(second.run_id)
    assert run.data.params["dataset_fingerprint"] == result.fingerprint
    assert run.data.params["retrieval_feature_service"] == names.RETRIEVAL_FEATURE_SERVICE
    assert run.data.params["ranking_feature_service"] == names.RANKING_FEATURE_SERVICE
    assert "two-stage.recall_at_20" in run.data.metrics and "ranker_auc" in run.data.metrics
    artifacts = {a.path for a in MlflowClient(mlflow_tracking_uri).list_artifacts(second.run_id, "evaluation")}
    assert {"evaluation/loss_curves.png", "evaluation/metrics.png", "evaluation/evaluation.json"} <= artifacts
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{names.TWO_TOWER_MODEL}@{names.CHALLENGER_ALIAS}")
    assert info.signature is not None
    assert promote(mlflow_tracking_uri, second.two_tower_version) == {
        names.TWO_TOWER_MODEL: second.two_tower_version,
        names.DEEPFM_MODEL: second.deepfm_version,
    }
    assert alias_version(mlflow_tracking_uri, names.DEEPFM_MODEL, names.CHAMPION_ALIAS) == second.deepfm_version
    item_ids, vectors = load_item_embeddings(mlflow_tracking_uri, second.two_tower_version)
    assert vectors.shape == recommender.item_vectors.shape and item_ids == recommender.catalogue.item_ids


def test_index_build_search_and_atomic_swap(milvus_uri: str, trained: Any) -> None:
    from lambdarec.index.milvus import build_collection, connect, current_collection, search, swap_alias

    recommender, _ = trained
    ids, vectors = recommender.catalogue.item_ids, recommender.item_vectors
    client = connect(milvus_uri)
    try:
        v1 = build_collection(client, ids, vectors, "1")
        assert v1.rows == len(ids) - 1  # the unknown item (row 0) is not indexed
        assert swap_alias(client, "1") is None
        assert current_collection(client) == v1.collection
        with pytest.raises(ValueError, match="live"):
            build_collection(client, ids, vectors, "1")

        queries = vectors[1:11]
        hits = search(client, queries, k=10)
        exact = np.argsort(-(queries @ vectors[1:].T), axis=1)[:, :10] + 1
        recall = np.mean([len({h for h, _ in row} & set(e.tolist())) / 10 for row, e in zip(hits, exact, strict=True)])
        assert recall >= 0.9
        assert hits[0][0][0] == 1  # an item is its own nearest neighbour

        shifted = np.roll(vectors, 1, axis=0)
        v2 = build_collection(client, ids, shifted, "2")
        assert swap_alias(client, "2") == v1.collection
        assert current_collection(client) == v2.collection
        assert search(client, vectors[1:2], k=1)[0][0][0] == 2  # served from the new collection
        with pytest.raises(ValueError, match="no collection"):
            swap_alias(client, "99")
    finally:
        client.close()

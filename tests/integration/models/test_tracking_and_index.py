"""Real MLflow server and real Milvus: runs logged, models registered with aliases, index built and swapped.

Uses the session fixtures ``mlflow_tracking_uri`` and ``milvus_uri`` (tests/conftest.py), so
each server starts once per test session, and ``trained`` (conftest.py beside this file).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lambdarec import names

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")


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
    assert run.data.params["query_feature_service"] == names.QUERY_FEATURE_SERVICE
    assert run.data.params["candidate_feature_service"] == names.CANDIDATE_FEATURE_SERVICE
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
    assert vectors.shape == recommender.index_vectors.shape and item_ids == list(recommender.index_ids)


def test_serving_bundle_loads_in_a_fresh_process_and_scores_the_same(
    mlflow_tracking_uri: str, trained: Any, tmp_path: Any
) -> None:
    import subprocess
    import sys

    from lambdarec.tracking.mlflow_log import download_bundle, log_training_run

    recommender, result = trained
    run = log_training_run(mlflow_tracking_uri, recommender, result, dataset="synthetic:it")
    folder = download_bundle(mlflow_tracking_uri, run.two_tower_version, tmp_path / "dl")
    queries = recommender.retrieval.query_embeddings(result_examples := _examples(recommender))
    rng = np.random.default_rng(0)
    sparse = np.stack([rng.integers(0, size, 8) for size in recommender.field_sizes], 1)
    dense = rng.normal(size=(8, len(recommender.dense_mean))).astype(np.float32)
    np.savez(
        tmp_path / "inputs.npz",
        session=result_examples.session,
        history=result_examples.history,
        dense=result_examples.dense,
        sparse=sparse,
        rdense=dense,
    )
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from lambdarec.models.bundle import load_bundle\n"
        "from lambdarec.models.data import Examples\n"
        "r = load_bundle(Path(sys.argv[1])); x = np.load(sys.argv[2], allow_pickle=True)\n"
        "n = len(x['session']); z = np.zeros(n)\n"
        "e = Examples(x['session'], x['history'], x['dense'], z, z, z, z, z, z, z, z)\n"
        "np.savez(sys.argv[3], q=r.retrieval.query_embeddings(e), p=r.ranker.predict(x['sparse'], x['rdense']),"
        " ids=np.array(list(r.index_ids)), v=r.index_vectors)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(folder), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        check=True,
        timeout=300,
    )
    out = np.load(tmp_path / "out.npz", allow_pickle=True)
    np.testing.assert_allclose(out["q"], queries, atol=1e-6)
    np.testing.assert_allclose(out["p"], recommender.ranker.predict(sparse, dense), atol=1e-6)
    assert out["ids"].tolist() == list(recommender.index_ids)
    np.testing.assert_array_equal(out["v"], recommender.index_vectors)


def _examples(recommender: Any) -> Any:
    """Eight query inputs over the recommender's vocabulary (what a request assembles)."""
    from lambdarec.models.data import Examples

    rng = np.random.default_rng(1)
    session = rng.integers(0, recommender.vocab.n_items, (8, 20))
    history = rng.integers(0, recommender.vocab.n_items, (8, 30))
    dense = rng.random((8, recommender.retrieval.net.query_mlp[0].in_features - 3 * recommender.config.two_tower.dim))
    z = np.zeros(8)
    return Examples(session, history, dense.astype(np.float32), z, z, z, z, z, z, z, z)


def test_index_build_search_and_atomic_swap(milvus_uri: str, trained: Any) -> None:
    from lambdarec.index.milvus import build_collection, connect, current_collection, search, swap_alias

    recommender, _ = trained
    ids, vectors = list(recommender.index_ids), recommender.index_vectors
    client = connect(milvus_uri)
    try:
        v1 = build_collection(client, ids, vectors, "1")
        assert v1.rows == len(ids)  # every catalogue item, by id
        assert swap_alias(client, "1") is None
        assert current_collection(client) == v1.collection
        with pytest.raises(ValueError, match="live"):
            build_collection(client, ids, vectors, "1")

        queries = vectors[0:10]
        hits = search(client, queries, k=10)
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        recall = np.mean([len({h for h, _ in row} & set(e.tolist())) / 10 for row, e in zip(hits, exact, strict=True)])
        assert recall >= 0.9
        assert hits[0][0][0] == 0  # an item is its own nearest neighbour

        shifted = np.roll(vectors, 1, axis=0)
        v2 = build_collection(client, ids, shifted, "2")
        assert swap_alias(client, "2") == v1.collection
        assert current_collection(client) == v2.collection
        assert search(client, vectors[0:1], k=1)[0][0][0] == 1  # served from the new collection
        with pytest.raises(ValueError, match="no collection"):
            swap_alias(client, "99")
    finally:
        client.close()


def test_compact_loaded_leaves_one_searchable_segment(milvus_uri: str) -> None:
    """Two flushed inserts are two segments; after ``compact_loaded`` one merged segment serves them all."""
    from pymilvus import DataType, MilvusClient

    from lambdarec.index.milvus import compact_loaded, connect

    client = connect(milvus_uri)
    name = "compact_loaded_it"
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2_000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # unit length: each row is its own best match
    try:
        if client.has_collection(name):
            client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=8)
        client.create_collection(name, schema=schema)
        for half in (range(0, 1_000), range(1_000, 2_000)):
            client.insert(name, [{"pk": i, "v": vectors[i].tolist()} for i in half])
            client.flush(name)
        index = client.prepare_index_params()
        index.add_index(field_name="v", index_type="FLAT", metric_type="IP", params={})
        client.create_index(name, index)
        client.load_collection(name)
        assert len(client.list_loaded_segments(name)) == 2

        assert compact_loaded(client, name, timeout_s=120) == 1
        (segment,) = client.list_loaded_segments(name)
        assert segment.num_rows == 2_000
        hits = client.search(name, vectors[[5, 1_500]].tolist(), limit=1, anns_field="v")
        assert [h[0]["id"] for h in hits] == [5, 1_500]
        assert compact_loaded(client, name, timeout_s=120) == 1  # nothing left to merge: returns at once
    finally:
        if client.has_collection(name):
            client.drop_collection(name)
        client.close()

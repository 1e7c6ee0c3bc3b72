"""The two-stage pipeline and the evaluation report end to end on tiny data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")


def test_evaluate_split_gives_the_table_json_and_plots(
    tiny_split: Any, tiny_source: Any, tiny_config: Any, tmp_path: Path
) -> None:
    from lambdarec.evaluate.report import METRIC_COLUMNS, PIPELINE_ROW, evaluate_split, write_report
    from lambdarec.models.inputs import PAD

    result, recommender = evaluate_split(tiny_split, tiny_source, tiny_config, dataset="synthetic:tiny")
    methods = [row["method"] for row in result.rows]
    assert methods[:3] == ["most-popular", "item-kNN", "session-kNN"] and methods[-1] == PIPELINE_ROW
    for row in result.rows:
        for column in METRIC_COLUMNS:
            assert 0.0 <= row[column] <= 1.0
        assert row["recall@20"] <= row["recall@100"]
    assert 0.0 <= result.ranker["ranker_auc"] <= 1.0
    paths = write_report(result, tmp_path)
    assert json.loads(paths["json"].read_text())["rows"][0]["method"] == "most-popular"
    assert paths["metrics"].stat().st_size > 0 and paths["loss"].stat().st_size > 0
    items, _, _ = recommender.rank(tiny_split.test.subset(np.arange(5)), tiny_source, 20)
    assert items.shape == (5, 20)
    assert all(len(set(row[row != PAD].tolist())) == int((row != PAD).sum()) for row in items)  # no duplicates


def test_the_served_two_tower_is_refitted_on_every_training_example(
    tiny_split: Any, tiny_source: Any, tiny_config: Any
) -> None:
    from dataclasses import replace

    from lambdarec.models.pipeline import TwoStageRecommender

    once = TwoStageRecommender(tiny_split.catalogue, replace(tiny_config, refit_retrieval=False))
    once_stats = once.fit(tiny_split.train, tiny_source, tiny_split.items)
    twice = TwoStageRecommender(tiny_split.catalogue, tiny_config)
    stats = twice.fit(tiny_split.train, tiny_source, tiny_split.items)
    history = twice.retrieval.history
    assert "two_tower_refit_s" in stats and "two_tower_refit_s" not in once_stats
    assert history.refit_epochs == history.best_epoch + 1
    # the retrieval window trained the first fit; the refit also saw the ranker's later window
    assert history.refit_examples > once.retrieval.history.examples
    # the index holds the refitted model's vectors, the ones serving searches
    assert np.allclose(
        twice.index_vectors, twice.retrieval.embed_item_inputs(twice.vocab.content_inputs(tiny_split.items))
    )
    assert not np.allclose(twice.index_vectors, once.index_vectors)

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

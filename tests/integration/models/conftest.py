"""Fixtures of the model tests: one tiny trained recommender per test session."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def trained() -> tuple[Any, Any]:
    """A tiny two-stage recommender trained on seeded synthetic events, with its evaluation."""
    from fake_source import EventFeatureSource
    from lambdarec.data import generate_events_table
    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.models.data import load_events, temporal_split
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    torch.set_num_threads(2)
    events = load_events(generate_events_table(4000, 150, 80, seed=5))
    source = EventFeatureSource(events)  # the tracking and the index are under test here, not Feast
    split = temporal_split(events, source)
    config = PipelineConfig(
        two_tower=TwoTowerConfig(dim=16, hidden=32, epochs=2, batch_size=256),
        deepfm=DeepFMConfig(embedding_dim=4, hidden=(16,), epochs=2, batch_size=512),
        retrieval_k=30,
        neighbour_k=10,
    )
    result, recommender = evaluate_split(split, source, config, dataset="synthetic:it")
    return recommender, result

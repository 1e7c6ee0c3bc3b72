"""Tiny seeded data for the model and serving unit tests (no engines, CPU, seconds)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def _two_threads() -> None:
    """Torch on two threads, for the tests that use it (importing it here would cost every unit run ~30 s)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_events() -> Any:
    """4,000 synthetic events over 120 items (seeded)."""
    from lambdarec.data import generate_events_table
    from lambdarec.models.data import load_events

    return load_events(generate_events_table(4000, 120, 80, seed=3))


@pytest.fixture(scope="session")
def tiny_source(tiny_events: Any) -> Any:
    """The feature services' rows of ``tiny_events``, computed in process (a unit-test stand-in)."""
    from fake_source import EventFeatureSource

    return EventFeatureSource(tiny_events)


@pytest.fixture(scope="session")
def tiny_split(tiny_events: Any, tiny_source: Any) -> Any:
    """The temporal split of ``tiny_events``, read through ``tiny_source``."""
    from lambdarec.models.data import temporal_split

    return temporal_split(tiny_events, tiny_source)


@pytest.fixture(scope="session")
def tiny_config() -> Any:
    """Small, fast model sizes."""
    import torch

    torch.set_num_threads(2)
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    return PipelineConfig(
        two_tower=TwoTowerConfig(dim=16, hidden=32, epochs=3, batch_size=256),
        deepfm=DeepFMConfig(embedding_dim=4, hidden=(16,), epochs=3, batch_size=512),
        retrieval_k=30,
        neighbour_k=10,
    )

"""A storefront over a hand-made gold snapshot, a recording publisher and a scripted recommender (no engines)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storefront_fakes import RecordingPublisher, ScriptedRecommender, item_rows, write_item_stats

from lambdarec.storefront.catalogue import CatalogueSource
from lambdarec.storefront.recommendations import RecommenderClient
from lambdarec.storefront.shop import Shop


@pytest.fixture
def lake_items(tmp_path: Path) -> Path:
    folder = tmp_path / "gold" / "item_stats"
    write_item_stats(folder, "2026-11-30", item_rows())
    return folder


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def recommender() -> ScriptedRecommender:
    return ScriptedRecommender()


@pytest.fixture
def shop(lake_items: Path, publisher: RecordingPublisher, recommender: ScriptedRecommender) -> Iterator[Shop]:
    client = RecommenderClient(lambda: "http://recommender.test", token="s3cret", transport=recommender.transport())
    shop = Shop(CatalogueSource(lake_items).get, publisher, client)
    yield shop
    client.close()

"""Model reload decisions of the serving app (MLflow, Milvus and the bundle faked; the real swap is e2e)."""

from __future__ import annotations

from typing import Any

import pytest

from lambdarec.serving import app as serving_app
from lambdarec.serving.app import ServingApp
from lambdarec.serving.path import ServedModel
from lambdarec.settings import load_settings

pytestmark = pytest.mark.unit


class FakeVocab:
    item_ids = ["", "a", "b", "c"]

    class _Popularity(list[float]):
        def tolist(self) -> list[float]:
            return list(self)

    item_popularity = _Popularity([0.0, 1.0, 5.0, 3.0])


class FakeRecommender:
    vocab = FakeVocab()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[ServingApp, dict[str, Any]]:
    world: dict[str, Any] = {"aliases": (None, "no champion yet"), "loads": [], "broken": set()}

    def served_version(settings: Any, client: Any = None) -> tuple[str | None, str]:
        return world["aliases"]  # type: ignore[no-any-return]

    def load_served_model(settings: Any, version: str, store: Any) -> ServedModel:
        world["loads"].append(version)
        if version in world["broken"]:
            raise ValueError(f"bundle v{version} reads a feature service that is not deployed")
        return ServedModel(version, FakeRecommender(), {"query": "retrieval_v2"}, f"item_embeddings_v{version}")  # type: ignore[arg-type]

    monkeypatch.setattr(serving_app, "served_version", served_version)
    monkeypatch.setattr(serving_app, "load_served_model", load_served_model)
    serving = ServingApp(load_settings(state_dir=tmp_path))
    serving._store = object()  # noqa: SLF001 - an open store, as far as reloading cares
    return serving, world


def test_nothing_loads_until_the_aliases_agree(app: tuple[ServingApp, dict[str, Any]]) -> None:
    serving, world = app
    assert serving.reload_if_changed() is False and serving.path.model is None
    assert "no champion yet" in serving.status["model"]
    world["aliases"] = ("1", "v1 with item_embeddings_v1")
    assert serving.reload_if_changed() is True
    model = serving.path.model
    assert model is not None and model.version == "1" and model.collection == "item_embeddings_v1"
    assert serving.path.fallbacks.popular[0] == ("b", 5.0)  # the model's own popular items


def test_a_new_version_swaps_once_and_a_broken_one_never_replaces_a_working_one(
    app: tuple[ServingApp, dict[str, Any]],
) -> None:
    serving, world = app
    world["aliases"] = ("1", "ok")
    serving.reload_if_changed()
    assert serving.reload_if_changed() is False  # same version: no reload
    assert world["loads"] == ["1"]
    world["aliases"], world["broken"] = ("2", "ok"), {"2"}
    assert serving.reload_if_changed() is False
    assert serving.path.model is not None and serving.path.model.version == "1"
    assert "v2 not loaded" in serving.status["reload"]
    world["broken"] = set()
    assert serving.reload_if_changed() is True and serving.path.model.version == "2"


def test_an_unreachable_registry_keeps_the_served_model(
    app: tuple[ServingApp, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, world = app
    world["aliases"] = ("1", "ok")
    serving.reload_if_changed()

    def down(settings: Any, client: Any = None) -> tuple[str | None, str]:
        raise ConnectionError("MLflow is down")

    monkeypatch.setattr(serving_app, "served_version", down)
    assert serving.reload_if_changed() is False
    assert serving.path.model is not None and serving.path.model.version == "1"
    assert "MLflow is down" in serving.status["reload"]


def test_an_unresolvable_redis_at_start_up_answers_from_the_lakes_popular_items(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Staging with no LAMBDAREC_REDIS_URL and no embedded Redis running: the app opens no store, answers
    every request from the fallbacks naming the store, is not ready, and says how to fix it."""
    from lambdarec.serving.contract import RecommendRequest

    monkeypatch.delenv("LAMBDAREC_REDIS_URL", raising=False)
    monkeypatch.setattr(serving_app, "popular_from_lake", lambda lake: [("p1", 9.0), ("p2", 4.0)])
    serving = ServingApp(load_settings("staging", state_dir=tmp_path, secret_key="test-only-secret"))
    serving._open_store()  # noqa: SLF001 - the first step of start(), without Milvus and MLflow
    serving._popular_from_lake()  # noqa: SLF001
    assert serving.path.features is None
    assert "services up redis" in serving.status["online_store"]
    (answer,) = serving.recommend([RecommendRequest(session_id="s-1", k=2)])
    assert answer.fallback == "online_store_unavailable"
    assert [(i.item_id, i.sources) for i in answer.items] == [("p1", ["popular"]), ("p2", ["popular"])]
    ready, status = serving.readiness()
    assert not ready and status["online_store"].startswith("unavailable:")
    serving.close()

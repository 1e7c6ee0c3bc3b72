"""The sequence-aware query tower: the encoders, their fallback on small data, the bundle round trip."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lambdarec.features.session import RECENT_ITEMS  # noqa: E402
from lambdarec.models.inputs import PAD  # noqa: E402
from lambdarec.models.two_tower import TwoTowerConfig, TwoTowerModel  # noqa: E402

SMALL = {"dim": 16, "hidden": 32, "batch_size": 128, "min_sequence_examples": 100}


@pytest.fixture(scope="module")
def small_events() -> Any:
    """300 synthetic events over 60 items: too few for a sequence encoder at the default thresholds."""
    from lambdarec.data import generate_events_table
    from lambdarec.models.data import load_events

    return load_events(generate_events_table(300, 60, 20, seed=5))


@pytest.fixture(scope="module")
def small_source(small_events: Any) -> Any:
    """The feature rows of the 300 events, computed in process."""
    from fake_source import EventFeatureSource

    return EventFeatureSource(small_events)


@pytest.fixture(scope="module")
def small_split(small_events: Any, small_source: Any) -> Any:
    """The temporal split of the 300 events."""
    from lambdarec.models.data import temporal_split

    return temporal_split(small_events, small_source)


@pytest.mark.parametrize("encoder", ["gru", "attention"])
def test_a_sequence_encoder_trains_and_reads_the_order(tiny_split: Any, encoder: str) -> None:
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(**SMALL, epochs=3, patience=9, sequence_encoder=encoder))
    history = model.fit(tiny_split.train)
    assert history.sequence_encoder == encoder and history.fallback == ""
    assert all(np.isfinite(history.train_loss)) and history.train_loss[-1] < history.train_loss[0]
    items, scores = model.recommend(tiny_split.test, 10)
    assert items.shape == (len(tiny_split.test), 10) and PAD not in items and np.isfinite(scores).all()
    # The same items in another order give another query (a bag of items would not).
    n_items = tiny_split.catalogue.n_items
    session = torch.zeros((1, RECENT_ITEMS), dtype=torch.long)
    session[0, -4:] = torch.tensor([1, 2, 3, 4]) % (n_items - 1) + 1
    reordered = session.clone()
    reordered[0, -4:] = session[0, -4:].flip(0)
    history_items = torch.zeros((1, 30), dtype=torch.long)
    dense = torch.zeros((1, model.net.query_mlp[0].in_features - 4 * 16))
    with torch.no_grad():
        a = model.net.query(session, history_items, dense)
        b = model.net.query(reordered, history_items, dense)
    assert not torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("encoder", ["mean", "gru", "attention"])
def test_an_empty_session_gets_a_finite_query(tiny_split: Any, encoder: str) -> None:
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(**SMALL, sequence_encoder=encoder))
    model.net.eval()
    empty = torch.zeros((3, RECENT_ITEMS), dtype=torch.long)
    dense = torch.zeros((3, 10))
    with torch.no_grad():
        q = model.net.query(empty, torch.zeros((3, 30), dtype=torch.long), dense)
    assert torch.isfinite(q).all()


@pytest.mark.parametrize("encoder", ["gru", "attention"])
def test_a_small_dataset_falls_back_to_the_mean_tower_with_a_logged_reason(
    small_split: Any, encoder: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(small_split.train) < TwoTowerConfig().min_sequence_examples
    asked = TwoTowerConfig(dim=16, hidden=32, epochs=3, batch_size=64, sequence_encoder=encoder)
    model = TwoTowerModel(small_split.catalogue, asked)
    with caplog.at_level(logging.WARNING, logger="lambdarec.models.two_tower"):
        history = model.fit(small_split.train)
    assert asked.sequence_encoder == encoder  # the caller's config is left alone
    assert model.config.sequence_encoder == "mean" and history.sequence_encoder == "mean"
    assert model.net.gru is None and model.net.attention is None
    assert "fewer than min_sequence_examples" in history.fallback
    assert any(f"{encoder} encoder replaced by the mean encoder" in r.getMessage() for r in caplog.records)
    assert history.train_loss and all(np.isfinite(history.train_loss))
    items, scores = model.recommend(small_split.test, 5)
    assert np.isfinite(scores).all() and PAD not in items


def test_sessions_too_short_for_order_fall_back(tiny_split: Any) -> None:
    one_item = tiny_split.train.subset(np.arange(len(tiny_split.train)))
    one_item.session = one_item.session.copy()
    one_item.session[:, :-1] = PAD  # every session reduced to its latest item
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(**SMALL, epochs=1, sequence_encoder="gru"))
    history = model.fit(one_item)
    assert history.sequence_encoder == "mean" and "two or more known session items" in history.fallback


def test_a_non_finite_loss_falls_back_instead_of_training_on_nan(
    tiny_split: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = TwoTowerModel._loss

    def nan_for_sequences(self: TwoTowerModel, batch: Any, train: bool) -> Any:
        loss = real_loss(self, batch, train)
        return loss * float("nan") if self.config.sequence_encoder != "mean" else loss

    monkeypatch.setattr(TwoTowerModel, "_loss", nan_for_sequences)
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(**SMALL, epochs=2, sequence_encoder="attention"))
    history = model.fit(tiny_split.train)
    assert history.sequence_encoder == "mean" and "non-finite training loss" in history.fallback
    assert all(np.isfinite(history.train_loss))


def test_an_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="sequence_encoder"):
        TwoTowerConfig(sequence_encoder="lstm")  # type: ignore[arg-type]


def test_a_sequence_bundle_round_trips_and_old_bundles_load_as_mean(
    tiny_split: Any, tiny_source: Any, tiny_config: Any, tmp_path: Path
) -> None:
    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.models.bundle import load_bundle, save_bundle

    config = replace(tiny_config, two_tower=replace(tiny_config.two_tower, sequence_encoder="gru", **_thresholds()))
    _, recommender = evaluate_split(tiny_split, tiny_source, config, dataset="synthetic:tiny")
    assert recommender.config.two_tower.sequence_encoder == "gru"
    folder = save_bundle(recommender, tmp_path / "gru")
    loaded = load_bundle(folder)
    assert loaded.config.two_tower.sequence_encoder == "gru"
    assert np.allclose(
        loaded.retrieval.query_embeddings(tiny_split.test), recommender.retrieval.query_embeddings(tiny_split.test)
    )

    # A bundle from before the encoders existed has no sequence_encoder: it is a mean tower.
    _, mean_model = evaluate_split(tiny_split, tiny_source, tiny_config, dataset="synthetic:tiny")
    old = save_bundle(mean_model, tmp_path / "old")
    meta = json.loads((old / "bundle.json").read_text())
    for key in ("sequence_encoder", "attention_heads", "sequence_dropout", "min_sequence_examples"):
        meta["pipeline"]["two_tower"].pop(key)
    meta["pipeline"]["two_tower"].pop("min_sequence_share")
    (old / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(old).config.two_tower.sequence_encoder == "mean"


def test_300_events_train_the_whole_pipeline_on_the_fallback_and_the_bundle_says_so(
    small_split: Any, small_source: Any, tiny_config: Any, tmp_path: Path
) -> None:
    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.models.bundle import load_bundle, save_bundle

    config = replace(tiny_config, two_tower=replace(tiny_config.two_tower, sequence_encoder="attention"))
    result, recommender = evaluate_split(small_split, small_source, config, dataset="synthetic:300")
    assert config.two_tower.sequence_encoder == "attention"
    assert recommender.config.two_tower.sequence_encoder == "mean"
    assert "attention → mean" in result.training["two_tower_history"]["fallback"]
    assert all(np.isfinite(result.training["two_tower_history"]["train_loss"]))
    folder = save_bundle(recommender, tmp_path / "b")
    assert json.loads((folder / "bundle.json").read_text())["pipeline"]["two_tower"]["sequence_encoder"] == "mean"
    assert load_bundle(folder).retrieval.net.attention is None


def _thresholds() -> dict[str, Any]:
    return {"min_sequence_examples": 100, "min_sequence_share": 0.0}


@pytest.mark.parametrize("encoder", ["gru", "attention"])
def test_a_session_gets_the_same_query_alone_or_in_a_batch(tiny_split: Any, encoder: str) -> None:
    # Serving reads one request at a time, training reads batches: padding must not leak into the query.
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(**SMALL, sequence_encoder=encoder))
    model.net.eval()
    session = torch.zeros((3, RECENT_ITEMS), dtype=torch.long)
    session[0, -3:] = torch.tensor([4, 5, 6])
    session[1, -12:] = torch.arange(1, 13)
    session[2, -1] = 7
    history = torch.zeros((3, 30), dtype=torch.long)
    dense = torch.zeros((3, model.net.query_mlp[0].in_features - 4 * 16))
    with torch.no_grad():
        together = model.net.query(session, history, dense)
        for row in range(3):
            alone = model.net.query(session[row : row + 1], history[row : row + 1], dense[row : row + 1])
            assert torch.allclose(together[row], alone[0], atol=1e-5)

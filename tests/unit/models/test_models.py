"""Model shapes, learning on a toy problem, cold start, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lambdarec.evaluate.metrics import roc_auc  # noqa: E402
from lambdarec.models.deepfm import DeepFMConfig, DeepFMModel  # noqa: E402
from lambdarec.models.inputs import PAD  # noqa: E402
from lambdarec.models.two_tower import TwoTowerConfig, TwoTowerModel  # noqa: E402


def test_two_tower_shapes_and_loss_goes_down(tiny_split: Any) -> None:
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(dim=16, hidden=32, epochs=4, batch_size=128, patience=9))
    history = model.fit(tiny_split.train)
    assert history.train_loss[-1] < history.train_loss[0]
    vectors = model.item_embeddings()
    assert vectors.shape == (tiny_split.catalogue.n_items, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    items, scores = model.recommend(tiny_split.test, 10)
    assert items.shape == (len(tiny_split.test), 10) and PAD not in items
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_two_tower_trains_on_its_own_thread_count_and_restores_the_callers(tiny_split: Any) -> None:
    seen: list[int] = []
    before = torch.get_num_threads()
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(dim=16, hidden=32, epochs=1, batch_size=128))
    model.fit(tiny_split.train, progress=lambda *_: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {1}  # TwoTowerConfig.train_threads: one intra-op thread by default
    assert torch.get_num_threads() == before


def test_two_tower_embeddings_start_small_and_the_unknown_row_at_zero(tiny_split: Any) -> None:
    net = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(dim=16, hidden=32)).net
    ids = net.item_ids.weight.detach()
    assert float(ids[1:].std()) < 0.1  # embedding_init_std: a rare id must not drown its content
    assert torch.count_nonzero(ids[PAD]) == 0


def test_cold_start_item_gets_a_content_embedding(tiny_split: Any) -> None:
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(dim=16, hidden=32, epochs=1, batch_size=256))
    model.fit(tiny_split.train)
    cat = tiny_split.catalogue
    some_category = next(iter(cat.categories))
    new_items = {
        "item_id": ["brand-new-1", "brand-new-2"],
        "item_category": [some_category, "a category never seen"],
        "item_brand": [None, None],
        "item_price_mean_30d": [12.5, None],
    }
    inputs = cat.content_inputs(new_items)
    assert inputs["item"].tolist() == [PAD, PAD]
    vectors = model.embed_item_inputs(inputs)
    assert vectors.shape == (2, 16) and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])  # content differs, so does the embedding


def test_deepfm_learns_a_toy_rule_and_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    sparse = rng.integers(0, 5, size=(4000, 3))
    dense = rng.standard_normal((4000, 2)).astype(np.float32)
    labels = ((sparse[:, 0] == sparse[:, 1]) | (dense[:, 0] > 1)).astype(np.float32)
    model = DeepFMModel(
        [5, 5, 5], 2, DeepFMConfig(embedding_dim=4, hidden=(16,), epochs=8, batch_size=256, lr=1e-2, patience=20)
    )
    history = model.fit(sparse, dense, labels, np.ones(4000))
    assert history.train_loss[-1] < history.train_loss[0]
    probs = model.predict(sparse, dense)
    assert probs.shape == (4000,) and ((probs >= 0) & (probs <= 1)).all()
    assert roc_auc(labels, probs) > 0.9
    with pytest.raises(ValueError, match="NaN"):
        model.fit(sparse, np.full_like(dense, np.nan), labels, np.ones(4000))
    with pytest.raises(ValueError, match="one class"):
        model.fit(sparse, dense, np.ones(4000), np.ones(4000))


def test_deepfm_batch_shrinks_on_a_small_training_set_so_an_epoch_has_enough_steps() -> None:
    config = DeepFMConfig(batch_size=4096, min_steps_per_epoch=16, min_batch_size=32)
    assert config.epoch_batch_size(92_629) == 4096  # UCI-sized: unchanged
    assert config.epoch_batch_size(8_014) == 256  # REES46-sized: 32 steps, not 2
    assert config.epoch_batch_size(8_014) * 16 <= 8_014 < config.epoch_batch_size(8_014) * 2 * 16
    assert config.epoch_batch_size(100) == 32  # never below the floor
    assert DeepFMConfig(batch_size=16, min_batch_size=32).epoch_batch_size(10) == 16  # nor above the asked batch


def test_deepfm_records_the_batch_it_trained_with() -> None:
    rng = np.random.default_rng(1)
    sparse, dense = rng.integers(0, 5, size=(600, 3)), rng.standard_normal((600, 2)).astype(np.float32)
    labels = (sparse[:, 0] == 1).astype(np.float32)
    model = DeepFMModel([5, 5, 5], 2, DeepFMConfig(embedding_dim=4, hidden=(8,), epochs=1, batch_size=4096))
    history = model.fit(sparse, dense, labels, np.ones(600))
    assert history.batch_size == 32 and history.to_dict()["batch_size"] == 32


def test_refit_trains_a_fresh_model_on_every_example_for_the_chosen_epochs(tiny_split: Any) -> None:
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(dim=16, hidden=32, epochs=3, batch_size=128, patience=9))
    first = model.fit(tiny_split.train)
    chosen_curve, known = list(first.validation_loss), int((tiny_split.train.target != PAD).sum())
    before = model.item_embeddings()
    history = model.refit(tiny_split.train, epochs=2)
    assert history is model.history and history.validation_loss == chosen_curve  # the curve that chose the epochs
    assert history.refit_epochs == 2 and model.config.epochs == 2
    assert history.refit_examples == known > first.examples  # nothing held out this time
    assert history.refit_seconds > 0 and history.to_dict()["refit_epochs"] == 2
    assert not np.allclose(model.item_embeddings(), before)  # a new model, served from here on


def test_a_refit_that_diverges_keeps_the_validated_model(tiny_split: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = TwoTowerModel(tiny_split.catalogue, TwoTowerConfig(dim=16, hidden=32, epochs=2, batch_size=128))
    model.fit(tiny_split.train)
    validated = model.item_embeddings()
    monkeypatch.setattr(TwoTowerModel, "_loss", lambda self, batch, train: torch.tensor(float("nan")))
    history = model.refit(tiny_split.train, epochs=2)
    assert "non-finite" in history.refit_failure and history.refit_epochs == 0
    assert np.allclose(model.item_embeddings(), validated) and model.config.epochs == 2

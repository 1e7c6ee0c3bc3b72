"""Two-tower retrieval: a query tower (session + user history) and an item tower (id + content).

The query tower reads the current session's items (so an anonymous session gets
recommendations), the user's earlier items and the session counters. The item tower
adds the id embedding to category, brand and price-bucket embeddings; ids are dropped
at random in training, so an item never seen in training (index 0) still gets a
usable, content-only embedding (cold start). Trained with an in-batch softmax with the
popularity (logQ) correction of Yi et al. (2019) on next-interaction targets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lambdarec.features.session import RECENT_ITEMS
from lambdarec.models.data import Examples
from lambdarec.models.inputs import PAD, QUERY_DENSE, Vocabulary


@dataclass
class TwoTowerConfig:
    """Hyper-parameters (chosen on the validation split carved from train, never on test).

    Attributes:
        dim: Output embedding size (the Milvus vector size).
        hidden: Hidden width of each tower's MLP.
        temperature: Softmax temperature over cosine similarities.
        id_dropout: Probability of hiding an item's id in training (teaches content-only embeddings).
        epochs: Maximum passes over the training examples.
        batch_size: Examples per step (also the number of in-batch negatives).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        patience: Stop after this many epochs without a better validation loss.
        validation_fraction: Latest share of training examples held out for the loss curve / early stop.
        max_train_seconds: Stop starting new epochs after this long (a budget on 2 CPU cores).
        seed: Initialisation and shuffling seed.
    """

    dim: int = 64
    hidden: int = 128
    temperature: float = 0.05
    id_dropout: float = 0.15
    epochs: int = 12
    patience: int = 2
    batch_size: int = 1024
    lr: float = 5e-3
    weight_decay: float = 1e-6
    validation_fraction: float = 0.1
    max_train_seconds: float = 300.0
    seed: int = 0


class TwoTower(nn.Module):
    """Query and item towers producing L2-normalised ``dim``-vectors.

    Args:
        n_items: Item vocabulary size (index 0 = unknown).
        n_categories: Category vocabulary size (index 0 = unknown).
        n_brands: Brand vocabulary size.
        n_price_buckets: Price buckets (index 0 = unknown).
        config: Hyper-parameters.
    """

    def __init__(self, n_items: int, n_categories: int, n_brands: int, n_price_buckets: int, config: TwoTowerConfig):
        super().__init__()
        d, h = config.dim, config.hidden
        self.config = config
        self.position = nn.Parameter(torch.zeros(RECENT_ITEMS))
        self.query_mlp = nn.Sequential(nn.Linear(3 * d + len(QUERY_DENSE), h), nn.ReLU(), nn.Linear(h, d))
        # One id table for both towers: a session item and a candidate live in the same space.
        self.item_ids = nn.Embedding(n_items, d, padding_idx=PAD)
        self.item_category = nn.Embedding(n_categories, d // 2)
        self.item_brand = nn.Embedding(n_brands, d // 2)
        self.item_price = nn.Embedding(n_price_buckets, d // 4)
        self.item_mlp = nn.Sequential(nn.Linear(d + d // 2 + d // 2 + d // 4, h), nn.ReLU(), nn.Linear(h, d))

    def query(self, session: torch.Tensor, history: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Query vectors from the session prefix (B, RECENT_ITEMS), history (B, H) and dense features."""
        mask = (session != PAD).float()
        weights = torch.softmax(self.position, 0)[None, :] * mask
        items = self.item_ids(session)
        pooled = (items * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)
        last = items[:, -1]
        hist_mask = (history != PAD).float()
        hist = (self.item_ids(history) * hist_mask[..., None]).sum(1) / hist_mask.sum(1, keepdim=True).clamp_min(1)
        out = self.query_mlp(torch.cat([pooled, last, hist, dense], 1))
        return F.normalize(out + last + pooled, dim=-1)

    def item(
        self, item: torch.Tensor, category: torch.Tensor, brand: torch.Tensor, price: torch.Tensor
    ) -> torch.Tensor:
        """Item vectors; an ``item`` index of 0 gives the content-only embedding."""
        features = torch.cat(
            [self.item_ids(item), self.item_category(category), self.item_brand(brand), self.item_price(price)], 1
        )
        return F.normalize(self.item_mlp(features) + self.item_ids(item), dim=-1)


@dataclass
class TrainHistory:
    """What a training run saw: one value per epoch.

    Attributes:
        train_loss: Mean training loss per epoch.
        validation_loss: Loss on the held-out (latest) training examples per epoch.
        best_epoch: Epoch whose weights were kept (lowest validation loss).
        seconds: Wall time of the training loop.
        examples: Training examples used.
    """

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    examples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class EarlyStopping:
    """Epoch bookkeeping shared by both models: keep the weights of the best validation loss,
    stop on patience or when the time budget is spent, restore the best weights at the end.

    Args:
        net: The module being trained.
        history: Where per-epoch losses, the best epoch and the wall time are recorded.
        patience: Epochs without a better validation loss before stopping.
        max_seconds: Training-time budget, checked at the end of each epoch.
    """

    def __init__(self, net: nn.Module, history: TrainHistory, patience: int, max_seconds: float) -> None:
        self.net, self.history = net, history
        self.patience, self.max_seconds = patience, max_seconds
        self.best = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.started = time.monotonic()

    def end_epoch(self, epoch: int, train_loss: float, validation_loss: float) -> bool:
        """Record one epoch; True when training should stop."""
        self.history.train_loss.append(train_loss)
        self.history.validation_loss.append(validation_loss)
        if validation_loss < self.best or not math.isfinite(self.best):
            self.best = validation_loss
            self.best_state = {k: t.clone() for k, t in self.net.state_dict().items()}
            self.history.best_epoch = epoch
        over_budget = time.monotonic() - self.started > self.max_seconds
        return over_budget or epoch - self.history.best_epoch >= self.patience

    def finish(self, examples: int) -> None:
        """Restore the best weights and record the wall time and example count."""
        if self.best_state is not None:
            self.net.load_state_dict(self.best_state)
        self.history.seconds = time.monotonic() - self.started
        self.history.examples = examples
        self.net.eval()


def _tensors(examples: Examples, rows: np.ndarray | slice) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(examples.session[rows]),
        torch.from_numpy(examples.history[rows]),
        torch.from_numpy(examples.dense[rows]),
        torch.from_numpy(examples.target[rows]),
    )


def validation_cut(n: int, fraction: float) -> int:
    """Index where the held-out (latest) validation examples start."""
    return n - max(1, int(n * fraction)) if n > 20 else n


class TwoTowerModel:
    """A trained two-tower model bound to its catalogue.

    Args:
        catalogue: The training catalogue.
        config: Hyper-parameters.
    """

    def __init__(self, catalogue: Vocabulary, config: TwoTowerConfig | None = None) -> None:
        self.catalogue = catalogue
        self.config = config or TwoTowerConfig()
        torch.manual_seed(self.config.seed)
        self.net = TwoTower(
            catalogue.n_items,
            len(catalogue.categories) + 1,
            len(catalogue.brands) + 1,
            len(catalogue.price_edges) + 2,
            self.config,
        )
        self.history = TrainHistory()
        counts = catalogue.item_popularity.copy()
        counts[PAD] = 0
        self.log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(counts.sum(), 1.0)).astype(np.float32))

    def _tower_inputs(self, items: torch.Tensor, drop_ids: bool) -> tuple[torch.Tensor, ...]:
        cat = self.catalogue
        ids = items
        if drop_ids and self.config.id_dropout > 0:
            ids = torch.where(torch.rand(items.shape) < self.config.id_dropout, torch.zeros_like(items), items)
        return (
            ids,
            torch.from_numpy(cat.item_category)[items],
            torch.from_numpy(cat.item_brand)[items],
            torch.from_numpy(cat.item_price_bucket)[items],
        )

    def _loss(self, batch: tuple[torch.Tensor, ...], train: bool) -> torch.Tensor:
        session, history, dense, target = batch
        q = self.net.query(session, history, dense)
        v = self.net.item(*self._tower_inputs(target, drop_ids=train))
        logits = q @ v.T / self.config.temperature - self.log_q[target][None, :]
        same = target[None, :] == target[:, None]
        eye = torch.eye(len(target), dtype=torch.bool)
        logits = logits.masked_fill(same & ~eye, float("-inf"))  # accidental hits are not negatives
        return F.cross_entropy(logits, torch.arange(len(target)))

    def fit(self, examples: Examples, progress: Callable[[str, int, int, float], None] | None = None) -> TrainHistory:
        """Train on next-item examples (all targets must be catalogue items).

        Args:
            examples: Training examples in time order; the latest ``validation_fraction`` is held out.
            progress: Called as ``progress(stage, step, total, loss)`` for progress bars.
        """
        known = examples.target != PAD
        examples = examples.subset(known)
        split = validation_cut(len(examples), self.config.validation_fraction)
        train_rows, val_rows = np.arange(split), np.arange(split, len(examples))
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        rng = np.random.default_rng(self.config.seed)
        bs = self.config.batch_size
        steps = math.ceil(len(train_rows) / bs)
        stopping = EarlyStopping(self.net, self.history, self.config.patience, self.config.max_train_seconds)
        for epoch in range(self.config.epochs):
            self.net.train()
            order = rng.permutation(train_rows)
            total = 0.0
            for step in range(steps):
                rows = order[step * bs : (step + 1) * bs]
                if len(rows) < 2:
                    continue
                loss = self._loss(_tensors(examples, rows), train=True)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(rows)
                if progress:
                    progress("two-tower", epoch * steps + step + 1, self.config.epochs * steps, float(loss))
            if stopping.end_epoch(epoch, total / max(len(train_rows), 1), self.validation_loss(examples, val_rows)):
                break
        stopping.finish(len(train_rows))
        return self.history

    @torch.no_grad()
    def validation_loss(self, examples: Examples, rows: np.ndarray) -> float:
        """Mean in-batch loss over ``rows`` (no id dropout)."""
        self.net.eval()
        losses, sizes = [], []
        for start in range(0, len(rows), self.config.batch_size):
            part = rows[start : start + self.config.batch_size]
            if len(part) < 2:
                continue
            losses.append(float(self._loss(_tensors(examples, part), train=False)))
            sizes.append(len(part))
        return float(np.average(losses, weights=sizes)) if losses else float("nan")

    @torch.no_grad()
    def item_embeddings(self) -> np.ndarray:
        """(n_items, dim) float32 embeddings of the catalogue, row = item index (row 0: unknown item)."""
        self.net.eval()
        inputs = self.catalogue.tower_inputs()
        return self.embed_item_inputs(inputs)

    @torch.no_grad()
    def embed_item_inputs(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Embeddings of arbitrary items given as tower inputs (see ``Catalogue.content_of``)."""
        self.net.eval()
        out = []
        n = len(inputs["item"])
        for start in range(0, n, 65_536):
            part = [
                torch.from_numpy(np.asarray(inputs[k][start : start + 65_536], np.int64))
                for k in ("item", "category", "brand", "price")
            ]
            out.append(self.net.item(*part).numpy())
        return np.vstack(out).astype(np.float32) if out else np.zeros((0, self.config.dim), np.float32)

    @torch.no_grad()
    def query_embeddings(self, examples: Examples, batch: int = 4096) -> np.ndarray:
        """(n, dim) query vectors of the examples."""
        self.net.eval()
        out = [
            self.net.query(*_tensors(examples, slice(s, s + batch))[:3]).numpy() for s in range(0, len(examples), batch)
        ]
        return np.vstack(out) if out else np.zeros((0, self.config.dim), np.float32)

    def recommend(
        self, examples: Examples, k: int, item_vectors: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` catalogue items per example (the unknown row is never returned).

        Returns:
            ``(items, scores)``, both (n, k), best first.
        """
        vectors = self.item_embeddings() if item_vectors is None else item_vectors
        queries = self.query_embeddings(examples)
        k = min(k, vectors.shape[0] - 1)
        items, scores = [], []
        for start in range(0, len(queries), 2048):
            sims = queries[start : start + 2048] @ vectors.T
            sims[:, PAD] = -np.inf
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            part_scores = np.take_along_axis(sims, part, 1)
            order = np.argsort(-part_scores, axis=1)
            items.append(np.take_along_axis(part, order, 1))
            scores.append(np.take_along_axis(part_scores, order, 1))
        if not items:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.vstack(items), np.vstack(scores)

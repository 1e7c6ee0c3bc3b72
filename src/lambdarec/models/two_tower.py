"""Two-tower retrieval: a query tower (session + user history) and an item tower (id + content).

The query tower reads the current session's items (so an anonymous session gets
recommendations), the user's earlier items and the session counters. The session's items are
encoded by one of three encoders (``TwoTowerConfig.sequence_encoder``): ``"mean"``, a learned
position-weighted mean (a bag of items: order only through the weights); ``"gru"``, a GRU over the
items in order (GRU4Rec's idea); ``"attention"``, a causal self-attention block over item +
position embeddings read at the latest item (SASRec's idea). All three read the same input, the
``retrieval_v2`` feature ``session_recent_items`` as assembled by :mod:`lambdarec.models.inputs`,
so serving needs nothing new. A training set too small or too sparse for a sequence encoder falls
back to ``"mean"`` with a logged reason (:attr:`TrainHistory.fallback`). The item tower
adds the id embedding to category, brand and price-bucket embeddings; ids are dropped
at random in training, so an item never seen in training (index 0) still gets a
usable, content-only embedding (cold start). Trained with an in-batch softmax with the
popularity (logQ) correction of Yi et al. (2019) on next-interaction targets.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lambdarec.features.session import RECENT_ITEMS
from lambdarec.models.data import Examples
from lambdarec.models.inputs import PAD, QUERY_DENSE, Vocabulary

log = logging.getLogger(__name__)

SequenceEncoder = Literal["mean", "gru", "attention"]
SEQUENCE_ENCODERS: tuple[str, ...] = ("mean", "gru", "attention")


@dataclass
class TwoTowerConfig:
    """Hyper-parameters (chosen on the validation split carved from train, never on test).

    The defaults were picked on REES46's training window (retrieval window trains, the later 20% of
    training examples scores Recall@100): the earlier ones (temperature 0.05, batch 1024, 12 epochs,
    N(0, 1) embeddings) reached 0.078 with the validation loss flat at ln(batch); temperature 0.2
    with small initial embeddings and batch 256 reached 0.289 (0.1: 0.254, 0.3: 0.276; N(0, 1)
    embeddings at 0.2: 0.164). An exact softmax over the whole catalogue did worse than the
    in-batch one with the logQ correction (0.277 vs 0.289) and was dropped.

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
        sequence_encoder: How the session's items are encoded: ``"mean"`` (position-weighted
            bag), ``"gru"`` or ``"attention"`` (in order).
        attention_heads: Heads of the self-attention block (``dim`` must divide by it).
        sequence_dropout: Dropout inside the GRU / attention encoders.
        min_sequence_examples: A sequence encoder needs at least this many training examples,
            otherwise training falls back to ``"mean"``.
        min_sequence_share: ... and at least this share of them with two or more known session items.
        train_threads: Torch intra-op threads while training (restored afterwards); 0 keeps torch's.
            One by default: the steps are small matrix products, and on the shared 2-core machine two
            threads made a step ~10x slower (REES46, batch 1024: 43 ms vs 483 ms CPU at load 2-6).
        embedding_init_std: Standard deviation of the embedding tables' initial weights (0: torch's
            N(0, 1)). Small, so a rarely seen item's id does not drown its content and the MLPs.
    """

    dim: int = 64
    hidden: int = 128
    temperature: float = 0.2
    id_dropout: float = 0.15
    epochs: int = 50
    patience: int = 4
    batch_size: int = 256
    lr: float = 5e-3
    weight_decay: float = 1e-6
    validation_fraction: float = 0.1
    max_train_seconds: float = 300.0
    seed: int = 0
    sequence_encoder: SequenceEncoder = "mean"
    attention_heads: int = 2
    sequence_dropout: float = 0.1
    min_sequence_examples: int = 1_000
    min_sequence_share: float = 0.2
    train_threads: int = 1
    embedding_init_std: float = 0.05

    def __post_init__(self) -> None:
        if self.sequence_encoder not in SEQUENCE_ENCODERS:
            raise ValueError(f"sequence_encoder {self.sequence_encoder!r}: one of {SEQUENCE_ENCODERS}")


class AttentionEncoder(nn.Module):
    """One causal self-attention block (SASRec-style, pre-norm) read at the latest position.

    With one block, the latest position's output depends only on its own query over every key
    (the causal mask hides nothing from it) and on its own feed-forward step, so only that
    position is computed: the same numbers as the full block's last row, at a fraction of the cost.

    Args:
        dim: Embedding size.
        heads: Attention heads.
        dropout: Dropout on attention weights and the feed-forward part.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.position = nn.Embedding(RECENT_ITEMS, dim)
        self.norm_in = nn.LayerNorm(dim)
        self.attend = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mid = nn.LayerNorm(dim)
        self.feed = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoding at the latest position of (B, width, dim) left-padded ``items``.

        Args:
            items: Item embeddings, oldest first, the latest in the last column; padding rows are zero.
            mask: (B, width) True where an item is present.
        """
        width = items.shape[1]
        x = items + self.position.weight[None, -width:]
        padding = ~mask
        # An empty session would leave its query nothing to attend to (NaN): open its last slot.
        padding[:, -1] = False
        normed = self.norm_in(x)
        attended, _ = self.attend(normed[:, -1:], normed, normed, key_padding_mask=padding, need_weights=False)
        last = x[:, -1] + self.dropout(attended[:, 0])
        last = last + self.dropout(self.feed(self.norm_mid(last)))
        return self.norm(last)


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
        # Only the chosen encoder's weights exist, so a "mean" model's state is the one older bundles hold.
        self.gru = nn.GRU(d, d, batch_first=True) if config.sequence_encoder == "gru" else None
        self.attention = (
            AttentionEncoder(d, config.attention_heads, config.sequence_dropout)
            if config.sequence_encoder == "attention"
            else None
        )
        self.sequence_dropout = nn.Dropout(config.sequence_dropout)
        # A sequence encoder adds its encoding beside the position-weighted mean (never instead of it).
        inputs = (4 if config.sequence_encoder != "mean" else 3) * d + len(QUERY_DENSE)
        self.query_mlp = nn.Sequential(nn.Linear(inputs, h), nn.ReLU(), nn.Linear(h, d))
        # One id table for both towers: a session item and a candidate live in the same space.
        self.item_ids = nn.Embedding(n_items, d, padding_idx=PAD)
        self.item_category = nn.Embedding(n_categories, d // 2)
        self.item_brand = nn.Embedding(n_brands, d // 2)
        self.item_price = nn.Embedding(n_price_buckets, d // 4)
        self.item_mlp = nn.Sequential(nn.Linear(d + d // 2 + d // 2 + d // 4, h), nn.ReLU(), nn.Linear(h, d))
        if config.embedding_init_std > 0:
            for table in (self.item_ids, self.item_category, self.item_brand, self.item_price):
                nn.init.normal_(table.weight, std=config.embedding_init_std)
            with torch.no_grad():
                self.item_ids.weight[PAD].zero_()

    def query(self, session: torch.Tensor, history: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Query vectors from the session prefix (B, RECENT_ITEMS), history (B, H) and dense features."""
        items = self.item_ids(session)
        present = session != PAD
        weights = torch.softmax(self.position, 0)[None, :] * present.float()
        pooled = (items * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)
        last = items[:, -1]
        hist_mask = (history != PAD).float()
        hist = (self.item_ids(history) * hist_mask[..., None]).sum(1) / hist_mask.sum(1, keepdim=True).clamp_min(1)
        if self.gru is None and self.attention is None:
            out = self.query_mlp(torch.cat([pooled, last, hist, dense], 1))
            return F.normalize(out + last + pooled, dim=-1)
        ordered = self.encode_order(session, items, present)
        out = self.query_mlp(torch.cat([pooled, ordered, last, hist, dense], 1))
        return F.normalize(out + last + pooled + ordered, dim=-1)

    def encode_order(self, session: torch.Tensor, items: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, dim) in-order encoding of the left-padded session (GRU or self-attention); 0 for an empty one."""
        # Columns where no row of the batch has an item carry nothing: skip them (left padding comes first).
        filled = present.any(0).nonzero()
        start = int(filled[0]) if len(filled) else session.shape[1] - 1
        items, present = self.sequence_dropout(items[:, start:]), present[:, start:]
        if self.gru is not None:
            # Left-align each session and pack it, so the GRU reads its items only, oldest first:
            # the padding and the batch around a session do not change its state.
            width = items.shape[1]
            lengths = present.sum(1)
            steps = torch.arange(width)[None, :] + (width - lengths)[:, None]
            aligned = items.gather(1, steps.clamp_max(width - 1)[..., None].expand(-1, -1, items.shape[2]))
            packed = nn.utils.rnn.pack_padded_sequence(
                aligned, lengths.clamp_min(1), batch_first=True, enforce_sorted=False
            )
            _, last_state = self.gru(packed)
            encoded = last_state[-1]
        else:
            assert self.attention is not None
            encoded = self.attention(items, present)
        return encoded * present.any(1, keepdim=True).float()

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
        sequence_encoder: The session encoder trained (``"mean"`` after a fallback).
        fallback: Why a requested sequence encoder was replaced by ``"mean"`` (empty: it was not).
        batch_size: Rows per step the loop used (0: not recorded).
        refit_epochs: Epochs of the refit on every example (0: the model was not refitted).
        refit_examples: Examples the refit trained on.
        refit_seconds: Wall time of the refit.
        refit_failure: Why a refit was abandoned and the first fit kept (empty: it was not).
    """

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    examples: int = 0
    sequence_encoder: str = "mean"
    fallback: str = ""
    batch_size: int = 0
    refit_epochs: int = 0
    refit_examples: int = 0
    refit_seconds: float = 0.0
    refit_failure: str = ""

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
        # A NaN loss (no rows held out, as in a refit) makes every epoch the best: the last one is kept.
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
        # Its own copy: a fallback changes the encoder of this model, not of the caller's config.
        self.config = replace(config or TwoTowerConfig())
        self.net = self._build()
        self.history = TrainHistory(sequence_encoder=self.config.sequence_encoder)
        counts = catalogue.item_popularity.copy()
        counts[PAD] = 0
        self.log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(counts.sum(), 1.0)).astype(np.float32))

    def _build(self) -> TwoTower:
        torch.manual_seed(self.config.seed)
        cat = self.catalogue
        sizes = (cat.n_items, len(cat.categories) + 1, len(cat.brands) + 1, len(cat.price_edges) + 2)
        return TwoTower(*sizes, self.config)

    def sequence_fallback_reason(self, examples: Examples) -> str:
        """Why ``examples`` cannot train the configured sequence encoder ("" when they can).

        Too few examples, or sessions too short for their order to carry anything, would leave a
        GRU or attention block under-trained; the position-weighted mean is the safer tower then.
        """
        cfg = self.config
        if cfg.sequence_encoder == "mean":
            return ""
        n = len(examples)
        if n < cfg.min_sequence_examples:
            return f"{n} training examples, fewer than min_sequence_examples={cfg.min_sequence_examples}"
        share = float(((examples.session != PAD).sum(1) >= 2).mean())
        if share < cfg.min_sequence_share:
            return (
                f"only {share:.1%} of training examples have two or more known session items "
                f"(min_sequence_share={cfg.min_sequence_share:.0%})"
            )
        return ""

    def _fall_back(self, reason: str) -> None:
        requested = self.config.sequence_encoder
        log.warning("two-tower: %s encoder replaced by the mean encoder: %s", requested, reason)
        self.config = replace(self.config, sequence_encoder="mean")
        self.net = self._build()
        self.history = TrainHistory(sequence_encoder="mean", fallback=f"{requested} → mean: {reason}")

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
        reason = self.sequence_fallback_reason(examples.subset(np.arange(split)))
        if reason:
            self._fall_back(reason)
        threads = torch.get_num_threads()
        if self.config.train_threads > 0:
            torch.set_num_threads(self.config.train_threads)
        try:
            return self._fit(examples, split, progress)
        except FloatingPointError as err:
            if self.config.sequence_encoder == "mean":
                raise
            self._fall_back(str(err))
            return self._fit(examples, split, progress)
        finally:
            torch.set_num_threads(threads)

    def refit(
        self, examples: Examples, epochs: int, progress: Callable[[str, int, int, float], None] | None = None
    ) -> TrainHistory:
        """Train a fresh copy on every example for a fixed number of epochs (no hold-out).

        Used once validation has chosen the epoch count: the latest examples, which early stopping
        held out, are the ones most like tomorrow's queries, so the served model learns from them too.
        :attr:`history` stays the first fit's (its validation curve chose ``epochs``), with the
        refit's epochs, examples and seconds added.

        Args:
            examples: Training examples in time order (unknown targets are dropped).
            epochs: Passes over the examples (the first fit's best epoch + 1).
            progress: Called as ``progress(stage, step, total, loss)`` for progress bars.
        """
        examples = examples.subset(examples.target != PAD)
        selection, first_net, first_config = self.history, self.net, self.config
        self.config = replace(self.config, epochs=max(1, epochs))
        self.net = self._build()
        self.history = TrainHistory(sequence_encoder=self.config.sequence_encoder)
        threads = torch.get_num_threads()
        if self.config.train_threads > 0:
            torch.set_num_threads(self.config.train_threads)
        try:
            # No rows held out: the validation loss is NaN and EarlyStopping keeps the last epoch.
            refitted = self._fit(examples, len(examples), progress, stage="two-tower refit")
        except FloatingPointError as err:
            # The validated model is still a good model: serve it rather than fail the run.
            log.warning("two-tower: refit abandoned, the first fit is kept: %s", err)
            self.net, self.config, self.history = first_net, first_config, selection
            selection.refit_failure = str(err)
            return selection
        finally:
            torch.set_num_threads(threads)
        selection.refit_epochs = len(refitted.train_loss)
        selection.refit_examples = refitted.examples
        selection.refit_seconds = refitted.seconds
        self.history = selection
        return selection

    def _fit(
        self,
        examples: Examples,
        split: int,
        progress: Callable[[str, int, int, float], None] | None,
        stage: str = "two-tower",
    ) -> TrainHistory:
        train_rows, val_rows = np.arange(split), np.arange(split, len(examples))
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        rng = np.random.default_rng(self.config.seed)
        bs = self.config.batch_size
        self.history.batch_size = bs
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
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss at epoch {epoch}, step {step}")
                optimizer.zero_grad()
                loss.backward()
                if self.config.sequence_encoder != "mean":
                    nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
                optimizer.step()
                total += float(loss.detach()) * len(rows)
                if progress:
                    progress(stage, epoch * steps + step + 1, self.config.epochs * steps, float(loss.detach()))
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

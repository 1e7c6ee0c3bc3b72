"""DeepFM ranking (Guo et al., 2017): a factorisation machine over sparse fields plus an MLP.

Both parts share the field embeddings; the MLP also reads dense features (retrieval
score and rank, co-occurrence with the session, popularity, price against the user's
usual spend, session counters). Trained with a weighted binary cross-entropy on
retrieval candidates (hard negatives), the positive weighted by its event type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lambdarec.models.two_tower import EarlyStopping, TrainHistory, validation_cut


@dataclass
class DeepFMConfig:
    """Hyper-parameters (never chosen on the test split).

    Attributes:
        embedding_dim: Size of each field embedding (FM factors).
        hidden: Widths of the deep part's layers.
        dropout: Dropout in the deep part.
        epochs: Maximum passes over the rows.
        batch_size: Rows per step, at most (see ``min_steps_per_epoch``).
        lr: Adam learning rate.
        patience: Stop after this many epochs without a better validation loss.
        validation_fraction: Latest share of rows held out for the loss curve / early stop.
        max_train_seconds: Stop starting new epochs after this long (a budget on 2 CPU cores).
        seed: Initialisation and shuffling seed.
        min_steps_per_epoch: A small training set gets a smaller batch (halved down to
            ``min_batch_size``) so that an epoch takes at least this many steps. Chosen on REES46's
            validation window (``bench/bench_validation.py``: the earlier 80% of its training examples
            train, the later 20% are scored; ``bench/results/validation.json``): at batch 4096 its ~7k
            ranker rows made 2 steps per epoch, 24 in all, and the ranker barely left its prior
            (two-stage Recall@20 0.168, NDCG@10 0.074, ranker AUC 0.71); at 512 0.196 / 0.090, at
            256 (this rule) 0.196 / 0.092, at 128 0.192 / 0.094 (two-tower not refitted in these
            four). With the refit on it is neutral there (0.226 / 0.098 at 4096, 0.223 / 0.100 at
            256; AUC 0.79 vs 0.85). Sets of ~90k rows and more (UCI, the synthetic shop) keep 4096.
        min_batch_size: The smallest batch that rule may pick.
    """

    embedding_dim: int = 16
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    epochs: int = 30
    patience: int = 2
    batch_size: int = 4096
    lr: float = 2e-3
    validation_fraction: float = 0.1
    max_train_seconds: float = 240.0
    seed: int = 0
    min_steps_per_epoch: int = 16
    min_batch_size: int = 32

    def epoch_batch_size(self, rows: int) -> int:
        """The batch for ``rows`` training rows: ``batch_size``, halved until an epoch has
        ``min_steps_per_epoch`` steps (never below ``min_batch_size``)."""
        batch = self.batch_size
        while batch > self.min_batch_size and rows < self.min_steps_per_epoch * batch:
            batch //= 2
        return batch


class DeepFM(nn.Module):
    """Wide (first-order + pairwise FM) and deep parts over shared field embeddings.

    Args:
        field_sizes: Vocabulary size of each sparse field (index 0 = unknown).
        n_dense: Number of dense features.
        config: Hyper-parameters.
    """

    def __init__(self, field_sizes: Sequence[int], n_dense: int, config: DeepFMConfig) -> None:
        super().__init__()
        k = config.embedding_dim
        offsets = np.concatenate([[0], np.cumsum(field_sizes)[:-1]]).astype(np.int64)
        self.offsets: torch.Tensor
        self.register_buffer("offsets", torch.from_numpy(offsets))
        total = int(sum(field_sizes))
        self.linear = nn.Embedding(total, 1)
        self.embedding = nn.Embedding(total, k)
        nn.init.normal_(self.embedding.weight, std=0.01)
        nn.init.zeros_(self.linear.weight)
        self.dense_linear = nn.Linear(n_dense, 1)
        layers: list[nn.Module] = []
        width = len(field_sizes) * k + n_dense
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.deep = nn.Sequential(*layers)

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Logits (B,) of sparse field indices (B, F) and dense features (B, D)."""
        index = sparse + self.offsets[None, :]
        emb = self.embedding(index)
        first = self.linear(index).sum((1, 2)) + self.dense_linear(dense).squeeze(1)
        square_of_sum = emb.sum(1).pow(2)
        sum_of_square = emb.pow(2).sum(1)
        fm = 0.5 * (square_of_sum - sum_of_square).sum(1)
        deep = self.deep(torch.cat([emb.flatten(1), dense], 1)).squeeze(1)
        return first + fm + deep


class DeepFMModel:
    """A DeepFM ranker with its training loop.

    Args:
        field_sizes: Vocabulary size of each sparse field.
        n_dense: Number of dense features.
        config: Hyper-parameters.
    """

    def __init__(self, field_sizes: Sequence[int], n_dense: int, config: DeepFMConfig | None = None) -> None:
        self.config = config or DeepFMConfig()
        torch.manual_seed(self.config.seed)
        self.field_sizes = list(field_sizes)
        self.net = DeepFM(self.field_sizes, n_dense, self.config)
        self.history = TrainHistory()

    def fit(
        self,
        sparse: np.ndarray,
        dense: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
        progress: Callable[[str, int, int, float], None] | None = None,
    ) -> TrainHistory:
        """Train on rows in time order (the latest ``validation_fraction`` is held out).

        Raises:
            ValueError: When there are no positive or no negative labels, or a feature is not finite.
        """
        labels = np.asarray(labels, np.float32)
        if labels.size == 0 or labels.min() == labels.max():
            raise ValueError("the ranker needs both positive and negative rows (got one class only)")
        if not np.isfinite(dense).all():
            raise ValueError("dense ranking features contain NaN or infinity; impute them before training")
        split = validation_cut(len(labels), self.config.validation_fraction)
        s, d = torch.from_numpy(sparse.astype(np.int64)), torch.from_numpy(dense.astype(np.float32))
        y, w = torch.from_numpy(labels), torch.from_numpy(weights.astype(np.float32))
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        rng = np.random.default_rng(self.config.seed)
        bs = self.config.epoch_batch_size(split)
        self.history.batch_size = bs
        steps = math.ceil(split / bs)
        stopping = EarlyStopping(self.net, self.history, self.config.patience, self.config.max_train_seconds)
        for epoch in range(self.config.epochs):
            self.net.train()
            order = torch.from_numpy(rng.permutation(split))
            total = 0.0
            for step in range(steps):
                rows = order[step * bs : (step + 1) * bs]
                logits = self.net(s[rows], d[rows])
                loss = (F.binary_cross_entropy_with_logits(logits, y[rows], reduction="none") * w[rows]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(rows)
                if progress:
                    progress("deepfm", epoch * steps + step + 1, self.config.epochs * steps, float(loss.detach()))
            val = self._weighted_loss(s[split:], d[split:], y[split:], w[split:])
            if stopping.end_epoch(epoch, total / max(split, 1), val):
                break
        stopping.finish(split)
        return self.history

    @torch.no_grad()
    def _weighted_loss(self, s: torch.Tensor, d: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> float:
        if len(y) == 0:
            return float("nan")
        self.net.eval()
        logits = torch.cat([self.net(s[i : i + 65536], d[i : i + 65536]) for i in range(0, len(y), 65536)])
        return float((F.binary_cross_entropy_with_logits(logits, y, reduction="none") * w).mean())

    @torch.no_grad()
    def predict(self, sparse: np.ndarray, dense: np.ndarray, batch: int = 65_536) -> np.ndarray:
        """Click/purchase probabilities of rows."""
        self.net.eval()
        out = []
        for start in range(0, len(sparse), batch):
            s = torch.from_numpy(sparse[start : start + batch].astype(np.int64))
            d = torch.from_numpy(dense[start : start + batch].astype(np.float32))
            out.append(torch.sigmoid(self.net(s, d)).numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

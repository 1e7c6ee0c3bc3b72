"""Serving forms of the trained networks: single-purpose modules with plain tensor inputs.

MLflow's PyTorch flavour saves these with a signature: the query encoder (session
prefix, user history, dense session features -> embedding) and the DeepFM scorer
(sparse field indices, standardised dense features -> probability).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lambdarec.features.session import RECENT_ITEMS
from lambdarec.models.inputs import HISTORY_ITEMS, QUERY_DENSE


class QueryEncoder(nn.Module):
    """The two-tower query tower as ``forward(session, history, dense) -> embedding``."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, session: torch.Tensor, history: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """L2-normalised query embeddings."""
        return self.net.query(session, history, dense)


class DeepFMScorer(nn.Module):
    """DeepFM as ``forward(sparse, dense) -> probability``."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Probabilities of the rows."""
        return torch.sigmoid(self.net(sparse, dense))


def query_input_example(recommender: Any, n: int = 2) -> dict[str, np.ndarray]:
    """A small valid input of the query encoder (for the MLflow signature)."""
    session = np.zeros((n, RECENT_ITEMS), np.int64)
    session[:, -1] = 1
    return {
        "session": session,
        "history": np.zeros((n, HISTORY_ITEMS), np.int64),
        "dense": np.zeros((n, len(QUERY_DENSE)), np.float32),
    }


def ranker_input_example(recommender: Any, n: int = 2) -> dict[str, np.ndarray]:
    """A small valid input of the DeepFM scorer (for the MLflow signature)."""
    from lambdarec.models.inputs import RANKING_DENSE, SPARSE_FIELDS

    return {
        "sparse": np.zeros((n, len(SPARSE_FIELDS)), np.int64),
        "dense": np.zeros((n, len(RANKING_DENSE)), np.float32),
    }

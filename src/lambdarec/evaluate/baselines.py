"""Baselines computed on exactly the split the models use: most-popular, item-kNN, session-kNN.

All of them fit on the training events only and rank the training catalogue (item
indices of :class:`lambdarec.models.data.Catalogue`); lists shorter than ``k`` are
filled with the most popular items, so every method returns exactly ``k`` items.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lambdarec.models.data import PAD, Catalogue, Examples


class Recommender(Protocol):
    """Anything that ranks the catalogue for a batch of examples."""

    name: str

    def recommend(self, examples: Examples, k: int) -> np.ndarray:
        """(n, k) item indices, best first."""
        ...


def session_item_matrix(train_events: pd.DataFrame, catalogue: Catalogue) -> sp.csr_matrix:
    """Binary sessions x items matrix of the training events (unknown items dropped)."""
    items = train_events["item_id"].astype(str).map(catalogue.item_index).fillna(PAD).to_numpy(np.int64)
    sessions, session_codes = np.unique(train_events["session_id"].astype(str).to_numpy(), return_inverse=True)
    keep = items != PAD
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (session_codes[keep], items[keep])),
        shape=(len(sessions), catalogue.n_items),
    )
    matrix.data[:] = 1.0  # duplicates summed by the constructor: back to binary
    return matrix


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _pad_k(ranked: np.ndarray, k: int) -> np.ndarray:
    if ranked.shape[1] >= k:
        return ranked[:, :k]
    return np.hstack([ranked, np.zeros((ranked.shape[0], k - ranked.shape[1]), ranked.dtype)])


def _popularity_prior(catalogue: Catalogue) -> np.ndarray:
    prior = catalogue.item_popularity / max(catalogue.item_popularity.max(), 1.0)
    prior[PAD] = -np.inf
    return prior.astype(np.float32)


class MostPopular:
    """The most frequent training items, the same list for everyone."""

    name = "most-popular"

    def __init__(self, catalogue: Catalogue) -> None:
        self.prior = _popularity_prior(catalogue)

    def recommend(self, examples: Examples, k: int) -> np.ndarray:
        """The top ``k`` popular items for every example."""
        top = _top_k(self.prior[None, :], k)[0]
        return _pad_k(np.tile(top, (len(examples), 1)), k)


def _sequence_weights(session: np.ndarray) -> sp.csr_matrix:
    """Query x item matrix of the session prefix, recent items weighted higher (1/position from the end)."""
    n, width = session.shape
    rows = np.repeat(np.arange(n), width)
    weights = np.tile(1.0 / np.arange(width, 0, -1), n).astype(np.float32)
    items = session.ravel()
    keep = items != PAD
    return sp.csr_matrix((weights[keep], (rows[keep], items[keep])), shape=(n, int(session.max(initial=0)) + 1))


class ItemKnn:
    """Item-to-item co-occurrence in training sessions (cosine), summed over the session prefix.

    Args:
        train_events: Events before the cut.
        catalogue: The training catalogue.
    """

    name = "item-kNN"

    def __init__(self, train_events: pd.DataFrame, catalogue: Catalogue) -> None:
        x = session_item_matrix(train_events, catalogue)
        co = (x.T @ x).tocsr().astype(np.float32)
        counts = np.asarray(x.sum(axis=0)).ravel()
        co.setdiag(0)
        co.eliminate_zeros()
        norm = 1.0 / np.sqrt(np.maximum(counts, 1.0))
        self.similarity = sp.diags(norm) @ co @ sp.diags(norm)
        self.prior = _popularity_prior(catalogue)
        self.n_items = catalogue.n_items

    def scores(self, examples: Examples) -> np.ndarray:
        """Dense (n, n_items) co-occurrence scores of the session prefix."""
        query = _sequence_weights(examples.session)
        query.resize((query.shape[0], self.n_items))
        return np.asarray((query @ self.similarity).todense(), dtype=np.float32)

    def recommend(self, examples: Examples, k: int, batch: int = 512) -> np.ndarray:
        """Top ``k`` by co-occurrence, ties and empty rows broken by popularity."""
        out = []
        for start in range(0, len(examples), batch):
            part = examples.subset(np.arange(start, min(start + batch, len(examples))))
            out.append(_top_k(self.scores(part) + 1e-6 * self.prior, k))
        return _pad_k(np.vstack(out), k) if out else np.zeros((0, k), np.int64)


class SessionKnn:
    """Session-kNN: the ``neighbours`` training sessions most similar (cosine) to the prefix vote for their items.

    Args:
        train_events: Events before the cut.
        catalogue: The training catalogue.
        neighbours: Sessions that vote.
    """

    name = "session-kNN"

    def __init__(self, train_events: pd.DataFrame, catalogue: Catalogue, neighbours: int = 100) -> None:
        x = session_item_matrix(train_events, catalogue)
        lengths = np.asarray(x.sum(axis=1)).ravel()
        self.sessions = x
        self.sessions_normed = (sp.diags(1.0 / np.sqrt(np.maximum(lengths, 1.0))) @ x).tocsr()
        self.neighbours = neighbours
        self.prior = _popularity_prior(catalogue)
        self.n_items = catalogue.n_items

    def recommend(self, examples: Examples, k: int, batch: int = 512) -> np.ndarray:
        """Top ``k`` items by the summed similarity of the nearest sessions containing them."""
        out = []
        for start in range(0, len(examples), batch):
            part = examples.session[start : start + batch]
            rows_q, cols_q = np.nonzero(part != PAD)
            query = sp.csr_matrix(
                (np.ones(len(rows_q), np.float32), (rows_q, part[rows_q, cols_q])), shape=(part.shape[0], self.n_items)
            )
            query.data[:] = 1.0
            similarity = (query @ self.sessions_normed.T).tocsr()
            rows, cols, vals = [], [], []
            for r in range(similarity.shape[0]):
                lo, hi = similarity.indptr[r], similarity.indptr[r + 1]
                if hi == lo:
                    continue
                data, idx = similarity.data[lo:hi], similarity.indices[lo:hi]
                if hi - lo > self.neighbours:
                    top = np.argpartition(-data, self.neighbours - 1)[: self.neighbours]
                    data, idx = data[top], idx[top]
                rows.append(np.full(len(idx), r))
                cols.append(idx)
                vals.append(data)
            if vals:
                nearest = sp.csr_matrix(
                    (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=similarity.shape
                )
            else:
                nearest = sp.csr_matrix(similarity.shape, dtype=np.float32)
            scores = np.asarray((nearest @ self.sessions).todense(), dtype=np.float32)
            out.append(_top_k(scores + 1e-6 * self.prior, k))
        return _pad_k(np.vstack(out), k) if out else np.zeros((0, k), np.int64)

"""Baselines on a hand-made log: each recommends what its definition says."""

from __future__ import annotations

import pandas as pd

from fake_source import EventFeatureSource
from lambdarec.evaluate.baselines import ItemKnn, MostPopular, SessionKnn
from lambdarec.models.data import examples_from_rows, fit_vocabulary
from lambdarec.models.inputs import PAD


def _log() -> pd.DataFrame:
    # Sessions: a->b many times, c is the most popular item overall, d only with c.
    rows = []
    t = 0
    for s in range(6):
        for item in ("a", "b"):
            rows.append((t, f"ab{s}", item))
            t += 1
    for s in range(10):
        for item in ("c", "d") if s < 3 else ("c",):
            rows.append((t, f"c{s}", item))
            t += 1
    frame = pd.DataFrame(rows, columns=["event_time", "session_id", "item_id"])
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    frame["event_type"] = "view"
    frame["user_id"] = None
    frame[["price", "category", "brand"]] = None
    return frame


def test_baselines_follow_their_definition() -> None:
    log = _log()
    items = sorted(log["item_id"].unique())
    catalogue = fit_vocabulary(log, EventFeatureSource(log).candidate_rows([""] * len(items), items, [0] * len(items)))
    query = pd.concat(
        [
            log,
            log.iloc[[0]].assign(event_id="q1", session_id="q", event_time=1000, item_id="a"),
            log.iloc[[0]].assign(event_id="q2", session_id="q", event_time=1001, item_id="c"),
        ]
    )
    rows = EventFeatureSource(query).query_rows(
        query["session_id"].tolist(), query["user_id"].tolist(), (query["event_time"] - 1).tolist()
    )
    examples = examples_from_rows(query, rows, catalogue)
    last = examples.subset(examples.session_id == "q")  # prefix ["a"], target "c"
    index = catalogue.item_index
    assert MostPopular(catalogue).recommend(last, 2)[0].tolist()[0] == index["c"]
    assert ItemKnn(log, catalogue).recommend(last, 2)[0, 0] == index["b"]
    assert SessionKnn(log, catalogue).recommend(last, 2)[0, 0] in (index["a"], index["b"])
    for method in (MostPopular(catalogue), ItemKnn(log, catalogue), SessionKnn(log, catalogue)):
        ranked = method.recommend(last, 3)
        assert ranked.shape == (1, 3) and PAD not in ranked[0].tolist()

"""The pair features of ``user_item_request``: plain Python, equal to the pandas definition they replaced."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lambdarec.featurestore.transforms import (
    USER_ITEM_FEATURES,
    USER_ITEM_ITEM_INPUTS,
    USER_ITEM_REQUEST_INPUTS,
    USER_ITEM_USER_INPUTS,
    number,
    user_item_features,
)

INPUTS = {
    "user_top_categories": [["a", "b"], ["a"], None, ["c"], ["a"], ["b"], ["a"]],
    "item_category": ["b", "c", "a", None, "a", "b", "a"],
    "user_last_event_ms": [1_000, 5_500, None, 2_000, 1_706_000_000_123, 0, 10],
    "request_time_ms": [11_000, 5_000, 9_000, 3_000, 1_706_659_200_000, 0, 20],
    "user_spend_30d": [100.0, 0.0, None, 50.0, 12.5, 30.0, 10.0],
    "user_purchases_30d": [4, 2, None, 0, 3, 1, 2],
    "item_price_mean_30d": [10.0, 5.0, 7.0, None, 0.0, -3.0, None],
}


def pandas_reference(inputs: pd.DataFrame) -> pd.DataFrame:
    """The pandas-mode view as it was published with ranking_v1 (NaN stands for null)."""
    out = pd.DataFrame(index=inputs.index)
    tops, cats = inputs["user_top_categories"], inputs["item_category"]
    out["item_in_user_top_categories"] = [
        int(isinstance(c, str) and t is not None and c in list(t)) for t, c in zip(tops, cats, strict=True)
    ]
    last = pd.to_numeric(inputs["user_last_event_ms"], errors="coerce")
    now = pd.to_numeric(inputs["request_time_ms"], errors="coerce")
    out["user_recency_s"] = ((now - last) / 1000.0).astype("float64")
    spend = pd.to_numeric(inputs["user_spend_30d"], errors="coerce")
    purchases = pd.to_numeric(inputs["user_purchases_30d"], errors="coerce")
    avg_ticket = spend / purchases.where(purchases > 0)
    out["item_price_vs_user_spend"] = (
        pd.to_numeric(inputs["item_price_mean_30d"], errors="coerce") / avg_ticket
    ).astype("float64")
    return out


def test_values_match_the_pandas_definition_with_null_for_nan() -> None:
    got = user_item_features(INPUTS)
    assert tuple(got) == USER_ITEM_FEATURES
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = pandas_reference(pd.DataFrame(INPUTS))
    for name in USER_ITEM_FEATURES:
        for mine, theirs in zip(got[name], expected[name].tolist(), strict=True):
            if isinstance(theirs, float) and math.isnan(theirs):
                assert mine is None, name
            else:
                assert mine == theirs and type(mine) is type(theirs), name


def test_edge_cases() -> None:
    got = user_item_features(INPUTS)
    assert got["item_in_user_top_categories"] == [1, 0, 0, 0, 1, 1, 1]
    assert got["user_recency_s"][:4] == [10.0, -0.5, None, 1.0]
    assert got["item_price_vs_user_spend"][1] == math.inf  # spend 0 over 2 purchases: a zero ticket
    assert got["item_price_vs_user_spend"][4] == 0.0
    assert got["item_price_vs_user_spend"][3] is None  # no purchases
    assert got["item_price_vs_user_spend"][6] is None  # unknown item


def test_empty_columns() -> None:
    assert user_item_features({k: [] for k in INPUTS}) == {name: [] for name in USER_ITEM_FEATURES}


class _Watched(dict):  # type: ignore[type-arg]
    """Columns that remember which were read."""

    def __init__(self, columns: dict[str, list[object]]) -> None:
        super().__init__(columns)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> list[object]:
        self.read.add(key)
        return super().__getitem__(key)


def test_reads_exactly_the_declared_inputs() -> None:
    # The on-demand view's sources are projected to these: a column read but not declared would
    # be missing at serving time, one declared but not read costs a read per candidate.
    declared = {*USER_ITEM_USER_INPUTS, *USER_ITEM_ITEM_INPUTS, *USER_ITEM_REQUEST_INPUTS}
    assert set(INPUTS) == declared
    watched = _Watched({**INPUTS, "user_views_30d": [0] * 7})
    user_item_features(watched)
    assert watched.read == declared


def test_number_coerces_like_pandas() -> None:
    assert number(3) == 3.0 and type(number(3)) is float
    assert number(2.5) == 2.5
    assert number(np.float64(1.5)) == 1.5 and number(np.int64(4)) == 4.0
    for odd in (None, True, "1", b"1", float("nan"), object()):
        assert math.isnan(number(odd)), odd

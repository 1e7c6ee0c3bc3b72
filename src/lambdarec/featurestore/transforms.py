"""Request-time feature logic of the Feast repo's on-demand views, in plain Python.

One definition serves training and serving: the on-demand view ``user_item_request``
(``features/on_demand.py``, ``mode="python"``) calls :func:`user_item_features`, which Feast runs
over the point-in-time joined table for training sets (``get_historical_features``) and over
the online rows for serving (``get_online_features``, and
:class:`lambdarec.featurestore.online.OnlineFeatureReader`, which calls the registered view).

Inputs and outputs are columns (name → list of values), Feast's python-mode format. Missing
inputs (an unknown user or item) give ``None`` outputs, which Feast stores as null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lambdarec import names

USER_ITEM_FEATURES = ("item_in_user_top_categories", "user_recency_s", "item_price_vs_user_spend")
"""What :func:`user_item_features` returns, in order."""
USER_ITEM_USER_INPUTS = ("user_top_categories", "user_last_event_ms", "user_spend_30d", "user_purchases_30d")
"""The user history features :func:`user_item_features` reads."""
USER_ITEM_ITEM_INPUTS = ("item_category", "item_price_mean_30d")
"""The item stats features :func:`user_item_features` reads."""
USER_ITEM_REQUEST_INPUTS = (names.REQUEST_TIME_MS,)
"""The request data :func:`user_item_features` reads."""


def number(value: Any) -> float:
    """A float, or NaN for None, NaN and anything that is not a number (like ``pd.to_numeric``, coerce)."""
    kind = type(value)
    if kind is float:  # the common case, hundreds of times per request: no isinstance chain
        return value
    if kind is int:
        return float(value)
    if value is None or isinstance(value, bool | str | bytes):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _divide(numerator: float, denominator: float) -> float:
    """IEEE division as numpy does it: x/0 is ±inf, 0/0 and NaN operands are NaN."""
    if denominator == 0.0:
        if numerator == 0.0 or math.isnan(numerator):
            return math.nan
        return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)
    return numerator / denominator


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def item_in_top_categories(top_categories: Any, category: Any) -> int:
    """1 when the item's category is one of the user's favourite categories, else 0."""
    return int(isinstance(category, str) and top_categories is not None and category in list(top_categories))


def user_item_features(inputs: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Pair features of (user, item) rows at request time.

    Args:
        inputs: Columns ``user_top_categories``, ``item_category``, ``user_last_event_ms``,
            ``request_time_ms`` (epoch ms), ``user_spend_30d``, ``user_purchases_30d``,
            ``item_price_mean_30d``; other columns are ignored.

    Returns:
        ``item_in_user_top_categories`` (0/1), ``user_recency_s`` (seconds since the user's last
        event) and ``item_price_vs_user_spend`` (item price over the user's average ticket;
        None without purchases), one value per input row.
    """
    in_top = [
        item_in_top_categories(top, category)
        for top, category in zip(inputs["user_top_categories"], inputs["item_category"], strict=True)
    ]
    recency = [
        _or_none((number(now) - number(last)) / 1000.0)
        for now, last in zip(inputs["request_time_ms"], inputs["user_last_event_ms"], strict=True)
    ]
    price_vs_spend = []
    for price, spend, purchases in zip(
        inputs["item_price_mean_30d"], inputs["user_spend_30d"], inputs["user_purchases_30d"], strict=True
    ):
        count = number(purchases)
        ticket = _divide(number(spend), count) if count > 0 else math.nan
        price_vs_spend.append(_or_none(_divide(number(price), ticket)))
    return dict(zip(USER_ITEM_FEATURES, (in_top, recency, price_vs_spend), strict=True))

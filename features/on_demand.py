"""On-demand features: computed at request time from stored features and the request."""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64
from feature_views import item_stats, user_history

from lambdarec import names

ranking_request = RequestSource(
    name="ranking_request",
    schema=[Field(name="request_time_ms", dtype=Int64)],
    description="What the caller knows at request time: the moment of the request (epoch ms).",
)


@on_demand_feature_view(
    name=names.USER_ITEM_FEATURE_VIEW,
    sources=[user_history, item_stats, ranking_request],
    schema=[
        Field(name="item_in_user_top_categories", dtype=Int64),
        Field(name="user_recency_s", dtype=Float64),
        Field(name="item_price_vs_user_spend", dtype=Float64),
    ],
)
def user_item_request(inputs: pd.DataFrame) -> pd.DataFrame:
    """Pair features: does the item's category match the user's favourites, how fresh is the user."""
    out = pd.DataFrame(index=inputs.index)
    tops = inputs["user_top_categories"]
    cats = inputs["item_category"]
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

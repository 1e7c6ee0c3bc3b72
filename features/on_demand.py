"""On-demand features: computed at request time from stored features and the request.

``mode="python"``: Feast hands the view columns (name → list) for training sets and for online
reads alike, and the logic is one function of the core package,
:func:`lambdarec.featurestore.transforms.user_item_features`. Feast stores the view's source
text in the registry and re-executes it when it serves, so the view imports what it calls
inside its body.

The view's sources are projected to what the function reads: Feast (and the online reader)
fetch every feature of a source view for an on-demand view, so the whole user history and item
stats would otherwise be read per candidate, twice the rows of what is used.
"""

from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64
from feature_views import item_stats, user_history

from lambdarec import names
from lambdarec.featurestore.transforms import USER_ITEM_ITEM_INPUTS, USER_ITEM_USER_INPUTS

ranking_request = RequestSource(
    name="ranking_request",
    schema=[Field(name=names.REQUEST_TIME_MS, dtype=Int64)],
    description="What the caller knows at request time: the moment of the request (epoch ms).",
)


@on_demand_feature_view(
    name=names.USER_ITEM_FEATURE_VIEW,
    sources=[user_history[list(USER_ITEM_USER_INPUTS)], item_stats[list(USER_ITEM_ITEM_INPUTS)], ranking_request],
    schema=[
        Field(name="item_in_user_top_categories", dtype=Int64),
        Field(name="user_recency_s", dtype=Float64),
        Field(name="item_price_vs_user_spend", dtype=Float64),
    ],
    mode="python",
)
def user_item_request(inputs: dict) -> dict:
    """Pair features: does the item's category match the user's favourites, how fresh is the user."""
    from lambdarec.featurestore.transforms import user_item_features

    return user_item_features(inputs)

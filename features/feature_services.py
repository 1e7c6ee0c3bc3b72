"""Versioned feature services: the contract between a model and its features.

A published version is never edited: the views it reads may gain fields, so every service
names its fields (a projection), and a change of inputs is a new version.

- ``retrieval_v1`` / ``ranking_v1``: the first contracts (kept for readers that pinned them).
- ``retrieval_v2``: the query side of both models — the current session (speed layer online,
  per-event prefix snapshots offline) and the user's 30-day history (batch). One row per
  (session, user) at a moment.
- ``ranking_v2``: the candidate side of the ranker — item stats and the request-time pair
  features. One row per (user, candidate item) at a moment.
- ``neighbours_v1``: "bought X also bought Y" and "viewed together" neighbours of the session's
  items: candidates for the ranker and its co-occurrence features.
- ``fallback_v1``: speed-layer signals the recommender falls back on (no model reads them).
- ``session_rules_v1``: what the request path's rules read of the session — the items bought in
  it, which are never recommended back (no model reads it, so adding it needed no retraining).

The v2 projections are the field lists of :mod:`lambdarec.models.inputs` (what the models read),
so the contract and the assembly cannot drift apart; a test holds the registered services to them.
"""

from feast import FeatureService
from feature_views import (
    item_neighbours,
    item_stats,
    item_stream_features,
    session_features,
    user_history,
    user_stream_features,
)
from on_demand import user_item_request

from lambdarec import names
from lambdarec.models.inputs import ITEM_CANDIDATE_FIELDS, SESSION_QUERY_FIELDS, USER_QUERY_FIELDS

_USER_HISTORY_V1 = [
    "user_events_30d",
    "user_views_30d",
    "user_carts_30d",
    "user_purchases_30d",
    "user_spend_30d",
    "user_distinct_items_30d",
    "user_visits_30d",
    "user_last_event_ms",
    "user_days_since_last_event",
    "user_top_categories",
]
_ITEM_STATS_V1 = [
    *[f"item_{kind}_{days}d" for days in (1, 7, 30) for kind in ("views", "carts", "purchases", "popularity")],
    "item_cart_rate_30d",
    "item_conversion_rate_30d",
    "item_price_mean_30d",
    "item_category",
]

retrieval_v1 = FeatureService(
    name=names.RETRIEVAL_FEATURE_SERVICE,
    features=[user_history[_USER_HISTORY_V1], session_features],
    description="User tower inputs: 30-day history and the current visit (v1, superseded by retrieval_v2).",
    tags={"model": names.TWO_TOWER_MODEL, "version": "1"},
)

ranking_v1 = FeatureService(
    name=names.RANKING_FEATURE_SERVICE,
    features=[user_history[_USER_HISTORY_V1], item_stats[_ITEM_STATS_V1], user_item_request],
    description="DeepFM inputs for (user, item) candidates: history, item stats, pair features (v1).",
    tags={"model": names.DEEPFM_MODEL, "version": "1"},
)

retrieval_v2 = FeatureService(
    name=names.QUERY_FEATURE_SERVICE,
    features=[session_features[list(SESSION_QUERY_FIELDS)], user_history[list(USER_QUERY_FIELDS)]],
    description="Query side of both models: the current session and the user's 30-day history.",
    tags={"model": f"{names.TWO_TOWER_MODEL},{names.DEEPFM_MODEL}", "version": "2"},
)

ranking_v2 = FeatureService(
    name=names.CANDIDATE_FEATURE_SERVICE,
    features=[item_stats[list(ITEM_CANDIDATE_FIELDS)], user_item_request],
    description="Candidate side of the ranker: item stats and (user, item) pair features at request time.",
    tags={"model": names.DEEPFM_MODEL, "version": "2"},
)

neighbours_v1 = FeatureService(
    name=names.NEIGHBOUR_FEATURE_SERVICE,
    features=[item_neighbours],
    description="Co-purchase and co-view neighbours of the session's items (ranker candidates and features).",
    tags={"model": names.DEEPFM_MODEL, "version": "1"},
)

fallback_v1 = FeatureService(
    name=names.FALLBACK_FEATURE_SERVICE,
    features=[user_stream_features, item_stream_features],
    description="Speed-layer signals for the recommender's fallbacks: a user's latest items, trending items.",
    tags={"model": "none", "version": "1"},
)

session_rules_v1 = FeatureService(
    name=names.SESSION_RULES_FEATURE_SERVICE,
    features=[session_features[[names.SESSION_PURCHASED_ITEMS]]],
    description="The request path's rules: items bought in the session are removed from its answers.",
    tags={"model": "none", "version": "1"},
)

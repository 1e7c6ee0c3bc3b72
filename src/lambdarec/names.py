"""Every name shared across layers: topics, entities, feature services, models, aliases.

Jobs, the Feast repo, services and DAGs import these constants instead of repeating
string literals, so a rename is one edit and a typo is an import error.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class EventType(StrEnum):
    """Kinds of clickstream interaction, in funnel order."""

    VIEW = "view"
    CART = "cart"
    PURCHASE = "purchase"


# Kafka topics -------------------------------------------------------------------------
CLICKS_TOPIC: Final = "clicks"
"""Validated clickstream events, keyed by session_id."""
CLICKS_DLQ_TOPIC: Final = "clicks.dlq"
"""Rejected events with the reason they were rejected."""
SESSION_FEATURES_TOPIC: Final = "features.session"
"""Session features computed by the speed layer, pushed to the online store."""
SERVED_FEATURES_TOPIC: Final = "features.served"
"""A sample of the model inputs the recommender assembled from the online store, as it served them
(what ``drift_monitor`` compares with the training reference). Bounded by retention."""

# Entities (Feast join keys) -------------------------------------------------------------
USER_ENTITY: Final = "user"
SESSION_ENTITY: Final = "session"
ITEM_ENTITY: Final = "item"
USER_ID: Final = "user_id"
SESSION_ID: Final = "session_id"
ITEM_ID: Final = "item_id"

# Feature services: versioned contracts between a model and its features ----------------
RETRIEVAL_FEATURE_SERVICE: Final = "retrieval_v1"
RANKING_FEATURE_SERVICE: Final = "ranking_v1"
QUERY_FEATURE_SERVICE: Final = "retrieval_v2"
"""Query-side inputs of both models (session + user), one row per (session, user) at a moment."""
CANDIDATE_FEATURE_SERVICE: Final = "ranking_v2"
"""Candidate-side inputs of the ranker, one row per (user, item) at a moment (request time)."""
NEIGHBOUR_FEATURE_SERVICE: Final = "neighbours_v1"
"""Co-purchase / co-view neighbours of the session's items: ranker candidates and features."""
FALLBACK_FEATURE_SERVICE: Final = "fallback_v1"
"""Speed-layer signals the recommender's fallbacks read (trending items, a user's latest items)."""
SESSION_RULES_FEATURE_SERVICE: Final = "session_rules_v1"
"""What the request path's rules read of the session (items bought in it); no model reads it."""

# Model registry ----------------------------------------------------------------------------
TWO_TOWER_MODEL: Final = "lambdarec-two-tower"
DEEPFM_MODEL: Final = "lambdarec-deepfm"
CHAMPION_ALIAS: Final = "champion"
CHALLENGER_ALIAS: Final = "challenger"

# Vector index ----------------------------------------------------------------------------
ITEM_EMBEDDINGS_ALIAS: Final = "item_embeddings"
"""Milvus alias that serving queries; it points at one versioned collection."""

# Embedded services -------------------------------------------------------------------------
KAFKA_SERVICE: Final = "kafka"
MILVUS_SERVICE: Final = "milvus"
MLFLOW_SERVICE: Final = "mlflow"
REDIS_SERVICE: Final = "redis"
"""The Redis online store of a Redis environment run locally (``services up redis``; local uses SQLite)."""

# Session features (speed layer, batch layer and request time compute them with
# lambdarec.features.session) ------------------------------------------------------------------
SESSION_FEATURE_VIEW: Final = "session_features"
SESSION_RECENT_ITEMS: Final = "session_recent_items"
SESSION_EVENT_COUNT: Final = "session_event_count"
SESSION_VIEW_COUNT: Final = "session_view_count"
SESSION_CART_COUNT: Final = "session_cart_count"
SESSION_PURCHASE_COUNT: Final = "session_purchase_count"
SESSION_DISTINCT_CATEGORIES: Final = "session_distinct_categories"
SESSION_START_MS: Final = "session_start_ms"
SESSION_LAST_EVENT_MS: Final = "session_last_event_ms"
SESSION_DWELL_S: Final = "session_dwell_s"
SESSION_PURCHASED_ITEMS: Final = "session_purchased_items"
"""Items bought in the session (its latest purchases, oldest first): the request path removes them."""
SESSION_FEATURES: Final = (
    SESSION_RECENT_ITEMS,
    SESSION_EVENT_COUNT,
    SESSION_VIEW_COUNT,
    SESSION_CART_COUNT,
    SESSION_PURCHASE_COUNT,
    SESSION_DISTINCT_CATEGORIES,
    SESSION_START_MS,
    SESSION_LAST_EVENT_MS,
    SESSION_DWELL_S,
    SESSION_PURCHASED_ITEMS,
)

# Speed layer ---------------------------------------------------------------------------------
USER_FEATURES_TOPIC: Final = "features.user"
"""Per-user features from the speed layer (recent items across sessions)."""
ITEM_FEATURES_TOPIC: Final = "features.item"
"""Per-item features from the speed layer (trending counts over a sliding window)."""
USER_RECENT_ITEMS: Final = "user_recent_items"
ITEM_TRENDING_COUNT: Final = "item_trending_10m"
STREAM_JOB_SERVICE: Final = "stream-job"
STREAM_PUSHER_SERVICE: Final = "stream-pusher"
RECOMMENDER_SERVICE: Final = "recommender"
STOREFRONT_SERVICE: Final = "storefront"
"""The demo shop page: browses the catalogue, publishes its clicks, shows the recommender's answers."""

# Batch layer + feature store ------------------------------------------------------------------
USER_HISTORY_FEATURE_VIEW: Final = "user_history"
ITEM_STATS_FEATURE_VIEW: Final = "item_stats"
ITEM_NEIGHBOURS_FEATURE_VIEW: Final = "item_neighbours"
USER_ITEM_FEATURE_VIEW: Final = "user_item_request"
"""On-demand view: features of a (user, item) pair at request time."""
SESSION_PUSH_SOURCE: Final = "session_push_source"
"""Push source the speed layer writes session features to (schema: lambdarec.features.session)."""
FEAST_PROJECT: Final = "lambdarec"

# Feature store: speed-layer views and request fields (appended by the feature-store work) -----
USER_STREAM_FEATURE_VIEW: Final = "user_stream_features"
"""Per-user features the speed layer pushes (``features.user``): recent items across sessions."""
ITEM_STREAM_FEATURE_VIEW: Final = "item_stream_features"
"""Per-item features the speed layer pushes (``features.item``): trending count of the latest window."""
USER_PUSH_SOURCE: Final = "user_push_source"
ITEM_PUSH_SOURCE: Final = "item_push_source"
ITEM_TRENDING_WINDOW_END_MS: Final = "window_end_ms"
"""End of the sliding window an ``features.item`` row counts (epoch ms): the row's event time online."""
REQUEST_TIME_MS: Final = "request_time_ms"
"""Request field of the ranking services' on-demand view: the moment of the request (epoch ms)."""

"""Feature views over the gold tables and the speed layer's push sources (session, user, item)."""

from datetime import timedelta

from data_sources import (
    item_neighbours_source,
    item_push_source,
    item_stats_source,
    session_push_source,
    user_history_source,
    user_push_source,
)
from entities import item, session, user
from feast import FeatureView, Field
from feast.types import Array, Float64, Int64, String

from lambdarec import names

user_history = FeatureView(
    name=names.USER_HISTORY_FEATURE_VIEW,
    entities=[user],
    ttl=timedelta(days=2),
    schema=[
        Field(name="user_events_30d", dtype=Int64),
        Field(name="user_views_30d", dtype=Int64),
        Field(name="user_carts_30d", dtype=Int64),
        Field(name="user_purchases_30d", dtype=Int64),
        Field(name="user_spend_30d", dtype=Float64),
        Field(name="user_distinct_items_30d", dtype=Int64),
        Field(name="user_visits_30d", dtype=Int64),
        Field(name="user_last_event_ms", dtype=Int64),
        Field(name="user_days_since_last_event", dtype=Float64),
        Field(name="user_top_categories", dtype=Array(String)),
        Field(name="user_recent_items_30d", dtype=Array(String)),
    ],
    source=user_history_source,
    online=True,
    description="A user's last 30 days, as of the end of each day.",
)

item_stats = FeatureView(
    name=names.ITEM_STATS_FEATURE_VIEW,
    entities=[item],
    ttl=timedelta(days=2),
    schema=[
        *[
            Field(name=f"item_{kind}_{days}d", dtype=Int64)
            for days in (1, 7, 30)
            for kind in ("views", "carts", "purchases", "popularity")
        ],
        Field(name="item_cart_rate_30d", dtype=Float64),
        Field(name="item_conversion_rate_30d", dtype=Float64),
        Field(name="item_price_mean_30d", dtype=Float64),
        Field(name="item_category", dtype=String),
        Field(name="item_brand", dtype=String),
    ],
    source=item_stats_source,
    online=True,
    description="Item counts, funnel rates and popularity over 1, 7 and 30 days.",
)

item_neighbours = FeatureView(
    name=names.ITEM_NEIGHBOURS_FEATURE_VIEW,
    entities=[item],
    ttl=timedelta(days=2),
    schema=[
        Field(name="copurchase_items", dtype=Array(String)),
        Field(name="copurchase_scores", dtype=Array(Float64)),
        Field(name="coview_items", dtype=Array(String)),
        Field(name="coview_scores", dtype=Array(Float64)),
    ],
    source=item_neighbours_source,
    online=True,
    description="Users who bought X also bought Y; viewed together in a visit (top 20, cosine).",
)

session_features = FeatureView(
    name=names.SESSION_FEATURE_VIEW,
    entities=[session],
    ttl=timedelta(hours=12),
    schema=[
        Field(name=names.SESSION_RECENT_ITEMS, dtype=Array(String)),
        Field(name=names.SESSION_EVENT_COUNT, dtype=Int64),
        Field(name=names.SESSION_VIEW_COUNT, dtype=Int64),
        Field(name=names.SESSION_CART_COUNT, dtype=Int64),
        Field(name=names.SESSION_PURCHASE_COUNT, dtype=Int64),
        Field(name=names.SESSION_DISTINCT_CATEGORIES, dtype=Int64),
        Field(name=names.SESSION_START_MS, dtype=Int64),
        Field(name=names.SESSION_LAST_EVENT_MS, dtype=Int64),
        Field(name=names.SESSION_DWELL_S, dtype=Float64),
        Field(name=names.SESSION_PURCHASED_ITEMS, dtype=Array(String)),
    ],
    source=session_push_source,
    online=True,
    description="Features of the current visit (speed layer pushes; batch backfills).",
)

user_stream_features = FeatureView(
    name=names.USER_STREAM_FEATURE_VIEW,
    entities=[user],
    ttl=timedelta(days=30),
    schema=[Field(name=names.USER_RECENT_ITEMS, dtype=Array(String))],
    source=user_push_source,
    online=True,
    description="A user's most recent items across visits (speed layer pushes; event time = newest event).",
)

item_stream_features = FeatureView(
    name=names.ITEM_STREAM_FEATURE_VIEW,
    entities=[item],
    ttl=timedelta(hours=1),
    schema=[Field(name=names.ITEM_TRENDING_COUNT, dtype=Int64)],
    source=item_push_source,
    online=True,
    description="Events on the item in the latest sliding window (speed layer pushes; event time = window end).",
)

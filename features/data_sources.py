"""Sources: gold Parquet tables of the batch layer (offline) and the push sources of the speed layer.

The user and item push sources have batch sources (Feast requires one) at gold tables the
batch layer does not write yet (``user_recent_items``, ``item_trending``): their views are
filled online by the pusher only, so no feature service includes them yet.

Each gold table is a folder of date partitions, so its format is named (``ParquetFormat``): Feast's
DuckDB offline store reads a source only by its format or a ``.parquet`` suffix.

The lake folder comes from ``LAMBDAREC_LAKE_DIR`` (``lambdarec features apply`` sets it from the
settings' state folder); by default ``.lambdarec/lake`` under the working directory.
"""

import os
from pathlib import Path

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from lambdarec import names


def _gold(table: str) -> str:
    lake = Path(os.environ.get("LAMBDAREC_LAKE_DIR", ".lambdarec/lake")).resolve()
    return str(lake / "gold" / table)


user_history_source = FileSource(
    name="user_history_source",
    path=_gold("user_history"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
    description="Daily 30-day history per user (gold.user_history).",
)
item_stats_source = FileSource(
    name="item_stats_source",
    path=_gold("item_stats"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
    description="Daily item counts, rates and popularity (gold.item_stats).",
)
item_neighbours_source = FileSource(
    name="item_neighbours_source",
    path=_gold("item_neighbours"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
    description="Daily co-purchase and co-view neighbours (gold.item_neighbours).",
)
session_batch_source = FileSource(
    name="session_batch_source",
    path=_gold("session_features"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
    description="Session features of past visits, folded by the batch layer (gold.session_features).",
)
session_push_source = PushSource(
    name=names.SESSION_PUSH_SOURCE,
    batch_source=session_batch_source,
    description="Session features pushed by the speed layer as events arrive.",
)

user_recent_items_source = FileSource(
    name="user_recent_items_source",
    path=_gold("user_recent_items"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
    description="Recent items per user (gold.user_recent_items: not written by the batch layer yet).",
)
user_push_source = PushSource(
    name=names.USER_PUSH_SOURCE,
    batch_source=user_recent_items_source,
    description="Per-user features pushed by the speed layer (features.user).",
)
item_trending_source = FileSource(
    name="item_trending_source",
    path=_gold("item_trending"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
    description="Trending counts per item and window (gold.item_trending: not written by the batch layer yet).",
)
item_push_source = PushSource(
    name=names.ITEM_PUSH_SOURCE,
    batch_source=item_trending_source,
    description="Per-item features pushed by the speed layer (features.item); event time = window end.",
)

"""Sources: gold Parquet tables of the batch layer (offline) and the push source of the speed layer.

The lake folder comes from ``LAMBDAREC_LAKE_DIR`` (``lambdarec features apply`` sets it from the
settings' state folder); by default ``.lambdarec/lake`` under the working directory.
"""

import os
from pathlib import Path

from feast import FileSource, PushSource

from lambdarec import names


def _gold(table: str) -> str:
    lake = Path(os.environ.get("LAMBDAREC_LAKE_DIR", ".lambdarec/lake")).resolve()
    return str(lake / "gold" / table)


user_history_source = FileSource(
    name="user_history_source",
    path=_gold("user_history"),
    timestamp_field="event_timestamp",
    description="Daily 30-day history per user (gold.user_history).",
)
item_stats_source = FileSource(
    name="item_stats_source",
    path=_gold("item_stats"),
    timestamp_field="event_timestamp",
    description="Daily item counts, rates and popularity (gold.item_stats).",
)
item_neighbours_source = FileSource(
    name="item_neighbours_source",
    path=_gold("item_neighbours"),
    timestamp_field="event_timestamp",
    description="Daily co-purchase and co-view neighbours (gold.item_neighbours).",
)
session_batch_source = FileSource(
    name="session_batch_source",
    path=_gold("session_features"),
    timestamp_field="event_timestamp",
    description="Session features of past visits, folded by the batch layer (gold.session_features).",
)
session_push_source = PushSource(
    name=names.SESSION_PUSH_SOURCE,
    batch_source=session_batch_source,
    description="Session features pushed by the speed layer as events arrive.",
)

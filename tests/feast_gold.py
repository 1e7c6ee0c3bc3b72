"""Tiny gold tables with the awkward cases, shared by the online-reader tests on SQLite and Redis."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

SNAPSHOT = datetime(2024, 3, 5, tzinfo=UTC)
NOW_MS = int(SNAPSHOT.timestamp() * 1000) + 3_600_000


def write_gold(lake: Path) -> None:
    """Tiny gold tables with the awkward cases: nulls, no purchases, zero spend, empty lists."""
    stamp = pd.Timestamp(SNAPSHOT)
    last_ms = int(SNAPSHOT.timestamp() * 1000) - 60_000
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4"],
            "user_events_30d": [10, 3, 1, 7],
            "user_views_30d": [8, 3, 1, 5],
            "user_carts_30d": [1, 0, 0, 1],
            "user_purchases_30d": [2, 0, 1, 1],
            "user_spend_30d": [40.0, 0.0, 0.0, None],
            "user_distinct_items_30d": [5, 2, 1, 3],
            "user_visits_30d": [2, 1, 1, 2],
            "user_last_event_ms": [last_ms, last_ms - 5, None, last_ms],
            "user_days_since_last_event": [0.5, 1.5, None, 0.1],
            "user_top_categories": [["c1", "c2"], [], None, ["c3"]],
            "user_recent_items_30d": [["i1", "i2"], [], None, ["i3"]],
            "event_timestamp": stamp,
        }
    )
    items: dict[str, list[object]] = {"item_id": ["i1", "i2", "i3"]}
    for days in (1, 7, 30):
        for kind in ("views", "carts", "purchases", "popularity"):
            items[f"item_{kind}_{days}d"] = [days, 0, days * 3]
    items |= {
        "item_cart_rate_30d": [0.25, None, 0.5],
        "item_conversion_rate_30d": [0.1, 0.0, 0.05],
        "item_price_mean_30d": [20.0, 0.0, None],
        "item_category": ["c1", "c3", None],
        "item_brand": ["b1", None, "b2"],
        "event_timestamp": [stamp] * 3,
    }
    for table, frame in (("user_history", users), ("item_stats", pd.DataFrame(items))):
        folder = lake / "gold" / table / f"date={(SNAPSHOT - timedelta(days=1)).date()}"
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "part-0.parquet", index=False)


CASES = [  # (user, candidate items) read by the reader tests
    ("u1", ["i1", "i2", "i3"]),
    ("u2", ["i2", "i1", "i2", "nope"]),  # duplicates and an unknown item
    ("u3", ["i3", "i1", "i2"]),  # nulls, a zero ticket (inf) and 0/0
    ("u4", ["i1", "i3"]),
    ("ghost", ["i1", "ghost-item"]),  # unknown user
]


def online_cells(settings: Any, views: Iterable[str]) -> dict[str, list[tuple[object, ...]]]:
    """Each view's cells in the state's SQLite online store, in key order (every column Feast writes)."""
    import sqlite3

    from lambdarec.featurestore.sqlite_layout import sqlite_table
    from lambdarec.featurestore.store import feast_dir, open_store

    store = open_store(settings)
    connection = sqlite3.connect(feast_dir(settings) / "online.db")
    try:
        return {
            view: connection.execute(
                "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                f"FROM {sqlite_table(store.config, store.get_feature_view(view))} ORDER BY entity_key, feature_name"
            ).fetchall()
            for view in views
        }
    finally:
        connection.close()

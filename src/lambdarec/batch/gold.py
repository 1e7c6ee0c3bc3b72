"""Gold: daily feature snapshots over the last 30 days of silver, for one date.

Tables (each under ``gold/<table>/date=YYYY-MM-DD``, stamped with :func:`snapshot_time`):

- ``user_history``: per user, counts per event type, spend, recency, distinct items, visits and
  the top categories over 30 days;
- ``item_stats``: per item, views/carts/purchases and popularity over 1, 7 and 30 days, cart and
  conversion rates, mean price and category;
- ``item_neighbours``: "users who bought X also bought Y" (co-purchase, by buyer over 30 days) and
  co-view (within a visit) — top-K neighbours per item with cosine scores;
- ``session_features``: the features of each visit of the date (a visit that crossed midnight
  with all its events), from the shared session fold (the offline side of the
  ``session_push_source``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lambdarec import names
from lambdarec.batch.lake import DAY_MS, Lake, parse_date, snapshot_time, write_json_atomic
from lambdarec.batch.sessions import (
    EVENT_TIMESTAMP,
    FOLD_COLUMNS,
    SESSION_KEY,
    session_feature_frame,
    sessionize,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

USER_HISTORY = "user_history"
ITEM_STATS = "item_stats"
ITEM_NEIGHBOURS = "item_neighbours"
SESSION_FEATURES = "session_features"
GOLD_TABLES = (USER_HISTORY, ITEM_STATS, ITEM_NEIGHBOURS, SESSION_FEATURES)

HISTORY_DAYS = 30
TOP_CATEGORIES = 3
NEIGHBOURS_K = 20
MAX_BASKET = 50
"""Distinct items per buyer (or visit) that enter the pair count: bounds the quadratic blow-up."""


@dataclass
class GoldReport:
    """What the gold stage wrote for one date."""

    date: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _count_if(condition: Column) -> Column:
    from pyspark.sql import functions as F

    return F.sum(F.when(condition, 1).otherwise(0))


def user_history(events: DataFrame, snapshot_ms: int) -> DataFrame:
    """Per-user 30-day history (``events`` already limited to the window)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    known = events.where(F.col(names.USER_ID).isNotNull())
    kind = F.col("event_type")
    base = known.groupBy(names.USER_ID).agg(
        F.count("*").alias("user_events_30d"),
        _count_if(kind == "view").alias("user_views_30d"),
        _count_if(kind == "cart").alias("user_carts_30d"),
        _count_if(kind == "purchase").alias("user_purchases_30d"),
        F.coalesce(F.sum(F.when(kind == "purchase", F.col("price"))), F.lit(0.0)).alias("user_spend_30d"),
        F.countDistinct(names.ITEM_ID).alias("user_distinct_items_30d"),
        F.countDistinct(SESSION_KEY).alias("user_visits_30d"),
        F.max("event_time").alias("user_last_event_ms"),
    )
    base = base.withColumn(
        "user_days_since_last_event", (F.lit(snapshot_ms) - F.col("user_last_event_ms")) / F.lit(DAY_MS)
    )
    per_category = known.where(F.col("category").isNotNull()).groupBy(names.USER_ID, "category").count()
    rank = Window.partitionBy(names.USER_ID).orderBy(F.desc("count"), F.asc("category"))
    top = (
        per_category.withColumn("rank", F.row_number().over(rank))
        .where(F.col("rank") <= TOP_CATEGORIES)
        .groupBy(names.USER_ID)
        .agg(F.array_sort(F.collect_list(F.struct("rank", "category"))).alias("ranked"))
        .select(names.USER_ID, F.transform("ranked", lambda s: s["category"]).alias("user_top_categories"))
    )
    return base.join(top, names.USER_ID, "left").withColumn(
        "user_top_categories", F.coalesce(F.col("user_top_categories"), F.array().cast("array<string>"))
    )


def item_stats(events: DataFrame, snapshot_ms: int) -> DataFrame:
    """Per-item counts, rates and popularity over 1, 7 and 30 days."""
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    aggs = []
    for days in (1, 7, 30):
        recent = F.col("event_time") >= snapshot_ms - days * DAY_MS
        aggs += [
            _count_if(recent & (kind == "view")).alias(f"item_views_{days}d"),
            _count_if(recent & (kind == "cart")).alias(f"item_carts_{days}d"),
            _count_if(recent & (kind == "purchase")).alias(f"item_purchases_{days}d"),
            _count_if(recent).alias(f"item_popularity_{days}d"),
        ]
    stats = events.groupBy(names.ITEM_ID).agg(
        *aggs,
        F.avg("price").alias("item_price_mean_30d"),
        F.max_by("category", "event_time").alias("item_category"),
    )
    views = F.greatest(F.col("item_views_30d"), F.lit(1))
    return stats.withColumn("item_cart_rate_30d", F.col("item_carts_30d") / views).withColumn(
        "item_conversion_rate_30d", F.col("item_purchases_30d") / views
    )


def co_occurrence(baskets: DataFrame, basket_col: str, k: int = NEIGHBOURS_K) -> DataFrame:
    """Top-``k`` neighbours per item from baskets of distinct items, scored by cosine.

    Args:
        baskets: Rows ``(basket_col, item_id, event_time)``; a basket is a buyer or a visit.
        basket_col: The basket column.
        k: Neighbours kept per item.

    Returns:
        ``item_id, neighbours (array<string>), scores (array<double>)``, best first; score =
        baskets with both / sqrt(baskets with X * baskets with Y).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    distinct = baskets.groupBy(basket_col, names.ITEM_ID).agg(F.max("event_time").alias("t"))
    latest = Window.partitionBy(basket_col).orderBy(F.desc("t"), F.asc(names.ITEM_ID))
    capped = distinct.withColumn("r", F.row_number().over(latest)).where(F.col("r") <= MAX_BASKET)
    left = capped.select(basket_col, F.col(names.ITEM_ID).alias("a"))
    right = capped.select(basket_col, F.col(names.ITEM_ID).alias("b"))
    pairs = left.join(right, basket_col).where(F.col("a") != F.col("b")).groupBy("a", "b").count()
    support = capped.groupBy(names.ITEM_ID).count()
    scored = (
        pairs.join(support.select(F.col(names.ITEM_ID).alias("a"), F.col("count").alias("na")), "a")
        .join(support.select(F.col(names.ITEM_ID).alias("b"), F.col("count").alias("nb")), "b")
        .withColumn("score", F.col("count") / F.sqrt(F.col("na") * F.col("nb")))
    )
    best = Window.partitionBy("a").orderBy(F.desc("score"), F.desc("count"), F.asc("b"))
    return (
        scored.withColumn("rank", F.row_number().over(best))
        .where(F.col("rank") <= k)
        .groupBy("a")
        .agg(F.array_sort(F.collect_list(F.struct("rank", "b", "score"))).alias("ranked"))
        .select(
            F.col("a").alias(names.ITEM_ID),
            F.transform("ranked", lambda s: s["b"]).alias("neighbours"),
            F.transform("ranked", lambda s: F.round(s["score"], 6)).alias("scores"),
        )
    )


def item_neighbours(events: DataFrame, k: int = NEIGHBOURS_K) -> DataFrame:
    """Co-purchase (by buyer: user, or the visit when anonymous) and co-view (by visit) neighbours."""
    from pyspark.sql import functions as F

    buyer = F.coalesce(F.concat(F.lit("u:"), names.USER_ID), F.concat(F.lit("s:"), SESSION_KEY))
    bought = events.where(F.col("event_type") == "purchase").select(buyer.alias("basket"), names.ITEM_ID, "event_time")
    viewed = events.where(F.col("event_type") == "view").select(
        F.col(SESSION_KEY).alias("basket"), names.ITEM_ID, "event_time"
    )
    purchase = co_occurrence(bought, "basket", k).select(
        names.ITEM_ID, F.col("neighbours").alias("copurchase_items"), F.col("scores").alias("copurchase_scores")
    )
    view = co_occurrence(viewed, "basket", k).select(
        names.ITEM_ID, F.col("neighbours").alias("coview_items"), F.col("scores").alias("coview_scores")
    )
    empty_s, empty_d = F.array().cast("array<string>"), F.array().cast("array<double>")
    return purchase.join(view, names.ITEM_ID, "full").select(
        names.ITEM_ID,
        F.coalesce("copurchase_items", empty_s).alias("copurchase_items"),
        F.coalesce("copurchase_scores", empty_d).alias("copurchase_scores"),
        F.coalesce("coview_items", empty_s).alias("coview_items"),
        F.coalesce("coview_scores", empty_d).alias("coview_scores"),
    )


def session_features(events: DataFrame, day: str) -> DataFrame:
    """Features of every visit with an event on ``day``, folded by :func:`lambdarec.features.session.fold_session`.

    Args:
        events: Silver events of ``day`` and of the day before (more is filtered out).
        day: The snapshot date (``YYYY-MM-DD``).

    Returns:
        One row per visit (:data:`lambdarec.batch.sessions.SESSION_FEATURE_COLUMNS`); a visit that
        started the day before and crossed midnight is folded over all its events, as the speed
        layer folds it.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    schema = (
        f"{names.SESSION_ID} string, {names.SESSION_RECENT_ITEMS} array<string>, "
        f"{names.SESSION_EVENT_COUNT} long, {names.SESSION_VIEW_COUNT} long, {names.SESSION_CART_COUNT} long, "
        f"{names.SESSION_PURCHASE_COUNT} long, {names.SESSION_DISTINCT_CATEGORIES} long, "
        f"{names.SESSION_START_MS} long, {names.SESSION_LAST_EVENT_MS} long, {names.SESSION_DWELL_S} double, "
        f"{EVENT_TIMESTAMP} timestamp"
    )
    end = parse_date(day)
    dates = [F.lit((end - timedelta(days=1)).isoformat()).cast("date"), F.lit(end.isoformat()).cast("date")]
    two_days = events.where(F.col("event_date").isin(dates)).select(
        "event_id", "event_time", names.SESSION_ID, names.ITEM_ID, "event_type", "category", "event_date"
    )
    # Renumbered over exactly these two days, as silver numbered ``day``: the keys of ``day``'s
    # events are silver's, and the previous day's part of a visit crossing midnight joins them.
    visits = sessionize(two_days).withColumn(
        "_reaches_day", F.max(F.col("event_date") == dates[1]).over(Window.partitionBy(names.SESSION_ID, SESSION_KEY))
    )
    # Many visits per pandas call (one call per visit made the per-call overhead dominate), and
    # only the columns the fold reads cross to Python.
    buckets = max(8, 4 * int(events.sparkSession.conf.get("spark.sql.shuffle.partitions") or "8"))
    return (
        visits.where(F.col("_reaches_day"))
        .select(*FOLD_COLUMNS, F.pmod(F.xxhash64(SESSION_KEY), F.lit(buckets)).alias("_bucket"))
        .groupBy("_bucket")
        .applyInPandas(session_feature_frame, schema=schema)
    )


def build_gold(spark: SparkSession, lake: Lake, day: str, *, k: int = NEIGHBOURS_K) -> GoldReport:
    """Write the gold snapshots of ``day`` (idempotent: each replaces its ``date=`` partition).

    Args:
        spark: The session.
        lake: Where silver is read and gold written.
        day: The snapshot date; the window is the 30 days ending with it.
        k: Neighbours per item.

    Returns:
        Row counts per table (also written under ``_reports/gold``).
    """
    from pyspark.sql import functions as F

    started = time.monotonic()
    end = parse_date(day)
    first = end - timedelta(days=HISTORY_DAYS - 1)
    snapshot = snapshot_time(end)
    snapshot_ms = int(snapshot.timestamp() * 1000)
    silver = spark.read.option("basePath", str(lake.silver)).parquet(str(lake.silver))
    window = silver.where(
        (F.col("event_date") >= F.lit(first.isoformat()).cast("date"))
        & (F.col("event_date") <= F.lit(end.isoformat()).cast("date"))
    ).persist()
    stamp = F.lit(snapshot).cast("timestamp").alias(EVENT_TIMESTAMP)
    tables = {
        USER_HISTORY: user_history(window, snapshot_ms).select("*", stamp),
        ITEM_STATS: item_stats(window, snapshot_ms).select("*", stamp),
        ITEM_NEIGHBOURS: item_neighbours(window, k).select("*", stamp),
        SESSION_FEATURES: session_features(window, end.isoformat()),
    }
    report = GoldReport(date=end.isoformat())
    for table, frame in tables.items():
        target = lake.gold(table) / f"date={end.isoformat()}"
        frame.coalesce(2).write.mode("overwrite").parquet(str(target))
        report.rows[table] = spark.read.parquet(str(target)).count()
    window.unpersist()
    report.seconds = time.monotonic() - started
    write_json_atomic(lake.report("gold", end.isoformat()), report.to_dict())
    return report

"""Gold: daily feature snapshots over the last 30 days of silver, for one or many dates in one pass.

Tables (each under ``gold/<table>/date=YYYY-MM-DD``):

- ``user_history``: per user, counts per event type, spend, recency, distinct items, sessions,
  the top categories and the latest 30 distinct items over 30 days;
- ``item_stats``: per item, views/carts/purchases and popularity over 1, 7 and 30 days, cart and
  conversion rates, mean price, category and brand;
- ``item_neighbours``: "users who bought X also bought Y" (co-purchase, by buyer over 30 days) and
  co-view (a session's views of one date are a basket) — top-K neighbours per item with cosine
  scores. Co-view counts are kept per event date (``coview_daily``, an internal table) and summed
  over each window, so a nightly run counts one new date, not 30 (:func:`refresh_coview_daily`);
- ``session_features``: point-in-time snapshots of the sessions active on the date — one row per
  event of the date with the session's features after it (the session's events of the date and
  the day before folded by the shared session fold), stamped with that event's time. The offline
  side of the ``session_push_source``.

The first three are stamped with :func:`~lambdarec.batch.lake.snapshot_time` (00:00 UTC of the
next day). :func:`build_gold_range` computes several dates in one Spark job: each event is joined
to the snapshot dates whose window holds it, and every aggregate is grouped by the snapshot date
too, so a date's output is the same whatever else is built with it (:func:`build_gold` is the
range of one date).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lambdarec import names
from lambdarec.batch.lake import DAY_MS, Lake, date_range, parse_date, read_json, write_json_atomic
from lambdarec.batch.sessions import (
    EVENT_TIMESTAMP,
    FOLD_COLUMNS,
    SNAPSHOT_DATE,
    session_prefix_frame,
)
from lambdarec.features.session import SESSION_KEY

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

USER_HISTORY = "user_history"
ITEM_STATS = "item_stats"
ITEM_NEIGHBOURS = "item_neighbours"
SESSION_FEATURES = "session_features"
GOLD_TABLES = (USER_HISTORY, ITEM_STATS, ITEM_NEIGHBOURS, SESSION_FEATURES)
COVIEW_DAILY = "coview_daily"
"""Per event date, co-view pair counts (an internal table: item_neighbours sums 30 of them)."""

HISTORY_DAYS = 30
TOP_CATEGORIES = 3
RECENT_USER_ITEMS = 30
"""Distinct items in ``user_recent_items_30d`` (each at its latest occurrence, newest last)."""
NEIGHBOURS_K = 20
MAX_BASKET = 50
"""Distinct items per buyer (or session) that enter the pair count: bounds the quadratic blow-up."""
SNAPSHOT_MS = "_snapshot_ms"
"""Epoch ms of a row's snapshot time (00:00 UTC after its snapshot date); internal column."""


@dataclass
class GoldReport:
    """What the gold stage wrote for one date."""

    date: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    table_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per table's job (shared by the dates of a range): where gold's time goes."""
    coview_dates_counted: int = 0
    """Event dates whose daily co-view counts this run (re)counted; the rest were reused."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _count_if(condition: Column) -> Column:
    from pyspark.sql import functions as F

    return F.sum(F.when(condition, 1).otherwise(0))


def _snapshot_ms(date_col: str = SNAPSHOT_DATE) -> Column:
    """Epoch ms of 00:00 UTC after the snapshot date (from the day number: no time zone involved)."""
    from pyspark.sql import functions as F

    return (F.unix_date(F.to_date(F.col(date_col))) + F.lit(1)).cast("long") * F.lit(DAY_MS)


def user_history(events: DataFrame) -> DataFrame:
    """Per-user 30-day history per snapshot date.

    Args:
        events: Silver events tagged with the snapshot date whose window holds them
            (:data:`SNAPSHOT_DATE`, :data:`SNAPSHOT_MS`); an event appears once per such date.

    Returns:
        One row per (snapshot date, user).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by = [SNAPSHOT_DATE, names.USER_ID]
    known = events.where(F.col(names.USER_ID).isNotNull())
    kind = F.col("event_type")
    base = known.groupBy(*by).agg(
        F.count("*").alias("user_events_30d"),
        _count_if(kind == "view").alias("user_views_30d"),
        _count_if(kind == "cart").alias("user_carts_30d"),
        _count_if(kind == "purchase").alias("user_purchases_30d"),
        F.coalesce(F.sum(F.when(kind == "purchase", F.col("price"))), F.lit(0.0)).alias("user_spend_30d"),
        F.countDistinct(names.ITEM_ID).alias("user_distinct_items_30d"),
        # The name predates the one-key rule: it counts the user's sessions (shop session ids).
        F.countDistinct(SESSION_KEY).alias("user_visits_30d"),
        F.max("event_time").alias("user_last_event_ms"),
        F.first(SNAPSHOT_MS).alias(SNAPSHOT_MS),
    )
    base = base.withColumn(
        "user_days_since_last_event", (F.col(SNAPSHOT_MS) - F.col("user_last_event_ms")) / F.lit(DAY_MS)
    ).drop(SNAPSHOT_MS)
    per_category = known.where(F.col("category").isNotNull()).groupBy(*by, "category").count()
    rank = Window.partitionBy(*by).orderBy(F.desc("count"), F.asc("category"))
    top = (
        per_category.withColumn("rank", F.row_number().over(rank))
        .where(F.col("rank") <= TOP_CATEGORIES)
        .groupBy(*by)
        .agg(F.array_sort(F.collect_list(F.struct("rank", "category"))).alias("ranked"))
        .select(*by, F.transform("ranked", lambda s: s["category"]).alias("user_top_categories"))
    )
    # Each item at its latest occurrence, (time, id) breaking ties, so the list is deterministic.
    latest = known.groupBy(*by, names.ITEM_ID).agg(F.max(F.struct("event_time", "event_id")).alias("last"))
    newest_first = Window.partitionBy(*by).orderBy(F.desc("last"))
    recent = (
        latest.withColumn("rank", F.row_number().over(newest_first))
        .where(F.col("rank") <= RECENT_USER_ITEMS)
        .groupBy(*by)
        .agg(F.array_sort(F.collect_list(F.struct("last", names.ITEM_ID))).alias("ordered"))
        .select(*by, F.transform("ordered", lambda s: s[names.ITEM_ID]).alias("user_recent_items_30d"))
    )
    empty = F.array().cast("array<string>")
    return (
        base.join(top, by, "left")
        .join(recent, by, "left")
        .withColumn("user_top_categories", F.coalesce(F.col("user_top_categories"), empty))
        .withColumn("user_recent_items_30d", F.coalesce(F.col("user_recent_items_30d"), empty))
    )


def item_stats(events: DataFrame) -> DataFrame:
    """Per-item counts, rates and popularity over 1, 7 and 30 days, per snapshot date.

    Args:
        events: As for :func:`user_history`.

    Returns:
        One row per (snapshot date, item).
    """
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    aggs = []
    for days in (1, 7, 30):
        recent = F.col("event_time") >= F.col(SNAPSHOT_MS) - days * DAY_MS
        aggs += [
            _count_if(recent & (kind == "view")).alias(f"item_views_{days}d"),
            _count_if(recent & (kind == "cart")).alias(f"item_carts_{days}d"),
            _count_if(recent & (kind == "purchase")).alias(f"item_purchases_{days}d"),
            _count_if(recent).alias(f"item_popularity_{days}d"),
        ]
    # The latest event (ties by event_id, so reruns agree) names the category and the brand;
    # the brand only among events that carry one.
    latest = F.struct("event_time", "event_id")
    stats = events.groupBy(SNAPSHOT_DATE, names.ITEM_ID).agg(
        *aggs,
        F.avg("price").alias("item_price_mean_30d"),
        F.max_by("category", latest).alias("item_category"),
        F.max_by("brand", F.when(F.col("brand").isNotNull(), latest)).alias("item_brand"),
    )
    views = F.greatest(F.col("item_views_30d"), F.lit(1))
    return stats.withColumn("item_cart_rate_30d", F.col("item_carts_30d") / views).withColumn(
        "item_conversion_rate_30d", F.col("item_purchases_30d") / views
    )


def co_occurrence(baskets: DataFrame, basket_col: str, k: int = NEIGHBOURS_K) -> DataFrame:
    """Top-``k`` neighbours per item from baskets of distinct items, scored by cosine, per snapshot date.

    Args:
        baskets: Rows ``(snapshot date, basket_col, item_id, event_time)``; a basket is a buyer or
            a session.
        basket_col: The basket column.
        k: Neighbours kept per item.

    Returns:
        ``date, item_id, neighbours (array<string>), scores (array<double>)``, best first; score =
        baskets with both / sqrt(baskets with X * baskets with Y).
    """
    half, support = pair_counts(baskets, basket_col)
    return top_neighbours(half, support, k)


def pair_counts(baskets: DataFrame, basket_col: str) -> tuple[DataFrame, DataFrame]:
    """Baskets holding each unordered pair of items, and each item, per snapshot date.

    A basket counts its latest :data:`MAX_BASKET` distinct items (time desc, then id asc).

    Args:
        baskets: As for :func:`co_occurrence`.
        basket_col: The basket column.

    Returns:
        ``(pairs, support)``: ``date, a, b, count`` with ``a < b``, and ``date, item_id, count``.
        Counts over disjoint sets of baskets add up, which is what :func:`coview_daily` relies on.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    basket = [SNAPSHOT_DATE, basket_col]
    distinct = baskets.groupBy(*basket, names.ITEM_ID).agg(F.max("event_time").alias("t"))
    latest = Window.partitionBy(*basket).orderBy(F.desc("t"), F.asc(names.ITEM_ID))
    capped = distinct.withColumn("r", F.row_number().over(latest)).where(F.col("r") <= MAX_BASKET)
    # Each unordered pair once per basket (a < b), from the basket's sorted item list: no self-join of
    # the baskets, and half the rows through the count and the support joins; mirrored afterwards
    # (top_neighbours), which gives what counting both orders gives (the same count, hence the same
    # score, for (a, b) and (b, a)).
    lists = capped.groupBy(*basket).agg(F.array_sort(F.collect_list(names.ITEM_ID)).alias("items"))
    after = F.transform(
        "items",
        lambda a, i: F.transform(
            F.slice("items", i + 2, F.size("items")), lambda b: F.struct(a.alias("a"), b.alias("b"))
        ),
    )
    half = (
        lists.select(SNAPSHOT_DATE, F.explode(F.flatten(after)).alias("pair"))
        .select(SNAPSHOT_DATE, F.col("pair.a").alias("a"), F.col("pair.b").alias("b"))
        .groupBy(SNAPSHOT_DATE, "a", "b")
        .count()
    )
    support = capped.groupBy(SNAPSHOT_DATE, names.ITEM_ID).count()
    return half, support


def top_neighbours(half: DataFrame, support: DataFrame, k: int = NEIGHBOURS_K) -> DataFrame:
    """The ``k`` best neighbours per item from :func:`pair_counts`' output, scored by cosine.

    Args:
        half: ``date, a, b, count`` with ``a < b``.
        support: ``date, item_id, count``.
        k: Neighbours kept per item.

    Returns:
        As :func:`co_occurrence`.
    """
    from pyspark.sql import functions as F

    scored_half = (
        half.join(
            support.select(SNAPSHOT_DATE, F.col(names.ITEM_ID).alias("a"), F.col("count").alias("na")),
            [SNAPSHOT_DATE, "a"],
        )
        .join(
            support.select(SNAPSHOT_DATE, F.col(names.ITEM_ID).alias("b"), F.col("count").alias("nb")),
            [SNAPSHOT_DATE, "b"],
        )
        .withColumn("score", F.col("count") / F.sqrt(F.col("na") * F.col("nb")))
    )
    # sqrt(na * nb) == sqrt(nb * na) exactly (a product of integers), so both orders score alike.
    both = F.array(
        F.struct(F.col("a").alias("x"), F.col("b").alias("y")), F.struct(F.col("b").alias("x"), F.col("a").alias("y"))
    )
    scored = scored_half.select(SNAPSHOT_DATE, "count", "score", F.explode(both).alias("o")).select(
        SNAPSHOT_DATE, F.col("o.x").alias("a"), F.col("o.y").alias("b"), "count", "score"
    )
    # The k best per item by (score desc, count desc, b asc): one sorted list per item, no window sort.
    ordered = F.array_sort(F.collect_list(F.struct((-F.col("score")).alias("s"), (-F.col("count")).alias("c"), "b")))
    return (
        scored.groupBy(SNAPSHOT_DATE, "a")
        .agg(F.slice(ordered, 1, k).alias("best"))
        .select(
            SNAPSHOT_DATE,
            F.col("a").alias(names.ITEM_ID),
            F.transform("best", lambda s: s["b"]).alias("neighbours"),
            F.transform("best", lambda s: F.round(-s["s"], 6)).alias("scores"),
        )
    )


def coview_daily(events: DataFrame) -> DataFrame:
    """Co-view counts of each event date: every session's views of the date are one basket.

    Args:
        events: Silver events (any dates).

    Returns:
        ``date`` (the event date, string), ``a``, ``b``, ``n``: for ``b`` set, the baskets of the date
        holding both ``a < b``; for ``b`` null, the baskets holding ``a``. A window's co-view counts
        are the sums of its dates' rows (:func:`coview_neighbours`), so a nightly run counts one new
        date instead of 30.
    """
    from pyspark.sql import functions as F

    views = events.where(F.col("event_type") == "view").select(
        F.col("event_date").cast("string").alias(SNAPSHOT_DATE),
        F.col(SESSION_KEY).alias("basket"),
        names.ITEM_ID,
        "event_time",
    )
    half, support = pair_counts(views, "basket")
    return half.select(SNAPSHOT_DATE, "a", "b", F.col("count").alias("n")).unionByName(
        support.select(
            SNAPSHOT_DATE,
            F.col(names.ITEM_ID).alias("a"),
            F.lit(None).cast("string").alias("b"),
            F.col("count").alias("n"),
        )
    )


def coview_neighbours(daily: DataFrame, snapshots: DataFrame, k: int = NEIGHBOURS_K) -> DataFrame:
    """Co-view neighbours per snapshot date from the daily counts of its 30-day window.

    Args:
        daily: :func:`coview_daily` rows with their date as ``event_date`` (a date).
        snapshots: The snapshot dates (see :func:`_snapshots`).
        k: Neighbours per item.

    Returns:
        As :func:`co_occurrence`.
    """
    from pyspark.sql import functions as F

    summed = _in_windows(daily, snapshots).groupBy(SNAPSHOT_DATE, "a", "b").agg(F.sum("n").alias("count"))
    half = summed.where(F.col("b").isNotNull())
    support = summed.where(F.col("b").isNull()).select(SNAPSHOT_DATE, F.col("a").alias(names.ITEM_ID), "count")
    return top_neighbours(half, support, k)


def item_neighbours(events: DataFrame, snapshots: DataFrame, coview: DataFrame, k: int = NEIGHBOURS_K) -> DataFrame:
    """Co-purchase (by buyer: user, or the session when anonymous) and co-view (by session and date) neighbours.

    Args:
        events: Silver events of the windows (untagged: a basket's items are reduced to one row
            per date before they are joined to the snapshot dates, which keeps that join small).
        snapshots: The snapshot dates (see :func:`_snapshots`).
        coview: The windows' :func:`coview_daily` rows, their date as ``event_date``.
        k: Neighbours per item.

    Returns:
        One row per (snapshot date, item) with co-purchase and co-view neighbours.
    """
    from pyspark.sql import functions as F

    buyer = F.coalesce(F.concat(F.lit("u:"), names.USER_ID), F.concat(F.lit("s:"), SESSION_KEY))

    def baskets(kind: str, basket: Column) -> DataFrame:
        daily = (
            events.where(F.col("event_type") == kind)
            .groupBy(basket.alias("basket"), names.ITEM_ID, "event_date")
            .agg(F.max("event_time").alias("event_time"))
        )
        return _in_windows(daily, snapshots)

    purchase = co_occurrence(baskets("purchase", buyer), "basket", k).select(
        SNAPSHOT_DATE,
        names.ITEM_ID,
        F.col("neighbours").alias("copurchase_items"),
        F.col("scores").alias("copurchase_scores"),
    )
    view = coview_neighbours(coview, snapshots, k).select(
        SNAPSHOT_DATE, names.ITEM_ID, F.col("neighbours").alias("coview_items"), F.col("scores").alias("coview_scores")
    )
    empty_s, empty_d = F.array().cast("array<string>"), F.array().cast("array<double>")
    return purchase.join(view, [SNAPSHOT_DATE, names.ITEM_ID], "full").select(
        SNAPSHOT_DATE,
        names.ITEM_ID,
        F.coalesce("copurchase_items", empty_s).alias("copurchase_items"),
        F.coalesce("copurchase_scores", empty_d).alias("copurchase_scores"),
        F.coalesce("coview_items", empty_s).alias("coview_items"),
        F.coalesce("coview_scores", empty_d).alias("coview_scores"),
    )


def session_features(events: DataFrame, snapshots: DataFrame) -> DataFrame:
    """Prefix snapshots of the sessions active on each snapshot date, by the shared session fold.

    Args:
        events: Silver events (those of each snapshot date and the day before are used).
        snapshots: The snapshot dates (see :func:`_snapshots`).

    Returns:
        Per snapshot date, one row per (session, distinct event time of the date) with the
        session's features after that time
        (:func:`lambdarec.features.session.session_prefix_rows`), over the session's events of the
        date and of the day before; columns :data:`SESSION_FEATURE_COLUMNS` and the date.
    """
    from pyspark.sql import functions as F

    schema = (
        f"{names.SESSION_ID} string, {names.SESSION_RECENT_ITEMS} array<string>, "
        f"{names.SESSION_EVENT_COUNT} long, {names.SESSION_VIEW_COUNT} long, {names.SESSION_CART_COUNT} long, "
        f"{names.SESSION_PURCHASE_COUNT} long, {names.SESSION_DISTINCT_CATEGORIES} long, "
        f"{names.SESSION_START_MS} long, {names.SESSION_LAST_EVENT_MS} long, {names.SESSION_DWELL_S} double, "
        f"{names.SESSION_PURCHASED_ITEMS} array<string>, {EVENT_TIMESTAMP} timestamp, {SNAPSHOT_DATE} string"
    )
    end = F.col("_end")
    # Each event serves its own date's snapshot and, as prior state, the next date's.
    tagged = events.select(*FOLD_COLUMNS, "event_date").join(
        F.broadcast(snapshots.select(SNAPSHOT_DATE, "_end")),
        (F.col("event_date") == end) | (F.col("event_date") == F.date_sub(end, 1)),
    )
    # Many sessions per pandas call (one call per session made the per-call overhead dominate),
    # and only the columns the fold reads cross to Python.
    buckets = max(8, 4 * int(events.sparkSession.conf.get("spark.sql.shuffle.partitions") or "8"))
    return (
        tagged.select(
            *FOLD_COLUMNS,
            SNAPSHOT_DATE,
            F.pmod(F.xxhash64(SNAPSHOT_DATE, SESSION_KEY), F.lit(buckets)).alias("_bucket"),
        )
        .groupBy("_bucket")
        .applyInPandas(session_prefix_frame, schema=schema)
    )


def _snapshots(spark: SparkSession, days: Sequence[str]) -> DataFrame:
    """The snapshot dates as a small frame: the date (string), its window's ``_start`` and ``_end``
    (dates) and :data:`SNAPSHOT_MS`."""
    from pyspark.sql import functions as F

    frame = spark.createDataFrame([(d,) for d in days], f"{SNAPSHOT_DATE} string")
    end = F.to_date(F.col(SNAPSHOT_DATE))
    return frame.select(
        SNAPSHOT_DATE,
        F.date_sub(end, HISTORY_DAYS - 1).alias("_start"),
        end.alias("_end"),
        _snapshot_ms().alias(SNAPSHOT_MS),
    )


def _in_windows(events: DataFrame, snapshots: DataFrame) -> DataFrame:
    """``events`` (with ``event_date``) repeated once per snapshot date whose 30-day window holds them."""
    from pyspark.sql import functions as F

    inside = (F.col("event_date") >= F.col("_start")) & (F.col("event_date") <= F.col("_end"))
    return events.join(F.broadcast(snapshots), inside).drop("_start", "_end")


def _write(frame: DataFrame, lake: Lake, table: str, days: Sequence[str]) -> dict[str, int]:
    """Replace the ``date=`` partitions of ``days`` in one table; rows written per date."""
    from pyspark.sql import functions as F

    root = lake.gold(table)
    for day in days:
        stale = root / f"{SNAPSHOT_DATE}={day}"
        if stale.exists():  # a rerun replaces the date, even when nothing is left to write
            shutil.rmtree(stale)
    # One file per date; "dynamic" so that only the dates written are replaced, whatever the
    # session's default overwrite mode (a static overwrite would wipe the other dates).
    (
        frame.repartition(SNAPSHOT_DATE)
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(SNAPSHOT_DATE)
        .parquet(str(root))
    )
    counts = dict.fromkeys(days, 0)
    spark = frame.sparkSession
    written = [d for d in days if (root / f"{SNAPSHOT_DATE}={d}").exists()]
    if written:
        read = spark.read.option("basePath", str(root)).parquet(*[str(root / f"{SNAPSHOT_DATE}={d}") for d in written])
        rows = read.groupBy(F.col(SNAPSHOT_DATE).cast("string").alias("d")).count().collect()
        counts.update({str(r["d"]): int(r["count"]) for r in rows})
    for day in sorted(set(days) - set(written)):
        # A date without rows still gets a partition (one empty file with the schema), as a
        # per-date write of an empty frame does, so readers find the table's columns.
        spark.createDataFrame([], frame.drop(SNAPSHOT_DATE).schema).coalesce(1).write.mode("overwrite").parquet(
            str(root / f"{SNAPSHOT_DATE}={day}")
        )
    return counts


COVIEW_RULE = {"table": COVIEW_DAILY, "version": 1, "max_basket": MAX_BASKET}
"""What a date's co-view counts were computed by: a change here recounts every date."""


def _silver_fingerprint(lake: Lake, day: str) -> list[list[Any]]:
    """The files of silver's ``day`` partition (name, size, mtime): silver rewrites a date with new files."""
    part = lake.silver / f"event_date={day}"
    if not part.is_dir():
        return []
    stats = [(p.name, p.stat()) for p in part.iterdir() if p.is_file()]
    return sorted([name, st.st_size, st.st_mtime_ns] for name, st in stats)


def refresh_coview_daily(lake: Lake, silver: DataFrame, days: Sequence[str]) -> list[str]:
    """Count co-views for each of ``days`` whose silver changed since its counts were written.

    A date's counts depend on its own silver partition only, so a nightly run counts the new date
    (and any date a late event rewrote) and reuses the rest. Each date's record under
    ``_reports/coview_daily`` holds the silver files and the rule it was counted from; a missing or
    different record (or partition) recounts the date.

    Args:
        lake: The lake.
        silver: Silver events covering ``days`` (more is fine).
        days: Event dates (``YYYY-MM-DD``).

    Returns:
        The dates counted now.
    """
    from pyspark.sql import functions as F

    stale = []
    for day in days:
        record = {"rule": COVIEW_RULE, "silver": _silver_fingerprint(lake, day)}
        held = read_json(lake.report(COVIEW_DAILY, day))
        if held is None or held.get("rule") != record["rule"] or held.get("silver") != record["silver"]:
            stale.append((day, record))
        elif not (lake.gold(COVIEW_DAILY) / f"{SNAPSHOT_DATE}={day}").is_dir():
            stale.append((day, record))
    if not stale:
        return []
    for day, _ in stale:  # a crash mid-write must not leave a record that vouches for a partial partition
        lake.report(COVIEW_DAILY, day).unlink(missing_ok=True)
    wanted = [F.lit(day).cast("date") for day, _ in stale]
    counted = _write(
        coview_daily(silver.where(F.col("event_date").isin(*wanted))), lake, COVIEW_DAILY, [d for d, _ in stale]
    )
    for day, record in stale:
        write_json_atomic(lake.report(COVIEW_DAILY, day), {**record, "rows": counted.get(day, 0)})
    return [d for d, _ in stale]


def read_coview_daily(spark: SparkSession, lake: Lake, days: Sequence[str]) -> DataFrame:
    """The co-view counts of ``days`` (see :func:`coview_daily`), their date as ``event_date`` (a date)."""
    from pyspark.sql import functions as F

    root = lake.gold(COVIEW_DAILY)
    paths = [str(root / f"{SNAPSHOT_DATE}={d}") for d in days]
    if not paths:
        return spark.createDataFrame([], "event_date date, a string, b string, n long")
    return (
        spark.read.option("basePath", str(root))
        .parquet(*paths)
        .select(F.col(SNAPSHOT_DATE).cast("string").cast("date").alias("event_date"), "a", "b", "n")
    )


def build_gold_range(
    spark: SparkSession, lake: Lake, days: Sequence[str], *, k: int = NEIGHBOURS_K
) -> list[GoldReport]:
    """Write the gold snapshots of several dates in one pass (idempotent per ``date=`` partition).

    Each event is joined to the snapshot dates whose 30-day window holds it and every aggregate
    is grouped by snapshot date as well, so each date's rows are exactly those a build of that
    date alone writes, while the dates share one read of silver and one job per table.

    Args:
        spark: The session.
        lake: Where silver is read and gold written.
        days: Snapshot dates (``YYYY-MM-DD``); each one's window is the 30 days ending with it.
        k: Neighbours per item.

    Returns:
        One report per date, in date order (also written under ``_reports/gold``); ``seconds`` is
        the wall time of the whole range.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.monotonic()
    ordered = sorted({parse_date(d).isoformat() for d in days})
    if not ordered:
        return []
    first = parse_date(ordered[0]) - timedelta(days=HISTORY_DAYS - 1)
    last = parse_date(ordered[-1])
    snapshots = _snapshots(spark, ordered)
    silver = spark.read.option("basePath", str(lake.silver)).parquet(str(lake.silver))
    window = silver.where(
        (F.col("event_date") >= F.lit(first.isoformat()).cast("date"))
        & (F.col("event_date") <= F.lit(last.isoformat()).cast("date"))
    ).persist(StorageLevel.MEMORY_AND_DISK)
    stamp = F.timestamp_millis(_snapshot_ms()).alias(EVENT_TIMESTAMP)
    tagged = _in_windows(window, snapshots)
    reports = {day: GoldReport(date=day) for day in ordered}
    try:
        counting = time.monotonic()
        # The windows' dates that silver holds (a window reaching back before the lake has fewer).
        event_days = [
            d.isoformat() for d in date_range(first, last) if (lake.silver / f"event_date={d.isoformat()}").is_dir()
        ]
        recounted = refresh_coview_daily(lake, window, event_days)
        for report in reports.values():
            report.table_seconds[COVIEW_DAILY] = round(time.monotonic() - counting, 2)
            report.coview_dates_counted = len(recounted)
        tables = {
            USER_HISTORY: user_history(tagged).select("*", stamp),
            ITEM_STATS: item_stats(tagged).select("*", stamp),
            ITEM_NEIGHBOURS: item_neighbours(window, snapshots, read_coview_daily(spark, lake, event_days), k).select(
                "*", stamp
            ),
            SESSION_FEATURES: session_features(window, snapshots),
        }
        for table, frame in tables.items():
            table_started = time.monotonic()
            for day, rows in _write(frame, lake, table, ordered).items():
                reports[day].rows[table] = rows
            for report in reports.values():
                report.table_seconds[table] = round(time.monotonic() - table_started, 2)
    finally:
        window.unpersist()
    elapsed = time.monotonic() - started
    for report in reports.values():
        report.seconds = elapsed
        write_json_atomic(lake.report("gold", report.date), report.to_dict())
    return list(reports.values())


def build_gold(spark: SparkSession, lake: Lake, day: str, *, k: int = NEIGHBOURS_K) -> GoldReport:
    """Write the gold snapshots of ``day`` (the range of one date; see :func:`build_gold_range`).

    Args:
        spark: The session.
        lake: Where silver is read and gold written.
        day: The snapshot date; the window is the 30 days ending with it.
        k: Neighbours per item.

    Returns:
        Row counts per table (also written under ``_reports/gold``).
    """
    return build_gold_range(spark, lake, [day], k=k)[0]

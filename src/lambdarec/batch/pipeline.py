"""The whole batch layer for one environment: bronze → silver → gold → Feast (apply, sets, materialize).

This is what ``lambdarec batch run``, the demo and the daily DAG call. Bronze comes from the next
Kafka offset range or, without Kafka, straight from a dataset file
(:func:`lambdarec.batch.dataset.ingest_dataset`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from lambdarec.batch.lake import Lake, parse_date, snapshot_time, write_json_atomic
from lambdarec.names import (
    CLICKS_TOPIC,
    ITEM_NEIGHBOURS_FEATURE_VIEW,
    ITEM_STATS_FEATURE_VIEW,
    USER_HISTORY_FEATURE_VIEW,
)
from lambdarec.settings import Settings


@dataclass
class BatchSummary:
    """What one batch run did, stage by stage."""

    stages_s: dict[str, float] = field(default_factory=dict)
    bronze: dict[str, Any] = field(default_factory=dict)
    silver: list[dict[str, Any]] = field(default_factory=list)
    gold: list[dict[str, Any]] = field(default_factory=list)
    materialize: dict[str, Any] = field(default_factory=dict)
    applied: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "stages_s": {k: round(v, 2) for k, v in self.stages_s.items()},
            "bronze": self.bronze,
            "silver": self.silver,
            "gold": self.gold,
            "materialize": self.materialize,
            "applied": self.applied,
        }

    def render(self) -> Table:
        """A table of the stages with their main counts."""
        table = Table(title="batch layer", show_header=True)
        table.add_column("stage")
        table.add_column("result")
        table.add_column("seconds", justify="right")
        rejected = sum(sum(r["rejected"].values()) for r in self.silver)
        files = sum(len(r["quarantined_files"]) for r in self.silver)
        rows = {
            "bronze": f"{self.bronze.get('records', 0):,} "
            + (f"events of {self.bronze['spec']}" if "spec" in self.bronze else "Kafka records")
            + f" (run {self.bronze.get('run', '-')})",
            "silver": (
                f"{sum(r['events'] for r in self.silver):,} events over {len(self.silver)} dates, "
                f"{sum(r['duplicates'] for r in self.silver):,} duplicates dropped, {rejected:,} rows and "
                f"{files} files quarantined, {sum(r['late'] for r in self.silver):,} late"
            ),
            "gold": "; ".join(
                f"{g['date']}: " + ", ".join(f"{k} {v:,}" for k, v in g["rows"].items()) for g in self.gold
            ),
            "feast apply": ", ".join(f"{len(v)} {k}" for k, v in self.applied.items()),
            "materialize": f"{sum(self.materialize.get('rows', {}).values()):,} online rows "
            f"({self.materialize.get('rows_per_s', 0):,} rows/s)",
        }
        for stage, text in rows.items():
            table.add_row(stage, text, f"{self.stages_s.get(stage, 0):.1f}")
        return table


def run_batch(
    settings: Settings,
    *,
    ingest: bool = True,
    dataset: str | None = None,
    dates: list[str] | None = None,
    gold_days: int | Sequence[str] | None = 2,
    gold_backfill: bool = False,
    materialize: bool = True,
    shuffle_partitions: int = 8,
    console: Console | None = None,
) -> BatchSummary:
    """Run the batch layer end to end.

    Args:
        settings: The environment (Kafka address, state folder, Feast config).
        ingest: Read the next Kafka offset range into bronze first (ignored with ``dataset``).
        dataset: ``<adapter>:<path>``: write this dataset to bronze instead of reading Kafka
            (the offsets ledger is left alone).
        dates: Event dates to (re)build in silver; default: those the ingest touched, or all in
            bronze.
        gold_days: Which gold snapshots to build, in one Spark pass: the latest N silver dates
            (an int; ≥ 2 so the last date's training examples have the previous day's
            features), these dates (a list), or every silver date (None).
        gold_backfill: Also build every silver date up to the latest of ``gold_days`` that has no
            gold snapshot yet (a daily run's first interval on a lake with history: training
            needs gold for every date), in the same pass.
        materialize: Load the latest features into the online store.
        shuffle_partitions: Spark shuffle partitions.
        console: Progress output (None: silent).

    Returns:
        The summary (also written to ``<lake>/_reports/batch.json``).
    """
    from lambdarec.batch.bronze import bronze_dates, ingest_bronze
    from lambdarec.batch.gold import build_gold_range
    from lambdarec.batch.silver import build_silver, silver_dates
    from lambdarec.batch.spark import build_spark, jvm_running, kafka_jars, stop_spark

    out = console or Console(quiet=True)
    lake = Lake.under(settings.state_dir)
    summary = BatchSummary()
    ingest = ingest and dataset is None
    # Always: a JVM started without the Kafka connector cannot load it later in the same process.
    jars = kafka_jars(settings.resolved_jars_dir())
    own_jvm = not jvm_running()
    spark = build_spark(shuffle_partitions=shuffle_partitions, jars=jars)
    try:
        if ingest:
            from lambdarec.events.admin import kafka_bootstrap

            started = time.monotonic()
            with out.status("bronze: reading the next Kafka offset range..."):
                bronze = ingest_bronze(spark, lake, kafka_bootstrap(settings), CLICKS_TOPIC)
            summary.stages_s["bronze"] = time.monotonic() - started
            summary.bronze = bronze.to_dict()
            touched = sorted(bronze.by_date)
        elif dataset is not None:
            from lambdarec.batch.dataset import ingest_dataset

            started = time.monotonic()
            with out.status(f"bronze: writing {dataset}..."):
                written = ingest_dataset(lake, dataset, earliest_ms=settings.earliest_event_ms)
            summary.stages_s["bronze"] = time.monotonic() - started
            summary.bronze = written.to_dict()
            touched = sorted(written.by_date)
        else:
            touched = []
        todo = dates or touched or bronze_dates(lake)
        started = time.monotonic()
        with out.status(f"silver: cleaning and deduplicating {len(todo)} dates..."):
            bounds = settings.event_bounds()
            silver_reports = build_silver(
                spark,
                lake,
                todo,
                max_skew_ms=bounds.max_future_ms,
                earliest_ms=bounds.earliest_ms,
                max_event_bytes=bounds.max_bytes,
            )
            summary.silver = [r.to_dict() for r in silver_reports]
        summary.stages_s["silver"] = time.monotonic() - started
        started = time.monotonic()
        available = silver_dates(lake)
        gold_dates = select_gold_dates(available, gold_days)
        if gold_backfill and gold_dates:
            gold_dates = sorted(set(gold_dates) | set(dates_without_gold(lake, available, gold_dates[-1])))
        with out.status(f"gold: snapshots of {len(gold_dates)} dates in one pass..."):
            summary.gold = [r.to_dict() for r in build_gold_range(spark, lake, gold_dates)]
        summary.stages_s["gold"] = time.monotonic() - started
    finally:
        # The JVM this call started ends with it: what runs next in this process (training, in
        # the demo) should not carry the driver's heap.
        stop_spark(spark, jvm=own_jvm)
    if not gold_dates:
        return summary

    from lambdarec.featurestore.store import apply
    from lambdarec.featurestore.store import materialize as load_online

    started = time.monotonic()
    with out.status("feast: applying the feature repo..."):
        summary.applied = apply(settings)
    summary.stages_s["feast apply"] = time.monotonic() - started
    last = gold_dates[-1]
    if materialize:
        started = time.monotonic()
        end = snapshot_time(parse_date(last)) + timedelta(seconds=1)
        with out.status("feast: materializing into the online store..."):
            # Session features online belong to the speed layer (fresher); batch ones stay offline.
            views = [USER_HISTORY_FEATURE_VIEW, ITEM_STATS_FEATURE_VIEW, ITEM_NEIGHBOURS_FEATURE_VIEW]
            summary.materialize = load_online(settings, end - timedelta(days=31), end, views).to_dict()
        summary.stages_s["materialize"] = time.monotonic() - started
    write_json_atomic(lake.root / "_reports" / "batch.json", summary.to_dict())
    return summary


def dates_without_gold(lake: Lake, available: Sequence[str], until: str) -> list[str]:
    """Silver dates up to ``until`` missing from any gold table (what a backfill builds)."""
    from lambdarec.batch.gold import GOLD_TABLES

    built = [{p.name.split("=", 1)[1] for p in lake.gold(t).glob("date=*")} for t in GOLD_TABLES]
    return [d for d in available if d <= until and any(d not in dates for dates in built)]


def select_gold_dates(available: list[str], gold_days: int | Sequence[str] | None) -> list[str]:
    """The snapshot dates ``gold_days`` names (see :func:`run_batch`), sorted."""
    if gold_days is None:
        return list(available)
    if isinstance(gold_days, int):
        return list(available[-gold_days:]) if gold_days > 0 else []
    return sorted({parse_date(d).isoformat() for d in gold_days})


def run_batch_stage(settings: Settings, console: Console | None = None) -> dict[str, Any]:
    """The demo's batch stage: ingest what was replayed, build silver and gold, apply, materialize.

    Prints the stage table and an example online read when ``console`` is given.

    Returns:
        The batch summary as a dict.
    """
    from lambdarec.featurestore.store import get_online_features, open_store

    out = console or Console(quiet=True)
    # Gold for every date: the models read point-in-time features over the whole history, and
    # build their own examples through the feature services.
    summary = run_batch(settings, gold_days=None, console=console)
    out.print(summary.render())
    example = example_entities(settings)
    if example is not None:
        user, items = example
        values = get_online_features(open_store(settings), user, items)
        out.print(f"online features of user {user} and items {', '.join(items)} (ranking_v1):")
        out.print(dict(list(values.items())[:12]))
        out.print(f"try: lambdarec features get --user {user} --items {','.join(items)}")
    return summary.to_dict()


def example_entities(settings: Settings, n_items: int = 3) -> tuple[str, list[str]] | None:
    """A user with history and popular items from the latest gold snapshot (for examples)."""
    import pyarrow.dataset as ds

    lake = Lake.under(settings.state_dir)
    users_dir, items_dir = lake.gold("user_history"), lake.gold("item_stats")
    if not users_dir.exists() or not items_dir.exists():
        return None
    users = ds.dataset(str(users_dir), partitioning="hive").to_table(columns=["user_id", "user_events_30d"])
    items = ds.dataset(str(items_dir), partitioning="hive").to_table(columns=["item_id", "item_popularity_30d"])
    if users.num_rows == 0 or items.num_rows == 0:
        return None
    user = users.sort_by([("user_events_30d", "descending"), ("user_id", "ascending")])["user_id"][0].as_py()
    top = items.sort_by([("item_popularity_30d", "descending"), ("item_id", "ascending")])["item_id"]
    chosen = list(dict.fromkeys(top.to_pylist()))[:n_items]
    return str(user), [str(i) for i in chosen]

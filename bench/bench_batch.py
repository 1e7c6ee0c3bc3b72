"""Benchmark the batch layer on local[2]: wall time and peak memory per stage, and how it scales.

For each size: the seeded generator writes N events over 31 full days (2024-01-01 to 01-31, a
few sessions spilling into 02-01) to Parquet. **History** — the first 30 days: Spark turns them
into bronze records (JSON values with Kafka-like coordinates: the Kafka read itself is measured
by bench_kafka.py); then silver (all 30 dates) and gold of the last history date (a full day,
its 30-day window full) run as in production. **Daily incremental** — what a nightly
``daily_features`` run pays: the new day's events arrive as their own bronze ingest, silver is
built for the dates they touch only (the new day and the spill), and gold for the new day over
the 30 days that end with it (in this one Spark session: the DAG's spark-submit JVM starts are
measured by bench_dags.py); with ``--materialize``, then the new day's gold into a SQLite
online store holding the day before's features, through ``lambdarec.featurestore.store.materialize``
over the window the ``daily_features`` DAG loads (after the Spark session has stopped, as the DAG's
own task; ``--materialize-compare LAKE`` times that load both ways, direct and through Feast). Peak
memory is the largest resident set of this process plus its children (the JVM, Python workers),
sampled every 0.2 s. CPU seconds (user + system of the same process tree) and the machine's load
average are recorded too: on a shared machine wall time alone says little. Writes
bench/results/batch.json (or --out):

    .venv/bin/python bench/bench_batch.py --events 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from bench_common import LoadSampler, tree_cpu_s


class PeakMemory:
    """Samples the RSS of this process tree in a thread; ``peak_mib`` since the last reset."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        """Start a new peak from the current usage."""
        self.peak = self._sample()

    def cpu_s(self) -> float:
        """User + system CPU seconds of this process tree so far (live processes only)."""
        return tree_cpu_s()

    @property
    def peak_mib(self) -> float:
        """Peak RSS since the last reset, MiB."""
        return self.peak / 2**20


HISTORY_DAYS = 30
START = datetime(2024, 1, 1, tzinfo=UTC)
NEW_DAY = (START + timedelta(days=HISTORY_DAYS)).date().isoformat()
"""The day the incremental run adds (the 31st); the history is the 30 days before it."""


def bronze_from_parquet(spark: Any, events_path: Path, bronze_dir: Path, *, new_day: bool | None = None) -> int:
    """Write bronze records for the generator's events (what ingest_bronze writes from Kafka).

    Args:
        spark: The session.
        events_path: The generator's Parquet file.
        bronze_dir: The lake's bronze folder; each call writes its own ``ingest=`` partition.
        new_day: True: only the events from :data:`NEW_DAY` on; False: only those before it;
            None: all.

    Returns:
        Records written.
    """
    from pyspark.sql import functions as F

    events = spark.read.parquet(str(events_path))
    if new_day is not None:
        cutoff = int(datetime.fromisoformat(NEW_DAY).replace(tzinfo=UTC).timestamp() * 1000)
        events = events.where(F.col("event_time") >= cutoff if new_day else F.col("event_time") < cutoff)
    fields = list(events.columns)
    bronze = events.select(
        (F.abs(F.hash("session_id")) % 4).cast("int").alias("kafka_partition"),
        F.monotonically_increasing_id().alias("kafka_offset"),
        F.timestamp_millis(F.col("event_time") + 50).alias("kafka_timestamp"),
        F.col("session_id").alias("kafka_key"),
        F.to_json(F.struct(*fields)).alias("value"),
        F.to_date(F.timestamp_millis("event_time")).alias("event_date"),
    )
    ingest = {None: "bench", False: "history", True: "new-day"}[new_day]
    bronze.write.mode("overwrite").partitionBy("event_date").parquet(str(bronze_dir / f"ingest={ingest}"))
    return int(events.count())


def run_size(
    n_events: int,
    workdir: Path,
    shuffle_partitions: int,
    driver_memory: str,
    *,
    keep: bool = False,
    materialize_new_day: bool = False,
) -> dict[str, Any]:
    """Generate, then time bronze, silver and gold for one size; ``keep`` leaves the lake in ``workdir``.

    ``materialize_new_day`` adds the nightly's last step to the daily incremental run: the new
    day's gold into the online store (:func:`materialize_day`).
    """
    from lambdarec.batch.bronze import bronze_dates
    from lambdarec.batch.gold import build_gold
    from lambdarec.batch.lake import Lake
    from lambdarec.batch.silver import build_silver
    from lambdarec.batch.spark import build_spark
    from lambdarec.data import generate_events
    from lambdarec.data.generator import GeneratorConfig

    events_path = workdir / f"events-{n_events}.parquet"
    started = time.perf_counter()
    generate_events(
        n_events,
        max(1_000, n_events // 20),
        max(500, n_events // 50),
        42,
        out_path=events_path,
        progress=False,
        config=GeneratorConfig(start=START, days=HISTORY_DAYS + 1),
    )
    result: dict[str, Any] = {"events": n_events, "generate_s": round(time.perf_counter() - started, 1), "stages": {}}
    lake = Lake(workdir / f"lake-{n_events}")
    spark = build_spark(
        "lambdarec-bench", master="local[2]", shuffle_partitions=shuffle_partitions, driver_memory=driver_memory
    )
    try:
        with PeakMemory() as memory:
            timed = [("bronze", "history"), ("silver", "history"), ("gold", "history")]
            timed += [("bronze", "incremental"), ("silver", "incremental"), ("gold", "incremental")]
            for stage, phase in timed:
                memory.reset()
                cpu_before = memory.cpu_s()
                load = LoadSampler().start()
                started = time.perf_counter()
                if stage == "bronze":
                    detail: Any = {
                        "records": bronze_from_parquet(spark, events_path, lake.bronze, new_day=phase == "incremental")
                    }
                elif stage == "silver":
                    dates = [d for d in bronze_dates(lake) if (d >= NEW_DAY) == (phase == "incremental")]
                    reports = build_silver(spark, lake, dates)
                    detail = {
                        "dates": len(reports),
                        "events": sum(r.events for r in reports),
                        "visits": sum(r.visits for r in reports),
                    }
                else:
                    day = NEW_DAY if phase == "incremental" else _previous(NEW_DAY)
                    detail = {
                        "date": day,
                        "date_events": _date_events(lake, day),
                        **build_gold(spark, lake, day).to_dict(),
                    }
                seconds = time.perf_counter() - started
                load.stop()
                cpu_s = memory.cpu_s() - cpu_before
                record = {
                    "seconds": round(seconds, 1),
                    "cpu_s": round(cpu_s, 1),
                    "load_avg_1m": round(psutil.getloadavg()[0], 1),
                    **load.summary(),
                    "peak_rss_mib": round(memory.peak_mib),
                    "detail": detail,
                }
                if phase == "history":
                    result["stages"][stage] = record
                else:
                    result.setdefault("daily_incremental", {"stages": {}})["stages"][stage] = record
                print(
                    f"{n_events:>11,} events  {phase:<11} {stage:<7} {seconds:7.1f} s  cpu {cpu_s:7.1f} s  "
                    f"load {psutil.getloadavg()[0]:4.1f}  peak {memory.peak_mib:,.0f} MiB",
                    flush=True,
                )
            if materialize_new_day:
                spark.stop()  # the DAG materializes in its own task, without the batch layer's JVM
                memory.reset()
                record = materialize_day(lake, memory)
                result["daily_incremental"]["stages"]["materialize"] = record
                print(f"{n_events:>11,} events  incremental materialize {record['seconds']:7.1f} s", flush=True)
    finally:
        spark.stop()
        if not keep:
            shutil.rmtree(lake.root, ignore_errors=True)
        events_path.unlink(missing_ok=True)
    result["bronze_to_gold_s"] = round(sum(s["seconds"] for s in result["stages"].values()), 1)
    incremental = result["daily_incremental"]
    incremental["seconds"] = round(sum(s["seconds"] for s in incremental["stages"].values()), 1)
    incremental["what"] = (
        f"{NEW_DAY} added to 30 days of history: its bronze ingest, silver of the dates it touches, gold of {NEW_DAY}"
        + (", its gold loaded into a SQLite online store holding the day before's" if materialize_new_day else "")
    )
    return result


def materialize_day(lake: Any, memory: PeakMemory) -> dict[str, Any]:
    """Time the nightly's materialize of :data:`NEW_DAY` from ``lake``'s gold into the SQLite online store.

    The window is the ``daily_features`` DAG's (``lambdarec.quality.steps.materialize_day``: the
    day's snapshots are stamped 00:00 the next day). As the nightly finds it, the store already
    holds the day before's features (loaded first, untimed), so the new day's cells are upserts.
    """
    from lambdarec.featurestore.store import apply, materialize
    from lambdarec.settings import load_settings

    previous = os.environ.get("LAMBDAREC_LAKE_DIR")
    os.environ["LAMBDAREC_LAKE_DIR"] = str(lake.root)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-batch-feast-") as scratch:
            settings = load_settings("local", state_dir=Path(scratch))
            apply(settings)  # the registry, the tables and their read indexes, as the DAG's batch task leaves them
            start = datetime.fromisoformat(NEW_DAY).replace(tzinfo=UTC)
            yesterday = start - timedelta(days=1)
            if lake.gold("item_stats").joinpath(f"date={yesterday.date().isoformat()}").is_dir():
                materialize(settings, yesterday, start + timedelta(days=1))  # last night's load, untimed
            cpu_before = memory.cpu_s()
            load = LoadSampler().start()
            started = time.perf_counter()
            report = materialize(settings, start, start + timedelta(days=2))
            seconds = time.perf_counter() - started
            load.stop()
            online = Path(scratch) / "feast" / "online.db"
            return {
                "seconds": round(seconds, 1),
                "cpu_s": round(memory.cpu_s() - cpu_before, 1),
                "load_avg_1m": round(psutil.getloadavg()[0], 1),
                **load.summary(),
                "peak_rss_mib": round(memory.peak_mib),
                "detail": {
                    **report.to_dict(),
                    "online_store_mib": round(online.stat().st_size / 2**20, 1) if online.exists() else None,
                },
            }
    finally:
        if previous is None:
            os.environ.pop("LAMBDAREC_LAKE_DIR", None)
        else:
            os.environ["LAMBDAREC_LAKE_DIR"] = previous


def regold(lake_root: Path, shuffle_partitions: int, driver_memory: str) -> dict[str, Any]:
    """Time the daily incremental run's gold stage again on a lake kept by ``--workdir``.

    What a change to gold is measured with, without generating, ingesting and building silver
    again (those stages do not change); the new day's silver is already in the kept lake.
    """
    from lambdarec.batch.gold import COVIEW_DAILY, build_gold
    from lambdarec.batch.lake import Lake
    from lambdarec.batch.spark import build_spark

    lake = Lake(lake_root)
    if not (lake.silver / f"event_date={NEW_DAY}").is_dir():
        raise SystemExit(f"{lake_root}: no silver for {NEW_DAY}; make the lake with --workdir first")
    # The nightly run's silver rewrote the new day (and its spill): gold counts their co-views again,
    # so the kept counts of those dates are dropped, as the changed silver files would make gold do.
    for counted in lake.report(COVIEW_DAILY, NEW_DAY).parent.glob("*.json"):
        if counted.stem >= NEW_DAY:
            counted.unlink()
    spark = build_spark(
        "lambdarec-bench", master="local[2]", shuffle_partitions=shuffle_partitions, driver_memory=driver_memory
    )
    try:
        with PeakMemory() as memory:
            load = LoadSampler().start()
            started = time.perf_counter()
            detail = {
                "date": NEW_DAY,
                "date_events": _date_events(lake, NEW_DAY),
                **build_gold(spark, lake, NEW_DAY).to_dict(),
            }
            seconds = time.perf_counter() - started
            load.stop()
            record = {
                "seconds": round(seconds, 1),
                "cpu_s": round(memory.cpu_s(), 1),
                "load_avg_1m": round(psutil.getloadavg()[0], 1),
                **load.summary(),
                "peak_rss_mib": round(memory.peak_mib),
                "detail": detail,
            }
    finally:
        spark.stop()
    print(
        f"regold {NEW_DAY}: {seconds:.1f} s  cpu {record['cpu_s']} s  per table {detail['table_seconds']}", flush=True
    )
    return record


def machine() -> dict[str, Any]:
    """Cores, memory and platform of this machine, for the result files."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "platform": platform.platform(),
    }


def regold_document(lake_root: Path, base: Path | None, gold: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a ``--regold`` run: the re-timed gold stage, the lake's size and the run it reuses."""
    size = re.search(r"lake-(\d+)$", lake_root.name)
    return {
        "benchmark": "batch",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "events": int(size.group(1)) if size else None,
        "base": base.name if base else None,
        "what": f"gold of {NEW_DAY} re-timed on a kept lake, in a fresh Spark session (a cold JVM)",
        "regold": gold,
    }


def _previous(day: str) -> str:
    return (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()


def _date_events(lake: Any, day: str) -> int:
    """Silver events of one date (gold's "full day" is checked, not assumed)."""
    import pyarrow.dataset as ds

    folder = lake.silver / f"event_date={day}"
    return int(ds.dataset(str(folder), format="parquet").count_rows()) if folder.is_dir() else 0


def _table_digests(settings: Any) -> dict[str, dict[str, Any]]:
    """Cells and a SHA-256 of every batch view's SQLite table (all columns Feast writes, in key order)."""
    import hashlib
    import sqlite3

    from lambdarec.featurestore.sqlite_layout import sqlite_table
    from lambdarec.featurestore.store import BATCH_TABLES, feast_dir, open_store

    store = open_store(settings)
    connection = sqlite3.connect(feast_dir(settings) / "online.db")
    out: dict[str, dict[str, Any]] = {}
    try:
        for view in BATCH_TABLES:
            digest, cells = hashlib.sha256(), 0
            cursor = connection.execute(
                "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                f"FROM {sqlite_table(store.config, store.get_feature_view(view))} ORDER BY entity_key, feature_name"
            )
            while batch := cursor.fetchmany(100_000):
                digest.update(repr(batch).encode())
                cells += len(batch)
            out[view] = {"cells": cells, "sha256": digest.hexdigest()}
    finally:
        connection.close()
    return out


def materialize_compare(lake: Any) -> dict[str, Any]:
    """The nightly's online load both ways on ``lake``: the direct SQLite load and ``FeatureStore.materialize``.

    Each way gets a fresh store: the day before :data:`NEW_DAY` is loaded into the empty store
    (every cell an insert), then :data:`NEW_DAY` over it (every cell an upsert of yesterday's, as
    the nightly DAG finds the store). Both loads are timed; the tables are then compared by digest.
    """
    from lambdarec.featurestore.store import apply, materialize
    from lambdarec.settings import load_settings

    previous = os.environ.get("LAMBDAREC_LAKE_DIR")
    os.environ["LAMBDAREC_LAKE_DIR"] = str(lake.root)
    new_day = datetime.fromisoformat(NEW_DAY).replace(tzinfo=UTC)
    days = {"into_empty_store": new_day - timedelta(days=1), "over_yesterdays_store": new_day}
    result: dict[str, Any] = {}
    try:
        for way, through_feast in (("direct", False), ("through_feast", True)):
            with tempfile.TemporaryDirectory(prefix="bench-batch-feast-") as scratch:
                settings = load_settings("local", state_dir=Path(scratch))
                apply(settings)
                record: dict[str, Any] = {}
                for label, day in days.items():
                    load = LoadSampler().start()
                    cpu = time.process_time()
                    report = materialize(settings, day, day + timedelta(days=2), through_feast=through_feast)
                    load.stop()
                    record[label] = {
                        "day": day.date().isoformat(),
                        "seconds": round(report.seconds, 1),
                        "cpu_s": round(time.process_time() - cpu, 1),
                        "entities": report.rows,
                        **load.summary(),
                    }
                    print(f"materialize {way} {label} ({day.date()}): {report.seconds:.1f} s", flush=True)
                online = Path(scratch) / "feast" / "online.db"
                record["online_store_mib"] = round(online.stat().st_size / 2**20, 1)
                record["tables"] = _table_digests(settings)
                result[way] = record
    finally:
        if previous is None:
            os.environ.pop("LAMBDAREC_LAKE_DIR", None)
        else:
            os.environ["LAMBDAREC_LAKE_DIR"] = previous
    result["tables_equal"] = result["direct"]["tables"] == result["through_feast"]["tables"]
    print("tables equal:", result["tables_equal"], flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every size and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000], help="sizes to run")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch.json")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="build the lakes here and keep them (lake-<events>/), so --regold can time gold again",
    )
    parser.add_argument(
        "--regold",
        type=Path,
        metavar="LAKE",
        help="only time the daily incremental run's gold stage again, on a lake kept by --workdir",
    )
    parser.add_argument(
        "--base",
        type=Path,
        help="with --regold: the result file of the run that built the lake (the report adds its bronze and "
        "silver of the new day to the re-timed gold for the daily incremental figure)",
    )
    parser.add_argument(
        "--materialize",
        action="store_true",
        help="also time the nightly's materialize of the new day's gold into a SQLite online store holding "
        "the day before's "
        "(the daily incremental run's last stage; with --regold: after the re-timed gold)",
    )
    parser.add_argument(
        "--materialize-compare",
        type=Path,
        metavar="LAKE",
        help="only time the nightly's online load on a lake kept by --workdir, both ways (the direct SQLite "
        "load and FeatureStore.materialize), each into a fresh store then over yesterday's, and compare the tables",
    )
    args = parser.parse_args(argv)
    if args.materialize_compare:
        from lambdarec.batch.lake import Lake

        doc = {
            "benchmark": "batch_materialize",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "lake": str(args.materialize_compare),
            "command": "bench/bench_batch.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            **materialize_compare(Lake(args.materialize_compare)),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2))
        return doc
    if args.regold:
        doc = regold_document(args.regold, args.base, regold(args.regold, args.shuffle_partitions, args.driver_memory))
        if args.materialize:
            from lambdarec.batch.lake import Lake

            with PeakMemory() as memory:
                doc["materialize"] = materialize_day(Lake(args.regold), memory)
            print(f"materialize {NEW_DAY}: {doc['materialize']['seconds']} s", flush=True)
        doc["command"] = "bench/bench_batch.py " + " ".join(argv if argv is not None else sys.argv[1:])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2))
        return doc
    runs = []
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        for n in args.events:
            runs.append(
                run_size(
                    n,
                    args.workdir,
                    args.shuffle_partitions,
                    args.driver_memory,
                    keep=True,
                    materialize_new_day=args.materialize,
                )
            )
    else:
        with tempfile.TemporaryDirectory(prefix="lambdarec-bench-batch-") as tmp:
            for n in args.events:
                runs.append(
                    run_size(
                        n, Path(tmp), args.shuffle_partitions, args.driver_memory, materialize_new_day=args.materialize
                    )
                )
    growth = {}
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        growth = {
            f"{stage}_x": round(large["stages"][stage]["seconds"] / max(small["stages"][stage]["seconds"], 1e-9), 2)
            for stage in small["stages"]
        }
        growth["events_x"] = round(large["events"] / small["events"], 1)
    result = {
        "benchmark": "batch",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "spark": {
            "master": "local[2]",
            "shuffle_partitions": args.shuffle_partitions,
            "driver_memory": args.driver_memory,
        },
        "goal": "each stage <= 300 s at 10M events; the daily incremental run <= 60 s (issue 16)",
        "command": "bench/bench_batch.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": runs,
        "growth": growth,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                "runs": [
                    {
                        "events": r["events"],
                        **{k: v["seconds"] for k, v in r["stages"].items()},
                        "daily_incremental": r["daily_incremental"]["seconds"],
                    }
                    for r in runs
                ],
                "growth": growth,
            }
        )
    )
    return result


if __name__ == "__main__":
    main()

"""Silver: bronze records of one or more dates → clean, deduplicated events.

Per date partition the stage
1. checks every bronze file before Spark reads it: unreadable files and files whose schema drifted
   (a required column missing or of another type) are listed in the quarantine report and skipped;
2. parses each record and rejects, with the reason, what ``ClickEvent`` would reject (missing ids,
   unknown type, bad time, negative price) and events further ahead of the broker's clock than the
   allowed skew; rejected rows go to ``quarantine/silver`` with their Kafka coordinates;
3. keeps one row per ``event_id`` and date (the first by partition and offset) and flags late
   events (event time far behind the broker's time) without dropping them.

Sessions are keyed by the shop's ``session_id`` as it comes
(:data:`lambdarec.features.session.SESSION_KEY`): idle time splits nothing, so no date needs another.
Output for a date replaces that date's partition only and depends only on the bronze of that date,
so a rerun of a date gives the same output whatever else it is built with.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lambdarec.batch.lake import Lake, write_json_atomic
from lambdarec.features.session import SESSION_KEY
from lambdarec.names import EventType
from lambdarec.schemas import EARLIEST_EVENT_MS, MAX_ID_LENGTH

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BRONZE_REQUIRED: dict[str, pa.DataType] = {
    "kafka_partition": pa.int32(),
    "kafka_offset": pa.int64(),
    "kafka_timestamp": pa.timestamp("us", tz="UTC"),
    "value": pa.string(),
}
"""Columns a bronze file must have (with these Arrow types) to be read."""
DEFAULT_LATE_MS = 86_400_000
"""Events arriving more than a day after they happened are flagged late."""
DEFAULT_MAX_SKEW_MS = 86_400_000
"""Events more than a day ahead of the broker's clock are quarantined (clock skew)."""

SILVER_COLUMNS = (
    "event_id",
    "event_time",
    "session_id",
    "user_id",
    "item_id",
    "event_type",
    "price",
    "category",
    "brand",
    "kafka_partition",
    "kafka_offset",
    "is_late",
)


@dataclass
class SilverReport:
    """What the silver stage did for one date."""

    date: str
    files: int = 0
    quarantined_files: dict[str, str] = field(default_factory=dict)
    records: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late: int = 0
    events: int = 0
    sessions: int = 0
    seconds: float = 0.0

    @property
    def visits(self) -> int:
        """Old name of :attr:`sessions` (a session is no longer split into visits)."""
        return self.sessions

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def check_bronze_file(path: Path) -> str | None:
    """Why a bronze file cannot be read, or None when it can.

    Only the footer is read, so the check costs one small read per file.
    """
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # noqa: BLE001 - any failure to read the footer means "corrupt"
        return f"unreadable parquet: {type(err).__name__}: {str(err)[:200]}"
    for name, expected in BRONZE_REQUIRED.items():
        if name not in schema.names:
            return f"schema drift: column {name!r} is missing"
        actual = schema.field(name).type
        compatible = actual == expected or (pa.types.is_timestamp(actual) and pa.types.is_timestamp(expected))
        if not compatible:
            return f"schema drift: column {name!r} is {actual}, expected {expected}"
    return None


def bronze_files(lake: Lake, day: str) -> list[Path]:
    """The bronze data files of one event date, over every ingest run, sorted."""
    return sorted(p for p in lake.bronze.glob(f"ingest=*/event_date={day}/*.parquet") if p.is_file())


def _parsed(spark: SparkSession, files: list[Path], max_skew_ms: int, late_ms: int) -> DataFrame:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("kafka_partition", T.IntegerType()),
            T.StructField("kafka_offset", T.LongType()),
            T.StructField("kafka_timestamp", T.TimestampType()),
            T.StructField("value", T.StringType()),
        ]
    )
    event = T.StructType(
        [
            T.StructField("event_id", T.StringType()),
            T.StructField("event_time", T.StringType()),
            T.StructField("session_id", T.StringType()),
            T.StructField("user_id", T.StringType()),
            T.StructField("item_id", T.StringType()),
            T.StructField("event_type", T.StringType()),
            T.StructField("price", T.StringType()),
            T.StructField("category", T.StringType()),
            T.StructField("brand", T.StringType()),
        ]
    )
    raw = spark.read.schema(schema).parquet(*[str(f) for f in files])
    parsed = raw.withColumn("e", F.from_json("value", event, {"mode": "PERMISSIVE"}))
    broker_ms = F.unix_millis("kafka_timestamp")
    cols = {
        name: F.nullif(F.trim(F.col(f"e.{name}")), F.lit(""))
        for name in ("event_id", "session_id", "user_id", "item_id", "event_type", "category", "brand")
    }
    time_text = F.col("e.event_time")
    event_time = F.when(time_text.rlike(r"^-?\d{1,18}$"), time_text.cast("long"))
    price_text = F.col("e.price")
    price = price_text.try_cast("double") if hasattr(price_text, "try_cast") else price_text.cast("double")
    types = [t.value for t in EventType]
    reason = (
        F.when(
            F.col("value").isNull() | F.coalesce(*[F.col(f"e.{f.name}") for f in event.fields]).isNull(),
            F.lit("not a JSON object"),
        )
        .when(cols["event_id"].isNull(), F.lit("event_id: missing"))
        .when(cols["session_id"].isNull(), F.lit("session_id: missing"))
        .when(cols["item_id"].isNull(), F.lit("item_id: missing"))
        .when(
            (F.length(cols["event_id"]) > MAX_ID_LENGTH)
            | (F.length(cols["session_id"]) > MAX_ID_LENGTH)
            | (F.length(cols["item_id"]) > MAX_ID_LENGTH),
            F.lit("id longer than allowed"),
        )
        .when(~F.coalesce(cols["event_type"].isin(types), F.lit(False)), F.lit("event_type: unknown"))
        .when(event_time.isNull(), F.lit("event_time: not epoch milliseconds"))
        .when(event_time < EARLIEST_EVENT_MS, F.lit("event_time: before 2000-01-01"))
        .when(event_time > broker_ms + max_skew_ms, F.lit("clock skew: event_time ahead of the broker's clock"))
        .when(price_text.isNotNull() & price.isNull(), F.lit("price: not a number"))
        .when(price.isNotNull() & (F.isnan(price) | (price < 0)), F.lit("price: negative or NaN"))
    )
    return parsed.select(
        cols["event_id"].alias("event_id"),
        event_time.alias("event_time"),
        cols["session_id"].alias("session_id"),
        cols["user_id"].alias("user_id"),
        cols["item_id"].alias("item_id"),
        cols["event_type"].alias("event_type"),
        price.alias("price"),
        cols["category"].alias("category"),
        cols["brand"].alias("brand"),
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "value",
        ((broker_ms - event_time) > late_ms).alias("is_late"),
        reason.alias("reason"),
    )


def build_silver(
    spark: SparkSession,
    lake: Lake,
    dates: list[str],
    *,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    late_ms: int = DEFAULT_LATE_MS,
) -> list[SilverReport]:
    """Build the silver partitions of ``dates`` from bronze in one pass (idempotent per date).

    Args:
        spark: The session.
        lake: Where bronze is read and silver, quarantine and reports are written.
        dates: Event dates (``YYYY-MM-DD``); each one's partition is replaced, others are left alone.
        max_skew_ms: Events further ahead of the broker's clock are quarantined.
        late_ms: Events this far behind the broker's clock are flagged late (and kept).

    Returns:
        One report per date (also written under ``_reports/silver``).
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    started = time.monotonic()
    reports = {day: SilverReport(date=day) for day in dates}
    good: list[Path] = []
    for day in dates:
        files = bronze_files(lake, day)
        reports[day].files = len(files)
        for path in files:
            problem = check_bronze_file(path)
            if problem is None:
                good.append(path)
            else:
                reports[day].quarantined_files[str(path.relative_to(lake.root))] = problem
    for day in dates:
        for stale in (lake.silver / f"event_date={day}", lake.quarantine("silver") / f"event_date={day}"):
            if stale.exists():  # a rerun replaces the date, even when nothing is left to write
                shutil.rmtree(stale)
    if good:
        parsed = _parsed(spark, good, max_skew_ms, late_ms)
        # The date an event belongs to: its own, or (unreadable time) the broker's date.
        parsed = parsed.withColumn(
            "event_date",
            F.coalesce(
                F.when(F.col("reason").isNull(), F.to_date(F.timestamp_millis("event_time"))),
                F.to_date("kafka_timestamp"),
            ),
        )
        # Cached for the three passes below (counts, quarantine, silver) so the JSON is parsed
        # once; the raw value is kept only for rejected rows, which keeps the cache small.
        parsed = parsed.withColumn("value", F.when(F.col("reason").isNotNull(), F.col("value"))).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        for row in parsed.groupBy("event_date", "reason").agg(F.count("*").alias("n")).collect():
            report = reports.get(str(row["event_date"]))
            if report is None:
                continue
            report.records += int(row["n"])
            if row["reason"] is not None:
                report.rejected[row["reason"]] = int(row["n"])
        wanted = F.col("event_date").isin([F.lit(d).cast("date") for d in dates])
        rejected = parsed.where(F.col("reason").isNotNull() & wanted).select(
            "reason", "kafka_partition", "kafka_offset", "kafka_timestamp", "value", "event_date"
        )
        rejected.write.mode("overwrite").partitionBy("event_date").parquet(str(lake.quarantine("silver")))

        valid = parsed.where(F.col("reason").isNull() & wanted).drop("reason", "value", "kafka_timestamp")
        # Per date as well as per id: a date's rows never depend on what else is built with it.
        first = Window.partitionBy("event_date", "event_id").orderBy("kafka_partition", "kafka_offset")
        unique = valid.withColumn("_rn", F.row_number().over(first)).where(F.col("_rn") == 1).drop("_rn")
        # Sorted by session and time within each file: gold reads a session's events together.
        silver = unique.select(*SILVER_COLUMNS, "event_date").sortWithinPartitions(
            "event_date", SESSION_KEY, "event_time", "event_id"
        )
        silver.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy("event_date").parquet(
            str(lake.silver)
        )
        parsed.unpersist()

        written = spark.read.option("basePath", str(lake.silver)).parquet(
            *[str(lake.silver / f"event_date={d}") for d in dates if (lake.silver / f"event_date={d}").exists()]
        )
        for row in (
            written.groupBy("event_date")
            .agg(
                F.count("*").alias("events"),
                F.countDistinct(SESSION_KEY).alias("sessions"),
                F.sum(F.col("is_late").cast("int")).alias("late"),
            )
            .collect()
        ):
            report = reports[str(row["event_date"])]
            report.events = int(row["events"])
            report.sessions = int(row["sessions"])
            report.late = int(row["late"] or 0)
    elapsed = time.monotonic() - started
    for report in reports.values():
        accepted = report.records - sum(report.rejected.values())
        report.duplicates = accepted - report.events
        report.seconds = elapsed
        write_json_atomic(lake.report("silver", report.date), report.to_dict())
    return list(reports.values())


def silver_dates(lake: Lake) -> list[str]:
    """Event dates present in silver, sorted."""
    return sorted(p.name.split("=", 1)[1] for p in lake.silver.glob("event_date=*") if p.is_dir())

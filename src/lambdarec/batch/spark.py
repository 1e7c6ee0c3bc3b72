"""Building the Spark session the batch stages run in."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def kafka_jars(jars_dir: Path | None) -> list[Path]:
    """The Spark Kafka connector jars under ``<jars_dir>/spark`` (empty when none are resolved)."""
    if jars_dir is None:
        return []
    folder = Path(jars_dir) / "spark"
    return sorted(folder.glob("*.jar")) if folder.is_dir() else []


def build_spark(
    app_name: str = "lambdarec-batch",
    *,
    master: str | None = "local[2]",
    shuffle_partitions: int = 8,
    jars: list[Path] | None = None,
    driver_memory: str = "2g",
) -> SparkSession:
    """Get (or create) a Spark session configured for the batch stages.

    Args:
        app_name: Spark application name.
        master: Cluster master; None keeps what ``spark-submit`` set.
        shuffle_partitions: ``spark.sql.shuffle.partitions`` (small for one machine).
        jars: Extra jars (the Kafka connector for the bronze stage).
        driver_memory: Driver heap, used only when this call starts the JVM.

    Returns:
        The session; the caller stops it.
    """
    from pyspark.sql import SparkSession

    # Python workers must run the interpreter that holds lambdarec's dependencies.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    builder = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.adaptive.enabled", "true")
    )
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark

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


def jvm_running() -> bool:
    """Whether this process already holds a Spark JVM (PySpark's gateway)."""
    from pyspark import SparkContext

    return SparkContext._gateway is not None  # noqa: SLF001 - PySpark has no public accessor


def stop_spark(spark: SparkSession, *, jvm: bool = False) -> None:
    """Stop the session and, with ``jvm``, the JVM behind it.

    PySpark keeps its JVM (the driver heap, up to ``spark.driver.memory`` plus off-heap) for the
    life of the Python process even after ``stop()``; a process that goes on to train models
    would carry it along (the demo did: ~2 GB). Only stop the JVM you started (see
    :func:`jvm_running`); a later :func:`build_spark` starts a fresh one.

    Args:
        spark: The session.
        jvm: Also end the JVM.
    """
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway  # noqa: SLF001
    if not jvm or gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    if process is not None:
        # Spark's gateway server exits when its standard input closes (it watches for that).
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a JVM that ignores its closed stdin is killed
            process.kill()
            process.wait(timeout=10)
    SparkContext._gateway = None  # noqa: SLF001 - so that the next session starts a new JVM
    SparkContext._jvm = None  # noqa: SLF001

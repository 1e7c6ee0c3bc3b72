"""Fixtures of the batch-layer tests: one local[2] Spark session and a small lake (Redis: ``redis_url`` of
``tests/conftest.py``, the supervised ``services up redis``)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from lambdarec.batch.lake import Lake
from lambdarec.settings import Settings, load_settings

pytest.importorskip("pyspark")
pytest.importorskip("feast")

import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from batch_lake_helpers import DAYS, LAST, bad_rows, records, silver_hash  # noqa: E402

from lambdarec.batch.gold import build_gold  # noqa: E402
from lambdarec.batch.silver import build_silver  # noqa: E402
from lambdarec.batch.testing import BRONZE_SCHEMA, bronze_table, write_bronze  # noqa: E402


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A local[2] Spark session with 2 shuffle partitions and the Kafka connector, stopped at the end."""
    from lambdarec.batch.spark import build_spark, kafka_jars

    session = build_spark(
        "lambdarec-tests", master="local[2]", shuffle_partitions=2, jars=kafka_jars(load_settings().resolved_jars_dir())
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shop_events() -> pa.Table:
    """A small seeded shop: 3 days, ~6k events; a quarter of the sessions sit idle 45-90 minutes once."""
    from datetime import UTC, datetime

    import pyarrow.compute as pc

    from lambdarec.data.generator import GeneratorConfig, generate_events_table

    start = datetime(2024, 3, 1, tzinfo=UTC)
    config = GeneratorConfig(start=start, days=3, idle_gap_share=0.25)
    table = generate_events_table(n_events=6_000, n_items=300, n_users=150, seed=11, config=config)
    end_ms = int(start.timestamp() * 1000) + 3 * 86_400_000
    return table.filter(pc.less(table["event_time"], end_ms))  # sessions spilling into a 4th day are cut


@pytest.fixture(scope="session")
def batch_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with a private state folder for the batch tests."""
    return load_settings("local", state_dir=tmp_path_factory.mktemp("batch-state"))


@pytest.fixture(scope="session")
def batch_lake(batch_settings: Settings) -> Lake:
    """The lake of :func:`batch_settings`."""
    return Lake.under(batch_settings.state_dir)


@pytest.fixture(scope="session")
def built(spark: object, shop_events: pa.Table, batch_lake: Lake) -> dict[str, object]:
    """Bronze with duplicates and bad input, then silver of every date and gold of each date on its own."""
    lake = batch_lake
    bronze = bronze_table(shop_events)
    write_bronze(lake, bronze, run="first")
    # A redelivery of 200 records in a later run (same event ids, other offsets): duplicates.
    again = bronze.slice(100, 200)
    again = again.set_column(0, "kafka_partition", pa.array([7] * again.num_rows, pa.int32()))
    write_bronze(lake, again, run="redelivery")
    last_dir = lake.bronze / "ingest=bad" / f"event_date={LAST}"
    last_dir.mkdir(parents=True)
    from lambdarec.batch.lake import day_start_ms, parse_date

    pq.write_table(bad_rows(day_start_ms(parse_date(LAST))), last_dir / "bad-records.parquet")
    # A late event: it happened on the first day, the broker got it on the last; ingest files it
    # under its event date, in a later run.
    late = {
        "event_id": "late-1",
        "event_time": day_start_ms(parse_date(DAYS[0])) + 5,
        "session_id": "late-s",
        "item_id": "i1",
        "event_type": "view",
    }
    late_dir = lake.bronze / "ingest=late" / f"event_date={DAYS[0]}"
    late_dir.mkdir(parents=True)
    pq.write_table(
        records([orjson.dumps(late).decode()], day_start_ms(parse_date(LAST)) + 60_000), late_dir / "late.parquet"
    )
    (last_dir / "corrupt.parquet").write_bytes(b"PAR1 truncated garbage")
    drifted = bronze.slice(0, 10).rename_columns([*BRONZE_SCHEMA.names[:-1], "payload"])
    pq.write_table(drifted, last_dir / "drifted.parquet")

    reports = {r.date: r for r in build_silver(spark, lake, DAYS)}  # type: ignore[arg-type]
    first_hash = silver_hash(lake)
    gold = [build_gold(spark, lake, day) for day in DAYS]  # type: ignore[arg-type]
    return {"reports": reports, "silver_hash": first_hash, "gold": gold}

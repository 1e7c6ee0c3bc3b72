"""Synthetic generator: reproducibility, funnel shape, popularity skew, validity, bounded memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambdarec.data import (
    EVENT_SCHEMA,
    GeneratorConfig,
    GeneratorReport,
    generate_events,
    generate_events_table,
    iter_event_tables,
    open_dataset,
)
from lambdarec.schemas import ClickEvent, validate_event

pytestmark = pytest.mark.unit

N_EVENTS, N_ITEMS, N_USERS, SEED = 40_000, 3_000, 800, 11


@pytest.fixture(scope="module")
def small() -> tuple[pa.Table, GeneratorReport]:
    report = GeneratorReport()
    return generate_events_table(N_EVENTS, N_ITEMS, N_USERS, SEED, report=report), report


@pytest.fixture(scope="module")
def frame(small: tuple[pa.Table, GeneratorReport]) -> pd.DataFrame:
    return small[0].to_pandas()


def test_same_seed_same_events_other_seed_other_events(small: tuple[pa.Table, GeneratorReport]) -> None:
    table, _ = small
    assert generate_events_table(N_EVENTS, N_ITEMS, N_USERS, SEED).equals(table)
    other = generate_events_table(N_EVENTS, N_ITEMS, N_USERS, SEED + 1)
    assert not other.equals(table)
    # Different runs never share event ids.
    assert not set(other.column("event_id").to_pylist()) & set(table.column("event_id").to_pylist())


def test_exact_count_schema_and_unique_ids(small: tuple[pa.Table, GeneratorReport]) -> None:
    table, report = small
    assert table.num_rows == N_EVENTS == report.n_events
    assert table.schema.equals(EVENT_SCHEMA)
    assert len(set(table.column("event_id").to_pylist())) == N_EVENTS


def test_every_row_passes_validation(small: tuple[pa.Table, GeneratorReport]) -> None:
    rejected = [r for e in small[0].to_pylist() if not isinstance(r := validate_event(e), ClickEvent)]
    assert rejected == []


def test_funnel_rates_and_report_counts(frame: pd.DataFrame, small: tuple[pa.Table, GeneratorReport]) -> None:
    _, report = small
    counts = frame["event_type"].value_counts()
    views, carts, purchases = counts["view"], counts["cart"], counts["purchase"]
    assert views > carts > purchases > 0
    assert (report.n_views, report.n_carts, report.n_purchases) == (views, carts, purchases)
    config = GeneratorConfig()
    assert carts / views == pytest.approx(config.cart_rate, rel=0.15)
    assert purchases / carts == pytest.approx(config.purchase_rate, rel=0.15)
    assert report.n_sessions == frame["session_id"].nunique()
    anonymous = frame.groupby("session_id")["user_id"].apply(lambda u: u.isna().all())
    assert report.n_anonymous_sessions == int(anonymous.sum())
    assert anonymous.mean() == pytest.approx(config.anonymous_share, abs=0.05)


def test_funnel_steps_follow_in_time(frame: pd.DataFrame) -> None:
    # Every cart follows a view of the same item in the session; every purchase a cart.
    first = frame.pivot_table(index=["session_id", "item_id"], columns="event_type", values="event_time", aggfunc="min")
    carted = first[first["cart"].notna()]
    assert (carted["view"] <= carted["cart"]).all()
    bought = first[first["purchase"].notna()]
    assert bought["cart"].notna().all()
    assert (bought["cart"] <= bought["purchase"]).all()


def test_popularity_is_skewed(frame: pd.DataFrame, small: tuple[pa.Table, GeneratorReport]) -> None:
    _, report = small
    per_item = frame["item_id"].value_counts()
    top = per_item.iloc[: N_ITEMS // 100].sum() / len(frame)
    assert top > 0.3  # a uniform catalogue would give 1%
    assert report.top1pct_item_share == pytest.approx(top)
    assert report.n_items_seen == per_item.size


def test_catalogue_is_consistent(frame: pd.DataFrame) -> None:
    per_item = frame.groupby("item_id").agg(
        prices=("price", "nunique"), categories=("category", "nunique"), brands=("brand", "nunique")
    )
    assert (per_item[["prices", "categories"]] == 1).all().all()
    assert (per_item["brands"] <= 1).all()
    assert frame["category"].str.fullmatch(r"[a-z]+\.c\d{3}").all()
    assert frame["price"].gt(0).all()
    assert 0.05 < frame["brand"].isna().mean() < 0.3


def test_time_span_and_daily_cycle(frame: pd.DataFrame) -> None:
    config = GeneratorConfig()
    start = int(config.start.timestamp() * 1000)
    assert frame["event_time"].min() >= start
    # Sessions start within the span; the last ones may run on for a few hours.
    assert frame["event_time"].max() < start + (config.days + 1) * 86_400_000
    hours = pd.to_datetime(frame["event_time"], unit="ms", utc=True).dt.hour.value_counts()
    assert hours[int(config.peak_hour_utc)] > 2 * hours[(int(config.peak_hour_utc) + 12) % 24]


def test_blocks_are_time_sorted() -> None:
    for table in iter_event_tables(10_000, 500, 100, 3):
        times = table.column("event_time").to_pylist()
        assert times == sorted(times)


def test_parquet_output_is_chunked_and_independent_of_chunk_size(tmp_path: Path) -> None:
    a = generate_events(60_000, 2_000, 500, 5, tmp_path / "a.parquet", chunk_size=10_000, progress=False)
    b = generate_events(60_000, 2_000, 500, 5, tmp_path / "b", chunk_size=35_000, progress=False)
    assert b.out_path == str(tmp_path / "b" / "events.parquet")
    meta = pq.ParquetFile(a.out_path).metadata
    assert meta.num_rows == 60_000 and meta.num_row_groups == a.row_groups == 6
    assert [meta.row_group(i).num_rows for i in range(6)] == [10_000] * 6
    assert pq.read_table(a.out_path).equals(pq.read_table(b.out_path))


def test_synthetic_adapter_reads_the_output_back(tmp_path: Path) -> None:
    report = generate_events(20_000, 1_000, 300, 9, tmp_path / "gen", chunk_size=5_000, progress=False)
    adapter = open_dataset(f"synthetic:{tmp_path / 'gen'}")
    table = adapter.read_table()
    assert adapter.report.rows_read == adapter.report.events_emitted == report.n_events
    assert adapter.report.dropped == {}
    assert table.equals(pq.read_table(report.out_path))


def _arrow_peak(pool: pa.MemoryPool, events: Iterator[None]) -> int:
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        for _ in events:
            pass
    finally:
        pa.set_memory_pool(previous)
    return pool.max_memory() or 0


def test_200k_events_stream_in_bounded_memory(tmp_path: Path) -> None:
    n_events, chunk = 200_000, 20_000

    def run() -> Iterator[None]:
        generate_events(n_events, 20_000, 5_000, 1, tmp_path / "big.parquet", chunk_size=chunk, progress=False)
        yield None

    tracemalloc.start()
    arrow_peak = _arrow_peak(pa.proxy_memory_pool(pa.default_memory_pool()), run())
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole = pq.read_table(tmp_path / "big.parquet")
    assert whole.num_rows == n_events
    # Arrow holds about a chunk (plus one block) at a time, not the whole table.
    assert arrow_peak < whole.nbytes / 3
    # numpy scratch is per block plus per-item/per-session arrays, far below per-event totals.
    assert numpy_peak < 64 * n_events


def _longest_idle_ms(frame: pd.DataFrame) -> pd.Series:
    ordered = frame.sort_values(["session_id", "event_time"])
    return ordered.groupby("session_id")["event_time"].diff().groupby(ordered["session_id"]).max()


def test_default_shop_is_unchanged_by_the_idle_gap_option() -> None:
    import hashlib

    # Digest of this table as generated before idle_gap_share existed: same ids, same events.
    table = generate_events_table(5_000, 300, 100, 11)
    digest = hashlib.sha256(str(table.to_pydict()).encode()).hexdigest()
    assert digest == "f3bb09588dc876a30b184f4fa14abf8bed2d7cf29bc5926126cf388a6d2480ac"


def test_idle_gap_share_makes_sessions_sit_idle_and_keep_their_id(frame: pd.DataFrame) -> None:
    thirty_min = 30 * 60_000
    assert (_longest_idle_ms(frame) > thirty_min).mean() < 0.001  # without the option: none (bar a rare checkout)
    config = GeneratorConfig(idle_gap_share=0.3)
    idle = generate_events_table(N_EVENTS, N_ITEMS, N_USERS, SEED, config=config).to_pandas()
    views = idle[idle["event_type"] == "view"].groupby("session_id").size()
    longest = _longest_idle_ms(idle)[views.index[views >= 2]]
    assert (longest > thirty_min).mean() == pytest.approx(0.3, abs=0.04)
    assert longest.max() <= 90 * 60_000
    # The sessions are the same ones (the idle time moved their later events, split none of them);
    # the first block is compared whole (the last one is cut to the exact count, by time).
    assert idle["session_id"].nunique() == frame["session_id"].nunique()

    def first_block_sizes(events: pd.DataFrame) -> list[int]:
        number = events["session_id"].str.rsplit("-s", n=1).str[1].astype(int)
        return events[number < GeneratorConfig().block_sessions].groupby(number).size().tolist()

    assert first_block_sizes(idle) == first_block_sizes(frame)
    funnel = idle.pivot_table(index=["session_id", "item_id"], columns="event_type", values="event_time", aggfunc="min")
    carted = funnel[funnel["cart"].notna()]
    assert (carted["view"] <= carted["cart"]).all()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="cart_rate"):
        GeneratorConfig(cart_rate=1.5)
    with pytest.raises(ValueError, match="idle_gap_share"):
        GeneratorConfig(idle_gap_share=-0.1)
    with pytest.raises(ValueError, match="at least 1"):
        generate_events_table(0, 10, 10, 1)


def test_tiny_shop_still_works() -> None:
    table = generate_events_table(50, 1, 1, 0)
    assert table.num_rows == 50
    assert set(table.column("item_id").to_pylist()) == {"0"}

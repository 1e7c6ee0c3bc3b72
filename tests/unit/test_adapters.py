"""Dataset adapters: real samples, hand-made bad rows, ids, registry and event-time order.

Expected counts are recomputed here with pandas/json from the raw files, not copied from the
adapters' output, so a wrong drop rule or a lost row shows up as a mismatch.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from lambdarec.data import (
    EVENT_SCHEMA,
    AdapterReport,
    CsvMapping,
    DatasetAdapter,
    adapter_names,
    iter_events_by_time,
    open_dataset,
    sort_tables_by_time,
)
from lambdarec.data.adapters import UCI_NON_PRODUCT_CODES
from lambdarec.schemas import ClickEvent, validate_event

pytestmark = pytest.mark.unit

DATASETS = Path(__file__).parents[2].parent / "shared" / "datasets"
FIXTURES = Path(__file__).parents[1] / "data"
REES46 = DATASETS / "rees46_2019oct_head" / "2019-Oct.head.clean.csv"
OTTO = DATASETS / "otto_sample" / "train.jsonl"
DIGINETICA = DATASETS / "diginetica"
UCI = DATASETS / "uci_online_retail" / "retail_session.parquet.snappy"


def needs(path: Path) -> None:
    """Skip when a shared sample is not on this machine."""
    if not path.exists():
        pytest.skip(f"shared dataset sample {path} is absent (it lives outside the repo, in ../shared)")


def read(spec: str, **options: Any) -> tuple[pa.Table, AdapterReport]:
    adapter = open_dataset(spec, **options)
    table = adapter.read_table()
    return table, adapter.report


def assert_sound(table: pa.Table, report: AdapterReport) -> None:
    """Every row accounted for, every event valid, schema as promised."""
    assert report.complete
    assert report.rows_read == report.events_emitted + report.rows_dropped
    assert report.events_emitted == table.num_rows
    assert table.schema.equals(EVENT_SCHEMA)
    rejected = [(e, r) for e in table.to_pylist() if not isinstance(r := validate_event(e), ClickEvent)]
    assert rejected == []


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# REES46 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rees46() -> tuple[pa.Table, AdapterReport]:
    needs(REES46)
    return read(f"rees46:{REES46}")


def test_rees46_sample_counts_match_pandas(rees46: tuple[pa.Table, AdapterReport]) -> None:
    table, report = rees46
    raw = pd.read_csv(REES46, dtype=str, keep_default_na=False)
    assert_sound(table, report)
    assert report.rows_read == len(raw)
    assert report.dropped == Counter()  # the head of October has only view/cart/purchase rows
    assert report.adjusted == Counter({"price 0 read as unknown": int((raw["price"].astype(float) == 0).sum())})
    assert Counter(table.column("event_type").to_pylist()) == Counter(raw["event_type"])
    # Verbatim duplicate rows share an id: distinct ids == distinct source rows.
    assert len(set(table.column("event_id").to_pylist())) == len(raw.drop_duplicates())


def test_rees46_fields_map_row_by_row(rees46: tuple[pa.Table, AdapterReport]) -> None:
    table, _ = rees46
    raw = pd.read_csv(REES46, dtype=str, keep_default_na=False)
    expected_ms = (
        pd.to_datetime(raw["event_time"], format="%Y-%m-%d %H:%M:%S UTC", utc=True) - pd.Timestamp(0, tz="UTC")
    ) // pd.Timedelta(1, "ms")
    assert table.column("event_time").to_pylist() == expected_ms.tolist()
    assert table.column("session_id").to_pylist() == raw["user_session"].tolist()
    assert table.column("item_id").to_pylist() == raw["product_id"].tolist()
    assert table.column("user_id").to_pylist() == raw["user_id"].tolist()
    assert table.column("category").to_pylist() == raw["category_id"].tolist()
    assert table.column("brand").to_pylist() == [b or None for b in raw["brand"]]
    prices = [None if float(p) == 0 else float(p) for p in raw["price"]]
    assert table.column("price").to_pylist() == prices


def test_rees46_category_code_option() -> None:
    needs(REES46)
    table, _ = read(f"rees46:{REES46}", category="code")
    raw = pd.read_csv(REES46, dtype=str, keep_default_na=False)
    assert table.column("category").to_pylist() == [c or None for c in raw["category_code"]]


def test_rees46_bad_rows_are_counted_with_reasons(tmp_path: Path) -> None:
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    path = write_csv(
        tmp_path / "month.csv",
        [
            header,
            "2020-01-01 10:00:00 UTC,view,1,10,a.b,acme,5.00,7,s-1",
            "2020-01-01 10:00:01 UTC,remove_from_cart,1,10,a.b,acme,5.00,7,s-1",
            "2020-01-01 10:00:02 UTC,cart,1,10,a.b,acme,5.00,7,",
            "yesterday,view,1,10,a.b,acme,5.00,7,s-1",
            "2020-01-01 10:00:03 UTC,view,,10,a.b,acme,5.00,7,s-1",
            "2020-01-01 10:00:04 UTC,view,1,10",
            "2020-01-01 10:00:05 UTC,view,2,10,,,abc,7,s-1",
            "2020-01-01 10:00:06 UTC,purchase,2,10,,,0,,s-1",
            "2020-01-01 10:00:07 UTC,wishlist,2,10,,,1,7,s-1",
        ],
    )
    table, report = read(f"rees46:{path}")
    assert_sound(table, report)
    assert report.rows_read == 9
    assert report.dropped == Counter(
        {
            "remove_from_cart (not a view/cart/purchase funnel step)": 1,
            "missing user_session": 1,
            "unparseable event_time": 1,
            "missing product_id": 1,
            "malformed CSV line (wrong number of fields)": 1,
            "unsupported event type 'wishlist'": 1,
        }
    )
    assert report.adjusted == Counter({"unparseable price read as unknown": 1, "price 0 read as unknown": 1})
    rows = table.to_pylist()
    assert [r["event_type"] for r in rows] == ["view", "view", "purchase"]
    assert rows[2]["user_id"] is None and rows[2]["price"] is None


def test_rees46_rejects_a_file_of_another_format(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", ["a,b,c", "1,2,3"])
    with pytest.raises(ValueError, match="lacks column"):
        open_dataset(f"rees46:{path}").read_table()


# OTTO --------------------------------------------------------------------------------------


def test_otto_sample_counts_match_json() -> None:
    needs(OTTO)
    sessions = [json.loads(line) for line in OTTO.read_text().splitlines() if line.strip()]
    events = [(str(s["session"]), e) for s in sessions for e in s["events"]]
    table, report = read(f"otto:{OTTO}")
    assert_sound(table, report)
    assert report.rows_read == len(events) == report.events_emitted
    mapping = {"clicks": "view", "carts": "cart", "orders": "purchase"}
    assert table.column("event_type").to_pylist() == [mapping[e["type"]] for _, e in events]
    assert table.column("session_id").to_pylist() == [s for s, _ in events]
    assert table.column("item_id").to_pylist() == [str(e["aid"]) for _, e in events]
    assert table.column("event_time").to_pylist() == [e["ts"] for _, e in events]
    assert table.column("user_id").null_count == table.num_rows  # OTTO is anonymous
    distinct = {(s, e["aid"], e["ts"], e["type"]) for s, e in events}
    assert len(set(table.column("event_id").to_pylist())) == len(distinct)


def test_otto_bad_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [
        {"session": 1, "events": [{"aid": 10, "ts": 1659304800025, "type": "clicks"}]},
        "this is not json",
        {"session": 2},
        {
            "session": 3,
            "events": [
                {"ts": 1659304800025, "type": "clicks"},
                {"aid": 11, "ts": 1659304800, "type": "carts"},
                {"aid": 12, "ts": "soon", "type": "orders"},
                {"aid": 13, "ts": 1659304800025, "type": "wishlist"},
            ],
        },
    ]
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    table, report = read(f"otto:{path}")
    assert_sound(table, report)
    assert report.rows_read == 7
    assert report.dropped == Counter(
        {
            "malformed JSON line": 1,
            "session record without an events list": 1,
            "missing or non-integer aid": 1,
            "missing or non-numeric ts": 1,
            "unsupported event type 'wishlist'": 1,
        }
    )
    assert report.adjusted == Counter({"ts in seconds converted to ms": 1})
    assert table.column("event_time").to_pylist() == [1659304800025, 1659304800000]


# RetailRocket and YooChoose (hand-written fixtures) ----------------------------------------


def test_retailrocket_fixture() -> None:
    table, report = read(f"retailrocket:{FIXTURES / 'retailrocket'}")
    assert_sound(table, report)
    assert report.rows_read == 12
    assert report.dropped == Counter(
        {
            "malformed CSV line (wrong number of fields)": 1,
            "unparseable timestamp": 1,
            "missing visitorid": 1,
            "missing itemid": 1,
            "unsupported event type 'removefromcart'": 1,
        }
    )
    rows = table.to_pylist()
    assert [r["event_type"] for r in rows[:5]] == ["view", "view", "cart", "purchase", "view"]
    # A session is one visitor's UTC day.
    assert [r["session_id"] for r in rows[:5]] == ["1001-20150602"] * 4 + ["1001-20150603"]
    assert rows[0]["user_id"] == "1001"
    # The verbatim duplicate line keeps one id, so downstream dedup removes it.
    assert rows[5]["event_id"] == rows[6]["event_id"]
    assert len({r["event_id"] for r in rows}) == 6


def test_yoochoose_fixture() -> None:
    table, report = read(f"yoochoose:{FIXTURES / 'yoochoose'}")
    assert_sound(table, report)
    assert report.rows_read == 11
    assert report.dropped == Counter(
        {
            "malformed CSV line (wrong number of fields)": 1,
            "unparseable timestamp": 1,
            "missing item": 1,
            "negative quantity": 1,
        }
    )
    assert report.adjusted == Counter({"price 0 read as unknown": 1, "unparseable price read as unknown": 1})
    rows = table.to_pylist()
    # Clicks file first, then buys: file order.
    assert [r["event_type"] for r in rows] == ["view"] * 4 + ["purchase"] * 3
    # Category code: 0 unknown, S special offer, 1-12 category, other numbers a brand.
    assert [(r["category"], r["brand"]) for r in rows[:4]] == [
        (None, None),
        (None, None),
        ("7", None),
        (None, "2058139875"),
    ]
    assert rows[1]["event_time"] == 1396864890500  # 2014-04-07T10:01:30.500Z
    assert [r["price"] for r in rows[4:]] == [1046.0, None, None]


def test_yoochoose_single_buys_file() -> None:
    table, report = read(f"yoochoose:{FIXTURES / 'yoochoose' / 'yoochoose-buys.dat'}")
    assert report.rows_read == 4
    assert set(table.column("event_type").to_pylist()) == {"purchase"}


# DIGINETICA --------------------------------------------------------------------------------


def test_diginetica_sample_matches_pandas() -> None:
    needs(DIGINETICA)
    views = pd.read_csv(DIGINETICA / "sample_train-item-views.csv", sep=";", dtype=str, keep_default_na=False)
    buys = pd.read_csv(DIGINETICA / "train-purchases.csv", sep=";", dtype=str, keep_default_na=False)
    cats = pd.read_csv(DIGINETICA / "product-categories.csv", sep=";", dtype=str)
    table, report = read(f"diginetica:{DIGINETICA}")
    assert_sound(table, report)
    assert report.rows_read == len(views) + len(buys)
    assert report.dropped == Counter()
    assert Counter(table.column("event_type").to_pylist()) == Counter({"view": len(views), "purchase": len(buys)})

    def day_ms(frame: pd.DataFrame) -> pd.Series:
        day = pd.to_datetime(frame["eventdate"], utc=True) - pd.Timestamp(0, tz="UTC")
        return day // pd.Timedelta(1, "ms") + frame["timeframe"].astype("int64")

    expected_times = pd.concat([day_ms(views), day_ms(buys)]).tolist()
    assert table.column("event_time").to_pylist() == expected_times
    users = pd.concat([views["user_id"], buys["userId"]])
    assert table.column("user_id").to_pylist() == [None if u == "NA" else u for u in users]
    category_of = dict(zip(cats["itemId"], cats["categoryId"], strict=True))
    items = pd.concat([views["item_id"], buys["itemId"]]).tolist()
    assert table.column("category").to_pylist() == [category_of.get(i) for i in items]
    distinct = len(views.drop_duplicates()) + len(buys.drop_duplicates())
    assert len(set(table.column("event_id").to_pylist())) == distinct


def test_diginetica_bad_rows(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "train-item-views.csv",
        [
            "session_id;user_id;item_id;timeframe;eventdate",
            "1;NA;100;5000;2016-05-09",
            "1;NA;101;soon;2016-05-09",
            "1;NA;102;5000;someday",
            "2;9;103;-5;2016-05-09",
            ";9;104;10;2016-05-09",
        ],
    )
    write_csv(
        tmp_path / "train-purchases.csv",
        ["sessionId;userId;timeframe;eventdate;ordernumber;itemId", "1;NA;9000;2016-05-09;77;100", "1;NA;9000"],
    )
    table, report = read(f"diginetica:{tmp_path}")
    assert_sound(table, report)
    assert report.dropped == Counter(
        {
            "unparseable timeframe": 1,
            "unparseable eventdate": 1,
            "negative timeframe": 1,
            "missing session_id": 1,
            "malformed CSV line (wrong number of fields)": 1,
        }
    )
    assert table.column("event_time").to_pylist() == [1462752005000, 1462752009000]
    assert table.column("category").null_count == 2  # no product-categories file here


# UCI Online Retail -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uci() -> tuple[pa.Table, AdapterReport]:
    needs(UCI)
    return read(f"uci:{UCI}")


def test_uci_drop_counts_match_pandas(uci: tuple[pa.Table, AdapterReport]) -> None:
    table, report = uci
    raw = pd.read_parquet(UCI)
    left = pd.Series(True, index=raw.index)
    expected: Counter[str] = Counter()
    for reason, rule in [
        ("cancelled invoice (InvoiceNo starts with C)", raw["InvoiceNo"].str.startswith("C")),
        ("quantity of zero or less (return or correction)", raw["Quantity"] <= 0),
        (
            "non-product line (postage, fee, discount, sample, adjustment)",
            raw["StockCode"].str.upper().isin(UCI_NON_PRODUCT_CODES),
        ),
        ("unit price of zero or less", raw["UnitPrice"] <= 0),
    ]:
        hit = left & rule
        expected[reason] = int(hit.sum())
        left &= ~hit
    assert_sound(table, report)
    assert report.rows_read == len(raw)
    assert report.dropped == expected
    kept = raw[left]
    assert report.events_emitted == len(kept)
    assert set(table.column("event_type").to_pylist()) == {"purchase"}
    assert table.column("session_id").to_pylist() == kept["InvoiceNo"].tolist()
    assert table.column("item_id").to_pylist() == kept["StockCode"].tolist()
    assert table.column("price").to_pylist() == kept["UnitPrice"].tolist()
    # Missing CustomerID is kept, as an anonymous purchase.
    assert table.column("user_id").null_count == int(kept["CustomerID"].isna().sum()) > 0
    assert len(set(table.column("event_id").to_pylist())) == len(kept.drop_duplicates())


def test_uci_hand_made_bad_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "InvoiceNo": ["500001", "C500002", "500003", "500004", "500005", "500006"],
            "StockCode": ["10001", "10001", "10002", "POST", "10003", "10004"],
            "Description": ["MUG", "MUG", "CUP", "POSTAGE", "BOWL", "PLATE"],
            "Quantity": [2, -2, 0, 1, 1, 3],
            "InvoiceDate": pd.to_datetime(["2011-01-01 10:00"] * 5 + [None]),
            "UnitPrice": [1.5, 1.5, 2.0, 18.0, 0.0, 4.0],
            "CustomerID": [12345.0, 12345.0, np.nan, np.nan, np.nan, 777.0],
            "Country": ["UK"] * 6,
        }
    )
    path = tmp_path / "retail.parquet"
    frame.to_parquet(path)
    table, report = read(f"uci:{path}", timezone="Europe/London")
    assert_sound(table, report)
    assert report.dropped == Counter(
        {
            "cancelled invoice (InvoiceNo starts with C)": 1,
            "quantity of zero or less (return or correction)": 1,
            "non-product line (postage, fee, discount, sample, adjustment)": 1,
            "unit price of zero or less": 1,
            "unparseable InvoiceDate": 1,
        }
    )
    assert table.to_pylist()[0]["user_id"] == "12345"
    assert table.to_pylist()[0]["event_time"] == 1293876000000  # 10:00 GMT == UTC in January


def test_uci_lines_of_an_invoice_get_distinct_ordered_milliseconds(uci: tuple[pa.Table, AdapterReport]) -> None:
    # Line k (file order, kept lines) of an invoice at InvoiceDate + k ms, across the adapter's batches.
    table, report = uci
    raw = pd.read_parquet(UCI)
    kept = raw[
        ~raw["InvoiceNo"].str.startswith("C")
        & (raw["Quantity"] > 0)
        & ~raw["StockCode"].str.upper().isin(UCI_NON_PRODUCT_CODES)
        & (raw["UnitPrice"] > 0)
    ]
    assert len(kept) > 100_000  # more than one batch of the adapter
    rank = kept.groupby("InvoiceNo").cumcount().to_numpy()
    base = pd.to_datetime(kept["InvoiceDate"]).dt.tz_localize("UTC").astype("datetime64[ms, UTC]").astype("int64")
    assert table.column("event_time").to_pylist() == (base.to_numpy() + rank).tolist()
    assert report.adjusted[next(r for r in report.adjusted if r.startswith("invoice line k"))] == int((rank > 0).sum())
    times = pd.DataFrame({"invoice": kept["InvoiceNo"].to_numpy(), "t": table.column("event_time").to_pylist()})
    assert not times.duplicated().any()


def test_uci_invoice_split_across_batches_keeps_counting(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "InvoiceNo": ["1", "1", "2", "1", "1"],
            "StockCode": ["10001", "POST", "10002", "10003", "10004"],
            "Description": [""] * 5,
            "Quantity": [1] * 5,
            "InvoiceDate": pd.to_datetime(["2011-01-01 10:00"] * 5),
            "UnitPrice": [1.0] * 5,
            "CustomerID": [1.0] * 5,
            "Country": ["UK"] * 5,
        }
    )
    path = tmp_path / "retail.parquet"
    frame.to_parquet(path)
    table, report = read(f"uci:{path}", batch_size=2)
    base = 1293876000000
    assert table.column("event_time").to_pylist() == [base, base, base + 1, base + 2]  # POST dropped, not counted
    assert sum(report.adjusted.values()) == 2


# Generic CSV -------------------------------------------------------------------------------


def test_generic_csv_with_sidecar_mapping() -> None:
    table, report = read(f"csv:{FIXTURES / 'generic' / 'shop.csv'}")
    assert_sound(table, report)
    assert report.rows_read == 6
    assert report.dropped == Counter(
        {"unparseable timestamp": 1, "unsupported event type 'wishlist'": 1, "missing session id": 1}
    )
    rows = table.to_pylist()
    assert [r["event_type"] for r in rows] == ["view", "cart", "purchase"]
    assert {r["session_id"] for r in rows} == {"alice-20240301"}
    assert rows[1]["price"] == 19.99 and rows[0]["price"] is None
    assert all(r["event_id"].startswith("shop-") for r in rows)


def test_generic_csv_epoch_seconds_and_constant_type(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "orders.csv", ["1700000000|c1|o1|p9", "1700000060|c1|o1|p8", "x|c2|o2|p1"])
    mapping = {
        "columns": {"event_time": "t", "user_id": "cust", "session_id": "order", "item_id": "product"},
        "constant_event_type": "purchase",
        "timestamp": "epoch_s",
        "delimiter": "|",
        "column_names": ["t", "cust", "order", "product"],
    }
    table, report = read(f"csv:{path}", mapping=mapping)
    assert_sound(table, report)
    assert table.column("event_time").to_pylist() == [1_700_000_000_000, 1_700_000_060_000]
    assert table.column("session_id").to_pylist() == ["o1", "o1"]
    assert report.dropped == Counter({"unparseable timestamp": 1})


def test_csv_mapping_is_validated() -> None:
    with pytest.raises(ValidationError, match="item_id"):
        CsvMapping(columns={"event_time": "t", "user_id": "u", "event_type": "e"})
    with pytest.raises(ValidationError, match="session_id or a user_id"):
        CsvMapping(columns={"event_time": "t", "item_id": "i", "event_type": "e"})
    with pytest.raises(ValidationError, match="unknown event field"):
        CsvMapping(columns={"event_time": "t", "item_id": "i", "user_id": "u", "event_type": "e", "colour": "c"})


# Ids, registry, streaming ------------------------------------------------------------------


def test_event_ids_are_deterministic_across_reads_and_adapters() -> None:
    first = open_dataset(f"retailrocket:{FIXTURES / 'retailrocket'}")
    ids_a = [e["event_id"] for e in first]
    ids_b = [e["event_id"] for e in open_dataset(f"retailrocket:{FIXTURES / 'retailrocket' / 'events.csv'}")]
    assert ids_a == ids_b
    # Small batches change nothing but memory.
    small = open_dataset(f"yoochoose:{FIXTURES / 'yoochoose'}", batch_size=1)
    assert [e["event_id"] for e in small] == [
        e["event_id"] for e in open_dataset(f"yoochoose:{FIXTURES / 'yoochoose'}")
    ]


def test_iter_events_yields_plain_dicts_with_the_event_fields() -> None:
    adapter = open_dataset(f"csv:{FIXTURES / 'generic' / 'shop.csv'}")
    events = list(adapter.iter_events())
    assert all(list(e) == list(ClickEvent.model_fields) for e in events)
    assert adapter.report.complete and adapter.report.events_emitted == len(events)


def test_registry_lists_and_rejects() -> None:
    assert set(adapter_names()) == {
        "rees46",
        "otto",
        "retailrocket",
        "yoochoose",
        "diginetica",
        "uci",
        "csv",
        "synthetic",
    }
    assert isinstance(open_dataset(f"RetailRocket:{FIXTURES / 'retailrocket'}"), DatasetAdapter)
    with pytest.raises(ValueError, match="unknown adapter"):
        open_dataset("nope:/tmp")
    with pytest.raises(ValueError, match="<adapter>:<path>"):
        open_dataset("rees46")
    with pytest.raises(FileNotFoundError):
        open_dataset("rees46:/no/such/file.csv")
    with pytest.raises(ValueError, match="column mapping"):
        open_dataset(f"csv:{FIXTURES / 'retailrocket' / 'events.csv'}")


def _stable_time_order(table: pa.Table) -> list[str]:
    frame = table.select(["event_id", "event_time"]).to_pandas()
    return frame.sort_values("event_time", kind="stable")["event_id"].tolist()


@pytest.mark.parametrize("max_rows_in_memory", [1_000_000, 3_000])
def test_events_by_time_is_a_stable_sort(max_rows_in_memory: int, tmp_path: Path) -> None:
    needs(DIGINETICA)
    table = open_dataset(f"diginetica:{DIGINETICA}", batch_size=2_000).read_table()
    assert table.column("event_time").to_pylist() != sorted(table.column("event_time").to_pylist())
    ordered = list(
        iter_events_by_time(f"diginetica:{DIGINETICA}", max_rows_in_memory=max_rows_in_memory, tmp_dir=tmp_path)
    )
    assert [e["event_id"] for e in ordered] == _stable_time_order(table)
    assert list(tmp_path.iterdir()) == []  # spilled runs are removed


def test_merge_handles_runs_of_equal_times(tmp_path: Path) -> None:
    # Many ties across run boundaries: the merge must keep file order among them.
    times = np.repeat(np.arange(50, dtype=np.int64), 40) * 1000 + 1_600_000_000_000
    rng = np.random.default_rng(3)
    rng.shuffle(times)
    table = pa.table({"event_id": [f"e{i}" for i in range(len(times))], "event_time": times})
    batches = [table.slice(i, 97) for i in range(0, table.num_rows, 97)]
    out = pa.concat_tables(sort_tables_by_time(batches, max_rows_in_memory=300, batch_rows=64, tmp_dir=tmp_path))
    assert out.column("event_id").to_pylist() == _stable_time_order(table)


def test_report_summary_and_dict() -> None:
    adapter = open_dataset(f"retailrocket:{FIXTURES / 'retailrocket'}")
    adapter.read_table()
    summary = adapter.report.summary()
    assert "12 rows read, 7 events, 5 dropped" in summary
    as_dict = adapter.report.to_dict()
    assert json.loads(json.dumps(as_dict))["dropped"]["missing itemid"] == 1


def test_quoted_and_gzipped_csv(tmp_path: Path) -> None:
    header = '"event_time","event_type","product_id","category_id","category_code","brand","price",'
    header += '"user_id","user_session"'
    row = '"2020-01-01 10:00:00 UTC","cart","1","10","a.b","acme, inc",5.5,"7","s-1"'
    path = tmp_path / "month.csv.gz"
    path.write_bytes(gzip.compress(f"{header}\n{row}\n".encode()))
    table, report = read(f"rees46:{path}")
    assert_sound(table, report)
    assert table.to_pylist()[0]["brand"] == "acme, inc"
    assert table.to_pylist()[0]["event_time"] == 1577872800000

"""Adapters from public e-commerce event formats to our clickstream events.

Each adapter streams its source in file order as Arrow tables with the columns of
:class:`lambdarec.schemas.ClickEvent` (``iter_tables``) or as plain dicts
(``iter_events``), and fills an :class:`AdapterReport` as it goes: rows read, events
emitted, and every dropped row under the reason it was dropped. A bad row never aborts a
read; a file that is not the format at all (missing columns) does.

Event ids are ``<dataset>-<hash of the row's source fields>``: re-reading a file yields the
same ids, and a row duplicated verbatim in the source gets the same id twice, so downstream
dedup by ``event_id`` removes it (intended: a verbatim copy of a log line is the same event).
"""

from __future__ import annotations

import gzip
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lambdarec.data._clean import (
    EVENT_SCHEMA,
    TEXT,
    CandidateBatch,
    constant,
    datetimes_to_ms,
    id_text,
    join_key,
    numbers,
    read_csv_batches,
    text,
    to_frame,
)
from lambdarec.data.report import AdapterReport
from lambdarec.names import EventType

_BYTES_PER_ROW = 128  # rough CSV row size, to turn a row budget into a read block size


class DatasetAdapter(ABC):
    """A readable dataset in one public format.

    Args:
        path: A file, or a folder holding the format's files.
        batch_size: About how many source rows each batch holds (bounds memory).

    Attributes:
        report: The report of the current (or last) read; reset by each new read.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    earliest_ms: int = AdapterReport.earliest_ms
    """Rows before this event time are dropped (``Settings.earliest_event_time``; see ``open_dataset``)."""

    def __init__(self, path: str | Path, *, batch_size: int = 100_000) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.name}: {self.path} does not exist")
        self.batch_size = batch_size
        self.report = AdapterReport(self.name, str(self.path))

    def iter_tables(self) -> Iterator[pa.Table]:
        """Stream the dataset as event tables (schema :data:`EVENT_SCHEMA`), in file order.

        Yields:
            Non-empty tables; ``self.report`` is complete once the iterator is exhausted.
        """
        self.report = AdapterReport(self.name, str(self.path), earliest_ms=self.earliest_ms)
        for table in self._tables(self.report):
            if table.num_rows:
                yield table
        self.report.complete = True

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Stream the dataset as event dicts with the ``ClickEvent`` fields, in file order."""
        for table in self.iter_tables():
            yield from table.to_pylist()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_events()

    def read_table(self) -> pa.Table:
        """Read everything into one event table (for samples; big inputs should stream)."""
        tables = list(self.iter_tables())
        return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()

    @abstractmethod
    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        """Yield event tables, counting rows read and dropped in ``report``."""

    def _files(self, *patterns: str) -> list[Path]:
        """The path itself, or the folder's files matching ``patterns``: by pattern, then name."""
        if self.path.is_file():
            return [self.path]
        found: list[Path] = []
        for pattern in patterns:
            found += [f for f in sorted(self.path.glob(pattern)) if f.is_file() and f not in found]
        if not found:
            raise FileNotFoundError(f"{self.name}: no {' or '.join(patterns)} file in {self.path}")
        return found

    @property
    def _csv_block(self) -> int:
        return max(1 << 16, self.batch_size * _BYTES_PER_ROW)


def _zero_price_is_unknown(batch: CandidateBatch) -> None:
    # A 0 price in these logs marks a missing price, not a free item.
    zero = (batch.price == 0) & batch.keep
    batch.report.adjust("price 0 read as unknown", int(zero.sum()))
    batch.price[zero] = np.nan


def _unparseable_price_is_unknown(batch: CandidateBatch, raw: pd.Series) -> None:
    bad = np.isnan(batch.price) & (text(raw) != "").to_numpy() & batch.keep
    batch.report.adjust("unparseable price read as unknown", int(bad.sum()))


class Rees46Adapter(DatasetAdapter):
    """REES46 multi-category store CSV (Kaggle "eCommerce behavior data").

    Columns: event_time (``YYYY-MM-DD HH:MM:SS UTC``), event_type, product_id, category_id,
    category_code, brand, price, user_id, user_session. ``remove_from_cart`` rows (later
    months) are dropped: they are not a step of our view/cart/purchase funnel.

    Args:
        path: A CSV (optionally ``.gz``), or a folder of monthly CSVs read in name order.
        category: ``"id"`` uses category_id, always present and the finest key;
            ``"code"`` uses the readable category_code, blank for about a third of rows.
        batch_size: About how many rows per batch.
    """

    name = "rees46"
    description = "REES46 eCommerce behavior CSV (event_time,event_type,product_id,...,user_session)"
    COLUMNS = (
        "event_time",
        "event_type",
        "product_id",
        "category_id",
        "category_code",
        "brand",
        "price",
        "user_id",
        "user_session",
    )

    def __init__(self, path: str | Path, *, category: Literal["id", "code"] = "id", batch_size: int = 100_000) -> None:
        super().__init__(path, batch_size=batch_size)
        self.category = category

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        for path in self._files("*.csv", "*.csv.gz"):
            for frame in read_csv_batches(path, report, columns=self.COLUMNS, batch_bytes=self._csv_block):
                raw_time = text(frame["event_time"]).str.removesuffix(" UTC")
                moments = pd.to_datetime(raw_time, format="ISO8601", errors="coerce", utc=True)
                event_type = text(frame["event_type"])
                batch = CandidateBatch(
                    report,
                    self.name,
                    key=join_key(*(frame[c] for c in self.COLUMNS)),
                    event_time=datetimes_to_ms(moments),
                    session_id=frame["user_session"],
                    item_id=frame["product_id"],
                    event_type=event_type,
                    user_id=frame["user_id"],
                    price=numbers(frame["price"]),
                    category=frame["category_id" if self.category == "id" else "category_code"],
                    brand=frame["brand"],
                )
                batch.drop("unparseable event_time", moments.isna().to_numpy())
                batch.drop(
                    "remove_from_cart (not a view/cart/purchase funnel step)",
                    (event_type == "remove_from_cart").to_numpy(),
                )
                batch.drop("missing user_session", (batch.session_id == "").to_numpy())
                batch.drop("missing product_id", (batch.item_id == "").to_numpy())
                _unparseable_price_is_unknown(batch, frame["price"])
                _zero_price_is_unknown(batch)
                yield batch.finish()


class OttoAdapter(DatasetAdapter):
    """OTTO RecSys JSONL: one session per line with its events.

    ``{"session": 1, "events": [{"aid": 2, "ts": 1659304800025, "type": "clicks"}]}``;
    clicks/carts/orders become view/cart/purchase, ``session`` the session id, ``aid`` the
    item id. Sessions are anonymous (no user id). A row is one event; a line that is not
    JSON counts as one dropped row. ``ts`` is epoch ms in the original release; the Kaggle
    re-export uses seconds, which are detected (below 1e11) and converted.
    """

    name = "otto"
    description = 'OTTO RecSys JSONL ({"session", "events": [{"aid", "ts", "type"}]})'
    TYPES: ClassVar[Mapping[str, str]] = {
        "clicks": EventType.VIEW.value,
        "carts": EventType.CART.value,
        "orders": EventType.PURCHASE.value,
    }

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        for path in self._files("*.jsonl", "*.jsonl.gz"):
            handle: IO[bytes] = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[assignment]
            with handle:
                columns: dict[str, list[Any]] = {"session": [], "aid": [], "ts": [], "type": []}
                for line in handle:
                    if not line.strip():
                        continue
                    self._parse_line(line, columns, report)
                    if len(columns["aid"]) >= self.batch_size:
                        yield self._convert(columns, report)
                        columns = {key: [] for key in columns}
                if columns["aid"]:
                    yield self._convert(columns, report)

    @staticmethod
    def _parse_line(line: bytes, columns: dict[str, list[Any]], report: AdapterReport) -> None:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            report.rows_read += 1
            report.drop("malformed JSON line")
            return
        events = record.get("events") if isinstance(record, dict) else None
        if not isinstance(events, list):
            report.rows_read += 1
            report.drop("session record without an events list")
            return
        session = record.get("session")
        # bool is an int subclass; True is not a session id.
        session_text = "" if isinstance(session, bool) or session is None else str(session)
        for event in events:
            if not isinstance(event, dict):
                event = {}
            columns["session"].append(session_text)
            columns["aid"].append(event.get("aid"))
            columns["ts"].append(event.get("ts"))
            columns["type"].append(event.get("type"))

    def _convert(self, columns: dict[str, list[Any]], report: AdapterReport) -> pa.Table:
        report.rows_read += len(columns["aid"])
        session = pd.Series(columns["session"], dtype=TEXT)
        aid = pd.Series(
            [str(a) if isinstance(a, int) and not isinstance(a, bool) else "" for a in columns["aid"]],
            dtype=TEXT,
        )
        ts_raw = pd.Series(
            [t if isinstance(t, int | float) and not isinstance(t, bool) else None for t in columns["ts"]],
            dtype=object,
        )
        ts = numbers(ts_raw)
        kind = pd.Series([t if isinstance(t, str) else "" for t in columns["type"]], dtype=TEXT)
        batch = CandidateBatch(
            report,
            self.name,
            key=join_key(session, aid, ts_raw, kind),
            event_time=ts,
            session_id=session,
            item_id=aid,
            event_type=kind.replace(dict(self.TYPES)),
        )
        batch.drop("missing session", (session == "").to_numpy())
        batch.drop("missing or non-integer aid", (aid == "").to_numpy())
        batch.drop("missing or non-numeric ts", np.isnan(ts))
        with np.errstate(invalid="ignore"):
            seconds = (ts < 1e11) & batch.keep
        report.adjust("ts in seconds converted to ms", int(seconds.sum()))
        batch.event_time[seconds] *= 1000
        return batch.finish()


class RetailRocketAdapter(DatasetAdapter):
    """RetailRocket ``events.csv``: timestamp (ms), visitorid, event, itemid, transactionid.

    view/addtocart/transaction become view/cart/purchase. The dataset has no sessions, so a
    session is one visitor's events on one UTC day (``<visitorid>-<YYYYMMDD>``): streamable
    and deterministic, coarser than a 30-minute inactivity split. visitorid is the user id.
    """

    name = "retailrocket"
    description = "RetailRocket events.csv (timestamp,visitorid,event,itemid,transactionid)"
    COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
    TYPES: ClassVar[Mapping[str, str]] = {
        "view": EventType.VIEW.value,
        "addtocart": EventType.CART.value,
        "transaction": EventType.PURCHASE.value,
    }

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        for path in self._files("events*.csv", "events*.csv.gz"):
            for frame in read_csv_batches(path, report, columns=self.COLUMNS, batch_bytes=self._csv_block):
                ms = numbers(frame["timestamp"])
                visitor = text(frame["visitorid"])
                day = pd.to_datetime(ms, unit="ms", utc=True, errors="coerce").strftime("%Y%m%d")
                kind = text(frame["event"])
                batch = CandidateBatch(
                    report,
                    self.name,
                    key=join_key(*(frame[c] for c in self.COLUMNS)),
                    event_time=ms,
                    session_id=visitor + "-" + pd.Series(day, dtype=TEXT).fillna(""),
                    item_id=frame["itemid"],
                    event_type=kind.replace(dict(self.TYPES)),
                    user_id=visitor,
                )
                batch.drop("unparseable timestamp", np.isnan(ms))
                batch.drop("missing visitorid", (visitor == "").to_numpy())
                batch.drop("missing itemid", (batch.item_id == "").to_numpy())
                yield batch.finish()


class YooChooseAdapter(DatasetAdapter):
    """YooChoose (RecSys Challenge 2015) clicks and buys, headerless CSVs.

    clicks: session, timestamp (ISO 8601), item, category -> views. buys: session,
    timestamp, item, price, quantity -> purchases. The click ``category`` is decoded as
    documented: ``0`` unknown, ``S`` a special offer (no category), ``1``-``12`` a category,
    any other number a brand. Sessions are anonymous. A 0 price or quantity in buys means
    unknown; the price is then left empty, a negative quantity is dropped.

    Args:
        path: A folder with ``*clicks*`` and ``*buys*`` files (``.dat`` or ``.csv``), or one
            of them (a file whose name contains ``buys`` is read as buys).
        batch_size: About how many rows per batch.
    """

    name = "yoochoose"
    description = "YooChoose clicks (session,timestamp,item,category) and buys (...,price,quantity)"
    CLICK_COLUMNS = ("session", "timestamp", "item", "category")
    BUY_COLUMNS = ("session", "timestamp", "item", "price", "quantity")

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        for path in self._files("*clicks*.dat", "*clicks*.csv", "*buys*.dat", "*buys*.csv"):
            buys = "buys" in path.name
            columns = self.BUY_COLUMNS if buys else self.CLICK_COLUMNS
            for frame in read_csv_batches(path, report, columns=columns, header=False, batch_bytes=self._csv_block):
                yield self._buys(frame, report) if buys else self._clicks(frame, report)

    def _common(self, frame: pd.DataFrame, report: AdapterReport, kind: str, **extra: Any) -> CandidateBatch:
        columns = self.BUY_COLUMNS if kind == "buys" else self.CLICK_COLUMNS
        moments = pd.to_datetime(text(frame["timestamp"]), format="ISO8601", errors="coerce", utc=True)
        n = len(frame)
        batch = CandidateBatch(
            report,
            self.name,
            key=join_key(kind, *(frame[c] for c in columns)),
            event_time=datetimes_to_ms(moments),
            session_id=frame["session"],
            item_id=frame["item"],
            event_type=constant(EventType.PURCHASE.value if kind == "buys" else EventType.VIEW.value, n),
            **extra,
        )
        batch.drop("unparseable timestamp", moments.isna().to_numpy())
        batch.drop("missing session", (batch.session_id == "").to_numpy())
        batch.drop("missing item", (batch.item_id == "").to_numpy())
        return batch

    def _clicks(self, frame: pd.DataFrame, report: AdapterReport) -> pa.Table:
        code = text(frame["category"])
        number = pd.to_numeric(code, errors="coerce")
        is_category = ((number >= 1) & (number <= 12)).to_numpy()
        is_brand = (number > 12).to_numpy()
        category = code.where(is_category, "")
        brand = code.where(is_brand, "")
        return self._common(frame, report, "clicks", category=category, brand=brand).finish()

    def _buys(self, frame: pd.DataFrame, report: AdapterReport) -> pa.Table:
        quantity = numbers(frame["quantity"])
        batch = self._common(frame, report, "buys", price=numbers(frame["price"]))
        with np.errstate(invalid="ignore"):
            batch.drop("negative quantity", quantity < 0)
        _unparseable_price_is_unknown(batch, frame["price"])
        _zero_price_is_unknown(batch)
        return batch.finish()


class DigineticaAdapter(DatasetAdapter):
    """DIGINETICA (CIKM Cup 2016) item views and purchases, ``;``-separated.

    views: session_id;user_id;item_id;timeframe;eventdate. purchases: sessionId;userId;
    timeframe;eventdate;ordernumber;itemId. The event time is ``eventdate`` (a date, taken
    as UTC midnight) plus ``timeframe`` ms: the dataset gives only the session's day and
    the offset from its first event, so times of day are relative, not wall clock.
    ``NA`` user ids are anonymous. Categories come from ``product-categories.csv``
    (itemId;categoryId) when it is in the folder.

    Args:
        path: The folder (views file ``*item-views*.csv``, purchases ``*purchases*.csv``), or
            one of those files.
        batch_size: About how many rows per batch.
    """

    name = "diginetica"
    description = "DIGINETICA views/purchases CSV (;-separated) plus product-categories"
    VIEW_COLUMNS = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
    PURCHASE_COLUMNS = ("sessionId", "userId", "timeframe", "eventdate", "ordernumber", "itemId")

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        folder = self.path if self.path.is_dir() else self.path.parent
        categories = self._categories(folder)
        for path in self._files("*item-views*.csv", "*purchases*.csv"):
            purchases = "purchases" in path.name
            columns = self.PURCHASE_COLUMNS if purchases else self.VIEW_COLUMNS
            for frame in read_csv_batches(path, report, columns=columns, delimiter=";", batch_bytes=self._csv_block):
                yield self._convert(frame, report, purchases, categories)

    @staticmethod
    def _categories(folder: Path) -> pd.Series | None:
        found = sorted(folder.glob("*product-categories*.csv"))
        if not found:
            return None
        mapping = pd.read_csv(found[0], sep=";", dtype=str, keep_default_na=False)
        mapping = mapping.drop_duplicates("itemId")
        return pd.Series(mapping["categoryId"].to_numpy(), index=mapping["itemId"].str.strip())

    def _convert(
        self, frame: pd.DataFrame, report: AdapterReport, purchases: bool, categories: pd.Series | None
    ) -> pa.Table:
        session, user, item = ("sessionId", "userId", "itemId") if purchases else self.VIEW_COLUMNS[:3]
        columns = self.PURCHASE_COLUMNS if purchases else self.VIEW_COLUMNS
        day = pd.to_datetime(text(frame["eventdate"]), format="%Y-%m-%d", errors="coerce", utc=True)
        offset = numbers(frame["timeframe"])
        users = text(frame[user])
        items = text(frame[item])
        batch = CandidateBatch(
            report,
            self.name,
            key=join_key("purchases" if purchases else "views", *(frame[c] for c in columns)),
            event_time=datetimes_to_ms(day) + offset,
            session_id=frame[session],
            item_id=items,
            event_type=constant(EventType.PURCHASE.value if purchases else EventType.VIEW.value, len(frame)),
            user_id=users.where(users != "NA", ""),
            category=None if categories is None else items.map(categories),
        )
        batch.drop("unparseable eventdate", day.isna().to_numpy())
        batch.drop("unparseable timeframe", np.isnan(offset))
        with np.errstate(invalid="ignore"):
            batch.drop("negative timeframe", offset < 0)
        batch.drop(f"missing {session}", (batch.session_id == "").to_numpy())
        batch.drop(f"missing {item}", (batch.item_id == "").to_numpy())
        return batch.finish()


UCI_NON_PRODUCT_CODES = frozenset({"POST", "DOT", "M", "C2", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK", "B"})
"""UCI Online Retail stock codes that are postage, fees, discounts, samples or manual
adjustments rather than products (checked case-insensitively)."""


class UciOnlineRetailAdapter(DatasetAdapter):
    """UCI Online Retail (Parquet): InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
    UnitPrice, CustomerID, Country.

    Purchases only: one event per invoice line, the invoice as session, StockCode as item,
    UnitPrice as price. Dropped, in this order: cancelled invoices (``C`` prefix), lines with
    a quantity of zero or less (returns, stock corrections), non-product lines (postage,
    fees, discounts, samples, manual and bad-debt adjustments), unit prices of zero or less.
    The lines of an invoice share one InvoiceDate: the kept ones get distinct milliseconds in
    file order (line k at + k ms), reported as an adjustment. A missing CustomerID is kept as
    an anonymous purchase (about a quarter of lines): the basket is still real co-purchase
    signal.

    Args:
        path: A Parquet file, or a folder of them.
        timezone: Zone of the naive InvoiceDate values (UK shop; UTC by default because the
            source does not say).
        batch_size: Rows per batch.
    """

    name = "uci"
    description = "UCI Online Retail Parquet (InvoiceNo,StockCode,...,CustomerID,Country)"
    COLUMNS = (
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    )

    def __init__(self, path: str | Path, *, timezone: str = "UTC", batch_size: int = 100_000) -> None:
        super().__init__(path, batch_size=batch_size)
        self.timezone = timezone

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        lines_before: dict[str, int] = {}  # kept lines of each invoice in earlier batches
        for path in self._files("*.parquet", "*.parquet.*", "*.pq"):
            parquet = pq.ParquetFile(path)
            missing = [c for c in self.COLUMNS if c not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"{path}: no column(s) {missing}; not UCI Online Retail")
            for record_batch in parquet.iter_batches(batch_size=self.batch_size, columns=list(self.COLUMNS)):
                report.rows_read += record_batch.num_rows
                yield self._convert(to_frame(record_batch), report, lines_before)

    def _convert(self, frame: pd.DataFrame, report: AdapterReport, lines_before: dict[str, int]) -> pa.Table:
        invoice = text(frame["InvoiceNo"])
        code = text(frame["StockCode"])
        quantity = numbers(frame["Quantity"])
        price = numbers(frame["UnitPrice"])
        when = frame["InvoiceDate"]
        if not pd.api.types.is_datetime64_any_dtype(when.dtype):
            when = pd.to_datetime(text(when), errors="coerce")
        if getattr(when.dt, "tz", None) is None:
            when = when.dt.tz_localize(self.timezone, ambiguous="NaT", nonexistent="NaT")
        batch = CandidateBatch(
            report,
            self.name,
            key=join_key(*(frame[c] for c in self.COLUMNS)),
            event_time=datetimes_to_ms(when),
            session_id=invoice,
            item_id=code,
            event_type=constant(EventType.PURCHASE.value, len(frame)),
            user_id=id_text(frame["CustomerID"]),
            price=price,
        )
        batch.drop("cancelled invoice (InvoiceNo starts with C)", invoice.str.upper().str.startswith("C"))
        with np.errstate(invalid="ignore"):
            batch.drop("quantity of zero or less (return or correction)", ~(quantity > 0))
        batch.drop(
            "non-product line (postage, fee, discount, sample, adjustment)",
            code.str.upper().isin(UCI_NON_PRODUCT_CODES).to_numpy(),
        )
        with np.errstate(invalid="ignore"):
            batch.drop("unit price of zero or less", ~(price > 0))
        batch.drop("unparseable InvoiceDate", when.isna().to_numpy())
        batch.drop("missing StockCode", (code == "").to_numpy())
        _spread_invoice_lines(batch, lines_before)
        return batch.finish()


def _spread_invoice_lines(batch: CandidateBatch, lines_before: dict[str, int]) -> None:
    """Give the kept lines of an invoice distinct, ordered milliseconds: line k at InvoiceDate + k ms.

    Every line of an invoice carries the same InvoiceDate (to the minute), so a point-in-time read
    just before one line would see none of the basket. The file order of the lines is the only
    order the source has; ``lines_before`` carries each invoice's count across batches.
    """
    kept = pd.Series(batch.session_id[batch.keep].to_numpy())
    rank = kept.groupby(kept).cumcount().to_numpy() + kept.map(lines_before).fillna(0).to_numpy(dtype=np.int64)
    batch.event_time[batch.keep] += rank
    for invoice, lines in kept.value_counts(sort=False).items():
        lines_before[str(invoice)] = lines_before.get(str(invoice), 0) + int(lines)
    batch.report.adjust("invoice line k at InvoiceDate + k ms (one timestamp per invoice)", int((rank > 0).sum()))


class CsvMapping(BaseModel):
    """How a CSV's columns map onto our event fields (for :class:`CsvAdapter`).

    Example, as JSON: ``{"columns": {"event_time": "ts", "user_id": "uid", "item_id":
    "sku", "event_type": "action"}, "event_types": {"click": "view", "basket": "cart",
    "buy": "purchase"}, "timestamp": "epoch_s"}``.

    Attributes:
        columns: Our field name -> their column name. Needs event_time and item_id, and
            session_id or user_id (without session_id, a session is one user's UTC day).
        event_types: Their event value -> ours; values already named view/cart/purchase
            pass through. Unmapped values are dropped with the value as the reason.
        constant_event_type: Every row is this type (e.g. an orders export); replaces the
            event_type column.
        timestamp: ``iso``, ``epoch_ms``, ``epoch_s``, or a ``strftime`` pattern.
        timezone: Zone of timestamps written without one.
        delimiter: Field separator.
        column_names: Names of the columns when the file has no header line.
        dataset: Name used as the event-id prefix (name each source differently).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str]
    event_types: dict[str, EventType] = Field(default_factory=dict)
    constant_event_type: EventType | None = None
    timestamp: str = "iso"
    timezone: str = "UTC"
    delimiter: str = ","
    column_names: list[str] | None = None
    dataset: str = "csv"

    @model_validator(mode="after")
    def _check_fields(self) -> CsvMapping:
        known = set(EVENT_SCHEMA.names) - {"event_id"}
        unknown = set(self.columns) - known
        if unknown:
            raise ValueError(f"unknown event field(s) {sorted(unknown)}; known: {sorted(known)}")
        needed = {"event_time", "item_id"} | ({"event_type"} if self.constant_event_type is None else set())
        if missing := needed - set(self.columns):
            raise ValueError(f"the mapping needs column(s) for {sorted(missing)}")
        if not {"session_id", "user_id"} & set(self.columns):
            raise ValueError("the mapping needs a session_id or a user_id column")
        return self


class CsvAdapter(DatasetAdapter):
    """Any event CSV, through a :class:`CsvMapping` of its columns onto our fields.

    Args:
        path: A CSV file (optionally ``.gz``), or a folder of ``*.csv`` files.
        mapping: The column mapping (a :class:`CsvMapping` or its dict form).
        batch_size: About how many rows per batch.
    """

    name = "csv"
    description = "any CSV, with a column mapping (CsvMapping) onto the event fields"

    def __init__(self, path: str | Path, *, mapping: CsvMapping | Mapping[str, Any], batch_size: int = 100_000) -> None:
        super().__init__(path, batch_size=batch_size)
        self.mapping = mapping if isinstance(mapping, CsvMapping) else CsvMapping.model_validate(mapping)

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        m = self.mapping
        source_columns = tuple(dict.fromkeys(m.columns.values()))
        for path in self._files("*.csv", "*.csv.gz"):
            for frame in read_csv_batches(
                path,
                report,
                columns=m.column_names or source_columns,
                delimiter=m.delimiter,
                header=m.column_names is None,
                batch_bytes=self._csv_block,
            ):
                yield self._convert(frame, report)

    def _times(self, raw: pd.Series) -> np.ndarray:
        fmt = self.mapping.timestamp
        if fmt in ("epoch_ms", "epoch_s"):
            values = numbers(raw)
            return values * 1000 if fmt == "epoch_s" else values
        moments = pd.to_datetime(raw, format="ISO8601" if fmt == "iso" else fmt, errors="coerce", utc=False)
        if getattr(moments.dt, "tz", None) is None:
            moments = moments.dt.tz_localize(self.mapping.timezone, ambiguous="NaT", nonexistent="NaT")
        return datetimes_to_ms(moments.dt.tz_convert("UTC"))

    def _convert(self, frame: pd.DataFrame, report: AdapterReport) -> pa.Table:
        m = self.mapping

        def column(field: str) -> pd.Series | None:
            return text(frame[m.columns[field]]) if field in m.columns else None

        ms = self._times(text(frame[m.columns["event_time"]]))
        user = column("user_id")
        session = column("session_id")
        if session is None:
            assert user is not None  # the mapping validator guarantees one of them
            day = pd.Series(pd.to_datetime(ms, unit="ms", utc=True, errors="coerce").strftime("%Y%m%d"))
            # No user, no session: the row is dropped as missing its session id.
            session = (user + "-" + day.astype(TEXT).fillna("")).where(user != "", "")
        if m.constant_event_type is not None:
            kind = constant(m.constant_event_type.value, len(frame))
        else:
            raw_kind = column("event_type")
            assert raw_kind is not None
            mapping = {key: value.value for key, value in m.event_types.items()}
            kind = raw_kind.replace(mapping) if mapping else raw_kind
        price_raw = column("price")
        batch = CandidateBatch(
            report,
            m.dataset,
            key=join_key(*(frame[c] for c in dict.fromkeys(m.columns.values()))),
            event_time=ms,
            session_id=session,
            item_id=text(frame[m.columns["item_id"]]),
            event_type=kind,
            user_id=user,
            price=None if price_raw is None else numbers(price_raw),
            category=column("category"),
            brand=column("brand"),
        )
        batch.drop("unparseable timestamp", np.isnan(ms))
        if price_raw is not None:
            _unparseable_price_is_unknown(batch, price_raw)
        return batch.finish()


class SyntheticAdapter(DatasetAdapter):
    """Parquet written by :func:`lambdarec.data.generator.generate_events` (already our schema).

    The event ids in the file are kept. Rows are still checked against the event contract,
    so a hand-edited or foreign file cannot smuggle invalid events through.
    """

    name = "synthetic"
    description = "Parquet in the event schema (the synthetic generator's output)"

    def _tables(self, report: AdapterReport) -> Iterator[pa.Table]:
        for path in self._files("*.parquet"):
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            if missing := [c for c in ("event_time", "session_id", "item_id", "event_type") if c not in names]:
                raise ValueError(f"{path}: no column(s) {missing}; not an event table")
            wanted = [c for c in EVENT_SCHEMA.names if c in names]
            for record_batch in parquet.iter_batches(batch_size=self.batch_size, columns=wanted):
                report.rows_read += record_batch.num_rows
                frame = to_frame(record_batch)
                # Hashing is only needed when the file carries no ids of its own.
                key = frame["event_id"] if "event_id" in frame else join_key(*(frame[c] for c in wanted))
                batch = CandidateBatch(
                    report,
                    self.name,
                    key=key,
                    event_time=numbers(frame["event_time"]),
                    session_id=frame["session_id"],
                    item_id=frame["item_id"],
                    event_type=frame["event_type"],
                    user_id=frame.get("user_id"),
                    price=None if "price" not in frame else numbers(frame["price"]),
                    category=frame.get("category"),
                    brand=frame.get("brand"),
                    event_ids=frame.get("event_id"),
                )
                yield batch.finish()

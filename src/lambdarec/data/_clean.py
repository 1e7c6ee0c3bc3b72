"""Vectorized cleaning shared by the adapters: drop rows by reason, build the event table.

Adapters map one source batch to candidate columns (pandas), drop rows with a reason each,
and hand the rest to :meth:`CandidateBatch.finish`, which enforces what
:class:`lambdarec.schemas.ClickEvent` requires, so every emitted row passes ``validate_event``.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from lambdarec.data.report import AdapterReport
from lambdarec.events.contract import MAX_ID_LENGTH, MAX_TEXT_LENGTH, epoch_ms_of_date
from lambdarec.names import EventType

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", pa.int64(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("price", pa.float64()),
        pa.field("category", pa.string()),
        pa.field("brand", pa.string()),
    ]
)
"""Arrow schema of an event table: the fields of ``ClickEvent``, event_time as epoch ms."""

EVENT_FIELDS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
MAX_FUTURE_MS = 86_400_000  # the skew validate_event allows by default
KEY_SEPARATOR = "\x1f"  # ASCII unit separator: not found in real fields, so keys stay unambiguous
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
"""Text columns are Arrow-backed: string ops run in Arrow kernels, not per-row Python."""
_EPOCH = pd.Timestamp(0, tz="UTC")
_MS = pd.Timedelta(1, "ms")


def _day_of(ms: int) -> str:
    """``YYYY-MM-DD`` of a UTC midnight, or the full moment otherwise."""
    moment = _EPOCH + pd.Timedelta(ms, "ms")
    return str(moment.date()) if epoch_ms_of_date(moment.date()) == ms else moment.isoformat()


def event_id(dataset: str, key: str) -> str:
    """Deterministic event id: the dataset name plus a hash of the row's identity."""
    return f"{dataset}-{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}"


def to_arrow(values: pd.Series | np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous Arrow array from a pandas column, numpy array or Arrow (chunked) array."""
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def join_key(*parts: pd.Series | pa.Array | str) -> pa.Array:
    """Join source columns (as text) and constants into one identity key per row."""
    pieces: list[Any] = [
        pa.scalar(part, pa.large_string())
        if isinstance(part, str)
        else pc.fill_null(pc.cast(to_arrow(part), pa.large_string()), "")
        for part in parts
    ]
    if all(isinstance(piece, pa.Scalar) for piece in pieces):
        raise ValueError("a row key needs at least one column")
    separator = pa.scalar(KEY_SEPARATOR, pa.large_string())
    return to_arrow(pc.binary_join_element_wise(*pieces, separator))


def datetimes_to_ms(moments: pd.Series) -> np.ndarray:
    """Aware datetimes to float epoch ms (NaN where the parse failed)."""
    return ((moments - _EPOCH) // _MS).to_numpy(dtype=np.float64, na_value=np.nan)


def numbers(values: pd.Series) -> np.ndarray:
    """Text or numbers to float64, NaN where a value is not a number."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def text(values: pd.Series) -> pd.Series:
    """Source values as stripped text (:data:`TEXT` dtype), missing values as empty strings."""
    if values.dtype != TEXT:
        values = values.astype(TEXT)
    return values.fillna("").str.strip().reset_index(drop=True)


def id_text(values: pd.Series) -> pd.Series:
    """Ids as text; whole floats (Parquet integer columns with nulls) lose their ``.0``."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.notna() & (values == values.round())
        return text(values.round().astype("Int64").astype(TEXT).where(whole, ""))
    return text(values)


def to_frame(batch: pa.RecordBatch | pa.Table) -> pd.DataFrame:
    """An Arrow batch as pandas, text columns kept in Arrow (:data:`TEXT`)."""
    return batch.to_pandas(types_mapper={pa.string(): TEXT, pa.large_string(): TEXT}.get)


def constant(value: str, rows: int) -> pd.Series:
    """A text column holding ``value`` on every row."""
    return pd.Series(value, index=range(rows), dtype=TEXT)


class CandidateBatch:
    """Candidate events from one source batch and the mask of those still kept.

    Args:
        report: Where drops and adjustments are counted.
        dataset: Prefix of the event ids.
        key: Row identity per row (hashed into the event id).
        event_time: Epoch ms per row as float, NaN where unknown.
        session_id: Text per row.
        item_id: Text per row.
        event_type: One of view/cart/purchase per row, anything else is dropped.
        user_id: Text per row, empty for anonymous.
        price: Float per row, NaN when unknown.
        category: Text per row, empty when unknown.
        brand: Text per row, empty when unknown.
        event_ids: Ids already carried by the source (used instead of hashing ``key``).
    """

    def __init__(
        self,
        report: AdapterReport,
        dataset: str,
        *,
        key: pa.Array,
        event_time: np.ndarray,
        session_id: pd.Series,
        item_id: pd.Series,
        event_type: pd.Series,
        user_id: pd.Series | None = None,
        price: np.ndarray | None = None,
        category: pd.Series | None = None,
        brand: pd.Series | None = None,
        event_ids: pd.Series | None = None,
    ) -> None:
        n = len(key)
        self.report = report
        self.dataset = dataset
        self.key = key
        self.event_time = np.array(event_time, dtype=np.float64)  # a copy: adapters adjust it in place
        self.session_id = text(session_id)
        self.item_id = text(item_id)
        self.event_type = text(event_type)
        empty = constant("", n)
        self.user_id = empty if user_id is None else text(user_id)
        self.price = np.full(n, np.nan) if price is None else np.asarray(price, dtype=np.float64).copy()
        self.category = empty if category is None else text(category)
        self.brand = empty if brand is None else text(brand)
        self.event_ids = None if event_ids is None else text(event_ids)
        self.keep = np.ones(n, dtype=bool)

    def drop(self, reason: str, mask: np.ndarray | pd.Series) -> None:
        """Drop the still-kept rows where ``mask`` holds, counting them under ``reason``.

        Reasons are applied in call order, so each dropped row is counted once, under the
        first reason that applies.
        """
        hit = np.asarray(mask, dtype=bool) & self.keep
        self.report.drop(reason, int(hit.sum()))
        self.keep &= ~hit

    def drop_values(self, describe: Callable[[str], str], values: pd.Series, mask: np.ndarray) -> None:
        """Drop rows where ``mask`` holds, one reason per distinct offending value."""
        hit = np.asarray(mask, dtype=bool) & self.keep
        if not hit.any():
            return
        for value, count in pd.Series(values[hit]).astype(str).value_counts(sort=False).items():
            self.report.drop(describe(str(value)), int(count))
        self.keep &= ~hit

    def finish(self, now_ms: int | None = None) -> pa.Table:
        """Apply the checks of the event contract, count the survivors and build the table."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        t = self.event_time
        with np.errstate(invalid="ignore"):
            self.drop("unparseable timestamp", ~np.isfinite(t))
            # The earliest accepted time is a setting (historical datasets lower it), carried by the report.
            earliest = self.report.earliest_ms
            self.drop(f"timestamp before {_day_of(earliest)} (wrong unit?)", t < earliest)
            self.drop("timestamp more than a day in the future", t > now + MAX_FUTURE_MS)
        self.drop_values(
            lambda v: f"unsupported event type {v!r}" if v else "missing event type",
            self.event_type,
            ~self.event_type.isin(EVENT_TYPES).to_numpy(),
        )
        if self.event_ids is not None:
            self.drop("missing event id", (self.event_ids == "").to_numpy())
            self.drop(
                f"event id longer than {MAX_ID_LENGTH} characters",
                (self.event_ids.str.len() > MAX_ID_LENGTH).to_numpy(),
            )
        self.drop("missing session id", (self.session_id == "").to_numpy())
        self.drop("missing item id", (self.item_id == "").to_numpy())
        too_long = (
            (self.session_id.str.len() > MAX_ID_LENGTH)
            | (self.item_id.str.len() > MAX_ID_LENGTH)
            | (self.user_id.str.len() > MAX_ID_LENGTH)
        )
        self.drop(f"id longer than {MAX_ID_LENGTH} characters", too_long.to_numpy())
        with np.errstate(invalid="ignore"):
            self.drop("negative price", self.price < 0)
        keep = self.keep
        infinite = np.isinf(self.price) & keep
        self.report.adjust("infinite price read as unknown", int(infinite.sum()))
        self.price[infinite] = np.nan
        kept = pa.array(keep)

        def strings(values: pd.Series) -> pa.Array:
            return pc.cast(pc.filter(to_arrow(values), kept), pa.string())

        def optional_text(values: pd.Series, limit: int, name: str) -> pa.Array:
            column = strings(values)
            long = pc.greater(pc.utf8_length(column), limit)
            self.report.adjust(f"{name} longer than {limit} characters cleared", pc.sum(long).as_py() or 0)
            return pc.if_else(pc.or_(long, pc.equal(column, "")), pa.scalar(None, pa.string()), column)

        if self.event_ids is not None:
            ids = strings(self.event_ids)
        else:
            keys = pc.filter(self.key, kept).to_pylist()
            ids = pa.array([event_id(self.dataset, k) for k in keys], pa.string())
        times = self.event_time[keep].astype(np.int64)
        prices = self.price[keep]
        table = pa.Table.from_arrays(
            [
                ids,
                pa.array(times, pa.int64()),
                strings(self.session_id),
                optional_text(self.user_id, MAX_ID_LENGTH, "user_id"),
                strings(self.item_id),
                strings(self.event_type),
                pa.array(prices, pa.float64(), mask=np.isnan(prices)),
                optional_text(self.category, MAX_TEXT_LENGTH, "category"),
                optional_text(self.brand, MAX_TEXT_LENGTH, "brand"),
            ],
            schema=EVENT_SCHEMA,
        )
        self.report.events_emitted += table.num_rows
        return table


def read_csv_batches(
    path: Path,
    report: AdapterReport,
    *,
    columns: Sequence[str],
    delimiter: str = ",",
    header: bool = True,
    batch_bytes: int = 8 << 20,
) -> Iterator[pd.DataFrame]:
    """Stream a CSV as text-only pandas frames, counting malformed lines instead of failing.

    Args:
        path: The file.
        report: Malformed lines and rows read are counted here.
        columns: Expected column names (checked against the header, or used as names when
            the file has none).
        delimiter: Field separator.
        header: Whether the first line names the columns.
        batch_bytes: Bytes of CSV per batch (bounds memory).

    Yields:
        Frames whose columns are all strings (as written in the file).

    Raises:
        ValueError: When the header lacks an expected column: the file is not this format.
    """

    def on_invalid(row: Any) -> str:
        # A short or long line is one bad row, not a bad file.
        report.rows_read += 1
        report.drop("malformed CSV line (wrong number of fields)")
        return "skip"

    read_options = pa_csv.ReadOptions(
        block_size=batch_bytes,
        use_threads=False,  # keeps batches in file order
        column_names=None if header else list(columns),
    )
    if header:
        # Arrow decompresses .gz etc. by extension; the csv module handles quoted names.
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(1 << 20).decode("utf-8-sig", errors="replace")
        first = head.splitlines()[0] if head else ""
        present = [name.strip() for name in next(csv.reader([first], delimiter=delimiter), [])]
        missing = [c for c in columns if c not in present]
        if missing:
            raise ValueError(f"{path}: header {present} lacks column(s) {missing}")
        names = present
    else:
        names = list(columns)
    reader = pa_csv.open_csv(
        path,
        read_options=read_options,
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=False
        ),
    )
    for batch in reader:
        if batch.num_rows == 0:
            continue
        report.rows_read += batch.num_rows
        frame = to_frame(batch)
        frame.columns = [str(c).strip() for c in frame.columns]
        yield frame

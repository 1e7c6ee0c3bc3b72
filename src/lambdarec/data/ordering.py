"""Event-time order for replay, within bounded memory.

Sources come in file order; replay needs event-time order. Inputs that fit in
``max_rows_in_memory`` are sorted in one Arrow sort. Larger ones are cut into sorted runs
spilled to Parquet in a temporary folder and merged batch by batch, so memory holds one run
while sorting and one batch per run while merging.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lambdarec.data.adapters import DatasetAdapter
from lambdarec.data.registry import open_dataset

TIME = "event_time"


def _sort(table: pa.Table) -> pa.Table:
    # sort_indices is stable: equal event times keep their file order.
    return table.take(pc.sort_indices(table, sort_keys=[(TIME, "ascending")]))


def _slices(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


@dataclass
class _Run:
    """One sorted run on disk and the head of it that is buffered."""

    batches: Iterator[pa.RecordBatch]
    buffer: pa.Table
    done: bool = False
    times: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def fill(self) -> None:
        """Load the next batch when the buffer is empty (or extend it when asked to)."""
        try:
            batch = next(self.batches)
        except StopIteration:
            self.done = True
            return
        self.buffer = pa.concat_tables([self.buffer, pa.Table.from_batches([batch])])
        self.times = self.buffer.column(TIME).to_numpy()

    def take_before(self, limit: float) -> pa.Table:
        """Remove and return the buffered rows with event time below ``limit``."""
        cut = int(np.searchsorted(self.times, limit, side="left"))
        head, self.buffer = self.buffer.slice(0, cut), self.buffer.slice(cut)
        self.times = self.times[cut:]
        return head


def _merge(paths: list[Path], batch_rows: int) -> Iterator[pa.Table]:
    runs = []
    for path in paths:
        batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
        run = _Run(batches, pq.read_schema(path).empty_table())
        run.fill()
        runs.append(run)
    while True:
        for run in runs:
            if run.buffer.num_rows == 0 and not run.done:
                run.fill()
        live = [run for run in runs if run.buffer.num_rows]
        if not live:
            return
        # Rows below the smallest buffered maximum of a run with more on disk are final:
        # no unread row of any run can be earlier than them.
        pending = [float(run.times[-1]) for run in live if not run.done]
        limit = min(pending) if pending else float("inf")
        heads = [run.take_before(limit) for run in live]
        out = pa.concat_tables([h for h in heads if h.num_rows]) if any(h.num_rows for h in heads) else None
        if out is None:
            # Every buffered row equals the limit: read further in the runs that set it.
            for run in live:
                if not run.done and float(run.times[-1]) == limit:
                    run.fill()
            continue
        yield from _slices(_sort(out), batch_rows)


def sort_tables_by_time(
    tables: Iterable[pa.Table],
    *,
    max_rows_in_memory: int = 2_000_000,
    batch_rows: int = 65_536,
    tmp_dir: str | Path | None = None,
) -> Iterator[pa.Table]:
    """Re-emit event tables in event-time order, stable for equal times.

    Args:
        tables: Event tables (any column set that includes ``event_time``, same schema).
        max_rows_in_memory: Rows sorted at once; beyond this, sorted runs spill to disk.
        batch_rows: Rows per yielded table (and per read while merging).
        tmp_dir: Where runs spill (a temporary folder inside it, removed at the end).

    Yields:
        Tables whose concatenation is sorted by event_time.
    """
    pending: list[pa.Table] = []
    pending_rows = 0
    spill: tempfile.TemporaryDirectory[str] | None = None
    runs: list[Path] = []
    try:
        for table in tables:
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= max_rows_in_memory:
                if spill is None:
                    spill = tempfile.TemporaryDirectory(prefix="lambdarec-sort-", dir=tmp_dir)
                run = Path(spill.name) / f"run-{len(runs):05d}.parquet"
                pq.write_table(_sort(pa.concat_tables(pending)), run, row_group_size=batch_rows)
                runs.append(run)
                pending, pending_rows = [], 0
        if not runs:
            if pending:
                yield from _slices(_sort(pa.concat_tables(pending)), batch_rows)
            return
        assert spill is not None
        if pending:
            run = Path(spill.name) / f"run-{len(runs):05d}.parquet"
            pq.write_table(_sort(pa.concat_tables(pending)), run, row_group_size=batch_rows)
            runs.append(run)
            pending = []
        yield from _merge(runs, batch_rows)
    finally:
        if spill is not None:
            spill.cleanup()


def iter_events_by_time(
    source: DatasetAdapter | str,
    *,
    max_rows_in_memory: int = 2_000_000,
    tmp_dir: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream a dataset's events in event-time order (what replay needs).

    Args:
        source: An adapter, or a spec string for :func:`open_dataset`.
        max_rows_in_memory: Rows sorted at once; larger inputs spill sorted runs to disk.
        tmp_dir: Where sorted runs spill.

    Yields:
        Event dicts with the ``ClickEvent`` fields, earliest first.
    """
    adapter = open_dataset(source) if isinstance(source, str) else source
    for table in sort_tables_by_time(adapter.iter_tables(), max_rows_in_memory=max_rows_in_memory, tmp_dir=tmp_dir):
        yield from table.to_pylist()

"""What a dataset read did: rows in, events out, and every dropped row with its reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lambdarec.events.contract import EARLIEST_EVENT_MS


@dataclass
class AdapterReport:
    """Accounting of one pass of an adapter over its source.

    Every source row ends up either as an event or in ``dropped`` under the reason it was
    dropped, so ``rows_read == events_emitted + rows_dropped`` once the read is complete.
    ``adjusted`` counts rows that were kept but changed (e.g. a zero price read as unknown);
    those rows are also counted in ``events_emitted``.

    Attributes:
        dataset: Adapter name (``rees46``, ``otto``, ...).
        source: The path (or paths) read.
        rows_read: Source records seen (CSV lines, OTTO events, Parquet rows), bad ones included.
        events_emitted: Events handed to the caller.
        dropped: Reason -> number of source records dropped for it.
        adjusted: Reason -> number of emitted events whose value was changed for it.
        complete: True once the source has been read to the end.
        earliest_ms: The earliest accepted event time this read applied (the event contract's
            bound, ``Settings.earliest_event_time``); older rows are dropped with that reason.
    """

    dataset: str
    source: str
    rows_read: int = 0
    events_emitted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)
    complete: bool = False
    earliest_ms: int = EARLIEST_EVENT_MS

    @property
    def rows_dropped(self) -> int:
        """Total source records dropped, over all reasons."""
        return sum(self.dropped.values())

    def drop(self, reason: str, rows: int = 1) -> None:
        """Count ``rows`` dropped records under ``reason`` (zero is ignored)."""
        if rows:
            self.dropped[reason] += rows

    def adjust(self, reason: str, rows: int = 1) -> None:
        """Count ``rows`` kept-but-changed events under ``reason`` (zero is ignored)."""
        if rows:
            self.adjusted[reason] += rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, reasons sorted by count (largest first)."""
        return {
            "dataset": self.dataset,
            "source": self.source,
            "rows_read": self.rows_read,
            "events_emitted": self.events_emitted,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(self.dropped.most_common()),
            "adjusted": dict(self.adjusted.most_common()),
            "complete": self.complete,
        }

    def drop_reasons(self, limit: int = 3) -> str:
        """Why rows were dropped, most frequent first, in one line (empty when none were).

        Args:
            limit: How many reasons to name; the rest are counted as "other reasons".

        Returns:
            E.g. ``"1,000 of 1,000 rows dropped: 1,000 timestamp before 2000-01-01 (wrong unit?)"``.
        """
        if not self.dropped:
            return ""
        named = self.dropped.most_common(limit)
        parts = [f"{count:,} {reason}" for reason, count in named]
        rest = self.rows_dropped - sum(count for _, count in named)
        if rest:
            parts.append(f"{rest:,} for other reasons")
        return f"{self.rows_dropped:,} of {self.rows_read:,} rows dropped: " + "; ".join(parts)

    def summary(self) -> str:
        """A few human-readable lines, e.g. for the CLI."""
        lines = [
            f"{self.dataset} ({self.source}): {self.rows_read:,} rows read, "
            f"{self.events_emitted:,} events, {self.rows_dropped:,} dropped"
            + ("" if self.complete else " (incomplete read)")
        ]
        lines += [f"  dropped {count:>10,}  {reason}" for reason, count in self.dropped.most_common()]
        lines += [f"  adjusted {count:>9,}  {reason}" for reason, count in self.adjusted.most_common()]
        return "\n".join(lines)

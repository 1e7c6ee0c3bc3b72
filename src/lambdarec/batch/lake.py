"""The data lake layout under the state folder, and small helpers shared by the stages.

```
<lake>/bronze/clicks/ingest=<run>/event_date=YYYY-MM-DD/*.parquet   raw Kafka records
<lake>/silver/events/event_date=YYYY-MM-DD/*.parquet                clean, deduplicated events
<lake>/gold/<table>/date=YYYY-MM-DD/*.parquet                       daily snapshots (features, sets)
<lake>/quarantine/<stage>/...                                       what a stage could not use, with why
<lake>/_offsets/<topic>.json                                        the committed Kafka offsets
<lake>/_reports/<stage>/<date or run>.json                          what each run did
```
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Lake:
    """Paths of the lake rooted at ``root``."""

    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> Lake:
        """The lake of a state folder (``<state_dir>/lake``)."""
        return cls(Path(state_dir).resolve() / "lake")

    @property
    def bronze(self) -> Path:
        """Raw Kafka records of the clicks topic."""
        return self.root / "bronze" / "clicks"

    @property
    def silver(self) -> Path:
        """Clean, deduplicated events."""
        return self.root / "silver" / "events"

    def gold(self, table: str) -> Path:
        """One gold table (a folder of ``date=`` partitions)."""
        return self.root / "gold" / table

    def quarantine(self, stage: str) -> Path:
        """Rows or files a stage could not use."""
        return self.root / "quarantine" / stage

    def offsets(self, topic: str) -> Path:
        """The committed offsets ledger of a topic."""
        return self.root / "_offsets" / f"{topic}.json"

    def report(self, stage: str, key: str) -> Path:
        """The report of one run of a stage."""
        return self.root / "_reports" / stage / f"{key}.json"


def parse_date(value: str | date) -> date:
    """A ``YYYY-MM-DD`` string (or a date) as a date."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def day_start_ms(day: date) -> int:
    """Epoch ms of 00:00 UTC of ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def snapshot_time(day: date) -> datetime:
    """The timestamp of a daily gold snapshot: 00:00 UTC of the next day.

    A snapshot of ``day`` holds every event of ``day``, so it becomes visible only when the day is
    over; a training example at any time of ``day`` therefore joins the previous day's snapshot and
    never sees its own future.
    """
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def date_range(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when there is no file."""
    if not path.is_file():
        return default
    return json.loads(path.read_text())

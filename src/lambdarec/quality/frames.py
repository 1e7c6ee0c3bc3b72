"""The tables the suites validate, as pandas frames: lake partitions and the models' training examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def read_partition(folder: Path, date: str | None = None, key: str = "date") -> pd.DataFrame:
    """One ``<key>=YYYY-MM-DD`` partition of a lake table (or the whole table), without the partition column.

    Silver partitions by ``event_date``, gold by ``date``.

    Raises:
        FileNotFoundError: No such table or partition.
    """
    import pyarrow.dataset as ds

    path = folder / f"{key}={date}" if date else folder
    if not path.exists():
        raise FileNotFoundError(f"no lake data at {path}")
    frame = ds.dataset(str(path), format="parquet", partitioning="hive").to_table().to_pandas()
    return frame.drop(columns=[key]) if date and key in frame.columns else frame


def examples_frame(examples: Any) -> pd.DataFrame:
    """The models' :class:`~lambdarec.models.data.Examples` as one row per example (ids, time, weight,
    the dense query inputs by name)."""
    from lambdarec.models.inputs import QUERY_DENSE

    frame = pd.DataFrame(
        {
            "session_id": examples.session_id.astype(str),
            "user_id": examples.user_id.astype(str),
            "target_id": examples.target_id.astype(str),
            "time_ms": examples.time_ms.astype("int64"),
            "weight": examples.weight.astype("float64"),
        }
    )
    for j, name in enumerate(QUERY_DENSE):
        frame[name] = examples.dense[:, j].astype("float64")
    return frame

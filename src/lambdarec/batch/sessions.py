"""Sessionization (Spark SQL and pandas) and session features of visits.

A session of the shop (``session_id``) is split into visits when it sits idle for longer than
:data:`SESSION_GAP_MS`: the first visit keeps the shop's id, later ones get ``<id>#<n>``.
:func:`sessionize` does this with Spark window functions (what silver and gold run);
:func:`sessionize_frame` is the same rule over a pandas frame (small inputs, tests), and a test
holds the two equal. The session features of a visit come from
:func:`lambdarec.features.session.fold_session`, the fold the speed layer and the request path
use too.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pandas as pd

from lambdarec import names
from lambdarec.features.session import fold_session

SESSION_GAP_MS = 30 * 60 * 1000
"""A session ends after this much idle time (30 minutes)."""
SESSION_KEY = "session_key"
"""Silver column: the visit id (the shop's session id, suffixed ``#n`` after an idle gap)."""
SESSION_SEQ = "session_seq"
"""Silver column: 0 for the first visit of a shop session, then 1, 2, ..."""
EVENT_TIMESTAMP = "event_timestamp"
"""Feast's event timestamp column in every gold table."""

SESSION_FEATURE_COLUMNS: tuple[str, ...] = (names.SESSION_ID, *names.SESSION_FEATURES, EVENT_TIMESTAMP)
FOLD_COLUMNS: tuple[str, ...] = ("event_id", "event_time", SESSION_KEY, names.ITEM_ID, "event_type", "category")
"""What :func:`session_feature_frame` needs of an event (the rest need not reach Python)."""

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def visit_key(session_id: str, seq: int) -> str:
    """The id of the ``seq``-th visit of a shop session."""
    return session_id if seq == 0 else f"{session_id}#{seq}"


def sessionize(events: DataFrame, gap_ms: int = SESSION_GAP_MS, *, within: Sequence[str] = ()) -> DataFrame:
    """Split shop sessions into visits with Spark window functions (no Python per row).

    The rule is :func:`sessionize_frame`'s: order a session's events by time and id, start a new
    visit where the time since the previous event exceeds ``gap_ms``, and number the visits with a
    running count of those starts.

    Args:
        events: Events with ``session_id``, ``event_time`` (epoch ms) and ``event_id``.
        gap_ms: Idle time that ends a visit.
        within: Extra columns that split the numbering (each group is sessionized on its own).

    Returns:
        ``events`` with ``session_seq`` (int) and ``session_key`` added.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ordered = Window.partitionBy(*within, names.SESSION_ID).orderBy("event_time", "event_id")
    idle = F.col("event_time") - F.lag("event_time").over(ordered)
    starts = events.withColumn("_new_visit", F.coalesce((idle > gap_ms).cast("int"), F.lit(0)))
    # Same partitioning and order as the lag: Spark sorts once for both window functions.
    seq = F.sum("_new_visit").over(ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow))
    numbered = starts.withColumn(SESSION_SEQ, seq.cast("int")).drop("_new_visit")
    key = F.when(F.col(SESSION_SEQ) == 0, F.col(names.SESSION_ID)).otherwise(
        F.concat(F.col(names.SESSION_ID), F.lit("#"), F.col(SESSION_SEQ).cast("string"))
    )
    return numbered.withColumn(SESSION_KEY, key)


def sessionize_frame(events: pd.DataFrame, gap_ms: int = SESSION_GAP_MS) -> pd.DataFrame:
    """Split the events of shop sessions into visits separated by idle gaps.

    Args:
        events: Events with at least ``session_id``, ``event_time`` (epoch ms) and ``event_id``;
            any number of sessions, any order.
        gap_ms: Idle time that ends a visit.

    Returns:
        The events sorted by session, time and id, with ``session_seq`` and ``session_key`` added.
    """
    if events.empty:
        return events.assign(**{SESSION_SEQ: pd.Series(dtype="int32"), SESSION_KEY: pd.Series(dtype="object")})
    ordered = events.sort_values([names.SESSION_ID, "event_time", "event_id"], kind="mergesort").reset_index(drop=True)
    times = ordered["event_time"].astype("int64")
    same_session = ordered[names.SESSION_ID].eq(ordered[names.SESSION_ID].shift())
    gap = times.diff().fillna(0) > gap_ms
    # Visit number within the shop session: count the gaps since the session started.
    seq = (gap & same_session).astype("int32").groupby((~same_session).cumsum()).cumsum()
    ordered[SESSION_SEQ] = seq.astype("int32")
    ordered[SESSION_KEY] = [visit_key(s, int(n)) for s, n in zip(ordered[names.SESSION_ID], seq, strict=True)]
    return ordered


def session_feature_frame(events: pd.DataFrame) -> pd.DataFrame:
    """Session features of every visit in ``events`` (one row per ``session_key``).

    Args:
        events: Silver events with ``session_key`` and :data:`FOLD_COLUMNS`; other columns are
            ignored and duplicates by ``event_id`` are harmless.

    Returns:
        Columns :data:`SESSION_FEATURE_COLUMNS`; ``session_id`` holds the visit id and
        ``event_timestamp`` the visit's last event time (UTC).
    """
    columns = [c for c in FOLD_COLUMNS if c in events.columns]
    ordered = events[columns].sort_values(SESSION_KEY, kind="stable")
    # One conversion for the whole frame, not one per visit (that dominated the cost); missing
    # values must reach the fold as None (NaN is truthy and would count as a category).
    records = ordered.astype(object).where(ordered.notna(), None).to_dict("records")
    rows: list[dict[str, Any]] = []
    for key, group in groupby(records, key=itemgetter(SESSION_KEY)):
        visit = list(group)
        for record in visit:
            record[names.SESSION_ID] = key
        rows.append(fold_session(visit))
    frame = pd.DataFrame(rows, columns=list(SESSION_FEATURE_COLUMNS[:-1]))
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[names.SESSION_LAST_EVENT_MS].astype("int64"), unit="ms", utc=True)
    return frame

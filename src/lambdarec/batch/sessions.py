"""Sessionization and session features over pandas frames (what Spark calls per group).

A session of the shop (``session_id``) is split into visits when it sits idle for longer than
:data:`SESSION_GAP_MS`: the first visit keeps the shop's id, later ones get ``<id>#<n>``. The
session features of a visit come from :func:`lambdarec.features.session.fold_session`, the fold
the speed layer and the request path use too.
"""

from __future__ import annotations

from typing import Any

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


def visit_key(session_id: str, seq: int) -> str:
    """The id of the ``seq``-th visit of a shop session."""
    return session_id if seq == 0 else f"{session_id}#{seq}"


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
        events: Silver events with ``session_key``; duplicates by ``event_id`` are harmless.

    Returns:
        Columns :data:`SESSION_FEATURE_COLUMNS`; ``session_id`` holds the visit id and
        ``event_timestamp`` the visit's last event time (UTC).
    """
    rows: list[dict[str, Any]] = []
    for key, group in events.groupby(SESSION_KEY, sort=True):
        # Missing values must reach the fold as None (NaN is truthy and would count as a category).
        records = group.astype(object).where(group.notna(), None).to_dict("records")
        for record in records:
            record[names.SESSION_ID] = key
        rows.append(fold_session(records))
    frame = pd.DataFrame(rows, columns=list(SESSION_FEATURE_COLUMNS[:-1]))
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[names.SESSION_LAST_EVENT_MS].astype("int64"), unit="ms", utc=True)
    return frame

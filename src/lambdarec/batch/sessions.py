"""Gold's session snapshots: the shared session fold after every event, over pandas frames.

A session is the shop's ``session_id`` (:data:`lambdarec.features.session.SESSION_KEY`); idle
time does not split it. :func:`session_prefix_frame` is what Spark calls (``applyInPandas``) to
turn the events of many (snapshot date, session) groups into prefix rows with
:func:`lambdarec.features.session.session_prefix_rows`, the fold the speed layer and the request
path use too.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter
from typing import Any

import pandas as pd

from lambdarec import names
from lambdarec.batch.lake import day_start_ms, parse_date
from lambdarec.features.session import session_prefix_rows

EVENT_TIMESTAMP = "event_timestamp"
"""Feast's event timestamp column in every gold table."""
SNAPSHOT_DATE = "date"
"""The gold partition column: the snapshot date (``YYYY-MM-DD``) a row belongs to."""

SESSION_FEATURE_COLUMNS: tuple[str, ...] = (names.SESSION_ID, *names.SESSION_FEATURES, EVENT_TIMESTAMP)
FOLD_COLUMNS: tuple[str, ...] = ("event_id", "event_time", names.SESSION_ID, names.ITEM_ID, "event_type", "category")
"""What :func:`session_prefix_frame` needs of an event (the rest need not reach Python)."""


def session_prefix_frame(events: pd.DataFrame) -> pd.DataFrame:
    """Prefix snapshots of every (snapshot date, session) in ``events``.

    Args:
        events: :data:`FOLD_COLUMNS` plus :data:`SNAPSHOT_DATE`; the events a snapshot date's
            rows are folded over (that date's and the day before's), in any order. Only events
            of the snapshot date itself get rows; earlier ones make up the state they start from.

    Returns:
        Columns :data:`SESSION_FEATURE_COLUMNS` and :data:`SNAPSHOT_DATE`: one row per session and
        distinct event time on the snapshot date (see
        :func:`lambdarec.features.session.session_prefix_rows`), ``event_timestamp`` being that
        time (UTC).
    """
    keys = [SNAPSHOT_DATE, names.SESSION_ID]
    columns = [*FOLD_COLUMNS, SNAPSHOT_DATE]
    ordered = events[[c for c in columns if c in events.columns]].sort_values(keys, kind="stable")
    # One conversion for the whole frame, not one per session (that dominated the cost); missing
    # values must reach the fold as None (NaN is truthy and would count as a category).
    records = ordered.astype(object).where(ordered.notna(), None).to_dict("records")
    rows: list[dict[str, Any]] = []
    for (day, _session), group in groupby(records, key=itemgetter(*keys)):
        emit_from = day_start_ms(parse_date(str(day)))
        for row in session_prefix_rows(group, emit_from_ms=emit_from):
            row[SNAPSHOT_DATE] = day
            rows.append(row)
    frame = pd.DataFrame(rows, columns=[*SESSION_FEATURE_COLUMNS[:-1], SNAPSHOT_DATE])
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[names.SESSION_LAST_EVENT_MS].astype("int64"), unit="ms", utc=True)
    return frame[[*SESSION_FEATURE_COLUMNS, SNAPSHOT_DATE]]

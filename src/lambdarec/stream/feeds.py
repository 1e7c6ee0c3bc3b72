"""The speed layer's feeds: which topic fills which Feast view, and which of two rows of a key is newer.

The Flink job writes each feed with ``upsert-kafka`` (the record key is the entity id, the value a
full JSON snapshot); :data:`FEEDS` names, per kind (session, user, item), the key, the push
source, the feature view, the features, the row's event time and its rank (larger is newer).
Pure: no Kafka, no Feast (pandas only inside the frame builders).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambdarec import names


def snapshot_rank(row: Mapping[str, Any]) -> tuple[int, int, int]:
    """Order of two snapshots of one session: more events, later event, later emission wins."""
    return (
        int(row.get(names.SESSION_EVENT_COUNT, 0)),
        int(row.get(names.SESSION_LAST_EVENT_MS, 0)),
        int(row.get("emitted_ms", 0)),
    )


def newest_per_session(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest snapshot of each session among ``rows``."""
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        session = str(row[names.SESSION_ID])
        current = newest.get(session)
        if current is None or snapshot_rank(row) > snapshot_rank(current):
            newest[session] = row
    return newest


def _int(row: Mapping[str, Any], field: str) -> int:
    value = row.get(field)
    return int(value) if value is not None else 0


@dataclass(frozen=True)
class Feed:
    """One feature topic of the speed layer and where its rows go in Feast.

    Attributes:
        kind: ``session``, ``user`` or ``item``.
        key: The entity's join key (also the Kafka record key).
        push_source: The push source the rows are pushed to.
        feature_view: The feature view the push source fills.
        features: The feature columns of a row.
        event_time: The row field that is the row's event time in Feast (epoch ms).
        rank: Which of two rows of one key is newer (larger wins).
    """

    kind: str
    key: str
    push_source: str
    feature_view: str
    features: tuple[str, ...]
    event_time: str
    rank: Callable[[Mapping[str, Any]], tuple[int, ...]]

    def source_event_ms(self, row: Mapping[str, Any]) -> int:
        """The event time of the newest event folded into the row (freshness is measured from it)."""
        return int(row.get("source_event_ms") or row[self.event_time])


FEEDS: dict[str, Feed] = {
    "session": Feed(
        "session",
        names.SESSION_ID,
        names.SESSION_PUSH_SOURCE,
        names.SESSION_FEATURE_VIEW,
        names.SESSION_FEATURES,
        names.SESSION_LAST_EVENT_MS,
        snapshot_rank,
    ),
    "user": Feed(
        "user",
        names.USER_ID,
        names.USER_PUSH_SOURCE,
        names.USER_STREAM_FEATURE_VIEW,
        (names.USER_RECENT_ITEMS,),
        "source_event_ms",
        lambda row: (_int(row, "source_event_ms"), _int(row, "emitted_ms")),
    ),
    "item": Feed(
        "item",
        names.ITEM_ID,
        names.ITEM_PUSH_SOURCE,
        names.ITEM_STREAM_FEATURE_VIEW,
        (names.ITEM_TRENDING_COUNT,),
        names.ITEM_TRENDING_WINDOW_END_MS,
        lambda row: (
            _int(row, names.ITEM_TRENDING_WINDOW_END_MS),
            _int(row, "source_event_ms"),
            _int(row, "emitted_ms"),
        ),
    ),
}
"""The speed layer's feeds, by kind."""

DEFAULT_TOPICS: dict[str, str] = {
    "session": names.SESSION_FEATURES_TOPIC,
    "user": names.USER_FEATURES_TOPIC,
    "item": names.ITEM_FEATURES_TOPIC,
}


def feed_frame(feed: Feed, rows: Sequence[Mapping[str, Any]], timestamp_field: str = "event_timestamp") -> Any:
    """A DataFrame of a feed's rows as Feast's push path expects it.

    Args:
        feed: The feed.
        rows: Rows with the feed's key and feature columns.
        timestamp_field: The feature view's event timestamp column (the feed's event time).

    Returns:
        A pandas DataFrame: the key, the features, the timestamp column.
    """
    import pandas as pd

    frame = pd.DataFrame(
        {
            feed.key: [str(r[feed.key]) for r in rows],
            **{feature: [r.get(feature) for r in rows] for feature in feed.features},
        }
    )
    frame[timestamp_field] = pd.to_datetime([int(r[feed.event_time]) for r in rows], unit="ms", utc=True)
    return frame


def session_frame(rows: Sequence[Mapping[str, Any]], timestamp_field: str = "event_timestamp") -> Any:
    """A DataFrame of session snapshots as Feast's push path expects it (:func:`feed_frame` of sessions)."""
    return feed_frame(FEEDS["session"], rows, timestamp_field)


def newest_per_key(feed: Feed, rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest row of each key among ``rows``, by the feed's rank."""
    newest: dict[str, Mapping[str, Any]] = {}
    ranks: dict[str, tuple[int, ...]] = {}
    for row in rows:
        key = str(row[feed.key])
        rank = feed.rank(row)
        if key not in ranks or rank > ranks[key]:
            newest[key] = row
            ranks[key] = rank
    return newest

"""Online writes of a feed's rows: prebuilt protos through the online store, or Feast's DataFrame push.

:class:`FeedWriter` turns rows into Feast's protos directly and writes them with the online
store's ``online_write_batch`` (:class:`lambdarec.featurestore.push.PushWriter`): the same bytes
``store.push`` writes, without a DataFrame per batch. A store without the feed's push source is
written through :func:`push_frame` (Feast's DataFrame path) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lambdarec.stream.feeds import FEEDS, Feed, feed_frame

log = logging.getLogger("lambdarec.stream.pusher")  # the pusher's logger, as before the split by roles


def resolve_push_target(store: Any, feed: Feed | None = None) -> tuple[str | None, str]:
    """Where a feed's rows go in a store: (push source name or None, event timestamp column).

    The feed's push source when the repo defines it, else None (then the feed's feature view is
    written directly: the same online write a push makes). The session feed by default.

    Raises:
        Exception: Feast's own when the store has no such feature view (not applied yet).
    """
    feed = feed or FEEDS["session"]
    view = store.get_feature_view(feed.feature_view)
    source = view.stream_source or view.batch_source
    batch_source = getattr(source, "batch_source", None) or source
    timestamp_field = getattr(batch_source, "timestamp_field", None) or "event_timestamp"
    push_sources = {ds.name for ds in store.list_data_sources() if type(ds).__name__ == "PushSource"}
    return (feed.push_source if feed.push_source in push_sources else None), timestamp_field


def push_frame(
    store: Any, feed: Feed, rows: Sequence[Mapping[str, Any]], target: tuple[str | None, str] | None = None
) -> int:
    """Write a feed's rows through Feast's DataFrame push path (``store.push``, ``to=ONLINE``).

    Args:
        store: A ``feast.FeatureStore``.
        feed: The feed.
        rows: Rows; at most one per key.
        target: What :func:`resolve_push_target` returns (resolved here when None).

    Returns:
        How many rows were written.
    """
    if not rows:
        return 0
    from feast.data_source import PushMode

    push_source, timestamp_field = target or resolve_push_target(store, feed)
    frame = feed_frame(feed, rows, timestamp_field)
    if push_source is not None:
        store.push(push_source, frame, to=PushMode.ONLINE)
    else:
        store.write_to_online_store(feed.feature_view, df=frame)
    return len(frame)


def push_session_features(
    store: Any, rows: Sequence[Mapping[str, Any]], target: tuple[str | None, str] | None = None
) -> int:
    """Write session snapshots through Feast's DataFrame push path (:func:`push_frame` of sessions)."""
    return push_frame(store, FEEDS["session"], rows, target)


class FeedWriter:
    """Writes one feed's rows to the online store.

    Through :class:`~lambdarec.featurestore.push.PushWriter` (prebuilt protos, the online store's
    ``online_write_batch``) when the store has the feed's push source; else through Feast's
    DataFrame path (:func:`push_frame`: ``write_to_online_store`` of the view for a repo without
    the push source).

    Raises:
        Exception: Feast's own when the store has neither the push source nor the view.
    """

    def __init__(self, store: Any, feed: Feed) -> None:
        from feast.errors import PushSourceNotFoundException

        from lambdarec.featurestore.push import PushWriter

        self.feed = feed
        self.store = store
        self._writer: PushWriter | None = None
        self._target: tuple[str | None, str] | None = None
        try:
            self._writer = PushWriter(store, feed.push_source)
        except (NotImplementedError, PushSourceNotFoundException) as why:
            log.info("%s: writing through DataFrames (%s)", feed.feature_view, why)
            self._target = resolve_push_target(store, feed)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write rows (at most one per key); return how many were written."""
        if not rows:
            return 0
        if self._writer is None:
            return push_frame(self.store, self.feed, rows, self._target)
        from lambdarec.featurestore.push import naive_utc_from_ms

        feed = self.feed
        columns: dict[str, list[Any]] = {feed.key: [str(r[feed.key]) for r in rows]}
        for feature in feed.features:
            columns[feature] = [r.get(feature) for r in rows]
        stamps = [naive_utc_from_ms(int(r[feed.event_time])) for r in rows]
        return self._writer.write(columns, stamps)


def available_feeds(store: Any, kinds: Iterable[str]) -> list[str]:
    """The kinds whose push source the store has; the session feed always (its writes retry until applied)."""
    try:
        sources = {ds.name for ds in store.list_data_sources()}
    except Exception:  # noqa: BLE001 - registry not there yet: only the session feed, which retries
        sources = set()
    return [kind for kind in kinds if kind == "session" or FEEDS[kind].push_source in sources]

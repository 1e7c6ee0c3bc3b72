"""Session features as one fold over a session's events, shared by every layer.

**The session key is the shop's ``session_id``, everywhere** (:data:`SESSION_KEY`): the speed
layer, silver and gold, the training sets, the models and the request path all key a session by
it, and idle time never splits it into visits. The shop's session id already encodes its visits;
how long a session is remembered is bounded by the speed layer's state TTL and the online
view's TTL, not by a gap rule here.

The speed layer keeps a :class:`SessionState` per session and calls :func:`update_session`
as events arrive; the batch layer folds a session's events with :func:`fold_session`, and
:func:`session_prefix_rows` gives the state after each event (gold's point-in-time snapshots);
the request path does the same over the events it has. The fold is insensitive to arrival
order and to duplicates (by ``event_id``), so a stream that sees events late or twice
ends where a batch recount of the same events ends — the parity the tests check.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdarec import names

SESSION_KEY = names.SESSION_ID
"""The column that keys a session in every layer: the shop's ``session_id``, never split by idle time."""
RECENT_ITEMS = 20
"""How many of the session's latest items the sequence feature keeps."""
PURCHASED_ITEMS = 20
"""How many of the session's latest purchases are kept (the request path removes those items)."""
MAX_TRACKED_CATEGORIES = 256
"""Distinct categories are counted up to this bound (keeps state small under abuse)."""

_COUNTERS = {"view": "view_count", "cart": "cart_count", "purchase": "purchase_count"}


@dataclass
class SessionState:
    """Everything the session features need, updatable one event at a time.

    Attributes:
        session_id: The session.
        start_ms: Earliest event time seen.
        last_ms: Latest event time seen.
        view_count: Views (deduplicated by event_id).
        cart_count: Add-to-carts.
        purchase_count: Purchases.
        recent: ``(event_time, event_id, item_id)`` of the latest events, oldest first.
        purchased: The same for the latest purchases.
        categories: Distinct categories seen (bounded).
        seen_ids: Event ids folded in, so a redelivered event is not counted twice.
    """

    session_id: str
    start_ms: int
    last_ms: int
    view_count: int = 0
    cart_count: int = 0
    purchase_count: int = 0
    recent: list[tuple[int, str, str]] = field(default_factory=list)
    purchased: list[tuple[int, str, str]] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)
    seen_ids: set[str] = field(default_factory=set)

    @property
    def event_count(self) -> int:
        """Distinct events folded in."""
        return len(self.seen_ids)


def new_session_state(event: Mapping[str, Any]) -> SessionState:
    """An empty state for the session of ``event`` (call :func:`update_session` next)."""
    time_ms = int(event["event_time"])
    return SessionState(session_id=str(event["session_id"]), start_ms=time_ms, last_ms=time_ms)


def update_session(state: SessionState, event: Mapping[str, Any]) -> bool:
    """Fold one event into the state.

    Args:
        state: The session's state; changed in place.
        event: A mapping with the ``ClickEvent`` fields.

    Returns:
        False when the event was already folded in (same ``event_id``), else True.
    """
    event_id = str(event["event_id"])
    if event_id in state.seen_ids:
        return False
    state.seen_ids.add(event_id)
    time_ms = int(event["event_time"])
    state.start_ms = min(state.start_ms, time_ms)
    state.last_ms = max(state.last_ms, time_ms)
    counter = _COUNTERS.get(str(event["event_type"]))
    if counter is not None:
        setattr(state, counter, getattr(state, counter) + 1)
    category = event.get("category")
    if category and len(state.categories) < MAX_TRACKED_CATEGORIES:
        state.categories.add(str(category))
    entry = (time_ms, event_id, str(event["item_id"]))
    _keep_latest(state.recent, entry, RECENT_ITEMS)
    if event["event_type"] == "purchase":
        _keep_latest(state.purchased, entry, PURCHASED_ITEMS)
    return True


def _keep_latest(entries: list[tuple[int, str, str]], entry: tuple[int, str, str], limit: int) -> None:
    """Insert in event-time order (ties by event_id) whatever the arrival order; keep the latest ``limit``."""
    bisect.insort(entries, entry)
    if len(entries) > limit:
        del entries[0]


def session_features(state: SessionState) -> dict[str, Any]:
    """The feature row of a session, keyed by the names in :mod:`lambdarec.names`."""
    return {
        names.SESSION_ID: state.session_id,
        names.SESSION_RECENT_ITEMS: [item for _t, _id, item in state.recent],
        names.SESSION_EVENT_COUNT: state.event_count,
        names.SESSION_VIEW_COUNT: state.view_count,
        names.SESSION_CART_COUNT: state.cart_count,
        names.SESSION_PURCHASE_COUNT: state.purchase_count,
        names.SESSION_DISTINCT_CATEGORIES: len(state.categories),
        names.SESSION_START_MS: state.start_ms,
        names.SESSION_LAST_EVENT_MS: state.last_ms,
        names.SESSION_DWELL_S: (state.last_ms - state.start_ms) / 1000.0,
        names.SESSION_PURCHASED_ITEMS: [item for _t, _id, item in state.purchased],
    }


def fold_session(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Session features of one session's events (any order, duplicates allowed).

    Raises:
        ValueError: When ``events`` is empty or spans several sessions.
    """
    state: SessionState | None = None
    for event in events:
        if state is None:
            state = new_session_state(event)
        elif str(event["session_id"]) != state.session_id:
            raise ValueError(f"fold_session got events of {state.session_id!r} and {event['session_id']!r}")
        update_session(state, event)
    if state is None:
        raise ValueError("fold_session needs at least one event")
    return session_features(state)


def session_prefix_rows(
    events: Iterable[Mapping[str, Any]], *, emit_from_ms: int | None = None
) -> list[dict[str, Any]]:
    """The session's features after each of its events: one row per distinct event time.

    Events are folded in ``(event_time, event_id)`` order with :func:`update_session`; after the
    last event of each millisecond the row :func:`session_features` gives is emitted, so the row
    stamped ``t`` equals :func:`fold_session` of every event at or before ``t`` and a
    point-in-time lookup at any time finds exactly one row (events sharing a millisecond have no
    order a reader could rely on). A repeated ``event_id`` is folded once, at its earliest copy.

    Args:
        events: One session's events (any order, duplicates allowed).
        emit_from_ms: Emit rows only for event times at or after this (earlier events are still
            folded in: gold's snapshot of a date reads the day before for the state only).

    Returns:
        Rows in time order; each row's ``session_last_event_ms`` is its event time.

    Raises:
        ValueError: When ``events`` spans several sessions.
    """
    ordered = sorted(events, key=lambda e: (int(e["event_time"]), str(e["event_id"])))
    rows: list[dict[str, Any]] = []
    if not ordered:
        return rows
    state = new_session_state(ordered[0])
    for i, event in enumerate(ordered):
        if str(event["session_id"]) != state.session_id:
            raise ValueError(f"session_prefix_rows got events of {state.session_id!r} and {event['session_id']!r}")
        update_session(state, event)
        time_ms = int(event["event_time"])
        last_of_ms = i + 1 == len(ordered) or int(ordered[i + 1]["event_time"]) != time_ms
        if last_of_ms and (emit_from_ms is None or time_ms >= emit_from_ms):
            rows.append(session_features(state))
    return rows

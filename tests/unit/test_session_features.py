"""Session features: order- and duplicate-insensitive, so stream and batch agree."""

from __future__ import annotations

import random

import pytest

from lambdarec import names
from lambdarec.features.session import (
    RECENT_ITEMS,
    SESSION_KEY,
    fold_session,
    new_session_state,
    session_prefix_rows,
    update_session,
)


def session_events(n: int, session: str = "s1") -> list[dict[str, object]]:
    kinds = ["view", "view", "view", "cart", "purchase"]
    return [
        {
            "event_id": f"e{i}",
            "event_time": 1_700_000_000_000 + 1000 * i,
            "session_id": session,
            "item_id": f"i{i % 9}",
            "event_type": kinds[i % 5],
            "category": f"c{i % 4}" if i % 3 else None,
        }
        for i in range(n)
    ]


def test_counts_sequence_and_times() -> None:
    features = fold_session(session_events(30))
    assert features[names.SESSION_EVENT_COUNT] == 30
    assert (features[names.SESSION_VIEW_COUNT], features[names.SESSION_CART_COUNT]) == (18, 6)
    assert features[names.SESSION_PURCHASE_COUNT] == 6
    assert features[names.SESSION_RECENT_ITEMS] == [f"i{i % 9}" for i in range(30 - RECENT_ITEMS, 30)]
    assert features[names.SESSION_DISTINCT_CATEGORIES] == 4
    assert features[names.SESSION_DWELL_S] == 29.0
    assert features[names.SESSION_START_MS] == 1_700_000_000_000


def test_shuffled_and_duplicated_arrivals_give_the_batch_answer() -> None:
    events = session_events(50)
    expected = fold_session(events)
    rng = random.Random(3)
    for _ in range(20):
        arrivals = events + rng.sample(events, 15)  # redeliveries
        rng.shuffle(arrivals)
        state = new_session_state(arrivals[0])
        accepted = sum(update_session(state, e) for e in arrivals)
        assert accepted == 50
        assert fold_session(arrivals) == expected


def test_mixed_sessions_and_empty_input_are_errors() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        fold_session([])
    with pytest.raises(ValueError, match="s2"):
        fold_session(session_events(2) + session_events(1, session="s2"))


def _prefix_of(events: list[dict[str, object]], row: dict[str, object]) -> list[dict[str, object]]:
    """Every event at or before the row's time (the point-in-time view of the session)."""
    t = row[names.SESSION_LAST_EVENT_MS]
    return [e for e in events if int(e["event_time"]) <= t]  # type: ignore[call-overload]


def test_prefix_rows_are_the_fold_of_each_prefix_one_per_millisecond() -> None:
    rng = random.Random(11)
    events = session_events(60)
    # Ties: several events of one millisecond (in no meaningful order).
    for e in rng.sample(events, 15):
        e["event_time"] = events[rng.randrange(len(events))]["event_time"]
    arrivals = events + rng.sample(events, 10)  # duplicates
    rng.shuffle(arrivals)
    rows = session_prefix_rows(arrivals)
    times = [r[names.SESSION_LAST_EVENT_MS] for r in rows]
    assert times == sorted(set(times)) == sorted({e["event_time"] for e in events})  # type: ignore[type-var]
    assert len(rows) < len(events)  # the ties collapsed
    for row in rows:
        assert row == fold_session(_prefix_of(events, row))
    assert rows[-1] == fold_session(events)


def test_prefix_rows_after_a_long_idle_gap_keep_the_session_key() -> None:
    events = session_events(10)
    for e in events[5:]:
        e["event_time"] = int(e["event_time"]) + 75 * 60_000  # type: ignore[call-overload]
    rows = session_prefix_rows(events)
    assert SESSION_KEY == names.SESSION_ID
    assert {r[SESSION_KEY] for r in rows} == {"s1"}  # one session, not two visits
    assert [r[names.SESSION_EVENT_COUNT] for r in rows] == list(range(1, 11))
    assert rows[-1][names.SESSION_DWELL_S] == 9.0 + 75 * 60


def test_prefix_rows_emit_from_folds_earlier_events_without_rows() -> None:
    events = session_events(20)
    cut = int(events[12]["event_time"])  # type: ignore[call-overload]
    rows = session_prefix_rows(events, emit_from_ms=cut)
    assert [r[names.SESSION_LAST_EVENT_MS] for r in rows] == [e["event_time"] for e in events[12:]]
    assert rows[0] == fold_session(events[:13])
    assert session_prefix_rows([]) == []
    with pytest.raises(ValueError, match="s2"):
        session_prefix_rows(session_events(2) + session_events(1, session="s2"))


def test_purchased_items_are_the_sessions_latest_purchases_in_event_time_order() -> None:
    """Only purchases count, oldest first whatever the arrival order, a redelivery once, the latest 20 kept."""
    from lambdarec.features.session import PURCHASED_ITEMS

    def event(n: int, kind: str) -> dict[str, object]:
        return {"event_id": f"e{n}", "session_id": "s", "item_id": f"i{n}", "event_type": kind, "event_time": 1_000 * n}

    events = [event(n, "purchase" if n % 2 else "view") for n in range(1, 60)]
    shuffled = events[::-1] + events[:5]  # late arrivals and redeliveries
    features = fold_session(shuffled)
    bought = [f"i{n}" for n in range(1, 60, 2)][-PURCHASED_ITEMS:]
    assert features[names.SESSION_PURCHASED_ITEMS] == bought
    assert fold_session(events[:2])[names.SESSION_PURCHASED_ITEMS] == ["i1"]
    assert fold_session([event(2, "cart")])[names.SESSION_PURCHASED_ITEMS] == []

"""Session features: order- and duplicate-insensitive, so stream and batch agree."""

from __future__ import annotations

import random

import pytest

from lambdarec import names
from lambdarec.features.session import RECENT_ITEMS, fold_session, new_session_state, update_session


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

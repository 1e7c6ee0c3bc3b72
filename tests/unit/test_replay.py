"""Replay pacing and accounting, with a recording publisher instead of a broker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from lambdarec.events.producer import PublishStats
from lambdarec.replay import ReplaySpeed, replay_events


class RecordingPublisher:
    """Stands in for EventPublisher: records what was published and when."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.sent: list[tuple[float, Mapping[str, Any]]] = []
        self.stats = PublishStats()
        self.flushed = False

    def publish(self, raw: Mapping[str, Any], origin: Mapping[str, Any] | None = None) -> None:
        self.stats.offered += 1
        self.stats.accepted += 1
        self.sent.append((self.clock[0], raw))

    def flush(self) -> PublishStats:
        self.flushed = True
        return self.stats


def events(times_ms: list[int]) -> list[dict[str, Any]]:
    return [{"event_id": str(i), "event_time": t} for i, t in enumerate(times_ms)]


@pytest.mark.parametrize(("text", "factor"), [("max", None), ("MAX", None), ("60", 60.0), ("0.5", 0.5)])
def test_speed_parses(text: str, factor: float | None) -> None:
    assert ReplaySpeed.parse(text).factor == factor


@pytest.mark.parametrize("text", ["0", "-3", "fast", ""])
def test_bad_speed_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="speed must be"):
        ReplaySpeed.parse(text)


def test_real_time_factor_paces_by_event_time() -> None:
    now = [100.0]
    publisher = RecordingPublisher(now)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    stats = replay_events(
        events([1_000_000, 1_010_000, 1_010_000, 1_070_000]),
        publisher,  # type: ignore[arg-type]
        speed=ReplaySpeed(10.0),
        sleep=sleep,
        clock=lambda: now[0],
    )
    # 10 s of event time at 10x is 1 s of wall time; 70 s is 7 s.
    assert [round(t - 100.0, 3) for t, _ in publisher.sent] == [0.0, 1.0, 1.0, 7.0]
    assert stats.offered == 4 and publisher.flushed


def test_max_speed_never_sleeps_and_limit_stops_early() -> None:
    now = [0.0]
    publisher = RecordingPublisher(now)

    def no_sleep(_seconds: float) -> None:
        raise AssertionError("max speed must not sleep")

    progress: list[int] = []
    replay_events(
        events(list(range(0, 100_000, 1000))),
        publisher,  # type: ignore[arg-type]
        speed=ReplaySpeed(None),
        limit=30,
        on_progress=lambda s: progress.append(s.offered),
        progress_every=10,
        sleep=no_sleep,
    )
    assert len(publisher.sent) == 30
    assert progress == [10, 20, 30, 30]


def test_events_without_a_usable_time_are_still_published() -> None:
    now = [0.0]
    publisher = RecordingPublisher(now)
    raws = [{"event_id": "a", "event_time": 1000}, {"event_id": "b", "event_time": "garbage"}]
    replay_events(raws, publisher, speed=ReplaySpeed(1.0), sleep=lambda s: None, clock=lambda: now[0])  # type: ignore[arg-type]
    assert [r["event_id"] for _, r in publisher.sent] == ["a", "b"]

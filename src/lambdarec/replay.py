"""Replay a dataset into Kafka in event-time order, in real time scaled by a factor or as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdarec.events.producer import EventPublisher, PublishStats


@dataclass(frozen=True)
class ReplaySpeed:
    """How fast to replay: ``factor`` × real time, or as fast as possible when None."""

    factor: float | None

    @classmethod
    def parse(cls, text: str) -> ReplaySpeed:
        """Parse ``max`` or a positive number such as ``60`` (one hour of events per minute).

        Raises:
            ValueError: The text is neither ``max`` nor a positive number.
        """
        if text.strip().lower() in {"max", "inf", "fastest"}:
            return cls(None)
        try:
            factor = float(text)
        except ValueError:
            raise ValueError(f"speed must be 'max' or a positive number, got {text!r}") from None
        if not factor > 0:
            raise ValueError(f"speed must be positive, got {text!r}")
        return cls(factor)

    def describe(self) -> str:
        """Human-readable form for progress output."""
        return "as fast as possible" if self.factor is None else f"{self.factor:g}x real time"


def _event_time_ms(raw: Mapping[str, Any]) -> int | None:
    value = raw.get("event_time")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def replay_events(
    events: Iterable[Mapping[str, Any]],
    publisher: EventPublisher,
    *,
    speed: ReplaySpeed,
    limit: int | None = None,
    on_progress: Callable[[PublishStats], None] | None = None,
    progress_every: int = 2_000,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> PublishStats:
    """Publish events (already in event-time order) through the validating publisher.

    Pacing follows the events' own clock: an event ``d`` ms after the first is sent
    ``d / factor`` ms after the replay started. Invalid events are not skipped: the
    publisher dead-letters them with the reason.

    Args:
        events: Raw event mappings, sorted by ``event_time``.
        publisher: Where to publish.
        speed: Real-time factor or as fast as possible.
        limit: Stop after this many events.
        on_progress: Called with the running stats every ``progress_every`` events.
        progress_every: Progress granularity.
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        The publisher's stats after a flush (every event acknowledged or counted as failed).
    """
    first_event_ms: int | None = None
    started = clock()
    sent = 0
    for raw in events:
        if limit is not None and sent >= limit:
            break
        if speed.factor is not None:
            event_ms = _event_time_ms(raw)
            if event_ms is not None:
                if first_event_ms is None:
                    first_event_ms = event_ms
                due = started + (event_ms - first_event_ms) / 1000 / speed.factor
                wait = due - clock()
                # Sub-millisecond waits cost more in syscalls than they buy in fidelity.
                if wait > 0.001:
                    sleep(wait)
        publisher.publish(raw, origin={"replay_index": sent})
        sent += 1
        if on_progress is not None and sent % progress_every == 0:
            on_progress(publisher.stats)
    stats = publisher.flush()
    if on_progress is not None:
        on_progress(stats)
    return stats

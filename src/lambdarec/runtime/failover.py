"""A broker-failover drill: publish at a steady rate, ``kill -9`` one broker mid-stream, keep publishing.

Used by the cluster profile's integration test (which then reads the topic back) and by
``bench/bench_cluster.py`` (which records the pause). The pause is the longest gap between two
consecutive acknowledged deliveries (``acks=all``) while events were offered at a steady rate: how
long ingest stood still while the cluster elected new leaders and shrank the in-sync replica sets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdarec.events.producer import EventPublisher


class _TimedPublisher(EventPublisher):
    """The project's publisher, also noting when each event's acknowledgement arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acks: list[tuple[float, str]] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        super()._on_delivery(err, msg)
        if err is None:
            self.acks.append((time.monotonic(), str(json.loads(msg.value())["event_id"])))

    def serve(self) -> None:
        """Serve pending delivery reports now (the base class polls only every 1000 events)."""
        self._producer.poll(0)


@dataclass
class FailoverReport:
    """What one drill saw.

    Attributes:
        offered: Events handed to the publisher.
        acked_ids: Event ids the cluster acknowledged, in acknowledgement order.
        failed: Deliveries that failed after the client's retries.
        killed_at_s: Seconds from the first event to the kill.
        duration_s: Seconds from the first event to the last acknowledgement.
        max_gap_ms: The longest gap between consecutive acknowledgements (the failover pause).
        gap_after_kill_ms: The longest such gap that began after the kill.
        acked_after_kill: Acknowledgements that arrived after the kill.
        rate_per_s: The offered rate.
    """

    offered: int
    acked_ids: list[str]
    failed: int
    killed_at_s: float
    duration_s: float
    max_gap_ms: float
    gap_after_kill_ms: float
    acked_after_kill: int
    rate_per_s: float
    publish_stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (without the ids)."""
        return {
            "offered": self.offered,
            "acked": len(self.acked_ids),
            "failed": self.failed,
            "rate_per_s": self.rate_per_s,
            "killed_at_s": round(self.killed_at_s, 2),
            "duration_s": round(self.duration_s, 2),
            "max_gap_ms": round(self.max_gap_ms, 1),
            "gap_after_kill_ms": round(self.gap_after_kill_ms, 1),
            "acked_after_kill": self.acked_after_kill,
        }


def steady_event(i: int, now_ms: int, prefix: str = "failover") -> dict[str, Any]:
    """Event number ``i`` of a drill: valid, unique id (``<prefix>-<i>``), a few sessions and items."""
    return {
        "event_id": f"{prefix}-{i}",
        "event_time": now_ms - 1_000,
        "session_id": f"s-{i % 97}",
        "user_id": f"u-{i % 31}",
        "item_id": 1000 + i % 50,
        "event_type": ("view", "view", "cart", "purchase")[i % 4],
        "price": 9.99,
    }


def run_failover_drill(
    bootstrap: str,
    kill: Callable[[], None],
    *,
    topic: str,
    rate_per_s: float = 400.0,
    before_s: float = 6.0,
    after_s: float = 30.0,
    flush_timeout_s: float = 150.0,
    id_prefix: str = "failover",
) -> FailoverReport:
    """Publish ``rate_per_s`` events for ``before_s``, call ``kill``, publish ``after_s`` more, flush.

    Args:
        bootstrap: The cluster's bootstrap list (every broker, so losing one leaves the others).
        kill: Kills a broker (``kill -9``); called once, between the two phases.
        topic: Where to publish (the pipeline's ``clicks``).
        rate_per_s: Events offered per second, in ticks of 20 ms.
        before_s: Publishing before the kill.
        after_s: Publishing after it (longer than the broker session timeout, so failover happens inside).
        flush_timeout_s: How long the final flush may wait for the last acknowledgements.
        id_prefix: Event ids are ``<id_prefix>-<n>``: one prefix per drill on the same topic.

    Returns:
        The report; the caller checks the topic's content against ``acked_ids``.
    """
    tick_s = 0.02
    per_tick = max(1, round(rate_per_s * tick_s))
    publisher = _TimedPublisher(bootstrap, topic=topic)
    start = time.monotonic()
    killed_at = -1.0
    i = 0
    total_s = before_s + after_s
    next_tick = start
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= total_s:
            break
        if killed_at < 0 and elapsed >= before_s:
            kill()
            killed_at = time.monotonic() - start
        now_ms = int(time.time() * 1000)
        for _ in range(per_tick):
            publisher.publish(steady_event(i, now_ms, id_prefix))
            i += 1
        publisher.serve()
        next_tick += tick_s
        time.sleep(max(0.0, next_tick - time.monotonic()))
    stats = publisher.flush(flush_timeout_s)
    times = [t - start for t, _ in publisher.acks]
    gaps = [(b - a, a) for a, b in zip(times, times[1:], strict=False)]
    max_gap = max((g for g, _ in gaps), default=0.0)
    # The gaps that end after the kill (the one spanning it included).
    after_kill = max((g for g, began in gaps if began + g > killed_at), default=0.0)
    return FailoverReport(
        offered=stats.offered,
        acked_ids=[event_id for _, event_id in publisher.acks],
        failed=stats.failed,
        killed_at_s=killed_at,
        duration_s=times[-1] if times else 0.0,
        max_gap_ms=max_gap * 1000,
        gap_after_kill_ms=after_kill * 1000,
        acked_after_kill=sum(1 for t in times if t > killed_at),
        rate_per_s=per_tick / tick_s,
        publish_stats=stats.as_dict(),
    )

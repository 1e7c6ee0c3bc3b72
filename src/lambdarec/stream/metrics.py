"""Freshness of the online store: lag from source event time to feature visible, as metrics.

The pusher records, for every feature update it makes visible, ``visible_ms - source_event_ms``
and writes the summary atomically as JSON (read by ``lambdarec stream status``) and as a
Prometheus text file (for a node-exporter textfile collector). :class:`FreshnessMetrics` keeps
one tracker per features topic (session, user, item) plus their total: the JSON's top level is
the total (all topics), ``topics`` holds each topic's figures, and the Prometheus series carry a
``topic`` label beside the unlabelled totals.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[rank]


@dataclass
class FreshnessTracker:
    """Rolling freshness figures plus running totals.

    Attributes:
        window: How many of the latest lags the percentiles cover.
        lags_ms: The latest lags in milliseconds.
        updates: Feature updates made visible since start.
        pushes: Writes to the online store (batches).
        late: Updates the job flagged as late (behind the watermark; folded anyway).
        skipped_stale: Rows older than what was already pushed for the key (replays after a restart).
        undecodable: Rows on the features topic that were not JSON objects.
        tombstones: Records with a null value (a key deleted upstream): skipped, not written.
        last_event_ms: Newest source event time pushed.
    """

    window: int = 10_000
    lags_ms: deque[float] = field(default_factory=deque)
    updates: int = 0
    pushes: int = 0
    late: int = 0
    skipped_stale: int = 0
    undecodable: int = 0
    tombstones: int = 0
    last_event_ms: int = 0
    started_at: float = field(default_factory=time.time)

    def record(self, source_event_ms: int, visible_ms: int) -> None:
        """Record one update that became visible at ``visible_ms``."""
        self.lags_ms.append(float(visible_ms - source_event_ms))
        while len(self.lags_ms) > self.window:
            self.lags_ms.popleft()
        self.updates += 1
        self.last_event_ms = max(self.last_event_ms, source_event_ms)

    def summary(self) -> dict[str, Any]:
        """The figures as one JSON-able dict."""
        lags = list(self.lags_ms)
        return {
            "updated_at": time.time(),
            "started_at": self.started_at,
            "updates": self.updates,
            "pushes": self.pushes,
            "late_updates": self.late,
            "skipped_stale": self.skipped_stale,
            "undecodable": self.undecodable,
            "tombstones": self.tombstones,
            "last_event_ms": self.last_event_ms,
            "lag_samples": len(lags),
            "lag_p50_ms": percentile(lags, 0.50),
            "lag_p99_ms": percentile(lags, 0.99),
            "lag_max_ms": max(lags) if lags else None,
        }

    def write(self, json_path: Path) -> None:
        """Write the summary to ``json_path`` and Prometheus text beside it (``.prom``)."""
        summary = self.summary()
        _atomic_write(json_path, json.dumps(summary, indent=2))
        _atomic_write(json_path.with_suffix(".prom"), prometheus_text(summary))


_COUNTERS = ("updates", "pushes", "late_updates", "skipped_stale", "undecodable", "tombstones")


def prometheus_text(summary: dict[str, Any]) -> str:
    """The summary in the Prometheus text exposition format (per-topic series when it has ``topics``)."""
    topics: dict[str, dict[str, Any]] = summary.get("topics") or {}
    lines = [
        "# HELP lambdarec_stream_freshness_ms Lag from source event time to feature visible in the online store.",
        "# TYPE lambdarec_stream_freshness_ms summary",
    ]
    for labels, figures in [("", summary), *((f'topic="{t}",', f) for t, f in sorted(topics.items()))]:
        for quantile, key in (("0.5", "lag_p50_ms"), ("0.99", "lag_p99_ms")):
            if figures.get(key) is not None:
                lines.append(f'lambdarec_stream_freshness_ms{{{labels}quantile="{quantile}"}} {figures[key]}')
        suffix = f"{{{labels.rstrip(',')}}}" if labels else ""
        lines.append(f"lambdarec_stream_freshness_ms_count{suffix} {figures.get('updates', 0)}")
    for name in _COUNTERS:
        lines.append(f"# TYPE lambdarec_stream_{name}_total counter")
        lines.append(f"lambdarec_stream_{name}_total {summary.get(name, 0)}")
        for topic, figures in sorted(topics.items()):
            lines.append(f'lambdarec_stream_{name}_total{{topic="{topic}"}} {figures.get(name, 0)}')
    return "\n".join(lines) + "\n"


@dataclass
class FreshnessMetrics:
    """Freshness per features topic and in total.

    Attributes:
        total: All topics together (the summary's top level, as a single tracker writes it).
        topics: One tracker per topic.
    """

    total: FreshnessTracker = field(default_factory=FreshnessTracker)
    topics: dict[str, FreshnessTracker] = field(default_factory=dict)

    def topic(self, name: str) -> FreshnessTracker:
        """The tracker of one topic (created on first use)."""
        tracker = self.topics.get(name)
        if tracker is None:
            tracker = self.topics[name] = FreshnessTracker(window=self.total.window)
        return tracker

    def record(self, topic: str, source_event_ms: int, visible_ms: int) -> None:
        """Record one update of ``topic`` that became visible at ``visible_ms``."""
        self.topic(topic).record(source_event_ms, visible_ms)
        self.total.record(source_event_ms, visible_ms)

    def count(self, topic: str, counter: str, n: int = 1) -> None:
        """Add ``n`` to a counter (``late``, ``skipped_stale``, ``undecodable``, ``tombstones``, ``pushes``)."""
        tracker = self.topic(topic)
        setattr(tracker, counter, getattr(tracker, counter) + n)
        setattr(self.total, counter, getattr(self.total, counter) + n)

    def summary(self) -> dict[str, Any]:
        """The total's summary plus ``topics``: each topic's, without the figures it has no samples for."""
        summary = self.total.summary()
        skip = ("updated_at", "started_at")
        summary["topics"] = {
            name: {k: v for k, v in tracker.summary().items() if v is not None and k not in skip}
            for name, tracker in sorted(self.topics.items())
        }
        return summary

    def write(self, json_path: Path) -> None:
        """Write the summary to ``json_path`` and Prometheus text beside it (``.prom``)."""
        summary = self.summary()
        _atomic_write(json_path, json.dumps(summary, indent=2))
        _atomic_write(json_path.with_suffix(".prom"), prometheus_text(summary))


def read_metrics(json_path: Path) -> dict[str, Any] | None:
    """The last summary written, or None."""
    try:
        data = json.loads(json_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

"""The served-features log: sampling, the record format, bounded when Kafka is away (no engine here)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lambdarec.serving.feature_log import ServedFeatureLog, decode_records, encode_record, open_feature_log

pytestmark = pytest.mark.unit

NAMES = ("a", "b")


class FullQueueProducer:
    """A producer whose bounded queue is full after ``room`` records (Kafka away)."""

    def __init__(self, room: int) -> None:
        self.room, self.values = room, []  # type: ignore[var-annotated]

    def produce(self, _topic: str, value: bytes, on_delivery: Any = None) -> None:
        if len(self.values) >= self.room:
            raise BufferError("Local: Queue full")
        self.values.append(value)
        on_delivery("timed out", None)  # none of them is acknowledged either

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0


def test_records_round_trip_and_unreadable_ones_are_skipped() -> None:
    good = encode_record(1_700_000_000_000, "3", {"a": 1.5, "b": 0.0})
    frame = decode_records([good, b"not json", b'{"ts_ms": 1}'])
    assert frame.to_dict("records") == [{"ts_ms": 1_700_000_000_000, "model": "3", "a": 1.5, "b": 0.0}]
    assert decode_records([]).empty


def test_the_sample_keeps_about_the_rate_and_counts_everything() -> None:
    producer = FullQueueProducer(room=10**9)
    feature_log = ServedFeatureLog(producer, 0.25, NAMES, seed=1)
    dense = np.ones((4_000, 2), dtype=np.float32)
    enqueued = feature_log.log("3", dense, 5)
    assert 800 < enqueued < 1_200 and feature_log.stats.sampled == enqueued == len(producer.values)
    assert feature_log.stats.seen == 4_000 and feature_log.stats.failed == enqueued


def test_a_full_queue_drops_and_counts_instead_of_failing_the_request() -> None:
    feature_log = ServedFeatureLog(FullQueueProducer(room=3), 1.0, NAMES)
    assert feature_log.log("3", np.zeros((10, 2), dtype=np.float32), 5) == 3
    assert feature_log.stats.dropped == 7 and feature_log.stats.sampled == 10


def test_rate_zero_opens_no_log_and_a_bad_rate_is_refused() -> None:
    assert open_feature_log("127.0.0.1:1", 0.0, NAMES) is None
    with pytest.raises(ValueError, match="feature_log_rate"):
        ServedFeatureLog(FullQueueProducer(1), 1.5, NAMES)

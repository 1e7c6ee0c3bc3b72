"""``compact_loaded``: the build waits for Milvus's merge and its hand-over, and never forever.

The integration test (tests/integration/models/test_tracking_and_index.py) merges real segments;
these pin the waiting rules with a stand-in client.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lambdarec.index.milvus import compact_loaded


class MergingMilvus:
    """Compaction runs for ``busy`` state checks; the merged segment 9 replaces 1 and 2 after ``handover`` listings."""

    def __init__(self, busy: int, handover: int, sources: tuple[int, ...] = (1, 2)) -> None:
        self.busy, self.handover, self.sources = busy, handover, sources
        self.listings = 0

    def compact(self, name: str) -> int:
        return 7

    def get_compaction_state(self, job: int) -> str:
        self.busy -= 1
        return "Executing" if self.busy >= 0 else "Completed"

    def get_compaction_plans(self, job: int) -> Any:
        plans = [SimpleNamespace(sources=list(self.sources), target=9)] if self.sources else []
        return SimpleNamespace(plans=plans)

    def list_loaded_segments(self, name: str) -> list[Any]:
        self.listings += 1
        ids = [1, 2, 9] if self.sources and self.listings <= self.handover else ([9] if self.sources else [4])
        return [SimpleNamespace(segment_id=i) for i in ids]


def test_waits_for_the_merge_and_for_its_sources_to_leave() -> None:
    client = MergingMilvus(busy=3, handover=2)
    assert compact_loaded(client, "c", poll_s=0) == 1
    assert client.busy < 0 and client.listings == 3  # two listings still held the sources


def test_nothing_to_merge_returns_the_loaded_count_at_once() -> None:
    client = MergingMilvus(busy=0, handover=0, sources=())
    assert compact_loaded(client, "c", poll_s=0) == 1
    assert client.listings == 1


@pytest.mark.parametrize(("busy", "handover", "what"), [(10**9, 0, "compacting"), (0, 10**9, "load the merged")])
def test_a_merge_that_never_ends_times_out_with_the_step_named(busy: int, handover: int, what: str) -> None:
    with pytest.raises(TimeoutError, match=what):
        compact_loaded(MergingMilvus(busy=busy, handover=handover), "c", timeout_s=0.05, poll_s=0.001)

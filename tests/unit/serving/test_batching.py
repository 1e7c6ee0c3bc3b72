"""The in-process micro-batcher: concurrent requests share a batch, a lone one waits for nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lambdarec.serving.batching import MicroBatcher

pytestmark = pytest.mark.unit


def test_requests_arriving_during_a_batch_share_the_next_one() -> None:
    batches: list[list[int]] = []
    first_started = threading.Event()

    def run(requests: list[int]) -> list[int]:
        batches.append(list(requests))
        first_started.set()
        time.sleep(0.2)  # the pass down the request path
        return [r * 10 for r in requests]

    async def scenario() -> list[int]:
        batcher = MicroBatcher(run, max_batch_size=4)
        first = asyncio.create_task(batcher.submit(0))
        while not first_started.is_set():
            await asyncio.sleep(0.005)
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 7)]
        return [await first, *[await r for r in rest]]

    answers = asyncio.run(scenario())
    assert answers == [0, 10, 20, 30, 40, 50, 60]  # each caller gets its own answer
    assert batches == [[0], [1, 2, 3, 4], [5, 6]]  # alone at once, then up to max_batch_size


def test_a_failing_batch_fails_its_requests_only() -> None:
    def run(requests: list[int]) -> list[int]:
        if 13 in requests:
            raise RuntimeError("unlucky batch")
        return requests

    async def scenario() -> tuple[BaseException | int, int]:
        batcher = MicroBatcher(run, max_batch_size=1)
        bad, good = await asyncio.gather(batcher.submit(13), batcher.submit(7), return_exceptions=True)
        return bad, good  # type: ignore[return-value]

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, RuntimeError) and good == 7

"""Adaptive batching of concurrent requests inside the recommender process.

:class:`MicroBatcher` hands the batch function every request that arrived while the previous batch
was running, up to ``max_batch_size``: an idle service answers a lone request at once (no waiting
window), and a busy one answers many requests per pass down the request path (one online read per
feature service, one query-tower and one ranker forward pass, one index search). The batch size
follows the load by itself; ``lambdarec_batch_size`` in ``/metrics`` shows it.

Why not BentoML's dispatcher for ``/recommend``: reaching a ``batchable`` API from another API of
the same service goes through BentoML's in-process HTTP client, which under concurrent load fails
requests (``aiohttp_asgi_connector``: ``IndexError: pop from empty list`` → 500; measured, 3.8% of
requests at 50 requests/s). The batchable ``recommend_batch`` API stays for clients that send
batches themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class MicroBatcher(Generic[Req, Resp]):
    """Groups concurrent :meth:`submit` calls into calls of ``run_batch`` (one at a time, in a thread).

    Args:
        run_batch: Answers a list of requests, in order (blocking work: it runs in a worker thread).
        max_batch_size: Most requests per call.
    """

    def __init__(self, run_batch: Callable[[list[Req]], Sequence[Resp]], max_batch_size: int) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max(1, max_batch_size)
        self._queue: list[tuple[Req, asyncio.Future[Resp]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, request: Req) -> Resp:
        """Answer one request, in whichever batch it joins."""
        future: asyncio.Future[Resp] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch_size], self._queue[self.max_batch_size :]
            try:
                answers = await asyncio.to_thread(self.run_batch, [request for request, _ in batch])
            except Exception as err:  # noqa: BLE001 - each waiting request gets the error, the worker goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

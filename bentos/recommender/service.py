"""The lambdarec recommender as a BentoML service: HTTP (this file) and gRPC (started beside it).

A thin adapter over :mod:`lambdarec.serving`: ``POST /recommend`` validates a
:class:`~lambdarec.serving.contract.RecommendRequest` and hands it to the in-process
:class:`~lambdarec.serving.batching.MicroBatcher`, so concurrent requests share one pass down the
request path (one online read per feature service, one query-tower forward pass, one Milvus search,
one ranker forward pass). The gRPC server (:mod:`lambdarec.serving.grpc_server`) runs in the same
worker and submits to the same batcher. ``recommend_batch`` is BentoML-batchable for clients that
send lists.

Run it with ``lambdarec serve`` (under the supervisor, with the settings of the environment), or
directly: ``bentoml serve bentos/recommender/service.py:Recommender``.
"""

from __future__ import annotations

import asyncio
import logging
import typing as t

import bentoml

from lambdarec.serving.contract import RecommendRequest, RecommendResponse
from lambdarec.serving.http import RequestGuard, settings_from_environment

log = logging.getLogger("lambdarec.serving")
SETTINGS = settings_from_environment()
"""Read once when the service is defined (the batching parameters are decided here)."""


class RecommendInput(RecommendRequest, bentoml.IODescriptor):  # type: ignore[misc]
    """The JSON body of ``POST /recommend`` (strict: wrong types and unknown fields are refused)."""


STAGE_SECONDS = bentoml.metrics.Histogram(
    name="lambdarec_stage_seconds",
    documentation="Time per stage of the request path (per batch)",
    labelnames=["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
FALLBACKS = bentoml.metrics.Counter(
    name="lambdarec_fallbacks",
    documentation="Answers that came from the fallbacks, by reason",
    labelnames=["reason"],
)
FEATURE_AGE = bentoml.metrics.Histogram(
    name="lambdarec_feature_age_seconds",
    documentation="Age of the newest session event behind an answer",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
BATCH_SIZE = bentoml.metrics.Histogram(
    name="lambdarec_batch_size",
    documentation="Requests that shared one pass down the request path",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


@bentoml.service(
    name="lambdarec_recommender",
    workers=1,
    traffic={"timeout": 30, "max_concurrency": 512},
    http={"host": SETTINGS.listen_host},
    logging={"access": {"enabled": SETTINGS.serving.access_log}},
)
class Recommender:
    """Retrieval (two-tower over Milvus) + ranking (DeepFM) with fallbacks, over HTTP and gRPC."""

    def __init__(self) -> None:
        from lambdarec.serving.app import ServingApp
        from lambdarec.serving.batching import MicroBatcher

        self.app = ServingApp(SETTINGS)
        self.app.start()
        # /recommend and gRPC share this batcher; see lambdarec.serving.batching for why it is not
        # BentoML's dispatcher (which still batches the recommend_batch API for batching clients).
        self.batcher = MicroBatcher(self._answer_batch, SETTINGS.serving.max_batch_size)
        self._grpc: t.Any = None
        self._tasks: list[asyncio.Task[None]] = []

    @bentoml.on_startup
    async def start_background_work(self) -> None:
        """Start the gRPC server and the periodic model-reload and trending refresh."""
        from lambdarec.serving.grpc_server import start_grpc_server

        self._grpc = await start_grpc_server(SETTINGS, self.recommend_one)
        self._tasks.append(asyncio.create_task(self._every(SETTINGS.serving.reload_interval_s, self._refresh)))

    async def _refresh(self) -> None:
        await asyncio.to_thread(self.app.reload_if_changed)
        await asyncio.to_thread(self.app.refresh_trending)

    @staticmethod
    async def _every(seconds: float, job: t.Callable[[], t.Awaitable[None]]) -> None:
        while True:
            try:
                await job()
            except Exception:  # noqa: BLE001 - the loop must outlive a failed refresh
                log.exception("background refresh failed")
            await asyncio.sleep(seconds)

    @bentoml.on_shutdown
    async def stop_background_work(self) -> None:
        """Stop the gRPC server and the refresh loop, release the engines' clients."""
        for task in self._tasks:
            task.cancel()
        if self._grpc is not None:
            await self._grpc.stop(grace=2)
        self.app.close()

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=max(2, SETTINGS.serving.max_batch_size),  # BentoML refuses 1; 1 turns our batcher off
        max_latency_ms=SETTINGS.serving.max_latency_ms,
    )
    def recommend_batch(self, requests: list[RecommendRequest]) -> list[RecommendResponse]:
        """Answer many requests in one pass (BentoML also groups concurrent calls of this API)."""
        return self._answer_batch(list(requests))

    def _answer_batch(self, requests: list[RecommendRequest]) -> list[RecommendResponse]:
        """One pass down the request path for a batch, with its metrics."""
        responses = self.app.recommend(requests)
        if responses:
            for stage, ms in responses[0].timings_ms.items():
                STAGE_SECONDS.labels(stage=stage).observe(ms / 1000)
            BATCH_SIZE.observe(len(responses))
        for response in responses:
            if response.fallback is not None:
                FALLBACKS.labels(reason=response.fallback).inc()
            if response.features_age_ms is not None:
                FEATURE_AGE.observe(response.features_age_ms / 1000)
        return responses

    async def recommend_one(self, request: RecommendRequest) -> RecommendResponse:
        """One request through the micro-batcher (shared by HTTP and gRPC)."""
        return await self.batcher.submit(request)

    @bentoml.api(route="/recommend", input_spec=RecommendInput)
    async def recommend(self, **request: t.Any) -> RecommendResponse:
        """Top-k items for a session: two-tower candidates from Milvus and the session's neighbours,
        ranked by DeepFM; a fallback (named in the answer) when a stage cannot answer in time."""
        return await self.recommend_one(RecommendRequest.model_validate(request))

    def __is_ready__(self) -> bool:
        """Ready when a model is loaded, the online store is open and the index connected."""
        ready, _ = self.app.readiness()
        return ready

    @bentoml.api(route="/status")
    def status(self) -> dict[str, t.Any]:
        """What is loaded and reachable (the same checks as ``/readyz``, with the reasons)."""
        ready, detail = self.app.readiness()
        return {"ready": ready, **detail}


Recommender.add_asgi_middleware(RequestGuard, settings=SETTINGS)  # type: ignore[attr-defined]

"""The recommender over gRPC: a ``grpc.aio`` server generated from ``proto/recommender.proto``.

It runs in the recommender's process, on its event loop, and answers through the same coroutine
as ``POST /recommend`` (so gRPC requests join the same adaptive batches). Requests are checked by
the same :class:`~lambdarec.serving.contract.RecommendRequest` model: a bad one gets
``INVALID_ARGUMENT`` naming the field. Server reflection and the standard health service are on,
so ``grpcurl -plaintext HOST:PORT list`` and ``grpc_health_probe`` work.

Why not BentoML's gRPC: its new service API has none, and its legacy API needs protobuf 5.29 and
grpcio 1.82 (older than the rest of the environment); see ``bentos/README.md``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from pydantic import ValidationError

from lambdarec.serving.contract import RecommendRequest, RecommendResponse
from lambdarec.serving.proto import recommender_pb2, recommender_pb2_grpc
from lambdarec.settings import Settings

log = logging.getLogger(__name__)
SERVICE_NAME = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name
"""``lambdarec.v1.Recommender``."""

Answer = Callable[[RecommendRequest], Awaitable[RecommendResponse]]


def request_from_proto(message: recommender_pb2.RecommendRequest) -> RecommendRequest:
    """The contract's request from a protobuf message (absent optional fields keep their defaults).

    Raises:
        ValidationError: The message breaks the contract (empty session id, k out of range, ...).
    """
    fields: dict[str, Any] = {"session_id": message.session_id, "exclude": list(message.exclude)}
    if message.HasField("user_id"):
        fields["user_id"] = message.user_id
    if message.HasField("k"):
        fields["k"] = message.k
    return RecommendRequest.model_validate(fields)


def response_to_proto(response: RecommendResponse) -> recommender_pb2.RecommendResponse:
    """The protobuf message of a response."""
    message = recommender_pb2.RecommendResponse(
        items=[
            recommender_pb2.RecommendedItem(item_id=i.item_id, score=i.score, sources=list(i.sources))
            for i in response.items
        ],
        feature_services=response.feature_services,
        timings_ms=response.timings_ms,
        batch_size=response.batch_size,
    )
    if response.model_version is not None:
        message.model_version = response.model_version
    if response.fallback is not None:
        message.fallback = response.fallback
    if response.features_age_ms is not None:
        message.features_age_ms = response.features_age_ms
    return message


def describe_validation_error(err: ValidationError) -> str:
    """``field: message`` for each problem, e.g. ``k: Input should be less than or equal to 100``."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in err.errors())


class RecommenderServicer(recommender_pb2_grpc.RecommenderServicer):
    """Answers ``Recommend`` calls through the shared coroutine.

    Args:
        answer: The coroutine ``/recommend`` uses.
        token: Required bearer token (``authorization`` metadata) when non-empty.
    """

    def __init__(self, answer: Answer, token: str = "") -> None:
        self.answer = answer
        self.token = token.encode()

    async def Recommend(  # noqa: N802 - the RPC's name in the .proto
        self, request: recommender_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        """Top-k items for a session."""
        if self.token:
            metadata = dict(context.invocation_metadata() or ())
            given = str(metadata.get("authorization", "")).encode()
            if not hmac.compare_digest(given, b"Bearer " + self.token):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            parsed = request_from_proto(request)
        except ValidationError as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe_validation_error(err))
        try:
            response = await self.answer(parsed)
        except Exception:  # a valid request must not see an internal error's details
            log.exception("gRPC Recommend failed")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the recommender could not answer; retry")
        return response_to_proto(response)


async def start_grpc_server(settings: Settings, answer: Answer, port: int | None = None) -> grpc.aio.Server:
    """Start the gRPC server on the running event loop.

    Args:
        settings: ``listen_host``, ``serving.grpc_port``, ``serving.token``, ``serving.max_request_bytes``.
        answer: The coroutine that answers one request.
        port: Overrides ``settings.serving.grpc_port`` (0 picks a free port).

    Returns:
        The started server (``await server.stop(grace)`` to stop it).
    """
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.serving.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    recommender_pb2_grpc.add_RecommenderServicer_to_server(
        RecommenderServicer(answer, settings.serving.token.get_secret_value()), server
    )
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    chosen = settings.serving.grpc_port if port is None else port
    bound = server.add_insecure_port(f"{settings.listen_host}:{chosen}")
    await server.start()
    await checker.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC recommender listening on %s:%d", settings.listen_host, bound)
    return server

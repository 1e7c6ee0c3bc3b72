"""The request contract, its gRPC mirror and the HTTP guard (no engines)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from lambdarec.serving.contract import RecommendRequest, RecommendResponse
from lambdarec.serving.grpc_server import describe_validation_error, request_from_proto, response_to_proto
from lambdarec.serving.http import RequestGuard
from lambdarec.serving.proto import recommender_pb2 as pb
from lambdarec.settings import load_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 3}, "session_id"),
        ({"session_id": ""}, "session_id"),
        ({"session_id": "s", "k": "3"}, "k"),
        ({"session_id": "s", "k": 0}, "k"),
        ({"session_id": "s", "k": 101}, "k"),
        ({"session_id": "s", "k": 2.5}, "k"),
        ({"session_id": 7}, "session_id"),
        ({"session_id": "s", "exclude": "a"}, "exclude"),
        ({"session_id": "s", "user_id": 3}, "user_id"),
        ({"session_id": "s", "colour": "red"}, "colour"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RecommendRequest.model_validate(body)
    assert field in {str(e["loc"][0]) for e in caught.value.errors()}


def test_a_minimal_request_gets_the_defaults() -> None:
    request = RecommendRequest.model_validate({"session_id": "s-1"})
    assert (request.k, request.user_id, request.exclude) == (10, None, [])


def test_grpc_messages_mirror_the_contract() -> None:
    request = request_from_proto(pb.RecommendRequest(session_id="s", user_id="u", k=3, exclude=["a"]))
    assert request == RecommendRequest(session_id="s", user_id="u", k=3, exclude=["a"])
    assert request_from_proto(pb.RecommendRequest(session_id="s")).k == 10  # absent k → default
    with pytest.raises(ValidationError) as caught:
        request_from_proto(pb.RecommendRequest(session_id="s", k=0))
    assert describe_validation_error(caught.value).startswith("k: ")
    response = RecommendResponse(
        items=[{"item_id": "i", "score": 0.5, "sources": ["two_tower", "neighbours"]}],
        model_version="3",
        feature_services={"query": "retrieval_v2"},
        fallback=None,
        features_age_ms=120,
        timings_ms={"ranker": 1.5},
        batch_size=4,
    )
    message = response_to_proto(response)
    assert message.items[0].sources == ["two_tower", "neighbours"] and message.model_version == "3"
    assert not message.HasField("fallback") and message.features_age_ms == 120 and message.batch_size == 4


def test_generated_grpc_stubs_match_the_proto(tmp_path: Path) -> None:
    """`scripts/gen_proto.sh` output equals the committed stubs (regenerate after editing the .proto)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True)
    for name in ("recommender_pb2.py", "recommender_pb2_grpc.py", "recommender_pb2.pyi"):
        fresh = (tmp_path / "lambdarec" / "serving" / "proto" / name).read_text()
        committed = (ROOT / "src" / "lambdarec" / "serving" / "proto" / name).read_text()
        assert fresh == committed, f"{name} is stale: run scripts/gen_proto.sh"


def _call(guard: RequestGuard, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], bool]:
    """One request through the guard; returns (status, JSON body, whether the app was reached)."""
    reached: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        reached.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard.app = app
    sent: list[dict[str, Any]] = []
    chunks = [body[:5], body[5:]]

    async def receive() -> dict[str, Any]:
        part = chunks.pop(0)
        return {"type": "http.request", "body": part, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(guard(scope, receive, send))
    status = sent[0]["status"]
    payload = json.loads(sent[1]["body"])
    if reached:
        assert reached[0] == body  # the app gets the whole body, replayed
    return status, payload, bool(reached)


def test_the_guard_checks_token_size_and_json() -> None:
    settings = load_settings()
    settings.serving.token = SecretStr("sekret")
    settings.serving.max_request_bytes = 64
    guard = RequestGuard(lambda *_: None, settings)  # type: ignore[arg-type, return-value]
    json_header = {"Content-Type": "application/json"}
    good = {**json_header, "Authorization": "Bearer sekret"}
    assert _call(guard, "/recommend", b'{"session_id": "s"}', good)[::2] == (200, True)
    status, payload, reached = _call(guard, "/recommend", b'{"session_id": "s"}', json_header)
    assert (status, payload["field"], reached) == (401, "authorization", False)
    assert _call(guard, "/recommend", b"{}", {**json_header, "Authorization": "Bearer sekreT"})[0] == 401
    status, payload, reached = _call(guard, "/recommend", b"x" * 65, good)
    assert (status, payload["field"], reached) == (413, "body", False)
    status, payload, _ = _call(guard, "/recommend", b"{not json", good)
    assert status == 400 and "not valid JSON" in payload["error"]
    assert _call(guard, "/recommend", b"[1, 2]", good)[0] == 400
    assert _call(guard, "/recommend", b"a=b", {**good, "Content-Type": "text/plain"})[0] == 415
    assert _call(guard, "/readyz", b"", {})[::2] == (200, True)  # probes need no token

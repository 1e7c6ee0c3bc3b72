"""The recommender on the demo's real stack: HTTP and gRPC clients, bad input, fuzzing, fallbacks, reload.

The demo leaves Kafka, Milvus, MLflow, the speed layer and the feature store running with a trained
champion indexed; these tests start the recommender on it (`lambdarec serve`, a no-op when the demo
already started it) and call it as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e_cli import run_cli
from lambdarec import names

pytestmark = pytest.mark.timeout(2700)  # the first test may run the whole demo in its fixture
STAGES = {"online_features", "query_tower", "index_search", "neighbours", "candidate_features", "ranker"}


@pytest.fixture(scope="module")
def recommender(demo_state: Path) -> dict[str, Any]:
    """The running recommender's URLs, once it serves the demo's champion."""
    result = run_cli(demo_state, "serve", timeout=300)
    http = re.search(r"(http://127\.0\.0\.1:\d+)/recommend", result.stdout)
    grpc_address = re.search(r"(127\.0\.0\.1:\d+) \(gRPC\)", result.stdout)
    assert http and grpc_address, result.stdout
    urls = {"http": http.group(1), "grpc": grpc_address.group(1)}
    deadline = time.monotonic() + 120
    while httpx.get(f"{urls['http']}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, httpx.post(f"{urls['http']}/status", json={}).text
        time.sleep(1)
    return urls


def live_sessions(demo_state: Path) -> list[str]:
    summary = json.loads((demo_state / "demo" / "summary.json").read_text())
    return sorted(summary["stream"]["live_sessions"])


def recommend(urls: dict[str, Any], body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{urls['http']}/recommend", json=body, timeout=30, **kw)


def answer_from(urls: dict[str, Any], body: Any, fallback: str | None, tries: int = 5) -> dict[str, Any]:
    """The first answer with the expected ``fallback``: a stage slower than the 50 ms budget on a busy CI
    machine answers from the fallbacks instead (by design), so a few tries are allowed, not an error."""
    answers = []
    for _ in range(tries):
        response = recommend(urls, body)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        if answers[-1]["fallback"] == fallback:
            return answers[-1]
        time.sleep(0.5)
    raise AssertionError(f"no answer with fallback={fallback!r} in {tries} tries: {answers}")


def test_http_recommends_for_a_live_session_with_the_champion(recommender: dict[str, Any], demo_state: Path) -> None:
    session = live_sessions(demo_state)[0]
    answer = answer_from(recommender, {"session_id": session, "k": 7}, None)
    assert answer["model_version"] == "1"
    assert answer["feature_services"] == {
        "query": "retrieval_v2",
        "candidates": "ranking_v2",
        "neighbours": "neighbours_v1",
    }
    items = answer["items"]
    assert len(items) == 7 and len({i["item_id"] for i in items}) == 7
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    assert all(set(i["sources"]) <= {"two_tower", "neighbours", "session"} and i["sources"] for i in items)
    assert any("two_tower" in i["sources"] for i in answer["items"]) or len(items) < 7
    assert STAGES <= set(answer["timings_ms"]), answer["timings_ms"]
    assert answer["features_age_ms"] is not None and answer["features_age_ms"] >= 0
    excluded = [items[0]["item_id"], items[1]["item_id"]]
    again = answer_from(recommender, {"session_id": session, "k": 7, "exclude": excluded}, None)
    assert not {i["item_id"] for i in again["items"]} & set(excluded)


def test_an_item_bought_in_the_session_is_not_recommended_back(recommender: dict[str, Any], demo_state: Path) -> None:
    """A purchase published into Kafka reaches the answer: speed layer → online store → the request rule."""
    import uuid

    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.events.producer import EventPublisher
    from lambdarec.settings import load_settings

    session = live_sessions(demo_state)[1]
    body = {"session_id": session, "k": 10}
    top = answer_from(recommender, body, None)["items"][0]["item_id"]
    purchase = {
        "event_id": f"e2e-buy-{uuid.uuid4().hex}",
        "event_time": int(time.time() * 1000),
        "session_id": session,
        "item_id": top,
        "event_type": "purchase",
    }
    with EventPublisher(kafka_bootstrap(load_settings("local", state_dir=demo_state))) as publisher:
        assert publisher.publish(purchase) is None
        publisher.flush(30)
    deadline = time.monotonic() + 60
    while True:
        answer = answer_from(recommender, body, None)
        since_purchase_ms = time.time() * 1000 - purchase["event_time"]
        if answer["features_age_ms"] is not None and answer["features_age_ms"] <= since_purchase_ms:
            break  # the answer was read from a session row that holds the purchase
        assert time.monotonic() < deadline, f"the purchase never reached the online store: {answer}"
        time.sleep(0.5)
    assert top not in {i["item_id"] for i in answer["items"]}
    assert len(answer["items"]) == 10
    # The rule had its data: the speed layer put the purchase into session_rules_v1 online.
    from lambdarec.featurestore.store import open_store
    from lambdarec.models.sources import OnlineFeatureSource

    online = OnlineFeatureSource(open_store(load_settings("local", state_dir=demo_state)))
    try:
        rules = online.session_rule_rows([session], [0])
    finally:
        online.close()
    assert top in rules[names.SESSION_PURCHASED_ITEMS][0]


def test_served_inputs_are_logged_and_compared_with_the_training_reference(
    recommender: dict[str, Any], demo_state: Path
) -> None:
    """drift_monitor's production side: a sample of what the model read reaches features.served, and the
    served-drift report compares it with the reference saved in the champion's bundle at training."""
    from datetime import UTC, datetime

    from lambdarec.models.inputs import QUERY_DENSE
    from lambdarec.quality.steps import served_drift_report
    from lambdarec.settings import load_settings

    sessions = live_sessions(demo_state)
    versions = set()
    for i in range(200):  # at the default 10% sample, P(no row logged) ~ 1e-9
        answer = recommend(recommender, {"session_id": sessions[i % len(sessions)], "k": 5}).json()
        if answer["fallback"] is None:
            versions.add(answer["model_version"])
    assert len(versions) == 1, versions
    status = httpx.post(f"{recommender['http']}/status", json={}, timeout=30).json()
    assert "features.served" in json.dumps(status), status
    day = datetime.now(UTC).date().isoformat()
    settings = load_settings("local", state_dir=demo_state)
    deadline = time.monotonic() + 30
    while not (report := served_drift_report(day, settings, write=False))["measured"]:
        assert time.monotonic() < deadline, report  # the producer delivers within its linger (0.5 s)
        time.sleep(1)
    assert report["model_version"] == versions.pop()
    assert report["current_rows"] >= 1 and report["reference_rows"] > 1_000
    assert {f["feature"] for f in report["features"]} == set(QUERY_DENSE)
    assert all(f["current_rows"] == report["current_rows"] for f in report["features"])
    # The CLI prints the same comparison.
    printed = run_cli(demo_state, "quality", "drift", "--date", day, "--served", timeout=120)
    assert "session_event_count" in printed.stdout and "PSI" in printed.stdout, printed.stdout


def test_anonymous_and_unknown_sessions_get_named_fallbacks(recommender: dict[str, Any]) -> None:
    answer = recommend(recommender, {"session_id": "nobody-ever-had-this-session", "k": 5}).json()
    assert answer["fallback"] == "unknown_session"
    assert len(answer["items"]) == 5 and all(i["sources"][0] in {"trending", "popular"} for i in answer["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 3}, "session_id"),
        ({"session_id": "s", "k": 0}, "k"),
        ({"session_id": "s", "k": 101}, "k"),
        ({"session_id": "s", "k": "5"}, "k"),
        ({"session_id": "s", "surprise": True}, "surprise"),
        ({"session_id": ["s"]}, "session_id"),
    ],
)
def test_bad_http_requests_get_4xx_naming_the_field(recommender: dict[str, Any], body: Any, field: str) -> None:
    response = recommend(recommender, body)
    assert 400 <= response.status_code < 500
    assert field in {str(e["loc"][0]) for e in response.json()["detail"]}


def test_malformed_http_bodies_get_4xx(recommender: dict[str, Any]) -> None:
    url = f"{recommender['http']}/recommend"
    not_json = httpx.post(url, content=b"\x00 not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["field"] == "body"
    huge = httpx.post(url, json={"session_id": "s" * 100_000})
    assert huge.status_code == 413


def test_grpc_answers_like_http_with_reflection(recommender: dict[str, Any], demo_state: Path) -> None:
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    from lambdarec.serving.proto import recommender_pb2 as pb
    from lambdarec.serving.proto import recommender_pb2_grpc as rpc

    session = live_sessions(demo_state)[1]
    with grpc.insecure_channel(recommender["grpc"]) as channel:
        stub = rpc.RecommenderStub(channel)
        for _ in range(5):  # as answer_from: a busy machine may push a stage past its budget
            answer = stub.Recommend(pb.RecommendRequest(session_id=session, k=5), timeout=30)
            if not answer.HasField("fallback"):
                break
        assert not answer.HasField("fallback") and answer.model_version == "1" and len(answer.items) == 5
        over_http = answer_from(recommender, {"session_id": session, "k": 5}, None)
        # Same model, same features (the session is finished): the same items in the same order.
        assert [i.item_id for i in answer.items] == [i["item_id"] for i in over_http["items"]]
        with pytest.raises(grpc.RpcError) as bad:
            stub.Recommend(pb.RecommendRequest(session_id=session, k=500), timeout=30)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.value.details().startswith("k:")
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        listed = next(
            iter(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        )
        assert "lambdarec.v1.Recommender" in {s.name for s in listed.list_services_response.service}


def test_fuzzing_the_openapi_finds_no_server_error(recommender: dict[str, Any], tmp_path: Path) -> None:
    """Schemathesis generates requests from the published OpenAPI: none may get a 5xx."""
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{recommender['http']}/docs.json",
            "--include-path",
            "/recommend",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "400",
            "--max-time",
            "150",
            "--generation-deterministic",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        cwd=tmp_path,  # schemathesis keeps its example database in the working directory
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    calls = re.search(r"(\d+) (?:test cases|generated)", result.stdout)
    assert calls and int(calls.group(1)) >= 100, result.stdout[-2000:]


def register_again(demo_state: Path) -> str:
    """A new version of both models from the champion's run (same weights, its own bundle and collection).

    Retraining takes minutes; what a reload must get right is the switch itself, so the second
    version reuses the first run's artifacts and goes through the same `index build` / `index swap`.
    """
    from mlflow.tracking import MlflowClient

    from lambdarec.names import DEEPFM_MODEL, TWO_TOWER_MODEL
    from lambdarec.settings import load_settings
    from lambdarec.vectors import mlflow_tracking_uri

    client = MlflowClient(tracking_uri=mlflow_tracking_uri(load_settings(state_dir=demo_state)))
    created = {}
    for name in (TWO_TOWER_MODEL, DEEPFM_MODEL):
        first = client.get_model_version(name, "1")
        # MLflow 3 logs models as "models:/<model id>": the new version names the same logged model.
        model_id = first.source.removeprefix("models:/") if first.source.startswith("models:/") else None
        created[name] = client.create_model_version(
            name, source=first.source, run_id=first.run_id, model_id=model_id
        ).version
    return str(created[TWO_TOWER_MODEL])


def test_zero_downtime_reload_when_the_champion_moves(recommender: dict[str, Any], demo_state: Path) -> None:
    """Register, index and promote v2 while requests flow: none fails, the answers switch to v2 for good."""
    session = live_sessions(demo_state)[2]
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(f"{recommender['http']}/recommend", json={"session_id": session, "k": 5})
                seen.append((response.status_code, response.json().get("model_version")))
                time.sleep(0.05)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        version = register_again(demo_state)
        assert version == "2"
        run_cli(demo_state, "index", "build", "--model-version", version, timeout=600)
        run_cli(demo_state, "index", "swap", "--model-version", version, timeout=300)
        deadline = time.monotonic() + 120
        while not seen or seen[-1][1] != version:
            assert time.monotonic() < deadline, seen[-5:]
            time.sleep(1)
        time.sleep(2)
    finally:
        stop.set()
        worker.join(timeout=60)
    statuses = {code for code, _ in seen}
    versions = [v for _, v in seen]
    assert statuses == {200}, statuses
    assert versions[0] == "1" and versions[-1] == "2" and set(versions) == {"1", "2"}
    assert versions == sorted(versions)  # never back to the old model once switched
    assert len(seen) > 20  # requests flowed during the whole switch


def test_milvus_down_still_answers_from_neighbours_and_the_session(
    recommender: dict[str, Any], demo_state: Path
) -> None:
    session = live_sessions(demo_state)[0]
    run_cli(demo_state, "services", "down", "milvus")
    try:
        started = time.monotonic()
        answer = answer_from(recommender, {"session_id": session, "k": 5}, "index_unavailable")
        assert time.monotonic() - started < 20
        assert answer["items"]
        assert all("two_tower" not in i["sources"] for i in answer["items"])
    finally:
        run_cli(demo_state, "services", "up", "milvus", timeout=300)


def test_the_recommender_listens_on_loopback_only(recommender: dict[str, Any], demo_state: Path) -> None:
    """HTTP and gRPC bind `listen_host` (loopback by default), like the engines."""
    from lambdarec.runtime.exposure import exposed_sockets, listening_sockets
    from lambdarec.runtime.service import ServiceRecord

    record = ServiceRecord.load(demo_state / "services" / "recommender" / "service.json")
    assert record is not None
    ports = {s.port for s in listening_sockets(record.pid)}
    assert {record.ports["port"], record.ports["grpc_port"]} <= ports, ports  # the check sees what it vets
    assert exposed_sockets(record.pid) == []

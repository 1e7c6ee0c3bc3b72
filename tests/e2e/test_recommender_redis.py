"""The recommender over a Redis online store that stops: answers from the fallbacks, then normal ones again.

A second environment beside the demo's: ``staging`` (its ``feature_store.yaml`` uses Redis) in its own
state folder, reading the demo's MLflow, Milvus and lake. The embedded Redis (``services up redis``)
gets the demo's gold features (``features apply`` + materialize, as a staging batch run does); then
its own recommender (``lambdarec --env staging serve``) is started while Redis is *down*, sees it come
up, and survives a ``kill -9`` of redis-server and its restart — never restarted itself, never a 5xx.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e_cli import run_cli

pytestmark = pytest.mark.timeout(2700)  # the first e2e module's fixture may run the whole demo

FALLBACK_SOURCES = {"trending", "popular"}
MODEL_SOURCES = {"two_tower", "neighbours", "session"}


def gold_sessions(lake_root: Path, n: int) -> list[str]:
    """Sessions of the demo's gold with at least two items (so the models answer them), sorted."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from lambdarec import names

    data = ds.dataset(str(lake_root / "gold" / "session_features"), format="parquet", partitioning="hive")
    table = data.to_table(columns=[names.SESSION_ID, names.SESSION_RECENT_ITEMS])
    longer = table.filter(pc.greater_equal(pc.list_value_length(table[names.SESSION_RECENT_ITEMS]), 2))
    return sorted(set(longer[names.SESSION_ID].to_pylist()))[:n]


@pytest.fixture(scope="module")
def staging(demo_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The staging environment's state, variables, Redis address and demo sessions; stopped at the end."""
    from lambdarec import names
    from lambdarec.batch.lake import Lake, parse_date, snapshot_time
    from lambdarec.featurestore.store import BATCH_TABLES, apply, materialize
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.settings import load_settings

    state = tmp_path_factory.mktemp("staging-state")
    demo = Supervisor(load_settings("local", state_dir=demo_state))
    lake = Lake.under(demo_state)
    variables = {
        "LAMBDAREC_SECRET_KEY": "e2e-only-secret",
        "LAMBDAREC_MILVUS__URI": demo.endpoint(names.MILVUS_SERVICE) or "",
        "LAMBDAREC_MLFLOW__TRACKING_URI": demo.endpoint(names.MLFLOW_SERVICE) or "",
        "LAMBDAREC_LAKE_DIR": str(lake.root),  # the Feast sources read the demo's gold
    }
    assert all(variables.values()), variables
    try:
        run_cli(state, "--env", "staging", "services", "up", "redis", env=variables, timeout=120)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in variables.items():
                patch.setenv(key, value)
            settings = load_settings("staging", state_dir=state)
            apply(settings)
            last = sorted(p.name.split("=", 1)[1] for p in lake.gold("session_features").glob("date=*"))[-1]
            end = snapshot_time(parse_date(last)) + timedelta(seconds=1)
            # Every batch view, the sessions' too: no speed layer writes to this store.
            materialize(settings, end - timedelta(days=31), end, list(BATCH_TABLES))
        record = json.loads((state / "services" / "redis" / "service.json").read_text())
        variables["LAMBDAREC_REDIS_URL"] = f"127.0.0.1:{record['ports']['port']}"
        yield {"state": state, "env": variables, "sessions": gold_sessions(lake.root, 3)}
    finally:
        run_cli(state, "--env", "staging", "services", "down", env=variables, check=False)


def redis_cli(staging: dict[str, Any], *args: str) -> None:
    run_cli(staging["state"], "--env", "staging", "services", *args, env=staging["env"], timeout=120)


def recommender_pid(staging: dict[str, Any]) -> int:
    return int(json.loads((staging["state"] / "services" / "recommender" / "service.json").read_text())["pid"])


@pytest.fixture(scope="module")
def redis_down_at_start(staging: dict[str, Any]) -> dict[str, Any]:
    """The staging recommender, started while its Redis is stopped (its address given, as staging does)."""
    redis_cli(staging, "down", "redis")
    result = run_cli(staging["state"], "--env", "staging", "serve", env=staging["env"], timeout=300)
    http = re.search(r"(http://127\.0\.0\.1:\d+)/recommend", result.stdout)
    grpc_address = re.search(r"(127\.0\.0\.1:\d+) \(gRPC\)", result.stdout)
    assert http and grpc_address, result.stdout
    return {"http": http.group(1), "grpc": grpc_address.group(1)}


def ask(urls: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{urls['http']}/recommend", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def assert_store_fallbacks(urls: dict[str, Any], sessions: list[str]) -> None:
    """Every kind of valid request: 200, ``online_store_unavailable``, items from trending / popular."""
    bodies = [
        *({"session_id": s, "k": 5} for s in sessions),
        {"session_id": sessions[0], "user_id": "u-anyone", "k": 3, "exclude": ["i-0"]},
        {"session_id": "a-session-nobody-had", "k": 10},
    ]
    for body in bodies:
        answer = ask(urls, body)
        assert answer["fallback"] == "online_store_unavailable", (body, answer)
        assert len(answer["items"]) == body["k"], answer
        assert all(set(i["sources"]) <= FALLBACK_SOURCES for i in answer["items"]), answer
        assert answer["model_version"] is not None  # the model loaded without the store's rows
    readyz = httpx.get(f"{urls['http']}/readyz", timeout=10)
    assert readyz.status_code == 503, readyz.text
    status = httpx.post(f"{urls['http']}/status", json={}, timeout=10).json()
    assert not status["ready"] and status["online_store"].startswith("unreachable: Redis at 127.0.0.1:"), status


def wait_for_model_answers(urls: dict[str, Any], session: str) -> dict[str, Any]:
    """The first answer of the models (no fallback) for ``session``, once the store is back."""
    answers = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers.append(ask(urls, {"session_id": session, "k": 5}))
        if answers[-1]["fallback"] is None:
            answer = answers[-1]
            assert answer["items"] and all(set(i["sources"]) <= MODEL_SOURCES for i in answer["items"]), answer
            assert answer["feature_services"]["query"] == "retrieval_v2"
            assert answer["features_age_ms"] is not None
            return answer
        time.sleep(0.5)
    raise AssertionError(f"no model answer for {session} within 60 s: {answers[-3:]}")


def wait_until_ready(urls: dict[str, Any]) -> None:
    """``/readyz`` 200 within 30 s (its Redis ping has the 20 ms client timeout; a busy machine may miss one)."""
    deadline = time.monotonic() + 30
    while (readyz := httpx.get(f"{urls['http']}/readyz", timeout=10)).status_code != 200:
        assert time.monotonic() < deadline, (readyz.status_code, readyz.text)
        time.sleep(0.5)


def test_started_while_redis_is_down_it_answers_from_fallbacks_then_from_the_models(
    staging: dict[str, Any], redis_down_at_start: dict[str, Any]
) -> None:
    urls, sessions = redis_down_at_start, staging["sessions"]
    assert len(sessions) == 3
    assert_store_fallbacks(urls, sessions)
    pid = recommender_pid(staging)

    redis_cli(staging, "up", "redis")  # the features come back from its append-only file
    for session in sessions:
        wait_for_model_answers(urls, session)
    wait_until_ready(urls)
    assert recommender_pid(staging) == pid


def test_kill_9_of_redis_gives_fallbacks_and_its_restart_gives_model_answers(
    staging: dict[str, Any], redis_down_at_start: dict[str, Any]
) -> None:
    import grpc
    import psutil

    from lambdarec.serving.proto import recommender_pb2 as pb
    from lambdarec.serving.proto import recommender_pb2_grpc as rpc

    urls, sessions = redis_down_at_start, staging["sessions"]
    redis_cli(staging, "up", "redis")  # running already after the test above; started if run alone
    wait_for_model_answers(urls, sessions[0])
    pid = recommender_pid(staging)
    redis = psutil.Process(
        int(json.loads((staging["state"] / "services" / "redis" / "service.json").read_text())["pid"])
    )
    redis.kill()
    redis.wait(10)

    assert_store_fallbacks(urls, sessions)
    with grpc.insecure_channel(urls["grpc"]) as channel:
        answer = rpc.RecommenderStub(channel).Recommend(pb.RecommendRequest(session_id=sessions[1], k=4), timeout=30)
    assert answer.fallback == "online_store_unavailable" and len(answer.items) == 4

    redis_cli(staging, "up", "redis")
    for session in sessions:
        wait_for_model_answers(urls, session)
    wait_until_ready(urls)
    assert recommender_pid(staging) == pid  # the same process all along

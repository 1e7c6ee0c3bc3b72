"""The storefront over HTTP (Starlette's test client): sessions, events, bad input and the panel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from storefront_fakes import RecordingPublisher, ScriptedRecommender

from lambdarec.storefront.app import SESSION_COOKIE, create_app
from lambdarec.storefront.recommendations import Answer, now_ms
from lambdarec.storefront.shop import Shop

JSON = {"Accept": "application/json"}


@pytest.fixture
def client(shop: Shop) -> TestClient:
    return TestClient(create_app(shop))


def answer_json(age_ms: int | None, *, fallback: str | None = None, items: list[str] | None = None) -> dict[str, Any]:
    return {
        "items": [{"item_id": i, "score": 0.5, "sources": ["two_tower"]} for i in (items or ["books-1"])],
        "model_version": "7",
        "feature_services": {"query": "retrieval_v2"},
        "fallback": fallback,
        "features_age_ms": age_ms,
        "timings_ms": {"features": 1.0},
    }


def test_home_lists_the_categories_largest_first_and_sets_a_session_cookie(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.cookies.get(SESSION_COOKIE, "").startswith("web-")
    html = response.text
    assert all(f'data-category="{c}"' in html for c in ("shoes", "books", "phones"))
    assert "15 items from the gold snapshot of 2026-11-30" in html


def test_a_category_page_lists_its_items_most_popular_first(client: TestClient) -> None:
    html = client.get("/category", params={"name": "books"}).text
    order = [f"books-{i}" for i in range(5)]
    positions = [html.index(f'data-item="{item}"') for item in order]
    assert positions == sorted(positions)
    assert 'data-item="shoes-0"' not in html.split('id="panel"')[0]
    assert client.get("/category", params={"name": "nope"}).status_code == 404


def test_opening_an_item_publishes_a_view_with_the_session_and_the_items_facts(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.get("/item/books-1")
    assert response.status_code == 200
    (event,) = publisher.clicks
    assert event["event_type"] == "view" and event["item_id"] == "books-1"
    assert event["session_id"] == client.cookies.get(SESSION_COOKIE)
    assert event["category"] == "books" and event["brand"] == "acme" and event["price"] == 11.0
    assert "user_id" not in event and abs(event["event_time"] - now_ms()) < 5_000


def test_cart_buy_and_checkout_are_events_and_the_signed_in_user_rides_along(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    client.post("/user", data={"user_id": "u-42"})
    added = client.post("/actions", data={"item_id": "shoes-2", "event_type": "cart"}, headers=JSON)
    assert added.status_code == 200 and added.json()["cart_count"] == 1
    client.post("/actions", data={"item_id": "shoes-3", "event_type": "cart"}, headers=JSON)
    bought = client.post("/checkout", headers=JSON)
    assert bought.status_code == 200 and bought.json()["cart_count"] == 0
    assert [(e["event_type"], e["item_id"]) for e in publisher.clicks] == [
        ("cart", "shoes-2"),
        ("cart", "shoes-3"),
        ("purchase", "shoes-2"),
        ("purchase", "shoes-3"),
    ]
    assert {e["user_id"] for e in publisher.clicks} == {"u-42"}
    assert len({e["session_id"] for e in publisher.clicks}) == 1
    assert len({e["event_id"] for e in publisher.clicks}) == 4
    assert client.post("/checkout", headers=JSON).status_code == 409  # nothing left to buy


def test_a_form_post_without_script_redirects_back_to_the_item(client: TestClient) -> None:
    response = client.post("/actions", data={"item_id": "phones-0", "event_type": "purchase"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/item/phones-0"


def test_bad_input_gets_4xx_and_invalid_events_go_to_the_dead_letter_path(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    unknown = client.post("/actions", data={"item_id": "nope", "event_type": "cart"}, headers=JSON)
    assert unknown.status_code == 404 and "does not sell" in unknown.json()["detail"]
    assert client.get("/item/nope").status_code == 404
    bad_type = client.post("/actions", data={"item_id": "books-0", "event_type": "click"}, headers=JSON)
    assert bad_type.status_code == 422 and "event_type" in bad_type.json()["detail"]
    assert client.post("/actions", data={"event_type": "cart"}, headers=JSON).status_code == 422
    long_id = client.post("/actions", data={"item_id": "x" * 500, "event_type": "cart"}, headers=JSON)
    assert long_id.status_code == 422
    assert client.post("/user", data={"user_id": "u" * 200}).status_code == 422
    # Only the one event that reached the publisher's validation was dead-lettered, with its origin.
    assert publisher.clicks == []
    ((raw, rejection, origin),) = publisher.dlq
    assert raw["event_type"] == "click" and rejection.field == "event_type"
    assert origin == {"storefront": "POST /actions"}


def test_the_panel_says_clearly_when_no_recommender_answers(
    shop: Shop, client: TestClient, recommender: ScriptedRecommender
) -> None:
    recommender.handler = lambda body: httpx.Response(503, json={"error": "loading"})
    data = client.get("/api/recommendations").json()
    assert data["state"] == "unavailable" and data["unavailable"] == "the recommender answered HTTP 503"
    assert 'id="rec-unavailable"' in data["html"] and "not from the" in data["html"]

    def broken(_body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"item_id": 1}]})

    recommender.handler = broken
    assert "breaks the contract" in client.get("/api/recommendations").json()["unavailable"]

    shop.recommender.resolve_url = lambda: None
    data = client.get("/api/recommendations").json()
    assert data["unavailable"].startswith("no recommender is running")


def test_the_panel_asks_with_the_session_user_token_and_cart_and_shows_what_answered(
    client: TestClient, recommender: ScriptedRecommender
) -> None:
    client.post("/user", data={"user_id": "u-1"})
    client.post("/actions", data={"item_id": "books-0", "event_type": "cart"}, headers=JSON)
    recommender.handler = lambda body: httpx.Response(200, json=answer_json(0, fallback="unknown_session"))
    data = client.get("/api/recommendations").json()
    request = recommender.requests[-1]
    assert request["body"] == {
        "session_id": client.cookies.get(SESSION_COOKIE),
        "user_id": "u-1",
        "k": 8,
        "exclude": ["books-0"],
    }
    assert request["headers"]["authorization"] == "Bearer s3cret"
    assert data["state"] == "ok" and data["model_version"] == "7" and data["fallback"] == "unknown_session"
    assert data["items"] == [{"item_id": "books-1", "score": 0.5, "sources": ["two_tower"], "category": "books"}]
    assert "fallback: unknown session" in data["html"] and 'id="model-version">7<' in data["html"]


def test_the_panel_waits_until_an_answer_reflects_the_last_event_and_reports_the_lag(
    client: TestClient, recommender: ScriptedRecommender
) -> None:
    event = client.post("/actions", data={"item_id": "phones-1", "event_type": "cart"}, headers=JSON).json()
    event_ms = event["events"][0]["event_time"]
    # Session features older than the event: the recommender has not seen it yet.
    recommender.handler = lambda body: httpx.Response(200, json=answer_json(now_ms() - event_ms + 60_000))
    stale = client.get("/api/recommendations").json()
    assert stale["reflects"] is False and stale["lag_ms"] is None
    assert "waiting for your last cart" in stale["html"]
    # Features whose newest event is the click itself: the answer reflects it; the lag is measured once.
    recommender.handler = lambda body: httpx.Response(200, json=answer_json(now_ms() - event_ms))
    fresh = client.get("/api/recommendations").json()
    assert fresh["reflects"] is True and 0 <= fresh["lag_ms"] < 5_000
    assert f"event → recommendation {fresh['lag_ms']} ms" in fresh["html"]
    again = client.get("/api/recommendations").json()
    assert again["lag_ms"] == fresh["lag_ms"]


def test_an_answer_reflects_an_event_only_when_its_newest_session_event_is_that_recent() -> None:
    answer = Answer(features_age_ms=300, requested_ms=10_000, answered_ms=10_020)
    assert answer.newest_event_ms == 9_720
    assert answer.reflects(9_720) and answer.reflects(9_000) and not answer.reflects(9_721)
    assert not Answer(features_age_ms=None, answered_ms=10_000).reflects(1)
    assert not Answer(unavailable="down", features_age_ms=0, answered_ms=10_000).reflects(1)
    assert Answer(answered_ms=1).reflects(None)  # no event yet: any answer is current


def test_healthz_reports_the_catalogue(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "catalogue_items": 15, "snapshot": "2026-11-30"}

"""Stand-ins for the storefront's unit tests: a gold snapshot, a recording publisher, a scripted recommender."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from lambdarec.schemas import EncodedEvent, EventRejection, encode_event

CATEGORIES = ("shoes", "books", "phones")


def write_item_stats(folder: Path, date: str, rows: list[dict[str, Any]]) -> None:
    """One gold ``item_stats`` partition as the batch layer writes it (the columns the shop reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    partition = folder / f"date={date}"
    partition.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), partition / "part-0.parquet")


def item_rows(n_per_category: int = 5) -> list[dict[str, Any]]:
    """Items ``<category>-<i>`` with falling popularity; every other one without a brand."""
    return [
        {
            "item_id": f"{category}-{i}",
            "item_category": category,
            "item_brand": "acme" if i % 2 else None,
            "item_price_mean_30d": 10.0 + i,
            "item_popularity_30d": 100 - i,
        }
        for category in CATEGORIES
        for i in range(n_per_category)
    ]


class RecordingPublisher:
    """Validates like :class:`EventPublisher` (same ``encode_event``) and keeps what went where."""

    def __init__(self) -> None:
        self.clicks: list[dict[str, Any]] = []
        self.dlq: list[tuple[dict[str, Any], EventRejection, Mapping[str, Any]]] = []

    def __call__(self, raw: Mapping[str, Any], origin: Mapping[str, Any]) -> EventRejection | None:
        result = encode_event(dict(raw))
        if isinstance(result, EncodedEvent):
            self.clicks.append(dict(raw))
            return None
        assert isinstance(result, EventRejection)
        self.dlq.append((dict(raw), result, origin))
        return result


class ScriptedRecommender:
    """Answers ``POST /recommend`` with a handler's JSON; records the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.handler: Callable[[dict[str, Any]], httpx.Response] = lambda body: httpx.Response(
            200,
            json={
                "items": [{"item_id": "books-1", "score": 0.9, "sources": ["two_tower"]}],
                "model_version": "3",
                "feature_services": {},
                "fallback": None,
                "features_age_ms": None,
                "timings_ms": {"features": 1.5, "rank": 2.0},
            },
        )

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            import json

            assert request.url.path == "/recommend"
            body = json.loads(request.content)
            self.requests.append({"body": body, "headers": dict(request.headers)})
            return self.handler(body)

        return httpx.MockTransport(handle)

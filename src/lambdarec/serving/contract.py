"""What a client sends the recommender and what it gets back (HTTP JSON; the gRPC messages mirror it).

The models are strict: a wrong type (``"k": "10"``), an unknown field or a value out of bounds
is refused with the field named (HTTP 422 / gRPC ``INVALID_ARGUMENT``), never coerced.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 100
"""Most items one request may ask for (the retrieval depth)."""
MAX_EXCLUDE = 500
"""Most item ids a request may exclude."""
MAX_ID_LENGTH = 128
"""Longest session, user or item id accepted."""

Source = Literal["two_tower", "neighbours", "session", "trending", "popular"]
"""Where a recommended item came from (several when more than one source found it)."""

FallbackReason = Literal[
    "model_not_loaded",
    "online_store_unavailable",
    "index_unavailable",
    "unknown_session",
    "no_candidates",
]
"""Why an answer came from the fallbacks instead of the two-stage models."""


class RecommendRequest(BaseModel):
    """One recommendation request.

    Attributes:
        session_id: The shopper's session (the shop's ``session_id``, as in the events).
        user_id: The logged-in user, or None for an anonymous session.
        k: How many items to return (1..100).
        exclude: Item ids never to return (e.g. already in the cart).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    session_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH, examples=["s-42"])
    user_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH, examples=["u-7"])
    k: int = Field(default=10, ge=1, le=MAX_K)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_EXCLUDE)


class RecommendedItem(BaseModel):
    """One item of an answer.

    Attributes:
        item_id: The item.
        score: The ranker's probability (two-stage answers) or the fallback's own score.
        sources: Every source that proposed the item.
    """

    item_id: str
    score: float
    sources: list[Source]


class RecommendResponse(BaseModel):
    """The answer to a :class:`RecommendRequest`.

    Attributes:
        items: Best first, at most ``k``; never items bought in the session or excluded.
        model_version: The two-tower model version that answered (None when no model is loaded).
        feature_services: Role → feature service read (``query``, ``candidates``, ``neighbours``).
        fallback: None when the two-stage models answered, else why a fallback did.
        features_age_ms: How old the newest session event behind the answer is (None: no session yet).
        timings_ms: Milliseconds per stage of the request path (the batch's, when batched).
        batch_size: How many requests shared the forward passes of this answer.
    """

    items: list[RecommendedItem]
    model_version: str | None
    feature_services: dict[str, str]
    fallback: FallbackReason | None
    features_age_ms: int | None
    timings_ms: dict[str, float]
    batch_size: int = 1

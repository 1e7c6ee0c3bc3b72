"""The storefront's side of ``POST /recommend``: find the recommender, ask it, and tell how fresh the answer is.

The storefront never ranks anything itself: when no recommender answers, the panel says so and
why (no service running, refused, timed out, an error status), so a broken request path is
visible rather than hidden behind a stand-in list.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lambdarec.serving.contract import RecommendedItem, RecommendRequest, RecommendResponse
from lambdarec.settings import Settings


def now_ms() -> int:
    """Wall-clock epoch milliseconds (the clock the storefront stamps its events with)."""
    return time.time_ns() // 1_000_000


@dataclass
class Answer:
    """One call to the recommender, answered or not.

    Attributes:
        items: The recommended items, best first (empty when unavailable).
        model_version: The model that answered, if any.
        fallback: Why a fallback answered (None: the two-stage models did).
        features_age_ms: Age of the newest session event behind the answer, per the recommender.
        timings_ms: The recommender's per-stage timings.
        requested_ms: When the storefront sent the request (epoch ms).
        answered_ms: When the answer (or the failure) came back (epoch ms).
        unavailable: Why there is no answer (None when there is one).
        url: The recommender it asked, if one was found.
    """

    items: list[RecommendedItem] = field(default_factory=list)
    model_version: str | None = None
    fallback: str | None = None
    features_age_ms: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    requested_ms: int = 0
    answered_ms: int = 0
    unavailable: str | None = None
    url: str | None = None

    @property
    def ok(self) -> bool:
        """True when the recommender answered."""
        return self.unavailable is None

    @property
    def newest_event_ms(self) -> int | None:
        """Latest possible time of the newest session event the answer saw (epoch ms).

        The recommender measures ``features_age_ms`` at some moment between our request and its
        answer; taking the answer's arrival gives the upper bound. Consecutive clicks are far
        further apart than one request takes, so the bound tells old state from new.
        """
        if self.features_age_ms is None or not self.ok:
            return None
        return self.answered_ms - self.features_age_ms

    def reflects(self, event_ms: int | None) -> bool:
        """True when the answer was computed from session features that include an event at ``event_ms``."""
        if event_ms is None:
            return self.ok
        newest = self.newest_event_ms
        return newest is not None and newest >= event_ms


def embedded_recommender_url(settings: Settings) -> str | None:
    """The HTTP base URL of the recommender the supervisor runs in this state folder, if it is up.

    Reads the service record every :class:`~lambdarec.runtime.service.ManagedService` keeps
    (``<state>/services/recommender/service.json``) instead of importing the serving package,
    so the storefront runs in environments without the serving stack.
    """
    import psutil

    from lambdarec.names import RECOMMENDER_SERVICE
    from lambdarec.runtime.service import ServiceRecord
    from lambdarec.runtime.topology import RECOMMENDER

    record = ServiceRecord.load(settings.state_dir.resolve() / "services" / RECOMMENDER_SERVICE / "service.json")
    if record is None or not record.ports:
        return None
    try:
        if psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    # The service names its HTTP port "port"; the topology (containers) calls it "http_port".
    port = record.ports.get("port") or record.ports.get(RECOMMENDER.port_names[0])
    if not port:
        return None
    return f"http://127.0.0.1:{port}"


class RecommenderClient:
    """Calls ``POST /recommend`` with the serving contract's models.

    Args:
        resolve_url: Returns the recommender's base URL, or None when none runs (asked per call,
            so a recommender started after the storefront is found).
        token: Bearer token (empty: none sent).
        timeout_s: How long one call may take.
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        resolve_url: Callable[[], str | None],
        *,
        token: str = "",
        timeout_s: float = 2.0,
        transport: Any = None,
    ) -> None:
        import httpx

        self.resolve_url = resolve_url
        self.token = token
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> RecommenderClient:
        """The client of an environment: the configured URL, else the embedded service's."""
        configured = settings.storefront.recommender_url or os.environ.get("LAMBDAREC_RECOMMENDER_URL")

        def resolve() -> str | None:
            return configured or embedded_recommender_url(settings)

        return cls(
            resolve,
            token=settings.serving.token.get_secret_value(),
            timeout_s=settings.storefront.recommend_timeout_s,
        )

    def recommend(self, session_id: str, user_id: str | None, *, k: int, exclude: Sequence[str] = ()) -> Answer:
        """Ask for ``k`` items for a session; never raises for the recommender's failures.

        Returns:
            The answer, or an :class:`Answer` whose ``unavailable`` says why there is none.
        """
        import httpx

        started = now_ms()
        url = self.resolve_url()
        if url is None:
            return Answer(
                requested_ms=started,
                answered_ms=started,
                unavailable="no recommender is running (start it with `lambdarec demo` or the serving service)",
            )
        body = RecommendRequest(session_id=session_id, user_id=user_id, k=k, exclude=list(exclude)[:500])
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self._client.post(f"{url.rstrip('/')}/recommend", json=body.model_dump(), headers=headers)
        except httpx.TimeoutException:
            return self._failed(started, url, "the recommender did not answer in time")
        except httpx.HTTPError as err:
            return self._failed(started, url, f"the recommender cannot be reached ({type(err).__name__})")
        if response.status_code != 200:
            return self._failed(started, url, f"the recommender answered HTTP {response.status_code}")
        try:
            parsed = RecommendResponse.model_validate_json(response.content)
        except ValidationError as err:
            return self._failed(started, url, f"the recommender's answer breaks the contract: {err.errors()[0]['msg']}")
        return Answer(
            items=parsed.items,
            model_version=parsed.model_version,
            fallback=parsed.fallback,
            features_age_ms=parsed.features_age_ms,
            timings_ms=parsed.timings_ms,
            requested_ms=started,
            answered_ms=now_ms(),
            url=url,
        )

    @staticmethod
    def _failed(started: int, url: str, reason: str) -> Answer:
        return Answer(requested_ms=started, answered_ms=now_ms(), unavailable=reason, url=url)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

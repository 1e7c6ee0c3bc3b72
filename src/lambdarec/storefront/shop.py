"""What the storefront does, without the web framework: sessions, carts, events and the panel.

Every action is one event of the clickstream contract, offered to the project's
:class:`~lambdarec.events.producer.EventPublisher` exactly as a replay offers them: a valid event
lands on ``clicks`` (keyed by the browser's session), an invalid one on ``clicks.dlq`` with its
reason, and the caller hears which.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambdarec.schemas import EventRejection
from lambdarec.storefront.catalogue import Catalogue, CatalogueItem
from lambdarec.storefront.recommendations import Answer, RecommenderClient, now_ms

if TYPE_CHECKING:
    from lambdarec.events.producer import EventPublisher

PANEL_SIZE = 8
"""Items the "recommended for you" panel shows."""
MAX_SESSIONS = 10_000
"""Browser sessions kept in memory (the oldest unused are forgotten first)."""

Publish = Callable[[Mapping[str, Any], Mapping[str, Any]], EventRejection | None]
"""``publish(raw_event, origin)``: None when the event went to ``clicks``, else why it went to the DLQ."""


class UnknownItemError(LookupError):
    """The shop does not sell this item (not in the catalogue)."""


class RejectedEventError(ValueError):
    """The publisher refused the event (it is on the dead-letter topic with this reason)."""

    def __init__(self, rejection: EventRejection) -> None:
        super().__init__(rejection.describe())
        self.rejection = rejection


@dataclass
class ShopEvent:
    """An event the storefront published, as the page reports it."""

    event_id: str
    event_time: int
    event_type: str
    item_id: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "event_type": self.event_type,
            "item_id": self.item_id,
        }


@dataclass
class ShopSession:
    """One browser's visit.

    Attributes:
        session_id: The events' ``session_id`` (the browser's cookie).
        cart: Items in the cart, in the order added.
        last_event: The latest event published for this session.
        events: How many events this session published.
        seen_ms: When an answer first reflected ``last_event`` (epoch ms); None while none did.
    """

    session_id: str
    cart: list[str] = field(default_factory=list)
    last_event: ShopEvent | None = None
    events: int = 0
    seen_ms: int | None = None


@dataclass
class Panel:
    """The "recommended for you" panel of one session at one moment.

    Attributes:
        answer: The recommender's answer (or why there is none).
        items: The answer's items with their catalogue entry (None when the shop does not know one).
        last_event: The session's latest event, if any.
        reflects: The answer was computed from session features that include ``last_event``.
        lag_ms: Event → recommendation: from the event's time to the first answer that reflected it.
    """

    answer: Answer
    items: list[tuple[str, float, list[str], CatalogueItem | None]]
    last_event: ShopEvent | None
    reflects: bool
    lag_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``/api/recommendations`` returns besides the HTML)."""
        answer = self.answer
        return {
            "state": "ok" if answer.ok else "unavailable",
            "unavailable": answer.unavailable,
            "model_version": answer.model_version,
            "fallback": answer.fallback,
            "features_age_ms": answer.features_age_ms,
            "timings_ms": answer.timings_ms,
            "reflects": self.reflects,
            "lag_ms": self.lag_ms,
            "last_event": self.last_event.as_dict() if self.last_event else None,
            "items": [
                {
                    "item_id": item_id,
                    "score": score,
                    "sources": sources,
                    "category": entry.category if entry else None,
                }
                for item_id, score, sources, entry in self.items
            ],
        }


class Shop:
    """Sessions, carts and actions of the storefront.

    Args:
        catalogue: Returns the current catalogue.
        publish: Offers one raw event to the clickstream (see :data:`Publish`).
        recommender: The client of ``/recommend``.
        panel_size: Items asked for the panel.
    """

    def __init__(
        self,
        catalogue: Callable[[], Catalogue],
        publish: Publish,
        recommender: RecommenderClient,
        *,
        panel_size: int = PANEL_SIZE,
    ) -> None:
        self.catalogue = catalogue
        self.publish = publish
        self.recommender = recommender
        self.panel_size = panel_size
        self._sessions: OrderedDict[str, ShopSession] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_session_id() -> str:
        """A fresh session id for a browser without one."""
        return f"web-{uuid.uuid4().hex[:20]}"

    def session(self, session_id: str) -> ShopSession:
        """The session's state, created on first use."""
        with self._lock:
            state = self._sessions.get(session_id)
            if state is None:
                state = self._sessions[session_id] = ShopSession(session_id)
                while len(self._sessions) > MAX_SESSIONS:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(session_id)
            return state

    def act(
        self, session_id: str, user_id: str | None, item_id: str, event_type: str, *, origin: str = "storefront"
    ) -> ShopEvent:
        """Publish one action of a shopper on an item.

        Args:
            session_id: The browser's session.
            user_id: The signed-in user, or None.
            item_id: The item acted on.
            event_type: ``view``, ``cart`` or ``purchase`` (anything else is dead-lettered).
            origin: What the dead letter records as the source (the page or endpoint).

        Returns:
            The published event.

        Raises:
            UnknownItemError: The item is not in the catalogue (nothing is published).
            RejectedEventError: The event does not validate; it went to the dead-letter topic.
        """
        item = self.catalogue().get(item_id)
        if item is None:
            raise UnknownItemError(item_id)
        raw: dict[str, Any] = {
            "event_id": f"shop-{uuid.uuid4().hex}",
            "event_time": now_ms(),
            "session_id": session_id,
            "user_id": user_id,
            "item_id": item.item_id,
            "event_type": event_type,
            "price": item.price,
            "category": None if item.category == "uncategorised" else item.category,
            "brand": item.brand,
        }
        rejection = self.publish({k: v for k, v in raw.items() if v is not None}, {"storefront": origin})
        if rejection is not None:
            raise RejectedEventError(rejection)
        event = ShopEvent(raw["event_id"], raw["event_time"], event_type, item.item_id)
        state = self.session(session_id)
        with self._lock:
            state.last_event = event
            state.events += 1
            state.seen_ms = None
            if event_type == "cart" and item.item_id not in state.cart:
                state.cart.append(item.item_id)
            if event_type == "purchase" and item.item_id in state.cart:
                state.cart.remove(item.item_id)
        return event

    def panel(self, session_id: str, user_id: str | None) -> Panel:
        """Ask the recommender for the session and say whether the answer saw the latest event."""
        state = self.session(session_id)
        answer = self.recommender.recommend(session_id, user_id, k=self.panel_size, exclude=state.cart)
        catalogue = self.catalogue()
        last = state.last_event
        reflects = answer.reflects(last.event_time if last else None)
        with self._lock:
            if reflects and last is not None and state.last_event is last and state.seen_ms is None:
                state.seen_ms = answer.answered_ms
            lag = state.seen_ms - last.event_time if (last is not None and state.seen_ms is not None) else None
        items = [(i.item_id, i.score, [str(s) for s in i.sources], catalogue.get(i.item_id)) for i in answer.items]
        return Panel(answer, items, last, reflects, lag)


class KafkaEvents:
    """The storefront's publisher: one :class:`EventPublisher`, each event flushed before the page answers.

    Flushing per action means the event is on the broker (``acks=all``) when the page starts
    polling the recommender, so the freshness it shows starts at a delivered event.

    Args:
        bootstrap: Returns the Kafka bootstrap servers (resolved on first use).
        max_event_bytes: As the replay's publisher.
        max_future_ms: As the replay's publisher.
        flush_timeout_s: How long one action waits for the broker's acknowledgement.
    """

    def __init__(
        self,
        bootstrap: Callable[[], str],
        *,
        max_event_bytes: int = 16_384,
        max_future_ms: int = 86_400_000,
        flush_timeout_s: float = 10.0,
    ) -> None:
        self._bootstrap = bootstrap
        self.max_event_bytes = max_event_bytes
        self.max_future_ms = max_future_ms
        self.flush_timeout_s = flush_timeout_s
        self._publisher: EventPublisher | None = None
        self._lock = threading.Lock()

    def __call__(self, raw: Mapping[str, Any], origin: Mapping[str, Any]) -> EventRejection | None:
        """Publish one event and wait for the broker (see :data:`Publish`).

        Raises:
            DeliveryError: The broker did not acknowledge it in time.
        """
        from lambdarec.events.producer import EventPublisher

        with self._lock:
            if self._publisher is None:
                # No batching delay: one shopper's click should reach the broker at once.
                self._publisher = EventPublisher(
                    self._bootstrap(),
                    max_event_bytes=self.max_event_bytes,
                    max_future_ms=self.max_future_ms,
                    config={"linger.ms": 0},
                )
            rejection = self._publisher.publish(dict(raw), origin=origin)
            self._publisher.flush(self.flush_timeout_s)
            return rejection

    @property
    def stats(self) -> dict[str, Any]:
        """The publisher's counts so far."""
        return self._publisher.stats.as_dict() if self._publisher is not None else {}

    def close(self) -> None:
        """Flush what is left."""
        if self._publisher is not None:
            self._publisher.flush(self.flush_timeout_s)

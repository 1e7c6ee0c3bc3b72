"""The clickstream event contract and its validation at the edge.

An event on the ``clicks`` topic is UTF-8 JSON of :class:`ClickEvent` with
``event_time`` as integer epoch milliseconds (UTC). Anything that does not validate is
described by an :class:`EventRejection` (field + reason) so it can go to ``clicks.dlq``
with the reason instead of being dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lambdarec.names import EventType

EARLIEST_EVENT_MS = 946_684_800_000  # 2000-01-01: older timestamps are unit mistakes, not history.
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 256


class ClickEvent(BaseModel):
    """One interaction of a shopper with an item.

    Attributes:
        event_id: Unique id; duplicates are harmless downstream (dedup by this id).
        event_time: Epoch milliseconds, UTC.
        session_id: Partition key on Kafka; a session belongs to one shopper.
        user_id: Known shopper, or None for an anonymous session.
        item_id: The product interacted with.
        event_type: view, cart or purchase.
        price: Unit price in the shop's currency, if known.
        category: Category path or id, if known.
        brand: Brand, if known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    event_time: int = Field(ge=EARLIEST_EVENT_MS)
    session_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    item_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    event_type: EventType
    price: float | None = Field(default=None, ge=0)
    category: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    brand: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)

    @field_validator("event_time", mode="before")
    @classmethod
    def _coerce_event_time(cls, value: Any) -> Any:
        # Adapters and shops send datetimes or ISO strings; the wire carries epoch ms.
        if isinstance(value, datetime):
            return to_epoch_ms(value)
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            return to_epoch_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        if isinstance(value, bool):
            raise ValueError("a boolean is not a timestamp")
        return value

    @field_validator("user_id", "category", "brand", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("event_id", "session_id", "user_id", "item_id", mode="before")
    @classmethod
    def _ids_are_text(cls, value: Any) -> Any:
        # Integer ids are common in public datasets; floats or bools are a schema error.
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError("an id must be a string or an integer")
        if isinstance(value, int):
            return str(value)
        return value

    @field_validator("price")
    @classmethod
    def _price_is_finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("price must be a finite number")
        return value

    def to_json(self) -> bytes:
        """Serialize to the wire format of the ``clicks`` topic."""
        return orjson.dumps(self.model_dump(exclude_none=True))

    @property
    def event_datetime(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.event_time / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class EventRejection:
    """Why a raw event was rejected.

    Attributes:
        reason: Human-readable cause, naming the offending value's problem.
        field: The first offending field, or None when the payload as a whole is bad.
    """

    reason: str
    field: str | None = None

    def describe(self) -> str:
        """One line naming the field and the reason."""
        return f"{self.field}: {self.reason}" if self.field else self.reason


def to_epoch_ms(moment: datetime) -> int:
    """Convert a datetime to epoch milliseconds, treating naive values as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def validate_event(
    raw: Mapping[str, Any] | bytes | str,
    *,
    max_bytes: int = 16_384,
    max_future_ms: int = 86_400_000,
    now_ms: int | None = None,
) -> ClickEvent | EventRejection:
    """Validate one raw event.

    Args:
        raw: A mapping, or the JSON bytes/text of one.
        max_bytes: Raw payloads longer than this are rejected as oversized (a validated
            mapping cannot exceed it: every text field has a length limit).
        max_future_ms: Allowed clock skew; later event times are rejected.
        now_ms: The current time (for tests); defaults to the wall clock.

    Returns:
        The event, or the rejection that explains why it is not one. Never raises on bad
        input: every failure becomes a rejection.
    """
    if isinstance(raw, bytes | str):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > max_bytes:
            return EventRejection(f"payload of {size} bytes exceeds the {max_bytes}-byte limit")
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            return EventRejection(f"not valid JSON: {err}")
        if not isinstance(decoded, dict):
            return EventRejection(f"expected a JSON object, got {type(decoded).__name__}")
        payload: Mapping[str, Any] = decoded
    elif isinstance(raw, Mapping):
        payload = raw
    else:
        return EventRejection(f"expected a mapping or JSON bytes, got {type(raw).__name__}")
    event = _validated_event(payload)
    if isinstance(event, EventRejection):
        return event
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if event.event_time > now + max_future_ms:
        return _future_rejection(event.event_time, max_future_ms)
    return event


def _future_rejection(event_time: int, max_future_ms: int) -> EventRejection:
    moment = datetime.fromtimestamp(event_time / 1000, tz=UTC).isoformat()
    return EventRejection(f"event time {moment} is more than {max_future_ms // 1000}s in the future", "event_time")


class EncodedEvent(NamedTuple):
    """A valid event in wire form, ready for ``Producer.produce``.

    Attributes:
        key: The partition key (session_id, UTF-8).
        value: The JSON value, byte-identical to ``ClickEvent.to_json()``.
        event_time: Epoch ms, used as the Kafka record timestamp.
    """

    key: bytes
    value: bytes
    event_time: int


_REQUIRED_IDS = ("event_id", "session_id", "item_id")
_OPTIONAL_TEXT = {"user_id": MAX_ID_LENGTH, "category": MAX_TEXT_LENGTH, "brand": MAX_TEXT_LENGTH}
_FIELD_ORDER = tuple(ClickEvent.model_fields)
_ALLOWED_FIELDS = frozenset(_FIELD_ORDER)
_EVENT_TYPES = frozenset(member.value for member in EventType)


def encode_event(
    raw: Mapping[str, Any] | bytes | str,
    *,
    max_bytes: int = 16_384,
    max_future_ms: int = 86_400_000,
    now_ms: int | None = None,
) -> EncodedEvent | EventRejection:
    """Validate one raw event and encode it for the ``clicks`` topic.

    Same rules and results as :func:`validate_event` followed by ``to_json()``, but
    payloads already in wire form (trimmed string ids, epoch-ms ints, a known type: nearly
    all of them) skip pydantic, which is most of the cost at 100k+ events/s. Anything else
    takes the full validator, with its precise error messages. A unit test holds the two
    paths to byte-identical answers.
    """
    # `type(...) is dict` first: the ABC isinstance check alone costs a visible share.
    if type(raw) is dict or isinstance(raw, Mapping):
        fields = _canonical_fields(raw)
        if fields is not None:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            event_time: int = fields["event_time"]
            if event_time > now + max_future_ms:
                return _future_rejection(event_time, max_future_ms)
            return EncodedEvent(fields["session_id"].encode(), orjson.dumps(fields), event_time)
    result = validate_event(raw, max_bytes=max_bytes, max_future_ms=max_future_ms, now_ms=now_ms)
    if isinstance(result, EventRejection):
        return result
    return EncodedEvent(result.session_id.encode(), result.to_json(), result.event_time)


def _canonical_fields(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The non-None fields in model order if ``payload`` is canonical, else None (take the slow path)."""
    if not _ALLOWED_FIELDS.issuperset(payload):
        return None
    get = payload.get
    for name in _REQUIRED_IDS:
        value = get(name)
        if type(value) is not str or not 0 < len(value) <= MAX_ID_LENGTH or value.strip() != value:
            return None
    event_time = payload.get("event_time")
    if type(event_time) is not int or event_time < EARLIEST_EVENT_MS:
        return None
    if payload.get("event_type") not in _EVENT_TYPES:
        return None
    for name, limit in _OPTIONAL_TEXT.items():
        value = payload.get(name)
        if value is not None and (type(value) is not str or not 0 < len(value) <= limit or value.strip() != value):
            return None
    price = payload.get("price")
    if price is not None:
        if type(price) is int:
            price = float(price)
        if type(price) is not float or not 0 <= price < math.inf:
            return None
    fields = {name: value for name in _FIELD_ORDER if (value := get(name)) is not None}
    if price is not None:
        fields["price"] = price
    return fields


def _validated_event(payload: Mapping[str, Any]) -> ClickEvent | EventRejection:
    try:
        return ClickEvent.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        return EventRejection(first["msg"], field)
    except (ValueError, TypeError, OverflowError) as err:  # e.g. datetime parsing in a before-validator
        return EventRejection(str(err), "event_time")

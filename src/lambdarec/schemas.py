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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from lambdarec.events.contract import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_FUTURE_MS,
    EARLIEST_EVENT_MS,
    FIELDS,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    OPTIONAL_TEXT,
    REQUIRED_IDS,
    Bounds,
    Code,
    Violation,
    decode_record,
    reason_text,
)
from lambdarec.names import EventType

__all__ = [
    "EARLIEST_EVENT_MS",
    "MAX_ID_LENGTH",
    "MAX_TEXT_LENGTH",
    "ClickEvent",
    "EncodedEvent",
    "EventRejection",
    "encode_event",
    "to_epoch_ms",
    "validate_event",
]


class ClickEvent(BaseModel):
    """One interaction of a shopper with an item.

    The bounds come from :mod:`lambdarec.events.contract`; the earliest accepted event time is
    a setting, passed as ``context={"earliest_ms": ...}`` to ``model_validate`` (default 2000-01-01).

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
    event_time: int
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

    @field_validator("event_time")
    @classmethod
    def _not_too_early(cls, value: int, info: ValidationInfo) -> int:
        earliest = (info.context or {}).get("earliest_ms", EARLIEST_EVENT_MS)
        if value < earliest:
            raise PydanticCustomError(Code.TOO_EARLY.value, "event time before {earliest}", {"earliest": earliest})
        if value.bit_length() > 63:  # the wire carries a signed 64-bit integer
            raise ValueError("event time does not fit in 64 bits")
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
        reason: Human-readable cause: the contract's text for ``code``
            (:func:`lambdarec.events.contract.reason_text`).
        field: The first offending field, or None when the payload as a whole is bad.
        code: The contract's code (:class:`lambdarec.events.contract.Code`), the same on every path.
    """

    reason: str
    field: str | None = None
    code: str | None = None

    def describe(self) -> str:
        """One line naming the field and the reason."""
        return f"{self.field}: {self.reason}" if self.field else self.reason

    @classmethod
    def of(cls, violation: Violation, bounds: Bounds) -> EventRejection:
        """The rejection of a broken contract rule, with the contract's reason text."""
        return cls(reason_text(violation.code, violation.field, bounds), violation.field, violation.code.value)


def to_epoch_ms(moment: datetime) -> int:
    """Convert a datetime to epoch milliseconds, treating naive values as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def validate_event(
    raw: Mapping[str, Any] | bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
    now_ms: int | None = None,
    earliest_ms: int = EARLIEST_EVENT_MS,
) -> ClickEvent | EventRejection:
    """Validate one raw event against the contract (:mod:`lambdarec.events.contract`).

    Args:
        raw: A mapping, or the JSON bytes/text of one. Bytes follow the wire rules exactly;
            mappings (from adapters) may also carry datetimes and ISO strings.
        max_bytes: Raw payloads longer than this are rejected as oversized (a validated
            mapping cannot exceed it: every text field has a length limit).
        max_future_ms: Allowed clock skew; later event times are rejected.
        now_ms: The current time (for tests); defaults to the wall clock.
        earliest_ms: Earlier event times are rejected (``Settings.earliest_event_time``).

    Returns:
        The event, or the rejection that explains why it is not one. Never raises on bad
        input: every failure becomes a rejection.
    """
    bounds = Bounds(earliest_ms=earliest_ms, max_future_ms=max_future_ms, max_bytes=max_bytes)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if isinstance(raw, bytes | str):
        fields = decode_record(raw, bounds, clock_ms=now)
        if isinstance(fields, Violation):
            return EventRejection.of(fields, bounds)
        payload: Mapping[str, Any] = fields
    elif isinstance(raw, Mapping):
        payload = raw
    else:
        return EventRejection(
            f"expected a mapping or JSON bytes, got {type(raw).__name__}", None, Code.NOT_OBJECT.value
        )
    event = _validated_event(payload, bounds)
    if isinstance(event, EventRejection):
        return event
    if event.event_time > now + max_future_ms:
        return EventRejection.of(Violation(Code.IN_FUTURE, "event_time"), bounds)
    return event


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


_OPTIONAL_TEXT = {"user_id": MAX_ID_LENGTH, **dict.fromkeys(OPTIONAL_TEXT, MAX_TEXT_LENGTH)}
_FIELD_ORDER = FIELDS
_ALLOWED_FIELDS = frozenset(_FIELD_ORDER)
_EVENT_TYPES = frozenset(member.value for member in EventType)


def encode_event(
    raw: Mapping[str, Any] | bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
    now_ms: int | None = None,
    earliest_ms: int = EARLIEST_EVENT_MS,
) -> EncodedEvent | EventRejection:
    """Validate one raw event and encode it for the ``clicks`` topic.

    Same rules and results as :func:`validate_event` followed by ``to_json()``, but
    payloads already in wire form (trimmed string ids, epoch-ms ints, a known type: nearly
    all of them) skip pydantic, which is most of the cost at 100k+ events/s. Anything else
    takes the full validator, with its precise error messages. A unit test holds the two
    paths to byte-identical answers, and the shared corpus (``tests/data/events``) to the
    contract's.
    """
    # `type(...) is dict` first: the ABC isinstance check alone costs a visible share.
    if type(raw) is dict or isinstance(raw, Mapping):
        fields = _canonical_fields(raw, earliest_ms)
        if fields is not None:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            event_time: int = fields["event_time"]
            if event_time > now + max_future_ms:
                bounds = Bounds(earliest_ms=earliest_ms, max_future_ms=max_future_ms, max_bytes=max_bytes)
                return EventRejection.of(Violation(Code.IN_FUTURE, "event_time"), bounds)
            return EncodedEvent(fields["session_id"].encode(), orjson.dumps(fields), event_time)
    if isinstance(raw, bytes | str):
        # The contract's decoder already returns the canonical fields, in model order: the bytes
        # ClickEvent.to_json() would write (the corpus test holds the two equal), without pydantic.
        bounds = Bounds(earliest_ms=earliest_ms, max_future_ms=max_future_ms, max_bytes=max_bytes)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        decoded = decode_record(raw, bounds, clock_ms=now)
        if isinstance(decoded, Violation):
            return EventRejection.of(decoded, bounds)
        return EncodedEvent(decoded["session_id"].encode(), orjson.dumps(decoded), decoded["event_time"])
    result = validate_event(
        raw, max_bytes=max_bytes, max_future_ms=max_future_ms, now_ms=now_ms, earliest_ms=earliest_ms
    )
    if isinstance(result, EventRejection):
        return result
    return EncodedEvent(result.session_id.encode(), result.to_json(), result.event_time)


def _canonical_fields(payload: Mapping[str, Any], earliest_ms: int = EARLIEST_EVENT_MS) -> dict[str, Any] | None:
    """The non-None fields in model order if ``payload`` is canonical, else None (take the slow path)."""
    if not _ALLOWED_FIELDS.issuperset(payload):
        return None
    get = payload.get
    for name in REQUIRED_IDS:
        value = get(name)
        if type(value) is not str or not 0 < len(value) <= MAX_ID_LENGTH or value.strip() != value:
            return None
    event_time = payload.get("event_time")
    if type(event_time) is not int or not earliest_ms <= event_time < 2**63:
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


def _validated_event(payload: Mapping[str, Any], bounds: Bounds) -> ClickEvent | EventRejection:
    try:
        return ClickEvent.model_validate(payload, context={"earliest_ms": bounds.earliest_ms})
    except ValidationError as err:
        return EventRejection.of(_violation_of(err.errors()[0], payload), bounds)
    except (ValueError, TypeError, OverflowError):  # e.g. datetime parsing in a before-validator
        return EventRejection.of(Violation(Code.WRONG_TYPE, "event_time"), bounds)


def _violation_of(error: ErrorDetails, payload: Mapping[str, Any]) -> Violation:
    """The contract's rule behind pydantic's first error (pydantic reports them in field order)."""
    field = str(error["loc"][0]) if error["loc"] else None
    kind = error["type"]
    if kind == "extra_forbidden":
        unknown = sorted(str(key) for key in payload if key not in _ALLOWED_FIELDS)
        return Violation(Code.UNKNOWN_FIELD, unknown[0] if unknown else field)
    value = payload.get(field) if field else None
    if kind in ("missing", "string_too_short") or (
        value is None and field in (*REQUIRED_IDS, "event_time", "event_type")
    ):
        return Violation(Code.MISSING, field)
    if kind == "string_too_long":
        return Violation(Code.TOO_LONG, field)
    if kind == Code.TOO_EARLY.value:
        return Violation(Code.TOO_EARLY, field)
    if kind == "enum" and isinstance(value, str):
        return Violation(Code.UNKNOWN_TYPE, field)
    if field == "price" and kind in ("greater_than_equal", "value_error"):
        return Violation(Code.NEGATIVE, field)
    return Violation(Code.WRONG_TYPE, field)

"""The event contract: the one list of rules every layer applies to a ``clicks`` record.

What a valid event is (fields, types, bounds) and what each rejection is called (a code and a
reason text) is written here once. The other implementations follow it:

* :class:`lambdarec.schemas.ClickEvent` and its fast path ``_canonical_fields`` (the publisher)
  take their bounds from here, and map pydantic's errors to these codes;
* silver (:mod:`lambdarec.batch.silver`) builds its quarantine reasons from :func:`rejection`;
* the speed layer's dead letters come from :func:`decode_record`;
* the Flink parser ``ParseClick.java`` reads its constants from ``EventContract.java``, a class
  generated from this module by :func:`java_constants` (a unit test keeps it up to date), and its
  bounds that are settings as call arguments.

``tests/data/events/corpus.jsonl`` holds good and bad records with their expected verdict; it is
run through every path (unit: this module and the publisher's validator; integration: silver on
real Spark, the real Flink job) so the fast paths are proven equal to these rules.

**Wire rules** (a record's bytes, checked in this order; the first failure is the reason):

1. at most ``max_bytes`` bytes (``oversized``); valid UTF-8 without U+FFFD, the mark of an earlier
   failed decoding (``not_utf8``); one JSON document (``not_json``) that is an object
   (``not_object``);
2. the fields in :data:`FIELDS` order: ``event_id``, ``session_id``, ``item_id`` a string or an
   integer (turned into text), stripped of surrounding whitespace, non-empty, at most
   :data:`MAX_ID_LENGTH` characters; ``event_time`` an integer of epoch milliseconds that fits in 64
   bits and is not before the earliest accepted time (a setting, default 2000-01-01);
   ``user_id`` like an id but optional (blank means absent); ``event_type`` one of
   :data:`EVENT_TYPES`, exactly; ``price`` optional, a number, not negative; ``category`` and
   ``brand`` optional strings (blank means absent) of at most :data:`MAX_TEXT_LENGTH` characters;
   ``null`` is the same as absent;
3. no other key (``unknown_field``, naming the first in sorted order);
4. ``event_time`` at most ``max_future_ms`` after the reference clock (``in_future``): the wall
   clock at the publisher, the broker's record timestamp downstream.

Python mappings handed to the publisher by adapters may carry conveniences the wire does not:
datetimes, ISO-8601 strings or digit strings for ``event_time`` and numeric strings for
``price`` (pydantic converts them); the result on the wire always follows the rules above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import orjson

from lambdarec.names import EventType

EARLIEST_EVENT_DATE = date(2000, 1, 1)
"""Default earliest accepted event time: older timestamps are usually unit mistakes, not history."""
EARLIEST_EVENT_MS = 946_684_800_000
""":data:`EARLIEST_EVENT_DATE` in epoch milliseconds."""
DEFAULT_MAX_FUTURE_MS = 86_400_000
"""Allowed clock skew: event times further ahead of the reference clock are rejected."""
DEFAULT_MAX_EVENT_BYTES = 16_384
"""Records longer than this are rejected as oversized."""
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 256
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

FIELDS: tuple[str, ...] = (
    "event_id",
    "event_time",
    "session_id",
    "user_id",
    "item_id",
    "event_type",
    "price",
    "category",
    "brand",
)
"""The event's fields, in the order their rules are checked (the model's field order)."""
REQUIRED_IDS: tuple[str, ...] = ("event_id", "session_id", "item_id")
OPTIONAL_ID = "user_id"
OPTIONAL_TEXT: tuple[str, ...] = ("category", "brand")
EVENT_TYPES: tuple[str, ...] = tuple(member.value for member in EventType)
_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_FIELD_SET = frozenset(FIELDS)


class Code(StrEnum):
    """Why a record is not an event: the stable code every path reports."""

    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    TOO_LONG = "too_long"
    UNKNOWN_TYPE = "unknown_type"
    TOO_EARLY = "too_early"
    NEGATIVE = "negative"
    UNKNOWN_FIELD = "unknown_field"
    IN_FUTURE = "in_future"


_KIND = {
    "event_id": "a string or an integer",
    "session_id": "a string or an integer",
    "item_id": "a string or an integer",
    "user_id": "a string or an integer",
    "event_time": "an integer of epoch milliseconds (64-bit)",
    "event_type": "a string",
    "price": "a number",
    "category": "a string",
    "brand": "a string",
}


@dataclass(frozen=True, slots=True)
class Bounds:
    """The contract's bounds that are settings.

    Attributes:
        earliest_ms: Earliest accepted event time, epoch ms (``Settings.earliest_event_time``).
        max_future_ms: Allowed clock skew (``Settings.max_clock_skew_s``).
        max_bytes: Largest accepted record (``Settings.kafka.max_event_bytes``).
    """

    earliest_ms: int = EARLIEST_EVENT_MS
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES


DEFAULT_BOUNDS = Bounds()


def epoch_ms_of_date(day: date) -> int:
    """Midnight UTC of ``day`` in epoch milliseconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _moment(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if moment.hour == moment.minute == moment.second == moment.microsecond == 0:
        return moment.date().isoformat()
    return moment.isoformat()


def reason_text(code: Code, field: str | None, bounds: Bounds = DEFAULT_BOUNDS) -> str:
    """The human-readable reason of a code (without the field's name).

    Args:
        code: The rejection's code.
        field: The offending field, or None for the payload as a whole.
        bounds: The bounds in force (their values appear in some reasons).

    Returns:
        The reason text every path writes for this code.
    """
    texts = {
        Code.OVERSIZED: f"payload exceeds the {bounds.max_bytes}-byte limit",
        Code.NOT_UTF8: "not valid UTF-8",
        Code.NOT_JSON: "not valid JSON",
        Code.NOT_OBJECT: "expected a JSON object",
        Code.MISSING: "missing or blank",
        Code.WRONG_TYPE: f"must be {_KIND.get(field or '', 'of another type')}",
        Code.TOO_LONG: f"longer than {MAX_TEXT_LENGTH if field in OPTIONAL_TEXT else MAX_ID_LENGTH} characters",
        Code.UNKNOWN_TYPE: f"not one of {', '.join(EVENT_TYPES)}",
        Code.TOO_EARLY: f"before {_moment(bounds.earliest_ms)}",
        Code.NEGATIVE: "negative or not finite",
        Code.UNKNOWN_FIELD: "not a field of the event",
        Code.IN_FUTURE: f"more than {bounds.max_future_ms // 1000}s ahead of the clock",
    }
    return texts[code]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: the code and the field (None for the payload as a whole)."""

    code: Code
    field: str | None = None

    def describe(self, bounds: Bounds = DEFAULT_BOUNDS) -> str:
        """``field: reason`` (or the reason alone): the line every path writes."""
        text = reason_text(self.code, self.field, bounds)
        return f"{self.field}: {text}" if self.field else text


def _id_text(value: Any) -> str | None | Code:
    """An id's text (stripped), None when absent or blank, or the code of its type error."""
    if value is None:
        return None
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        return Code.WRONG_TYPE
    return value.strip() or None


def check_object(
    event: Mapping[str, Any], bounds: Bounds = DEFAULT_BOUNDS, clock_ms: int | None = None
) -> dict[str, Any] | Violation:
    """Apply the field rules to one decoded JSON object (the reference implementation).

    Args:
        event: The decoded object (JSON types only: str, int, float, bool, None, list, dict).
        bounds: The bounds in force.
        clock_ms: The reference clock for ``in_future`` (None: not checked).

    Returns:
        The event's fields in canonical form (ids as stripped text, blanks dropped, price as
        float), in :data:`FIELDS` order without absent ones; or the first broken rule.
    """
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = event.get(name)
        if name in REQUIRED_IDS or name == OPTIONAL_ID:
            text = _id_text(value)
            if text is Code.WRONG_TYPE:
                return Violation(Code.WRONG_TYPE, name)
            if text is None:
                if name != OPTIONAL_ID:
                    return Violation(Code.MISSING, name)
                continue
            assert isinstance(text, str)
            if len(text) > MAX_ID_LENGTH:
                return Violation(Code.TOO_LONG, name)
            out[name] = text
        elif name == "event_time":
            if value is None:
                return Violation(Code.MISSING, name)
            if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
                return Violation(Code.WRONG_TYPE, name)
            if value < bounds.earliest_ms:
                return Violation(Code.TOO_EARLY, name)
            out[name] = value
        elif name == "event_type":
            if value is None:
                return Violation(Code.MISSING, name)
            if type(value) is not str:
                return Violation(Code.WRONG_TYPE, name)
            if value not in _EVENT_TYPE_SET:
                return Violation(Code.UNKNOWN_TYPE, name)
            out[name] = value
        elif name == "price":
            if value is None:
                continue
            if type(value) is not int and type(value) is not float:
                return Violation(Code.WRONG_TYPE, name)
            price = float(value)
            if not 0 <= price < math.inf:
                return Violation(Code.NEGATIVE, name)
            out[name] = price
        else:  # category, brand
            if value is None:
                continue
            if type(value) is not str:
                return Violation(Code.WRONG_TYPE, name)
            value = value.strip()
            if not value:
                continue
            if len(value) > MAX_TEXT_LENGTH:
                return Violation(Code.TOO_LONG, name)
            out[name] = value
    unknown = sorted(key for key in event if key not in _FIELD_SET)
    if unknown:
        return Violation(Code.UNKNOWN_FIELD, unknown[0])
    if clock_ms is not None and out["event_time"] > clock_ms + bounds.max_future_ms:
        return Violation(Code.IN_FUTURE, "event_time")
    return out


def decode_record(
    raw: bytes | str | None, bounds: Bounds = DEFAULT_BOUNDS, clock_ms: int | None = None
) -> dict[str, Any] | Violation:
    """Apply every wire rule to one record's bytes (the reference implementation).

    Args:
        raw: The record value (None, a Kafka tombstone, is not JSON).
        bounds: The bounds in force.
        clock_ms: The reference clock for ``in_future`` (None: not checked).

    Returns:
        The event's canonical fields, or the first broken rule.
    """
    if raw is None:
        return Violation(Code.NOT_JSON)
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > bounds.max_bytes:
        return Violation(Code.OVERSIZED)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Violation(Code.NOT_UTF8)
    if "\ufffd" in text:
        return Violation(Code.NOT_UTF8)
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Violation(Code.NOT_JSON)
    if not isinstance(decoded, dict):
        return Violation(Code.NOT_OBJECT)
    return check_object(decoded, bounds, clock_ms)


def java_constants() -> str:
    """The source of ``EventContract.java``: this module's constants for ``ParseClick.java``.

    Generated, never edited by hand: ``python -m lambdarec.events.contract --java PATH`` writes
    it, and a unit test fails when the committed file differs from this text.
    """

    def strings(values: tuple[str, ...]) -> str:
        return ", ".join(f'"{value}"' for value in values)

    return f"""package lambdarec.flink;

import java.util.Set;

/**
 * The event contract's constants, generated from {{@code lambdarec.events.contract}} (do not edit:
 * run {{@code python -m lambdarec.events.contract --java}} and commit the result).
 */
final class EventContract {{

  /** Every field of an event; any other key makes a record invalid. */
  static final Set<String> FIELDS = Set.of({strings(FIELDS)});

  /** Required ids: a string or an integer, non-blank after stripping. */
  static final Set<String> REQUIRED_IDS = Set.of({strings(REQUIRED_IDS)});

  /** The optional id (blank means absent). */
  static final String OPTIONAL_ID = "{OPTIONAL_ID}";

  /** Optional texts: strings only (blank means absent). */
  static final Set<String> OPTIONAL_TEXT = Set.of({strings(OPTIONAL_TEXT)});

  static final Set<String> EVENT_TYPES = Set.of({strings(EVENT_TYPES)});
  static final int MAX_ID_LENGTH = {MAX_ID_LENGTH};
  static final int MAX_TEXT_LENGTH = {MAX_TEXT_LENGTH};

  /** Defaults of the bounds that are settings (the job passes the settings' values). */
  static final long DEFAULT_EARLIEST_MS = {EARLIEST_EVENT_MS}L;

  static final long DEFAULT_MAX_FUTURE_MS = {DEFAULT_MAX_FUTURE_MS}L;
  static final int DEFAULT_MAX_BYTES = {DEFAULT_MAX_EVENT_BYTES};

  private EventContract() {{}}
}}
"""


def main(argv: list[str] | None = None) -> None:
    """Write ``EventContract.java`` (``--java PATH``)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="Write the event contract for other languages.")
    parser.add_argument("--java", type=Path, required=True, help="where EventContract.java goes")
    args = parser.parse_args(argv)
    args.java.write_text(java_constants())


if __name__ == "__main__":
    main()

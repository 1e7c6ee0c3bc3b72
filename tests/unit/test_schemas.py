"""The event contract: what validates, and that every rejection names its field."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from lambdarec.names import EventType
from lambdarec.schemas import ClickEvent, EventRejection, validate_event

NOW = 1_764_000_000_000
GOOD = {
    "event_id": "e1",
    "event_time": 1_569_888_000_000,
    "session_id": "s1",
    "user_id": "u1",
    "item_id": "i1",
    "event_type": "cart",
    "price": 12.5,
    "category": "a.b",
    "brand": "acme",
}


def test_valid_event_round_trips_through_the_wire_format() -> None:
    event = validate_event(GOOD, now_ms=NOW)
    assert isinstance(event, ClickEvent)
    again = validate_event(event.to_json(), now_ms=NOW)
    assert again == event
    assert orjson.loads(event.to_json())["event_type"] == "cart"


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("2019-10-01T00:00:00Z", 1_569_888_000_000),
        ("2019-10-01 00:00:00+00:00", 1_569_888_000_000),
        (datetime(2019, 10, 1, tzinfo=UTC), 1_569_888_000_000),
        (datetime(2019, 10, 1), 1_569_888_000_000),  # naive means UTC
        ("1569888000000", 1_569_888_000_000),
    ],
)
def test_event_time_accepts_common_forms(value: object, expected_ms: int) -> None:
    event = validate_event({**GOOD, "event_time": value}, now_ms=NOW)
    assert isinstance(event, ClickEvent) and event.event_time == expected_ms


def test_integer_ids_become_strings_and_blanks_become_missing() -> None:
    event = validate_event({**GOOD, "item_id": 42, "user_id": "  ", "brand": ""}, now_ms=NOW)
    assert isinstance(event, ClickEvent)
    assert (event.item_id, event.user_id, event.brand) == ("42", None, None)
    assert event.event_type is EventType.CART


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": ""}, "event_id"),
        ({"event_id": None}, "event_id"),
        ({"session_id": "x" * 200}, "session_id"),
        ({"item_id": 1.5}, "item_id"),
        ({"item_id": True}, "item_id"),
        ({"event_type": "click"}, "event_type"),
        ({"event_time": "not a time"}, "event_time"),
        ({"event_time": 12}, "event_time"),
        ({"event_time": True}, "event_time"),
        ({"event_time": NOW + 2 * 86_400_000}, "event_time"),
        ({"price": -0.01}, "price"),
        ({"price": float("nan")}, "price"),
        ({"price": "abc"}, "price"),
        ({"color": "red"}, "color"),
    ],
)
def test_rejections_name_the_offending_field(change: dict[str, object], field: str) -> None:
    result = validate_event({**GOOD, **change}, now_ms=NOW)
    assert isinstance(result, EventRejection)
    assert result.field == field
    assert result.reason
    assert result.describe().startswith(f"{field}: ")


def test_missing_field_is_named() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "item_id"}
    result = validate_event(raw, now_ms=NOW)
    assert isinstance(result, EventRejection) and result.field == "item_id"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "expected a JSON object"),
        ("42", "expected a JSON object"),
        (b'{"a": "' + b"x" * 20_000 + b'"}', "exceeds"),
    ],
)
def test_bad_payloads_are_rejections_not_exceptions(raw: bytes | str, needle: str) -> None:
    result = validate_event(raw, now_ms=NOW)
    assert isinstance(result, EventRejection)
    assert needle in result.reason and result.field is None


def test_unsupported_input_type_is_a_rejection() -> None:
    result = validate_event(12345, now_ms=NOW)  # type: ignore[arg-type]
    assert isinstance(result, EventRejection) and "int" in result.reason


FIELD_VARIANTS: dict[str, list[object]] = {
    "event_id": ["e1", " e1", "", 7, 7.0, None, True, "x" * 129, "x" * 128],
    "event_time": [1_569_888_000_000, 12, "2019-10-01T00:00:00Z", 1.5e12, None, True, NOW + 3 * 86_400_000],
    "session_id": ["s1", "s1 ", 3, None],
    "user_id": ["u1", None, "", " ", 5, 5.5, "u" * 129],
    "item_id": ["i1", 42, -1, 4.2, "", None],
    "event_type": ["view", "cart", "purchase", "VIEW", "click", None, 1],
    "price": [12.5, 0, 3, -1, float("nan"), float("inf"), "1.5", None, True],
    "category": ["a.b", None, "", "c" * 257, 9],
    "brand": ["acme", None, " acme", ["x"]],
}


def test_fast_encoding_matches_the_full_validator_exactly() -> None:
    """encode_event's shortcut for wire-form payloads must give the validator's answers, byte for byte."""
    from lambdarec.schemas import EncodedEvent, encode_event

    cases = 0
    for field_name, variants in FIELD_VARIANTS.items():
        for value in variants:
            for drop in (False, True):
                raw = {k: v for k, v in GOOD.items() if not (drop and k == field_name)}
                if not drop:
                    raw[field_name] = value
                expected = validate_event(raw, now_ms=NOW)
                encoded = encode_event(raw, now_ms=NOW)
                cases += 1
                if isinstance(expected, EventRejection):
                    assert isinstance(encoded, EventRejection), (field_name, value, drop)
                    assert encoded.field == expected.field
                else:
                    assert isinstance(encoded, EncodedEvent), (field_name, value, drop, encoded)
                    assert encoded.value == expected.to_json()
                    assert encoded.key == expected.session_id.encode()
                    assert encoded.event_time == expected.event_time
    assert cases == 2 * sum(len(v) for v in FIELD_VARIANTS.values())

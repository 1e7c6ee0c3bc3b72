"""The shared corpus through the contract's reference decoder and the publisher's validator.

Silver (real Spark) and the Flink job (real engine) run the same corpus in their integration
tests; here the Python paths: :func:`decode_record`, ``validate_event`` and ``encode_event`` (the
publisher's, fast path included) and the speed layer's dead-letter decoder, and the generated
Java constants.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from event_corpus import NOW_MS, Case, load_corpus
from lambdarec.events.contract import (
    DEFAULT_BOUNDS,
    EARLIEST_EVENT_MS,
    Bounds,
    Code,
    Violation,
    decode_record,
    java_constants,
)
from lambdarec.schemas import ClickEvent, EncodedEvent, EventRejection, encode_event, validate_event

CASES = load_corpus()
JAVA = Path(__file__).parents[2] / "jobs" / "flink" / "udf" / "lambdarec" / "flink" / "EventContract.java"


def test_the_corpus_covers_every_code_and_both_verdicts() -> None:
    assert {case.code for case in CASES if not case.accept} == set(Code)
    assert sum(case.accept for case in CASES) >= 8
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_reference_decoder_gives_the_corpus_verdict(case: Case) -> None:
    result = decode_record(case.raw, DEFAULT_BOUNDS, clock_ms=NOW_MS)
    if case.accept:
        assert isinstance(result, dict), result
        # Canonical: it validates as a ClickEvent and encodes back to the same fields.
        assert orjson.loads(ClickEvent.model_validate(result).to_json()) == result
    else:
        assert result == case.violation


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_publisher_gives_the_corpus_verdict_and_reason(case: Case) -> None:
    """What ``EventPublisher.publish`` decides (``encode_event``), for bytes and for the decoded mapping."""
    encoded = encode_event(case.raw, now_ms=NOW_MS)
    validated = validate_event(case.raw, now_ms=NOW_MS)
    if case.accept:
        assert isinstance(encoded, EncodedEvent) and isinstance(validated, ClickEvent)
        assert encoded.value == validated.to_json()
        return
    for result in (encoded, validated):
        assert isinstance(result, EventRejection)
        assert (result.field, result.code) == (case.field, case.code)
        assert result.describe() == case.reason(DEFAULT_BOUNDS)


PAYLOAD_CODES = {Code.OVERSIZED, Code.NOT_UTF8, Code.NOT_JSON, Code.NOT_OBJECT}
OBJECT_CASES = [case for case in CASES if case.code not in PAYLOAD_CODES]
LENIENT_FOR_MAPPINGS = {
    "iso_string_event_time",
    "digit_string_event_time",
    "float_event_time",
    "string_price",
    "boolean_price",
}
"""Cases an adapter's mapping may carry (pydantic converts them); on the wire they are errors."""


@pytest.mark.parametrize("case", OBJECT_CASES, ids=[case.name for case in OBJECT_CASES])
def test_a_decoded_mapping_reaches_the_same_verdict_save_the_documented_conversions(case: Case) -> None:
    """Mappings from adapters go through pydantic (fast path or not), mapped to the same codes."""
    mapping = orjson.loads(case.raw)
    result = encode_event(mapping, now_ms=NOW_MS)
    if case.accept or case.name in LENIENT_FOR_MAPPINGS:
        assert isinstance(result, EncodedEvent), result
    else:
        assert isinstance(result, EventRejection)
        assert (result.field, result.code) == (case.field, case.code), case.name


def test_the_speed_layers_dead_letter_decoder_follows_the_contract() -> None:
    import sys

    sys.path.insert(0, str(JAVA.parents[3]))
    try:
        from speed_layer import decode_event
    finally:
        sys.path.pop(0)
    for case in CASES:
        result = decode_event(case.raw, DEFAULT_BOUNDS, broker_ms=NOW_MS)
        if case.accept:
            assert isinstance(result, dict), case.name
        else:
            assert isinstance(result, EventRejection), case.name
            assert (result.field, result.code, result.describe()) == (
                case.field,
                case.code,
                case.reason(DEFAULT_BOUNDS),
            ), case.name


def test_the_earliest_accepted_time_is_a_bound_every_python_path_honours() -> None:
    raw = {"event_id": "h1", "event_time": 631_152_000_000, "session_id": "s", "item_id": "i", "event_type": "view"}
    earliest_1990 = 631_152_000_000
    assert decode_record(orjson.dumps(raw), DEFAULT_BOUNDS) == Violation(Code.TOO_EARLY, "event_time")
    assert isinstance(decode_record(orjson.dumps(raw), Bounds(earliest_ms=earliest_1990)), dict)
    for payload in (raw, orjson.dumps(raw), {**raw, "event_id": " h1"}):
        rejected = encode_event(payload, now_ms=NOW_MS)
        assert isinstance(rejected, EventRejection) and rejected.reason == "before 2000-01-01"
        assert isinstance(encode_event(payload, now_ms=NOW_MS, earliest_ms=earliest_1990), EncodedEvent)
    assert EARLIEST_EVENT_MS == 946_684_800_000


def test_the_java_constants_are_generated_from_the_contract() -> None:
    """``EventContract.java`` is what ``python -m lambdarec.events.contract --java`` writes today."""
    assert JAVA.read_text() == java_constants(), (
        "jobs/flink/udf/.../EventContract.java is stale: run "
        "`.venv/bin/python -m lambdarec.events.contract --java jobs/flink/udf/lambdarec/flink/EventContract.java`"
    )

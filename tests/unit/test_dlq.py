"""Dead letters keep the whole payload (or a digest of a huge one) with the reason."""

from __future__ import annotations

import base64
import hashlib

import orjson

from lambdarec.events.dlq import DLQ_MAX_RAW_BYTES, dead_letter
from lambdarec.schemas import EventRejection

REJECTION = EventRejection("Field required", "item_id")


def test_mapping_payload_is_kept_as_json() -> None:
    record = orjson.loads(dead_letter({"event_id": "x", "n": 1}, REJECTION, source="producer", origin={"row": 7}))
    assert record["raw_json"] == {"event_id": "x", "n": 1}
    assert (record["reason"], record["field"], record["source"]) == ("Field required", "item_id", "producer")
    assert record["origin"] == {"row": 7} and record["rejected_at"] > 0


def test_text_and_binary_payloads_survive_exactly() -> None:
    text = orjson.loads(dead_letter(b'{"a":', REJECTION, source="consumer"))
    assert text["raw"] == '{"a":'
    binary = b"\xff\x00\xfe"
    record = orjson.loads(dead_letter(binary, REJECTION, source="consumer"))
    assert base64.b64decode(record["raw_b64"]) == binary


def test_huge_payload_keeps_prefix_size_and_digest() -> None:
    payload = b"y" * (DLQ_MAX_RAW_BYTES + 10)
    record = orjson.loads(dead_letter(payload, REJECTION, source="producer"))
    assert record["truncated"] is True and record["raw_size"] == len(payload)
    assert record["raw_sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(record["raw"]) == DLQ_MAX_RAW_BYTES


def test_unserializable_values_do_not_break_the_dead_letter() -> None:
    record = orjson.loads(dead_letter({"when": object()}, REJECTION, source="producer"))
    assert "when" in record["raw_json"]

"""Dead-letter records: the rejected payload, untouched, with the reason it was rejected."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

import orjson

from lambdarec.schemas import EventRejection

DLQ_MAX_RAW_BYTES = 1_000_000
"""Raw payloads up to this size are kept whole; beyond it, a prefix plus size and digest."""


def dead_letter(
    raw: bytes | str | Mapping[str, Any] | Any,
    rejection: EventRejection,
    *,
    source: str,
    origin: Mapping[str, Any] | None = None,
) -> bytes:
    """Build the JSON value written to ``clicks.dlq``.

    Args:
        raw: What was received: bytes/str off the wire or a mapping from an adapter.
        rejection: Why it was rejected.
        source: Who rejected it (``producer``, ``consumer``, ``flink``, ...).
        origin: Where it came from (topic/partition/offset, dataset and row, ...).

    Returns:
        UTF-8 JSON with ``reason``, ``field``, ``code`` (the event contract's), ``source``, ``rejected_at`` (epoch ms),
        ``origin`` and the payload as ``raw`` (text), ``raw_b64`` (bytes that are not
        UTF-8) or ``raw_json`` (a mapping), so that nothing is lost.
    """
    record: dict[str, Any] = {
        "reason": rejection.reason,
        "field": rejection.field,
        "code": rejection.code,
        "source": source,
        "rejected_at": int(time.time() * 1000),
        "origin": dict(origin or {}),
    }
    if isinstance(raw, Mapping):
        try:
            record["raw_json"] = orjson.loads(orjson.dumps(raw, default=str))
        except orjson.JSONEncodeError:
            record["raw"] = repr(raw)
        return orjson.dumps(record, default=str)
    data = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else repr(raw).encode()
    if len(data) > DLQ_MAX_RAW_BYTES:
        record["raw_size"] = len(data)
        record["raw_sha256"] = hashlib.sha256(data).hexdigest()
        record["truncated"] = True
        data = data[:DLQ_MAX_RAW_BYTES]
    try:
        record["raw"] = data.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_b64"] = base64.b64encode(data).decode()
    return orjson.dumps(record)

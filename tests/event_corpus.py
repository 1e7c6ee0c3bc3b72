"""The shared corpus of the event contract (``tests/data/events/corpus.jsonl``), for every path's test."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from lambdarec.events.contract import Bounds, Code, Violation

CORPUS = Path(__file__).parent / "data" / "events" / "corpus.jsonl"
NOW_MS = 1_764_000_000_000
"""The publisher's clock in the unit tests (2025-11-24): the corpus's 2100 event is in the future."""


@dataclass(frozen=True)
class Case:
    """One record and the verdict every path must reach.

    Attributes:
        name: What the record shows.
        raw: Its bytes, as they would sit on the ``clicks`` topic.
        accept: Whether it is an event.
        field: The offending field of a rejection (None for the payload as a whole).
        code: The contract's code of a rejection.
    """

    name: str
    raw: bytes
    accept: bool
    field: str | None = None
    code: Code | None = None

    @property
    def violation(self) -> Violation:
        """The expected broken rule (rejections only)."""
        assert self.code is not None, self.name
        return Violation(self.code, self.field)

    def reason(self, bounds: Bounds) -> str:
        """The expected ``field: reason`` line (rejections only)."""
        return self.violation.describe(bounds)


def load_corpus() -> list[Case]:
    """Every case of the corpus, in file order."""
    cases = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "raw_b64" in entry:
            raw = base64.b64decode(entry["raw_b64"])
        elif "raw_repeat" in entry:
            prefix, unit, times, suffix = entry["raw_repeat"]
            raw = (prefix + unit * times + suffix).encode()
        else:
            raw = entry["raw"].encode()
        accept = entry["verdict"] == "accept"
        code = None if accept else Code(entry["code"])
        cases.append(Case(entry["case"], raw, accept, entry.get("field"), code))
    return cases

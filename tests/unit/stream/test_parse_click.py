"""``PARSE_CLICK`` (the speed layer's Java parser, as ``make setup`` builds it) against the contract.

The built UDF jar runs in a plain JVM (no Flink cluster: one ``java`` single-file launch, about a
second) over the shared corpus and over the bounds that are settings; every verdict and every
accepted event's fields must equal the contract's reference decoder. The real job runs the
corpus end to end in ``tests/integration/stream/test_stream_job.py``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from event_corpus import NOW_MS, load_corpus
from lambdarec.events.contract import DEFAULT_BOUNDS, Bounds, decode_record

ROOT = Path(__file__).resolve().parents[3]
UDF_JAR = ROOT / ".cache" / "jars" / "flink" / "lambdarec-flink-udfs.jar"
HARNESS = Path(__file__).with_name("ParseClickCorpus.java")
ROW_FIELDS = ("event_id", "session_id", "user_id", "item_id", "event_type", "category", "event_time")


def _flink_lib() -> Path:
    python = ROOT / "jobs" / "flink" / ".venv" / "bin" / "python"
    found = subprocess.run(
        [str(python), "-c", "import pyflink, os; print(os.path.dirname(pyflink.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(found.stdout.strip()) / "lib"


def parse_click(records: list[tuple[bytes, int, Bounds]]) -> list[list[object]]:
    """The rows PARSE_CLICK emits for (payload, broker ms, bounds) triples, in order."""
    java = shutil.which("java")
    assert java, "a JDK is a prerequisite of the project (make setup checks it)"
    assert UDF_JAR.is_file(), f"{UDF_JAR} is missing: run `make setup`"
    lines = "".join(
        f"{base64.b64encode(raw).decode()} {broker} {b.earliest_ms} {b.max_future_ms} {b.max_bytes}\n"
        for raw, broker, b in records
    )
    classpath = f"{_flink_lib()}/*:{UDF_JAR}"
    done = subprocess.run(
        [java, "-cp", classpath, str(HARNESS)], input=lines.encode(), capture_output=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return [orjson.loads(line) for line in done.stdout.decode().splitlines()]


def expected_row(raw: bytes, broker_ms: int, bounds: Bounds) -> list[object]:
    decoded = decode_record(raw, bounds, clock_ms=broker_ms)
    if not isinstance(decoded, dict):
        return [False, *([None] * len(ROW_FIELDS))]
    return [True, *(decoded.get(name) for name in ROW_FIELDS)]


CORPUS = load_corpus()
BOUND_CASES: list[tuple[int, int, Bounds]] = [
    (631_152_000_000, NOW_MS, Bounds(earliest_ms=631_152_000_000)),  # 1990 with a 1990 setting: accepted
    (631_152_000_000, NOW_MS, DEFAULT_BOUNDS),  # ... and rejected with the default
    (631_151_999_999, NOW_MS, Bounds(earliest_ms=631_152_000_000)),
    (NOW_MS + 3_600_000, NOW_MS, Bounds(max_future_ms=3_600_000)),  # exactly at the skew limit
    (NOW_MS + 3_600_001, NOW_MS, Bounds(max_future_ms=3_600_000)),
    (NOW_MS, NOW_MS, Bounds(max_bytes=64)),  # the record is longer than 64 bytes
]
"""(event time, broker ms, bounds) of one otherwise good record."""


def bound_record(event_time: int) -> bytes:
    event = {"event_id": "b1", "event_time": event_time, "session_id": "s1", "item_id": "i1", "event_type": "view"}
    return orjson.dumps(event)


@pytest.fixture(scope="module")
def rows() -> list[list[object]]:
    """PARSE_CLICK's rows for the corpus, then for :data:`BOUND_CASES` (one JVM for all)."""
    records = [(case.raw, NOW_MS, DEFAULT_BOUNDS) for case in CORPUS]
    records += [(bound_record(event_time), broker, bounds) for event_time, broker, bounds in BOUND_CASES]
    found = parse_click(records)
    assert len(found) == len(records)
    return found


def test_parse_click_reaches_the_contracts_verdict_and_fields_on_the_corpus(rows: list[list[object]]) -> None:
    for case, row in zip(CORPUS, rows, strict=False):
        assert row[0] is case.accept, case.name
        assert row == expected_row(case.raw, NOW_MS, DEFAULT_BOUNDS), case.name


def test_parse_click_honours_the_bounds_that_are_settings(rows: list[list[object]]) -> None:
    got = rows[len(CORPUS) :]
    verdicts = [row[0] for row in got]
    assert verdicts == [True, False, False, True, False, False]
    for (event_time, broker, bounds), row in zip(BOUND_CASES, got, strict=True):
        assert row == expected_row(bound_record(event_time), broker, bounds), (event_time, bounds)

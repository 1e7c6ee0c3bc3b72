"""Pure parts of the speed layer: record decoding, dead letters, the job's SQL, snapshots, metrics."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from lambdarec import names
from lambdarec.features.session import fold_session
from lambdarec.schemas import EventRejection
from lambdarec.stream.metrics import FreshnessTracker, percentile, prometheus_text, read_metrics
from lambdarec.stream.pusher import newest_per_session, session_frame, snapshot_rank
from lambdarec.stream.service import StreamJobService, latest_checkpoint

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def job() -> ModuleType:
    """jobs/flink/speed_layer.py, imported without Flink (its operators import pyflink lazily)."""
    spec = importlib.util.spec_from_file_location("speed_layer", ROOT / "jobs" / "flink" / "speed_layer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed_layer"] = module
    spec.loader.exec_module(module)
    return module


def event(i: int, **over: Any) -> dict[str, Any]:
    return {"event_id": f"e{i}", "event_time": 1_700_000_000_000 + i, "session_id": "s", "item_id": f"i{i}",
            "event_type": "view", **over}  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff\xfe", None),
        ("caf\ufffd", None),
        (b"not json", None),
        (b"[1,2]", None),
        (b"", None),
        (orjson.dumps({"event_id": "x"}), "event_time"),  # the contract's field order: event_time comes second
        (orjson.dumps(event(1, event_type="wishlist")), "event_type"),
        (orjson.dumps(event(1, event_time="yesterday")), "event_time"),
        (orjson.dumps(event(1, event_time=True)), "event_time"),
        (orjson.dumps(event(1, item_id="")), "item_id"),
    ],
)
def test_undecodable_records_become_rejections_with_a_reason(job: ModuleType, raw: Any, field: str | None) -> None:
    result = job.decode_event(raw)
    assert isinstance(result, EventRejection)
    assert result.reason
    assert result.field == field


def test_valid_records_decode_and_integer_ids_become_text(job: ModuleType) -> None:
    result = job.decode_event(orjson.dumps(event(1, session_id=42, user_id=7)))
    assert isinstance(result, dict)
    assert result["session_id"] == "42" and result["user_id"] == "7"


def test_dead_letters_keep_the_raw_bytes_the_reason_and_the_origin(job: ModuleType) -> None:
    letter = orjson.loads(job.letter_for(b"\xff\xfe", 3, 42, "clicks"))
    assert (letter["reason"], letter["code"]) == ("not valid UTF-8", "not_utf8")
    assert letter["origin"] == {"topic": "clicks", "partition": 3, "offset": 42}
    assert letter["source"] == "flink" and letter["raw_b64"]
    letter = orjson.loads(job.letter_for(orjson.dumps(event(1, item_id="")), 0, 1, "clicks"))
    assert letter["field"] == "item_id"
    # A record the SQL checks reject but the reference accepts is still kept, with an explanation.
    letter = orjson.loads(job.letter_for(orjson.dumps(event(1)), 0, 2, "clicks"))
    assert "PARSE_CLICK" in letter["reason"] and letter["raw"]


FLINK_TO_FEAST = {"STRING": "String", "BIGINT": "Int64", "DOUBLE": "Float64", "ARRAY<STRING>": "Array(String)"}


def sink_table(statements: list[str], table: str) -> tuple[dict[str, str], str, str]:
    """Columns (name: Flink type), primary key and topic of one of the job's upsert-kafka sinks."""
    head = f"CREATE TEMPORARY TABLE {table} ("
    ddl = next(s for s in statements if s.startswith(head))
    body, rest = ddl[len(head) :].split(", PRIMARY KEY (", 1)
    columns = dict(column.strip().split(" ", 1) for column in body.split(", "))
    topic = re.search(r"'topic' = '([^']+)'", rest)
    assert topic is not None
    return columns, rest.split(")", 1)[0], topic.group(1)


@pytest.mark.parametrize("kind", ["session", "user", "item"])
def test_each_sink_writes_the_features_its_feast_view_reads(job: ModuleType, tmp_path: Path, kind: str) -> None:
    """The job's sink columns against the project's Feast repo: same names, same types, same key."""
    pytest.importorskip("feast")
    from feast import FeatureView

    from lambdarec.featurestore.store import load_definitions
    from lambdarec.settings import load_settings
    from lambdarec.stream.pusher import FEEDS

    feed = FEEDS[kind]
    args = job.parse_args(["--bootstrap", "b:9092", "--state-dir", str(tmp_path)])
    columns, key, topic = sink_table(job.job_statements(args), f"{kind}_sink")
    assert topic == getattr(args, f"{kind}_topic")
    assert key == feed.key and columns[key] == "STRING"
    assert columns[feed.event_time] == "BIGINT"  # the row's Feast timestamp (epoch ms)
    definitions = load_definitions(load_settings("local", state_dir=tmp_path))
    view = next(d for d in definitions if isinstance(d, FeatureView) and d.name == feed.feature_view)
    assert {f.name: str(f.dtype) for f in view.features} == {f: FLINK_TO_FEAST[columns[f]] for f in feed.features}


def test_sessions_only_runs_the_session_and_dead_letter_inserts(job: ModuleType) -> None:
    inserts = [s for s in job.job_statements(job.parse_args([])) if s.lstrip().startswith("INSERT")]
    assert [s.split()[2] for s in inserts] == ["dlq_sink", "session_sink", "user_sink", "item_sink"]
    only_sessions = job.parse_args(["--sessions-only"])
    inserts = [s for s in job.job_statements(only_sessions) if s.lstrip().startswith("INSERT")]
    assert [s.split()[2] for s in inserts] == ["dlq_sink", "session_sink"]


def test_restore_argument_becomes_the_recovery_path(job: ModuleType, tmp_path: Path) -> None:
    """What ``--restore`` sets; that the checkpoints are exactly-once and restore a recount exactly is
    checked on the running job (tests/integration/stream/test_stream_job.py)."""
    config = job.job_configuration(job.parse_args(["--state-dir", str(tmp_path)]))
    assert "execution.state-recovery.path" not in config
    assert config["execution.checkpointing.dir"] == (tmp_path / "checkpoints").as_uri()
    restored = job.job_configuration(job.parse_args(["--restore", "/ckpt/chk-3"]))
    assert restored["execution.state-recovery.path"] == "/ckpt/chk-3"


def test_latest_checkpoint_is_the_newest_complete_one(tmp_path: Path, job: ModuleType) -> None:
    assert latest_checkpoint(tmp_path) is None
    for n, stamp in [(3, 100), (7, 200)]:
        folder = tmp_path / "jobid" / f"chk-{n}"
        folder.mkdir(parents=True)
        (folder / "_metadata").write_text("x")
        os.utime(folder, (stamp, stamp))
    (tmp_path / "jobid" / "chk-9").mkdir()  # in progress: no _metadata
    assert latest_checkpoint(tmp_path) == tmp_path / "jobid" / "chk-7"
    assert job.latest_checkpoint(tmp_path) == tmp_path / "jobid" / "chk-7"


def test_newest_snapshot_wins_whatever_the_arrival_order() -> None:
    events = [event(i) for i in range(4)]
    snapshots = [fold_session(events[: n + 1]) for n in range(4)]
    shuffled = [snapshots[2], snapshots[3], snapshots[0], snapshots[3], snapshots[1]]
    newest = newest_per_session(shuffled)
    assert newest["s"] == snapshots[3]
    assert snapshot_rank(snapshots[3]) > snapshot_rank(snapshots[2])


def test_session_frame_has_the_feature_columns_and_a_timestamp() -> None:
    row = fold_session([event(1), event(2, category="c")])
    frame = session_frame([row], "ts")
    assert list(frame.columns) == [names.SESSION_ID, *names.SESSION_FEATURES, "ts"]
    assert frame["ts"].iloc[0].value // 1_000_000 == row[names.SESSION_LAST_EVENT_MS]


def test_freshness_summary_and_prometheus_text(tmp_path: Path) -> None:
    tracker = FreshnessTracker(window=100)
    for lag in range(1, 201):
        tracker.record(1_000, 1_000 + lag)
    summary = tracker.summary()
    assert summary["updates"] == 200 and summary["lag_samples"] == 100
    assert summary["lag_p50_ms"] == pytest.approx(150, abs=1) and summary["lag_max_ms"] == 200
    assert percentile([], 0.5) is None
    tracker.write(tmp_path / "metrics.json")
    assert read_metrics(tmp_path / "metrics.json") == json.loads((tmp_path / "metrics.json").read_text())
    assert 'lambdarec_stream_freshness_ms{quantile="0.99"}' in prometheus_text(summary)
    assert (tmp_path / "metrics.prom").read_text().startswith("# HELP")


def test_job_command_restores_from_the_latest_checkpoint(tmp_path: Path) -> None:
    from lambdarec.settings import load_settings

    service = StreamJobService(load_settings("local", state_dir=tmp_path), "broker:9092", job_args=["--x", "1"])
    argv = service.command({"rest_port": 1234})
    assert argv[1].endswith("jobs/flink/speed_layer.py")
    assert argv[argv.index("--restore") + 1] == "latest"
    assert argv[argv.index("--bootstrap") + 1] == "broker:9092"
    assert argv[-2:] == ["--x", "1"]


def test_the_jobs_jvm_heap_is_capped_by_the_stream_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdarec.settings import load_settings

    monkeypatch.setenv("JVM_ARGS", "-Dkept=1")
    default = StreamJobService(load_settings("local", state_dir=tmp_path), "broker:9092").environment()
    assert default["JVM_ARGS"] == "-Dkept=1 -Xmx2g"
    monkeypatch.setenv("LAMBDAREC_STREAM__HEAP", "3g")
    bigger = StreamJobService(load_settings("local", state_dir=tmp_path), "broker:9092").environment()
    assert bigger["JVM_ARGS"].endswith("-Xmx3g")


def test_watch_reports_each_change_of_the_online_features() -> None:
    from lambdarec.stream.demo import watch_session_features

    values = [None, 1, 1, 3, 3, 5]
    calls = {"n": 0}
    changes: list[tuple[str, int]] = []

    def read(ids: list[str]) -> dict[str, dict[str, Any]]:
        value = values[min(calls["n"], len(values) - 1)]
        calls["n"] += 1
        return {sid: {names.SESSION_EVENT_COUNT: value} for sid in ids}

    seen = watch_session_features(
        read, ["s"], seconds=0.2, interval_s=0.0, on_change=lambda s, f: changes.append((s, f["session_event_count"]))
    )
    assert seen == {"s": [1, 3, 5]}
    assert changes == [("s", 1), ("s", 3), ("s", 5)]

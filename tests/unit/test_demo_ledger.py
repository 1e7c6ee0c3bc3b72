"""The demo remembers what it replayed (a rerun skips it) and keeps engine output out of its progress view."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambdarec import demo
from lambdarec.data.report import AdapterReport
from lambdarec.demo import DemoProgress, ReplayLedger, ReplayResult, dataset_fingerprint, previous_replay
from lambdarec.events.producer import PublishStats
from lambdarec.settings import load_settings


def test_the_fingerprint_follows_the_content_and_adapter_not_the_path(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("event_id,x\n1,2\n")
    copy = tmp_path / "elsewhere" / "b.csv"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    assert dataset_fingerprint(f"csv:{first}") == dataset_fingerprint(f"csv:{copy}")
    assert dataset_fingerprint(f"csv:{first}") != dataset_fingerprint(f"rees46:{first}")
    assert dataset_fingerprint(f"csv:{first}") != dataset_fingerprint(f"csv:{first}", limit=10)
    copy.write_text("event_id,x\n1,3\n")
    assert dataset_fingerprint(f"csv:{first}") != dataset_fingerprint(f"csv:{copy}")
    with pytest.raises(FileNotFoundError):
        dataset_fingerprint(f"csv:{tmp_path / 'missing.csv'}")


def test_a_folder_dataset_is_fingerprinted_by_every_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "part-1.jsonl").write_text("{}\n")
    before = dataset_fingerprint(f"otto:{tmp_path / 'd'}")
    (tmp_path / "d" / "part-2.jsonl").write_text("{}\n")
    assert dataset_fingerprint(f"otto:{tmp_path / 'd'}") != before


def _result(accepted: int) -> ReplayResult:
    stats = PublishStats(offered=accepted + 1, accepted=accepted, rejected=1, delivered=accepted, dead_lettered=1)
    return ReplayResult("synthetic:/x.parquet", AdapterReport("synthetic", "/x.parquet"), stats, 2.0)


def test_a_replay_is_skipped_only_while_the_broker_still_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings("local", state_dir=tmp_path)
    ledger = ReplayLedger(settings)
    assert previous_replay(settings, ledger, "f1") is None
    ledger.record("f1", _result(1_000))
    monkeypatch.setattr("lambdarec.events.admin.kafka_bootstrap", lambda _settings: "broker:9092")
    held = {"clicks": 1_200}
    monkeypatch.setattr("lambdarec.events.admin.topic_size", lambda _bootstrap, topic: held[topic])
    entry = previous_replay(settings, ledger, "f1")
    assert entry is not None and entry["replay"]["publish"]["accepted"] == 1_000
    assert previous_replay(settings, ledger, "another dataset") is None
    held["clicks"] = 999  # a new or emptied broker: replay again
    assert previous_replay(settings, ledger, "f1") is None
    assert ledger.malformed_sent() == 0
    ledger.record_malformed(4)
    assert ReplayLedger(settings).malformed_sent() == 4 and ReplayLedger(settings).entry("f1") is not None


def test_the_progress_view_records_each_stage() -> None:
    progress = DemoProgress(None, {"a": "first", "b": "second", "c": "third", "d": "fourth"})
    with progress:
        progress.start("a")
        progress.done("a", "ok")
        progress.skip("b", "--no-b")
        progress.start("c")
        progress.fail("c", "boom")
    stages = progress.as_dict()
    assert [stages[k]["state"] for k in "abcd"] == ["done", "skipped", "failed", "pending"]
    assert stages["a"]["seconds"] is not None and stages["b"]["seconds"] is None
    assert stages["c"]["detail"] == "boom"


def test_engine_output_goes_to_the_log_and_the_view_to_the_terminal(tmp_path: Path) -> None:
    # In a child process: the test must not redirect pytest's own descriptors.
    script = f"""
import os, subprocess, sys
from pathlib import Path
from rich.console import Console
from lambdarec.demo import engine_output_to
console = Console(file=sys.stdout, force_terminal=False)
with engine_output_to(Path({str(tmp_path / "demo.log")!r}), console):
    console.print("progress line")
    print("python noise")
    os.write(2, b"fd noise\\n")
    subprocess.run(["sh", "-c", "echo child noise >&2"], check=True)
console.print("after")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["progress", "line", "after"] and done.stderr == ""
    log = (tmp_path / "demo.log").read_text()
    assert "python noise" in log and "fd noise" in log and "child noise" in log and "progress" not in log


def test_stages_are_listed_in_run_order() -> None:
    assert list(demo.STAGES)[0] == "engines" and list(demo.STAGES)[-1] == "storefront"


def test_a_second_demo_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    from lambdarec.runtime.errors import RuntimeServiceError

    lock = tmp_path / "demo" / "demo.lock"
    with demo.one_demo_at_a_time(lock):
        # flock is per open file: a second open of the same lock in this process conflicts like another demo.
        with pytest.raises(RuntimeServiceError, match=r"another `lambdarec demo` \(pid \d+\) is running"):
            with demo.one_demo_at_a_time(lock):
                pass
    with demo.one_demo_at_a_time(lock):  # released after the first run ends
        pass


def test_ctrl_c_stops_every_service_the_demo_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[str] = []

    class Interrupted:
        """A supervisor whose engines are being started when the user presses Ctrl-C."""

        def __init__(self, _settings: object, services: object = None) -> None:
            self.kind = "engines" if services is None else "stream"

        def up(self, **_kw: object) -> None:
            raise KeyboardInterrupt

        def down(self) -> list[str]:
            stopped.append(self.kind)
            return [self.kind]

    monkeypatch.setattr("lambdarec.runtime.supervisor.Supervisor", Interrupted)
    monkeypatch.setattr("lambdarec.stream.commands.stream_services", lambda *_a, **_k: [])
    monkeypatch.setattr("lambdarec.storefront.commands.stop_storefront", lambda _s: stopped.append("storefront") or [])
    monkeypatch.setattr("lambdarec.serving.commands.stop_recommender", lambda _s: stopped.append("recommender") or [])
    settings = load_settings("local", state_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(settings, keep_running=True)
    assert stopped == ["storefront", "recommender", "stream", "engines"]

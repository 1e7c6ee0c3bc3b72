"""The main job on embedded defaults, as `make demo` runs it.

Stages, each shown on one line of a progress view (engine output goes to
``<state>/demo/demo.log``, not the terminal): the engines; the speed layer; a dataset (a seeded
synthetic shop by default) replayed into Kafka in event-time order, unless this state folder
already replayed the same dataset into the broker (see :class:`ReplayLedger`); malformed events
shown landing on the dead-letter topic; the batch layer into Feast; the models trained through the
feature store, registered and indexed; live shoppers' session features changing online; the
recommender (when the serving package can start it) and the storefront page. It ends with the URLs
to open and writes ``<state>/demo/summary.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from lambdarec.data.report import AdapterReport
from lambdarec.events.producer import PublishStats
from lambdarec.replay import ReplaySpeed
from lambdarec.settings import Settings

SYNTHETIC_SEED = 7

# Deliberately malformed events the demo sends, so the dead-letter path is visible.
MALFORMED_EXAMPLES: list[Any] = [
    {"event_id": "bad-1", "event_time": "yesterday", "session_id": "s", "item_id": "i", "event_type": "view"},
    {"event_id": "bad-2", "event_time": 1_700_000_000_000, "session_id": "s", "item_id": "i", "event_type": "click"},
    {"event_id": "bad-3", "event_time": 1_700_000_000_000, "session_id": "s", "event_type": "view"},
    b"\x00\x01 this is not JSON",
]


@dataclass
class ReplayResult:
    """What one replay did: the dataset read, the publishing, and how long it took."""

    dataset: str
    report: AdapterReport
    stats: PublishStats
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Publishing rate over the whole replay (read + sort + publish)."""
        return self.stats.offered / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the summary's replay fields)."""
        return {
            "dataset": self.dataset,
            "adapter_report": self.report.to_dict(),
            "publish": self.stats.as_dict(),
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events_per_s),
        }

    def render(self) -> Table:
        """A table of the counts: read / dropped by the adapter, sent / accepted / rejected."""
        table = Table(title=f"replay of {self.dataset}", show_header=False)
        table.add_column("what")
        table.add_column("count", justify="right")
        table.add_row("rows read from the dataset", f"{self.report.rows_read:,}")
        for reason, count in self.report.dropped.most_common():
            table.add_row(f"  not an event: {reason}", f"{count:,}")
        table.add_row("events sent", f"{self.stats.offered:,}")
        table.add_row("  accepted → clicks", f"[green]{self.stats.accepted:,}[/]")
        table.add_row("  rejected → clicks.dlq", f"[yellow]{self.stats.rejected:,}[/]")
        for reason, count in self.stats.reasons.most_common(5):
            table.add_row(f"    {reason}", f"{count:,}")
        table.add_row("acknowledged by the broker", f"{self.stats.delivered + self.stats.dead_lettered:,}")
        if self.stats.failed:
            table.add_row("[red]delivery failures[/]", f"[red]{self.stats.failed:,}[/]")
        table.add_row("wall time", f"{self.seconds:.1f} s ({self.events_per_s:,.0f} events/s)")
        return table


def replay_dataset(
    settings: Settings,
    spec: str,
    *,
    speed: ReplaySpeed,
    limit: int | None = None,
    topic: str | None = None,
    console: Console | None = None,
    on_progress: Callable[[PublishStats], None] | None = None,
) -> ReplayResult:
    """Replay one dataset spec into Kafka with a progress bar.

    Args:
        settings: Where the broker is.
        spec: ``<adapter>:<path>``.
        speed: Real-time factor or as fast as possible.
        limit: Stop after this many events.
        topic: Target topic instead of ``clicks`` (its DLQ is ``<topic>.dlq``).
        console: Where the progress bar goes (None: no progress output).
        on_progress: Called with the running counts as the replay goes (besides the bar).

    Returns:
        The adapter's report, the publishing stats and the wall time.
    """
    from lambdarec.data.ordering import iter_events_by_time
    from lambdarec.data.registry import open_dataset
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.events.producer import EventPublisher
    from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC
    from lambdarec.replay import replay_events

    adapter = open_dataset(spec, earliest_ms=settings.earliest_event_ms)
    publisher = EventPublisher(
        kafka_bootstrap(settings),
        topic=topic or CLICKS_TOPIC,
        dlq_topic=f"{topic}.dlq" if topic else CLICKS_DLQ_TOPIC,
        max_event_bytes=settings.kafka.max_event_bytes,
        max_future_ms=settings.max_clock_skew_s * 1000,
        earliest_ms=settings.earliest_event_ms,
    )
    started = time.monotonic()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
    )
    with progress:
        task = progress.add_task(f"replaying {spec} ({speed.describe()})", total=limit, detail="reading + sorting")

        def show(stats: PublishStats) -> None:
            rate = stats.offered / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=stats.offered, detail=f"rejected {stats.rejected:,} · {rate:,.0f} ev/s")
            if on_progress is not None:
                on_progress(stats)

        stats = replay_events(iter_events_by_time(adapter), publisher, speed=speed, limit=limit, on_progress=show)
        progress.update(task, total=stats.offered, completed=stats.offered)
    return ReplayResult(spec, adapter.report, stats, time.monotonic() - started)


@dataclass
class DemoSummary:
    """What the demo did, also written to ``<state_dir>/demo/summary.json``.

    Attributes:
        replay: The replay's counts (:meth:`ReplayResult.to_dict`): this run's, or the run that
            replayed the same dataset before when this one skipped it.
        replay_skipped: Why this run did not replay the dataset (None: it did).
        malformed_sent: Malformed examples sent to the dead-letter topic in this state folder.
        topic_sizes: Messages the broker holds per topic at the end.
        urls: What to open: storefront, recommender API docs, MLflow, data docs (when present).
    """

    replay: dict[str, Any]
    malformed_sent: int
    topic_sizes: dict[str, int]
    replay_skipped: str | None = None
    services: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    recommender: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every event is accounted for by the broker and no stage failed."""
        failed_stage = any(stage.get("state") == "failed" for stage in self.stages.values())
        return int(self.replay.get("publish", {}).get("failed", 0)) == 0 and not failed_stage

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.replay,
            "replay_skipped": self.replay_skipped,
            "malformed_examples_sent": self.malformed_sent,
            "topic_sizes": self.topic_sizes,
            "services": self.services,
            "models": self.models,
            "batch": self.batch,
            "stream": self.stream,
            "recommender": self.recommender,
            "stages": self.stages,
            "urls": self.urls,
            "ok": self.ok,
        }


# -- remembering what was replayed -----------------------------------------------------------------
def dataset_fingerprint(spec: str, limit: int | None = None) -> str:
    """A digest of a dataset spec's adapter and file contents (and the replay limit).

    Two specs that read the same bytes with the same adapter have the same fingerprint, wherever
    the file lies; editing the file changes it.

    Raises:
        FileNotFoundError: The spec's path does not exist.
    """
    import hashlib

    from lambdarec.data.registry import parse_spec

    adapter, path = parse_spec(spec)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    digest = hashlib.sha256(f"{adapter}\0{limit}\0".encode())
    if path.is_dir():
        files = [(str(p.relative_to(path)), p) for p in sorted(path.rglob("*")) if p.is_file()]
    else:
        # A csv file's sidecar column mapping changes what its rows mean.
        sidecar = path.with_name(path.name + ".mapping.json")
        files = [("", path), *([("mapping", sidecar)] if sidecar.is_file() else [])]
    for name, file in files:
        digest.update(name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


class ReplayLedger:
    """What the demo already published in this state folder (``<state>/demo/replayed.json``).

    One entry per dataset fingerprint (with the replay's counts), plus whether the malformed
    examples were sent. A rerun of the demo reads it to skip publishing the same events again.
    """

    MALFORMED_KEY = "malformed_examples"

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir.resolve() / "demo" / "replayed.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)

    def entry(self, fingerprint: str) -> dict[str, Any] | None:
        """The recorded replay of a dataset, if any."""
        entry = self._read().get("datasets", {}).get(fingerprint)
        return entry if isinstance(entry, dict) else None

    def record(self, fingerprint: str, result: ReplayResult) -> None:
        """Remember a replay (called once the broker acknowledged it)."""
        data = self._read()
        data.setdefault("datasets", {})[fingerprint] = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "replay": result.to_dict(),
        }
        self._write(data)

    def malformed_sent(self) -> int:
        """How many malformed examples were sent in this state folder so far."""
        return int(self._read().get(self.MALFORMED_KEY, 0))

    def record_malformed(self, count: int) -> None:
        """Remember that the malformed examples were sent."""
        data = self._read()
        data[self.MALFORMED_KEY] = count
        self._write(data)

    def forget(self) -> None:
        """Forget everything (the broker's topics were emptied or replaced)."""
        self.path.unlink(missing_ok=True)


def previous_replay(settings: Settings, ledger: ReplayLedger, fingerprint: str) -> dict[str, Any] | None:
    """The earlier replay of the same dataset when the broker still holds its events, else None.

    The ledger lives in the state folder but the events live in the broker: if ``clicks`` holds
    fewer messages than that replay accepted (a new or emptied broker), it is replayed again.
    """
    from lambdarec.events.admin import kafka_bootstrap, topic_size
    from lambdarec.names import CLICKS_TOPIC

    entry = ledger.entry(fingerprint)
    if entry is None:
        return None
    accepted = int(entry["replay"]["publish"]["accepted"])
    if topic_size(kafka_bootstrap(settings), CLICKS_TOPIC) < accepted:
        return None
    return entry


def synthetic_dataset(settings: Settings, n_events: int, console: Console | None = None) -> str:
    """Generate (once, then reuse) a seeded synthetic shop and return its dataset spec."""
    from lambdarec.data.generator import generate_events

    folder = settings.state_dir.resolve() / "datasets"
    path = folder / f"synthetic-{n_events}-seed{SYNTHETIC_SEED}.parquet"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.parquet")
        n_items = max(1_000, n_events // 20)
        generate_events(
            n_events=n_events,
            n_items=n_items,
            n_users=max(500, n_events // 50),
            seed=SYNTHETIC_SEED,
            out_path=tmp,
            progress=console is not None,
        )
        tmp.rename(path)
    return f"synthetic:{path}"


STAGES: dict[str, str] = {
    "engines": "engines: Kafka (KRaft), Milvus, MLflow",
    "speed": "speed layer: Flink job + pusher into the online store",
    "dataset": "dataset",
    "replay": "replay into Kafka",
    "dlq": "bad input → dead-letter topic",
    "batch": "batch layer: bronze → silver → gold → Feast",
    "models": "models: train through the store, register, index",
    "live": "live shoppers: session features online",
    "recommender": "recommender: /recommend",
    "storefront": "storefront page",
}
"""The demo's stages in order, with the line the progress view shows for each."""


@dataclass
class _Stage:
    label: str
    state: str = "pending"
    detail: str = ""
    seconds: float | None = None


class DemoProgress:
    """One view of the demo's stages: each with its state, time and a short result.

    On a terminal it redraws in place; elsewhere (CI, pipes) it prints the finished table once.
    Engine output never enters it: :func:`engine_output_to` sends that to the demo's log.
    """

    ICONS: ClassVar[dict[str, str]] = {
        "pending": "[dim]·[/]",
        "running": "[yellow]…[/]",
        "done": "[green]✓[/]",
        "skipped": "[dim]–[/]",
        "failed": "[red]✗[/]",
    }

    def __init__(self, console: Console | None, stages: dict[str, str]) -> None:
        self.console = console
        self.stages = {key: _Stage(label) for key, label in stages.items()}
        self._started: dict[str, float] = {}
        self._live: Any = None

    def render(self) -> Table:
        """The table of stages as it stands."""
        table = Table(title="lambdarec demo", show_header=True, expand=False)
        table.add_column("", width=1)
        table.add_column("stage", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("result", overflow="fold")
        for key, stage in self.stages.items():
            seconds = stage.seconds
            if stage.state == "running":
                seconds = time.monotonic() - self._started[key]
            shown = f"{seconds:.0f} s" if seconds is not None else ""
            table.add_row(self.ICONS[stage.state], stage.label, shown, stage.detail)
        return table

    def __enter__(self) -> DemoProgress:
        # A terminal gets the table redrawn in place; a log (CI, a pipe) one line per stage change.
        if self.console is not None and self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def __rich__(self) -> Table:
        return self.render()

    def start(self, key: str, detail: str = "") -> None:
        """Mark a stage running."""
        self._started[key] = time.monotonic()
        self.stages[key].state = "running"
        self.stages[key].detail = detail
        self._log(key)

    def note(self, key: str, detail: str) -> None:
        """Update a stage's result line."""
        self.stages[key].detail = detail

    def done(self, key: str, detail: str | None = None) -> None:
        """Mark a stage finished."""
        self._finish(key, "done", detail)

    def skip(self, key: str, why: str) -> None:
        """Mark a stage skipped, saying why."""
        self._finish(key, "skipped", why)

    def fail(self, key: str, why: str) -> None:
        """Mark a stage failed, saying why."""
        self._finish(key, "failed", why)

    def _finish(self, key: str, state: str, detail: str | None) -> None:
        stage = self.stages[key]
        started = self._started.get(key)
        stage.state = state
        stage.seconds = time.monotonic() - started if started is not None else None
        if detail is not None:
            stage.detail = detail
        self._log(key)

    def _log(self, key: str) -> None:
        if self.console is None or self._live is not None:
            return
        stage = self.stages[key]
        seconds = f" ({stage.seconds:.0f} s)" if stage.seconds is not None else ""
        detail = f": {stage.detail}" if stage.detail else ""
        self.console.print(f"{self.ICONS[stage.state]} {stage.label}{seconds}{detail}", highlight=False, soft_wrap=True)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Each stage's state, seconds and result (for the summary)."""
        return {
            key: {
                "state": stage.state,
                "seconds": round(stage.seconds, 1) if stage.seconds is not None else None,
                "detail": stage.detail,
            }
            for key, stage in self.stages.items()
        }


@contextmanager
def one_demo_at_a_time(lock_path: Path) -> Iterator[None]:
    """Hold the state folder's demo lock for the run; refuse at once if another demo holds it.

    Raises:
        RuntimeServiceError: Another ``lambdarec demo`` runs on this state folder (its pid named).
    """
    import fcntl
    import os

    from lambdarec.runtime.errors import RuntimeServiceError

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            # The kernel drops the lock when the process dies, so a killed demo never blocks the next.
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise RuntimeServiceError(
                f"another `lambdarec demo` (pid {holder}) is running on {lock_path.parent.parent}; "
                "wait for it, or stop it (Ctrl-C) first"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def engine_output_to(log_path: Path, console: Console | None) -> Iterator[None]:
    """Send everything written to this process's stdout and stderr (file descriptors 1 and 2) to a log.

    Spark's JVM, Feast, PyTorch and the client libraries write to the inherited descriptors, not
    through Python: only redirecting the descriptors keeps them out of the progress view. The
    console keeps writing to where descriptor 1 or 2 pointed before (a duplicate of it).

    Args:
        log_path: The demo's log (appended).
        console: The console of the progress view; None leaves the descriptors alone.
    """
    if console is None:
        yield
        return
    import os
    import sys

    target_fd = 2 if console.stderr else 1
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[target_fd]), "w", buffering=1, encoding="utf-8", errors="replace")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    previous_file = console.file
    sys.stdout.flush()
    sys.stderr.flush()
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} lambdarec demo\n".encode())
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        console.file = terminal
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            console.file = previous_file
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()


def _data_docs(settings: Settings) -> str | None:
    """The data-quality report's index page, when the quality gates wrote one in this state folder."""
    for folder in ("quality", "gx", "data_docs"):
        root = settings.state_dir.resolve() / folder
        if root.is_dir():
            # The site's front page is the shallowest index.html (GX: quality/gx/uncommitted/data_docs/<site>/).
            pages = sorted(root.rglob("index.html"), key=lambda page: (len(page.parts), str(page)))
            if pages:
                return pages[0].as_uri()
    return None


def start_recommender(settings: Settings) -> dict[str, str]:
    """Start the recommender under the supervisor (no-op when it runs); its URLs (``http``, ``docs``, ...)."""
    from lambdarec.serving.commands import start_recommender as start

    return start(settings)


def run_demo(
    settings: Settings,
    *,
    dataset: str | None = None,
    synthetic_events: int = 200_000,
    speed: ReplaySpeed | None = None,
    console: Console | None = None,
    keep_running: bool = True,
    train_models: bool = True,
    train_budget_s: float = 120.0,
    max_test: int = 1_000,
    run_batch: bool = True,
    run_stream: bool = True,
    storefront: bool = True,
    replay_again: bool = False,
) -> DemoSummary:
    """Engines, speed layer, a replayed dataset, batch layer, models, recommender, storefront: a summary.

    Args:
        settings: The environment (local by default: embedded engines).
        dataset: ``<adapter>:<path>`` to replay; None generates a synthetic shop.
        synthetic_events: Size of the synthetic shop.
        speed: Replay speed; None means as fast as possible.
        console: Where the progress view and the closing URLs go (None: silent). While it runs,
            this process's stdout and stderr go to ``<state>/demo/demo.log``.
        keep_running: Leave the services up for `lambdarec services status` and further work.
        train_models: Train, evaluate and register both models and build the item index.
        train_budget_s: Training-time budget of the models stage.
        max_test: Test examples the models stage evaluates.
        run_batch: Run the batch layer on the replayed events (Kafka → bronze → silver → gold →
            Feast offline store → materialize to the online store).
        run_stream: Run the speed layer (Flink job + pusher into the Feast online store) while
            the dataset is replayed, then publish a few live sessions and show their online
            features changing as their events arrive.
        storefront: Start the storefront page (and the recommender, where the serving package
            provides ``lambdarec.serving.runtime.start_recommender``).
        replay_again: Replay the dataset even if this state folder already replayed it into the
            broker (by default a rerun skips it, so ``clicks`` never holds the dataset twice).

    Returns:
        The summary (also written to ``<state_dir>/demo/summary.json``).
    """
    state = settings.state_dir.resolve() / "demo"
    progress = DemoProgress(console, STAGES)
    with one_demo_at_a_time(state / "demo.lock"), engine_output_to(state / "demo.log", console), progress:
        summary = _run_stages(
            settings,
            progress,
            dataset=dataset,
            synthetic_events=synthetic_events,
            speed=speed,
            keep_running=keep_running,
            train_models=train_models,
            train_budget_s=train_budget_s,
            max_test=max_test,
            run_batch=run_batch,
            run_stream=run_stream,
            storefront=storefront,
            replay_again=replay_again,
        )
    path = demo_summary_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_dict(), indent=2))
    if console is not None:
        print_closing(console, summary, path, state / "demo.log", keep_running)
    return summary


def _run_stages(
    settings: Settings,
    progress: DemoProgress,
    *,
    dataset: str | None,
    synthetic_events: int,
    speed: ReplaySpeed | None,
    keep_running: bool,
    train_models: bool,
    train_budget_s: float,
    max_test: int,
    run_batch: bool,
    run_stream: bool,
    storefront: bool,
    replay_again: bool,
) -> DemoSummary:
    from lambdarec.events.admin import kafka_bootstrap, topic_size
    from lambdarec.events.producer import EventPublisher
    from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.runtime.supervisor import Supervisor

    supervisor = Supervisor(settings)
    stage = "engines"
    interrupted = False
    progress.start(stage)
    try:
        supervisor.up(on_event=lambda name, message: progress.note("engines", f"{name}: {message}"))
        progress.done(stage, ", ".join(f"{s.name} {s.endpoint}" for s in supervisor.status()))
        bootstrap = kafka_bootstrap(settings)

        stream: dict[str, Any] = {}
        stage = "speed"
        if run_stream:
            from lambdarec.stream.demo import start_speed_layer

            progress.start(stage, "applying the Feast definitions, starting the Flink job (~30 s)")
            started = start_speed_layer(settings, bootstrap)
            progress.done(stage, ", ".join(f"{s.name} {s.state}" for s in started))
        else:
            progress.skip(stage, "--no-stream")

        stage = "dataset"
        progress.start(stage, "generating a seeded synthetic shop" if dataset is None else "")
        spec = dataset or synthetic_dataset(settings, synthetic_events, None)
        ledger = ReplayLedger(settings)
        fingerprint = dataset_fingerprint(spec)
        progress.done(stage, f"{spec} (fingerprint {fingerprint[:12]})")

        stage = "replay"
        progress.start(stage)
        earlier = None if replay_again else previous_replay(settings, ledger, fingerprint)
        skipped: str | None = None
        if earlier is not None:
            replay = earlier["replay"]
            skipped = (
                f"already replayed into {CLICKS_TOPIC} at {earlier['at']} "
                f"({replay['publish']['accepted']:,} events) and the broker still holds them; "
                "not published again (--replay-again to force)"
            )
            progress.skip(stage, skipped)
        else:
            started_at = time.monotonic()

            def on_progress(stats: PublishStats) -> None:
                rate = stats.offered / max(time.monotonic() - started_at, 1e-9)
                progress.note("replay", f"{stats.offered:,} sent · {stats.rejected:,} rejected · {rate:,.0f} ev/s")

            result = replay_dataset(settings, spec, speed=speed or ReplaySpeed(None), on_progress=on_progress)
            replay = result.to_dict()
            if result.stats.failed == 0:
                ledger.record(fingerprint, result)
            stats = result.stats
            progress.done(
                stage,
                f"{stats.accepted:,} → {CLICKS_TOPIC}, {stats.rejected:,} → {CLICKS_DLQ_TOPIC}, "
                f"{result.report.rows_dropped:,} rows not events · {result.events_per_s:,.0f} ev/s",
            )

        stage = "dlq"
        progress.start(stage)
        malformed = ledger.malformed_sent()
        if malformed:
            progress.skip(stage, f"the {malformed} malformed examples were sent by an earlier run")
        else:
            reasons = []
            with EventPublisher(bootstrap) as publisher:
                for raw in MALFORMED_EXAMPLES:
                    rejection = publisher.publish(raw, origin={"demo": "malformed example"})
                    reasons.append(rejection.describe() if rejection else "accepted")
            malformed = len(MALFORMED_EXAMPLES)
            ledger.record_malformed(malformed)
            shown = "; ".join(reasons)
            progress.done(stage, f"{malformed} malformed examples → {CLICKS_DLQ_TOPIC} ({shown[:80]}…)")

        batch: dict[str, Any] = {}
        stage = "batch"
        if run_batch:
            from lambdarec.batch.pipeline import run_batch_stage

            progress.start(stage, "Spark: Kafka → bronze → silver → gold for every date, then Feast")
            batch = run_batch_stage(settings, None)
            progress.done(stage, _batch_line(batch))
        else:
            progress.skip(stage, "--no-batch")

        models: dict[str, Any] = {}
        stage = "models"
        if train_models:
            from lambdarec.models.commands import run_models_stage

            progress.start(stage, f"training through the feature store (budget {train_budget_s:.0f} s)")
            # The models learn from the feature store: silver events as targets, every input
            # read point in time through the feature services serving reads online.
            models = run_models_stage(settings, None, label=spec, train_budget_s=train_budget_s, max_test=max_test)
            progress.note(stage, "the weekly retrain's gates: GX, drift, champion vs challenger (on the MLflow run)")
            models["gates"] = _gates(settings, models)
            progress.done(stage, _models_line(models))
        else:
            progress.skip(stage, "--no-models")

        stage = "live"
        if run_stream:
            from lambdarec.stream.commands import stream_report
            from lambdarec.stream.demo import run_live_sessions

            # Last, so the batch layer and the models saw the replayed dataset alone (these
            # shoppers are "now"; the dataset may be historical).
            progress.start(stage, "3 shoppers publishing in real time for ~12 s")
            live = run_live_sessions(settings, bootstrap, console=None)
            stream["live_sessions"] = live
            stream["live_events_published"] = sum(session["published"] for session in live.values())
            stream["report"] = stream_report(settings)
            lags = [lag for session in live.values() for lag in session.get("seconds_old_when_seen", [])]
            progress.done(
                stage,
                f"{stream['live_events_published']} events; online counts seen: "
                + ", ".join(str(session["event_counts_seen"]) for session in live.values())
                + (f"; newest event seen online after ≤ {max(lags):.2f} s" if lags else ""),
            )
        else:
            progress.skip(stage, "--no-stream")

        recommender: dict[str, Any] = {}
        urls: dict[str, str] = {}
        stage = "recommender"
        if storefront and train_models:
            progress.start(stage, "loading the champion bundle, the index and the feature store")
            try:
                served = start_recommender(settings)
            except RuntimeServiceError as err:
                # The storefront still starts (it says no recommender answers); the demo fails at the end.
                recommender = {"error": str(err)}
                progress.fail(stage, f"{str(err).splitlines()[0][:200]} (see `lambdarec services logs recommender`)")
            else:
                recommender = dict(served)
                urls["recommender API"] = served.get("docs", "")
                progress.done(stage, f"HTTP {served.get('http')} · gRPC {served.get('grpc')}")
        else:
            progress.skip(stage, "--no-storefront" if not storefront else "no models (--no-models)")

        stage = "storefront"
        if storefront:
            from lambdarec.storefront.commands import start_storefront

            progress.start(stage)
            urls["storefront"] = start_storefront(settings)
            progress.done(stage, urls["storefront"])
        else:
            progress.skip(stage, "--no-storefront")

        mlflow = supervisor.endpoint("mlflow")
        if mlflow:
            urls["MLflow"] = mlflow
        docs = _data_docs(settings)
        if docs:
            urls["data docs"] = docs
        gates = models.get("gates") or {}
        if gates.get("mlflow_run_url"):
            urls["gates on the MLflow run"] = gates["mlflow_run_url"]
        if gates.get("data_docs"):
            urls["GX result of the gated day"] = gates["data_docs"]

        sizes = {topic: topic_size(bootstrap, topic) for topic in (CLICKS_TOPIC, CLICKS_DLQ_TOPIC)}
        return DemoSummary(
            replay=replay,
            replay_skipped=skipped,
            malformed_sent=malformed,
            topic_sizes=sizes,
            services=_service_lines(settings, supervisor),
            models=models,
            batch=batch,
            stream=stream,
            recommender=recommender,
            stages=progress.as_dict(),
            urls=urls,
        )
    except KeyboardInterrupt:
        interrupted = True
        progress.fail(stage, "interrupted (Ctrl-C): stopping every service; a rerun picks up from here")
        raise
    except BaseException as err:
        progress.fail(stage, f"{type(err).__name__}: {err}"[:300])
        raise
    finally:
        if interrupted or not keep_running:
            stop_everything(settings)


def stop_everything(settings: Settings) -> list[str]:
    """Stop every service the demo starts, the users of Kafka first; a second Ctrl-C does not cut it short.

    Returns:
        The names of the services that were running.
    """
    import signal
    import threading

    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.serving.commands import stop_recommender
    from lambdarec.storefront.commands import stop_storefront
    from lambdarec.stream.commands import stream_services

    shield = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if shield else None
    try:
        stopped = stop_storefront(settings) + stop_recommender(settings)
        stopped += Supervisor(settings, stream_services(settings, "-")).down()
        return stopped + Supervisor(settings).down()
    finally:
        if shield:
            signal.signal(signal.SIGINT, previous)


def _service_lines(settings: Settings, supervisor: Any) -> list[dict[str, Any]]:
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.serving.service import RecommenderService
    from lambdarec.storefront.service import StorefrontService

    extra = Supervisor(settings, [RecommenderService(settings), StorefrontService(settings)]).status()
    # The engines always; the recommender and the storefront when this demo started them.
    return [
        {"name": s.name, "state": s.state, "endpoint": s.endpoint, "pid": s.pid}
        for s in [*supervisor.status(), *(s for s in extra if s.state != "stopped")]
    ]


def _batch_line(batch: dict[str, Any]) -> str:
    stages = batch.get("stages_s", {})
    rows = sum(batch.get("materialize", {}).get("rows", {}).values()) if batch.get("materialize") else 0
    timing = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stages.items())
    return (
        f"{batch.get('bronze', {}).get('records', 0):,} records in bronze; {timing}; {rows:,} rows materialized online"
    )


def _gates(settings: Settings, models: dict[str, Any]) -> dict[str, Any]:
    """The weekly retrain's promotion gates over the models just trained, recorded on their MLflow run.

    The same functions ``weekly_retrain`` runs (:func:`lambdarec.quality.steps.gate_trained_models`);
    a gate that cannot run is reported in the summary, it does not stop the demo.
    """
    from lambdarec.quality.steps import gate_trained_models

    try:
        return gate_trained_models(models, settings)
    except Exception as err:  # noqa: BLE001 - the demo goes on to serve; the summary says what failed
        return {"error": f"{type(err).__name__}: {err}"[:300]}


def _models_line(models: dict[str, Any]) -> str:
    index = models.get("index", {})
    line = f"two-tower v{models.get('two_tower_version')}, DeepFM v{models.get('deepfm_version')}"
    if models.get("champion"):
        line += " (champion)"
    if index:
        line += f"; index {index.get('rows', 0):,} items, alias {index.get('alias')}"
    gates = models.get("gates") or {}
    if "error" in gates:
        line += f"; gates not run: {gates['error'][:120]}"
    elif gates:
        line += "; gates " + ("passed" if gates.get("promote") else f"blocked by {', '.join(gates['blocked_by'])}")
    return line


def print_closing(console: Console, summary: DemoSummary, path: Path, log: Path, keep_running: bool) -> None:
    """The closing lines: topic sizes, the URLs to open, where the summary and the engine log are."""
    console.print()
    table = Table(show_header=True)
    table.add_column("topic")
    table.add_column("messages held by the broker", justify="right")
    for topic, size in summary.topic_sizes.items():
        table.add_row(topic, f"{size:,}")
    console.print(table)
    if summary.replay_skipped:
        console.print(f"[yellow]replay skipped:[/] {summary.replay_skipped}")
    if summary.urls and keep_running:
        links = Table(show_header=False, box=None)
        for name, url in summary.urls.items():
            links.add_row(f"[bold]{name}[/]", url)
        console.print(Panel(links, title="open"))
    console.print(f"summary: {path}\nengine and library output: {log}")
    if keep_running:
        console.print("services are still up: `lambdarec services status`, `lambdarec services down` when done")


def demo_summary_path(settings: Settings) -> Path:
    """Where :func:`run_demo` writes its summary."""
    return settings.state_dir.resolve() / "demo" / "summary.json"

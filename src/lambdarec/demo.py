"""The main job on embedded defaults, as `make demo` runs it.

For now: start the engines, replay a dataset into Kafka in event-time order, show that
malformed events land in the dead-letter topic with their reason, and print what the
broker holds. Later layers (batch, speed, models, serving) extend :func:`run_demo`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
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
) -> ReplayResult:
    """Replay one dataset spec into Kafka with a progress bar.

    Args:
        settings: Where the broker is.
        spec: ``<adapter>:<path>``.
        speed: Real-time factor or as fast as possible.
        limit: Stop after this many events.
        topic: Target topic instead of ``clicks`` (its DLQ is ``<topic>.dlq``).
        console: Where the progress bar goes (None: no progress output).

    Returns:
        The adapter's report, the publishing stats and the wall time.
    """
    from lambdarec.data.ordering import iter_events_by_time
    from lambdarec.data.registry import open_dataset
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.events.producer import EventPublisher
    from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC
    from lambdarec.replay import replay_events

    adapter = open_dataset(spec)
    publisher = EventPublisher(
        kafka_bootstrap(settings),
        topic=topic or CLICKS_TOPIC,
        dlq_topic=f"{topic}.dlq" if topic else CLICKS_DLQ_TOPIC,
        max_event_bytes=settings.kafka.max_event_bytes,
        max_future_ms=settings.max_clock_skew_s * 1000,
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

        def on_progress(stats: PublishStats) -> None:
            rate = stats.offered / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=stats.offered, detail=f"rejected {stats.rejected:,} · {rate:,.0f} ev/s")

        stats = replay_events(
            iter_events_by_time(adapter), publisher, speed=speed, limit=limit, on_progress=on_progress
        )
        progress.update(task, total=stats.offered, completed=stats.offered)
    return ReplayResult(spec, adapter.report, stats, time.monotonic() - started)


@dataclass
class DemoSummary:
    """What the demo did, also written to ``<state_dir>/demo/summary.json``."""

    replay: ReplayResult
    malformed_sent: int
    topic_sizes: dict[str, int]
    services: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every event is accounted for by the broker."""
        return self.replay.stats.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dataset": self.replay.dataset,
            "adapter_report": self.replay.report.to_dict(),
            "publish": self.replay.stats.as_dict(),
            "seconds": round(self.replay.seconds, 2),
            "events_per_s": round(self.replay.events_per_s),
            "malformed_examples_sent": self.malformed_sent,
            "topic_sizes": self.topic_sizes,
            "services": self.services,
            "models": self.models,
            "batch": self.batch,
            "stream": self.stream,
        }


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
    run_batch: bool = True,
    run_stream: bool = True,
) -> DemoSummary:
    """Start the engines, replay a dataset, show the dead-letter path, summarize.

    Args:
        settings: The environment (local by default: embedded engines).
        dataset: ``<adapter>:<path>`` to replay; None generates a synthetic shop.
        synthetic_events: Size of the synthetic shop.
        speed: Replay speed; None means as fast as possible.
        console: Where progress and the summary are printed (None: silent).
        keep_running: Leave the services up for `lambdarec services status` and further work.
        train_models: Train, evaluate and register both models and build the item index.
        train_budget_s: Training-time budget of the models stage.
        run_batch: Run the batch layer on the replayed events (Kafka → bronze → silver → gold →
            Feast offline store → materialize to the online store).
        run_stream: Run the speed layer (Flink job + pusher into the Feast online store) while
            the dataset is replayed, then publish a few live sessions and show their online
            features changing as their events arrive.

    Returns:
        The summary (also written to ``<state_dir>/demo/summary.json``).
    """
    from lambdarec.events.admin import kafka_bootstrap, topic_size
    from lambdarec.events.producer import EventPublisher
    from lambdarec.names import CLICKS_DLQ_TOPIC, CLICKS_TOPIC
    from lambdarec.runtime.supervisor import Supervisor

    out = console or Console(quiet=True)
    supervisor = Supervisor(settings)
    out.rule("[bold]1. engines")
    with out.status("starting Kafka (KRaft), Milvus and MLflow...") as spinner:
        supervisor.up(on_event=lambda name, message: spinner.update(f"{name}: {message}"))
    try:
        stream: dict[str, Any] = {}
        if run_stream:
            from lambdarec.events.admin import kafka_bootstrap as bootstrap_of
            from lambdarec.stream.demo import start_speed_layer

            out.rule("[bold]1b. speed layer: Flink job + pusher into the Feast online store")
            with out.status("applying the Feast definitions, starting the Flink job (~30 s)..."):
                started = start_speed_layer(settings, bootstrap_of(settings))
            for status in started:
                out.print(f"  {status.name}: {status.state} {status.endpoint or ''}")
        out.rule("[bold]2. dataset")
        spec = dataset or synthetic_dataset(settings, synthetic_events, console)
        out.print(f"replaying [bold]{spec}[/]")
        out.rule("[bold]3. replay into Kafka")
        result = replay_dataset(settings, spec, speed=speed or ReplaySpeed(None), console=console)
        out.print(result.render())
        if result.report.rows_dropped or result.report.adjusted:
            out.print(Panel(result.report.summary(), title="what the adapter dropped or changed, and why"))

        out.rule("[bold]4. bad input goes to the dead-letter topic")
        bootstrap = kafka_bootstrap(settings)
        with EventPublisher(bootstrap) as publisher:
            for raw in MALFORMED_EXAMPLES:
                rejection = publisher.publish(raw, origin={"demo": "malformed example"})
                verdict = rejection.describe() if rejection else "accepted"
                out.print(f"  {raw!r:.70} → [yellow]{verdict}[/]")

        batch: dict[str, Any] = {}
        if run_batch:
            from lambdarec.batch.pipeline import run_batch_stage

            out.rule("[bold]5a. batch layer: bronze → silver → gold → Feast")
            batch = run_batch_stage(settings, console)

        models: dict[str, Any] = {}
        if train_models:
            from lambdarec.models.commands import run_models_stage

            out.rule("[bold]5. models: train, evaluate, register, build the item index")
            # The models learn from the feature store: silver events as targets, every input
            # read point in time through the feature services serving reads online.
            models = run_models_stage(settings, console, label=spec, train_budget_s=train_budget_s, max_test=1_000)

        if run_stream:
            from lambdarec.stream.commands import stream_report
            from lambdarec.stream.demo import run_live_sessions

            # Last, so the batch layer and the models saw the replayed dataset alone (these
            # shoppers are "now"; the dataset may be historical).
            out.rule("[bold]5b. live shoppers: session features change online as events arrive")
            live = run_live_sessions(settings, bootstrap, console=console)
            stream["live_sessions"] = live
            stream["live_events_published"] = sum(session["published"] for session in live.values())
            stream["report"] = stream_report(settings)

        sizes = {topic: topic_size(bootstrap, topic) for topic in (CLICKS_TOPIC, CLICKS_DLQ_TOPIC)}
        statuses = supervisor.status()
        summary = DemoSummary(
            replay=result,
            malformed_sent=len(MALFORMED_EXAMPLES),
            topic_sizes=sizes,
            services=[{"name": s.name, "state": s.state, "endpoint": s.endpoint, "pid": s.pid} for s in statuses],
            models=models,
            batch=batch,
            stream=stream,
        )
        out.rule("[bold]6. summary")
        table = Table(show_header=True)
        table.add_column("topic")
        table.add_column("messages held by the broker (every replay so far)", justify="right")
        for topic, size in sizes.items():
            table.add_row(topic, f"{size:,}")
        services = Table(show_header=True)
        for column in ("service", "state", "endpoint"):
            services.add_column(column)
        for s in statuses:
            services.add_row(s.name, s.state, s.endpoint or "-")
        out.print(Group(table, services))
        path = settings.state_dir.resolve() / "demo" / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary.to_dict(), indent=2))
        out.print(f"summary written to {path}")
        if keep_running:
            out.print(
                "services are still up: `lambdarec services status`, `lambdarec dlq show`, "
                "`lambdarec services down` when done"
            )
        return summary
    finally:
        if not keep_running:
            from lambdarec.stream.commands import stream_services

            Supervisor(settings, stream_services(settings, "-")).down()
            supervisor.down()


def demo_summary_path(settings: Settings) -> Path:
    """Where :func:`run_demo` writes its summary."""
    return settings.state_dir.resolve() / "demo" / "summary.json"

"""The ``lambdarec`` command line: services, datasets, replay and the demo.

Every command builds its settings in the callback (never at import) and calls the same
functions that the DAGs and tests call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lambdarec.batch import commands as batch_commands
from lambdarec.context import current_settings, use_settings
from lambdarec.featurestore import commands as feature_commands
from lambdarec.settings import Settings, load_settings
from lambdarec.storefront import commands as storefront_commands
from lambdarec.stream.commands import app as stream_app

if TYPE_CHECKING:
    from lambdarec.runtime.supervisor import ServiceStatus

app = typer.Typer(
    name="lambdarec",
    help="Real-time e-commerce recommender: clicks in, fresh recommendations out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
services_app = typer.Typer(
    help="Start, stop and inspect the embedded engines (Kafka, Milvus, MLflow; Redis and Airflow by name).",
    no_args_is_help=True,
)
dlq_app = typer.Typer(help="Inspect the dead-letter topic.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(dlq_app, name="dlq")

console = Console()
err_console = Console(stderr=True)


@app.callback()
def main(
    env: Annotated[
        str | None, typer.Option(help="Environment: local, staging or prod (default LAMBDAREC_ENV).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show client library logs (Kafka, ...).")] = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="Folder for the embedded services' data and logs (default .lambdarec).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            envvar="LAMBDAREC_PROFILE",
            help="Settings laid over the environment's, from environments/profiles/<name>.toml: `cluster` runs "
            "Kafka as 3 replicated brokers, a Flink session cluster, a Spark standalone cluster and Redis as the "
            "online store. Use the same profile for every command on one state folder.",
        ),
    ] = None,
) -> None:
    """Build the settings once for the chosen environment."""
    import logging

    from rich.logging import RichHandler

    # Client libraries (librdkafka) warn about transient states such as a broker's
    # coordinator still loading; shown with --verbose, otherwise only errors.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    overrides: dict[str, object] = {}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    try:
        use_settings(load_settings(env, profile=profile, **overrides))
    except ValueError as err:
        if "unknown profile" not in str(err):
            raise
        raise _fail(str(err), 2) from None


def _settings() -> Settings:
    return current_settings()


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# -- services ---------------------------------------------------------------------------------
@services_app.command("up")
def services_up(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Services to start (default: kafka, milvus, mlflow; `redis`, `airflow` only by name)."),
    ] = None,
) -> None:
    """Start the embedded engines and wait until each one is healthy."""
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.runtime.supervisor import Supervisor

    supervisor = Supervisor(_settings())
    started = time.monotonic()
    try:
        with console.status("starting services...") as spinner:
            statuses = supervisor.up(names, on_event=lambda n, m: spinner.update(f"{n}: {m}"))
    except RuntimeServiceError as err:
        raise _fail(str(err)) from None
    _print_status(statuses)
    for status in statuses:
        if status.healthy:
            for line in supervisor.services[status.name].notes(status.ports):
                console.print(line)
    console.print(f"all healthy in {time.monotonic() - started:.1f}s")


@services_app.command("down")
def services_down(
    names: Annotated[list[str] | None, typer.Argument(help="Services to stop (default: all).")] = None,
) -> None:
    """Stop the embedded engines (and the speed layer, which needs them); their data stays."""
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.stream.commands import stream_services

    settings = _settings()
    stopped = []
    if not names:
        # The storefront, the Flink job and the pusher use Kafka: stop them first (checkpoints stay).
        stopped += storefront_commands.stop_storefront(settings)
        stopped += serving_commands.stop_recommender(settings)
        stopped += Supervisor(settings, stream_services(settings, "-")).down()
    stopped += Supervisor(settings).down(names)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@services_app.command("status")
def services_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each service with its state, ports, pid and memory. Exit code 1 unless all are healthy."""
    from lambdarec.runtime.supervisor import Supervisor

    statuses = Supervisor(_settings()).status()
    if as_json:
        console.print_json(json.dumps([{**s.__dict__, "ports": dict(s.ports)} for s in statuses]))
    else:
        _print_status(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@services_app.command("logs")
def services_logs(
    name: Annotated[str, typer.Argument(help="Service name, e.g. kafka.")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
) -> None:
    """Print the end of a service's log."""
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.runtime.supervisor import Supervisor, tail

    try:
        path = Supervisor(_settings()).log_path(name)
    except RuntimeServiceError as err:
        raise _fail(str(err)) from None
    if not path.exists():
        raise _fail(f"no log yet at {path}; has `{name}` ever been started?")
    print(tail(path, lines))
    if follow:
        with path.open() as handle:
            handle.seek(0, 2)
            while True:
                line = handle.readline()
                if line:
                    print(line, end="")
                else:
                    time.sleep(0.5)


def _print_status(statuses: list[ServiceStatus]) -> None:
    table = Table(title="lambdarec services")
    for column in ("service", "state", "endpoint", "ports", "pid", "rss MB", "uptime s"):
        table.add_column(column)
    colors = {"healthy": "green", "stopped": "dim", "unhealthy": "red"}
    for s in statuses:
        table.add_row(
            s.name,
            f"[{colors.get(s.state, 'yellow')}]{s.state}[/]",
            s.endpoint or "-",
            ", ".join(f"{k}={v}" for k, v in s.ports.items()) or "-",
            str(s.pid or "-"),
            f"{s.rss_mb:.0f}" if s.rss_mb is not None else "-",
            f"{s.uptime_s:.0f}" if s.uptime_s is not None else "-",
        )
    console.print(table)


app.add_typer(stream_app, name="stream")


# -- models, evaluation and the item index (issue #5) -----------------------------------------
from lambdarec.index.commands import index_app  # noqa: E402
from lambdarec.models.commands import evaluate_command, models_app, train_command  # noqa: E402

app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")


app.add_typer(feature_commands.app, name="features")
app.add_typer(storefront_commands.app, name="storefront")
app.add_typer(batch_commands.app, name="batch")

from lambdarec.serving import commands as serving_commands  # noqa: E402

app.add_typer(serving_commands.app, name="recommender")
app.command("serve")(serving_commands.serve_command)

from lambdarec.quality.commands import docs_app, quality_app  # noqa: E402

app.add_typer(docs_app, name="docs")
app.add_typer(quality_app, name="quality")


# -- datasets and replay ------------------------------------------------------------------------
@app.command("datasets")
def datasets_list() -> None:
    """List the dataset adapters a DATASET spec (`<adapter>:<path>`) may name."""
    from lambdarec.data.registry import ADAPTERS

    table = Table(title="dataset adapters (spec: <adapter>:<path>)")
    table.add_column("adapter")
    table.add_column("format")
    for name, adapter in ADAPTERS.items():
        table.add_row(name, adapter.description)
    console.print(table)


@app.command("replay")
def replay(
    dataset: Annotated[str, typer.Argument(help="`<adapter>:<path>`, e.g. rees46:data/2019-Oct.csv (see `datasets`).")],
    speed: Annotated[
        str, typer.Option(help="'max' (as fast as possible) or a real-time factor, e.g. 60 = 1 h of events/min.")
    ] = "max",
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    topic: Annotated[str | None, typer.Option(help="Target topic (default: clicks).")] = None,
) -> None:
    """Publish a dataset to Kafka in event-time order; invalid events go to the dead-letter topic."""
    from lambdarec.demo import replay_dataset
    from lambdarec.replay import ReplaySpeed
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        pace = ReplaySpeed.parse(speed)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--speed") from None
    try:
        result = replay_dataset(_settings(), dataset, speed=pace, limit=limit, topic=topic, console=console)
    except (ValueError, FileNotFoundError, RuntimeServiceError) as err:
        raise _fail(str(err)) from None
    console.print(result.render())
    if not result.stats.balanced:
        raise _fail("some events were not acknowledged by the broker; see the failures above")


@dlq_app.command("show")
def dlq_show(
    limit: Annotated[int, typer.Option(help="How many dead letters to show (newest last).")] = 20,
    topic: Annotated[str | None, typer.Option(help="Dead-letter topic (default: clicks.dlq).")] = None,
) -> None:
    """Show dead-lettered events with the reason each was rejected."""
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.events.consumer import read_topic
    from lambdarec.names import CLICKS_DLQ_TOPIC
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        letters = read_topic(kafka_bootstrap(_settings()), topic or CLICKS_DLQ_TOPIC)
    except RuntimeServiceError as err:
        raise _fail(str(err)) from None
    table = Table(title=f"{len(letters):,} dead letters (showing the last {min(limit, len(letters))})")
    for column in ("source", "field", "reason", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters[-limit:]:
        payload = letter.get("raw_json") or letter.get("raw") or letter.get("raw_b64", "")
        table.add_row(
            letter.get("source", "?"), str(letter.get("field") or "-"), str(letter.get("reason")), str(payload)[:120]
        )
    console.print(table)


# -- the demo --------------------------------------------------------------------------------------
@app.command("demo")
def demo(
    dataset: Annotated[
        str | None, typer.Option(help="`<adapter>:<path>` to replay; default: a seeded synthetic shop.")
    ] = None,
    events: Annotated[
        int | None, typer.Option(help="Size of the synthetic dataset when no --dataset is given (default 200,000).")
    ] = None,
    speed: Annotated[str, typer.Option(help="Replay speed: 'max' or a real-time factor.")] = "max",
    keep_running: Annotated[
        bool | None, typer.Option(help="Leave the services up afterwards (default: yes, except with --smoke).")
    ] = None,
    models: Annotated[bool, typer.Option(help="Train, evaluate and register the models; build the item index.")] = True,
    train_budget: Annotated[
        float | None, typer.Option(help="Seconds of model training in the demo (default 120).")
    ] = None,
    batch: Annotated[
        bool, typer.Option(help="Run the batch layer: Kafka → bronze → silver → gold → Feast (minutes).")
    ] = True,
    stream: Annotated[
        bool, typer.Option(help="Run the speed layer (Flink + pusher) and show live session features online.")
    ] = True,
    storefront: Annotated[bool, typer.Option(help="Start the recommender (when available) and the storefront.")] = True,
    replay_again: Annotated[
        bool, typer.Option(help="Replay the dataset even if this state folder already replayed it into the broker.")
    ] = False,
    smoke: Annotated[
        bool,
        typer.Option(
            help="CI run: 20,000 synthetic events, 30 s of training, services stopped at the end; "
            "progress on stderr, the JSON summary on stdout."
        ),
    ] = False,
) -> None:
    """Run the main job on embedded defaults: every stage in one progress view, then the URLs to open."""
    from lambdarec.demo import run_demo
    from lambdarec.replay import ReplaySpeed
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        summary = run_demo(
            _settings(),
            dataset=dataset,
            synthetic_events=events or (20_000 if smoke else 200_000),
            speed=ReplaySpeed.parse(speed),
            console=err_console if smoke else console,
            keep_running=keep_running if keep_running is not None else not smoke,
            train_models=models,
            train_budget_s=train_budget or (30.0 if smoke else 120.0),
            max_test=300 if smoke else 1_000,
            run_batch=batch,
            run_stream=stream,
            storefront=storefront,
            replay_again=replay_again,
        )
    except (ValueError, FileNotFoundError, RuntimeServiceError) as err:
        raise _fail(str(err)) from None
    if smoke:
        print(json.dumps(summary.to_dict(), indent=2))
    if not summary.ok:
        raise _fail("the demo finished with unacknowledged events or a failed stage; see above")


if __name__ == "__main__":
    app()

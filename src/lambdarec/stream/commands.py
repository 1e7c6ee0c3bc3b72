"""``lambdarec stream start|stop|status``: the speed layer on the local machine.

``start`` launches the PyFlink job (mini-cluster, or ``flink run`` to the profile's session cluster;
restoring from its newest checkpoint either way) and
the pusher to the Feast online store; ``status`` shows both with the job state, the newest
checkpoint and the freshness figures; ``stop`` stops both (checkpoints stay for the next start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lambdarec import names
from lambdarec.settings import Settings

app = typer.Typer(help="The speed layer: the PyFlink job and the pusher to the online store.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _settings(ctx: typer.Context) -> Settings:
    """The settings the root ``lambdarec`` callback built (``--env``, ``--state-dir``), else the defaults."""
    from lambdarec.context import current_settings

    return current_settings()


def stream_services(
    settings: Settings,
    bootstrap_servers: str,
    *,
    feast_repo: Path | None = None,
    with_pusher: bool = True,
    job_args: list[str] | None = None,
) -> list[Any]:
    """The speed layer's services, in start order.

    Args:
        settings: Settings of the environment.
        bootstrap_servers: Kafka bootstrap servers.
        feast_repo: A standalone Feast repo for the pusher; None means the project's store.
        with_pusher: Start the pusher too.
        job_args: Extra arguments for the job.
    """
    from lambdarec.stream.service import PusherService, stream_job_service

    # A session cluster in the settings (the cluster profile) takes the packaged job by `flink run`.
    services: list[Any] = [stream_job_service(settings, bootstrap_servers, job_args=job_args or [])]
    if with_pusher:
        services.append(PusherService(settings, bootstrap_servers, feast_repo))
    return services


@app.command("start")
def start(
    ctx: typer.Context,
    feast_repo: Annotated[
        Path | None, typer.Option(help="A standalone Feast repo to push to (default: the project's store).")
    ] = None,
    pusher: Annotated[bool, typer.Option(help="Also start the pusher to the online store.")] = True,
    checkpoint_ms: Annotated[
        int, typer.Option(help="Checkpoint interval of the job (a restart reprocesses at most this much).")
    ] = 10_000,
    sessions_only: Annotated[
        bool, typer.Option(help="Only the session features (skip the user and item aggregates).")
    ] = False,
) -> None:
    """Start the streaming job (restoring from its newest checkpoint) and the pusher."""
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.runtime.supervisor import Supervisor

    settings = _settings(ctx)
    try:
        bootstrap = kafka_bootstrap(settings)
    except RuntimeServiceError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    services = stream_services(
        settings,
        bootstrap,
        feast_repo=feast_repo,
        with_pusher=pusher,
        job_args=["--checkpoint-ms", str(checkpoint_ms), *(["--sessions-only"] if sessions_only else [])],
    )
    try:
        with console.status("starting the speed layer...") as spinner:
            Supervisor(settings, services).up(on_event=lambda n, m: spinner.update(f"{n}: {m}"))
    except RuntimeServiceError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    _print(settings, bootstrap)


@app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the job and the pusher; checkpoints stay, so the next start resumes."""
    from lambdarec.runtime.supervisor import Supervisor

    settings = _settings(ctx)
    stopped = Supervisor(settings, stream_services(settings, "-")).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Job state, newest checkpoint and freshness (event → online store p50/p99). Exit 1 unless running."""
    settings = _settings(ctx)
    report = stream_report(settings)
    if as_json:
        console.print_json(json.dumps(report, default=str))
    else:
        _print(settings, None, report)
    if report["job"]["state"] != "healthy":
        raise typer.Exit(1)


@app.command("show")
def show(
    ctx: typer.Context,
    session_ids: Annotated[list[str], typer.Argument(help="Session ids to read from the online store.")],
    feast_repo: Annotated[Path | None, typer.Option(help="A standalone Feast repo (default: the project's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the session features the online store holds now (what serving would read)."""
    from lambdarec.stream.feast_local import online_session_features
    from lambdarec.stream.pusher import open_store

    settings = _settings(ctx)
    store = open_store(feast_repo, env=settings.env, state_dir=settings.state_dir)
    values = online_session_features(store, session_ids)
    if as_json:
        console.print_json(json.dumps(values, default=str))
        return
    table = Table(title="session features (online store)")
    table.add_column("feature")
    for sid in session_ids:
        table.add_column(sid, overflow="fold")
    for feature in names.SESSION_FEATURES:
        table.add_row(feature, *[str(values[sid][feature]) for sid in session_ids])
    console.print(table)


def stream_report(settings: Settings) -> dict[str, Any]:
    """Everything ``status`` shows, as a dict."""
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.stream.metrics import read_metrics
    from lambdarec.stream.service import PusherService, latest_checkpoint, stream_job_service

    job = stream_job_service(settings, "-")
    pusher = PusherService(settings, "-")
    supervisor = Supervisor(settings, [job, pusher])
    job_status, pusher_status = supervisor.status()
    jobs: list[dict[str, Any]] = []
    if job_status.pid is not None:
        try:
            jobs = job.flink_jobs(job_status.ports)
        except (OSError, RuntimeServiceError):
            jobs = []
    checkpoint = latest_checkpoint(job.checkpoint_dir)
    return {
        "job": {**job_status.__dict__, "ports": dict(job_status.ports), "flink_jobs": jobs},
        "latest_checkpoint": str(checkpoint) if checkpoint else None,
        "pusher": {**pusher_status.__dict__, "ports": {}},
        "freshness": read_metrics(pusher.metrics_path),
    }


def _print(settings: Settings, bootstrap: str | None, report: dict[str, Any] | None = None) -> None:
    report = report or stream_report(settings)
    table = Table(title="lambdarec speed layer")
    for column in ("service", "state", "pid", "endpoint", "detail"):
        table.add_column(column, overflow="fold")
    job = report["job"]
    flink = ", ".join(f"{j['name']}={j['state']}" for j in job["flink_jobs"]) or "-"
    table.add_row(job["name"], job["state"], str(job["pid"] or "-"), job["endpoint"] or "-", f"flink: {flink}")
    pusher = report["pusher"]
    fresh = report["freshness"] or {}
    detail = (
        f"updates {fresh.get('updates', 0):,}, freshness p50 {_ms(fresh.get('lag_p50_ms'))} "
        f"p99 {_ms(fresh.get('lag_p99_ms'))}, late {fresh.get('late_updates', 0):,}"
        if fresh
        else "-"
    )
    table.add_row(pusher["name"], pusher["state"], str(pusher["pid"] or "-"), pusher["endpoint"] or "-", detail)
    console.print(table)
    console.print(f"latest checkpoint: {report['latest_checkpoint'] or '-'}")


def _ms(value: float | None) -> str:
    return f"{value:,.0f} ms" if value is not None else "-"

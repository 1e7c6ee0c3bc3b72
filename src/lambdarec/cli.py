"""The ``lambdarec`` command line: services, datasets, replay and the demo.

Every command builds its settings in the callback (never at import) and calls the same
functions that the DAGs and tests call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lambdarec.settings import Settings, load_settings

app = typer.Typer(
    name="lambdarec",
    help="Real-time e-commerce recommender: clicks in, fresh recommendations out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
services_app = typer.Typer(help="Start, stop and inspect the embedded engines (Kafka, Milvus, MLflow).",
                           no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect the dead-letter topic.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(dlq_app, name="dlq")

console = Console()
err_console = Console(stderr=True)


class _State:
    settings: Settings | None = None


_state = _State()


@app.callback()
def main(
    env: Annotated[str | None, typer.Option(help="Environment: local, staging or prod (default LAMBDAREC_ENV).")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Folder for the embedded services' data and logs (default .lambdarec).")
    ] = None,
) -> None:
    """Build the settings once for the chosen environment."""
    overrides = {"state_dir": state_dir} if state_dir is not None else {}
    _state.settings = load_settings(env, **overrides)


def _settings() -> Settings:
    if _state.settings is None:
        _state.settings = load_settings()
    return _state.settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# -- services ---------------------------------------------------------------------------------
@services_app.command("up")
def services_up(
    names: Annotated[list[str] | None, typer.Argument(help="Services to start (default: all).")] = None,
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
    console.print(f"all healthy in {time.monotonic() - started:.1f}s")


@services_app.command("down")
def services_down(
    names: Annotated[list[str] | None, typer.Argument(help="Services to stop (default: all).")] = None,
) -> None:
    """Stop the embedded engines; their data stays for the next `up`."""
    from lambdarec.runtime.supervisor import Supervisor

    stopped = Supervisor(_settings()).down(names)
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


def _print_status(statuses: list) -> None:  # type: ignore[type-arg]
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


if __name__ == "__main__":
    app()

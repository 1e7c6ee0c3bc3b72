"""``lambdarec storefront start|stop|status|serve``: the demo shop page on the local machine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from lambdarec.settings import Settings

app = typer.Typer(
    help="The storefront: browse, add to cart, buy (events into Kafka); see the recommender's answers.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    from lambdarec.context import current_settings

    return current_settings()


def start_storefront(settings: Settings) -> str:
    """Start the storefront under the supervisor (no-op when it runs) and return its URL.

    Raises:
        RuntimeServiceError: It did not become healthy; the log tail is in the message.
    """
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.storefront.service import StorefrontService

    supervisor = Supervisor(settings, [StorefrontService(settings)])
    supervisor.up()
    url = supervisor.endpoint(StorefrontService.name)
    assert url is not None
    return url


def stop_storefront(settings: Settings) -> list[str]:
    """Stop the storefront if it runs; returns the names stopped."""
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.storefront.service import StorefrontService

    return Supervisor(settings, [StorefrontService(settings)]).down()


@app.command("start")
def start() -> None:
    """Start the storefront in the background (Kafka must be up: `lambdarec services up`)."""
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        with console.status("starting the storefront..."):
            url = start_storefront(_settings())
    except RuntimeServiceError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    console.print(f"storefront: [bold]{url}[/]")


@app.command("stop")
def stop() -> None:
    """Stop the storefront."""
    stopped = stop_storefront(_settings())
    console.print("stopped: storefront" if stopped else "the storefront was not running")


@app.command("status")
def status() -> None:
    """Show whether the storefront runs, and where. Exit code 1 unless it is healthy."""
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.storefront.service import StorefrontService

    settings = _settings()
    state = Supervisor(settings, [StorefrontService(settings)]).status()[0]
    console.print(f"storefront: {state.state} {state.endpoint or ''}")
    if not state.healthy:
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    port: Annotated[
        int, typer.Option(help="Port to listen on (default: the settings' storefront port, else 8000).")
    ] = 0,
) -> None:
    """Run the storefront in the foreground (what `start` runs in the background)."""
    from lambdarec.storefront.service import serve

    settings = _settings()
    serve(settings, settings.listen_host, port or settings.storefront.port or 8000)

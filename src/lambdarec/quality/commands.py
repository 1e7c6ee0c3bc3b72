"""``lambdarec docs ...``: the data-docs site (vendor its assets, serve it offline)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)
docs_app = typer.Typer(help="The Great Expectations data-docs site, served offline.", no_args_is_help=True)


@docs_app.command("vendor")
def vendor_command() -> None:
    """Fetch the pages' Bootstrap / jQuery / Vega / Font Awesome files from npm into .cache/vendor/docs (once)."""
    import subprocess

    from lambdarec.quality.docs_site import ASSETS, vendor_assets

    try:
        folder = vendor_assets()
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    console.print(f"{len(ASSETS)} data-docs assets in {folder}")


@docs_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Listen address (loopback: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: a free one).")] = 8765,
) -> None:
    """Serve the data-docs site built from the validation runs (no internet needed); prints its URL."""
    from lambdarec.context import current_settings
    from lambdarec.quality.docs_site import make_offline, missing_assets, serve
    from lambdarec.quality.validation import site_dir

    site = site_dir(current_settings().state_dir)
    if not (site / "index.html").is_file():
        err_console.print(
            f"[bold red]error:[/] no data-docs site at {site}: it is built by the validations "
            "(the daily_features / weekly_retrain DAGs, or `make demo`)"
        )
        raise typer.Exit(1)
    if missing_assets():
        err_console.print("[yellow]the page assets are not vendored (`lambdarec docs vendor`): pages need the CDNs[/]")
    left = make_offline(site)
    if left:
        err_console.print(f"[yellow]still remote: {', '.join(left)}[/]")

    def ready(url: str) -> None:
        console.print(f"data docs: {url}  (Ctrl-C stops)", soft_wrap=True)

    try:
        serve(site, host=host, port=port, ready=ready)
    except KeyboardInterrupt:
        pass

"""``lambdarec docs ...`` (the data-docs site: vendor its assets, serve it offline) and ``lambdarec quality ...``
(GX suites and drift of one day, the same steps as the DAGs)."""

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


quality_app = typer.Typer(
    help="Data-quality checks of the lake: GX suites and drift, as the DAGs run them.", no_args_is_help=True
)


@quality_app.command("validate")
def validate_command(
    day: Annotated[str, typer.Option("--date", "-d", help="The day (YYYY-MM-DD) whose silver and gold to validate.")],
) -> None:
    """Run the GX suites on a day's silver events and gold item stats (what daily_features runs); exit 1 on failure."""
    from lambdarec.context import current_settings
    from lambdarec.quality.steps import validate_day

    try:
        result = validate_day(day, current_settings(), raise_on_failure=False)
    except FileNotFoundError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    for item in result["outcomes"]:
        mark = "[green]passed[/]" if item["success"] else "[bold red]failed[/]"
        console.print(f"{item['suite']}: {mark} ({item['evaluated']} expectations, {item['rows']:,} rows)")
        for failure in item["failures"]:
            console.print(f"  {failure['expectation']} on {failure['column']}: observed {failure['observed']}")
        if item.get("docs_page"):
            console.print(f"  data docs page: {item['docs_page']} (`lambdarec docs serve`)", soft_wrap=True)
    if not result["success"]:
        raise typer.Exit(1)


@quality_app.command("drift")
def drift_command(
    day: Annotated[str, typer.Option("--date", "-d", help="The day (YYYY-MM-DD) compared with the days before it.")],
    reference_days: Annotated[int, typer.Option(help="Days before it that form the reference.")] = 28,
    served: Annotated[
        bool,
        typer.Option(
            "--served",
            help="Compare the query inputs the recommender served that day (features.served) with the "
            "champion's training reference instead.",
        ),
    ] = False,
) -> None:
    """PSI and KL per feature of a day's events against the days before, or of what was served (drift_monitor)."""
    from lambdarec.context import current_settings
    from lambdarec.quality.steps import drift_report, served_drift_report

    try:
        if served:
            report = served_drift_report(day, current_settings())
        else:
            report = drift_report(day, current_settings(), reference_days=reference_days)
    except FileNotFoundError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    if served and not report["measured"]:
        console.print(f"not measured: {report['reason']}", soft_wrap=True)
        return
    for feature in report["features"]:
        console.print(
            f"{feature['feature']:<24} PSI {feature['psi']:8.4f}  KL {feature['kl']:8.4f}  {feature['level']}"
        )
    console.print(f"{report['summary']}; written: {report.get('path')}", soft_wrap=True)

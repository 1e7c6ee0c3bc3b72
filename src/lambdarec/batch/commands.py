"""``lambdarec batch ...``: run the batch layer, build the spark-submit archive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="The Spark batch layer: bronze → silver → gold → Feast.", no_args_is_help=True)
console = Console()


def _settings() -> object:
    from lambdarec.context import current_settings

    return current_settings()


@app.command("run")
def run(
    date: Annotated[
        list[str] | None, typer.Option("--date", help="Event date(s) to rebuild in silver (default: new ones).")
    ] = None,
    ingest: Annotated[bool, typer.Option(help="Read the next Kafka offset range into bronze first.")] = True,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="<adapter>:<path> (e.g. uci:data/online_retail.xlsx): write this dataset to bronze "
            "instead of reading Kafka (the offsets ledger is left alone).",
        ),
    ] = None,
    gold_days: Annotated[int, typer.Option(help="Gold snapshots for the latest N silver dates.")] = 2,
    gold_date: Annotated[
        list[str] | None, typer.Option("--gold-date", help="Gold snapshot date(s) to build (instead of --gold-days).")
    ] = None,
    gold_all: Annotated[bool, typer.Option("--gold-all", help="Gold snapshots for every silver date.")] = False,
    materialize: Annotated[bool, typer.Option(help="Load the latest features into the online store.")] = True,
) -> None:
    """Ingest Kafka (or a dataset) into bronze, build silver and gold, apply Feast, materialize.

    Gold for many dates runs as one Spark pass (``--gold-all`` or ``--gold-date`` repeated).
    """
    from lambdarec.batch.pipeline import run_batch
    from lambdarec.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    summary = run_batch(
        settings,
        ingest=ingest,
        dataset=dataset,
        dates=date or None,
        gold_days=None if gold_all else (gold_date or gold_days),
        materialize=materialize,
        console=console,
    )
    console.print(summary.render())


@app.command("package")
def package(
    out: Annotated[Path | None, typer.Option(help="Output folder (default: dist/).")] = None,
) -> None:
    """Build the spark-submit archive of the jobs (lambdarec + jobs/spark) and its launcher."""
    from lambdarec.batch.package import build_spark_archive

    archive, launcher = build_spark_archive(out)
    console.print(json.dumps({"archive": str(archive), "launcher": str(launcher)}))
    console.print(f"spark-submit --py-files {archive} {launcher} build_silver --state-dir <state> --date <YYYY-MM-DD>")

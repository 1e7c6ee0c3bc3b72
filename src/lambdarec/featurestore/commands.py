"""``lambdarec features ...``: apply the Feast repo, materialize, read online features."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lambdarec import names

app = typer.Typer(help="The Feast feature store (repo in features/, config per environment).", no_args_is_help=True)
console = Console()


def _settings() -> object:
    from lambdarec.context import current_settings

    return current_settings()


def _parse_time(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("apply")
def apply_cmd() -> None:
    """Register entities, sources, feature views and services in the environment's registry."""
    from lambdarec.featurestore.store import apply
    from lambdarec.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    for kind, applied in apply(settings).items():
        console.print(f"{kind}: {', '.join(applied)}")


@app.command("materialize")
def materialize_cmd(
    start: Annotated[str | None, typer.Option(help="ISO start (default: end - 31 days).")] = None,
    end: Annotated[str | None, typer.Option(help="ISO end (default: now).")] = None,
    view: Annotated[list[str] | None, typer.Option(help="Only these feature views.")] = None,
) -> None:
    """Load the latest feature values in [start, end) from the offline into the online store."""
    from lambdarec.featurestore.store import materialize
    from lambdarec.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    stop = _parse_time(end, datetime.now(UTC))
    report = materialize(settings, _parse_time(start, stop - timedelta(days=31)), stop, view or None)
    console.print_json(json.dumps(report.to_dict()))


@app.command("get")
def get_cmd(
    user: Annotated[str, typer.Option(help="The user id.")],
    items: Annotated[str, typer.Option(help="Comma-separated item ids.")],
    service: Annotated[str, typer.Option(help="Feature service.")] = names.RANKING_FEATURE_SERVICE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the online features of one user and some items (ranking_v1 by default)."""
    from lambdarec.featurestore.store import online_reader, open_store, read_online_features
    from lambdarec.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    item_ids = [i.strip() for i in items.split(",") if i.strip()]
    values = read_online_features(online_reader(open_store(settings), service), user, item_ids)
    if as_json:
        console.print_json(json.dumps(values, default=str))
        return
    table = Table(title=f"{service}: user {user}")
    table.add_column("feature")
    for item in item_ids:
        table.add_column(item)
    for feature, column in values.items():
        table.add_row(feature, *[str(v) for v in column])
    console.print(table)

"""``lambdarec index build | swap | status``: versioned item-embedding collections in Milvus."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from lambdarec.settings import Settings

index_app = typer.Typer(help="Item-embedding collections in Milvus, one per model version, behind an alias.")
console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    from lambdarec.context import current_settings

    return current_settings()


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


def _resolve_version(uri: str, version: str | None) -> str:
    from lambdarec.names import CHALLENGER_ALIAS, TWO_TOWER_MODEL
    from lambdarec.tracking.mlflow_log import alias_version

    if version:
        return version
    found = alias_version(uri, TWO_TOWER_MODEL, CHALLENGER_ALIAS)
    if found is None:
        raise _fail(f"no {TWO_TOWER_MODEL} version has the {CHALLENGER_ALIAS} alias; run `lambdarec train` first")
    return found


@index_app.command("build")
def build(
    model_version: Annotated[
        str | None, typer.Option(help="Two-tower model version (default: the challenger).")
    ] = None,
    index_type: Annotated[str, typer.Option(help="IVF_FLAT (measured default), HNSW or FLAT.")] = "IVF_FLAT",
) -> None:
    """Write the item embeddings of a model version to collection item_embeddings_v<version>."""
    from lambdarec.index.milvus import build_collection, connect_settings
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.tracking.mlflow_log import load_item_embeddings
    from lambdarec.vectors import mlflow_tracking_uri

    try:
        settings = _settings()
        uri = mlflow_tracking_uri(settings)
        version = _resolve_version(uri, model_version)
        item_ids, vectors = load_item_embeddings(uri, version)
        client = connect_settings(settings)
        try:
            result = build_collection(client, item_ids, vectors, version, index_type=index_type.upper())
        finally:
            client.close()
    except (RuntimeServiceError, ValueError) as err:
        raise _fail(str(err)) from None
    console.print(
        f"built {result.collection}: {result.rows:,} items x {result.dim} ({result.index_type}) "
        f"in {result.seconds:.1f}s"
    )


@index_app.command("swap")
def swap(
    model_version: Annotated[str, typer.Option(help="Two-tower model version to serve.")],
) -> None:
    """Point the index alias at a version's collection and make it (and its DeepFM) champion, together.

    MLflow must answer before anything moves. The Milvus alias moves first (atomically); if moving
    the MLflow champion alias then fails, the Milvus alias is put back on the collection it named
    before (or removed, if it did not exist), so the two never disagree.
    """
    from lambdarec.index.milvus import connect_settings, restore_alias, swap_alias
    from lambdarec.runtime.errors import RuntimeServiceError
    from lambdarec.tracking.mlflow_log import promote, require_tracking
    from lambdarec.vectors import mlflow_tracking_uri

    try:
        settings = _settings()
        uri = mlflow_tracking_uri(settings)
        require_tracking(uri)
        client = connect_settings(settings)
        try:
            previous = swap_alias(client, model_version)
            try:
                promote(uri, model_version)
            except Exception as err:
                restore_alias(client, previous)
                raise _fail(
                    f"could not move the MLflow champion alias ({str(err)[:300]}); the index alias was put back on "
                    f"{previous or 'nothing (removed)'}"
                ) from None
        finally:
            client.close()
    except (RuntimeServiceError, ValueError) as err:
        raise _fail(str(err)) from None
    console.print(f"serving two-tower v{model_version}: alias now on its collection (was {previous or 'unset'})")


@index_app.command("status")
def status() -> None:
    """Show the collections and which one the alias points at."""
    from lambdarec.index.milvus import connect_settings, current_collection
    from lambdarec.names import ITEM_EMBEDDINGS_ALIAS
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        client = connect_settings(_settings())
    except RuntimeServiceError as err:
        raise _fail(str(err)) from None
    try:
        live = current_collection(client)
        for name in sorted(client.list_collections()):
            if name.startswith(f"{ITEM_EMBEDDINGS_ALIAS}_v"):
                console.print(f"{'*' if name == live else ' '} {name}")
        console.print(f"alias {ITEM_EMBEDDINGS_ALIAS} -> {live or 'unset'}")
    finally:
        client.close()

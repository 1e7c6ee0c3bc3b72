"""``lambdarec train`` and ``lambdarec evaluate``: the model commands of the CLI.

Heavy imports (torch, mlflow) happen inside the commands so ``lambdarec --help`` stays fast.
:func:`run_models_stage` is what the demo calls: train on the replayed data, log and
register both models, build the item index and swap it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def _settings() -> Any:
    from lambdarec import cli

    return cli._settings()


def _progress_bar(console: Console) -> tuple[Any, Any]:
    """A rich progress bar and the ``progress(stage, step, total, loss)`` callback feeding it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, step: int, total: int, loss: float) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(f"training {stage}", total=total, loss=loss)
        progress.update(tasks[stage], completed=step, total=total, loss=loss)

    return progress, update


def _limit_threads() -> None:
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2))


def evaluate_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="`<adapter>:<path>` (see `lambdarec datasets`).")],
    out: Annotated[Path | None, typer.Option(help="Folder for evaluation.json and the plots.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of the events (latest in time) held out.")] = 0.2,
    limit: Annotated[int | None, typer.Option(help="Use only the first N events.")] = None,
    max_test: Annotated[int, typer.Option(help="Evaluate at most this many test targets (seeded sample).")] = 20_000,
) -> None:
    """Train both models on the past of a dataset and print their quality on its future beside the baselines."""
    from lambdarec.evaluate.report import evaluate_dataset, render_table
    from lambdarec.models.data import DatasetError

    _limit_threads()
    target = out or _settings().state_dir / "evaluation" / dataset.split(":", 1)[0]
    progress, update = _progress_bar(console)
    try:
        with progress:
            result = evaluate_dataset(
                dataset, target, test_fraction=test_fraction, limit=limit, max_test=max_test, progress=update
            )
    except (DatasetError, FileNotFoundError, ValueError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    console.print(render_table(result))
    ranker = result.ranker
    console.print(
        f"DeepFM on the test candidates: AUC {ranker['ranker_auc']:.4f}, logloss {ranker['ranker_logloss']:.4f}; "
        f"candidate recall {ranker['candidate_recall']:.3f} ({ranker['candidates_per_query']:.0f} per query); "
        f"{result.split['test_unseen_target_share']:.1%} of test targets were never seen in training (misses for all)"
    )
    missed = [m for m, ok in result.beats_baselines.items() if not ok]
    if missed:
        console.print(f"[yellow]the two-stage pipeline does not beat every baseline on: {', '.join(missed)}[/]")
    console.print(f"written: {target / 'evaluation.json'}, {target / 'metrics.png'}, {target / 'loss_curves.png'}")


def run_models_stage(
    settings: Any,
    dataset: str,
    console: Console | None = None,
    *,
    promote: bool = False,
    build_index: bool = True,
    limit: int | None = None,
    index_type: str = "IVF_FLAT",
    train_budget_s: float = 450.0,
) -> dict[str, Any]:
    """Train + evaluate both models on ``dataset``, log and register them, build and swap the item index.

    The services must be up (MLflow, and Milvus when ``build_index``). The first versions
    ever registered become champion, and then the index alias points at their collection.

    Args:
        settings: The environment (service endpoints).
        dataset: ``<adapter>:<path>`` (the demo passes the spec it replayed).
        console: Where the table and progress go (None: silent).
        promote: Make the new versions champion even when a champion exists.
        build_index: Also write the Milvus collection of the new two-tower version.
        limit: Use only the first N events.
        index_type: IVF_FLAT (the measured default), HNSW or FLAT.
        train_budget_s: Training-time budget: two thirds for the two-tower, one third for DeepFM.

    Returns:
        A summary: run id, model versions, the quality table, index collection.
    """
    from lambdarec.evaluate.report import evaluate_split, render_table
    from lambdarec.models.data import load_events, temporal_split
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig
    from lambdarec.tracking.mlflow_log import log_training_run
    from lambdarec.vectors import mlflow_tracking_uri

    out = console or Console(quiet=True)
    _limit_threads()
    uri = mlflow_tracking_uri(settings)
    events = load_events(dataset, limit=limit)
    split = temporal_split(events)
    progress, update = _progress_bar(out)
    with progress:
        config = PipelineConfig(
            two_tower=TwoTowerConfig(max_train_seconds=train_budget_s * 2 / 3),
            deepfm=DeepFMConfig(max_train_seconds=train_budget_s / 3),
        )
        result, recommender = evaluate_split(split, config, dataset=dataset, progress=update)
    out.print(render_table(result))
    tracked = log_training_run(uri, recommender, result, dataset=dataset, promote=promote)
    out.print(
        f"MLflow run {tracked.run_id}: two-tower v{tracked.two_tower_version}, DeepFM v{tracked.deepfm_version} "
        f"(challenger{', champion' if tracked.champion else ''})"
    )
    summary: dict[str, Any] = {
        "run_id": tracked.run_id,
        "two_tower_version": tracked.two_tower_version,
        "deepfm_version": tracked.deepfm_version,
        "champion": tracked.champion,
        "evaluation": result.to_dict(),
    }
    if build_index:
        from lambdarec.index.milvus import build_collection, connect_settings, swap_alias

        client = connect_settings(settings)
        try:
            assert recommender.item_vectors is not None
            built = build_collection(
                client,
                recommender.catalogue.item_ids,
                recommender.item_vectors,
                tracked.two_tower_version,
                index_type=index_type,
            )
            summary["index"] = {"collection": built.collection, "rows": built.rows, "seconds": built.seconds}
            if tracked.champion:
                swap_alias(client, tracked.two_tower_version)
                summary["index"]["alias"] = "swapped"
        finally:
            client.close()
        out.print(f"Milvus collection {built.collection}: {built.rows:,} items ({built.index_type})")
    return summary


def train_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="`<adapter>:<path>` to train on.")],
    promote: Annotated[bool, typer.Option(help="Make the new versions champion (and swap the index).")] = False,
    index: Annotated[bool, typer.Option(help="Also build the Milvus collection of the new version.")] = True,
    limit: Annotated[int | None, typer.Option(help="Use only the first N events.")] = None,
) -> None:
    """Train the two-tower and DeepFM models, log them to MLflow, register them (challenger) and build the index."""
    from lambdarec.models.data import DatasetError
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        run_models_stage(_settings(), dataset, console, promote=promote, build_index=index, limit=limit)
    except (DatasetError, FileNotFoundError, ValueError, RuntimeServiceError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None

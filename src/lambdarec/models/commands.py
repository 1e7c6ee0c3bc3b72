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
models_app = typer.Typer(help="Registered models and their serving bundles.", no_args_is_help=True)


def _settings() -> Any:
    from lambdarec.context import current_settings

    return current_settings()


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


def silver_events(lake: Any) -> Any:
    """Every silver event of a lake as a clean, sorted frame (what the models' targets come from).

    Raises:
        DatasetError: The lake has no silver events (the batch layer has not run).
    """
    import pyarrow.dataset as ds

    from lambdarec.models.data import DatasetError, load_events

    if not lake.silver.exists():
        raise DatasetError(f"no silver events under {lake.silver}: run `lambdarec batch run` (or --dataset) first")
    columns = ["event_id", "event_time", "session_id", "user_id", "item_id", "event_type", "price", "category", "brand"]
    table = ds.dataset(str(lake.silver), format="parquet", partitioning="hive").to_table(columns=columns)
    if table.num_rows == 0:
        raise DatasetError(f"the silver events under {lake.silver} are empty: the batch layer kept no event")
    return load_events(table)


def check_gold_coverage(lake: Any, events: Any) -> None:
    """Refuse to train when a date of the events has no gold snapshot (its features would all be null).

    Raises:
        DatasetError: Naming the dates without gold and the command that builds them.
    """
    import pandas as pd

    from lambdarec.batch.gold import SESSION_FEATURES
    from lambdarec.models.data import DatasetError

    dates = sorted(pd.to_datetime(events["event_time"], unit="ms", utc=True).dt.strftime("%Y-%m-%d").unique())
    folder = lake.gold(SESSION_FEATURES)
    built = {p.name.split("=", 1)[1] for p in folder.glob("date=*")} if folder.exists() else set()
    missing = [d for d in dates if d not in built]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(
            f"no gold snapshots for {shown} under {lake.root / 'gold'}: the training window needs every date; "
            "run `lambdarec batch run --no-ingest --gold-all`"
        )


def catalogue_rows(lake: Any, source: Any) -> dict[str, list[Any]]:
    """``ranking_v2`` rows of every item in the latest gold ``item_stats`` snapshot (the index's catalogue),
    read as of just after that snapshot."""
    import pyarrow.dataset as ds

    from lambdarec.batch.gold import ITEM_STATS
    from lambdarec.batch.lake import parse_date, snapshot_time

    folder = lake.gold(ITEM_STATS)
    dates = sorted(p.name.split("=", 1)[1] for p in folder.glob("date=*"))
    if not dates:
        return {"item_id": []}
    ids = ds.dataset(str(folder / f"date={dates[-1]}"), format="parquet").to_table(columns=["item_id"])["item_id"]
    items = sorted({str(i) for i in ids.to_pylist()})
    moment_ms = int(snapshot_time(parse_date(dates[-1])).timestamp() * 1000) + 60_000
    rows: dict[str, list[Any]] = source.candidate_rows([""] * len(items), items, [moment_ms] * len(items))
    return rows


def train_from_store(
    settings: Any,
    *,
    label: str,
    config: Any = None,
    test_fraction: float = 0.2,
    max_test: int = 5_000,
    progress: Any = None,
) -> tuple[Any, Any, Any]:
    """Split the lake's silver events in time, read every input from the offline store, train, evaluate.

    Returns:
        ``(EvaluationResult, TwoStageRecommender, OfflineFeatureSource)``.

    Raises:
        DatasetError: No silver events, dates without gold, or too few examples.
        LookupError: A feature service is not in the registry.
    """
    result, recommender, source, _ = train_split_from_store(
        settings, label=label, config=config, test_fraction=test_fraction, max_test=max_test, progress=progress
    )
    return result, recommender, source


def train_split_from_store(
    settings: Any,
    *,
    label: str,
    config: Any = None,
    test_fraction: float = 0.2,
    max_test: int = 5_000,
    progress: Any = None,
) -> tuple[Any, Any, Any, Any]:
    """:func:`train_from_store`, also returning the :class:`~lambdarec.models.data.Split` (its examples
    and its test window, for the gates that judge them)."""
    from lambdarec.batch.lake import Lake
    from lambdarec.evaluate.report import evaluate_split
    from lambdarec.featurestore.store import apply, open_store
    from lambdarec.models.data import temporal_split
    from lambdarec.models.sources import OfflineFeatureSource

    lake = Lake.under(settings.state_dir)
    events = silver_events(lake)
    check_gold_coverage(lake, events)
    apply(settings)
    source = OfflineFeatureSource(open_store(settings))
    split = temporal_split(events, source, test_fraction=test_fraction, max_test=max_test)
    result, recommender = evaluate_split(split, source, config, dataset=label, progress=progress)
    return result, recommender, source, split


def evaluate_version_on_split(tracking_uri: str, version: str, split: Any, source: Any, k: int = 100) -> dict[str, Any]:
    """Score a registered version's serving bundle on a split's test window (no training).

    What the promotion gate compares: the champion on the challenger's own test window, so both
    numbers come from the same examples, the same feature reads and the same item index. The
    champion's bundle holds its *served* index (every item the batch layer knew when it was
    registered, items first seen in this test window included); its item tower re-embeds the
    split's items instead (those known before the cut, which the challenger was scored against),
    so a model re-scored on its own window scores exactly what its run logged. Metric names are
    those of the challenger's MLflow run (``two-stage.recall_at_20``, ...); targets are coded in
    the champion's vocabulary (an item it never saw is a miss, as it would be when serving).

    Returns:
        ``{"version": ..., "examples": n, "metrics": {name: value}}``.
    """
    import tempfile

    from lambdarec.evaluate.metrics import next_item_metrics
    from lambdarec.evaluate.report import PIPELINE_ROW
    from lambdarec.models.bundle import load_bundle
    from lambdarec.tracking.mlflow_log import _metric_key, download_bundle

    with tempfile.TemporaryDirectory(prefix="lambdarec-champion-") as tmp:
        champion = load_bundle(download_bundle(tracking_uri, version, Path(tmp)))
    if split.items.get("item_id"):
        champion.build_index(split.items)
    items, _, _ = champion.rank(split.test, source, k)
    targets = champion.vocab.codes([str(t) for t in split.test.target_id])
    prefix = PIPELINE_ROW.split(" ")[0]
    metrics = {_metric_key(f"{prefix}.{name}"): float(v) for name, v in next_item_metrics(items, targets).items()}
    return {"version": str(version), "examples": len(split.test), "metrics": metrics}


def evaluate_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="`<adapter>:<path>` (see `lambdarec datasets`).")],
    out: Annotated[Path | None, typer.Option(help="Folder for evaluation.json and the plots.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of the events (latest in time) held out.")] = 0.2,
    max_test: Annotated[int, typer.Option(help="Evaluate at most this many test targets (seeded sample).")] = 5_000,
    train_budget: Annotated[float, typer.Option(help="Training-time budget in seconds (both models).")] = 450.0,
) -> None:
    """Run the batch layer on a dataset (its own lake), train both models through the feature store, and
    print their quality on the dataset's future beside the baselines."""
    from lambdarec.batch.pipeline import run_batch
    from lambdarec.evaluate.report import render_table, write_report
    from lambdarec.models.data import DatasetError, load_events

    _limit_threads()
    try:
        # Fails fast (unknown adapter, missing file, too few events, with the adapter's drop reasons)
        # before Spark starts.
        load_events(dataset, earliest_ms=_settings().earliest_event_ms)
    except (DatasetError, FileNotFoundError, ValueError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    base = _settings()
    name = dataset.split(":", 1)[0]
    # A private state folder per dataset: its lake and feature store do not mix with the shop's.
    settings = base.model_copy(update={"state_dir": base.state_dir / "evaluation" / name})
    target = out or settings.state_dir
    try:
        with console.status(f"batch layer on {dataset}: bronze → silver → gold (every date)..."):
            run_batch(settings, dataset=dataset, gold_days=None, materialize=False)
        progress, update = _progress_bar(console)
        with progress:
            result, _, _ = train_from_store(
                settings,
                label=dataset,
                config=_config(train_budget),
                max_test=max_test,
                test_fraction=test_fraction,
                progress=update,
            )
    except (DatasetError, FileNotFoundError, ValueError, LookupError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    write_report(result, target)
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


def _config(train_budget_s: float) -> Any:
    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig
    from lambdarec.models.two_tower import TwoTowerConfig

    return PipelineConfig(
        two_tower=TwoTowerConfig(max_train_seconds=train_budget_s * 2 / 3),
        deepfm=DeepFMConfig(max_train_seconds=train_budget_s / 3),
    )


def run_models_stage(
    settings: Any,
    console: Console | None = None,
    *,
    label: str = "lake",
    promote: bool = False,
    build_index: bool = True,
    index_type: str = "IVF_FLAT",
    train_budget_s: float = 450.0,
    max_test: int = 5_000,
    judge: Any = None,
    first_becomes_champion: bool = True,
) -> dict[str, Any]:
    """Train + evaluate both models through the feature store, log and register them with their
    serving bundle, build and swap the catalogue-wide item index.

    The batch layer must have built silver and gold for every date of the lake; the services
    must be up (MLflow, and Milvus when ``build_index``). The first versions ever registered
    become champion, and then the index alias points at their collection.

    Args:
        settings: The environment (service endpoints, state folder with the lake).
        console: Where the table and progress go (None: silent).
        label: What the models were trained on (logged with the run).
        promote: Make the new versions champion even when a champion exists.
        build_index: Also write the Milvus collection of the new two-tower version.
        index_type: IVF_FLAT (the measured default), HNSW or FLAT.
        train_budget_s: Training-time budget: two thirds for the two-tower, one third for DeepFM.
        max_test: Test examples evaluated.
        judge: Called as ``judge(split, source)`` after training and before anything is logged or
            registered (the champion's alias has not moved yet); what it returns goes into the
            summary under ``judged`` (the weekly retrain's examples suite and champion re-evaluation).
        first_becomes_champion: With no champion yet, the new versions become champion (and the index
            alias points at them); False leaves even the first promotion to the caller's gates.

    Returns:
        A summary: run id, model versions, the quality table, index collection.
    """
    import time

    from lambdarec.batch.lake import Lake
    from lambdarec.evaluate.report import render_table
    from lambdarec.tracking.mlflow_log import log_training_run, require_tracking
    from lambdarec.vectors import mlflow_tracking_uri

    out = console or Console(quiet=True)
    _limit_threads()
    uri = mlflow_tracking_uri(settings)
    require_tracking(uri)  # before minutes of training, not after
    progress, update = _progress_bar(out)
    started = time.monotonic()
    with progress:
        result, recommender, source, split = train_split_from_store(
            settings, label=label, config=_config(train_budget_s), max_test=max_test, progress=update
        )
    out.print(render_table(result))
    judged = judge(split, source) if judge is not None else None
    # The served index holds every item the batch layer knows now, cold ones by content alone.
    catalogue = catalogue_rows(Lake.under(settings.state_dir), source)
    if catalogue["item_id"]:
        recommender.build_index(catalogue)
    train_s = time.monotonic() - started
    require_tracking(uri)  # it may have gone away while the models trained: fail cleanly, nothing logged
    from lambdarec.quality.served import training_reference

    tracked = log_training_run(
        uri,
        recommender,
        result,
        dataset=label,
        promote=promote,
        first_becomes_champion=first_becomes_champion,
        reference=training_reference(split.train),
    )
    out.print(
        f"MLflow run {tracked.run_id}: two-tower v{tracked.two_tower_version}, DeepFM v{tracked.deepfm_version} "
        f"(challenger{', champion' if tracked.champion else ''}), serving bundle logged; "
        f"{len(recommender.index_ids):,} items indexed ({recommender.vocab.n_items - 1:,} with a trained id)"
    )
    summary: dict[str, Any] = {
        "run_id": tracked.run_id,
        "two_tower_version": tracked.two_tower_version,
        "deepfm_version": tracked.deepfm_version,
        "champion": tracked.champion,
        "train_from_store_s": train_s,
        "evaluation": result.to_dict(),
    }
    if judged is not None:
        summary["judged"] = judged
    if build_index:
        from lambdarec.index.milvus import build_collection, connect_settings, swap_alias

        client = connect_settings(settings)
        try:
            built = build_collection(
                client,
                list(recommender.index_ids),
                recommender.index_vectors,
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
    promote: Annotated[bool, typer.Option(help="Make the new versions champion (and swap the index).")] = False,
    index: Annotated[bool, typer.Option(help="Also build the Milvus collection of the new version.")] = True,
    train_budget: Annotated[float, typer.Option(help="Training-time budget in seconds (both models).")] = 450.0,
) -> None:
    """Train the two-tower and DeepFM models from the feature store (the batch layer's lake), log them
    to MLflow with their serving bundle, register them (challenger) and build the item index."""
    from lambdarec.models.data import DatasetError
    from lambdarec.runtime.errors import RuntimeServiceError

    try:
        run_models_stage(_settings(), console, promote=promote, build_index=index, train_budget_s=train_budget)
    except (DatasetError, FileNotFoundError, ValueError, LookupError, RuntimeServiceError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None


def load_command(
    version: Annotated[str, typer.Option("--version", "-v", help="Two-tower model version, or an alias.")] = "champion",
    check_store: Annotated[bool, typer.Option(help="Check the bundle's feature services against the store.")] = True,
) -> None:
    """Load a registered model version's serving bundle in this process (no training data) and describe it."""
    import tempfile

    from lambdarec.models.bundle import BundleError, check_feature_services, load_bundle, read_meta
    from lambdarec.names import TWO_TOWER_MODEL
    from lambdarec.tracking.mlflow_log import alias_version, download_bundle
    from lambdarec.vectors import mlflow_tracking_uri

    settings = _settings()
    uri = mlflow_tracking_uri(settings)
    resolved = version if version.isdigit() else alias_version(uri, TWO_TOWER_MODEL, version)
    if resolved is None:
        err_console.print(f"[bold red]error:[/] no {TWO_TOWER_MODEL} version behind alias {version!r}")
        raise typer.Exit(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = download_bundle(uri, resolved, Path(tmp))
            meta = read_meta(folder)
            recommender = load_bundle(folder)
            if check_store:
                from lambdarec.featurestore.store import open_store

                check_feature_services(meta, open_store(settings))
    except (BundleError, LookupError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    services = ", ".join(f"{role}: {s['name']}" for role, s in meta["feature_services"].items())
    console.print(
        f"model version {resolved} loaded: {recommender.vocab.n_items - 1:,} vocabulary items, "
        f"{len(recommender.index_ids):,} indexed items, feature services {services}; "
        f"candidates {meta['candidates']}"
    )


models_app.command("load")(load_command)

"""``lambdarec evaluate``: the quality table of the two-stage pipeline beside the baselines.

One temporal split, one test set, one candidate catalogue: the baselines (most-popular,
item-kNN co-occurrence, session-kNN), the two-tower alone and the two-stage pipeline
(two-tower + co-occurrence candidates ranked by DeepFM) are all scored on exactly the same
examples. The table is printed, written as JSON and drawn as a plot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lambdarec.evaluate.metrics import next_item_metrics

METRIC_COLUMNS = ("recall@20", "recall@100", "ndcg@10", "mrr@20")
PIPELINE_ROW = "two-stage (two-tower + DeepFM)"
TWO_TOWER_ROW = "two-tower (retrieval only)"


@dataclass
class EvaluationResult:
    """The quality table and everything needed to reproduce and judge it.

    Attributes:
        dataset: The dataset spec or label.
        fingerprint: Dataset fingerprint.
        rows: One dict per method: ``method`` and the metric columns (+ seconds).
        ranker: AUC / logloss of DeepFM on the test candidates, candidate recall.
        split: Split statistics (cut, sizes, share of unseen test targets).
        training: Training statistics and loss curves.
        beats_baselines: Per metric, whether the two-stage pipeline beats every baseline.
    """

    dataset: str
    fingerprint: str
    rows: list[dict[str, Any]]
    ranker: dict[str, float]
    split: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    beats_baselines: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "ranker": self.ranker,
            "split": self.split,
            "training": self.training,
            "beats_baselines": self.beats_baselines,
        }


def evaluate_split(
    split: Any,
    source: Any,
    config: Any = None,
    *,
    dataset: str = "",
    progress: Callable[[str, int, int, float], None] | None = None,
) -> tuple[EvaluationResult, Any]:
    """Train the pipeline on the split's past and score it and the baselines on its future.

    Args:
        split: A :class:`lambdarec.models.data.Split`.
        source: The :class:`~lambdarec.models.sources.FeatureSource` the split was read from
            (the ranker reads its candidates' and neighbours' rows there too).
        config: A :class:`lambdarec.models.pipeline.PipelineConfig` (default sizes when None).
        dataset: Label for the report.
        progress: Progress callback for the training loops.

    Returns:
        ``(result, recommender)``: the table and the trained :class:`TwoStageRecommender`.
    """
    from lambdarec.evaluate.baselines import ItemKnn, MostPopular, SessionKnn
    from lambdarec.models.pipeline import TwoStageRecommender

    test, k = split.test, 100
    rows: list[dict[str, Any]] = []
    for make in (
        lambda: MostPopular(split.catalogue),
        lambda: ItemKnn(split.train_events, split.catalogue),
        lambda: SessionKnn(split.train_events, split.catalogue),
    ):
        started = time.monotonic()
        baseline = make()
        ranked = baseline.recommend(test, k)
        rows.append(
            {"method": baseline.name, **next_item_metrics(ranked, test.target), "seconds": time.monotonic() - started}
        )
    started = time.monotonic()
    recommender = TwoStageRecommender(split.catalogue, config)
    training = recommender.fit(split.train, source, split.items, progress)
    items, ranker_metrics, tt_items = recommender.rank(test, source, k)
    seconds = time.monotonic() - started
    rows.append(
        {"method": TWO_TOWER_ROW, **next_item_metrics(tt_items, test.target), "seconds": training["two_tower_train_s"]}
    )
    rows.append({"method": PIPELINE_ROW, **next_item_metrics(items, test.target), "seconds": seconds})
    training["two_tower_history"] = recommender.retrieval.history.to_dict()
    training["deepfm_history"] = recommender.ranker.history.to_dict()
    baselines = rows[:3]
    beats = {m: all(rows[-1][m] > b[m] for b in baselines) for m in METRIC_COLUMNS}
    result = EvaluationResult(dataset, split.fingerprint, rows, ranker_metrics, dict(split.stats), training, beats)
    return result, recommender


def write_report(result: EvaluationResult, out_dir: Path) -> dict[str, Path]:
    """Write ``evaluation.json``, ``metrics.png`` (table as bars) and ``loss_curves.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "evaluation.json",
        "metrics": out_dir / "metrics.png",
        "loss": out_dir / "loss_curves.png",
    }
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2, default=_json_default))
    plot_metrics(result, paths["metrics"])
    plot_losses(result.training, paths["loss"])
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def plot_metrics(result: EvaluationResult, path: Path) -> None:
    """Grouped bars: one group per metric, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(result.rows), 1)
    x = np.arange(len(METRIC_COLUMNS))
    for i, row in enumerate(result.rows):
        ax.bar(x + i * width, [row[m] for m in METRIC_COLUMNS], width, label=row["method"])
    ax.set_xticks(x + width * (len(result.rows) - 1) / 2, METRIC_COLUMNS)
    ax.set_title(f"next-item quality on the temporal test split — {result.dataset}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(training: dict[str, Any], path: Path) -> None:
    """Train / validation loss per epoch of both models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in zip(axes, ("two_tower_history", "deepfm_history"), ("two-tower", "DeepFM"), strict=True):
        history = training.get(key) or {}
        for curve in ("train_loss", "validation_loss"):
            values = history.get(curve) or []
            ax.plot(range(1, len(values) + 1), values, marker="o", label=curve)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_table(result: EvaluationResult) -> Any:
    """A rich table of the result (bold: the best value of each column)."""
    from rich.table import Table

    table = Table(
        title=f"{result.dataset} — temporal split, {result.split.get('test_examples_evaluated')} test targets"
    )
    table.add_column("method")
    for column in (*METRIC_COLUMNS, "seconds"):
        table.add_column(column, justify="right")
    best = {m: max(r[m] for r in result.rows) for m in METRIC_COLUMNS}
    for row in result.rows:
        cells = [f"[bold]{row[m]:.4f}[/]" if row[m] == best[m] else f"{row[m]:.4f}" for m in METRIC_COLUMNS]
        table.add_row(row["method"], *cells, f"{row.get('seconds', 0):.1f}")
    return table

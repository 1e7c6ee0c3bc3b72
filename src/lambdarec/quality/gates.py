"""The promotion gate: a challenger becomes champion only when every gate passes, and each gate's
result is written on the challenger's MLflow run, so "why was this model promoted (or not)" has an
answer in the MLflow UI.

Gates:

- **data quality**: every Great Expectations suite of the run green (:class:`ValidationOutcome`);
- **drift**: no feature at the *block* level of the drift policy (:mod:`lambdarec.quality.drift`)
  between the challenger's training window and the latest window; *retrain*-level drift passes;
- **performance**: the challenger's metric not worse than the champion's by more than a tolerance
  (relative), both measured by the caller on the same window; passes when there is no champion.

On the MLflow run: tags ``gate.<name>`` = ``passed`` / ``failed`` and ``gate.<name>.detail`` (the
failed expectation and column, the drifted feature and its PSI, the two metrics), metrics
``gate.<name>.passed`` (1/0) plus each gate's figures, and ``promotion.decision`` =
``promoted`` / ``blocked`` with ``promotion.blocked_by``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lambdarec.quality.drift import DriftLevel, DriftReport
from lambdarec.quality.validation import ValidationOutcome

QUALITY_GATE = "data_quality"
DRIFT_GATE = "drift"
PERFORMANCE_GATE = "performance"
DEFAULT_METRIC = "two-stage.recall_at_20"
DEFAULT_TOLERANCE = 0.02
"""A challenger may be up to 2% (relative) below the champion: retraining noise, not a regression."""
_MAX_TAG = 4_900  # MLflow caps tag values at 5,000 characters (8,000 on newer stores)


@dataclass
class GateResult:
    """One gate's verdict.

    Attributes:
        name: The gate (:data:`QUALITY_GATE`, :data:`DRIFT_GATE`, :data:`PERFORMANCE_GATE`).
        passed: Whether it lets the challenger through.
        detail: Why, in one line (what failed where, or what held).
        metrics: Figures behind the verdict, logged as ``gate.<name>.<key>``.
    """

    name: str
    passed: bool
    detail: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class PromotionDecision:
    """Every gate's verdict and the decision they make together."""

    gates: list[GateResult]

    @property
    def promote(self) -> bool:
        """True only when there is at least one gate and every gate passed."""
        return bool(self.gates) and all(g.passed for g in self.gates)

    @property
    def blocked_by(self) -> list[str]:
        """Names of the gates that failed."""
        return [g.name for g in self.gates if not g.passed]

    def summary(self) -> str:
        """``promoted`` or ``blocked by ...: <detail>``."""
        if self.promote:
            return "promoted: " + "; ".join(f"{g.name} ok" for g in self.gates)
        return "blocked by " + "; ".join(f"{g.name}: {g.detail}" for g in self.gates if not g.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"promote": self.promote, "blocked_by": self.blocked_by, "gates": [asdict(g) for g in self.gates]}


def quality_gate(outcomes: Sequence[ValidationOutcome], docs_url: str | None = None) -> GateResult:
    """Pass when every suite succeeded; the detail names each failed expectation and column, and the docs page."""
    failed = [o for o in outcomes if not o.success]
    metrics = {
        "suites": float(len(outcomes)),
        "suites_failed": float(len(failed)),
        "expectations_failed": float(sum(len(o.failures) for o in outcomes)),
    }
    if not outcomes:
        return GateResult(QUALITY_GATE, False, "no suite was validated", metrics)
    if not failed:
        return GateResult(QUALITY_GATE, True, f"{len(outcomes)} suites green", metrics)
    detail = " | ".join(o.summary() for o in failed)
    pages = [o.docs_page for o in failed if o.docs_page]
    if docs_url and pages:
        detail += f" (data docs: {docs_url.rstrip('/')}/{pages[0]})"
    return GateResult(QUALITY_GATE, False, detail, metrics)


def drift_gate(report: DriftReport) -> GateResult:
    """Pass unless a feature drifted to the policy's *block* level; the detail names it with its PSI."""
    worst = report.features[0] if report.features else None
    metrics = {
        "features": float(len(report.features)),
        "features_blocking": float(len(report.at_least(DriftLevel.BLOCK))),
        "features_retrain": float(len(report.at_least(DriftLevel.RETRAIN))),
        "max_psi": float(worst.psi) if worst else 0.0,
        "max_kl": float(max((f.kl for f in report.features), default=0.0)),
    }
    passed = report.level != DriftLevel.BLOCK
    return GateResult(DRIFT_GATE, passed, report.summary(), metrics)


def performance_gate(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    metric: str = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    higher_is_better: bool = True,
    window: str = "",
) -> GateResult:
    """Pass when the challenger's ``metric`` is within ``tolerance`` (relative) of the champion's or better.

    Both sets of metrics should come from the same evaluation window; ``window`` says which one was
    used (it ends the detail recorded on the run). Without a champion the gate passes.
    """
    if metric not in challenger:
        return GateResult(PERFORMANCE_GATE, False, f"the challenger has no metric {metric}")
    value = float(challenger[metric])
    if champion is None or metric not in champion:
        return GateResult(PERFORMANCE_GATE, True, f"no champion to beat ({metric} {value:.4f})", {"challenger": value})
    best = float(champion[metric])
    floor = best - tolerance * abs(best) if higher_is_better else best + tolerance * abs(best)
    passed = value >= floor if higher_is_better else value <= floor
    verb = "within tolerance of" if passed else "worse than"
    detail = f"{metric} {value:.4f} {verb} the champion's {best:.4f} (tolerance {tolerance:.0%})"
    if window:
        detail += f", on {window}"
    return GateResult(PERFORMANCE_GATE, passed, detail, {"challenger": value, "champion": best, "floor": floor})


def record_gates(tracking_uri: str, run_id: str, decision: PromotionDecision) -> None:
    """Write every gate's verdict, detail and figures, and the decision, on an MLflow run."""
    import time

    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    tags: list[RunTag] = []
    metrics: list[Metric] = []
    for gate in decision.gates:
        tags.append(RunTag(f"gate.{gate.name}", "passed" if gate.passed else "failed"))
        tags.append(RunTag(f"gate.{gate.name}.detail", gate.detail[:_MAX_TAG]))
        metrics.append(Metric(f"gate.{gate.name}.passed", 1.0 if gate.passed else 0.0, now, 0))
        metrics.extend(Metric(f"gate.{gate.name}.{key}", float(value), now, 0) for key, value in gate.metrics.items())
    tags.append(RunTag("promotion.decision", "promoted" if decision.promote else "blocked"))
    tags.append(RunTag("promotion.blocked_by", ",".join(decision.blocked_by) or "-"))
    # One request: a run records all of its gates or none of them.
    MlflowClient(tracking_uri=tracking_uri).log_batch(run_id, metrics=metrics, tags=tags)


def run_of_version(tracking_uri: str, two_tower_version: str) -> str:
    """The MLflow run that trained a two-tower version.

    Raises:
        LookupError: The version has no run.
    """
    from mlflow.tracking import MlflowClient

    from lambdarec import names

    run_id = MlflowClient(tracking_uri=tracking_uri).get_model_version(names.TWO_TOWER_MODEL, two_tower_version).run_id
    if not run_id:
        raise LookupError(f"{names.TWO_TOWER_MODEL} version {two_tower_version} has no run to record the gates on")
    return str(run_id)


def gate_promotion(
    tracking_uri: str,
    two_tower_version: str,
    gates: Sequence[GateResult],
    *,
    milvus_client: Any = None,
) -> PromotionDecision:
    """Record the gates on the version's run and, only if all passed, promote it.

    Promotion moves the ``champion`` alias of both models (:func:`lambdarec.tracking.mlflow_log.promote`)
    and, with a Milvus client, the item-index alias to the version's collection
    (:func:`lambdarec.index.milvus.swap_alias`). Recording comes first: a blocked run says why.

    Args:
        tracking_uri: MLflow tracking server.
        two_tower_version: The challenger's two-tower version (its DeepFM comes from the same run).
        gates: The gates' verdicts.
        milvus_client: A connected Milvus client, to swap the index alias too (None: models only).

    Returns:
        The decision.
    """
    from lambdarec.tracking.mlflow_log import promote

    decision = PromotionDecision(list(gates))
    run_id = run_of_version(tracking_uri, two_tower_version)
    record_gates(tracking_uri, run_id, decision)
    if decision.promote:
        promote(tracking_uri, two_tower_version)
        if milvus_client is not None:
            from lambdarec.index.milvus import swap_alias

            swap_alias(milvus_client, two_tower_version)
    return decision

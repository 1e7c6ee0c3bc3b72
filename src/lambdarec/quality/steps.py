"""The steps of the Airflow DAGs, as plain functions of the settings and the data interval's date.

``dags/`` only wires these together; the CLI and tests call the same functions. Each step is
idempotent for its date: it rebuilds that date's outputs (the batch layer overwrites a date's
partitions, validation results are keyed by the date, reports are overwritten), so a rerun of
an interval is safe. Steps return small JSON-ready dicts (they travel as XCom).

Policy, in one place:

- ``daily_features``: GX on the day's silver events and gold item stats must be green before the
  day's features are materialized into the online store (:class:`QualityGateError` otherwise);
- ``weekly_retrain``: GX (latest day), drift between the training window and the latest day
  (block level), and challenger vs champion form the promotion gate
  (:mod:`lambdarec.quality.gates`); every gate is recorded on the challenger's MLflow run;
- ``drift_monitor``: drift of the latest day against the 28 days before it (the data), and of the
  query inputs the recommender served that day against the champion's training reference (the
  model's inputs, :func:`served_drift_report`); *retrain*-level drift is the reason to retrain
  (reported, an alert written), it never blocks anything by itself.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from lambdarec.settings import Settings, load_settings

log = logging.getLogger(__name__)

DRIFT_FEATURES = ("price", "event_type", "category", "brand")
"""Silver event columns the drift checks compare (what the models' inputs are built from)."""
REFERENCE_DAYS = 28
TRAINING_REFERENCE_DAYS = 7
SILVER_PARTITION = "event_date"


class QualityGateError(RuntimeError):
    """A quality gate failed: the message names the failed expectations (or drifted features)."""


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_settings()


def _as_of_ms(day: str) -> int:
    from lambdarec.batch.lake import day_start_ms, parse_date

    return day_start_ms(parse_date(day) + timedelta(days=1))


def _lake(settings: Settings) -> Any:
    from lambdarec.batch.lake import Lake

    return Lake.under(settings.state_dir)


def silver_dates(settings: Settings) -> list[str]:
    """The dates silver holds, oldest first."""
    folder = _lake(settings).silver
    return sorted(p.name.split("=", 1)[1] for p in folder.glob(f"{SILVER_PARTITION}=*")) if folder.exists() else []


def silver_window(settings: Settings, first: date, last: date) -> pd.DataFrame:
    """Silver events of the dates in ``[first, last]`` that exist, each with its ``event_date`` (an empty
    frame when none)."""
    from lambdarec.quality.frames import read_partition

    folder = _lake(settings).silver
    frames = [
        read_partition(folder, day, SILVER_PARTITION).assign(**{SILVER_PARTITION: day})
        for day in silver_dates(settings)
        if first.isoformat() <= day <= last.isoformat()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_daily_batch(day: str, settings: Settings | None = None) -> dict[str, Any]:
    """Kafka → bronze → silver → gold for ``day`` by the packaged Spark jobs under ``spark-submit``; no materialize.

    The jobs run as a cluster runs them (:func:`lambdarec.batch.submit.submit_daily_batch`, master
    ``Settings.spark_master``); ``lambdarec batch run`` runs the same stages in process. Earlier
    dates whose gold is missing are built in the same pass: the DAG does not catch up
    (``catchup=False``), so its first run on a lake with history is what gives the weekly
    retrain gold for every date it trains on. A rerun rebuilds ``day`` alone.

    Returns:
        The batch summary (stages, bronze / silver / gold reports, Feast apply) and ``submitted``:
        the archive, launcher and each job's command line, wall time and log.
    """
    from lambdarec.batch.submit import submit_daily_batch

    return submit_daily_batch(_settings(settings), day)


def validate_day(day: str, settings: Settings | None = None, *, raise_on_failure: bool = True) -> dict[str, Any]:
    """GX on ``day``'s silver events (reference: the 7 days before) and gold item stats (reference: the day before).

    Raises:
        QualityGateError: A suite failed (with ``raise_on_failure``); the message names each failed
            expectation and column.
        FileNotFoundError: ``day`` has no silver partition.
    """
    from lambdarec.batch.gold import ITEM_STATS
    from lambdarec.batch.lake import parse_date
    from lambdarec.quality.frames import read_partition
    from lambdarec.quality.validation import validate

    chosen = _settings(settings)
    lake = _lake(chosen)
    current = parse_date(day)
    reference = silver_window(chosen, current - timedelta(days=TRAINING_REFERENCE_DAYS), current - timedelta(days=1))
    outcomes = [
        validate(
            read_partition(lake.silver, day, SILVER_PARTITION),
            "silver_events",
            state_dir=chosen.state_dir,
            reference=reference if len(reference) else None,
            as_of_ms=_as_of_ms(day),
            run_name=day,
        )
    ]
    gold = lake.gold(ITEM_STATS)
    if (gold / f"date={day}").exists():
        previous = (current - timedelta(days=1)).isoformat()
        gold_reference = read_partition(gold, previous) if (gold / f"date={previous}").exists() else None
        outcomes.append(
            validate(
                read_partition(gold, day),
                "gold_item_stats",
                state_dir=chosen.state_dir,
                reference=gold_reference,
                run_name=day,
            )
        )
    failed = [o for o in outcomes if not o.success]
    if failed and raise_on_failure:
        raise QualityGateError(" | ".join(o.summary() for o in failed))
    return {"day": day, "success": not failed, "outcomes": [o.to_dict() for o in outcomes]}


def materialize_day(day: str, settings: Settings | None = None) -> dict[str, Any]:
    """Load ``day``'s gold snapshots into the online store (the snapshot of ``day`` is stamped 00:00 next day)."""
    from datetime import UTC, datetime

    from lambdarec.featurestore.store import materialize

    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    report = materialize(_settings(settings), start, start + timedelta(days=2))
    return {"day": day, **{k: v for k, v in vars(report).items() if isinstance(v, int | float | str | list | dict)}}


def drift_report(
    day: str, settings: Settings | None = None, *, reference_days: int = REFERENCE_DAYS, write: bool = True
) -> dict[str, Any]:
    """PSI / KL of ``day``'s silver events against the ``reference_days`` before it, per :data:`DRIFT_FEATURES`.

    The levels account for sampling noise: a feature drifts only beyond both the policy's band and
    ``noise_margin`` times the largest drift of one reference day from the whole reference.

    Writes ``<state>/quality/drift/<day>.json`` (overwritten on a rerun).

    Raises:
        FileNotFoundError: No reference or no current events.
    """
    from lambdarec.batch.lake import parse_date
    from lambdarec.quality.drift import compare

    chosen = _settings(settings)
    current_day = parse_date(day)
    reference = silver_window(chosen, current_day - timedelta(days=reference_days), current_day - timedelta(days=1))
    current = silver_window(chosen, current_day, current_day)
    if reference.empty or current.empty:
        raise FileNotFoundError(
            f"drift of {day}: {len(reference)} reference and {len(current)} current silver events; both must exist"
        )
    features = [f for f in DRIFT_FEATURES if f in reference.columns]
    # Each reference day's own drift from the whole reference is the noise floor: on a small shop a
    # clean day's category mix moves by chance more than the policy's bands (see the drift policy).
    report = compare(reference, current, features, by=SILVER_PARTITION)
    out = {"day": day, "reference_rows": len(reference), "current_rows": len(current), **report.to_dict()}
    out["summary"] = report.summary()
    if write:
        out["path"] = str(_write_drift_report(chosen, day, out))
    return out


def served_drift_report(day: str, settings: Settings | None = None, *, write: bool = True) -> dict[str, Any]:
    """PSI / KL of the query inputs the recommender served on ``day`` against the champion's training reference.

    The production side is the served-features log (``features.served``, sampled at
    ``serving.feature_log_rate``) restricted to the champion's requests; the reference is the one
    saved in the champion's bundle at training (with its per-day noise floor). Writes
    ``<state>/quality/drift/served-<day>.json``.

    Returns:
        The report (``measured`` True), or ``measured`` False with the ``reason`` when there is
        nothing to compare yet: no registry (MLflow neither configured nor started: nothing can be
        served), no champion, a champion trained before references were saved, or no request
        answered by the champion that day. A configured MLflow or Kafka that does not answer raises.
    """
    import tempfile
    from datetime import UTC, datetime, time

    from lambdarec import names
    from lambdarec.events.admin import kafka_bootstrap
    from lambdarec.quality.served import REFERENCE_FILE, compare_served, served_features
    from lambdarec.runtime.errors import ServiceNotRunningError
    from lambdarec.serving.feature_log import MODEL_FIELD, read_served_features
    from lambdarec.tracking.mlflow_log import alias_version, download_bundle
    from lambdarec.vectors import mlflow_tracking_uri

    chosen = _settings(settings)
    out: dict[str, Any] = {"day": day, "kind": "served", "measured": False, "level": "stable"}
    try:
        uri = mlflow_tracking_uri(chosen)
    except ServiceNotRunningError as err:
        return {**out, "reason": f"no model registry: {err}"}
    version = alias_version(uri, names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS)
    if version is None:
        return {**out, "reason": "no champion model yet: nothing is served by a trained model"}
    out["model_version"] = version
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_bundle(uri, version, Path(tmp))
        path = folder / REFERENCE_FILE
        reference = json.loads(path.read_text()) if path.is_file() else None
    if reference is None:
        return {**out, "reason": f"champion v{version} was trained without a drift reference; retrain it"}
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=UTC)
    start_ms = int(start.timestamp() * 1000)
    served = read_served_features(kafka_bootstrap(chosen), start_ms, start_ms + 86_400_000)
    others = int((served[MODEL_FIELD] != version).sum()) if len(served) else 0
    mine = served[served[MODEL_FIELD] == version] if len(served) else served
    out.update(reference_rows=int(reference["rows"]), current_rows=len(mine), other_versions_rows=others)
    if mine.empty:
        rate = chosen.serving.feature_log_rate
        return {
            **out,
            "reason": f"no request answered by v{version} was logged on {day} "
            f"(serving.feature_log_rate {rate}; {others} rows of other versions)",
        }
    report = compare_served(reference, mine[list(served_features())])
    out.update(measured=True, **report.to_dict())
    out["summary"] = f"served inputs of v{version} vs its training: {report.summary()}"
    if write:
        out["path"] = str(_write_drift_report(chosen, f"served-{day}", out))
    return out


def _write_drift_report(settings: Settings, name: str, report: dict[str, Any]) -> Path:
    """Write a drift report to ``<state>/quality/drift/<name>.json`` (overwritten on a rerun)."""
    from lambdarec.quality.validation import gx_root

    path = gx_root(settings.state_dir) / "drift" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def alert_on_drift(report: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Write an alert (``<state>/quality/alerts/<report name>.json``) and log a warning when a feature drifted.

    Drift is the reason to retrain, never a failure of the monitor: this step succeeds either way.
    The alert is named after the report (``<day>`` for the data, ``served-<day>`` for the served inputs).
    """
    from lambdarec.quality.validation import gx_root

    level = str(report.get("level", "stable"))
    if level == "stable":
        return {"alerted": False, "level": level}
    name = Path(str(report["path"])).stem if report.get("path") else str(report["day"])
    path = gx_root(_settings(settings).state_dir) / "alerts" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"level": level, "summary": report.get("summary"), "report": report.get("path")}) + "\n")
    log.warning("drift on %s (%s): %s", report["day"], level, report.get("summary"))
    return {"alerted": True, "level": level, "path": str(path)}


def train_challenger(
    settings: Settings | None = None, *, train_budget_s: float = 450.0, run_name: str = "latest"
) -> dict[str, Any]:
    """Train both models through the feature store, log and register them (challenger) and build their index.

    Before anything is registered, :func:`judge_training` validates the training examples and scores
    the current champion on the challenger's test window; both go to the promotion gate (``judged``).

    Args:
        settings: The environment.
        train_budget_s: Training-time budget of both models.
        run_name: Name of the examples' validation run (the DAG passes its day).
    """
    from lambdarec.models.commands import run_models_stage

    chosen = _settings(settings)

    def judge(split: Any, source: Any) -> dict[str, Any]:
        return judge_training(chosen, split, source, run_name=run_name)

    # Even the first model ever waits for the gates: promotion is decide_promotion's alone.
    summary = run_models_stage(
        chosen, label="lake", promote=False, train_budget_s=train_budget_s, judge=judge, first_becomes_champion=False
    )
    keep = ("run_id", "two_tower_version", "deepfm_version", "champion", "train_from_store_s", "index", "judged")
    return {k: summary[k] for k in keep if k in summary}


def judge_training(settings: Settings, split: Any, source: Any, *, run_name: str = "latest") -> dict[str, Any]:
    """What the promotion gate needs from a training run, computed before its versions are registered.

    - ``examples``: the ``training_examples`` suite on the split's training examples (reference for
      the learned bounds: the examples before their latest day);
    - ``champion_same_window``: the current champion's bundle scored on the challenger's own test
      window (:func:`lambdarec.models.commands.evaluate_version_on_split`), so the performance gate
      compares like with like; None without a champion, ``{"version", "error"}`` when its bundle
      cannot be scored here (the gate then falls back to the metrics logged on the champion's run).
    """
    from lambdarec import names
    from lambdarec.models.commands import evaluate_version_on_split
    from lambdarec.quality.frames import examples_frame
    from lambdarec.quality.validation import validate
    from lambdarec.tracking.mlflow_log import alias_version
    from lambdarec.vectors import mlflow_tracking_uri

    frame = examples_frame(split.train)
    last_day_ms = int(frame["time_ms"].max()) // 86_400_000 * 86_400_000 if len(frame) else 0
    earlier = frame[frame["time_ms"] < last_day_ms]
    outcome = validate(
        frame,
        "training_examples",
        state_dir=settings.state_dir,
        reference=earlier if len(earlier) else None,
        run_name=run_name,
    )
    uri = mlflow_tracking_uri(settings)
    champion = alias_version(uri, names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS)
    same_window: dict[str, Any] | None = None
    if champion is not None:
        try:
            same_window = evaluate_version_on_split(uri, champion, split, source)
        except Exception as err:  # noqa: BLE001 - a champion we cannot score must not lose the challenger's run
            log.warning("champion v%s could not be scored on the challenger's window: %s", champion, err)
            same_window = {"version": champion, "error": f"{type(err).__name__}: {err}"}
    return {"examples": outcome.to_dict(), "champion_same_window": same_window}


def run_metrics(run_id: str, settings: Settings | None = None) -> dict[str, float]:
    """The metrics logged on an MLflow run."""
    from mlflow.tracking import MlflowClient

    from lambdarec.vectors import mlflow_tracking_uri

    client = MlflowClient(tracking_uri=mlflow_tracking_uri(_settings(settings)))
    return {k: float(v) for k, v in client.get_run(run_id).data.metrics.items()}


def champion_run(settings: Settings | None = None) -> str | None:
    """The MLflow run of the current champion two-tower version (None without a champion)."""
    from mlflow.tracking import MlflowClient

    from lambdarec import names
    from lambdarec.vectors import mlflow_tracking_uri

    client = MlflowClient(tracking_uri=mlflow_tracking_uri(_settings(settings)))
    try:
        return str(client.get_model_version_by_alias(names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS).run_id)
    except Exception:  # MlflowException: no such alias or model
        return None


def decide_promotion(
    challenger: dict[str, Any],
    validation: dict[str, Any],
    drift: dict[str, Any],
    settings: Settings | None = None,
    *,
    swap_index: bool = True,
) -> dict[str, Any]:
    """The promotion gate of ``weekly_retrain``: record every gate on the challenger's run, promote if all pass.

    Args:
        challenger: What :func:`train_challenger` returned.
        validation: What :func:`validate_day` returned (with ``raise_on_failure=False``).
        drift: What :func:`drift_report` returned for the training window against the latest day.
        settings: The environment.
        swap_index: Also point the Milvus alias at the challenger's collection when promoted.
    """
    from lambdarec.quality.drift import DriftLevel, DriftPolicy, DriftReport, FeatureDrift
    from lambdarec.quality.gates import drift_gate, gate_promotion, performance_gate, quality_gate
    from lambdarec.quality.validation import Failure, ValidationOutcome
    from lambdarec.vectors import mlflow_tracking_uri

    chosen = _settings(settings)
    outcomes = [
        ValidationOutcome(**{**o, "failures": [Failure(**f) for f in o["failures"]]}) for o in validation["outcomes"]
    ]
    report = DriftReport(
        [
            FeatureDrift(**{**f, "level": DriftLevel(f["level"]), "top_bins": [tuple(b) for b in f["top_bins"]]})
            for f in drift["features"]
        ],
        DriftPolicy(**drift["policy"]),
    )
    judged = challenger.get("judged") or {}
    if judged.get("examples"):
        examples = judged["examples"]
        outcomes.append(ValidationOutcome(**{**examples, "failures": [Failure(**f) for f in examples["failures"]]}))
    champion = champion_run(chosen)
    challenger_metrics = run_metrics(challenger["run_id"], chosen)
    # When the champion is the challenger itself (the first model ever) there is nothing to beat. Otherwise
    # compare on the challenger's test window (the champion re-scored there before registration); only when
    # that failed, on the metrics the champion's own run logged for its own, older window.
    window = "the champion's own window"
    champion_metrics = None
    if champion is not None and champion != challenger["run_id"]:
        same = judged.get("champion_same_window") or {}
        if same.get("metrics"):
            champion_metrics, window = same["metrics"], f"the same window ({same.get('examples')} test examples)"
        else:
            champion_metrics = run_metrics(champion, chosen)
    gates = [
        quality_gate(outcomes),
        drift_gate(report),
        performance_gate(challenger_metrics, champion_metrics, window=window),
    ]
    client = None
    if swap_index:
        from lambdarec.index.milvus import connect_settings

        client = connect_settings(chosen)
    try:
        decision = gate_promotion(
            mlflow_tracking_uri(chosen), str(challenger["two_tower_version"]), gates, milvus_client=client
        )
    finally:
        if client is not None:
            client.close()
    return {"run_id": challenger["run_id"], **decision.to_dict(), "summary": decision.summary()}


def gate_trained_models(models: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """``weekly_retrain``'s gates over models already trained (the demo's models stage), for the latest day.

    GX on the latest silver day (:func:`validate_day`, recorded not raised), its drift against the
    week before (:func:`drift_report`; a lake of one day has no reference, and the drift gate then
    judges no feature, saying so), and the promotion gate (:func:`decide_promotion`), which records
    every verdict on the models' MLflow run.

    Args:
        models: What :func:`lambdarec.models.commands.run_models_stage` returned.
        settings: The environment.

    Returns:
        The decision (``promote``, ``blocked_by``, ``gates``, ``summary``), the day, and links:
        ``mlflow_run_url`` (the run whose tags show the gates) and ``data_docs`` (the day's page).
    """
    from mlflow.tracking import MlflowClient

    from lambdarec.quality.drift import DriftPolicy, DriftReport
    from lambdarec.quality.validation import site_dir
    from lambdarec.vectors import mlflow_tracking_uri

    chosen = _settings(settings)
    dates = silver_dates(chosen)
    if not dates:
        raise FileNotFoundError(f"no silver events under {_lake(chosen).silver}: run the batch layer first")
    day = latest_complete_day(dates, [_silver_rows(chosen, d) for d in dates])
    validation = validate_day(day, chosen, raise_on_failure=False)
    try:
        drift = drift_report(day, chosen, reference_days=TRAINING_REFERENCE_DAYS)
    except FileNotFoundError as err:
        drift = {"day": day, **DriftReport([], DriftPolicy()).to_dict(), "summary": str(err)}
    decision = decide_promotion(models, validation, drift, chosen)
    uri = mlflow_tracking_uri(chosen)
    experiment = MlflowClient(tracking_uri=uri).get_run(str(models["run_id"])).info.experiment_id
    pages = [o["docs_page"] for o in validation["outcomes"] if o.get("docs_page")]
    return {
        "day": day,
        **decision,
        "drift": drift.get("summary"),
        "mlflow_run_url": f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{models['run_id']}",
        "data_docs": (site_dir(chosen.state_dir) / pages[0]).resolve().as_uri() if pages else None,
    }


def _silver_rows(settings: Settings, day: str) -> int:
    import pyarrow.dataset as ds

    return int(ds.dataset(str(_lake(settings).silver / f"{SILVER_PARTITION}={day}"), format="parquet").count_rows())


def latest_complete_day(dates: list[str], rows: list[int], *, share: float = 0.25, window: int = 7) -> str:
    """The latest date that is not a trailing partial day: one with fewer rows than ``share`` of the
    median of the ``window`` dates before it (a replayed dataset that ends mid-day, sessions spilling
    past its last midnight; a few live events of today after a replay of last year) — stepping back
    over each such day.

    A partial day is not a shift in the shop: judged against full days, its prices and categories
    look drifted and its GX bounds fail, which says nothing about the data the models learned from.
    """
    import statistics

    last = len(dates) - 1
    while last > 0 and rows[last] < share * statistics.median(rows[max(0, last - window) : last]):
        last -= 1
    return dates[last]


def docs_index(settings: Settings | None = None) -> Path:
    """The data-docs site's index page under the state folder."""
    from lambdarec.quality.validation import site_dir

    return site_dir(_settings(settings).state_dir) / "index.html"


def interval_day(data_interval_end: Any) -> str:
    """The date a run processes: the day before its data interval's end (``YYYY-MM-DD``).

    A daily run whose interval ends at 00:00 of D+1 processes D, whichever timetable made the
    interval (Airflow 3's cron trigger timetable gives a zero-length interval ending at the run's
    moment); never ``now()``, so a rerun of the same interval processes the same day.
    """
    from datetime import datetime

    end = data_interval_end
    if not isinstance(end, datetime):
        end = datetime.fromisoformat(str(end))
    return (end - timedelta(days=1)).date().isoformat()

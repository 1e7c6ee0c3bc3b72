"""Log a trained two-stage recommender to MLflow and register both models with aliases.

Each run records the hyper-parameters, the feature-service versions the models consume
(:data:`lambdarec.names.RETRIEVAL_FEATURE_SERVICE`, :data:`~lambdarec.names.RANKING_FEATURE_SERVICE`),
the dataset spec and fingerprint, per-epoch loss curves, the evaluation table, plots, the
catalogue and item embeddings (what ``lambdarec index build`` reads), and both models with
signatures. New versions get the ``challenger`` alias; ``champion`` moves on promotion
(or is set on the first version ever).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lambdarec import names
from lambdarec.runtime.errors import RuntimeServiceError

BUNDLE_ARTIFACT = "bundle"
"""Artifact folder of a run holding the serving bundle (:mod:`lambdarec.models.bundle`)."""
EXPERIMENT = "lambdarec-models"
EMBEDDINGS_ARTIFACT = "index/item_embeddings.npy"
ITEM_IDS_ARTIFACT = "index/item_ids.json"


@dataclass
class TrackedRun:
    """Where a training run went.

    Attributes:
        run_id: The MLflow run.
        two_tower_version: Registered version of :data:`~lambdarec.names.TWO_TOWER_MODEL`.
        deepfm_version: Registered version of :data:`~lambdarec.names.DEEPFM_MODEL`.
        champion: Whether these versions were made champion.
    """

    run_id: str
    two_tower_version: str
    deepfm_version: str
    champion: bool


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _metric_key(text: str) -> str:
    text = text.replace("@", "_at_")
    return "".join(c if c.isalnum() or c in "._-/" else "_" for c in text)


def log_training_run(
    tracking_uri: str,
    recommender: Any,
    evaluation: Any,
    *,
    dataset: str,
    promote: bool = False,
    experiment: str = EXPERIMENT,
    first_becomes_champion: bool = True,
    reference: Mapping[str, Any] | None = None,
) -> TrackedRun:
    """Log one trained :class:`~lambdarec.models.pipeline.TwoStageRecommender` and register its models.

    Args:
        tracking_uri: MLflow tracking server (or a ``file:`` / ``sqlite:`` store in tests).
        recommender: The trained recommender.
        evaluation: Its :class:`~lambdarec.evaluate.report.EvaluationResult`.
        dataset: Dataset spec the models were trained on.
        promote: Make the new versions ``champion`` (they are always ``challenger``).
        experiment: MLflow experiment name.
        first_becomes_champion: With no champion yet, make these versions champion (the demo and
            ``lambdarec train``); False leaves that to a promotion gate (``weekly_retrain``).
        reference: The drift reference of the training inputs
            (:func:`lambdarec.quality.served.training_reference`), saved in the bundle for ``drift_monitor``.
    """
    import mlflow
    import torch
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from lambdarec.evaluate.report import write_report
    from lambdarec.models.bundle import save_bundle
    from lambdarec.models.export import DeepFMScorer, QueryEncoder, query_input_example, ranker_input_example

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    params: dict[str, Any] = {}
    _flatten("two_tower", asdict(recommender.config.two_tower), params)
    _flatten("deepfm", asdict(recommender.config.deepfm), params)
    params.update(
        retrieval_k=recommender.config.retrieval_k,
        neighbour_k=recommender.config.neighbour_k,
        ranker_fraction=recommender.config.ranker_fraction,
        negatives=recommender.config.negatives,
        query_feature_service=names.QUERY_FEATURE_SERVICE,
        candidate_feature_service=names.CANDIDATE_FEATURE_SERVICE,
        neighbour_feature_service=names.NEIGHBOUR_FEATURE_SERVICE,
        dataset=dataset,
        dataset_fingerprint=evaluation.fingerprint,
        vocabulary_items=recommender.vocab.n_items - 1,
        index_items=len(recommender.index_ids),
    )
    with mlflow.start_run(run_name=f"two-stage {dataset.split(':')[0]}") as run:
        mlflow.set_tags(
            {
                "dataset": dataset,
                "dataset_fingerprint": evaluation.fingerprint,
                "feature_services": ",".join(
                    (names.QUERY_FEATURE_SERVICE, names.CANDIDATE_FEATURE_SERVICE, names.NEIGHBOUR_FEATURE_SERVICE)
                ),
            }
        )
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics: dict[str, float] = {}
        for row in evaluation.rows:
            for key, value in row.items():
                if key != "method":
                    metrics[_metric_key(f"{row['method'].split(' ')[0]}.{key}")] = float(value)
        metrics.update({_metric_key(k): float(v) for k, v in evaluation.ranker.items() if np.isfinite(v)})
        for key in ("two_tower_train_s", "deepfm_train_s", "two_tower_refit_s", "ranker_rows"):
            if key in evaluation.training:
                metrics[key] = float(evaluation.training[key])
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        for model_name, history in (
            ("two_tower", recommender.retrieval.history),
            ("deepfm", recommender.ranker.history),
        ):
            for epoch, (train, val) in enumerate(zip(history.train_loss, history.validation_loss, strict=False)):
                mlflow.log_metric(f"{model_name}.train_loss", train, step=epoch)
                if np.isfinite(val):
                    mlflow.log_metric(f"{model_name}.validation_loss", val, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_report(evaluation, folder / "evaluation")
            mlflow.log_artifacts(str(folder / "evaluation"), "evaluation")
            # The serving bundle: weights, vocabulary, normalisation, feature services, index vectors.
            save_bundle(
                recommender,
                folder / "bundle",
                extra={"dataset": dataset, "dataset_fingerprint": evaluation.fingerprint, "run_id": run.info.run_id},
            )
            if reference is not None:
                from lambdarec.quality.served import REFERENCE_FILE

                (folder / "bundle" / REFERENCE_FILE).write_text(json.dumps(reference) + "\n")
            mlflow.log_artifacts(str(folder / "bundle"), BUNDLE_ARTIFACT)
        # Pinned explicitly: inferring requirements would load the model in a subprocess.
        requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}", "lambdarec"]

        def log_module(module: Any, example: dict[str, Any], name: str, registered: str) -> Any:
            # The signature comes from a real forward pass on a real input example.
            with torch.no_grad():
                output = module(*[torch.from_numpy(v) for v in example.values()]).numpy()
            return mlflow.pytorch.log_model(
                module,
                name=name,
                signature=infer_signature(example, output),
                registered_model_name=registered,
                serialization_format="pickle",
                pip_requirements=requirements,
            )

        tt_info = log_module(
            QueryEncoder(recommender.retrieval.net),
            query_input_example(recommender),
            "two_tower",
            names.TWO_TOWER_MODEL,
        )
        fm_info = log_module(
            DeepFMScorer(recommender.ranker.net), ranker_input_example(recommender), "deepfm", names.DEEPFM_MODEL
        )
        run_id = run.info.run_id
    client = MlflowClient(tracking_uri=tracking_uri)
    tt_version = str(tt_info.registered_model_version)
    fm_version = str(fm_info.registered_model_version)
    champion = promote or (
        first_becomes_champion and not _has_alias(client, names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS)
    )
    for model_name, version in ((names.TWO_TOWER_MODEL, tt_version), (names.DEEPFM_MODEL, fm_version)):
        client.set_registered_model_alias(model_name, names.CHALLENGER_ALIAS, version)
        client.set_model_version_tag(model_name, version, "dataset_fingerprint", evaluation.fingerprint)
        client.set_model_version_tag(model_name, version, "run_id", run_id)
        client.set_model_version_tag(
            model_name,
            version,
            "feature_service",
            names.QUERY_FEATURE_SERVICE
            if model_name == names.TWO_TOWER_MODEL
            else f"{names.QUERY_FEATURE_SERVICE},{names.CANDIDATE_FEATURE_SERVICE},{names.NEIGHBOUR_FEATURE_SERVICE}",
        )
        if champion:
            client.set_registered_model_alias(model_name, names.CHAMPION_ALIAS, version)
    return TrackedRun(run_id, tt_version, fm_version, champion)


def _has_alias(client: Any, model_name: str, alias: str) -> bool:
    try:
        client.get_model_version_by_alias(model_name, alias)
    except Exception:  # MlflowException: alias or model not found
        return False
    return True


class TrackingUnavailableError(RuntimeServiceError):
    """The MLflow tracking server does not answer; nothing was changed."""


def require_tracking(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast when an HTTP tracking server does not answer its health check.

    MLflow's client retries a refused connection for about four minutes (7 retries, backoff
    factor 2) before it raises; a command that moves aliases checks first, so that it fails in
    seconds with a clear message, before it has moved anything.

    Raises:
        TrackingUnavailableError: The server does not answer ``/health`` within ``timeout_s``.
    """
    import urllib.error
    import urllib.request

    if not tracking_uri.startswith(("http://", "https://")):
        return  # a file or database store: nothing to reach
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http(s) only, checked above
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as err:
        problem = str(getattr(err, "reason", err))
    raise TrackingUnavailableError(
        f"the MLflow tracking server at {tracking_uri} does not answer ({problem}); nothing was changed: "
        "start it (`lambdarec services up mlflow`) and run the command again"
    )


def alias_version(tracking_uri: str, model_name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist.

    Raises:
        MlflowException: Any other failure (a server that does not answer is not "no alias").
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as err:
        # An unknown alias is INVALID_PARAMETER_VALUE, an unknown model RESOURCE_DOES_NOT_EXIST.
        if err.error_code in {ErrorCode.Name(INVALID_PARAMETER_VALUE), ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)}:
            return None
        raise


def set_alias(tracking_uri: str, model_name: str, alias: str, version: str) -> None:
    """Point ``alias`` of ``model_name`` at ``version``."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(model_name, alias, version)


def promote(tracking_uri: str, two_tower_version: str) -> dict[str, str]:
    """Make a two-tower version and the DeepFM version trained in the same run ``champion``.

    Returns:
        Model name -> the version now champion.

    Raises:
        ValueError: When no DeepFM version comes from the same run.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = client.get_model_version(names.TWO_TOWER_MODEL, two_tower_version).run_id
    ranker = [v for v in client.search_model_versions(f"name='{names.DEEPFM_MODEL}'") if v.run_id == run_id]
    if not ranker:
        raise ValueError(f"no {names.DEEPFM_MODEL} version was trained in run {run_id}")
    versions = {names.TWO_TOWER_MODEL: str(two_tower_version), names.DEEPFM_MODEL: str(ranker[0].version)}
    before = {model_name: alias_version(tracking_uri, model_name, names.CHAMPION_ALIAS) for model_name in versions}
    moved: list[str] = []
    try:
        for model_name, version in versions.items():
            client.set_registered_model_alias(model_name, names.CHAMPION_ALIAS, version)
            moved.append(model_name)
    except Exception:
        # The two champions move together or not at all: put back what already moved.
        for model_name in moved:
            _restore_alias(client, model_name, names.CHAMPION_ALIAS, before[model_name])
        raise
    return versions


def _restore_alias(client: Any, model_name: str, alias: str, version: str | None) -> None:
    if version is None:
        client.delete_registered_model_alias(model_name, alias)
    else:
        client.set_registered_model_alias(model_name, alias, version)


def download_bundle(tracking_uri: str, version: str, dst: Path) -> Path:
    """Download the serving bundle logged with two-tower model ``version`` into ``dst``.

    Raises:
        LookupError: The version has no bundle (trained before bundles existed).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = client.get_model_version(names.TWO_TOWER_MODEL, version).run_id
    mlflow.set_tracking_uri(tracking_uri)
    try:
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BUNDLE_ARTIFACT, dst_path=str(dst))
    except Exception as err:  # MlflowException: no such artifact
        raise LookupError(f"model version {version} (run {run_id}) has no serving bundle; retrain it") from err
    return Path(folder)


def load_item_embeddings(tracking_uri: str, version: str) -> tuple[list[str], np.ndarray]:
    """Item ids and embeddings of two-tower model ``version``'s bundle (for ``index build``)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_bundle(tracking_uri, version, Path(tmp))
        vectors = np.load(folder / "index_vectors.npy")
        item_ids = json.loads((folder / "index_ids.json").read_text())
    return item_ids, vectors

"""The serving bundle: everything a served model needs, and nothing of the training data.

A bundle is a folder logged with each registered model version (MLflow artifact ``bundle/``):

- ``bundle.json``: format, the feature services and the exact fields each model reads,
  candidate settings (retrieval and neighbour depth), hyper-parameters, the ranker's
  normalisation statistics and sparse field sizes, the model versions and dataset fingerprint;
- ``vocabulary.json``: item id map, category / brand vocabularies, price bucket edges, per-item content;
- ``two_tower.pt`` / ``deepfm.pt``: the networks' weights (``state_dict``);
- ``index_ids.json`` / ``index_vectors.npy``: the catalogue-wide item vectors the Milvus
  collection of this version was built from.

:func:`load_bundle` rebuilds a :class:`~lambdarec.models.pipeline.TwoStageRecommender` from it in
any process; :func:`check_feature_services` refuses a bundle whose feature services are not the
ones deployed in a feature store.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lambdarec import names
from lambdarec.models.inputs import CANDIDATE_FIELDS, NEIGHBOUR_FIELDS, QUERY_FIELDS, Vocabulary

if TYPE_CHECKING:
    from feast import FeatureStore

    from lambdarec.models.pipeline import TwoStageRecommender

BUNDLE_FORMAT = 1
FEATURE_SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "query": (names.QUERY_FEATURE_SERVICE, QUERY_FIELDS),
    "candidates": (names.CANDIDATE_FEATURE_SERVICE, CANDIDATE_FIELDS),
    "neighbours": (names.NEIGHBOUR_FEATURE_SERVICE, NEIGHBOUR_FIELDS),
}
"""Role → (feature service, the fields the models read from it)."""


class BundleError(ValueError):
    """A bundle that cannot be loaded or does not match the deployed feature store."""


def save_bundle(recommender: TwoStageRecommender, folder: Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``recommender`` as a serving bundle into ``folder`` (created).

    Args:
        recommender: A trained recommender with its item index built.
        folder: Where the files go.
        extra: More metadata for ``bundle.json`` (model versions, dataset fingerprint, ...).

    Returns:
        ``folder``.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = recommender.config
    meta = {
        "format": BUNDLE_FORMAT,
        "feature_services": {role: {"name": n, "fields": list(f)} for role, (n, f) in FEATURE_SERVICES.items()},
        "candidates": {"retrieval_k": config.retrieval_k, "neighbour_k": config.neighbour_k},
        "pipeline": {
            "two_tower": asdict(config.two_tower),
            "deepfm": {**asdict(config.deepfm), "hidden": list(config.deepfm.hidden)},
            "ranker_fraction": config.ranker_fraction,
            "ranker_queries": config.ranker_queries,
            "negatives": config.negatives,
            "refit_retrieval": config.refit_retrieval,
        },
        "ranker": {
            "field_sizes": recommender.field_sizes,
            "dense_mean": recommender.dense_mean.tolist(),
            "dense_std": recommender.dense_std.tolist(),
        },
        "index": {"items": len(recommender.index_ids), "dim": int(recommender.index_vectors.shape[1])},
        **(extra or {}),
    }
    (folder / "bundle.json").write_text(json.dumps(meta, indent=2))
    (folder / "vocabulary.json").write_text(json.dumps(recommender.vocab.to_dict()))
    torch.save(recommender.retrieval.net.state_dict(), folder / "two_tower.pt")
    torch.save(recommender.ranker.net.state_dict(), folder / "deepfm.pt")
    (folder / "index_ids.json").write_text(json.dumps([str(i) for i in recommender.index_ids]))
    np.save(folder / "index_vectors.npy", recommender.index_vectors)
    return folder


def read_meta(folder: Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder.

    Raises:
        BundleError: No bundle there, or one of another format.
    """
    path = folder / "bundle.json"
    if not path.is_file():
        raise BundleError(f"no serving bundle at {folder} (bundle.json missing)")
    meta: dict[str, Any] = json.loads(path.read_text())
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{folder}: bundle format {meta.get('format')!r}, this version reads {BUNDLE_FORMAT}")
    return meta


def load_bundle(folder: Path) -> TwoStageRecommender:
    """A ready-to-serve recommender from a bundle folder (no training data needed).

    Raises:
        BundleError: The folder is not a bundle, or its feature services are not the ones this
            version of the code reads.
    """
    import torch

    from lambdarec.models.deepfm import DeepFMConfig
    from lambdarec.models.pipeline import PipelineConfig, TwoStageRecommender
    from lambdarec.models.two_tower import TwoTowerConfig

    meta = read_meta(folder)
    for role, (service, fields) in FEATURE_SERVICES.items():
        saved = meta["feature_services"].get(role, {})
        if saved.get("name") != service or tuple(saved.get("fields", ())) != fields:
            raise BundleError(
                f"{folder}: the bundle reads {saved.get('name')!r} for {role}, this code reads {service!r} "
                f"with fields {list(fields)}; retrain, or serve it with the code version it was trained with"
            )
    pipe = meta["pipeline"]
    config = PipelineConfig(
        # Bundles from before the sequence encoders trained the mean one.
        two_tower=TwoTowerConfig(**{"sequence_encoder": "mean", **pipe["two_tower"]}),
        deepfm=DeepFMConfig(**{**pipe["deepfm"], "hidden": tuple(pipe["deepfm"]["hidden"])}),
        retrieval_k=meta["candidates"]["retrieval_k"],
        neighbour_k=meta["candidates"]["neighbour_k"],
        ranker_fraction=pipe["ranker_fraction"],
        ranker_queries=pipe["ranker_queries"],
        negatives=pipe["negatives"],
        # Bundles from before the refit served the two-tower of the retrieval window alone.
        refit_retrieval=pipe.get("refit_retrieval", False),
    )
    vocab = Vocabulary.from_dict(json.loads((folder / "vocabulary.json").read_text()))
    recommender = TwoStageRecommender(vocab, config)
    if recommender.field_sizes != meta["ranker"]["field_sizes"]:
        raise BundleError(f"{folder}: ranker field sizes {meta['ranker']['field_sizes']} do not fit the vocabulary")
    recommender.retrieval.net.load_state_dict(torch.load(folder / "two_tower.pt", weights_only=True))
    recommender.ranker.net.load_state_dict(torch.load(folder / "deepfm.pt", weights_only=True))
    recommender.retrieval.net.eval()
    recommender.ranker.net.eval()
    recommender.dense_mean = np.asarray(meta["ranker"]["dense_mean"], np.float32)
    recommender.dense_std = np.asarray(meta["ranker"]["dense_std"], np.float32)
    ids = json.loads((folder / "index_ids.json").read_text())
    recommender.index_ids = np.array(ids, dtype=object)
    recommender.index_vectors = np.load(folder / "index_vectors.npy")
    recommender._index_row = {item: row for row, item in enumerate(ids)}  # noqa: SLF001 - rebuilt state
    return recommender


def check_feature_services(meta: dict[str, Any], store: FeatureStore) -> None:
    """Refuse a bundle whose feature services are missing from ``store`` or lack a field it reads.

    Raises:
        BundleError: Naming the service and the missing fields.
    """
    for role, saved in meta["feature_services"].items():
        try:
            service = store.get_feature_service(saved["name"])
        except Exception as err:  # FeatureServiceNotFoundException
            raise BundleError(
                f"the bundle's {role} feature service {saved['name']!r} is not deployed in this feature store "
                "(run `lambdarec features apply` with the code the bundle was trained with)"
            ) from err
        deployed = {f.name for projection in service.feature_view_projections for f in projection.features}
        missing = [f for f in saved["fields"] if f not in deployed]
        if missing:
            raise BundleError(f"feature service {saved['name']!r} as deployed lacks {missing} that the bundle reads")

"""The recommender's process-wide state: which model is served, where features and vectors are read.

:class:`ServingApp` is what the BentoML service (``bentos/recommender``) and the gRPC server hold.
It loads the model version behind the MLflow alias (``champion`` by default) from its serving
bundle, pins the Milvus collection of that very version, opens the online store, and answers
through :class:`~lambdarec.serving.path.RequestPath`. Nothing here depends on BentoML.

**Zero-downtime reload.** :meth:`ServingApp.reload_if_changed` (called periodically) loads a new
version completely — bundle, feature-service check, collection — next to the served one, and only
then swaps the :class:`~lambdarec.serving.path.ServedModel` reference, which a batch reads once. It
waits until *both* aliases moved: the MLflow alias names the version and the Milvus alias points
at that version's collection, so a model never searches another model's vectors.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from lambdarec import names
from lambdarec.serving.contract import RecommendRequest, RecommendResponse
from lambdarec.serving.fallbacks import Fallbacks, popular_from_lake, popular_from_vocabulary
from lambdarec.serving.path import RequestPath, ServedModel
from lambdarec.settings import Settings

log = logging.getLogger(__name__)


class MilvusIndex:
    """The query tower's index: a Milvus client searching a named collection.

    Args:
        client: A ``pymilvus.MilvusClient``.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def search(self, vectors: np.ndarray, k: int, collection: str, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` item ids per query vector and their scores (``""`` pads short answers)."""
        from lambdarec.index.milvus import search_items

        hits = search_items(self.client, vectors, k, collection=collection, timeout_s=timeout_s)
        ids = np.full((len(hits), k), "", dtype=object)
        scores = np.zeros((len(hits), k), np.float32)
        for q, row in enumerate(hits):
            for r, (item_id, score) in enumerate(row[:k]):
                ids[q, r], scores[q, r] = item_id, score
        return ids, scores

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def served_version(settings: Settings, client: Any = None) -> tuple[str | None, str]:
    """The version the aliases agree on, or None with the reason they do not (yet).

    Args:
        settings: Where MLflow and Milvus are.
        client: A ``MilvusClient`` to reuse (a new one costs a connection per check).

    Returns:
        ``(version or None, explanation)``.
    """
    from lambdarec.index.milvus import collection_name, connect_settings, current_collection
    from lambdarec.tracking.mlflow_log import alias_version
    from lambdarec.vectors import mlflow_tracking_uri

    alias = settings.serving.model_alias
    version = alias_version(mlflow_tracking_uri(settings), names.TWO_TOWER_MODEL, alias)
    if version is None:
        return None, f"no {names.TWO_TOWER_MODEL} version has the alias {alias!r} yet (train one: `lambdarec train`)"
    if client is not None:
        live = current_collection(client)
    else:
        own = connect_settings(settings)
        try:
            live = current_collection(own)
        finally:
            own.close()
    wanted = collection_name(version)
    if live != wanted:
        return None, f"MLflow {alias!r} is v{version} but the index alias points at {live!r}, not {wanted!r}"
    return version, f"v{version} with {wanted}"


def load_served_model(settings: Settings, version: str, store: Any) -> ServedModel:
    """Download, load and check a model version's serving bundle.

    Raises:
        BundleError: The bundle reads feature services the store does not hold.
        LookupError: The version has no bundle.
    """
    from lambdarec.index.milvus import collection_name
    from lambdarec.models.bundle import check_feature_services, load_bundle, read_meta
    from lambdarec.tracking.mlflow_log import download_bundle
    from lambdarec.vectors import mlflow_tracking_uri

    cache = settings.state_dir.resolve() / "serving" / "bundles" / f"v{version}"
    folder = cache / "bundle"
    if not (folder / "bundle.json").is_file():
        folder = download_bundle(mlflow_tracking_uri(settings), version, cache)
    meta = read_meta(Path(folder))
    check_feature_services(meta, store)
    recommender = load_bundle(Path(folder))
    services = {role: saved["name"] for role, saved in meta["feature_services"].items()}
    return ServedModel(version, recommender, services, collection_name(version))


def _freeze_heap() -> None:
    """Move every object alive now (engines' clients, the registry, the model) out of the collector's view.

    The process holds millions of long-lived objects; without this, each full collection walks
    them all and stalls requests for hundreds of milliseconds.
    """
    import gc

    gc.collect()
    gc.freeze()


class ServingApp:
    """The served model, the online store, the index and the fallbacks of one recommender process.

    Args:
        settings: The environment (MLflow, Milvus, the feature store, ``settings.serving``).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = RequestPath(None, None, None, Fallbacks(), latency_budget_ms=settings.serving.latency_budget_ms)
        self.status: dict[str, str] = {"model": "not loaded", "online_store": "not open", "index": "not connected"}
        self._store: Any = None
        self._trending_reader: Any = None
        self._reload_lock = threading.Lock()

    # -- start and reload ---------------------------------------------------------------------
    def start(self) -> None:
        """Open what is reachable and load the served model; whatever fails is reported, not raised."""
        self._open_store()
        self._connect_index()
        self._open_feature_log()
        self.reload_if_changed()
        if self.path.model is None:
            self._popular_from_lake()
        _freeze_heap()

    def _open_store(self) -> None:
        """Open the store's registry and readers; nothing here needs the online store itself to answer.

        A Redis that is down at start-up does not stop the model from loading: reads fail fast
        (``online_store_unavailable`` answers) until it is back, and ``/readyz`` says so meanwhile.
        """
        from lambdarec.featurestore.online import OnlineFeatureReader, bound_online_store_waits
        from lambdarec.featurestore.store import open_store
        from lambdarec.models.sources import OnlineFeatureSource

        try:
            store = open_store(self.settings)
            try:
                bound_online_store_waits(store, self.settings.serving.online_store_timeout_ms / 1000)
            except NotImplementedError as err:
                log.warning("online store waits are not bounded: %s", err)
            self.path.features = OnlineFeatureSource(store)
            self._trending_reader = OnlineFeatureReader(store, names.FALLBACK_FEATURE_SERVICE)
            self._store = store
            self.status["online_store"] = "open"
        except Exception as err:  # noqa: BLE001 - served by the fallbacks until it is back
            self.status["online_store"] = f"unavailable: {err}"
            log.warning("online store unavailable: %s", err)

    def _open_feature_log(self) -> None:
        """The served-features log (drift_monitor's production side), when Kafka is known and the rate > 0."""
        from lambdarec.events.admin import kafka_bootstrap
        from lambdarec.models.inputs import QUERY_DENSE
        from lambdarec.serving.feature_log import open_feature_log

        rate = self.settings.serving.feature_log_rate
        if rate <= 0:
            self.status["feature_log"] = "off (serving.feature_log_rate = 0)"
            return
        try:
            self.path.feature_log = open_feature_log(kafka_bootstrap(self.settings), rate, QUERY_DENSE)
            self.status["feature_log"] = f"{rate:.0%} of the model's requests to {names.SERVED_FEATURES_TOPIC}"
        except Exception as err:  # noqa: BLE001 - no log is no drift sample, not a reason to refuse requests
            self.status["feature_log"] = f"off: {err}"
            log.warning("served-features log off: %s", err)

    def _connect_index(self) -> None:
        from lambdarec.index.milvus import connect_settings

        try:
            self.path.index = MilvusIndex(connect_settings(self.settings))
            self.status["index"] = "connected"
        except Exception as err:  # noqa: BLE001 - the ranker still sees neighbours and the session
            self.status["index"] = f"unavailable: {err}"
            log.warning("Milvus unavailable: %s", err)

    def _popular_from_lake(self) -> None:
        from lambdarec.featurestore.store import source_lake

        try:
            # The lake the feature store reads (another environment's when LAMBDAREC_LAKE_DIR says so).
            self.path.fallbacks.popular = popular_from_lake(source_lake(self.settings))
        except Exception as err:  # noqa: BLE001 - no gold yet: no popular list
            log.warning("no popular items from the lake: %s", err)

    def reload_if_changed(self) -> bool:
        """Load the version the aliases now agree on, if it is not the one served; swap when ready.

        Returns:
            True when a new model was swapped in.
        """
        if not self._reload_lock.acquire(blocking=False):
            return False  # a reload is already loading
        try:
            try:
                index = self.path.index
                version, why = served_version(self.settings, index.client if isinstance(index, MilvusIndex) else None)
            except Exception as err:  # noqa: BLE001 - MLflow or Milvus down: keep serving what is loaded
                self.status["reload"] = f"alias check failed: {err}"
                return False
            current = self.path.model
            if version is None:
                self.status["reload"] = why
                if current is None:
                    self.status["model"] = f"not loaded: {why}"
                return False
            if current is not None and current.version == version:
                return False
            if self._store is None:
                self._open_store()
            if self._store is None:
                return False
            started = time.monotonic()
            try:
                model = load_served_model(self.settings, version, self._store)
            except Exception as err:  # noqa: BLE001 - a broken bundle never replaces a working model
                self.status["reload"] = f"v{version} not loaded: {err}"
                log.error("model v%s not loaded: %s", version, err)
                return False
            vocab = model.recommender.vocab
            popular = popular_from_vocabulary(vocab.item_ids, vocab.item_popularity.tolist())
            if popular:
                try:
                    self.path.warm_up(model, popular[0][0])
                except Exception as err:  # noqa: BLE001 - a cold first request is slow, not wrong
                    log.warning("warm-up of v%s failed: %s", version, err)
            self.path.fallbacks.popular = popular
            self.path.model = model  # the swap: the next batch reads the new model and collection
            _freeze_heap()
            self.status["model"] = f"v{version} ({model.collection})"
            self.status["reload"] = f"v{version} loaded in {time.monotonic() - started:.1f}s"
            log.info("serving model v%s (%s)", version, model.collection)
            return True
        finally:
            self._reload_lock.release()

    def refresh_trending(self) -> int:
        """Re-read the speed layer's live item counts for the trending fallback."""
        reader = self._trending_reader
        if reader is None:
            return 0
        try:
            return self.path.fallbacks.refresh_trending(
                lambda items: reader.read({names.USER_ID: [""] * len(items), names.ITEM_ID: items}),
                names.ITEM_TRENDING_COUNT,
            )
        except Exception as err:  # noqa: BLE001 - keep the last trending list
            log.warning("trending refresh failed: %s", err)
            return len(self.path.fallbacks.trending)

    # -- requests -----------------------------------------------------------------------------
    def recommend(self, requests: list[RecommendRequest]) -> list[RecommendResponse]:
        """Answer a batch of requests (see :meth:`RequestPath.recommend`)."""
        return self.path.recommend(requests)

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Ready when a model is loaded, the online store answers now and the index is connected.

        The store is probed on each call (a Redis ``PING`` within the bounded timeout): it can go
        away after it was opened, and come back without a restart.
        """
        from lambdarec.featurestore.online import ping_online_store

        status = dict(self.status)
        if self.path.feature_log is not None:
            counts = self.path.feature_log.stats.to_dict()
            status["feature_log"] += " (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"
        store_ok = False
        if self._store is not None:
            try:
                ping_online_store(self._store)
                store_ok = True
            except Exception as err:  # noqa: BLE001 - any probe failure means: not ready, with why
                status["online_store"] = f"unreachable: {err}"
        ready = self.path.model is not None and store_ok and status["index"] == "connected"
        return ready, status

    def close(self) -> None:
        """Release the store, the index client and the I/O threads."""
        if isinstance(self.path.index, MilvusIndex):
            self.path.index.close()
        if self.path.feature_log is not None:
            self.path.feature_log.close()
        if self.path.features is not None and hasattr(self.path.features, "close"):
            self.path.features.close()
        self.path.close()

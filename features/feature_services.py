"""Versioned feature services: the contract between a model and its features.

Add ``retrieval_v2`` / ``ranking_v2`` for a change; never edit a published version.
"""

from feast import FeatureService
from feature_views import item_stats, session_features, user_history
from on_demand import user_item_request

from lambdarec import names

retrieval_v1 = FeatureService(
    name=names.RETRIEVAL_FEATURE_SERVICE,
    features=[user_history, session_features],
    description="User tower inputs: 30-day history and the current visit.",
    tags={"model": names.TWO_TOWER_MODEL, "version": "1"},
)

ranking_v1 = FeatureService(
    name=names.RANKING_FEATURE_SERVICE,
    features=[user_history, item_stats, user_item_request],
    description="DeepFM inputs for (user, item) candidates: history, item stats, pair features.",
    tags={"model": names.DEEPFM_MODEL, "version": "1"},
)

"""Where Feast's SQLite online store keeps a feature view: the one rule the direct reader and writer share.

:class:`~lambdarec.featurestore.online.OnlineFeatureReader` reads and
:class:`~lambdarec.featurestore.push.PushWriter` upserts Feast's SQLite tables with their own
statements; both name a view's table here, so they cannot drift apart (or from Feast's own
``compute_table_id``, versioned views included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.repo_config import RepoConfig


def sqlite_table(config: RepoConfig, view: FeatureView) -> str:
    """The SQL identifier (double-quoted) of ``view``'s table in Feast's SQLite online store.

    Args:
        config: The store's ``RepoConfig`` (its project and registry's versioning setting).
        view: The feature view.

    Returns:
        Feast's ``compute_table_id`` for the view, quoted for use in a statement.
    """
    from feast.infra.online_stores.helpers import compute_table_id

    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    return '"' + compute_table_id(config.project, view, versioning).replace('"', '""') + '"'

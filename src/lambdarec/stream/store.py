"""The Feast store the pusher writes to: the project's (``features/``) or a standalone repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_store(repo: Path | None = None, *, env: str | None = None, state_dir: Path | None = None) -> Any:
    """The Feast store to push to.

    Args:
        repo: A standalone Feast repo folder (with its ``feature_store.yaml``); when None, the
            project's store of the environment (``lambdarec.featurestore``, ``features/``).
        env: The environment of the project's store.
        state_dir: The state folder of the project's store (its registry and SQLite online store).
    """
    if repo is not None:
        from feast import FeatureStore

        return FeatureStore(repo_path=str(repo))
    from lambdarec.featurestore.store import open_store as open_project_store
    from lambdarec.settings import load_settings

    settings = load_settings(env) if state_dir is None else load_settings(env, state_dir=state_dir)
    return open_project_store(settings)

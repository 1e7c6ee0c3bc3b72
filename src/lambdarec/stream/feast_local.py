"""A minimal Feast repo for the session features (SQLite online store, file offline store).

Built from the names in :mod:`lambdarec.names` — the contract with the project's Feast repo
under ``features/`` — so the speed layer's online path can be exercised (tests, benchmark,
demo) where that repo is not set up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lambdarec import names


def build_session_repo(folder: Path) -> Any:
    """Write a Feast repo with the session feature view and its push source; return the store."""
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Array, Float64, Int64, String

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feature_store.yaml").write_text(
        "project: lambdarec_stream_test\n"
        f"registry: {folder / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {folder / 'online.db'}\n"
        "offline_store:\n"
        "  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    offline = folder / "sessions.parquet"
    pd.DataFrame(
        {names.SESSION_ID: pd.Series([], dtype="string"), "event_timestamp": pd.Series([], dtype="datetime64[ns, UTC]")}
    ).to_parquet(offline)
    session = Entity(name=names.SESSION_ENTITY, join_keys=[names.SESSION_ID], value_type=ValueType.STRING)
    batch = FileSource(name="session_batch_source", path=str(offline), timestamp_field="event_timestamp")
    push = PushSource(name=names.SESSION_PUSH_SOURCE, batch_source=batch)
    types: dict[str, Any] = {
        names.SESSION_RECENT_ITEMS: Array(String),
        names.SESSION_DWELL_S: Float64,
        names.SESSION_PURCHASED_ITEMS: Array(String),
    }
    view = FeatureView(
        name=names.SESSION_FEATURE_VIEW,
        entities=[session],
        schema=[Field(name=f, dtype=types.get(f, Int64)) for f in names.SESSION_FEATURES],
        source=push,
        online=True,
    )
    store = FeatureStore(repo_path=str(folder))
    store.apply([session, batch, push, view])
    return store


def online_session_features(store: Any, session_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Read the session features of ``session_ids`` back from the online store."""
    refs = [f"{names.SESSION_FEATURE_VIEW}:{f}" for f in names.SESSION_FEATURES]
    result = store.get_online_features(features=refs, entity_rows=[{names.SESSION_ID: s} for s in session_ids])
    table = result.to_dict()
    return {sid: {f: table[f][i] for f in names.SESSION_FEATURES} for i, sid in enumerate(table[names.SESSION_ID])}

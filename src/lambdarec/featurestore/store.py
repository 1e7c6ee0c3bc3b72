"""Wrappers over Feast: the store of an environment, apply, materialize, online reads, training sets.

The definitions live in the Feast repo ``features/`` (entities, sources, views, services); the
configuration of each environment in ``environments/<env>/feature_store.yaml``, whose ``${VAR}``
placeholders are filled from the settings (``FEAST_DIR``, ``LAMBDAREC_LAKE_DIR``) and the process
environment (``LAMBDAREC_REDIS_URL``).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lambdarec import names
from lambdarec.batch.lake import Lake
from lambdarec.runtime.topology import REDIS_URL_ENV
from lambdarec.settings import Settings, find_project_root

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from lambdarec.featurestore.online import OnlineFeatureReader

REPO_MODULES = ("entities", "data_sources", "feature_views", "on_demand", "feature_services")
"""The modules of the Feast repo, in import order."""
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def feature_repo_dir() -> Path:
    """The Feast repo (``features/`` of the checkout, or ``LAMBDAREC_FEATURE_REPO``).

    Raises:
        FileNotFoundError: When neither is found.
    """
    override = os.environ.get("LAMBDAREC_FEATURE_REPO")
    if override:
        return Path(override).resolve()
    root = find_project_root()
    if root is None or not (root / "features").is_dir():
        raise FileNotFoundError("no Feast repo found: set LAMBDAREC_FEATURE_REPO to the features/ folder")
    return root / "features"


def feast_dir(settings: Settings) -> Path:
    """Where the registry and the SQLite online store live (``<state_dir>/feast``)."""
    return settings.state_dir.resolve() / "feast"


def config_values(settings: Settings) -> dict[str, str]:
    """Values for the ``${VAR}`` placeholders of ``feature_store.yaml``."""
    values = {k: v for k, v in os.environ.items() if k.startswith(("LAMBDAREC_", "FEAST_"))}
    values.setdefault("FEAST_DIR", str(feast_dir(settings)))
    values.setdefault("LAMBDAREC_LAKE_DIR", str(Lake.under(settings.state_dir).root))
    if settings.redis_url is not None:
        values[REDIS_URL_ENV] = settings.redis_url.get_secret_value()  # an explicit setting wins
    return values


def redis_connection_string(settings: Settings) -> str:
    """The Redis online store's address: ``settings.redis_url`` (``LAMBDAREC_REDIS_URL``), else the embedded server's.

    Raises:
        ServiceNotRunningError: Neither is set nor running; the message names both fixes.
    """
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    configured = os.environ.get(REDIS_URL_ENV)
    from lambdarec.runtime.redis_server import RedisService
    from lambdarec.runtime.supervisor import resolve_endpoint

    return resolve_endpoint(settings, configured, RedisService(settings), REDIS_URL_ENV)


def load_config_dict(settings: Settings, path: Path | None = None) -> dict[str, Any]:
    """The environment's ``feature_store.yaml`` with its placeholders filled in.

    ``${LAMBDAREC_REDIS_URL}`` falls back to the embedded Redis (``lambdarec services up redis``)
    when neither the setting nor the variable names a server. With ``settings.online_store ==
    "redis"`` (the cluster profile) the online store is Redis whatever the yaml names
    (:func:`redis_online_store`).

    Raises:
        FileNotFoundError: No ``feature_store.yaml`` for the environment.
        ValueError: A placeholder has no value (e.g. ``LAMBDAREC_REDIS_URL`` unset for prod and no
            embedded Redis running), or Redis is asked for and neither set nor running.
    """
    if path is None:
        root = find_project_root()
        if root is None:
            raise FileNotFoundError("no checkout found for environments/<env>/feature_store.yaml")
        path = root / "environments" / settings.env / "feature_store.yaml"
    text = path.read_text()
    values = config_values(settings)
    if REDIS_URL_ENV in _PLACEHOLDER.findall(text) and REDIS_URL_ENV not in values:
        from lambdarec.runtime.errors import ServiceNotRunningError

        try:
            values[REDIS_URL_ENV] = redis_connection_string(settings)
        except ServiceNotRunningError as err:
            raise ValueError(f"{path}: {err}") from err
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise ValueError(f"{path}: set {', '.join(missing)} in the environment")
    data: dict[str, Any] = yaml.safe_load(_PLACEHOLDER.sub(lambda m: values[m.group(1)], text))
    if settings.online_store == "redis":
        data["online_store"] = redis_online_store(settings, data.get("online_store"), path)
    return data


def redis_online_store(settings: Settings, configured: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    """The ``online_store`` block of a store whose settings say ``online_store = "redis"``.

    A yaml that already names Redis (staging, prod) keeps its block (its TTL, its connection string);
    any other store (local's SQLite) is replaced by Redis at :func:`redis_connection_string`.

    Raises:
        ValueError: No ``redis_url`` is set and no embedded Redis runs (the message names both fixes).
    """
    if configured is not None and configured.get("type") == "redis":
        return configured
    from lambdarec.runtime.errors import ServiceNotRunningError

    try:
        connection = redis_connection_string(settings)
    except ServiceNotRunningError as err:
        raise ValueError(f"online_store is 'redis' (over {path}'s {_store_type(configured)!r}): {err}") from err
    return {"type": "redis", "connection_string": connection}


def _store_type(block: dict[str, Any] | None) -> str:
    return str((block or {}).get("type", "sqlite"))


def open_store(settings: Settings, config_path: Path | None = None) -> FeatureStore:
    """The Feast store of the settings' environment (nothing is created until apply)."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    data = load_config_dict(settings, config_path)
    feast_dir(settings).mkdir(parents=True, exist_ok=True)
    config = RepoConfig(repo_path=feature_repo_dir(), **data)
    check_offline_store(config)
    return FeatureStore(config=config)


OFFLINE_STORE = "duckdb"
"""The one offline store the models read (``offline_store.type`` of every ``feature_store.yaml``)."""


def check_offline_store(config: Any) -> None:
    """Refuse an offline store other than Feast's DuckDB store, naming the setting.

    Feast 0.67's file (dask) store answered point-in-time reads wrong in four ways the leakage and
    parity tests found: rows of different users at one moment collapsed, identical entity rows came
    back null, an entity with no row in a view's window vanished with every other view's values
    (feast#6787), and a multi-partition de-duplication kept older rows. It also read 43-2,100 rows/s.
    The DuckDB store (a SQL point-in-time join through ibis) answers all four right, so no patch of
    Feast is applied; another store would need those tests re-run before it is allowed here.

    Raises:
        ValueError: When ``offline_store.type`` is not ``duckdb``.
    """
    kind = getattr(config.offline_store, "type", None)
    if kind != OFFLINE_STORE:
        raise ValueError(
            f"offline_store.type is {kind!r} in feature_store.yaml: the models read through Feast's "
            f"{OFFLINE_STORE!r} offline store only (set `offline_store: {{type: {OFFLINE_STORE}}}`)"
        )


def load_definitions(settings: Settings) -> list[Any]:
    """Import the Feast repo with the lake of ``settings`` and return its Feast objects.

    The repo's modules are re-imported on each call, so their sources point at this lake.
    """
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource

    repo = feature_repo_dir()
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    for stale in REPO_MODULES:
        sys.modules.pop(stale, None)
    kinds = (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)
    objects: list[Any] = []
    # The sources read the lake from the environment while the repo is imported; restore it after.
    previous = os.environ.get("LAMBDAREC_LAKE_DIR")
    os.environ["LAMBDAREC_LAKE_DIR"] = config_values(settings)["LAMBDAREC_LAKE_DIR"]
    try:
        for module_name in REPO_MODULES:
            module = importlib.import_module(module_name)
            for value in vars(module).values():
                if isinstance(value, kinds) and not any(value is seen for seen in objects):
                    objects.append(value)
    finally:
        if previous is None:
            os.environ.pop("LAMBDAREC_LAKE_DIR", None)
        else:
            os.environ["LAMBDAREC_LAKE_DIR"] = previous
    return objects


READ_INDEXED_SERVICES = (names.CANDIDATE_FEATURE_SERVICE, names.RANKING_FEATURE_SERVICE)
"""The services read per ranker candidate (~120 items per request): on SQLite their batch-only views get
the covering read index (:func:`lambdarec.featurestore.sqlite_layout.add_read_indexes`). Views read
for one or a few entities per request (neighbours, sessions) do without: the index holds its table's
values again (at 10M events, 0.5 GB for item stats, 0.2 GB each for user history and neighbours)."""


def apply(settings: Settings) -> dict[str, list[str]]:
    """Register the repo's definitions in the environment's registry (idempotent).

    Returns:
        The names applied, by kind.
    """
    from lambdarec.featurestore.sqlite_layout import add_read_indexes

    store = open_store(settings)
    objects = load_definitions(settings)
    store.apply(objects)
    add_read_indexes(store, READ_INDEXED_SERVICES)  # after Feast's update has created the tables
    applied: dict[str, list[str]] = {}
    for obj in objects:
        applied.setdefault(type(obj).__name__, []).append(obj.name)
    return applied


@dataclass
class MaterializeReport:
    """What one materialization wrote to the online store."""

    start: str
    end: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Online rows written per second."""
        return sum(self.rows.values()) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s),
        }


def source_lake(settings: Settings) -> Lake:
    """The lake the Feast sources read: ``LAMBDAREC_LAKE_DIR`` when set (another environment's), else the state's."""
    return Lake(Path(config_values(settings)["LAMBDAREC_LAKE_DIR"]))


def _latest_rows(settings: Settings, table: str, start: datetime, end: datetime) -> int:
    """Entities of a gold table with a row in ``[start, end)`` (what materialize writes online)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    folder = source_lake(settings).gold(table)
    if not folder.exists():
        return 0
    data = ds.dataset(str(folder), format="parquet", partitioning="hive")
    key = (
        names.SESSION_ID
        if table == "session_features"
        else (names.USER_ID if table == "user_history" else names.ITEM_ID)
    )
    stamps = data.to_table(columns=[key, "event_timestamp"])
    mask = pc.and_(pc.greater_equal(stamps["event_timestamp"], start), pc.less(stamps["event_timestamp"], end))
    return len(pc.unique(stamps.filter(mask)[key]))


BATCH_TABLES = {
    names.USER_HISTORY_FEATURE_VIEW: "user_history",
    names.ITEM_STATS_FEATURE_VIEW: "item_stats",
    names.ITEM_NEIGHBOURS_FEATURE_VIEW: "item_neighbours",
    names.SESSION_FEATURE_VIEW: "session_features",
}
"""The feature views the batch layer fills, and their gold tables."""


def materialize(
    settings: Settings,
    start: datetime,
    end: datetime,
    views: Sequence[str] | None = None,
    *,
    through_feast: bool = False,
) -> MaterializeReport:
    """Load the latest features in ``[start, end)`` from the offline into the online store.

    On Feast's SQLite online store the load is :func:`lambdarec.featurestore.load.materialize_sqlite`
    (the same cells as ``FeatureStore.materialize``, about twice as fast); any other store goes
    through ``FeatureStore.materialize``.

    Args:
        settings: The environment.
        start: Oldest event time loaded.
        end: Event times before this are loaded.
        views: Feature views to load; by default those of :data:`BATCH_TABLES` whose gold table
            exists (the speed layer's user and item views are filled by the pusher only).
        through_feast: Always use ``FeatureStore.materialize`` (to compare the two).
    """
    from lambdarec.featurestore.load import direct_load_supported, materialize_sqlite

    store = open_store(settings)
    if views is None:
        lake = source_lake(settings)
        views = [view for view, table in BATCH_TABLES.items() if lake.gold(table).exists()]
    started = time.monotonic()
    start, end = _aware(start), _aware(end)
    resolved = [] if through_feast else [store.get_feature_view(v) for v in views]
    direct = not through_feast and direct_load_supported(store, resolved)
    if direct:
        loads = {load.view: load.entities for load in materialize_sqlite(store, resolved, start, end)}
    else:
        store.materialize(start_date=start, end_date=end, feature_views=list(views))
    report = MaterializeReport(start=start.isoformat(), end=end.isoformat(), seconds=time.monotonic() - started)
    for view, table in BATCH_TABLES.items():
        if view in views:
            report.rows[view] = loads[view] if direct else _latest_rows(settings, table, start, end)
    return report


def _aware(moment: datetime) -> datetime:
    """``moment`` with UTC as its time zone when it has none (as Feast's ``make_tzaware``)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def ranking_rows(user_id: str, item_ids: Sequence[str], request_time_ms: int | None = None) -> list[dict[str, Any]]:
    """Entity rows of ``ranking_v1`` for one user and candidate items."""
    now = request_time_ms if request_time_ms is not None else int(time.time() * 1000)
    return [{names.USER_ID: user_id, names.ITEM_ID: item, names.REQUEST_TIME_MS: now} for item in item_ids]


def ranking_columns(user_id: str, item_ids: Sequence[str], request_time_ms: int | None = None) -> dict[str, list[Any]]:
    """The rows of :func:`ranking_rows` as columns (what :class:`OnlineFeatureReader` takes)."""
    now = request_time_ms if request_time_ms is not None else int(time.time() * 1000)
    n = len(item_ids)
    return {names.USER_ID: [user_id] * n, names.ITEM_ID: list(item_ids), names.REQUEST_TIME_MS: [now] * n}


def online_reader(store: FeatureStore, service: str = names.RANKING_FEATURE_SERVICE) -> OnlineFeatureReader:
    """A reader of one feature service's online features, resolved once (build one per process and reuse it)."""
    from lambdarec.featurestore.online import OnlineFeatureReader

    return OnlineFeatureReader(store, service)


def read_online_features(
    reader: OnlineFeatureReader, user_id: str, item_ids: Sequence[str], *, request_time_ms: int | None = None
) -> dict[str, list[Any]]:
    """What :func:`get_online_features` returns, read through ``reader`` (the fast path)."""
    return reader.read(ranking_columns(user_id, item_ids, request_time_ms))


def get_online_features(
    store: FeatureStore,
    user_id: str,
    item_ids: Sequence[str],
    *,
    service: str = names.RANKING_FEATURE_SERVICE,
    request_time_ms: int | None = None,
) -> dict[str, list[Any]]:
    """Online features of a feature service for one user and candidate items (column → values).

    Feast's own ``get_online_features`` (tens of ms per call for 100 items): serving paths use
    :func:`online_reader` + :func:`read_online_features`, which return the same values.
    """
    feature_service = store.get_feature_service(service)
    rows = ranking_rows(user_id, item_ids, request_time_ms)
    result: dict[str, list[Any]] = store.get_online_features(features=feature_service, entity_rows=rows).to_dict()
    return result


def historical_features(store: FeatureStore, entity_df: pd.DataFrame, service: str) -> pd.DataFrame:
    """Point-in-time features of a feature service for the entity rows (``event_timestamp`` each)."""
    job = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(service))
    frame: pd.DataFrame = job.to_df()
    return frame

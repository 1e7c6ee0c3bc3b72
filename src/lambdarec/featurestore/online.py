"""Fast online reads of a feature service: resolve it once, read the online store, apply its on-demand views.

``FeatureStore.get_online_features(features=<service>, ...)`` spends most of a request in Python
that does not depend on the request: it re-reads the service, its views and their fields from
the registry proto, builds a response proto, converts every value to Python twice and runs
the on-demand views through a DataFrame or an Arrow table. :class:`OnlineFeatureReader` does
that resolution once and, per request:

1. serializes the entity keys with Feast's own ``serialize_entity_key`` (cached per key),
2. reads each feature view's rows from the online store: on SQLite straight from the table
   Feast wrote (Feast's table name, one read-only connection, without the per-row timestamp
   conversion of ``SqliteOnlineStore.online_read`` that the response never uses), every cell of
   the request's entities packed by SQLite into one returned row (``select_packed``: the
   ``sqlite3`` module takes the GIL back once per returned row, and ``ranking_v2`` reads ~800
   cells) and each entity's cells converted once while they stay the same; on Redis
   (redis-py client) with one pipelined ``HMGET`` per entity of the hash Feast wrote (Feast's
   key and field names, the same client and timeouts), every view of one entity in one command
   because Feast keeps them in one hash; on any other store through the store's own
   ``OnlineStore.online_read``,
3. applies the service's on-demand views as registered (the same UDF Feast runs), and
4. converts the values to Python the way ``OnlineResponse.to_dict`` does.

The result equals what ``store.get_online_features(features=<service>, ...).to_dict()``
returns for the same rows (the feature store tests assert it on materialized data, on
SQLite and Redis). The reader pins the service's definitions at construction: published
services never change (add ``_v2``), and :meth:`OnlineFeatureReader.refresh` re-resolves them
after an apply that changed a view.
"""

from __future__ import annotations

import copy
import functools
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdarec.featurestore.sqlite_layout import (
    PACKED_KEYS_MAX,
    batch_only,
    select_packed,
    unpack,
)

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.value_type import ValueType

_SCALARS = frozenset({"int64_val", "int32_val", "double_val", "float_val", "string_val", "bool_val", "bytes_val"})
_LISTS = frozenset(
    {
        "int64_list_val",
        "int32_list_val",
        "double_list_val",
        "float_list_val",
        "string_list_val",
        "bool_list_val",
        "bytes_list_val",
    }
)
_KEY_CACHE_SIZE = 200_000
"""Serialized entity keys remembered per feature view (cleared when full)."""
_MEMO_SIZE = 500_000
"""Stored values (bytes → Python value) the Redis read remembers; cleared when full (~50 MB at most)."""
_ROW_MEMO_BYTES = 4 * 2**20
"""Packed cells the SQLite read remembers per batch-only view (~5x that in Python objects); cleared when full."""


@functools.cache
def _scalar_types() -> frozenset[ValueType]:
    """Types whose Python values are immutable (rows may share them)."""
    from feast.value_type import ValueType

    return frozenset(
        {
            ValueType.INT32,
            ValueType.INT64,
            ValueType.FLOAT,
            ValueType.DOUBLE,
            ValueType.STRING,
            ValueType.BYTES,
            ValueType.BOOL,
            ValueType.UNIX_TIMESTAMP,
        }
    )


def _own(value: Any) -> Any:
    """A copy of a mutable value (each row of a response owns its lists, as Feast's are)."""
    if value is None:
        return None
    if type(value) is list:
        return list(value)
    if type(value) is set:
        return set(value)
    return copy.deepcopy(value)


@functools.cache
def _slow_types() -> frozenset[ValueType]:
    """Types ``feast_value_type_to_python_type`` turns into other objects than the proto's (UUIDs)."""
    from feast.value_type import ValueType

    return frozenset(
        {
            ValueType.UUID,
            ValueType.TIME_UUID,
            ValueType.UUID_LIST,
            ValueType.TIME_UUID_LIST,
            ValueType.UUID_SET,
            ValueType.TIME_UUID_SET,
        }
    )


def value_to_python(value: ValueProto, feature_type: ValueType | None = None) -> Any:
    """A Feast ``Value`` proto as Python, exactly as ``feast_value_type_to_python_type`` converts it.

    Scalars and lists of scalars take a short path; everything else (maps, sets, timestamps,
    JSON, UUIDs, decimals) goes to Feast's converter.
    """
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if feature_type is None or feature_type not in _slow_types():
        if kind in _SCALARS:
            return getattr(value, kind)
        if kind in _LISTS:
            return list(getattr(value, kind).val)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value, feature_type)


def _fast_value(value: ValueProto, feature_type: ValueType | None) -> Any:
    """:func:`value_to_python` for a type without a special conversion (see ``_slow_types``)."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind in _LISTS:
        return list(getattr(value, kind).val)
    return value_to_python(value, feature_type)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def normalize(values: Sequence[Any], value_type: ValueType) -> list[Any]:
    """Values as Feast returns them after writing them into its ``Value`` protos and reading them back.

    ``python_values_to_proto_values`` then ``feast_value_type_to_python_type``, with short paths
    where the round trip is the identity (strings as strings, Python ints as int64, floats as
    doubles with NaN as null) and Feast's own functions for everything else.
    """
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if value_type == ValueType.UNKNOWN and len(kinds) == 1:
        kind = next(iter(kinds))
        value_type = {int: ValueType.INT64, str: ValueType.STRING, float: ValueType.DOUBLE}.get(kind, value_type)
    if not kinds:
        return [None] * len(values)
    if kinds == {str} and value_type == ValueType.STRING:
        return list(values)
    if (
        kinds == {int}
        and value_type == ValueType.INT64
        and all(v is None or _INT64_MIN <= v <= _INT64_MAX for v in values)
    ):
        return list(values)
    if kinds == {float} and value_type == ValueType.DOUBLE:
        return [None if v is None or v != v else v for v in values]
    return [value_to_python(p, value_type) for p in python_values_to_proto_values(list(values), value_type)]


@dataclass
class _ViewRead:
    """One feature view of the service: what to read and what to return."""

    view: FeatureView
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    """Features read: the service's plus those its on-demand views take as input."""
    types: dict[str, ValueType]
    keys: dict[tuple[Any, ...], bytes]
    """Serialized entity key of each join-key tuple seen (Feast's serialization)."""
    hash_fields: tuple[bytes, ...] = ()
    """Redis: the hash fields of ``features`` in Feast's layout (murmur3 of ``view:feature``)."""
    rows: dict[bytes, list[Any]] | None = None
    """SQLite, batch-only views: an entity's packed cells (``select_packed``) → its values in
    ``features`` order. Keyed by the stored bytes, so a value written since is a new key: nothing
    goes stale. None for views the speed layer pushes to (their rows change with every event)."""
    rows_bytes: int = 0
    """Packed cells held in ``rows``."""


class OnlineFeatureReader:
    """Online features of one feature service, resolved once and read without Feast's per-request overhead.

    Args:
        store: The ``feast.FeatureStore`` (its registry, configuration and online store).
        service: The feature service, or its name.
        use_store_read: Read SQLite through ``SqliteOnlineStore.online_read`` too (slower; the
            direct table read is the default). Other online stores always use their own read.

    Raises:
        NotImplementedError: The service uses what the reader does not reproduce (feature view
            versions, join key maps, on-demand views written online or with aggregations).
    """

    def __init__(self, store: FeatureStore, service: str | FeatureService, *, use_store_read: bool = False) -> None:
        self.store = store
        self._service_name = service if isinstance(service, str) else service.name
        self._use_store_read = use_store_read
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_utf8: bool | None = None
        self._memo: dict[bytes, Any] = {}
        self.refresh()

    @property
    def service_name(self) -> str:
        """The feature service read."""
        return self._service_name

    def refresh(self) -> None:
        """Resolve the service, its views and the online store again from the registry."""
        from feast import FeatureView, OnDemandFeatureView
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        store = self.store
        registry = store.registry
        project = store.project
        service = registry.get_feature_service(self._service_name, project)
        views: dict[str, _ViewRead] = {}
        odfvs: list[tuple[OnDemandFeatureView, tuple[str, ...]]] = []
        returned: list[tuple[str, str]] = []  # (view name, feature) in the service's order

        def add_view(view: FeatureView, features: Iterable[str]) -> None:
            if getattr(view.projection, "version_tag", None) is not None:
                raise NotImplementedError(f"{view.name}: versioned feature view reads are not supported")
            if view.projection.join_key_map:
                raise NotImplementedError(f"{view.name}: join key maps are not supported")
            entry = views.get(view.projection.name_to_use())
            if entry is None:
                entry = _ViewRead(
                    view=view,
                    join_keys=tuple(column.name for column in view.entity_columns),
                    features=(),
                    types={f.name: f.dtype.to_value_type() for f in view.features},
                    keys={},
                    rows={} if batch_only(view) else None,
                )
                views[view.projection.name_to_use()] = entry
            for feature in features:
                if feature not in entry.features:
                    entry.features += (feature,)

        for projection in service.feature_view_projections:
            resolved = registry.get_any_feature_view(projection.name, project)
            if isinstance(resolved, OnDemandFeatureView):
                odfv = resolved.with_projection(_copy(projection))
                if odfv.write_to_online_store or odfv.aggregations:
                    raise NotImplementedError(f"{odfv.name}: on-demand views written online are not supported")
                names = tuple(f.name for f in projection.features)
                odfvs.append((odfv, names))
                returned += [(odfv.projection.name_to_use(), n) for n in names]
                for source in odfv.source_feature_view_projections.values():
                    source_view = registry.get_feature_view(source.name, project)
                    add_view(source_view.with_projection(_copy(source)), [f.name for f in source.features])
            elif isinstance(resolved, FeatureView):
                view = resolved.with_projection(_copy(projection))
                names = tuple(f.name for f in projection.features)
                add_view(view, names)
                returned += [(view.projection.name_to_use(), n) for n in names]
            else:
                raise NotImplementedError(f"{projection.name}: {type(resolved).__name__} is not supported")

        seen: dict[str, str] = {}
        for view_name, feature in returned:
            if feature in seen:
                raise ValueError(f"{feature} is in both {seen[feature]} and {view_name} (Feast refuses it too)")
            seen[feature] = view_name
        join_keys: dict[str, ValueType] = {}
        for entry in views.values():
            for entity_name in entry.view.entities:
                entity = registry.get_entity(entity_name, project)
                join_keys[entity.join_key] = entity.value_type
        self._views = views
        self._odfvs = odfvs
        self._join_keys = join_keys
        self._request_fields = {
            field: dtype for odfv, _ in odfvs for field, dtype in odfv.get_request_data_schema().items()
        }
        self._returned_features = [feature for _, feature in returned]
        self._odfv_types = {f.name: f.dtype.to_value_type() for odfv, _ in odfvs for f in odfv.features}
        online_store = store._get_provider().online_store  # noqa: SLF001 - Feast's own store object
        self._online_store = online_store
        self._direct_sqlite = isinstance(online_store, SqliteOnlineStore) and not self._use_store_read
        self._redis = _redis_of(store)
        self._direct_redis = not self._use_store_read and _plain_redis(store)
        if self._direct_redis:
            from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name

            versioning = bool(getattr(store.config.registry, "enable_online_feature_view_versioning", False))
            for entry in views.values():
                view_name = compute_versioned_name(entry.view, versioning)
                entry.hash_fields = tuple(_mmh3(f"{view_name}:{f}") for f in entry.features)
            self._project_bytes = project.encode("utf-8")
        if self._direct_sqlite:
            from lambdarec.featurestore.sqlite_layout import sqlite_table

            self._tables = {name: sqlite_table(store.config, entry.view) for name, entry in views.items()}
            self._db_path = Path(SqliteOnlineStore._get_db_path(store.config))  # noqa: SLF001
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        self._sqlite_utf8 = None

    # ------------------------------------------------------------------------------------------
    def read(self, entity_rows: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        """The service's online features for columnar entity rows (join keys and request data).

        Args:
            entity_rows: Column name → values, one value per row: every join key of the
                service's views and every request field of its on-demand views.

        Returns:
            Column → values: the join keys given, then the service's features.

        Raises:
            ValueError: Rows of different lengths, or a join key or request field missing.
        """
        from feast.value_type import ValueType

        lengths = {len(values) for values in entity_rows.values()}
        if len(lengths) > 1:
            raise ValueError(f"entity rows of different lengths: {sorted(lengths)}")
        n_rows = lengths.pop() if lengths else 0
        missing = [k for k in [*self._join_keys, *self._request_fields] if k not in entity_rows]
        if missing:
            raise ValueError(f"entity rows lack {', '.join(missing)}")
        # Join keys and request data as Feast returns them (what a round trip through protos gives).
        keys: dict[str, list[Any]] = {}
        for column, values in entity_rows.items():
            if column in self._join_keys:
                keys[column] = normalize(values, self._join_keys[column])
            elif column in self._request_fields:
                keys[column] = normalize(values, ValueType.UNKNOWN)
        result: dict[str, list[Any]] = {k: v for k, v in keys.items() if k in self._join_keys}
        columns: dict[str, list[Any]] = dict(keys)
        fetched = self._fetch_redis(keys, n_rows) if self._direct_redis else {}
        for name, entry in self._views.items():
            columns.update(self._read_view(entry, keys, n_rows, fetched.get(name)))
        for odfv, names in self._odfvs:
            columns.update(self._transform(odfv, names, columns, n_rows))
        for feature in self._returned_features:
            result[feature] = columns[feature]
        return result

    # ------------------------------------------------------------------------------------------
    def _read_view(
        self,
        entry: _ViewRead,
        keys: Mapping[str, list[Any]],
        n_rows: int,
        fetched: tuple[dict[tuple[Any, ...], int], list[list[Any] | None]] | None = None,
    ) -> dict[str, list[Any]]:
        """The view's features for every row: each distinct entity read once, fanned out.

        ``fetched`` holds the view's values when they were already read with other views
        (Redis: one hash per entity); else they are read here.
        """
        rows = _entity_rows(entry, keys, n_rows)
        if fetched is None:
            unique: dict[tuple[Any, ...], int] = {}
            for key in rows:
                if key not in unique:
                    unique[key] = len(unique)
            values = self._fetch(entry, list(unique))
        else:
            unique, values = fetched
        missing = [None] * len(entry.features)
        found = [v if v is not None else missing for v in values]
        per_row = [found[unique[key]] for key in rows]
        columns = list(zip(*per_row, strict=True)) if per_row else [() for _ in entry.features]
        out: dict[str, list[Any]] = {}
        for f_index, feature in enumerate(entry.features):
            column = list(columns[f_index])
            if entry.types.get(feature) not in _scalar_types():
                column = [_own(v) for v in column]  # each row its own list, as Feast's conversion gives
            out[feature] = column
        return out

    def _entity_key(self, entry: _ViewRead, key: tuple[Any, ...]) -> Any:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        from lambdarec.featurestore.push import to_protos

        values = [to_protos([v], self._join_keys[k])[0] for k, v in zip(entry.join_keys, key, strict=True)]
        return EntityKey(join_keys=list(entry.join_keys), entity_values=values)

    def _serialize(self, entry: _ViewRead, key: tuple[Any, ...]) -> bytes:
        cached = entry.keys.get(key)
        if cached is not None:
            return cached
        from feast.infra.key_encoding_utils import serialize_entity_key

        data = serialize_entity_key(self._entity_key(entry, key), self.store.config.entity_key_serialization_version)
        if len(entry.keys) >= _KEY_CACHE_SIZE:
            entry.keys.clear()
        entry.keys[key] = data
        return data

    def _fetch(self, entry: _ViewRead, unique: list[tuple[Any, ...]]) -> list[list[Any] | None]:
        """Per distinct entity: the Python values of ``entry.features`` (None: entity not found)."""
        if not unique:
            return []
        types = [entry.types.get(f) for f in entry.features]
        if self._direct_sqlite and not self._utf8_store():
            self._direct_sqlite = False  # see _utf8_store: the store's own read is always right
        if not self._direct_sqlite:
            protos = [self._entity_key(entry, key) for key in unique]
            read = self._online_store.online_read(self.store.config, entry.view, protos, list(entry.features))
            slow = _slow_types()
            pairs = zip(entry.features, types, strict=True)
            convert = [(f, t, value_to_python if t in slow else _fast_value) for f, t in pairs]
            out: list[list[Any] | None] = []
            for _, data in read:
                if data is None:
                    out.append(None)
                    continue
                out.append([to_python(data[f], t) if f in data else None for f, t, to_python in convert])
            return out

        from feast.protos.feast.types.Value_pb2 import Value

        serialized = [self._serialize(entry, key) for key in unique]
        n_features = len(entry.features)
        table = self._tables[entry.view.projection.name_to_use()]
        parse = Value.FromString
        slow = _slow_types()
        to_python = [value_to_python if t in slow else _fast_value for t in types]
        memo = entry.rows
        if memo is not None and entry.rows_bytes > _ROW_MEMO_BYTES:
            memo.clear()
            entry.rows_bytes = 0
        # A missing entity reads as None (``_read_view`` fills its features with None), a
        # missing feature too, as in Feast's response. Only the features read are packed: a
        # view's other features (half of item stats for ranking_v2) would cross into Python
        # only to be dropped.
        found: list[list[Any] | None] = [None] * len(serialized)
        for start in range(0, len(serialized), PACKED_KEYS_MAX):
            chunk = serialized[start : start + PACKED_KEYS_MAX]
            sql = select_packed(table, len(chunk), n_features, len(entry.types))
            with self._lock:
                (packed,) = self._connection().execute(sql, [*chunk, *entry.features, *entry.features]).fetchone()
            for position, cells in unpack(packed):
                values = memo.get(cells) if memo is not None else None
                if values is None:
                    values = [None] * n_features
                    for f_index, blob in unpack(cells):
                        values[f_index] = to_python[f_index](parse(blob), types[f_index])
                    if memo is not None:
                        memo[cells] = values
                        entry.rows_bytes += len(cells)
                found[start + position] = values
        return found

    def _fetch_redis(
        self, keys: Mapping[str, list[Any]], n_rows: int
    ) -> dict[str, tuple[dict[tuple[Any, ...], int], list[list[Any] | None]]]:
        """Every view's values from Redis: one pipelined ``HMGET`` per distinct entity.

        Feast writes all views of one entity into one hash (key: the serialized entity key +
        the project), so the views of the same join keys are read with one command per entity,
        each field named as Feast names it. A field Feast never wrote reads as None, as Feast's
        own ``online_read`` returns it (an empty value).

        Returns:
            View name → (distinct join-key tuple → position, the values at each position).
        """
        groups: dict[tuple[str, ...], list[str]] = {}
        for name, entry in self._views.items():
            groups.setdefault(entry.join_keys, []).append(name)
        plans: list[tuple[list[str], list[tuple[Any, ...]], list[bytes]]] = []
        commands: list[tuple[bytes, list[bytes]]] = []
        for view_names in groups.values():
            first = self._views[view_names[0]]
            unique: dict[tuple[Any, ...], int] = {}
            for key in _entity_rows(first, keys, n_rows):
                if key not in unique:
                    unique[key] = len(unique)
            fields = [f for name in view_names for f in self._views[name].hash_fields]
            plans.append((view_names, list(unique), fields))
            commands += [(self._serialize(first, key) + self._project_bytes, fields) for key in unique]
        if not commands:
            return {}
        assert self._redis is not None  # _direct_redis is only set when the store is Redis
        online, config = self._redis
        client = online._get_client(config)  # noqa: SLF001 - Feast's client: its pool, timeouts and retries
        with client.pipeline(transaction=False) as pipe:
            for redis_key, fields in commands:
                pipe.hmget(redis_key, fields)
            replies = pipe.execute()
        from feast.protos.feast.types.Value_pb2 import Value

        parse = Value.FromString
        slow = _slow_types()
        memo = self._memo
        if len(memo) > _MEMO_SIZE:
            memo.clear()
        out: dict[str, tuple[dict[tuple[Any, ...], int], list[list[Any] | None]]] = {}
        start = 0
        for view_names, unique_keys, _ in plans:
            group = replies[start : start + len(unique_keys)]
            start += len(unique_keys)
            offset = 0
            for name in view_names:
                entry = self._views[name]
                types = [entry.types.get(f) for f in entry.features]
                width = len(entry.features)
                found: list[list[Any] | None] = []
                for reply in group:
                    row: list[Any] = []
                    for blob, value_type in zip(reply[offset : offset + width], types, strict=True):
                        if not blob:
                            row.append(None)
                        elif value_type in slow:
                            row.append(value_to_python(parse(blob), value_type))
                        else:
                            value = memo.get(blob, memo)
                            if value is memo:
                                value = memo[blob] = _fast_value(parse(blob), value_type)
                            row.append(value)
                    found.append(row)
                offset += width
                out[name] = ({key: i for i, key in enumerate(unique_keys)}, found)
        return out

    def _connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            if not self._db_path.exists():
                raise FileNotFoundError(f"no SQLite online store at {self._db_path} (materialize first)")
            self._sqlite = sqlite3.connect(
                f"{self._db_path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=10
            )
        return self._sqlite

    def _utf8_store(self) -> bool:
        """Whether the SQLite file is UTF-8 (Feast creates it so): ``select_packed`` joins values as
        text, which SQLite would re-encode in a UTF-16 database."""
        if self._sqlite_utf8 is None:
            with self._lock:
                (encoding,) = self._connection().execute("PRAGMA encoding").fetchone()
            self._sqlite_utf8 = str(encoding).upper() == "UTF-8"
        return self._sqlite_utf8

    def _transform(
        self, odfv: OnDemandFeatureView, names: tuple[str, ...], columns: Mapping[str, list[Any]], n_rows: int
    ) -> dict[str, list[Any]]:
        """Run an on-demand view as Feast's online path does and return its requested features."""
        from feast.value_type import ValueType

        sources = {p.name for p in odfv.source_feature_view_projections.values()}
        declared = {f for e in self._views.values() if e.view.name in sources for f in e.features}
        inputs = {
            k: v for k, v in columns.items() if k in declared or k in self._join_keys or k in self._request_fields
        }
        if odfv.mode == "python":
            output: Mapping[str, Any] = odfv.transform_dict(inputs)
            vectors = {n: output[n] if isinstance(output[n], list) else [output[n]] for n in names if n in output}
        elif odfv.mode in ("pandas", "substrait"):
            import pyarrow as pa

            table = odfv.transform_arrow(pa.Table.from_pydict(inputs), False)
            vectors = {n: table[n].to_numpy() for n in names if n in table.column_names}
        else:
            raise NotImplementedError(f"{odfv.name}: mode {odfv.mode}")
        out: dict[str, list[Any]] = {}
        for name in names:
            if name not in vectors:
                out[name] = [None] * n_rows
                continue
            out[name] = normalize(vectors[name], self._odfv_types.get(name, ValueType.UNKNOWN))
        return out

    def close(self) -> None:
        """Close the SQLite connection (the reader reopens it on the next read)."""
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None


def _copy(projection: Any) -> Any:
    return copy.copy(projection)


def _entity_rows(entry: _ViewRead, keys: Mapping[str, list[Any]], n_rows: int) -> list[tuple[Any, ...]]:
    """The view's join-key tuple of every row."""
    key_columns = [keys[k] for k in entry.join_keys]
    return list(zip(*key_columns, strict=True)) if key_columns else [()] * n_rows


def _plain_redis(store: FeatureStore) -> bool:
    """The online store is Redis read with redis-py (the direct read's case; GLIDE keeps Feast's read)."""
    found = _redis_of(store)
    if found is None:
        return False
    from feast.infra.online_stores.redis import RedisClient

    return bool(found[1].client == RedisClient.redis)


def _redis_of(store: FeatureStore) -> tuple[Any, Any] | None:
    """Feast's Redis online store object and its config, or None when the online store is not Redis."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    online = store._get_provider().online_store  # noqa: SLF001 - Feast's own store object
    if not isinstance(online, RedisOnlineStore):
        return None
    return online, store.config.online_store


def bound_online_store_waits(store: FeatureStore, timeout_s: float) -> bool:
    """Make a dead or stalled Redis online store cost a read milliseconds, not seconds.

    redis-py's defaults have no socket timeouts and retry a failed command three times with
    exponential backoff (base 1 s): measured here, one read against a stopped server took 6-10 s.
    A request path with a latency budget of tens of milliseconds would give up on the read while
    the read kept an I/O thread busy for seconds. This sets Feast's Redis client (built once per
    store, shared by every reader of the store) to connect and read timeouts of ``timeout_s``, and
    to one immediate retry on a broken connection (a pooled connection the server closed when it
    restarted) but none on a timeout (a stalled server would only stall again).

    Call it before the first read; writers (materialize, the pusher) keep Feast's defaults.

    Args:
        store: The feature store whose online store is read.
        timeout_s: Connect and read timeout in seconds.

    Returns:
        True when the online store is Redis and its client now fails fast; False for stores with
        nothing to wait for (SQLite is a local file).

    Raises:
        NotImplementedError: Redis Cluster or the GLIDE client (their clients are built differently).
    """
    found = _redis_of(store)
    if found is None:
        return False
    from feast.infra.online_stores.redis import RedisClient, RedisType
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    online, config = found
    if config.redis_type == RedisType.redis_cluster or config.client != RedisClient.redis:
        raise NotImplementedError(
            f"bounded waits are implemented for redis-py on Redis or Sentinel, not {config.redis_type.value} "
            f"with {config.client.value}"
        )
    client = online._get_client(config)  # noqa: SLF001 - Feast builds it lazily; it connects on first use
    client.connection_pool.connection_kwargs.update(socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    client.set_retry(Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    return True


def ping_online_store(store: FeatureStore) -> None:
    """Raise when the online store cannot answer reads now (for readiness probes).

    Redis: a ``PING`` through the store's own client (so its timeouts apply); SQLite: the database
    file exists (materialize or the pusher creates it). Other stores are not probed.

    Raises:
        ConnectionError: Redis did not answer (``redis.exceptions.RedisError`` is re-raised as this).
        FileNotFoundError: No SQLite database yet.
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    found = _redis_of(store)
    if found is not None:
        from redis.exceptions import RedisError

        online, config = found
        try:
            online._get_client(config).ping()  # noqa: SLF001 - the client the reads use
        except RedisError as err:
            raise ConnectionError(f"Redis at {_address(config.connection_string)} does not answer: {err}") from err
        return
    online = store._get_provider().online_store  # noqa: SLF001
    if isinstance(online, SqliteOnlineStore):
        path = Path(SqliteOnlineStore._get_db_path(store.config))  # noqa: SLF001
        if not path.exists():
            raise FileNotFoundError(f"no SQLite online store at {path} (materialize first)")


def _address(connection_string: str) -> str:
    """The host:port part of a Redis connection string (never its password)."""
    return ",".join(part for part in connection_string.split(",") if "=" not in part)

"""Online pushes without a DataFrame: rows become Feast's protos and go to ``OnlineStore.online_write_batch``.

``FeatureStore.push(source, df, to=PushMode.ONLINE)`` resolves the push source's feature views in
the registry, turns the DataFrame into an Arrow table, then into ``Value`` protos column by
column, and hands ``(entity key, values, event time, created time)`` rows to the online store.
For a stream of small batches most of that is overhead. :class:`PushWriter` resolves the views
once and builds the same rows straight from Python values, with Feast's own converter
(``python_values_to_proto_values``) and entity keys, then calls the same
``online_write_batch``: what lands in the online store is byte for byte what ``store.push``
writes (the pusher tests compare the SQLite tables).

On Feast's SQLite online store the writer also skips ``online_write_batch``'s per-cell loop (a
statement, a config lookup and a list per feature value) and upserts the very same rows with one
``executemany`` per view in one transaction: the store's table, columns, upsert statement, entity
key bytes, value bytes and ``value_text`` are Feast's own (``extract_text_and_num``), and the
event time goes through the adapter Feast registers for ``datetime``. Any other online store, or
a SQLite store with vectors or the value_num column, goes through ``online_write_batch``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.value_type import ValueType

    OnlineRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

_EPOCH = datetime(1970, 1, 1)


def naive_utc_from_ms(epoch_ms: int) -> datetime:
    """Epoch milliseconds as the naive UTC ``datetime`` Feast's push path stores (exact, no float)."""
    return _EPOCH + timedelta(milliseconds=int(epoch_ms))


def to_protos(values: Sequence[Any], value_type: ValueType) -> list[ValueProto]:
    """``python_values_to_proto_values(values, value_type)``, with short paths for plain Python values.

    Strings, Python ints (int64), floats and ints (double) and lists of strings take a short path
    that builds the very messages Feast builds (``None`` and NaN as an empty ``Value``); any other
    type or value goes to Feast's converter.
    """
    from feast.protos.feast.types.Value_pb2 import StringList, Value
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    empty = Value()
    if _plain_scalars(values, value_type):
        if value_type == ValueType.INT64:
            return [empty if v is None else Value(int64_val=v) for v in values]
        if value_type == ValueType.DOUBLE:
            return [empty if v is None or v != v else Value(double_val=v) for v in values]
        return [empty if v is None else Value(string_val=v) for v in values]
    if value_type == ValueType.STRING_LIST and all(
        v is None or (type(v) is list and all(type(e) is str for e in v)) for v in values
    ):
        return [empty if v is None else Value(string_list_val=StringList(val=v)) for v in values]
    return python_values_to_proto_values(list(values), value_type)


_I64 = (-(2**63), 2**63 - 1)


def _plain_scalars(values: Sequence[Any], value_type: ValueType) -> bool:
    """Whether :func:`to_protos` builds ``values``' messages on its scalar short path.

    Python ints within int64 for INT64, ints and floats for DOUBLE, strings for STRING (``None``
    anywhere); :func:`_cells` remembers exactly these columns' cells, so the rule lives here once.
    """
    from feast.value_type import ValueType

    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if value_type == ValueType.INT64:
        return kinds <= {int} and all(v is None or _I64[0] <= v <= _I64[1] for v in values)
    if value_type == ValueType.DOUBLE:
        return kinds <= {int, float}
    return value_type == ValueType.STRING and kinds <= {str}


@dataclass(frozen=True)
class _Target:
    view: FeatureView
    join_keys: tuple[tuple[str, ValueType], ...]
    features: tuple[tuple[str, ValueType], ...]


class PushWriter:
    """Writes rows to every feature view of a push source, as ``store.push(..., to=ONLINE)`` does.

    Args:
        store: The ``feast.FeatureStore``.
        push_source: The push source's name.

    Raises:
        feast.errors.PushSourceNotFoundException: No feature view reads the push source.
        NotImplementedError: A view needs what the writer does not reproduce (field mapping,
            a created-timestamp column, a feature service precomputed online).
    """

    def __init__(self, store: FeatureStore, push_source: str) -> None:
        from feast.data_source import PushSource
        from feast.errors import PushSourceNotFoundException

        self.store = store
        self.push_source = push_source
        views = [*store.list_feature_views(), *store.list_stream_feature_views()]
        targets = []
        for view in views:
            source = view.stream_source
            if not (isinstance(source, PushSource) and source.name == push_source):
                continue
            batch = view.batch_source
            if batch is None or batch.field_mapping or batch.created_timestamp_column:
                raise NotImplementedError(f"{view.name}: field mappings and created timestamps are not supported")
            targets.append(
                _Target(
                    view=view,
                    join_keys=tuple((c.name, c.dtype.to_value_type()) for c in view.entity_columns),
                    features=tuple((f.name, f.dtype.to_value_type()) for f in view.features),
                )
            )
        if not targets:
            raise PushSourceNotFoundException(push_source)
        names = {t.view.name for t in targets}
        for service in store.list_feature_services():
            if getattr(service, "precompute_online", False) and any(
                p.name in names for p in service.feature_view_projections
            ):
                raise NotImplementedError(f"{service.name} is precomputed online: use store.push")
        self._targets = targets
        self._online_store = store._get_provider().online_store  # noqa: SLF001 - Feast's own store object
        self._sqlite_tables = _sqlite_tables(store, self._online_store, targets)

    @property
    def feature_views(self) -> list[str]:
        """The feature views written."""
        return [t.view.name for t in self._targets]

    def rows(self, columns: Mapping[str, Sequence[Any]], event_times: Sequence[datetime]) -> dict[str, list[OnlineRow]]:
        """The rows ``online_write_batch`` gets for each feature view (what ``store.push`` builds).

        Args:
            columns: Join keys and features, name → one value per row (extra columns ignored).
            event_times: Each row's event time as a naive UTC datetime (:func:`naive_utc_from_ms`).
        """
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        out: dict[str, list[OnlineRow]] = {}
        n_rows = len(event_times)
        for target in self._targets:
            feature_names = [name for name, _ in target.features]
            if all(v is None for name in feature_names for v in columns[name]):
                out[target.view.name] = []  # store.push writes nothing when every feature is null
                continue
            protos = {
                name: to_protos(columns[name], value_type) for name, value_type in (*target.features, *target.join_keys)
            }
            keys = [name for name, _ in target.join_keys]
            out[target.view.name] = [
                (
                    EntityKey(join_keys=keys, entity_values=[protos[k][i] for k in keys]),
                    {name: protos[name][i] for name in feature_names},
                    event_times[i],
                    None,
                )
                for i in range(n_rows)
            ]
        return out

    def write(self, columns: Mapping[str, Sequence[Any]], event_times: Sequence[datetime]) -> int:
        """Write the rows to the online store; return how many rows were written (per view)."""
        if not event_times:
            return 0
        if self._sqlite_tables is not None:
            return self._write_sqlite(columns, event_times, self._sqlite_tables)
        written = 0
        rows = self.rows(columns, event_times)
        for target in self._targets:
            data = rows[target.view.name]
            if data:
                self._online_store.online_write_batch(self.store.config, target.view, data, None)
                written = max(written, len(data))
        return written

    def _write_sqlite(
        self, columns: Mapping[str, Sequence[Any]], event_times: Sequence[datetime], tables: Mapping[str, str]
    ) -> int:
        """Upsert every view's rows into Feast's SQLite tables, one ``executemany`` per view, one commit.

        The rows are those ``SqliteOnlineStore.online_write_batch`` executes one by one for
        :meth:`rows`' data: ``(entity_key, feature_name, value, value_text, event_ts, created_ts)``.
        """
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        from lambdarec.featurestore.sqlite_layout import upsert_values

        config = self.store.config
        version = config.entity_key_serialization_version
        n_rows = len(event_times)
        batches: list[tuple[str, list[tuple[Any, ...]]]] = []
        for target in self._targets:
            feature_names = [name for name, _ in target.features]
            if all(v is None for name in feature_names for v in columns[name]):
                continue  # store.push writes nothing when every feature is null
            keys = [name for name, _ in target.join_keys]
            key_protos = [to_protos(columns[name], value_type) for name, value_type in target.join_keys]
            cells = [_cells(columns[name], value_type) for name, value_type in target.features]
            rows: list[tuple[Any, ...]] = []
            for i in range(n_rows):
                entity = serialize_entity_key(
                    EntityKey(join_keys=keys, entity_values=[protos[i] for protos in key_protos]), version
                )
                stamp = event_times[i]
                rows += [
                    (entity, name, *column[i], stamp, None) for name, column in zip(feature_names, cells, strict=True)
                ]
            batches.append((tables[target.view.name], rows))
        if not batches:
            return 0
        connection = self._online_store._get_conn(config)  # type: ignore[attr-defined]  # noqa: SLF001 - Feast writes with it
        with connection:  # one transaction, as online_write_batch's, for every view
            for table, rows in batches:
                connection.executemany(upsert_values(table), rows)
        return n_rows


_CELL_MEMO: dict[tuple[Any, ...], tuple[bytes, str | None]] = {}
_CELL_MEMO_SIZE = 100_000


def _cells(values: Sequence[Any], value_type: ValueType) -> list[tuple[bytes, str | None]]:
    """``(value bytes, value_text)`` of each value, as Feast's SQLite store writes a cell.

    Counts and ids repeat across updates, so the scalars of a column :func:`to_protos` converts on
    its short path are remembered by (type, Python type, value, sign); a value not seen before goes
    through :func:`to_protos` like every list and every other column does, so the bytes are always
    those of Feast's messages.
    """
    from feast.infra.online_stores.helpers import extract_text_and_num

    def cell(proto: ValueProto) -> tuple[bytes, str | None]:
        return proto.SerializeToString(), extract_text_and_num(proto, False)[0]

    if not _plain_scalars(values, value_type):  # lists, and columns to_protos hands to Feast's converter whole
        return [cell(p) for p in to_protos(values, value_type)]
    if len(_CELL_MEMO) > _CELL_MEMO_SIZE:
        _CELL_MEMO.clear()
    out: list[tuple[bytes, str | None]] = []
    for value in values:
        # The sign tells 0.0 from -0.0 (equal keys, different bytes and text).
        key = (value_type, type(value), value, math.copysign(1.0, value) if type(value) is float else 0)
        found = _CELL_MEMO.get(key)
        if found is None:
            found = _CELL_MEMO[key] = cell(to_protos([value], value_type)[0])
        out.append(found)
    return out


def _sqlite_tables(store: FeatureStore, online_store: Any, targets: Sequence[_Target]) -> dict[str, str] | None:
    """View name → quoted table of Feast's SQLite online store, when the rows can be upserted directly.

    None (write through ``online_write_batch``) for any other store, a subclass of it, or a store
    whose tables carry more columns (vectors, the value_num column).
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from lambdarec.featurestore.sqlite_layout import sqlite_table

    config = store.config
    online = config.online_store
    if type(online_store) is not SqliteOnlineStore:
        return None
    if getattr(online, "vector_enabled", False) or getattr(online, "enable_openai_compatible_store", False):
        return None
    return {t.view.name: sqlite_table(config, t.view) for t in targets}

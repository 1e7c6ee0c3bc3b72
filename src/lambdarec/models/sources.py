"""Where model inputs are read from: the offline store (training) or the online store (serving).

Both sources answer the same three questions with rows of the same feature services, and the
models turn either answer into arrays with :mod:`lambdarec.models.inputs`:

- :meth:`FeatureSource.query_rows`: ``retrieval_v2`` per (session, user) at a moment;
- :meth:`FeatureSource.candidate_rows`: ``ranking_v2`` per (user, item) at a moment;
- :meth:`FeatureSource.neighbour_rows`: ``neighbours_v1`` per item at a moment;
- :meth:`FeatureSource.session_rule_rows`: ``session_rules_v1`` per session at a moment (what the
  request path's rules read, e.g. the items bought in the session; no model reads it).

Offline, "at a moment" is Feast's point-in-time join (every value observed at or before it);
online it is now (the moment only feeds the request-time on-demand features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lambdarec import names

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from lambdarec.featurestore.online import OnlineFeatureReader

Columns = dict[str, list[Any]]
ANONYMOUS = ""
"""The user key of an anonymous session (no user's features match it, offline or online)."""


class FeatureSource(Protocol):
    """Rows of the model feature services, one per entity row, in the order asked."""

    def query_rows(self, session_ids: Sequence[str], user_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``retrieval_v2`` rows."""
        ...

    def candidate_rows(self, user_ids: Sequence[str], item_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``ranking_v2`` rows."""
        ...

    def neighbour_rows(self, item_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``neighbours_v1`` rows."""
        ...

    def session_rule_rows(self, session_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``session_rules_v1`` rows."""
        ...


def _user_keys(user_ids: Sequence[Any]) -> list[str]:
    return [ANONYMOUS if u is None or (isinstance(u, float) and u != u) else str(u) for u in user_ids]


class OfflineFeatureSource:
    """Point-in-time rows from Feast's offline store (``get_historical_features``).

    Args:
        store: The feature store (its registry must hold the v2 services).
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._services: dict[str, Any] = {}

    def _service(self, name: str) -> Any:
        if name not in self._services:
            try:
                self._services[name] = self.store.get_feature_service(name)
            except Exception as err:  # FeatureServiceNotFoundException and registry errors
                raise LookupError(
                    f"feature service {name!r} is not in the registry: run `lambdarec features apply`"
                ) from err
        return self._services[name]

    def _historical(self, service: str, entities: dict[str, list[Any]], moments_ms: Sequence[int]) -> Columns:
        import pandas as pd

        feature_service = self._service(service)  # a missing service fails here, named, before any read
        n = len(moments_ms)
        if n == 0:
            return {}
        asked = pd.DataFrame(entities)
        asked["_moment"] = pd.Series(list(moments_ms), dtype="int64")
        # Many examples ask the same (keys, moment) (a user's candidates, an item's neighbours):
        # ask each distinct one once and fan the answer out to every row that asked it.
        keys = list(asked.columns)
        unique = asked.drop_duplicates(keys).reset_index(drop=True)
        unique["_row"] = range(len(unique))
        result = pd.concat([self._ask(unique[part], feature_service) for part in _parts(unique)])
        # The join does not keep the order asked: put the answers back in it by `_row`.
        answered = result.drop_duplicates("_row").set_index("_row").reindex(range(len(unique)))
        answered = answered.drop(columns=[c for c in (*entities, "event_timestamp") if c in answered.columns])
        row_of = asked.merge(unique[[*keys, "_row"]], on=keys, how="left")["_row"].to_numpy()
        out = answered.iloc[row_of].reset_index(drop=True)
        for column, values in entities.items():
            out[column] = values
        return _columns(out)

    def _ask(self, rows: pd.DataFrame, feature_service: Any) -> pd.DataFrame:
        """One ``get_historical_features`` call, each row as of its moment (a whole millisecond)."""
        import pandas as pd

        frame = rows.drop(columns="_moment")
        frame["event_timestamp"] = pd.to_datetime(rows["_moment"].to_numpy(), unit="ms", utc=True)
        result: pd.DataFrame = self.store.get_historical_features(entity_df=frame, features=feature_service).to_df()
        return result

    def query_rows(self, session_ids: Sequence[str], user_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``retrieval_v2`` as of each moment."""
        entities: dict[str, list[Any]] = {
            names.SESSION_ID: [str(s) for s in session_ids],
            names.USER_ID: _user_keys(user_ids),
        }
        return self._historical(names.QUERY_FEATURE_SERVICE, entities, moments_ms)

    def candidate_rows(self, user_ids: Sequence[str], item_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``ranking_v2`` as of each moment (the moment is also the request time)."""
        entities: dict[str, list[Any]] = {
            names.USER_ID: _user_keys(user_ids),
            names.ITEM_ID: [str(i) for i in item_ids],
            names.REQUEST_TIME_MS: [int(m) for m in moments_ms],
        }
        return self._historical(names.CANDIDATE_FEATURE_SERVICE, entities, moments_ms)

    def neighbour_rows(self, item_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``neighbours_v1`` as of each moment."""
        entities: dict[str, list[Any]] = {names.ITEM_ID: [str(i) for i in item_ids]}
        return self._historical(names.NEIGHBOUR_FEATURE_SERVICE, entities, moments_ms)

    def session_rule_rows(self, session_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``session_rules_v1`` as of each moment."""
        entities: dict[str, list[Any]] = {names.SESSION_ID: [str(s) for s in session_ids]}
        return self._historical(names.SESSION_RULES_FEATURE_SERVICE, entities, moments_ms)


ROWS_PER_READ = 50_000
"""Entity rows per Feast call: a call's answer (and its on-demand features) is built in memory,
so a read of millions of rows goes in bounded pieces."""


def _parts(rows: pd.DataFrame) -> list[Any]:
    """Masks splitting ``rows`` into reads of at most :data:`ROWS_PER_READ` rows."""
    import numpy as np

    if not len(rows):
        return []
    chunk = np.arange(len(rows)) // ROWS_PER_READ
    return [chunk == c for c in range(int(chunk.max()) + 1)]


def _columns(frame: pd.DataFrame) -> Columns:
    """Frame → columns of Python values (NaN → None, numpy arrays → lists), as the online read returns."""
    import numpy as np

    out: Columns = {}
    for name in frame.columns:
        column = frame[name]
        values = column.tolist()
        if column.dtype.kind == "f":  # a float column: only its NaNs change
            for i in np.flatnonzero(np.isnan(column.to_numpy())):
                values[i] = None
        elif column.dtype == object:
            values = [
                v.tolist() if isinstance(v, np.ndarray) else (None if isinstance(v, float) and v != v else v)
                for v in values
            ]
        out[name] = values
    return out


class OnlineFeatureSource:
    """Rows from the online store through :class:`OnlineFeatureReader` (what serving reads).

    Args:
        store: The feature store (its registry must hold the v2 services).
    """

    def __init__(self, store: FeatureStore) -> None:
        from lambdarec.featurestore.online import OnlineFeatureReader

        self.readers: dict[str, OnlineFeatureReader] = {}
        for service in (
            names.QUERY_FEATURE_SERVICE,
            names.CANDIDATE_FEATURE_SERVICE,
            names.NEIGHBOUR_FEATURE_SERVICE,
            names.SESSION_RULES_FEATURE_SERVICE,
        ):
            try:
                self.readers[service] = OnlineFeatureReader(store, service)
            except Exception as err:  # FeatureServiceNotFoundException and registry errors
                raise LookupError(
                    f"feature service {service!r} is not deployed: run `lambdarec features apply`"
                ) from err

    def query_rows(self, session_ids: Sequence[str], user_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``retrieval_v2`` now (``moments_ms`` is not used: the online store holds the latest values)."""
        rows: dict[str, list[Any]] = {
            names.SESSION_ID: [str(s) for s in session_ids],
            names.USER_ID: _user_keys(user_ids),
        }
        return self.readers[names.QUERY_FEATURE_SERVICE].read(rows)

    def candidate_rows(self, user_ids: Sequence[str], item_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``ranking_v2`` now, with ``moments_ms`` as the request time of the pair features."""
        rows: dict[str, list[Any]] = {
            names.USER_ID: _user_keys(user_ids),
            names.ITEM_ID: [str(i) for i in item_ids],
            names.REQUEST_TIME_MS: [int(m) for m in moments_ms],
        }
        return self.readers[names.CANDIDATE_FEATURE_SERVICE].read(rows)

    def neighbour_rows(self, item_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``neighbours_v1`` now."""
        return self.readers[names.NEIGHBOUR_FEATURE_SERVICE].read({names.ITEM_ID: [str(i) for i in item_ids]})

    def session_rule_rows(self, session_ids: Sequence[str], moments_ms: Sequence[int]) -> Columns:
        """``session_rules_v1`` now."""
        return self.readers[names.SESSION_RULES_FEATURE_SERVICE].read({names.SESSION_ID: [str(s) for s in session_ids]})

    def close(self) -> None:
        """Close the readers' connections."""
        for reader in self.readers.values():
            reader.close()

"""Training sets for retrieval and ranking, joined point-in-time through Feast.

Examples of a date come from its silver events; their features come from
``get_historical_features`` with the model's feature service, so each example sees only
snapshots stamped at or before its own time (the previous day's gold, see
:func:`lambdarec.batch.lake.snapshot_time`) — no future leakage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from lambdarec import names
from lambdarec.batch.lake import Lake, write_json_atomic
from lambdarec.batch.sessions import EVENT_TIMESTAMP
from lambdarec.features.session import SESSION_KEY

if TYPE_CHECKING:
    from feast import FeatureStore

RETRIEVAL_SET = "training_retrieval"
RANKING_SET = "training_ranking"
LABEL = "label"


def _stamp(times_ms: pd.Series) -> pd.Series:
    return pd.to_datetime(times_ms.astype("int64"), unit="ms", utc=True)


def ranking_examples(events: pd.DataFrame) -> pd.DataFrame:
    """(user, item) impressions of known users with a label: carted or bought later in the session.

    Args:
        events: Silver events of one date.

    Returns:
        ``user_id, item_id, session_id, event_timestamp, request_time_ms, label`` — one row per
        first view of an item in a session, stamped at that view.
    """
    known = events[events[names.USER_ID].notna()]
    views = known[known["event_type"] == "view"]
    first = views.sort_values(["event_time", "event_id"]).drop_duplicates([SESSION_KEY, names.ITEM_ID])
    converted = known[known["event_type"].isin(["cart", "purchase"])]
    last_conversion = converted.groupby([SESSION_KEY, names.ITEM_ID])["event_time"].max().rename("converted_at")
    joined = first.join(last_conversion, on=[SESSION_KEY, names.ITEM_ID])
    label = (joined["converted_at"].notna() & (joined["converted_at"] >= joined["event_time"])).astype("int64")
    return pd.DataFrame(
        {
            names.USER_ID: joined[names.USER_ID].astype(str).to_numpy(),
            names.ITEM_ID: joined[names.ITEM_ID].astype(str).to_numpy(),
            names.SESSION_ID: joined[SESSION_KEY].astype(str).to_numpy(),
            EVENT_TIMESTAMP: _stamp(joined["event_time"]).to_numpy(),
            "request_time_ms": joined["event_time"].astype("int64").to_numpy(),
            LABEL: label.to_numpy(),
        }
    ).reset_index(drop=True)


def retrieval_examples(events: pd.DataFrame) -> pd.DataFrame:
    """Positive (user, item) pairs for the two-tower model: carts and purchases of known users."""
    known = events[events[names.USER_ID].notna() & events["event_type"].isin(["cart", "purchase"])]
    pairs = known.sort_values(["event_time", "event_id"]).drop_duplicates([SESSION_KEY, names.ITEM_ID])
    return pd.DataFrame(
        {
            names.USER_ID: pairs[names.USER_ID].astype(str).to_numpy(),
            names.ITEM_ID: pairs[names.ITEM_ID].astype(str).to_numpy(),
            names.SESSION_ID: pairs[SESSION_KEY].astype(str).to_numpy(),
            EVENT_TIMESTAMP: _stamp(pairs["event_time"]).to_numpy(),
            "event_type": pairs["event_type"].astype(str).to_numpy(),
        }
    ).reset_index(drop=True)


def sample(frame: pd.DataFrame, max_rows: int | None, seed: int = 7) -> pd.DataFrame:
    """At most ``max_rows`` rows, chosen reproducibly."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_values(EVENT_TIMESTAMP).reset_index(drop=True)


@dataclass
class TrainingReport:
    """Rows of each training set written for one date."""

    date: str
    rows: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def read_silver_day(lake: Lake, day: str) -> pd.DataFrame:
    """The silver events of one date as pandas."""
    import pyarrow.parquet as pq

    folder = lake.silver / f"event_date={day}"
    if not folder.exists():
        raise FileNotFoundError(f"no silver partition for {day} at {folder}")
    return pq.read_table(folder).to_pandas()


def build_training_sets(store: FeatureStore, lake: Lake, day: str, *, max_rows: int | None = 200_000) -> TrainingReport:
    """Write the retrieval and ranking sets of ``day`` (point-in-time features from Feast).

    Args:
        store: A store whose registry holds ``retrieval_v1`` and ``ranking_v1``.
        lake: Where silver is read and ``gold/training_*/date=<day>`` written.
        day: The date of the examples.
        max_rows: Reproducible sample cap per set.

    Returns:
        Row and positive counts per set.
    """
    from lambdarec.featurestore.store import historical_features

    events = read_silver_day(lake, day)
    report = TrainingReport(date=day)
    sets = {
        RETRIEVAL_SET: (sample(retrieval_examples(events), max_rows), names.RETRIEVAL_FEATURE_SERVICE),
        RANKING_SET: (sample(ranking_examples(events), max_rows), names.RANKING_FEATURE_SERVICE),
    }
    for table, (examples, service) in sets.items():
        target = lake.gold(table) / f"date={day}"
        target.mkdir(parents=True, exist_ok=True)
        if examples.empty:
            frame = examples
        else:
            frame = historical_features(store, examples, service)
        frame = frame.sort_values([EVENT_TIMESTAMP, names.USER_ID, names.ITEM_ID]).reset_index(drop=True)
        tmp = target / "part-0.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(target / "part-0.parquet")
        report.rows[table] = len(frame)
        report.positives[table] = int(frame[LABEL].sum()) if LABEL in frame else len(frame)
    write_json_atomic(lake.report("training", day), report.to_dict())
    return report

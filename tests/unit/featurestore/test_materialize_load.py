"""The direct SQLite load writes exactly the cells FeatureStore.materialize writes (project repo, SQLite)."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from feast_gold import SNAPSHOT, online_cells, write_gold
from lambdarec import names
from lambdarec.featurestore.load import column_cells, direct_load_supported
from lambdarec.featurestore.store import apply, materialize, open_store
from lambdarec.settings import Settings, load_settings

VIEWS = [names.USER_HISTORY_FEATURE_VIEW, names.ITEM_STATS_FEATURE_VIEW]
START, END = SNAPSHOT - timedelta(days=3), SNAPSHOT + timedelta(seconds=1)


def _state(root: Path) -> Settings:
    write_gold(root / "lake")
    settings = load_settings("local", state_dir=root)
    apply(settings)
    return settings


def _cells(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    return online_cells(settings, VIEWS)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Settings, dict[str, object]]:
    through_feast = _state(tmp_path_factory.mktemp("load-feast"))
    direct = _state(tmp_path_factory.mktemp("load-direct"))
    materialize(through_feast, START, END, VIEWS, through_feast=True)
    report = materialize(direct, START, END, VIEWS)
    return through_feast, direct, report.to_dict()


def test_direct_load_applies_to_the_project_on_sqlite(loaded: tuple[Settings, Settings, dict[str, object]]) -> None:
    store = open_store(loaded[1])
    assert direct_load_supported(store, [store.get_feature_view(v) for v in VIEWS])


def test_direct_load_writes_feasts_cells(loaded: tuple[Settings, Settings, dict[str, object]]) -> None:
    through_feast, direct, report = loaded
    expected, got = _cells(through_feast), _cells(direct)
    assert [len(expected[v]) for v in VIEWS] == [4 * 11, 3 * 17]  # every entity, every feature
    assert got == expected
    assert report["rows"] == {names.USER_HISTORY_FEATURE_VIEW: 4, names.ITEM_STATS_FEATURE_VIEW: 3}


def test_direct_load_upserts_and_records_the_interval(loaded: tuple[Settings, Settings, dict[str, object]]) -> None:
    through_feast, direct, _ = loaded
    materialize(direct, START, END, VIEWS)  # again: every cell is an update, none is added
    assert _cells(direct) == _cells(through_feast)
    for settings in (through_feast, direct):
        view = open_store(settings).get_feature_view(names.ITEM_STATS_FEATURE_VIEW)
        assert [(i[0], i[1]) for i in view.materialization_intervals][-1] == (START, END)


def test_direct_load_of_an_empty_window_writes_nothing(tmp_path: Path) -> None:
    settings = _state(tmp_path)
    report = materialize(settings, END + timedelta(days=1), END + timedelta(days=2), VIEWS)
    assert report.rows == dict.fromkeys(VIEWS, 0)
    assert all(not rows for rows in _cells(settings).values())


@pytest.mark.parametrize(
    ("values", "value_type"),
    [
        (np.array([0.0, -0.0, math.nan, 1.5, 1.5, -2.25, math.inf]), ValueType.DOUBLE),
        (np.array([3, 0, -7, 3, 2**62], dtype=np.int64), ValueType.INT64),
        (np.array([3.0, math.nan, 0.0, 3.0]), ValueType.INT64),  # an int column with nulls, as NumPy hands it
        (np.array(["a", None, "", "a", "é"], dtype=object), ValueType.STRING),
        (pa.array([["a", "b"], [], None, ["a", "b"]]).to_numpy(zero_copy_only=False), ValueType.STRING_LIST),
        (pa.array([[0.5, -0.0], None, []]).to_numpy(zero_copy_only=False), ValueType.DOUBLE_LIST),
    ],
)
def test_column_cells_are_feasts_per_value(values: np.ndarray, value_type: ValueType) -> None:
    expected = [
        (p.SerializeToString(), extract_text_and_num(p, False)[0])
        for p in python_values_to_proto_values(values, value_type)
    ]
    assert column_cells(values, value_type) == expected
    assert column_cells(values[:0], value_type) == []

"""The contracts around the models: feature services = model inputs, the bundle, and bad input.

No engines: the Feast repo is imported (not applied), stores are small stand-ins.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lambdarec import names
from lambdarec.models.bundle import BundleError, check_feature_services, load_bundle, read_meta, save_bundle
from lambdarec.models.data import DatasetError
from lambdarec.models.inputs import CANDIDATE_FIELDS, NEIGHBOUR_FIELDS, QUERY_FIELDS

pytest.importorskip("torch")


def _services() -> dict[str, Any]:
    from feast import FeatureService

    from lambdarec.featurestore.store import load_definitions
    from lambdarec.settings import load_settings

    objects = load_definitions(load_settings("local"))
    return {o.name: o for o in objects if isinstance(o, FeatureService)}


def _fields(service: Any) -> list[str]:
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def test_the_feature_services_hold_exactly_what_the_models_read() -> None:
    services = _services()
    assert _fields(services[names.QUERY_FEATURE_SERVICE]) == list(QUERY_FIELDS)
    assert _fields(services[names.CANDIDATE_FEATURE_SERVICE]) == list(CANDIDATE_FIELDS)
    assert _fields(services[names.NEIGHBOUR_FEATURE_SERVICE]) == list(NEIGHBOUR_FIELDS)


def test_every_feature_view_feeds_a_service() -> None:
    from feast import FeatureView

    from lambdarec.featurestore.store import load_definitions
    from lambdarec.settings import load_settings

    objects = load_definitions(load_settings("local"))
    views = {o.name for o in objects if isinstance(o, FeatureView)}
    used = {p.name for s in _services().values() for p in s.feature_view_projections}
    # On-demand views name their sources: those count as fed too.
    odfv_sources = {src for o in objects if hasattr(o, "source_feature_view_projections")
                    for src in o.source_feature_view_projections}  # fmt: skip
    assert views <= used | odfv_sources, views - used - odfv_sources


def test_the_pair_view_reads_only_what_its_function_takes() -> None:
    """The on-demand view's sources are projected to the function's inputs (no whole views per candidate)."""
    from feast import OnDemandFeatureView

    from lambdarec.featurestore.store import load_definitions
    from lambdarec.featurestore.transforms import (
        USER_ITEM_ITEM_INPUTS,
        USER_ITEM_REQUEST_INPUTS,
        USER_ITEM_USER_INPUTS,
    )
    from lambdarec.settings import load_settings

    (view,) = [
        o
        for o in load_definitions(load_settings("local"))
        if isinstance(o, OnDemandFeatureView) and o.name == names.USER_ITEM_FEATURE_VIEW
    ]
    sources = {name: [f.name for f in p.features] for name, p in view.source_feature_view_projections.items()}
    assert sources == {"user_history": list(USER_ITEM_USER_INPUTS), "item_stats": list(USER_ITEM_ITEM_INPUTS)}
    requested = [f.name for s in view.source_request_sources.values() for f in s.schema]
    assert requested == list(USER_ITEM_REQUEST_INPUTS)


def test_published_v1_services_keep_their_fields() -> None:
    services = _services()
    assert "user_recent_items_30d" not in _fields(services[names.RETRIEVAL_FEATURE_SERVICE])
    assert "item_brand" not in _fields(services[names.RANKING_FEATURE_SERVICE])


class _Store:
    """A registry stand-in: the services it holds, each with its fields."""

    def __init__(self, services: dict[str, list[str]]) -> None:
        self.services = services

    def get_feature_service(self, name: str) -> Any:
        if name not in self.services:
            raise LookupError(name)

        class _Feature:
            def __init__(self, n: str) -> None:
                self.name = n

        class _Projection:
            features = [_Feature(n) for n in self.services[name]]

        class _Service:
            feature_view_projections = [_Projection()]

        return _Service()


@pytest.fixture(scope="module")
def bundle(tiny_split: Any, tiny_source: Any, tiny_config: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from lambdarec.evaluate.report import evaluate_split

    _, recommender = evaluate_split(tiny_split, tiny_source, tiny_config, dataset="synthetic:tiny")
    folder = save_bundle(recommender, tmp_path_factory.mktemp("bundle") / "b", extra={"run_id": "r"})
    return recommender, folder


def test_a_bundle_round_trips_and_refuses_foreign_feature_services(bundle: Any, tmp_path: Path) -> None:
    recommender, folder = bundle
    loaded = load_bundle(folder)
    assert loaded.index_ids.tolist() == recommender.index_ids.tolist()
    assert loaded.vocab.item_ids == recommender.vocab.item_ids
    meta = read_meta(folder)
    deployed = {
        names.QUERY_FEATURE_SERVICE: list(QUERY_FIELDS),
        names.CANDIDATE_FEATURE_SERVICE: list(CANDIDATE_FIELDS),
        names.NEIGHBOUR_FEATURE_SERVICE: list(NEIGHBOUR_FIELDS),
    }
    check_feature_services(meta, _Store(deployed))  # the deployed store serves what the bundle reads
    with pytest.raises(BundleError, match="ranking_v2.*not deployed"):
        check_feature_services(meta, _Store({k: v for k, v in deployed.items() if k != "ranking_v2"}))
    with pytest.raises(BundleError, match="lacks.*user_spend_30d"):
        short = dict(deployed, **{names.QUERY_FEATURE_SERVICE: [f for f in QUERY_FIELDS if f != "user_spend_30d"]})
        check_feature_services(meta, _Store(short))
    # A bundle trained against another version of the services is refused by name.
    other = tmp_path / "other"
    other.mkdir()
    for path in folder.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    changed = json.loads((other / "bundle.json").read_text())
    changed["feature_services"]["query"]["name"] = "retrieval_v1"
    (other / "bundle.json").write_text(json.dumps(changed))
    with pytest.raises(BundleError, match="retrieval_v1"):
        load_bundle(other)
    with pytest.raises(BundleError, match="no serving bundle"):
        load_bundle(tmp_path / "nothing-here")


def test_a_bundle_loads_in_a_fresh_process_without_training_data(bundle: Any) -> None:
    recommender, folder = bundle
    code = (
        "import sys; from pathlib import Path; from lambdarec.models.bundle import load_bundle;"
        "r = load_bundle(Path(sys.argv[1])); print(len(r.index_ids), r.vocab.n_items)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(recommender.index_ids)), str(recommender.vocab.n_items)]


def test_training_without_gold_for_a_date_names_the_dates(tmp_path: Path) -> None:
    from lambdarec.batch.lake import Lake
    from lambdarec.models.commands import check_gold_coverage

    lake = Lake(tmp_path / "lake")
    (lake.gold("session_features") / "date=2024-01-01").mkdir(parents=True)
    events = pd.DataFrame({"event_time": [1704067200000, 1704153600000, 1704240000000]})  # Jan 1, 2, 3
    with pytest.raises(DatasetError, match=r"2024-01-02, 2024-01-03.*--gold-all"):
        check_gold_coverage(lake, events)
    with pytest.raises(DatasetError, match="no silver events"):
        from lambdarec.models.commands import silver_events

        silver_events(lake)


def test_a_missing_feature_service_is_named() -> None:
    from lambdarec.models.sources import OfflineFeatureSource

    source = OfflineFeatureSource(_Store({}))  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="retrieval_v2.*lambdarec features apply"):
        source.query_rows(["s"], ["u"], [1])

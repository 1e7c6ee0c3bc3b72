"""The models read through Feast's DuckDB offline store only: every environment names it, others are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("feast")

from lambdarec.featurestore.store import OFFLINE_STORE, open_store  # noqa: E402
from lambdarec.settings import find_project_root, load_settings  # noqa: E402

ENVIRONMENTS = ("local", "staging", "prod")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_reads_through_duckdb(env: str) -> None:
    root = find_project_root()
    assert root is not None
    config = yaml.safe_load((root / "environments" / env / "feature_store.yaml").read_text())
    assert config["offline_store"]["type"] == OFFLINE_STORE == "duckdb"


def test_an_offline_store_that_is_not_duckdb_is_refused_naming_the_setting(tmp_path: Path) -> None:
    root = find_project_root()
    assert root is not None
    text = (root / "environments" / "local" / "feature_store.yaml").read_text()
    assert "type: duckdb" in text
    config = tmp_path / "feature_store.yaml"
    config.write_text(text.replace("type: duckdb", "type: file"))
    settings = load_settings("local", state_dir=tmp_path / "state")
    with pytest.raises(ValueError, match=r"offline_store.type is 'file'.*'duckdb'"):
        open_store(settings, config)
    open_store(settings, root / "environments" / "local" / "feature_store.yaml")  # the real one opens

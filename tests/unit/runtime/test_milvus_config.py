"""The embedded Milvus's generated configuration."""

from __future__ import annotations

from pathlib import Path

from lambdarec.runtime.milvus import MilvusService
from lambdarec.settings import MilvusSettings, Settings


def _config(settings: Settings) -> dict:
    service = MilvusService(settings)
    ports = {name: 20000 + i for i, name in enumerate(service.port_names)}
    return service.milvus_config(ports)


def test_gc_helper_ceiling_comes_from_settings(tmp_path: Path) -> None:
    default = _config(Settings(state_dir=tmp_path / "a"))
    assert default["queryNode"]["gchelper"] == {"enabled": True, "maximumGoGC": 800}
    tuned = _config(Settings(state_dir=tmp_path / "b", milvus=MilvusSettings(max_go_gc=300)))
    assert tuned["queryNode"]["gchelper"]["maximumGoGC"] == 300
    assert default["proxy"]["port"] == 20000  # the template was filled, not replaced

"""Open a dataset from a spec string ``<adapter>:<path>``, as the CLI takes it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from lambdarec.data.adapters import (
    CsvAdapter,
    DatasetAdapter,
    DigineticaAdapter,
    OttoAdapter,
    Rees46Adapter,
    RetailRocketAdapter,
    SyntheticAdapter,
    UciOnlineRetailAdapter,
    YooChooseAdapter,
)

ADAPTERS: Mapping[str, type[DatasetAdapter]] = {
    adapter.name: adapter
    for adapter in (
        Rees46Adapter,
        OttoAdapter,
        RetailRocketAdapter,
        YooChooseAdapter,
        DigineticaAdapter,
        UciOnlineRetailAdapter,
        CsvAdapter,
        SyntheticAdapter,
    )
}
"""Adapter name (the part of a spec before the colon) -> adapter class."""


def adapter_names() -> list[str]:
    """The adapter names a spec may start with, in registry order."""
    return list(ADAPTERS)


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``"<adapter>:<path>"`` into the adapter name and the path.

    Raises:
        ValueError: When the spec has no colon or names no known adapter.
    """
    name, sep, path = spec.partition(":")
    name = name.strip().lower()
    if not sep or not path:
        raise ValueError(f"dataset spec {spec!r} is not <adapter>:<path>; adapters: {', '.join(ADAPTERS)}")
    if name not in ADAPTERS:
        raise ValueError(f"unknown adapter {name!r} in {spec!r}; adapters: {', '.join(ADAPTERS)}")
    return name, Path(path).expanduser()


def _sidecar_mapping(path: Path) -> dict[str, Any] | None:
    # `lambdarec replay csv:shop.csv` works without flags when shop.csv.mapping.json exists.
    candidates = [path / "mapping.json"] if path.is_dir() else [path.with_name(path.name + ".mapping.json")]
    for candidate in candidates:
        if candidate.is_file():
            loaded = orjson.loads(candidate.read_bytes())
            if isinstance(loaded, dict):
                return loaded
    return None


def open_dataset(spec: str, **options: Any) -> DatasetAdapter:
    """Open the dataset a spec names, e.g. ``"rees46:data/2019-Oct.csv"``.

    Args:
        spec: ``<adapter>:<path>``; see :func:`adapter_names`.
        **options: Passed to the adapter (e.g. ``batch_size``, ``category="code"`` for
            rees46, ``timezone`` for uci, ``mapping`` for csv), except ``earliest_ms``: the
            earliest accepted event time (``Settings.earliest_event_ms``; default 2000-01-01). For ``csv`` without a
            ``mapping``, ``<file>.mapping.json`` (or ``mapping.json`` in a folder) is used.

    Returns:
        The adapter, not yet read: iterate it, or call ``iter_tables``.

    Raises:
        ValueError: For a malformed spec, an unknown adapter, or a csv spec without mapping.
        FileNotFoundError: When the path does not exist.
    """
    name, path = parse_spec(spec)
    adapter = ADAPTERS[name]
    earliest_ms = options.pop("earliest_ms", None)
    if adapter is CsvAdapter and "mapping" not in options:
        mapping = _sidecar_mapping(path) if path.exists() else None
        if mapping is None:
            raise ValueError(f"{spec!r}: the csv adapter needs a column mapping (mapping=... or {path}.mapping.json)")
        options["mapping"] = mapping
    opened = adapter(path, **options)
    if earliest_ms is not None:
        opened.earliest_ms = int(earliest_ms)
    return opened

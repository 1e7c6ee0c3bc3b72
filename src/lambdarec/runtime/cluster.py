"""Profiles of the embedded runtime: named sets of settings laid over an environment.

A profile lives in ``environments/profiles/<name>.toml`` (``cluster``: three Kafka brokers with
replicated topics, ...). ``lambdarec --profile cluster <command>`` or ``LAMBDAREC_PROFILE=cluster``
passes its values to :func:`lambdarec.settings.load_settings` as overrides, so every command of one
shell (``services up``, ``replay``, ``batch run``...) sees the same cluster.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from lambdarec.settings import find_project_root

PROFILES_DIR = Path("environments") / "profiles"


def available_profiles(root: Path | None = None) -> list[str]:
    """Names of the profiles in the checkout (``environments/profiles/*.toml``)."""
    root = root or find_project_root()
    folder = (root / PROFILES_DIR) if root else None
    return sorted(p.stem for p in folder.glob("*.toml")) if folder and folder.is_dir() else []


def profile_overrides(name: str, root: Path | None = None) -> dict[str, Any]:
    """The settings a profile sets, ready for ``load_settings(env, **overrides)``.

    Raises:
        ValueError: No such profile (the message lists those that exist).
    """
    root = root or find_project_root()
    path = root / PROFILES_DIR / f"{name}.toml" if root else None
    if path is None or not path.is_file():
        raise ValueError(f"unknown profile {name!r}; known: {available_profiles(root)} (environments/profiles/)")
    with path.open("rb") as handle:
        return tomllib.load(handle)

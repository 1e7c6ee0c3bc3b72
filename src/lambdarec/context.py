"""What one ``lambdarec`` invocation chose: the settings its root options built.

The root callback (:mod:`lambdarec.cli`) sets them; every subcommand module reads them here, so
no subcommand imports the CLI module back (that was an import cycle).
"""

from __future__ import annotations

from lambdarec.settings import Settings, load_settings


class _Invocation:
    settings: Settings | None = None


_invocation = _Invocation()


def use_settings(settings: Settings) -> None:
    """Record the settings of this invocation (``--env``, ``--state-dir``)."""
    _invocation.settings = settings


def current_settings() -> Settings:
    """The settings of this invocation, else the defaults of the environment (built once)."""
    if _invocation.settings is None:
        _invocation.settings = load_settings()
    return _invocation.settings

"""Profiles of the embedded runtime: named sets of settings laid over an environment.

A profile lives in ``environments/profiles/<name>.toml`` (``cluster``: three Kafka brokers with
replicated topics, a Flink session cluster, a Spark standalone cluster, Redis as the online store).
``lambdarec --profile cluster <command>`` or ``LAMBDAREC_PROFILE=cluster`` makes
:func:`lambdarec.settings.load_settings` lay its values over the environment's; the settings record
the profile's name and every process the supervisor starts gets ``LAMBDAREC_PROFILE``, so the
pusher, the recommender and the stream job see the same cluster as the command that started them.
The functions live in :mod:`lambdarec.settings` (settings load them); they are re-exported here.
"""

from __future__ import annotations

from lambdarec.settings import PROFILES_DIR, available_profiles, profile_overrides

__all__ = ["PROFILES_DIR", "available_profiles", "profile_overrides"]

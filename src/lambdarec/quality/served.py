"""Drift between what a model was trained on and what it is served: the reference and the comparison.

The reference is saved with each trained model (``reference_profile.json`` in its serving bundle):
the bins and counts of every query input the two-tower read in training, and each training day's
own drift from the whole (the noise floor of :class:`~lambdarec.quality.drift.DriftPolicy`). The
production side is the served-features log (:mod:`lambdarec.serving.feature_log`): the same
columns, assembled by the same function at request time. Both sides are the model's inputs as the
model saw them, so a difference is drift in what the model reads — or a train/serve skew.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from lambdarec.quality.drift import (
    DriftPolicy,
    DriftReport,
    Profile,
    compare_profile,
    profile,
    reference_noise,
    sampling_noise,
)

REFERENCE_FILE = "reference_profile.json"
"""The reference's file name inside a serving bundle."""
DAY_MS = 86_400_000


def served_features() -> tuple[str, ...]:
    """The columns compared: the query tower's dense inputs (what the served-features log carries)."""
    from lambdarec.models.inputs import QUERY_DENSE

    return QUERY_DENSE


def training_reference(examples: Any) -> dict[str, Any]:
    """The drift reference of a model trained on ``examples`` (its training split).

    Args:
        examples: The training :class:`~lambdarec.models.data.Examples`.

    Returns:
        JSON-ready ``{"profile", "noise", "rows", "days"}``: the profile of the dense query inputs
        (every one numeric) and, per feature, the largest ``[PSI, KL]`` of one training day against
        the whole training set.
    """
    from lambdarec.quality.frames import examples_frame

    frame = examples_frame(examples)
    features = served_features()
    reference = profile(frame, features, kinds=dict.fromkeys(features, "numeric"))
    days = frame["time_ms"] // DAY_MS
    noise = reference_noise(reference, (group for _, group in frame.groupby(days, sort=True)))
    return {
        "profile": reference.to_dict(),
        "noise": {name: [psi, kl] for name, (psi, kl) in noise.items()},
        "rows": len(frame),
        "days": int(days.nunique()),
    }


def compare_served(
    reference: Mapping[str, Any], served: pd.DataFrame, policy: DriftPolicy | None = None
) -> DriftReport:
    """PSI and KL of each served feature against the model's training reference.

    The policy's noise floor is the larger of two chance drifts: a training day's own drift from
    the whole training set (saved with the reference), and what a sample of the served window's
    size drawn from the reference reaches (:func:`~lambdarec.quality.drift.sampling_noise`: a
    day of sampled requests can be small).

    Args:
        reference: What :func:`training_reference` saved.
        served: Served-features rows (one column per feature).
        policy: Thresholds (default :class:`~lambdarec.quality.drift.DriftPolicy`).

    Raises:
        KeyError: A referenced feature is not a column of ``served`` (the log and the model disagree).
    """
    saved = Profile.from_dict(reference["profile"])
    missing = [name for name in saved.binnings if name not in served.columns]
    if missing:
        raise KeyError(f"the served-features log has no {', '.join(missing)}: it was written by another model's inputs")
    days = {str(name): (float(v[0]), float(v[1])) for name, v in reference.get("noise", {}).items()}
    chance = sampling_noise(saved, len(served))
    noise = {
        name: (max(days.get(name, (0.0, 0.0))[0], psi), max(days.get(name, (0.0, 0.0))[1], kl))
        for name, (psi, kl) in chance.items()
    }
    return compare_profile(saved, served, policy, noise=noise)

"""The training reference saved with a model and the comparison of served inputs against it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lambdarec.models.inputs import QUERY_DENSE
from lambdarec.quality.served import compare_served, training_reference

pytestmark = pytest.mark.unit


def examples(n: int, days: int, seed: int) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    dense = np.log1p(rng.poisson(3.0, size=(n, len(QUERY_DENSE)))).astype(np.float32)
    return SimpleNamespace(
        session_id=np.array([f"s{i % 500}" for i in range(n)]),
        user_id=np.array([""] * n),
        target_id=np.array(["i1"] * n),
        time_ms=np.sort(rng.integers(0, days * 86_400_000, n)),
        weight=np.ones(n),
        dense=dense,
    )


def served(n: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = np.log1p(rng.poisson(3.0 * scale, size=(n, len(QUERY_DENSE))))
    return pd.DataFrame(values, columns=list(QUERY_DENSE))


def test_the_reference_is_json_and_carries_a_noise_floor_per_feature() -> None:
    reference = json.loads(json.dumps(training_reference(examples(6_000, 6, seed=1))))
    assert reference["rows"] == 6_000 and reference["days"] == 6
    assert set(reference["noise"]) == set(QUERY_DENSE)
    assert all(0.0 < psi < 0.1 for psi, _ in reference["noise"].values())  # 1,000 rows a day: small noise


def test_served_inputs_like_training_are_stable_and_a_shift_is_named() -> None:
    reference = training_reference(examples(6_000, 6, seed=1))
    same = compare_served(reference, served(2_000, seed=2))
    assert str(same.level) == "stable", same.summary()

    shifted = served(2_000, seed=3)
    shifted["user_events_30d"] = np.log1p(np.random.default_rng(4).poisson(12.0, 2_000))
    report = compare_served(reference, shifted)
    assert str(report.level) == "block"
    assert report.features[0].feature == "user_events_30d" and report.features[0].psi > 0.25
    assert [f.feature for f in report.features if str(f.level) != "stable"] == ["user_events_30d"]


def test_a_log_without_the_models_inputs_is_refused_by_name() -> None:
    reference = training_reference(examples(600, 2, seed=1))
    with pytest.raises(KeyError, match="user_history_length"):
        compare_served(reference, served(100, seed=2).drop(columns=["user_history_length"]))


def test_a_small_served_sample_is_judged_against_its_own_sampling_noise() -> None:
    """30 rows drawn from the training distribution drift by chance; the floor at that size absorbs it."""
    from lambdarec.quality.drift import Profile, sampling_noise

    reference = training_reference(examples(6_000, 6, seed=1))
    saved = Profile.from_dict(reference["profile"])
    small, large = sampling_noise(saved, 30), sampling_noise(saved, 30_000)
    assert all(small[name][0] > 3 * large[name][0] for name in QUERY_DENSE)
    assert sampling_noise(saved, 30) == small  # seeded: the same floor for the same inputs
    for seed in range(5):
        report = compare_served(reference, served(30, seed=10 + seed))
        assert str(report.level) == "stable", report.summary()

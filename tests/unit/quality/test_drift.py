"""PSI / KL drift: binning rules, hand-computed values, smoothing of empty bins, and the policy levels.

Every expected figure below was worked out by hand from the formulas in the module docstring
(shares of each bin, floored at 1e-4), with the logarithms taken from a table, not from the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lambdarec.quality.drift import (
    NULL_BIN,
    OTHER_BIN,
    DriftLevel,
    DriftPolicy,
    Profile,
    compare,
    compare_profile,
    fit_binning,
    kl,
    profile,
    psi,
)


def test_numeric_bins_come_from_the_reference_quantiles() -> None:
    # The median of 1..10 is 5.5: two bins, (-inf, 5.5] and (5.5, inf), then the null bin.
    binning = fit_binning("x", pd.Series(range(1, 11), dtype="float64"), bins=2)
    assert binning.kind == "numeric"
    assert binning.edges == (5.5,)
    assert binning.labels == ["(-inf, 5.5]", "(5.5, inf]", NULL_BIN]
    # A value on an edge belongs to the bin the edge closes; values far outside land in the end bins.
    assert binning.counts(pd.Series([5.5, -1e9, 1e9, None, 5.50001])).tolist() == [2, 2, 1]


def test_deciles_make_ten_bins_of_a_tenth_each() -> None:
    reference = pd.Series(np.arange(1000, dtype="float64"))
    binning = fit_binning("x", reference, bins=10)
    assert len(binning.edges) == 9
    assert binning.counts(reference).tolist() == [100] * 10 + [0]


def test_repeated_quantiles_merge_into_one_edge() -> None:
    # Deciles 0.1-0.4 fall among the 3s, 0.6-0.9 among the 7s; the median (position 49.5) interpolates to 5.
    binning = fit_binning("x", pd.Series([3.0] * 50 + [7.0] * 50), bins=10)
    assert binning.edges == (3.0, 5.0, 7.0)


def test_psi_and_kl_of_a_numeric_shift_match_the_hand_computed_values() -> None:
    reference = pd.DataFrame({"x": np.arange(1, 11, dtype="float64")})
    current = pd.DataFrame({"x": [1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]})
    report = compare(reference, current, bins=2)
    (drift,) = report.features
    # shares: reference (0.5, 0.5, 0 -> 1e-4), current (0.3, 0.7, 0 -> 1e-4)
    # PSI = (0.3-0.5)·ln(0.6) + (0.7-0.5)·ln(1.4) + 0
    #     = (-0.2)(-0.5108256238) + 0.2(0.3364722366) = 0.1021651248 + 0.0672944473 = 0.1694595721
    assert drift.psi == pytest.approx(0.1694595721, abs=1e-9)
    # KL = 0.3·ln(0.6) + 0.7·ln(1.4) + 1e-4·ln(1) = -0.1532476871 + 0.2355305656 = 0.0822828785
    assert drift.kl == pytest.approx(0.0822828785, abs=1e-9)
    # PSI 0.169 is past 0.10 (retrain) but under 0.25; KL 0.082 is past 0.05 and under 0.125.
    assert drift.level == DriftLevel.RETRAIN


def test_an_empty_bin_is_floored_not_infinite() -> None:
    # Reference a×8, b×2; current a×5 and a new category c×5 (top_k=2 keeps a and b; c is "other").
    reference = pd.DataFrame({"c": ["a"] * 8 + ["b"] * 2})
    current = pd.DataFrame({"c": ["a"] * 5 + ["c"] * 5})
    report = compare(reference, current, top_k=2)
    (drift,) = report.features
    assert drift.kind == "categorical"
    # bins (a, b, other, null); shares e = (0.8, 0.2, 1e-4, 1e-4), a = (0.5, 1e-4, 0.5, 1e-4)
    # PSI = (-0.3)·ln(0.625) + (-0.1999)·ln(5e-4) + 0.4999·ln(5000)
    #     = 0.1410010888 + 1.5194204017 + 4.2577448764 = 5.9181663668
    assert drift.psi == pytest.approx(5.9181663668, abs=1e-8)
    # KL = 0.5·ln(0.625) + 1e-4·ln(5e-4) + 0.5·ln(5000) = -0.2350018146 - 0.0007600902 + 4.2585965957
    assert drift.kl == pytest.approx(4.0228346908, abs=1e-8)
    assert drift.level == DriftLevel.BLOCK
    # The bins that moved most name the new category's share.
    assert drift.top_bins[0] == (OTHER_BIN, 0.0, 0.5)


def test_psi_is_symmetric_and_kl_is_not() -> None:
    e, a = [50, 30, 20], [20, 30, 50]
    assert psi(e, a) == pytest.approx(psi(a, e), abs=1e-15)
    # Hand: 0.2·ln(0.4) + 0.5·ln(2.5) = -0.1832581464 + 0.4581453659 = 0.2748872196 (same both ways here,
    # the shares being mirror images); a skewed pair differs:
    assert kl([90, 10], [50, 50]) == pytest.approx(0.5108256238, abs=1e-9)  # 0.5·ln(5/9) + 0.5·ln(5)
    assert kl([50, 50], [90, 10]) == pytest.approx(0.3680642071, abs=1e-9)  # 0.9·ln(1.8) + 0.1·ln(0.2)


def test_equal_distributions_have_zero_drift_whatever_their_sizes() -> None:
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 25, "c": ["u", "v", "v", "w"] * 25})
    current = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 3, "c": ["u", "v", "v", "w"] * 3})
    report = compare(reference, current)
    assert [(f.psi, f.kl) for f in report.features] == [(0.0, 0.0), (0.0, 0.0)]
    assert report.level == DriftLevel.STABLE


def test_a_spike_of_nulls_is_drift() -> None:
    reference = pd.DataFrame({"item_id": [f"i{k}" for k in range(100)]})
    current = pd.DataFrame({"item_id": [f"i{k}" for k in range(50)] + [None] * 50})
    (drift,) = compare(reference, current, top_k=200).features
    assert drift.top_bins[0] == (NULL_BIN, 0.0, 0.5)
    assert drift.level == DriftLevel.BLOCK


def test_categorical_ties_are_broken_by_value() -> None:
    binning = fit_binning("c", pd.Series(["z", "y", "x", "x"]), top_k=2)
    assert binning.categories == ("x", "y")
    assert binning.counts(pd.Series(["z", "x", None, "new"])).tolist() == [1, 0, 2, 1]


def test_integer_ids_can_be_treated_as_categories() -> None:
    reference = pd.DataFrame({"category_id": [1, 1, 2, 3]})
    prof = profile(reference, kinds={"category_id": "categorical"})
    assert prof.binnings["category_id"].categories == ("1", "2", "3")


def test_policy_levels_at_the_thresholds() -> None:
    policy = DriftPolicy()
    assert policy.level(0.0999, 0.0) == DriftLevel.STABLE
    assert policy.level(0.10, 0.0) == DriftLevel.RETRAIN
    assert policy.level(0.0, 0.05) == DriftLevel.RETRAIN
    assert policy.level(0.25, 0.0) == DriftLevel.BLOCK
    assert policy.level(0.0, 0.125) == DriftLevel.BLOCK


def test_a_saved_profile_gives_the_same_report() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"price": rng.lognormal(3, 1, 5_000), "brand": rng.choice(list("abcdef"), 5_000)})
    current = pd.DataFrame({"price": rng.lognormal(3.2, 1, 2_000), "brand": rng.choice(list("abcdefg"), 2_000)})
    direct = compare(reference, current)
    stored = Profile.from_dict(profile(reference).to_dict())
    assert stored.rows == 5_000
    assert compare_profile(stored, current).to_dict() == direct.to_dict()


def test_a_price_column_in_cents_blocks_and_a_fresh_sample_does_not() -> None:
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"price": rng.lognormal(3, 0.8, 20_000)})
    same = pd.DataFrame({"price": rng.lognormal(3, 0.8, 5_000)})
    cents = pd.DataFrame({"price": rng.lognormal(3, 0.8, 5_000) * 100})
    assert compare(reference, same).level == DriftLevel.STABLE
    report = compare(reference, cents)
    assert report.level == DriftLevel.BLOCK
    assert "price PSI" in report.summary()


def test_a_missing_feature_is_an_error_not_zero_drift() -> None:
    prof = profile(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(KeyError, match="x"):
        compare_profile(prof, pd.DataFrame({"y": [1.0]}))


def test_a_small_shop_s_day_to_day_noise_does_not_block_and_a_broken_price_still_does() -> None:
    """Sessions of ~7 events share a category: a day of 200 events is ~30 draws, and clean days differ a lot."""
    rng = np.random.default_rng(3)
    categories = [f"c{i}" for i in range(40)]

    def day(name: str, sessions: int, price_factor: float = 1.0) -> pd.DataFrame:
        picked = rng.choice(categories, sessions)  # one category per session
        rows = [(name, c, float(p) * price_factor) for c in picked for p in rng.lognormal(3, 0.5, 7)]
        return pd.DataFrame(rows, columns=["event_date", "category", "price"])

    reference = pd.concat([day(f"d{i}", 30) for i in range(7)], ignore_index=True)
    clean, broken = day("d7", 30), day("d7", 30, price_factor=100.0)
    features = ["category", "price"]
    plain = compare(reference, clean, features)
    assert plain.level == DriftLevel.BLOCK  # without the noise floor a clean day blocks (the measured failure)
    aware = compare(reference, clean, features, by="event_date")
    assert aware.level != DriftLevel.BLOCK
    category = next(f for f in aware.features if f.feature == "category")
    assert category.noise_psi > 0.25 and category.psi >= 0.25  # above the band, within the reference's own noise
    assert "by chance" in aware.summary() or "noise" in aware.summary()
    report = compare(reference, broken, features, by="event_date")
    assert report.level == DriftLevel.BLOCK
    assert report.features[0].feature == "price"


def test_a_big_shop_s_noise_floor_is_below_the_bands_and_changes_nothing() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame(
        {"event_date": np.repeat([f"d{i}" for i in range(7)], 5_000), "price": rng.lognormal(3, 0.8, 35_000)}
    )
    current = pd.DataFrame({"price": rng.lognormal(3, 0.8, 5_000) * 1.6})
    plain, aware = compare(reference, current, ["price"]), compare(reference, current, ["price"], by="event_date")
    assert aware.features[0].noise_psi < 0.01
    assert (plain.level, plain.features[0].psi) == (aware.level, aware.features[0].psi)
    assert aware.level != DriftLevel.STABLE

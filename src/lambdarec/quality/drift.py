"""Feature drift between a reference window and a current window: PSI and KL per feature.

Binning is learned from the reference alone and then applied to both windows:

- **numeric** features: edges at the reference's deciles (``bins`` quantiles, repeated edges merged),
  so each bin holds about the same share of the reference; values below the first edge or above the
  last fall in the open-ended end bins, so a shift out of the reference's range is still counted;
- **categorical** features: the reference's ``top_k`` most frequent values (ties broken by value),
  everything else in one *other* bin, so new categories show up as growth of *other*;
- **nulls** get their own bin in both kinds, so a spike of missing values is drift too.

With ``a`` the current and ``e`` the reference share of a bin (each floored at :data:`EPSILON` so an
empty bin on one side stays finite)::

    PSI = Σ (a - e) · ln(a / e)          KL(current ‖ reference) = Σ a · ln(a / e)

Both are 0 for equal distributions; PSI is symmetric (it is KL both ways added up).

Policy (:class:`DriftPolicy`; the gates and ``drift_monitor`` apply it):

- **stable** — PSI < 0.10 and KL < 0.05 for every feature: nothing to do.
- **retrain** — some feature at PSI ≥ 0.10 or KL ≥ 0.05 between the *champion's* training window and
  what production serves now. This is the *reason to retrain*: the world moved, the model did not.
  ``drift_monitor`` reports it; ``weekly_retrain`` runs anyway on its schedule. It never blocks.
- **block** — some feature at PSI ≥ 0.25 or KL ≥ 0.125 between the *challenger's* training window and
  the most recent window it is evaluated on. A shift that large inside one retraining cycle is far
  more often a broken upstream (a unit change, a price column in cents, a join gone wrong) than a
  real change of the shop; promoting would ship a model that never saw the data it will serve. It
  blocks promotion until a person looks (or the next cycle trains on the new regime).

The thresholds are the customary PSI bands (0.1 / 0.25); KL's are half of them because PSI is the
two directions of KL added up, each roughly equal for small shifts.

**Sampling noise.** On a small window PSI is large by chance alone: a day of a few hundred events
is a few dozen sessions (a session's events share its category), and two clean days of such a shop
measured a category PSI of 0.62. So when the reference is made of periods (days), :func:`compare`
with ``by=`` also measures how far each reference period lies from the whole reference — the
drift a clean period shows by chance — and a feature moves up a level only when its PSI (KL) also
exceeds ``noise_margin`` times the largest of those (:attr:`FeatureDrift.noise_psi`). On a big shop
the noise is far below the bands and changes nothing; a price column in cents is far above both.
The served inputs against a model's training reference (:mod:`lambdarec.quality.served`) also
count the chance drift of a sample of the served window's size (:func:`sampling_noise`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

EPSILON = 1e-4
"""Floor of a bin's share before the logarithm: an empty bin on one side costs ln(share / 1e-4)."""
DEFAULT_BINS = 10
DEFAULT_TOP_K = 20
NULL_BIN = "<null>"
OTHER_BIN = "<other>"


class DriftLevel(StrEnum):
    """What a drift figure means under a :class:`DriftPolicy`, from least to most severe."""

    STABLE = "stable"
    RETRAIN = "retrain"
    BLOCK = "block"


_ORDER = {DriftLevel.STABLE: 0, DriftLevel.RETRAIN: 1, DriftLevel.BLOCK: 2}


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds of the drift policy (see the module docstring for when each applies).

    Attributes:
        retrain_psi: PSI from which a feature is a reason to retrain.
        block_psi: PSI from which a feature blocks promotion.
        retrain_kl: KL(current ‖ reference) from which a feature is a reason to retrain.
        block_kl: KL(current ‖ reference) from which a feature blocks promotion.
    """

    retrain_psi: float = 0.10
    block_psi: float = 0.25
    retrain_kl: float = 0.05
    block_kl: float = 0.125
    noise_margin: float = 1.5

    def level(self, psi_value: float, kl_value: float, noise_psi: float = 0.0, noise_kl: float = 0.0) -> DriftLevel:
        """The level of one feature's PSI and KL (the worse of the two).

        Args:
            psi_value: The feature's PSI.
            kl_value: Its KL(current ‖ reference).
            noise_psi: The PSI a clean reference period shows by chance (0: not measured); a level's
                threshold is raised to ``noise_margin`` times it.
            noise_kl: The same for KL.
        """
        psi_floor, kl_floor = self.noise_margin * noise_psi, self.noise_margin * noise_kl
        if psi_value >= max(self.block_psi, psi_floor) or kl_value >= max(self.block_kl, kl_floor):
            return DriftLevel.BLOCK
        if psi_value >= max(self.retrain_psi, psi_floor) or kl_value >= max(self.retrain_kl, kl_floor):
            return DriftLevel.RETRAIN
        return DriftLevel.STABLE


@dataclass(frozen=True)
class Binning:
    """The bins of one feature, learned from the reference window.

    Attributes:
        feature: Column name.
        kind: ``numeric`` (``edges``) or ``categorical`` (``categories``).
        edges: Inner bin edges, increasing; bin *i* holds ``edges[i-1] < x <= edges[i]``.
        categories: The reference's top values, each its own bin; the rest share :data:`OTHER_BIN`.
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """A name for each bin, in the order of :meth:`counts` (nulls last)."""
        if self.kind == "numeric":
            bounds = ["-inf", *(f"{e:.6g}" for e in self.edges), "inf"]
            values = [f"({lo}, {hi}]" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        else:
            values = [*self.categories, OTHER_BIN]
        return [*values, NULL_BIN]

    def counts(self, values: Any) -> np.ndarray:
        """How many of ``values`` fall in each bin (nulls in the last)."""
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        n_bins = len(self.labels)
        if self.kind == "numeric":
            x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            null = np.isnan(x)
            # side="left": a value equal to an edge belongs to the bin that edge closes.
            index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x[~null], side="left")
            out = np.bincount(index, minlength=n_bins).astype(np.int64)
            out[-1] += int(null.sum())
            return out
        # Hash each distinct value once, then map the few distinct values to bins (not a million strings).
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        position = {c: i for i, c in enumerate(self.categories)}
        other = len(self.categories)
        bin_of = np.array([position.get(str(u), other) for u in uniques] + [n_bins - 1], dtype=np.int64)
        # code -1 (null) indexes the appended last entry: the null bin.
        return np.bincount(bin_of[codes], minlength=n_bins).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "edges": list(self.edges),
            "categories": list(self.categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Binning:
        """Inverse of :meth:`to_dict`."""
        return cls(
            feature=str(data["feature"]),
            kind=data["kind"],
            edges=tuple(float(e) for e in data.get("edges", ())),
            categories=tuple(str(c) for c in data.get("categories", ())),
        )


def is_numeric(values: pd.Series) -> bool:
    """Whether a column is binned by quantiles (numbers, not booleans) rather than by value."""
    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def fit_binning(
    feature: str, reference: Any, *, bins: int = DEFAULT_BINS, top_k: int = DEFAULT_TOP_K, kind: str | None = None
) -> Binning:
    """Learn one feature's bins from its reference values.

    Args:
        feature: Column name.
        reference: The reference window's values (nulls allowed).
        bins: Number of quantile bins for a numeric feature (fewer when quantiles repeat).
        top_k: Categories kept by name for a categorical feature.
        kind: ``numeric`` or ``categorical``; by default from the values' dtype.
    """
    series = reference if isinstance(reference, pd.Series) else pd.Series(reference)
    chosen = kind or ("numeric" if is_numeric(series) else "categorical")
    if chosen == "numeric":
        x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        x = x[~np.isnan(x)]
        if x.size == 0:
            return Binning(feature, "numeric", ())
        quantiles = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1]) if bins > 1 else np.array([])
        return Binning(feature, "numeric", tuple(float(e) for e in np.unique(quantiles)))
    if chosen != "categorical":
        raise ValueError(f"kind must be numeric or categorical, not {chosen!r}")
    codes, uniques = pd.factorize(series.dropna())
    per_code = np.bincount(codes, minlength=len(uniques))
    counts: dict[str, int] = {}
    for value, count in zip(uniques, per_code, strict=True):
        # 1 and "1" are one category: bins are named by the value's text.
        counts[str(value)] = counts.get(str(value), 0) + int(count)
    # Most frequent first; equal counts by value, so the same reference gives the same bins.
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return Binning(feature, "categorical", categories=tuple(k for k, _ in ordered[:top_k]))


def shares(counts: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Each bin's share of the total, floored at ``epsilon`` (an empty window is all ``epsilon``)."""
    total = counts.sum()
    p = counts / total if total > 0 else np.zeros(len(counts))
    return np.maximum(p, epsilon)


def psi(reference_counts: Any, current_counts: Any, epsilon: float = EPSILON) -> float:
    """Population stability index of the current counts against the reference counts (same bins)."""
    e = shares(np.asarray(reference_counts, dtype=np.float64), epsilon)
    a = shares(np.asarray(current_counts, dtype=np.float64), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def kl(reference_counts: Any, current_counts: Any, epsilon: float = EPSILON) -> float:
    """KL divergence of the current distribution from the reference one, KL(current ‖ reference), in nats."""
    e = shares(np.asarray(reference_counts, dtype=np.float64), epsilon)
    a = shares(np.asarray(current_counts, dtype=np.float64), epsilon)
    return float(np.sum(a * np.log(a / e)))


@dataclass
class FeatureDrift:
    """Drift of one feature.

    Attributes:
        feature: Column name.
        kind: ``numeric`` or ``categorical``.
        psi: Population stability index.
        kl: KL(current ‖ reference), nats.
        level: What the policy makes of it.
        reference_rows: Rows of the reference window.
        current_rows: Rows of the current window.
        top_bins: The bins that moved most, ``(label, reference share, current share)``.
        noise_psi: The largest PSI of one reference period against the whole reference (the drift a
            clean period shows by chance); 0 when the reference was not split into periods.
        noise_kl: The same for KL.
    """

    feature: str
    kind: str
    psi: float
    kl: float
    level: DriftLevel
    reference_rows: int
    current_rows: int
    top_bins: list[tuple[str, float, float]] = field(default_factory=list)
    noise_psi: float = 0.0
    noise_kl: float = 0.0


@dataclass
class DriftReport:
    """Drift of every compared feature, worst first, under one policy."""

    features: list[FeatureDrift]
    policy: DriftPolicy

    @property
    def level(self) -> DriftLevel:
        """The worst level of any feature (stable when nothing was compared)."""
        return max((f.level for f in self.features), key=_ORDER.__getitem__, default=DriftLevel.STABLE)

    def at_least(self, level: DriftLevel) -> list[FeatureDrift]:
        """The features at ``level`` or worse."""
        return [f for f in self.features if _ORDER[f.level] >= _ORDER[level]]

    def summary(self) -> str:
        """One line naming the drifted features with their PSI (or that none drifted)."""
        moved = self.at_least(DriftLevel.RETRAIN)
        if not moved:
            worst = self.features[0] if self.features else None
            noise = ""
            if worst and worst.noise_psi:
                noise = f", a clean reference day reaches {worst.noise_psi:.3f} by chance"
            tail = f" (max PSI {worst.psi:.3f} on {worst.feature}{noise})" if worst else ""
            return f"no drift over {len(self.features)} features{tail}"
        shown = ", ".join(
            f"{f.feature} PSI {f.psi:.3f} KL {f.kl:.3f}"
            + (f" (noise {f.noise_psi:.3f})" if f.noise_psi else "")
            + f" ({f.level})"
            for f in moved[:8]
        )
        return f"{len(moved)} of {len(self.features)} features drifted: {shown}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "level": str(self.level),
            "policy": asdict(self.policy),
            "features": [{**asdict(f), "level": str(f.level)} for f in self.features],
        }


@dataclass
class Profile:
    """The reference side of a comparison, storable: each feature's bins and reference counts.

    ``drift_monitor`` compares production against the profile saved with the champion's training
    run, without keeping the training data.
    """

    binnings: dict[str, Binning]
    counts: dict[str, list[int]]

    @property
    def rows(self) -> int:
        """Rows of the reference window."""
        return int(sum(next(iter(self.counts.values()), [])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"features": [{**b.to_dict(), "counts": self.counts[name]} for name, b in self.binnings.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`."""
        binnings = {str(f["feature"]): Binning.from_dict(f) for f in data["features"]}
        counts = {str(f["feature"]): [int(c) for c in f["counts"]] for f in data["features"]}
        return cls(binnings, counts)


def scalar_columns(frame: pd.DataFrame) -> list[str]:
    """The columns drift can be computed on: no lists, arrays or dicts in their first non-null value."""
    out = []
    for column in frame.columns:
        sample = frame[column].dropna()
        if not sample.empty and isinstance(sample.iloc[0], list | tuple | dict | set | np.ndarray):
            continue
        out.append(str(column))
    return out


def profile(
    reference: pd.DataFrame,
    features: Iterable[str] | None = None,
    *,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    kinds: Mapping[str, str] | None = None,
) -> Profile:
    """Learn the bins of each feature from the reference window and count the reference in them.

    Args:
        reference: The reference window, one column per feature.
        features: Columns to profile (default: every scalar column).
        bins: Quantile bins per numeric feature.
        top_k: Named categories per categorical feature.
        kinds: Per-feature override of ``numeric`` / ``categorical`` (e.g. integer ids are categories).
    """
    chosen = list(features) if features is not None else scalar_columns(reference)
    binnings: dict[str, Binning] = {}
    counts: dict[str, list[int]] = {}
    for name in chosen:
        binning = fit_binning(name, reference[name], bins=bins, top_k=top_k, kind=(kinds or {}).get(name))
        binnings[name] = binning
        counts[name] = [int(c) for c in binning.counts(reference[name])]
    return Profile(binnings, counts)


def reference_noise(
    reference: Profile, periods: Iterable[pd.DataFrame], *, epsilon: float = EPSILON
) -> dict[str, tuple[float, float]]:
    """Per feature, the largest PSI and KL of one reference period against the whole reference profile.

    Args:
        reference: The profile of the whole reference window.
        periods: The same window split into periods (e.g. its days).
        epsilon: Floor of a bin's share.

    Returns:
        Feature → ``(PSI, KL)``: how far a clean period lies from the reference by chance.
    """
    noise = dict.fromkeys(reference.binnings, (0.0, 0.0))
    for period in periods:
        if period.empty:
            continue
        for name, binning in reference.binnings.items():
            counts = binning.counts(period[name]).astype(np.float64)
            ref_counts = np.asarray(reference.counts[name], dtype=np.float64)
            worst_psi, worst_kl = noise[name]
            noise[name] = (
                max(worst_psi, psi(ref_counts, counts, epsilon)),
                max(worst_kl, kl(ref_counts, counts, epsilon)),
            )
    return noise


def sampling_noise(
    reference: Profile, rows: int, *, draws: int = 200, quantile: float = 0.99, seed: int = 0, epsilon: float = EPSILON
) -> dict[str, tuple[float, float]]:
    """Per feature, the PSI and KL a sample of ``rows`` drawn from the reference itself reaches by chance.

    A small current window (a day of sampled requests) lies far from any reference by sampling
    alone; drawing ``draws`` multinomial samples of its size from the reference's own bin shares
    measures how far, without the reference data (the profile's counts suffice).

    Args:
        reference: The reference profile.
        rows: Size of the current window.
        draws: Samples drawn per feature.
        quantile: Which quantile of the drawn PSIs (KLs) is reported.
        seed: Seed of the draws (the same inputs give the same floor).
        epsilon: Floor of a bin's share.

    Returns:
        Feature → ``(PSI, KL)`` at ``quantile``; zeros when ``rows`` is 0.
    """
    if rows <= 0:
        return dict.fromkeys(reference.binnings, (0.0, 0.0))
    rng = np.random.default_rng(seed)
    out = {}
    for name in reference.binnings:
        counts = np.asarray(reference.counts[name], dtype=np.float64)
        p = counts / max(counts.sum(), 1.0)
        samples = rng.multinomial(rows, p, size=draws)
        psis = [psi(counts, s, epsilon) for s in samples]
        kls = [kl(counts, s, epsilon) for s in samples]
        out[name] = (float(np.quantile(psis, quantile)), float(np.quantile(kls, quantile)))
    return out


def compare_profile(
    reference: Profile,
    current: pd.DataFrame,
    policy: DriftPolicy | None = None,
    *,
    epsilon: float = EPSILON,
    noise: Mapping[str, tuple[float, float]] | None = None,
) -> DriftReport:
    """PSI and KL of each profiled feature of ``current`` against the reference profile.

    Args:
        reference: The reference profile.
        current: The current window.
        policy: Thresholds (default :class:`DriftPolicy`).
        epsilon: Floor of a bin's share.
        noise: Per feature, the ``(PSI, KL)`` a clean reference period shows by chance
            (:func:`reference_noise`); the policy's thresholds rise to ``noise_margin`` times it.

    Raises:
        KeyError: A profiled feature is not a column of ``current``.
    """
    chosen = policy or DriftPolicy()
    missing = [name for name in reference.binnings if name not in current.columns]
    if missing:
        raise KeyError(f"the current window lacks profiled features: {', '.join(missing)}")
    out = []
    for name, binning in reference.binnings.items():
        ref_counts = np.asarray(reference.counts[name], dtype=np.float64)
        cur_counts = binning.counts(current[name]).astype(np.float64)
        psi_value = psi(ref_counts, cur_counts, epsilon)
        kl_value = kl(ref_counts, cur_counts, epsilon)
        noise_psi, noise_kl = (noise or {}).get(name, (0.0, 0.0))
        e = ref_counts / max(ref_counts.sum(), 1.0)
        a = cur_counts / max(cur_counts.sum(), 1.0)
        moved = np.argsort(-np.abs(a - e), kind="stable")[:3]
        out.append(
            FeatureDrift(
                feature=name,
                kind=binning.kind,
                psi=psi_value,
                kl=kl_value,
                level=chosen.level(psi_value, kl_value, noise_psi, noise_kl),
                reference_rows=int(ref_counts.sum()),
                current_rows=int(cur_counts.sum()),
                top_bins=[(binning.labels[i], float(e[i]), float(a[i])) for i in moved],
                noise_psi=noise_psi,
                noise_kl=noise_kl,
            )
        )
    out.sort(key=lambda f: (-_ORDER[f.level], -(f.psi if math.isfinite(f.psi) else math.inf)))
    return DriftReport(out, chosen)


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[str] | None = None,
    policy: DriftPolicy | None = None,
    *,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    kinds: Mapping[str, str] | None = None,
    by: str | None = None,
) -> DriftReport:
    """PSI and KL per feature between two windows (bins learned from ``reference``).

    Args:
        reference: The reference window (e.g. the training window).
        current: The window compared with it (e.g. the latest day, or what serving read).
        features: Columns to compare (default: the reference's scalar columns).
        policy: Thresholds (default :class:`DriftPolicy`).
        bins: Quantile bins per numeric feature.
        top_k: Named categories per categorical feature.
        kinds: Per-feature override of ``numeric`` / ``categorical``.
        by: A column splitting the reference into periods (e.g. ``event_date``): each period's own
            drift from the whole reference is the noise floor of the policy (:func:`reference_noise`).
    """
    reference_profile = profile(reference, features, bins=bins, top_k=top_k, kinds=kinds)
    noise = None
    if by is not None:
        noise = reference_noise(reference_profile, (group for _, group in reference.groupby(by, sort=True)))
    return compare_profile(reference_profile, current, policy, noise=noise)

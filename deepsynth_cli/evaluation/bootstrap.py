"""Corpus means with bootstrap confidence intervals, and the paired bootstrap test (model vs baseline).

Both resample rows with replacement (percentile bootstrap, Efron & Tibshirani); the paired test resamples the
same rows for both systems, as in Koehn (2004), so the difference between systems on the same documents is what
varies. Everything is seeded: the same scores and seed give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Rows drawn per block of resamples: bounds memory (~16 MB of indices) whatever the corpus size.
_DRAWS_PER_BLOCK = 2_000_000


@dataclass(frozen=True)
class Interval:
    """The mean of per-row values and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float
    resamples: int


@dataclass(frozen=True)
class PairedTest:
    """Model minus baseline on the same rows, its interval, and how often the model did not come out ahead."""

    delta: float
    """mean(model) - mean(baseline)."""
    low: float
    high: float
    p_value: float
    """Share of resamples where the model's mean is lower than the baseline's, ties counting one half: about 0.5
    when the systems are indistinguishable, near 0 when the model is clearly better. 0.0 means < 1/resamples."""
    n: int
    confidence: float
    resamples: int


def bootstrap_mean(
    values: Sequence[float] | NDArray[np.float64],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean of `values` with a percentile bootstrap interval at `confidence`."""
    array = _as_scores(values)
    means = _resampled_means(array, resamples, seed)
    low, high = _percentiles(means, confidence)
    return Interval(
        mean=float(array.mean()), low=low, high=high, n=array.size, confidence=confidence, resamples=resamples
    )


def paired_bootstrap(
    model: Sequence[float] | NDArray[np.float64],
    baseline: Sequence[float] | NDArray[np.float64],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Paired bootstrap test of `model` against `baseline`, scored on the same rows in the same order."""
    model_scores, baseline_scores = _as_scores(model), _as_scores(baseline)
    if model_scores.size != baseline_scores.size:
        raise ValueError(
            f"paired scores need the same rows: {model_scores.size} model, {baseline_scores.size} baseline"
        )
    differences = model_scores - baseline_scores
    deltas = _resampled_means(differences, resamples, seed)
    low, high = _percentiles(deltas, confidence)
    p_value = (np.count_nonzero(deltas < 0) + 0.5 * np.count_nonzero(deltas == 0)) / resamples
    return PairedTest(
        delta=float(differences.mean()),
        low=low,
        high=high,
        p_value=float(p_value),
        n=differences.size,
        confidence=confidence,
        resamples=resamples,
    )


def _as_scores(values: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"need a non-empty list of per-row scores, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("per-row scores must be finite numbers")
    return array


def _resampled_means(values: NDArray[np.float64], resamples: int, seed: int) -> NDArray[np.float64]:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = values.size
    block = max(1, _DRAWS_PER_BLOCK // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        rows = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[rows].mean(axis=1)
    return means


def _percentiles(samples: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)

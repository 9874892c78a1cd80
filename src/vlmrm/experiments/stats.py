"""Means over seeds with 95 % bootstrap confidence intervals, for a report's numbers and curves.

Percentile bootstrap (the interval between the 2.5th and 97.5th percentiles of the means of
resampled seeds), with a fixed random seed so that a report is the same every time it is made:
:func:`scipy.stats.bootstrap` when scipy is installed, the same computation in numpy otherwise.
With one seed there is no interval. Few seeds give wide, rough intervals: with two seeds the
interval spans their two values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000
CURVE_RESAMPLES = 2_000
SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds and its confidence interval (``None`` with fewer than two seeds)."""

    mean: float
    low: float | None
    high: float | None
    n: int


def _numpy_interval(values: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    index = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[index].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _scipy_interval(values: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float] | None:
    try:
        from scipy import stats
    except ImportError:
        return None
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    kwargs = {"confidence_level": CONFIDENCE, "n_resamples": resamples, "method": "percentile"}
    try:
        result = stats.bootstrap((values,), np.mean, rng=rng, **kwargs)
    except TypeError:  # scipy < 1.15 calls it random_state
        result = stats.bootstrap((values,), np.mean, random_state=rng, **kwargs)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_ci(values: Sequence[float], resamples: int = RESAMPLES) -> Estimate | None:
    """The mean of the finite ``values`` and its 95 % bootstrap interval; ``None`` if there are none."""
    array = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return None
    mean = float(array.mean())
    if array.size < 2:
        return Estimate(mean, None, None, 1)
    rng = np.random.default_rng(SEED)
    interval = _scipy_interval(array, resamples, rng) or _numpy_interval(array, resamples, rng)
    return Estimate(mean, interval[0], interval[1], int(array.size))


def curve_band(curves: np.ndarray, resamples: int = CURVE_RESAMPLES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % bootstrap band of ``curves`` (seeds x points), point by point (numpy, one set of resamples).

    With one seed the band is the curve itself.
    """
    curves = np.asarray(curves, dtype=np.float64)
    mean = curves.mean(axis=0)
    if curves.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    rng = np.random.default_rng(SEED)
    index = rng.integers(0, curves.shape[0], size=(resamples, curves.shape[0]))
    means = curves[index].mean(axis=1)  # (resamples, points)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return mean, low, high


def common_grid(steps: Sequence[np.ndarray]) -> np.ndarray:
    """The steps every seed covers (from the latest first step to the earliest last one), all of them."""
    start = max(float(s[0]) for s in steps)
    stop = min(float(s[-1]) for s in steps)
    union = np.unique(np.concatenate([np.asarray(s, dtype=np.float64) for s in steps]))
    return union[(union >= start) & (union <= stop)]

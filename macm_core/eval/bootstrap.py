"""Percentile bootstrap confidence intervals over clips.

A metric is either a mean of per-clip values (ROUGE-L, a per-clip score) or a corpus
statistic that must be recomputed on every resample (CIDEr's document frequencies and
BLEU's brevity penalty depend on the whole set of clips).  ``bootstrap_ci`` takes either:

* an array of per-clip values: the statistic is their mean;
* a function of clip indices, ``statistic(idx) -> float`` with ``idx`` an (N,) int array
  of row numbers drawn with replacement (``np.arange(N)`` gives the point estimate).

Resamples come from ``resample_indices(N, n, seed)``: the same N, n and seed give the same
resamples, so several metrics bootstrapped with one seed are resampled on the same
clips (paired intervals), and a run is reproducible.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Statistic = Callable[[np.ndarray], float]


def resample_indices(size: int, n: int, seed: int) -> np.ndarray:
    """(n, size) int64: n resamples of ``size`` clip indices drawn with replacement."""
    if size < 1:
        raise ValueError(f"cannot resample an empty set of clips (size={size})")
    if n < 1:
        raise ValueError(f"the number of resamples must be >= 1, got {n}")
    return np.random.default_rng(seed).integers(0, size, size=(n, size))


def bootstrap_ci(values_or_statistic: np.ndarray | Statistic, *, size: int | None = None,
                 n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high): the statistic on all clips and its percentile interval.

    values_or_statistic: (N,) per-clip values (statistic = mean), or a function of an
        (N,) index array (then ``size`` = N is required).
    n: number of resamples; seed: their seed; level: coverage of the interval.
    Resamples whose statistic is NaN (e.g. a ratio with nothing in its denominator) are
    left out of the percentiles; if all are, low and high are NaN.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if callable(values_or_statistic):
        if size is None:
            raise ValueError("give size= (the number of clips) with a statistic function")
        statistic = values_or_statistic
    else:
        values = np.asarray(values_or_statistic, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"per-clip values must be 1-D, got shape {values.shape}")
        if size is not None and size != len(values):
            raise ValueError(f"size={size} but {len(values)} per-clip values")
        size = len(values)

        def statistic(idx: np.ndarray) -> float:
            return float(values[idx].mean())

    resamples = resample_indices(size, n, seed)
    estimate = float(statistic(np.arange(size)))
    stats = np.array([statistic(idx) for idx in resamples], dtype=float)
    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return estimate, float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return estimate, float(low), float(high)


def weights_of(idx: np.ndarray, size: int) -> np.ndarray:
    """(size,) float: how many times each clip is in the resample ``idx``."""
    return np.bincount(idx, minlength=size).astype(float)

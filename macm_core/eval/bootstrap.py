"""Percentile bootstrap confidence intervals over clips.

A metric is either a mean of per-clip values (ROUGE-L, a per-clip score) or a corpus
statistic that must be recomputed on every resample (CIDEr's document frequencies and
BLEU's brevity penalty depend on the whole set of clips).  ``bootstrap_ci`` takes either:

* an array of per-clip values: the statistic is their mean;
* a function of clip indices, ``statistic(idx) -> float`` with ``idx`` an (N,) int array
  of row numbers drawn with replacement (``np.arange(N)`` gives the point estimate).

``bootstrap_weighted`` takes a statistic of clip WEIGHTS computed for many resamples at
once: ``statistic(weights (k, N)) -> (k,)``, row r of ``weights`` saying how many times
each clip is in resample r (all ones: the point estimate).  Every metric of the book is
such a statistic (``corpus.py``, ``grounded.pooled``), and one call of numpy over a block
of resamples costs about what one resample costs in a Python loop.

Resamples come from ``resample_indices(N, n, seed)``: the same N, n and seed give the same
resamples, so several metrics bootstrapped with one seed are resampled on the same
clips (paired intervals), and a run is reproducible; ``bootstrap_ci`` and
``bootstrap_weighted`` draw the same resamples.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Statistic = Callable[[np.ndarray], float]
WeightedStatistic = Callable[[np.ndarray], np.ndarray]  # weights (k, N) -> values (k,)
BLOCK = 250  # resamples per call of a weighted statistic: bounds its (k, ...) temporaries


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
    return (estimate, *_interval(stats, level))


def bootstrap_weighted(statistic: WeightedStatistic, *, size: int, n: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) as ``bootstrap_ci``, for a statistic of clip weights that
    scores many resamples in one call: ``statistic(weights (k, N)) -> (k,)``.

    The resamples are ``bootstrap_ci``'s (same size, n and seed), passed as weight
    matrices (``weight_matrix``) of at most ``BLOCK`` rows; the estimate is the statistic
    of all clips once each (a row of ones).  NaN resamples are left out, as there.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    resamples = resample_indices(size, n, seed)
    estimate = float(_values(statistic, np.ones((1, size)))[0])
    stats = np.concatenate([_values(statistic, weight_matrix(block, size))
                            for block in np.array_split(resamples, -(-n // BLOCK))])
    return (estimate, *_interval(stats, level))


def _values(statistic: WeightedStatistic, weights: np.ndarray) -> np.ndarray:
    values = np.asarray(statistic(weights), dtype=float)
    if values.shape != (len(weights),):
        raise ValueError(f"a weighted statistic must return one value per row of weights "
                         f"({len(weights)},), got shape {values.shape}")
    return values


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of the non-NaN resample statistics (NaN, NaN if none)."""
    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def weights_of(idx: np.ndarray, size: int) -> np.ndarray:
    """(size,) float: how many times each clip is in the resample ``idx``."""
    return np.bincount(idx, minlength=size).astype(float)


def weight_matrix(resamples: np.ndarray, size: int) -> np.ndarray:
    """(k, size) float: row r is ``weights_of(resamples[r], size)``."""
    k = len(resamples)
    flat = (resamples + size * np.arange(k)[:, None]).ravel()
    return np.bincount(flat, minlength=k * size).astype(float).reshape(k, size)

"""Paired differences of a grounded metric between two caption sets on the same clips.

Two decoders (or two models) caption the same clips; their grounded metrics are pooled
ratios over clips (``grounded.pooled``), so their difference is not a mean of per-clip
differences.  ``paired_difference`` resamples the clips once for both sets: each
resample weights every clip the same way in A and in B, and the interval is the
percentile interval of the pooled A minus pooled B (``bootstrap.bootstrap_weighted``;
resamples where either metric is undefined are left out).

``interval_direction`` reads such an interval ("yes": above 0, "unclear": positive but
reaching 0, "no": not positive, "none": undefined) and ``format_interval`` writes it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .bootstrap import bootstrap_weighted
from .grounded import count_columns, pooled


def paired_difference(table_a: pd.DataFrame, table_b: pd.DataFrame, metric: str, *,
                      n: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) of ``metric``(A) - ``metric``(B) with a paired bootstrap.

    table_a, table_b: per-clip count tables of ``grounded_metrics`` on the same clips in
    the same order; metric: a name of ``GROUNDED_METRICS``; n, seed, level: as
    ``bootstrap_weighted`` (the same seed resamples the same clips for every metric).
    """
    if list(table_a.index) != list(table_b.index):
        raise ValueError("the two caption sets must be scored on the same clips in the same order")
    ca, cb, size = count_columns(table_a), count_columns(table_b), len(table_a)

    def difference(weights: np.ndarray) -> np.ndarray:
        return pooled(metric, ca, weights) - pooled(metric, cb, weights)

    return bootstrap_weighted(difference, size=size, n=n, seed=seed, level=level)


def interval_direction(estimate: float, low: float) -> str:
    """Is a difference positive? "yes": its interval lies above 0; "unclear": the
    estimate is positive but the interval reaches 0; "no": the estimate is <= 0;
    "none": the estimate is undefined (NaN)."""
    if pd.isna(estimate):
        return "none"
    if estimate > 0 and low > 0:
        return "yes"
    return "no" if not estimate > 0 else "unclear"


def format_interval(estimate: float, low: float, high: float, *,
                    undefined: str = "undefined") -> str:
    """'+0.123 [-0.010, +0.250]', or ``undefined`` when the estimate is NaN."""
    if pd.isna(estimate):
        return undefined
    return f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}]"

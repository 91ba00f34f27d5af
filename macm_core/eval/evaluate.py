"""Every caption metric of a set of predictions, with bootstrap intervals, in one flat dict.

``evaluate_captions(predictions, benchmark)`` is what ``macm eval`` and the notebooks call:
the COCO metrics against each clip's fine caption (``coco.py``) and the grounded
fine-grained metrics against its labels (``grounded.py``), each with a percentile
bootstrap interval over clips (``bootstrap.py``).  All metrics are resampled on the same
clips (one seed), and corpus metrics are recomputed on each resample (``corpus.py``), a
block of resamples per numpy call (``bootstrap.bootstrap_weighted``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from .bootstrap import bootstrap_weighted
from .coco import COCO_METRICS, coco_metrics
from .corpus import corpus_statistics
from .grounded import GROUNDED_METRICS, count_columns, grounded_metrics, pooled

METRICS: tuple[str, ...] = COCO_METRICS + GROUNDED_METRICS


def benchmark_tables(benchmark_or_tables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clips indexed by clip_id, segments) of a ``Benchmark`` or of a mapping with
    ``"clips"`` (a ``clip_id`` index or column, and ``caption``) and ``"segments"``."""
    if isinstance(benchmark_or_tables, Mapping):
        clips, segments = benchmark_or_tables["clips"], benchmark_or_tables["segments"]
    else:
        clips, segments = benchmark_or_tables.clips, benchmark_or_tables.segments
    if "clip_id" in clips.columns:
        clips = clips.set_index("clip_id")
    return clips, segments


def grounded_statistics(table: pd.DataFrame) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``{metric: statistic(weights)}`` for the grounded metrics of a per-clip count table:
    weights (k, N) of k resamples -> (k,) (``bootstrap.bootstrap_weighted``)."""
    columns = count_columns(table)

    def metric(name: str):
        return lambda weights: pooled(name, columns, weights)

    return {name: metric(name) for name in GROUNDED_METRICS}


def evaluate_captions(predictions: Mapping[str, str], benchmark_or_tables, *,
                      bootstrap: int = 1000, seed: int = 0,
                      level: float = 0.95) -> dict[str, float]:
    """Every metric of ``METRICS`` for the predicted captions, with its interval.

    predictions: clip_id -> caption; the clips evaluated are exactly these (all must be
        in the benchmark), references are their ``caption`` (the fine caption).
    benchmark_or_tables: a ``Benchmark`` or ``{"clips": ..., "segments": ...}``.
    bootstrap: number of resamples (0: no intervals, low/high NaN); seed, level: theirs.
    Returns ``{"n_clips": N, metric: value, metric + "_low": ..., metric + "_high": ...}``
    for every metric, as floats (raw fractions; NaN where a metric has no denominator).
    """
    clips, segments = benchmark_tables(benchmark_or_tables)
    unknown = [cid for cid in predictions if cid not in clips.index]
    if unknown:
        raise KeyError(f"{len(unknown)} predicted clips are not in the benchmark, "
                       f"e.g. {unknown[:3]}")
    references = {cid: [clips.loc[cid, "caption"]] for cid in predictions}
    _, coco_table = coco_metrics(references, predictions, per_clip=True)
    grounded_table, _ = grounded_metrics(predictions, segments)
    assert list(coco_table.index) == list(grounded_table.index)   # both sorted by clip_id
    statistics = {**corpus_statistics(coco_table), **grounded_statistics(grounded_table)}
    size = len(coco_table)
    out: dict[str, float] = {"n_clips": float(size)}
    for name in METRICS:
        if bootstrap > 0:
            value, low, high = bootstrap_weighted(statistics[name], size=size, n=bootstrap,
                                                  seed=seed, level=level)
        else:
            value, low, high = statistics[name](np.ones((1, size)))[0], float("nan"), float("nan")
        out[name], out[f"{name}_low"], out[f"{name}_high"] = float(value), low, high
    return out

"""Fine-grained metrics grounded in the benchmark's labels: is what a caption says true?

``grounded_metrics(predictions, segments)`` reads each caption with ``parse_caption`` and
checks it against the clip's labelled segments (``Benchmark.segments``).  Per clip it
counts, and over clips it pools (micro-averages):

* body parts: ``part_precision`` (named parts that move), ``part_recall`` (labelled parts
  named, side included), ``part_f1``;
* ``laterality``: of the parts named with a side, where that part moves in the clip, the
  share named with a side that moves (left <-> right confusions);
* actions: ``action_precision`` / ``action_recall`` / ``action_f1`` of the described
  action set against the labelled one, and ``action_exact`` (share of captions whose
  set is exactly right);
* counts: ``count_accuracy`` (of the (action, count) pairs stated for labelled counted
  actions, the share that a segment has) and ``count_recall`` (labelled (action,
  repetitions) pairs of counted actions that are stated); a count stated for an action
  the clip does not have is an action error, not a count error;
* hallucination, CHAIR-style: ``CHAIR_i`` = share of part mentions that name a part that
  does not move in the clip, ``CHAIR_s`` = share of captions with at least one.  A wrong
  side names a part that does not move (the left hand is not the right hand), so
  ``CHAIR_i`` = 1 - ``part_precision``, kept under its usual name.

What "moves" means (``moving_parts``):

* a segment moves its labelled part on its side, and the rest of that limb: hand and arm
  share their joints (``vocabulary.part_joints``), as do foot and leg, so "raises the
  left hand" for a labelled left-arm raise is not a hallucination (the hand <-> foot and
  arm <-> leg confusions still are);
* a whole-body segment (squat, jump, turn) moves the torso, both legs and both feet, and
  the "whole body"; it needs no part to be named (ground-truth captions name none), so it
  adds nothing to part recall.  "The whole body" said of a clip without one is a
  hallucination;
* a mention without a side is right when the part moves on either side; one with a side
  only when that side moves.  Recall is stricter: a labelled sided part counts as named
  only when named with its side.

Part mentions are counted once per caption (a repeated "the left hand" is one mention),
so degenerate repetitive output cannot inflate the counts.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..data.vocabulary import is_counted
from .lexicon import CaptionMentions, parse_caption

# the rest of the limb a part moves with (same joints in vocabulary.part_joints)
MOVES_WITH: dict[str, tuple[str, ...]] = {"hand": ("arm",), "arm": ("hand",),
                                          "foot": ("leg",), "leg": ("foot",)}
# what a whole-body action (part "body") moves
WHOLE_BODY_MOVES: frozenset[tuple[str | None, str]] = frozenset({
    ("left", "leg"), ("right", "leg"), ("left", "foot"), ("right", "foot"),
    (None, "torso"), (None, "body")})

# summary metric -> (numerator column, denominator column), pooled over clips
RATIOS: dict[str, tuple[str, str]] = {
    "part_precision": ("parts_correct", "parts_named"),
    "part_recall": ("parts_recalled", "parts_labelled"),
    "laterality": ("sides_correct", "sides_named"),
    "action_precision": ("actions_correct", "actions_named"),
    "action_recall": ("actions_correct", "actions_labelled"),
    "action_exact": ("action_set_exact", "captions"),
    "count_accuracy": ("counts_correct", "counts_named"),
    "count_recall": ("counts_correct", "counts_labelled"),
    "CHAIR_i": ("parts_hallucinated", "parts_named"),
    "CHAIR_s": ("hallucinates", "captions"),
}
# summary metric -> (precision metric, recall metric) it is the harmonic mean of
F1S: dict[str, tuple[str, str]] = {"part_f1": ("part_precision", "part_recall"),
                                   "action_f1": ("action_precision", "action_recall")}
GROUNDED_METRICS: tuple[str, ...] = (
    "part_precision", "part_recall", "part_f1", "laterality", "action_precision",
    "action_recall", "action_f1", "action_exact", "count_accuracy", "count_recall",
    "CHAIR_i", "CHAIR_s")

Label = tuple[str | None, str]


def moving_parts(labels: pd.DataFrame) -> set[Label]:
    """The (side, part) pairs that move in a clip with these labelled segments."""
    moving: set[Label] = set()
    for part, side in zip(labels["part"], labels["side"]):
        side = _side(side)
        if part == "body":
            moving |= WHOLE_BODY_MOVES
            continue
        moving |= {(side, p) for p in (part, *MOVES_WITH.get(part, ()))}
    return moving


def labelled_parts(labels: pd.DataFrame) -> set[Label]:
    """The (side, part) pairs a faithful caption names: every segment's but the whole
    body's (as ``captions.expected_mentions``)."""
    return {(_side(side), part) for part, side in zip(labels["part"], labels["side"])
            if part != "body"}


def clip_counts(mentions: CaptionMentions, labels: pd.DataFrame) -> dict[str, int]:
    """The per-clip counts behind every ratio in ``RATIOS`` (one caption, its labels)."""
    moving, labelled = moving_parts(labels), labelled_parts(labels)
    moving_anyside = {part for _, part in moving}
    named = set(mentions.parts)
    correct = {(s, p) for s, p in named if (s, p) in moving or (s is None and p in
                                                                   moving_anyside)}
    recalled = {(s, p) for s, p in labelled
                if any(q in (p, *MOVES_WITH.get(p, ())) and t == s for t, q in named)}
    sided = {(s, p) for s, p in named if s is not None and p in moving_anyside}
    acts_named, acts_labelled = set(mentions.actions), set(labels["action"])
    counted = {(a, int(n)) for a, n in zip(labels["action"], labels["repetitions"])
               if is_counted(a)}
    counted_actions = {a for a, _ in counted}
    stated = {(a, n) for a, n in mentions.counts if a in counted_actions}
    return {
        "captions": 1,
        "parts_named": len(named), "parts_correct": len(correct),
        "parts_hallucinated": len(named) - len(correct),
        "hallucinates": int(len(named) > len(correct)),
        "parts_labelled": len(labelled), "parts_recalled": len(recalled),
        "sides_named": len(sided), "sides_correct": len(sided & moving),
        "actions_named": len(acts_named), "actions_labelled": len(acts_labelled),
        "actions_correct": len(acts_named & acts_labelled),
        "action_set_exact": int(acts_named == acts_labelled),
        "counts_named": len(stated), "counts_correct": len(stated & counted),
        "counts_labelled": len(counted),
    }


def grounded_metrics(predictions: Mapping[str, str],
                     segments: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-clip counts and pooled summary of the grounded metrics.

    predictions: clip_id -> caption (any text); every clip must have labelled segments.
    segments: the benchmark's segment table (clip_id, part, side, action, repetitions,
        ...); clips without a prediction are ignored.
    Returns (table, summary): ``table`` has one row per clip (index clip_id, sorted) and
    one int column per count of ``clip_counts``; ``summary`` maps every name in
    ``GROUNDED_METRICS`` to a float (NaN where its denominator is 0).
    """
    wanted = segments[segments["clip_id"].isin(list(predictions))]  # grouping only these: 5x less on the test split
    by_clip = {cid: rows for cid, rows in wanted.groupby("clip_id", sort=False)}
    missing = [cid for cid in predictions if cid not in by_clip]
    if missing:
        raise KeyError(f"{len(missing)} predicted clips have no labelled segments, "
                       f"e.g. {missing[:3]}")
    ids = sorted(predictions)
    rows = [clip_counts(parse_caption(predictions[cid]), by_clip[cid]) for cid in ids]
    table = pd.DataFrame(rows, index=pd.Index(ids, name="clip_id"))
    return table, summarise(table)


def summarise(table: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, float]:
    """The pooled metrics of a per-clip count table, each clip counted ``weights[i]``
    times (all once by default; a bootstrap resample gives other weights)."""
    columns = count_columns(table)
    w = np.ones(len(table)) if weights is None else np.asarray(weights, dtype=float)
    return {name: pooled(name, columns, w) for name in GROUNDED_METRICS}


def count_columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The count columns of a per-clip table as float arrays (for ``pooled``)."""
    names = {c for pair in RATIOS.values() for c in pair}
    return {c: table[c].to_numpy(dtype=float) for c in names}


def pooled(name: str, columns: dict[str, np.ndarray], weights: np.ndarray):
    """One metric of ``GROUNDED_METRICS`` from per-clip counts and clip weights: weights
    (N,) -> a float; weights (k, N) of k resamples -> (k,) (NaN where undefined)."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim == 1:
        return float(pooled(name, columns, weights[None])[0])
    if name in F1S:
        precision, recall = F1S[name]
        return f1(pooled(precision, columns, weights), pooled(recall, columns, weights))
    numerator, denominator = RATIOS[name]
    return ratio(weights @ columns[numerator], weights @ columns[denominator])


def ratio(numerator, denominator):
    """numerator / denominator, NaN where the denominator is 0 (floats or arrays)."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    out = np.divide(numerator, denominator, out=np.full(np.broadcast(numerator, denominator).shape, np.nan),
                    where=denominator > 0)
    return float(out) if out.ndim == 0 else out


def f1(precision, recall):
    """Harmonic mean; 0 where both are 0, NaN where either is NaN (floats or arrays)."""
    precision, recall = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(total > 0, 2 * precision * recall / total, 0.0)
    out = np.where(np.isnan(total), np.nan, out)
    return float(out) if out.ndim == 0 else out


def _side(side) -> str | None:
    return None if pd.isna(side) else str(side)

"""Keyframe sampling: uniform, and the paper's pose-aware rule.

Both split a clip of T frames into n segments with bounds ``floor(i * T / n)``,
i = 0..n, so segment i holds frames ``bounds[i]:bounds[i+1]`` (every segment is
non-empty when n <= T) and pick one frame per segment.

Pose-aware rule: in the first segment, take the frame with the largest mean pose
distance to the other frames of that segment; in every later segment, take the
frame with the largest pose distance to the previous keyframe.  So keyframes land
where the pose changes most.

Pose distance between frames i and j: the mean, over the joints confident in both
frames, of the Euclidean distance between their positions, divided by the mean of the
two frames' person scales (scale = diagonal of the bounding box of the frame's
confident joints), so that it does not depend on how large the person appears.  A
pair with no joint confident in both frames has no distance (NaN); frames without
any distance are never picked, and a segment where no frame has one falls back to
its middle frame (so a track with no confident joints gives uniform keyframes).
Ties go to the earliest frame.

n == T returns every frame; n > T and T == 0 raise ``ValueError``.
"""
from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # bound on (rows x frames x joints) per block of pairwise distances


def _check_counts(num_frames: int, n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of keyframes) must be a positive int, got {n!r}")
    if num_frames == 0:
        raise ValueError("the clip has no frames (T = 0); there is nothing to sample")
    if n > num_frames:
        raise ValueError(f"cannot pick {n} distinct keyframes from a clip of {num_frames} frames; "
                         f"ask for at most {num_frames} or use a longer clip")


def segment_bounds(num_frames: int, n: int) -> np.ndarray:
    """(n + 1,) int64 segment bounds ``floor(i * T / n)``; segment i is bounds[i]:bounds[i+1]."""
    _check_counts(num_frames, n)
    return (np.arange(n + 1, dtype=np.int64) * num_frames) // n


def uniform_keyframes(num_frames: int, n: int) -> np.ndarray:
    """(n,) int64, the middle frame of each of the n segments."""
    bounds = segment_bounds(num_frames, n)
    return (bounds[:-1] + bounds[1:] - 1) // 2


def _confident_and_scale(keypoints: np.ndarray, confidence: np.ndarray | None,
                         min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Confident mask (T, K) and person scale (T,) (box diagonal; frames with under two
    confident joints take the median scale of the others, or 1.0 if none has one)."""
    mask = np.isfinite(keypoints).all(axis=-1)
    if confidence is not None:
        mask &= np.nan_to_num(confidence, nan=-np.inf) > min_confidence
    points = np.nan_to_num(keypoints)
    lo = np.where(mask[..., None], points, np.inf).min(axis=1)
    hi = np.where(mask[..., None], points, -np.inf).max(axis=1)
    extent = np.where(mask.sum(axis=1)[:, None] >= 2, hi - lo, 0.0)
    scale = np.hypot(extent[:, 0], extent[:, 1])
    good = scale > 0
    fallback = float(np.median(scale[good])) if good.any() else 1.0
    return mask, np.where(good, scale, fallback)


def pose_distances(keypoints_a: np.ndarray, mask_a: np.ndarray, scale_a: np.ndarray,
                   keypoints_b: np.ndarray, mask_b: np.ndarray, scale_b: np.ndarray) -> np.ndarray:
    """Pairwise pose distances (A, B) between frames a (A, K, 2) and frames b (B, K, 2),
    given their confident masks (A, K), (B, K) and scales (A,), (B,); NaN where a pair
    shares no confident joint."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, keypoints_b.shape[0] * keypoints_b.shape[1]))
    out = np.empty((keypoints_a.shape[0], keypoints_b.shape[0]), dtype=np.float64)
    pb, mb = np.nan_to_num(keypoints_b)[None], mask_b[None]
    for start in range(0, keypoints_a.shape[0], rows):
        part = slice(start, start + rows)
        both = mask_a[part, None] & mb  # (a, B, K)
        gap = np.linalg.norm(np.nan_to_num(keypoints_a[part])[:, None] - pb, axis=-1)  # (a, B, K)
        count = both.sum(axis=-1)
        total = np.where(both, gap, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / count, np.nan)
        out[part] = mean / (0.5 * (scale_a[part, None] + scale_b[None]))
    return out


def _pick(scores: np.ndarray, start: int) -> int:
    """Index (in the clip) of the best score in a segment starting at ``start``; the
    segment's middle frame when every score is NaN."""
    if np.isnan(scores).all():
        return start + (scores.shape[0] - 1) // 2
    return start + int(np.nanargmax(scores))


def pose_aware_keyframes(keypoints: np.ndarray, n: int, confidence: np.ndarray | None = None, *,
                         min_confidence: float = 0.5) -> np.ndarray:
    """(n,) int64 increasing keyframe indices by the pose-aware rule (module docstring).

    keypoints: (T, K, 2) positions (NaN = missing joint).  confidence: (T, K) or None
    (then every finite joint counts); a joint counts when confidence > min_confidence.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (T, K, 2), got shape {keypoints.shape}")
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        if confidence.shape != keypoints.shape[:2]:
            raise ValueError(f"confidence must be (T, K) = {keypoints.shape[:2]}, got {confidence.shape}")
    bounds = segment_bounds(keypoints.shape[0], n)
    mask, scale = _confident_and_scale(keypoints, confidence, min_confidence)

    first = slice(bounds[0], bounds[1])
    table = pose_distances(keypoints[first], mask[first], scale[first],
                           keypoints[first], mask[first], scale[first])
    np.fill_diagonal(table, np.nan)  # distance to the *other* frames
    with np.errstate(invalid="ignore"):
        valid = (~np.isnan(table)).sum(axis=1)
        scores = np.where(valid > 0, np.nansum(table, axis=1) / np.maximum(valid, 1), np.nan)
    picks = [_pick(scores, int(bounds[0]))]
    for i in range(1, n):
        seg, prev = slice(bounds[i], bounds[i + 1]), picks[-1]
        scores = pose_distances(keypoints[seg], mask[seg], scale[seg],
                                keypoints[prev:prev + 1], mask[prev:prev + 1], scale[prev:prev + 1])[:, 0]
        picks.append(_pick(scores, int(bounds[i])))
    return np.asarray(picks, dtype=np.int64)

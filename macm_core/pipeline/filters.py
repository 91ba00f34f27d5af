"""The HMI quality filters: which stretches of a pose track are worth captioning.

The paper keeps a clip when (1) one person is seen in at least 90% of its frames,
(2) the person's box covers more than 1/50 of the frame, (3) at least 12 keypoints
have confidence above 0.5, (4) the person moves enough, and (5) it lasts 2-10 s.
``filter_clip`` judges a whole track; ``segment_track`` cuts a long track into
candidate 2-10 s segments of usable frames and judges each.  Every decision carries
one ``CheckResult`` per rule (measured value, threshold, pass/fail), so a rejection
says why.

Inputs (all numpy):
    keypoints: (T, K, 2) pixel coordinates (x, y); NaN marks a missing joint.
    confidence: (T, K) per-joint confidence.
    person_count: (T,) number of people detected per frame, or None when unknown
        (then the single-person rule is not checked and is absent from the reasons).
    frame_size: (height, width) in pixels.  fps: frames per second.

A joint is *confident* when its confidence exceeds ``keypoint_confidence`` and its
coordinates are finite.  The person's box in a frame is the bounding box of its
confident joints, clipped to the frame.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the HMI filters (defaults follow the paper where it gives one).

    min_single_person_fraction: share of frames with exactly one person (paper: 0.9).
    min_box_area_fraction: person box area / frame area must exceed this (paper: 1/50).
    keypoint_confidence: a joint counts as confident above this (paper: 0.5).
    min_confident_keypoints: confident joints needed in a frame (paper: 12).
    min_frame_fraction: share of frames that must satisfy the box and keypoint rules.
    min_motion: mean distance of the confident joints from their per-clip median
        position, in units of the person's median box diagonal.  0.02 keeps a person
        who waves one arm and rejects a static person with a few pixels of jitter.
    min_duration_s, max_duration_s: clip length bounds (paper: 2-10 s).
    max_gap_s: ``segment_track`` bridges runs of unusable frames this short.
    """
    min_single_person_fraction: float = 0.9
    min_box_area_fraction: float = 1.0 / 50.0
    keypoint_confidence: float = 0.5
    min_confident_keypoints: int = 12
    min_frame_fraction: float = 0.9
    min_motion: float = 0.02
    min_duration_s: float = 2.0
    max_duration_s: float = 10.0
    max_gap_s: float = 0.25


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One rule's verdict: ``value op threshold`` must hold for ``passed``."""
    name: str
    description: str
    value: float
    op: str
    threshold: float
    passed: bool

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (f"{self.name}: {self.value:.4g} {self.op} {self.threshold:.4g} -> {verdict} "
                f"({self.description})")


@dataclasses.dataclass(frozen=True)
class FilterDecision:
    """The verdict on frames ``start:stop`` of a track; ``accept`` iff every check passed."""
    accept: bool
    reasons: tuple[CheckResult, ...]
    start: int
    stop: int
    fps: float

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.reasons if not r.passed)

    @property
    def duration_s(self) -> float:
        return (self.stop - self.start) / self.fps

    def summary(self) -> str:
        head = "accept" if self.accept else "reject (" + ", ".join(self.failed) + ")"
        return f"frames {self.start}:{self.stop} ({self.duration_s:.2f} s): {head}"


@dataclasses.dataclass(frozen=True)
class _FrameStats:
    """Per-frame measurements. confident (T, K) bool; the rest (T,)."""
    confident: np.ndarray
    num_confident: np.ndarray
    box_fraction: np.ndarray
    box_diagonal: np.ndarray


def _check_inputs(keypoints: np.ndarray, confidence: np.ndarray, person_count: np.ndarray | None,
                  frame_size: tuple[int, int], fps: float) -> None:
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (T, K, 2), got shape {keypoints.shape}")
    if confidence.shape != keypoints.shape[:2]:
        raise ValueError(f"confidence must be (T, K) = {keypoints.shape[:2]} to match keypoints, "
                         f"got {confidence.shape}")
    if keypoints.shape[0] == 0:
        raise ValueError("the pose track is empty (T = 0); there is nothing to filter")
    if person_count is not None and person_count.shape != keypoints.shape[:1]:
        raise ValueError(f"person_count must be (T,) = ({keypoints.shape[0]},), got {person_count.shape}")
    if len(frame_size) != 2 or not all(v > 0 for v in frame_size):
        raise ValueError(f"frame_size must be (height, width) in positive pixels, got {frame_size!r}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")


def _frame_stats(keypoints: np.ndarray, confidence: np.ndarray, frame_size: tuple[int, int],
                 config: FilterConfig) -> _FrameStats:
    height, width = frame_size
    confident = (np.nan_to_num(confidence, nan=-np.inf) > config.keypoint_confidence) \
        & np.isfinite(keypoints).all(axis=-1)
    num_confident = confident.sum(axis=1)
    limits = np.array([width, height], dtype=np.float64)
    points = np.clip(np.nan_to_num(keypoints), 0.0, limits)  # (T, K, 2), inside the frame
    lo = np.where(confident[..., None], points, np.inf).min(axis=1)  # (T, 2)
    hi = np.where(confident[..., None], points, -np.inf).max(axis=1)
    extent = np.where(num_confident[:, None] > 0, hi - lo, 0.0)
    return _FrameStats(confident=confident, num_confident=num_confident,
                       box_fraction=extent.prod(axis=1) / float(height * width),
                       box_diagonal=np.hypot(extent[:, 0], extent[:, 1]))


def _motion(keypoints: np.ndarray, confident: np.ndarray, box_diagonal: np.ndarray) -> float:
    """Mean distance of confident joints from their median position, over the median
    box diagonal. keypoints (T, K, 2), confident (T, K), box_diagonal (T,)."""
    diagonals = box_diagonal[box_diagonal > 0]
    if diagonals.size == 0 or not confident.any():
        return 0.0
    points = np.where(confident[..., None], keypoints, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # joints never confident: all-NaN
        median = np.nanmedian(points, axis=0)  # (K, 2)
    distance = np.linalg.norm(keypoints - median[None], axis=-1)  # (T, K)
    return float(distance[confident].mean() / np.median(diagonals))


def _decide(keypoints: np.ndarray, stats: _FrameStats, person_count: np.ndarray | None,
            start: int, stop: int, fps: float, config: FilterConfig) -> FilterDecision:
    part = slice(start, stop)
    frames = stop - start
    duration = frames / fps
    reasons = [
        CheckResult("duration_min", "clip length in seconds", duration, ">=",
                    config.min_duration_s, duration >= config.min_duration_s),
        CheckResult("duration_max", "clip length in seconds", duration, "<=",
                    config.max_duration_s, duration <= config.max_duration_s),
    ]
    if person_count is not None:
        single = float(np.mean(person_count[part] == 1))
        reasons.append(CheckResult(
            "single_person", "share of frames with exactly one person", single, ">=",
            config.min_single_person_fraction, single >= config.min_single_person_fraction))
    big = float(np.mean(stats.box_fraction[part] > config.min_box_area_fraction))
    reasons.append(CheckResult(
        "person_size", f"share of frames whose person box exceeds {config.min_box_area_fraction:.4g} "
        f"of the frame (median {np.median(stats.box_fraction[part]):.4g})",
        big, ">=", config.min_frame_fraction, big >= config.min_frame_fraction))
    enough = float(np.mean(stats.num_confident[part] >= config.min_confident_keypoints))
    reasons.append(CheckResult(
        "keypoints", f"share of frames with >= {config.min_confident_keypoints} joints above "
        f"confidence {config.keypoint_confidence} (median {np.median(stats.num_confident[part]):.0f})",
        enough, ">=", config.min_frame_fraction, enough >= config.min_frame_fraction))
    motion = _motion(keypoints[part], stats.confident[part], stats.box_diagonal[part])
    reasons.append(CheckResult(
        "motion", "mean joint distance from the median pose, in person box diagonals",
        motion, ">=", config.min_motion, motion >= config.min_motion))
    return FilterDecision(accept=all(r.passed for r in reasons), reasons=tuple(reasons),
                          start=start, stop=stop, fps=float(fps))


def filter_clip(*, keypoints: np.ndarray, confidence: np.ndarray, frame_size: tuple[int, int],
                fps: float, person_count: np.ndarray | None = None,
                config: FilterConfig = FilterConfig()) -> FilterDecision:
    """Judge a whole track (all T frames) as one clip."""
    keypoints, confidence = np.asarray(keypoints, dtype=np.float64), np.asarray(confidence, dtype=np.float64)
    person_count = None if person_count is None else np.asarray(person_count)
    _check_inputs(keypoints, confidence, person_count, frame_size, fps)
    stats = _frame_stats(keypoints, confidence, frame_size, config)
    return _decide(keypoints, stats, person_count, 0, keypoints.shape[0], fps, config)


def _usable_runs(usable: np.ndarray, max_gap: int) -> np.ndarray:
    """(start, stop) pairs (R, 2) of runs of True in ``usable`` (T,), after filling
    gaps of at most ``max_gap`` False frames that have True on both sides."""
    padded = np.concatenate([[False], usable, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    keep = np.concatenate([[True], (starts[1:] - stops[:-1]) > max_gap])  # run begins a new segment
    last = np.concatenate([keep[1:], [True]])  # run ends its segment
    return np.stack([starts[keep], stops[last]], axis=1)


def segment_track(*, keypoints: np.ndarray, confidence: np.ndarray, frame_size: tuple[int, int],
                  fps: float, person_count: np.ndarray | None = None,
                  config: FilterConfig = FilterConfig()) -> list[FilterDecision]:
    """Cut a track into candidate segments and judge each.

    A frame is usable when it has enough confident joints, a large enough box and (if
    ``person_count`` is given) exactly one person.  Runs of usable frames (bridging
    gaps up to ``max_gap_s``) longer than ``max_duration_s`` are cut into equal pieces
    that each fit.  Returns one ``FilterDecision`` per candidate, in time order,
    accepted or not (short runs come back rejected by ``duration_min``).
    """
    keypoints, confidence = np.asarray(keypoints, dtype=np.float64), np.asarray(confidence, dtype=np.float64)
    person_count = None if person_count is None else np.asarray(person_count)
    _check_inputs(keypoints, confidence, person_count, frame_size, fps)
    stats = _frame_stats(keypoints, confidence, frame_size, config)
    usable = (stats.num_confident >= config.min_confident_keypoints) \
        & (stats.box_fraction > config.min_box_area_fraction)
    if person_count is not None:
        usable &= person_count == 1
    max_frames = int(math.floor(config.max_duration_s * fps + 1e-9))
    if max_frames < 1:
        raise ValueError(f"max_duration_s={config.max_duration_s} at {fps} fps is under one frame")
    decisions = []
    for start, stop in _usable_runs(usable, int(round(config.max_gap_s * fps))):
        pieces = -(-(stop - start) // max_frames)
        bounds = start + np.round(np.linspace(0, stop - start, pieces + 1)).astype(np.int64)
        for a, b in zip(bounds[:-1], bounds[1:]):
            decisions.append(_decide(keypoints, stats, person_count, int(a), int(b), fps, config))
    return decisions

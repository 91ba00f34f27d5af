"""Keyframe sampling: known answers by construction, and the vectorised code against a slow loop."""
import math

import numpy as np
import pytest

from macm_core.pipeline import sampling
from macm_core.pipeline.sampling import pose_aware_keyframes, segment_bounds, uniform_keyframes

K = 17


def _static_track(num_frames: int, seed: int = 0) -> np.ndarray:
    base = np.random.default_rng(seed).uniform(100, 300, size=(K, 2))
    return np.repeat(base[None], num_frames, axis=0)


def test_uniform_keyframes_are_segment_middles():
    assert segment_bounds(10, 3).tolist() == [0, 3, 6, 10]
    assert uniform_keyframes(10, 3).tolist() == [1, 4, 7]
    assert uniform_keyframes(100, 4).tolist() == [12, 37, 62, 87]
    assert uniform_keyframes(5, 5).tolist() == [0, 1, 2, 3, 4]
    assert uniform_keyframes(7, 1).tolist() == [3]


@pytest.mark.parametrize("num_frames,n,match", [(0, 3, "no frames"), (4, 5, "at most 4"), (4, 0, "positive")])
def test_bad_counts_raise(num_frames, n, match):
    with pytest.raises(ValueError, match=match):
        uniform_keyframes(num_frames, n)
    with pytest.raises(ValueError, match=match):
        pose_aware_keyframes(np.zeros((num_frames, K, 2)), n)


def test_n_equal_to_t_returns_every_frame():
    track = np.random.default_rng(1).normal(size=(6, K, 2))
    assert pose_aware_keyframes(track, 6).tolist() == [0, 1, 2, 3, 4, 5]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(T, K, 2\)"):
        pose_aware_keyframes(np.zeros((10, K)), 2)
    with pytest.raises(ValueError, match="confidence"):
        pose_aware_keyframes(np.zeros((10, K, 2)), 2, confidence=np.ones((10, K + 1)))


def test_keyframes_follow_known_jumps():
    track = _static_track(40)  # segments of 10 frames
    track[3] += 50.0  # the odd one out of segment 0
    track[15] -= 80.0  # farthest from frame 3 in segment 1
    track[27] += 60.0  # farthest from frame 15 in segment 2
    # segment 3 is static: every frame is equally far from frame 27 -> the first (tie rule)
    assert pose_aware_keyframes(track, 4).tolist() == [3, 15, 27, 30]


def test_single_joint_jump_is_found_and_unconfident_joints_are_ignored():
    track = _static_track(30)  # 3 segments of 10
    track[13, 5] += 40.0  # one joint jumps in segment 1
    track[24, 2] += 400.0  # a huge jump in segment 2 but on a joint of low confidence ...
    track[22, 7] += 30.0  # ... and a real, smaller jump on a confident joint
    confidence = np.full((30, K), 0.9)
    confidence[24, 2] = 0.1
    picks = pose_aware_keyframes(track, 3, confidence)
    assert picks[1] == 13
    assert picks[2] == 22
    assert pose_aware_keyframes(track, 3)[2] == 24  # without confidences the big jump wins


def test_distance_is_size_invariant_and_has_the_documented_value():
    rng = np.random.default_rng(2)
    track = rng.normal(200, 40, size=(50, K, 2)).cumsum(axis=0) * 0.05 + 300
    picks = pose_aware_keyframes(track, 5)
    assert pose_aware_keyframes(track * 3.0 + 17.0, 5).tolist() == picks.tolist()
    # two frames: a 30 x 40 box (diagonal 50) shifted by (6, 8) -> distance 10 / 50
    frame = np.array([[0.0, 0.0], [30.0, 40.0], [10.0, 10.0]])
    pair = np.stack([frame, frame + [6.0, 8.0]])
    mask = np.ones((2, 3), dtype=bool)
    scale = np.array([50.0, 50.0])
    table = sampling.pose_distances(pair, mask, scale, pair, mask, scale)
    assert table[0, 1] == pytest.approx(0.2)
    assert table[0, 0] == 0.0


def _reference_keyframes(keypoints, n, confidence, min_confidence=0.5):
    """The rule written as plain loops, straight from the definition."""
    num_frames, num_joints, _ = keypoints.shape
    ok = [[bool(np.all(np.isfinite(keypoints[t, k])) and (confidence is None or confidence[t, k] > min_confidence))
           for k in range(num_joints)] for t in range(num_frames)]
    scales = []
    for t in range(num_frames):
        pts = [keypoints[t, k] for k in range(num_joints) if ok[t][k]]
        if len(pts) >= 2:
            pts = np.array(pts)
            scales.append(math.hypot(*(pts.max(axis=0) - pts.min(axis=0))))
        else:
            scales.append(0.0)
    positive = [s for s in scales if s > 0]
    fallback = float(np.median(positive)) if positive else 1.0
    scales = [s if s > 0 else fallback for s in scales]

    def dist(i, j):
        shared = [k for k in range(num_joints) if ok[i][k] and ok[j][k]]
        if not shared:
            return None
        mean = sum(math.dist(keypoints[i, k], keypoints[j, k]) for k in shared) / len(shared)
        return mean / ((scales[i] + scales[j]) / 2)

    def pick(scores, start):
        best, best_at = None, None
        for offset, score in enumerate(scores):
            if score is not None and (best is None or score > best):
                best, best_at = score, start + offset
        return best_at if best_at is not None else start + (len(scores) - 1) // 2

    bounds = [i * num_frames // n for i in range(n + 1)]
    first = range(bounds[0], bounds[1])
    scores = []
    for i in first:
        ds = [d for j in first if j != i for d in [dist(i, j)] if d is not None]
        scores.append(sum(ds) / len(ds) if ds else None)
    picks = [pick(scores, bounds[0])]
    for s in range(1, n):
        picks.append(pick([dist(i, picks[-1]) for i in range(bounds[s], bounds[s + 1])], bounds[s]))
    return picks


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_matches_reference_loop(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    num_frames = int(rng.integers(8, 40))
    n = int(rng.integers(1, min(num_frames, 8) + 1))
    keypoints = rng.normal(0, 30, size=(num_frames, 6, 2)).cumsum(axis=0)
    confidence = rng.uniform(0, 1, size=(num_frames, 6))
    keypoints[rng.uniform(size=(num_frames, 6)) < 0.1] = np.nan
    confidence[num_frames // 2] = 0.0  # a frame with no confident joint at all
    monkeypatch.setattr(sampling, "_CHUNK_ELEMENTS", 7)  # exercise the row blocks too
    assert pose_aware_keyframes(keypoints, n, confidence).tolist() == _reference_keyframes(keypoints, n, confidence)
    assert pose_aware_keyframes(keypoints, n).tolist() == _reference_keyframes(keypoints, n, None)


def test_no_confident_joints_falls_back_to_uniform():
    track = np.random.default_rng(3).normal(size=(30, K, 2))
    picks = pose_aware_keyframes(track, 3, np.zeros((30, K)))
    assert picks.tolist() == uniform_keyframes(30, 3).tolist()


def test_first_segment_scores_average_over_the_other_frames_only():
    # frames 0 and 1 share no confident joint; both differ from frame 2 (shifts 10 and 8).
    # Averaging over the *other* frames scores 0: 10/s, 1: 8/s, 2: 9/s -> frame 0;
    # counting each frame's zero distance to itself would score 2 highest instead.
    joints = np.array([[0.0, 0.0], [30.0, 40.0], [0.0, 40.0]])
    base = np.concatenate([joints, joints + [100.0, 0.0]])  # (6, 2): two identical triangles
    track = np.stack([base + [10.0, 0.0], base + [8.0, 0.0], base])
    confidence = np.ones((3, 6))
    confidence[0, 3:] = 0.0
    confidence[1, :3] = 0.0
    assert pose_aware_keyframes(track, 1, confidence).tolist() == [0]

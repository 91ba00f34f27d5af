"""HMI filters on crafted pose tracks whose verdict is known."""
import numpy as np
import pytest

from macm_core.pipeline.filters import FilterConfig, filter_clip, segment_track

FPS = 30.0
FRAME = (480, 640)  # height, width
K = 17


def _track(seconds: float, *, size: float = 200.0, wave: float = 40.0, seed: int = 0):
    """A person (K joints in a size x size box) swaying sideways; returns (keypoints, confidence)."""
    rng = np.random.default_rng(seed)
    num_frames = int(round(seconds * FPS))
    pose = rng.uniform(0, size, size=(K, 2)) + [220.0, 140.0]
    pose[0], pose[1] = [220.0, 140.0], [220.0 + size, 140.0 + size]  # pin the box corners
    t = np.arange(num_frames) / FPS
    sway = np.stack([wave * np.sin(2 * np.pi * 0.5 * t), np.zeros_like(t)], axis=1)
    keypoints = pose[None] + sway[:, None] + rng.normal(0, 0.5, size=(num_frames, K, 2))
    return keypoints, np.full((num_frames, K), 0.9)


def _judge(keypoints, confidence, **kwargs):
    return filter_clip(keypoints=keypoints, confidence=confidence, frame_size=FRAME, fps=FPS, **kwargs)


def _reason(decision, name):
    return next(r for r in decision.reasons if r.name == name)


def test_good_track_is_accepted_with_every_reason():
    keypoints, confidence = _track(5.0)
    decision = _judge(keypoints, confidence, person_count=np.ones(len(keypoints), dtype=int))
    assert decision.accept, decision.summary()
    assert [r.name for r in decision.reasons] == [
        "duration_min", "duration_max", "single_person", "person_size", "keypoints", "motion"]
    assert all(r.passed for r in decision.reasons)
    assert _reason(decision, "duration_min").value == pytest.approx(5.0)
    assert decision.start == 0 and decision.stop == len(keypoints)


def test_without_person_count_the_single_person_rule_is_absent():
    keypoints, confidence = _track(5.0)
    decision = _judge(keypoints, confidence)
    assert decision.accept
    assert "single_person" not in [r.name for r in decision.reasons]


def test_two_people_are_rejected_for_that_reason():
    keypoints, confidence = _track(5.0)
    count = np.ones(len(keypoints), dtype=int)
    count[: len(count) // 5] = 2  # 20% of frames show two people
    decision = _judge(keypoints, confidence, person_count=count)
    assert not decision.accept
    assert decision.failed == ("single_person",)
    reason = _reason(decision, "single_person")
    assert reason.value == pytest.approx(0.8) and reason.threshold == 0.9


def test_tiny_person_is_rejected():
    keypoints, confidence = _track(5.0, size=60.0, wave=10.0)  # 60 x 60 box = 1/85 of the frame
    decision = _judge(keypoints, confidence)
    assert decision.failed == ("person_size",)
    assert _reason(decision, "person_size").value < 0.1


def test_static_person_is_rejected():
    keypoints, confidence = _track(5.0, wave=0.0)  # only half a pixel of jitter
    decision = _judge(keypoints, confidence)
    assert decision.failed == ("motion",)
    assert _reason(decision, "motion").value < FilterConfig().min_motion / 5


def test_too_few_confident_keypoints_is_rejected():
    keypoints, confidence = _track(5.0)
    confidence[:, :6] = 0.3  # 11 confident joints left
    assert _judge(keypoints, confidence).failed == ("keypoints",)
    keypoints[:, 6] = np.nan  # NaN joints never count either
    confidence[:, :6] = 0.9
    assert _judge(keypoints, confidence).accept
    keypoints[:, 7:12] = np.nan
    assert "keypoints" in _judge(keypoints, confidence).failed


def test_short_and_long_clips_fail_the_duration_rules():
    assert _judge(*_track(1.5)).failed == ("duration_min",)
    assert _judge(*_track(12.0)).failed == ("duration_max",)


def test_twelve_second_track_is_split_into_valid_segments():
    keypoints, confidence = _track(12.0)
    segments = segment_track(keypoints=keypoints, confidence=confidence, frame_size=FRAME, fps=FPS,
                             person_count=np.ones(len(keypoints), dtype=int))
    assert [(s.start, s.stop) for s in segments] == [(0, 180), (180, 360)]
    assert all(s.accept for s in segments), [s.summary() for s in segments]


def test_segments_break_at_long_dropouts_and_bridge_short_ones():
    keypoints, confidence = _track(9.0)
    confidence[60:63] = 0.0  # 0.1 s dropout: bridged
    confidence[150:180] = 0.0  # 1 s dropout: the track splits there
    segments = segment_track(keypoints=keypoints, confidence=confidence, frame_size=FRAME, fps=FPS)
    assert [(s.start, s.stop) for s in segments] == [(0, 150), (180, 270)]
    assert [s.accept for s in segments] == [True, True]
    count = np.ones(len(keypoints), dtype=int)
    count[200:] = 2  # a second person walks in: the last segment is too short
    segments = segment_track(keypoints=keypoints, confidence=confidence, frame_size=FRAME, fps=FPS,
                             person_count=count)
    assert [(s.start, s.stop, s.accept) for s in segments] == [(0, 150, True), (180, 200, False)]
    assert segments[1].failed == ("duration_min",)


def test_bad_inputs_raise_clear_errors():
    keypoints, confidence = _track(3.0)
    with pytest.raises(ValueError, match=r"keypoints must be \(T, K, 2\)"):
        _judge(keypoints[..., 0], confidence)
    with pytest.raises(ValueError, match="confidence must be"):
        _judge(keypoints, confidence[:, :5])
    with pytest.raises(ValueError, match="empty"):
        _judge(keypoints[:0], confidence[:0])
    with pytest.raises(ValueError, match="person_count"):
        _judge(keypoints, confidence, person_count=np.ones(3))
    with pytest.raises(ValueError, match="fps"):
        filter_clip(keypoints=keypoints, confidence=confidence, frame_size=FRAME, fps=0.0)
    with pytest.raises(ValueError, match="frame_size"):
        filter_clip(keypoints=keypoints, confidence=confidence, frame_size=(0, 640), fps=FPS)

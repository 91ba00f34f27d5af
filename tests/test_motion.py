"""HMI-Synth motions: seeded, labelled by the parts that really move, countable."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import find_peaks
from scipy.spatial.transform import Rotation

from macm_core.body.limits import body_pose_bounds
from macm_core.body.skeleton import JOINT_INDEX, JOINT_NAMES
from macm_core.body.smpl import ProceduralSMPL
from macm_core.data.motion import (MotionClip, generate_motion, layout_segment,
                                   motion_from_segments)
from macm_core.data.vocabulary import (PAIRS, SIDED_PARTS, check_label, confusable_labels,
                                       is_counted, part_joints)

BODY = ProceduralSMPL()


def clip_of(part, side, action, direction=None, *, reps=2, speed="normally", fps=16.0,
            seed=0, lead=3, tail=4):
    start = 0 if action == "lower" else lead
    seg = layout_segment(part=part, side=side, action=action, direction=direction,
                         speed=speed, repetitions=reps, start_frame=start, fps=fps)
    return motion_from_segments([seg], seed=seed, num_frames=seg.end_frame + tail, fps=fps)


def all_labels():
    """Every (part, side, action, direction), both sides of sided parts."""
    for (part, action), directions in PAIRS.items():
        for direction in directions:
            for side in (("left", "right") if part in SIDED_PARTS else (None,)):
                yield part, side, action, direction


def local_rotations(clip):
    """(T, 23, 3, 3) local rotations of joints 1..23."""
    t = clip.num_frames
    return Rotation.from_rotvec(clip.body_pose.reshape(-1, 3).astype(np.float64)) \
        .as_matrix().reshape(t, 23, 3, 3)


def angular_speed(clip):
    """(T-1, 23) degrees per frame of every joint's local rotation."""
    rot = local_rotations(clip)
    rel = np.einsum("tjab,tjac->tjbc", rot[:-1], rot[1:])
    cos = (np.trace(rel, axis1=2, axis2=3) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def joints_fk(clip):
    out = BODY(global_orient=torch.from_numpy(clip.global_orient),
               body_pose=torch.from_numpy(clip.body_pose),
               betas=torch.from_numpy(clip.betas)[None], transl=torch.from_numpy(clip.transl))
    return out.joints.numpy()


# ---------------------------------------------------------------------------------
# seeding, shapes, labels
# ---------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.sampled_from([(16, 8.0), (32, 8.0), (64, 16.0)]))
def test_same_seed_same_clip_and_valid_labels(seed, size):
    num_frames, fps = size
    a = generate_motion(seed=seed, num_frames=num_frames, fps=fps)
    b = generate_motion(seed=seed, num_frames=num_frames, fps=fps)
    for name in ("global_orient", "body_pose", "transl", "betas"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == np.float32
    assert a.segments == b.segments
    assert a.body_pose.shape == (num_frames, 69) and a.transl.shape == (num_frames, 3)
    assert a.global_orient.shape == (num_frames, 3) and a.betas.shape == (10,)
    assert 1 <= len(a.segments) <= 3
    end = 0
    for seg in a.segments:
        check_label(part=seg.part, side=seg.side, action=seg.action, direction=seg.direction,
                    repetitions=seg.repetitions, speed=seg.speed)
        assert end <= seg.start_frame < seg.end_frame <= num_frames
        end = seg.end_frame
    lower, upper = (b.numpy() for b in body_pose_bounds())
    assert (a.body_pose >= lower - 1e-6).all() and (a.body_pose <= upper + 1e-6).all()


def test_different_seeds_differ():
    a = generate_motion(seed=1, num_frames=32, fps=8)
    b = generate_motion(seed=2, num_frames=32, fps=8)
    assert not np.array_equal(a.body_pose, b.body_pose)


# ---------------------------------------------------------------------------------
# the labelled part is the part that moves
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("part,side,action,direction", list(all_labels()))
def test_labelled_part_moves_most(part, side, action, direction):
    clip = clip_of(part, side, action, direction, reps=1 if not is_counted(action) else 2)
    seg = clip.segments[0]
    speed = angular_speed(clip)[seg.start_frame:seg.end_frame - 1].mean(0)   # (23,)
    if action == "turn":
        yaw = Rotation.from_rotvec(clip.global_orient).apply([0.0, 0.0, 1.0])[-1]
        want = 1.0 if direction == "left" else -1.0        # facing the body's old left = +x
        assert yaw[0] == pytest.approx(want, abs=0.05)
        return
    labelled = [JOINT_INDEX[name] - 1 for name in part_joints(part, side)]
    others = [j for j in range(23) if j not in labelled]
    assert JOINT_NAMES[int(speed.argmax()) + 1] in part_joints(part, side)
    assert speed[labelled].max() > 2.0 * speed[others].max()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_labelled_part_moves_most_in_random_clips(seed):
    clip = generate_motion(seed=seed, num_frames=64, fps=16)
    speed = angular_speed(clip)
    for seg in clip.segments:
        if seg.action == "turn":
            continue
        mean = speed[seg.start_frame:seg.end_frame - 1].mean(0)
        assert JOINT_NAMES[int(mean.argmax()) + 1] in part_joints(seg.part, seg.side)


# ---------------------------------------------------------------------------------
# repetitions can be counted back from the motion
# ---------------------------------------------------------------------------------

def count_repetitions(clip, seg):
    """Peaks of the main joint's angle away from its pose at the first repetition (the
    main joint: the one of the labelled part that turns most); for jumps, of the height."""
    span = slice(seg.rep_start_frame, seg.rep_end_frame)
    if seg.action == "jump":
        signal = clip.transl[span, 1].astype(np.float64)
    else:
        rot = local_rotations(clip)[span]
        joints = [JOINT_INDEX[name] - 1 for name in part_joints(seg.part, seg.side)]
        path = angular_speed(clip)[seg.rep_start_frame:seg.rep_end_frame - 1][:, joints].sum(0)
        main = joints[int(path.argmax())]
        rel = Rotation.from_matrix(np.einsum("ab,tac->tbc", rot[0, main], rot[:, main]))
        if seg.action == "shake_head":             # left-right swings: signed yaw
            signal = rel.as_rotvec()[:, 1]
        else:
            signal = rel.magnitude()
    signal = np.concatenate([[signal[0]], signal, [signal[0]]])
    peaks, _ = find_peaks(signal, prominence=0.3 * (signal.max() - signal.min()))
    return len(peaks)


COUNTED = [(part, side, action, direction) for part, side, action, direction in all_labels()
           if is_counted(action) and side != "right"]


@pytest.mark.parametrize("part,side,action,direction", COUNTED)
def test_repetitions_are_countable(part, side, action, direction):
    for reps, speed, fps in ((1, "normally", 16.0), (3, "quickly", 8.0), (4, "slowly", 16.0)):
        clip = clip_of(part, side, action, direction, reps=reps, speed=speed, fps=fps)
        assert count_repetitions(clip, clip.segments[0]) == reps, (reps, speed, fps)


def test_speeds_change_the_repetition_length_and_confusable_pairs_share_a_rhythm():
    frames = {speed: clip_of("hand", "left", "wave", speed=speed).segments[0].rep_frames
              for speed in ("slowly", "normally", "quickly")}
    assert frames["slowly"] > frames["normally"] > frames["quickly"]
    for action in ("bounce_ball", "tap"):
        hand = clip_of("hand", "left", action, reps=3).segments[0]
        foot = clip_of("foot", "left", action, reps=3).segments[0]
        assert (hand.start_frame, hand.rep_start_frame, hand.rep_frames, hand.end_frame) == \
               (foot.start_frame, foot.rep_start_frame, foot.rep_frames, foot.end_frame)
    assert ("foot", "left", "bounce_ball") in confusable_labels("hand", "left", "bounce_ball")
    assert ("hand", "right", "bounce_ball") in confusable_labels("hand", "left", "bounce_ball")


# ---------------------------------------------------------------------------------
# the ball
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("part,side", [("hand", "left"), ("hand", "right"), ("foot", "left"),
                                       ("foot", "right")])
def test_ball_follows_the_labelled_hand_or_foot(part, side):
    clip = clip_of(part, side, "bounce_ball", reps=3)
    seg, ball = clip.segments[0], clip.ball
    names = ball.joint_names
    inside = np.zeros(clip.num_frames, bool)
    inside[seg.start_frame:seg.end_frame] = True
    assert all(n == f"{side}_{part}" for n in np.array(names, dtype=object)[inside])
    assert all(n is None for n in np.array(names, dtype=object)[~inside])
    assert np.isnan(ball.phase[~inside]).all()
    phase = ball.phase[inside]
    assert phase.min() >= 0 and phase.max() <= 1 and phase[0] == 0
    on_floor, _ = find_peaks(np.concatenate([[0], ball.phase[seg.rep_start_frame:
                                                           seg.rep_end_frame], [0]]),
                             height=0.9)
    assert len(on_floor) == 3
    assert generate_motion(seed=0, num_frames=32, fps=8, held_out_pairs=[
        ("hand", "bounce_ball"), ("foot", "bounce_ball")]).ball is None


# ---------------------------------------------------------------------------------
# left is left, forward is forward (forward kinematics on the procedural body)
# ---------------------------------------------------------------------------------

def peak_frame(seg):
    return seg.rep_start_frame + seg.rep_frames // 2


@pytest.mark.parametrize("side,sign", [("left", 1.0), ("right", -1.0)])
def test_arm_and_leg_directions(side, sign):
    up = clip_of("arm", side, "raise", "up")
    j = joints_fk(up)[peak_frame(up.segments[0])]
    hand, head, shoulder = j[JOINT_INDEX[f"{side}_hand"]], j[JOINT_INDEX["head"]], \
        j[JOINT_INDEX[f"{side}_shoulder"]]
    assert hand[1] > head[1] + 0.2 and sign * hand[0] > 0
    forward = clip_of("arm", side, "raise", "forward")
    j = joints_fk(forward)[peak_frame(forward.segments[0])]
    assert j[JOINT_INDEX[f"{side}_hand"], 2] > shoulder[2] + 0.4
    wave = clip_of("hand", side, "wave")
    j = joints_fk(wave)[peak_frame(wave.segments[0])]
    assert j[JOINT_INDEX[f"{side}_hand"], 1] > j[JOINT_INDEX[f"{side}_shoulder"], 1] + 0.2
    assert sign * j[JOINT_INDEX[f"{side}_hand"], 0] > 0.15
    kick = clip_of("foot", side, "kick", "forward")
    j = joints_fk(kick)[peak_frame(kick.segments[0])]
    assert j[JOINT_INDEX[f"{side}_foot"], 2] > 0.5
    out = clip_of("leg", side, "step", "sideways")
    j0, j = joints_fk(out)[0], joints_fk(out)[peak_frame(out.segments[0])]
    assert sign * (j[JOINT_INDEX[f"{side}_foot"], 0] - j0[JOINT_INDEX[f"{side}_foot"], 0]) > 0.15


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("direction", ["clockwise", "counterclockwise"])
def test_arm_circles_turn_the_labelled_way_as_the_person_sees_it(side, direction):
    clip = clip_of("arm", side, "circle", direction, reps=1)
    seg = clip.segments[0]
    hand = joints_fk(clip)[seg.rep_start_frame:seg.rep_end_frame + 1, JOINT_INDEX[f"{side}_hand"]]
    h, v = -hand[:, 0], hand[:, 1]              # the person's view: right is -x, up is +y
    area = 0.5 * np.sum(h * np.roll(v, -1) - np.roll(h, -1) * v)
    assert (area < 0) == (direction == "clockwise")
    assert abs(area) > 0.01


def test_trunk_directions_and_whole_body():
    for direction, sign in (("left", 1.0), ("right", -1.0)):
        lean = clip_of("torso", None, "lean", direction)
        j = joints_fk(lean)
        move = j[peak_frame(lean.segments[0]), JOINT_INDEX["head"]] - j[0, JOINT_INDEX["head"]]
        assert sign * move[0] > 0.1
        twist = clip_of("torso", None, "twist", direction)
        j = joints_fk(twist)
        move = j[peak_frame(twist.segments[0]), JOINT_INDEX["right_shoulder"]] \
            - j[0, JOINT_INDEX["right_shoulder"]]
        assert sign * move[2] > 0.05          # turning left brings the right shoulder forward
    bend = clip_of("torso", None, "bend", "forward")
    j = joints_fk(bend)
    head = JOINT_INDEX["head"]
    assert j[peak_frame(bend.segments[0]), head, 2] > j[0, head, 2] + 0.2
    squat = clip_of("body", None, "squat", reps=1)
    j = joints_fk(squat)
    k = peak_frame(squat.segments[0])
    assert j[k, 0, 1] < j[0, 0, 1] - 0.2
    ankles = [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]]
    assert np.abs(j[k, ankles] - j[0, ankles]).max() < 0.05          # feet stay planted
    jump = clip_of("body", None, "jump", reps=1)
    j = joints_fk(jump)
    assert j[peak_frame(jump.segments[0]), ankles, 1].min() > j[0, ankles, 1].max() + 0.1


# ---------------------------------------------------------------------------------
# held-out compositions and bad input
# ---------------------------------------------------------------------------------

HELD = [("foot", "bounce_ball"), ("hand", "wave"), ("torso", "twist")]


def test_held_out_pairs_are_excluded_or_required():
    for seed in range(80):
        train = generate_motion(seed=seed, num_frames=32, fps=8, held_out_pairs=HELD)
        assert not any((s.part, s.action) in HELD for s in train.segments)
        test = generate_motion(seed=seed, num_frames=32, fps=8, held_out_pairs=HELD,
                               held_out="require")
        assert any((s.part, s.action) in HELD for s in test.segments)
    only_lower = generate_motion(seed=3, num_frames=64, fps=16, num_segments=3,
                                 held_out_pairs=[("arm", "lower")], held_out="require")
    assert only_lower.segments[0].action == "lower"


@pytest.mark.parametrize("kwargs,message", [
    (dict(held_out_pairs=[("foot", "wave")]), "not a \\(part, action\\) pair"),
    (dict(held_out_pairs=[], held_out="require"), "needs at least one pair"),
    (dict(held_out_pairs=[("hand", "wave")], held_out="only"), "held_out must be"),
    (dict(fps=0.5), "fps must be"),
    (dict(num_frames=1), "num_frames must be"),
    (dict(num_frames=3), "too short"),
    (dict(num_segments=4), "num_segments"),
    (dict(seed=-1), "seed must be"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    args = dict(seed=0, num_frames=32, fps=8.0) | kwargs
    with pytest.raises(ValueError, match=message):
        generate_motion(**args)


def test_bad_segments_raise_clear_errors():
    wave = layout_segment(part="hand", side="left", action="wave", direction=None,
                          speed="normally", repetitions=2, start_frame=0, fps=16)
    with pytest.raises(ValueError, match="before the previous segment ends"):
        motion_from_segments([wave, wave], seed=0, num_frames=64, fps=16)
    with pytest.raises(ValueError, match="do not match its labels"):
        motion_from_segments([wave], seed=0, num_frames=64, fps=8)
    with pytest.raises(ValueError, match="only 10 frames"):
        motion_from_segments([wave], seed=0, num_frames=10, fps=16)
    lower = layout_segment(part="arm", side="left", action="lower", direction="down",
                           speed="normally", repetitions=1, start_frame=wave.end_frame, fps=16)
    with pytest.raises(ValueError, match="only be the first segment"):
        motion_from_segments([wave, lower], seed=0, num_frames=64, fps=16)
    with pytest.raises(ValueError, match="side 'up' is not valid"):
        layout_segment(part="hand", side="up", action="wave", direction=None,
                       speed="normally", repetitions=2, start_frame=0, fps=16)
    with pytest.raises(ValueError, match="cannot 'kick'"):
        layout_segment(part="hand", side="left", action="kick", direction="forward",
                       speed="normally", repetitions=2, start_frame=0, fps=16)
    with pytest.raises(ValueError, match="one-shot"):
        layout_segment(part="body", side=None, action="turn", direction="left",
                       speed="normally", repetitions=2, start_frame=0, fps=16)
    with pytest.raises(ValueError, match="MotionClip.body_pose must"):
        MotionClip(global_orient=np.zeros((4, 3)), body_pose=np.zeros((4, 72)),
                   transl=np.zeros((4, 3)), betas=np.zeros(10), fps=8.0, segments=[])

"""Seeded, compositional SMPL motion with exact labels: the motions of HMI-Synth.

A clip is 1-3 labelled segments in a row (``Segment``: part, side, action, direction,
speed, repetitions, frames).  Each action is a smooth joint-angle trajectory of the
joints that perform it; every repetition is one clear cycle of that trajectory (one
bump of the main joint angle), so repetitions can be counted back from the motion.
Between and around the segments the body idles: it breathes and sways slightly, and
keeps the posture the segments leave (a turn stays turned).

Angles are built as per-joint Euler angles in degrees, composed as
``R = Rx(ax) @ Ry(ay) @ Rz(az)`` in the parent's frame (SMPL's local frames, which at
rest are the world's: x the body's left, y up, z forward).  Actions are written for the
LEFT side; the right side is their mirror image in the x = 0 plane, (ax, -ay, -az) and
transl x -> -x.  The resulting pose is clamped to ``macm_core.body.limits``; the
amplitudes are chosen to stay inside those limits, so the clamp is a safety net.

Usage::

    clip = generate_motion(seed=3, num_frames=32, fps=8)
    clip.body_pose.shape            # (32, 69)
    clip.segments[0].action         # e.g. "bounce_ball"

``transl`` is an offset from the standing position (zero = standing on the floor); the
dataset builder places the floor under the rest pose's feet.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..body.limits import clamp_body_pose
from ..body.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS
from .vocabulary import (OPENING_ACTIONS, PAIRS, REPETITIONS, SPEEDS, ball_joint,
                         check_label, is_counted, sides_for)

# ---------------------------------------------------------------------------------
# Labels and clips
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One labelled action of a clip, frames ``[start_frame, end_frame)``.

    The repetitions run over ``[rep_start_frame, rep_start_frame + repetitions *
    rep_frames)``; before and after them the part moves into and out of the action's
    posture (e.g. the arm goes up before waving).  Build one with ``layout_segment``.
    """

    part: str
    side: str | None
    action: str
    direction: str | None
    repetitions: int
    speed: str
    start_frame: int
    end_frame: int
    rep_start_frame: int
    rep_frames: int

    @property
    def rep_end_frame(self) -> int:
        return self.rep_start_frame + self.repetitions * self.rep_frames


@dataclass(kw_only=True)
class BallTrack:
    """Where a ball is, per frame, for the ball actions.

    joint_index: (T,) int64, SMPL joint the ball follows, -1 where there is no ball
    phase: (T,) float32 in [0, 1], 0 = at that joint, 1 = on the floor below it; NaN
        where there is no ball.  The ball's centre is meant to be placed on the line
        from the joint down to the floor point below it, at this fraction.
    """

    joint_index: np.ndarray
    phase: np.ndarray

    @property
    def joint_names(self) -> list[str | None]:
        """(T,) joint name per frame, or None where there is no ball."""
        return [JOINT_NAMES[i] if i >= 0 else None for i in self.joint_index.tolist()]


@dataclass(kw_only=True)
class MotionClip:
    """A posed SMPL sequence with its labels.

    global_orient: (T, 3) float32 axis-angle of the pelvis
    body_pose: (T, 69) float32 axis-angle of joints 1..23 in SMPL order
    transl: (T, 3) float32 metres, offset from the standing position
    betas: (10,) float32 body shape
    fps: frames per second
    segments: the labelled actions, in time order, not overlapping
    ball: per-frame ball description, or None when no segment has a ball
    seed: the seed that made the clip (None when built by hand)
    """

    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    betas: np.ndarray
    fps: float
    segments: list[Segment]
    ball: BallTrack | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        t = self.body_pose.shape[0] if self.body_pose.ndim == 2 else -1
        for name, shape in (("global_orient", (t, 3)), ("body_pose", (t, 69)),
                            ("transl", (t, 3)), ("betas", (10,))):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != shape:
                raise ValueError(f"MotionClip.{name} must be a numpy array of shape {shape} "
                                 f"(T = frames), got {getattr(value, 'shape', type(value))}")

    @property
    def num_frames(self) -> int:
        return int(self.body_pose.shape[0])


# ---------------------------------------------------------------------------------
# Timing: seconds per repetition, posture ramps, speeds
# ---------------------------------------------------------------------------------

# seconds of one repetition at normal speed (one-shot actions: the whole action)
REP_SECONDS: dict[str, float] = {
    "raise": 1.2, "lower": 1.0, "wave": 0.6, "circle": 1.0, "push": 0.9, "punch": 0.6,
    "kick": 0.9, "step": 1.0, "stomp": 0.8, "tap": 0.5, "bounce_ball": 0.7, "bend": 1.4,
    "lean": 1.2, "twist": 1.2, "squat": 1.5, "jump": 0.8, "turn": 1.2, "nod": 0.7,
    "shake_head": 0.8,
}
# seconds to move into the action's posture (and out of it again); 0 = no posture
RAMP_SECONDS: dict[str, float] = {
    "wave": 0.4, "circle": 0.4, "push": 0.35, "punch": 0.3, "tap": 0.35,
    "bounce_ball": 0.35,
}
SPEED_FACTOR: dict[str, float] = {"slowly": 1.5, "normally": 1.0, "quickly": 0.65}
MIN_REP_FRAMES = 4  # fewer frames per cycle cannot show one clear bump
MIN_FPS, MAX_FPS = 4.0, 240.0


def rep_frames_for(action: str, speed: str, fps: float) -> int:
    """Frames of one repetition; slow > normal > quick by at least 2 frames at any fps."""
    if action not in REP_SECONDS:
        raise ValueError(f"unknown action {action!r}: choose one of {', '.join(REP_SECONDS)}")
    if speed not in SPEED_FACTOR:
        raise ValueError(f"unknown speed {speed!r}: choose one of {', '.join(SPEED_FACTOR)}")
    _check_fps(fps)
    base = REP_SECONDS[action] * fps
    quick = max(MIN_REP_FRAMES, round(base * SPEED_FACTOR["quickly"]))
    normal = max(quick + 2, round(base))
    slow = max(normal + 2, round(base * SPEED_FACTOR["slowly"]))
    return {"quickly": quick, "normally": normal, "slowly": slow}[speed]


def ramp_frames_for(action: str, fps: float) -> int:
    """Frames to move into (and out of) the action's posture; 0 for posture-free actions."""
    seconds = RAMP_SECONDS.get(action, 0.0)
    return 0 if seconds == 0 else max(2, round(seconds * fps))


def layout_segment(*, part: str, side: str | None, action: str, direction: str | None,
                   speed: str, repetitions: int, start_frame: int, fps: float) -> Segment:
    """A ``Segment`` starting at ``start_frame`` with the frames its labels need."""
    check_label(part=part, side=side, action=action, direction=direction,
                repetitions=repetitions, speed=speed)
    _check_fps(fps)
    if isinstance(start_frame, bool) or not isinstance(start_frame, int) or start_frame < 0:
        raise ValueError(f"start_frame must be an int >= 0, got {start_frame!r}")
    ramp = ramp_frames_for(action, fps)
    per_rep = rep_frames_for(action, speed, fps)
    length = 2 * ramp + repetitions * per_rep
    return Segment(part=part, side=side, action=action, direction=direction,
                   repetitions=repetitions, speed=speed, start_frame=start_frame,
                   end_frame=start_frame + length, rep_start_frame=start_frame + ramp,
                   rep_frames=per_rep)


def _check_fps(fps: float) -> None:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) \
            or not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"fps must be a number in [{MIN_FPS}, {MAX_FPS}], got {fps!r}")


# ---------------------------------------------------------------------------------
# Per-segment clocks and tracks
# ---------------------------------------------------------------------------------


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class _Clock:
    """Time bases of one segment, each (L,) over its frames.

    env: 0 at the first frame, 1 from the first repetition to the last, back towards 0
    bump: sin^2(pi u) during the repetitions (one bump per repetition), 0 elsewhere
    osc: sin(2 pi u) during the repetitions, 0 elsewhere
    u: phase within the current repetition in [0, 1); NaN outside the repetitions
    cycles: repetitions done so far (u plus the repetition's index); NaN outside
    progress: k / (L - 1), for one-shot actions
    """

    env: np.ndarray
    bump: np.ndarray
    osc: np.ndarray
    u: np.ndarray
    cycles: np.ndarray
    progress: np.ndarray

    def shape(self, fn) -> np.ndarray:
        """fn(u) during the repetitions, 0 elsewhere; fn must be 0 at u = 0."""
        inside = ~np.isnan(self.u)
        out = np.zeros_like(self.u)
        out[inside] = fn(self.u[inside])
        return out


def _clock(seg: Segment) -> _Clock:
    length = seg.end_frame - seg.start_frame
    ramp = seg.rep_start_frame - seg.start_frame
    k = np.arange(length, dtype=np.float64)
    env = np.ones(length)
    if ramp:
        env[:ramp] = _smoothstep(k[:ramp] / ramp)
        env[length - ramp:] = _smoothstep((length - k[length - ramp:]) / ramp)
    reps = slice(ramp, ramp + seg.repetitions * seg.rep_frames)
    cycles = np.full(length, np.nan)
    cycles[reps] = (k[reps] - ramp) / seg.rep_frames
    u = cycles % 1.0
    inside = ~np.isnan(u)
    bump = np.where(inside, np.sin(np.pi * np.nan_to_num(u)) ** 2, 0.0)
    osc = np.where(inside, np.sin(2 * np.pi * np.nan_to_num(u)), 0.0)
    progress = k / max(length - 1, 1)
    return _Clock(env=env, bump=bump, osc=osc, u=u, cycles=cycles, progress=progress)


class _Track:
    """What one segment adds to the clip, over the segment's L frames.

    angles: (L, 24, 3) Euler degrees added per joint; transl: (L, 3) metres in the body
    frame; yaw: (L,) degrees about y; ball: (L,) phase or None.  Limb helpers take the
    left-side joint name without prefix and mirror it for the right side.
    """

    def __init__(self, *, length: int, side: str | None):
        self.side = side
        self.angles = np.zeros((length, NUM_JOINTS, 3))
        self.transl = np.zeros((length, 3))
        self.yaw = np.zeros(length)
        self.ball: np.ndarray | None = None

    def joint(self, name: str, *, ax=0.0, ay=0.0, az=0.0) -> None:
        j = JOINT_INDEX[name]
        self.angles[:, j, 0] += ax
        self.angles[:, j, 1] += ay
        self.angles[:, j, 2] += az

    def limb(self, name: str, *, ax=0.0, ay=0.0, az=0.0, side: str | None = None) -> None:
        side = side or self.side
        sign = 1.0 if side == "left" else -1.0
        self.joint(f"{side}_{name}", ax=ax, ay=sign * ay, az=sign * az)

    def both(self, name: str, *, ax=0.0, ay=0.0, az=0.0) -> None:
        for side in ("left", "right"):
            self.limb(name, ax=ax, ay=ay, az=az, side=side)

    def shift(self, *, x=0.0, y=0.0, z=0.0) -> None:
        sign = -1.0 if self.side == "right" else 1.0
        self.transl[:, 0] += sign * x
        self.transl[:, 1] += y
        self.transl[:, 2] += z


# Leg bone lengths of the procedural body's mean shape, metres (hip-knee, knee-ankle);
# used to keep the feet on the floor while the legs bend.
_THIGH, _SHIN = 0.36, 0.415


def _planted_legs(t: _Track, hip_flex: np.ndarray, knee_flex: np.ndarray) -> None:
    """Bend both legs (hip flexion, knee flexion in degrees, >= 0) with the feet flat.

    The ankles take up the shin's tilt and the pelvis moves down and back so the
    ankles stay where they were.
    """
    h = np.radians(-hip_flex)                     # hip x rotation (negative = forward)
    s = np.radians(-hip_flex + knee_flex)         # shin's x rotation in the world
    t.both("hip", ax=-hip_flex)
    t.both("knee", ax=knee_flex)
    t.both("ankle", ax=-(knee_flex - hip_flex))
    ankle_y = -_THIGH * np.cos(h) - _SHIN * np.cos(s)
    ankle_z = -_THIGH * np.sin(h) - _SHIN * np.sin(s)
    t.shift(y=-(ankle_y + _THIGH + _SHIN), z=-ankle_z)


# ---------------------------------------------------------------------------------
# The actions, written for the left side.  a = amplitude factor (~1), c = clock.
# ---------------------------------------------------------------------------------


def _raise(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    if seg.part == "leg":
        if seg.direction == "forward":       # knee lift
            t.limb("hip", ax=-70 * b)
            t.limb("knee", ax=80 * b)
        else:                                # leg out to the side
            t.limb("hip", az=38 * b)
        return
    if seg.direction == "forward":           # arm swings forward to horizontal
        t.limb("shoulder", ax=-85 * b)
    elif seg.direction == "sideways":        # arm out to the side, horizontal
        t.limb("shoulder", az=72 * b)
    else:                                    # arm up overhead, via the side
        t.limb("shoulder", az=150 * b)
    t.limb("elbow", ay=10 * b)               # straighten the elbow


def _lower(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    held = 1.0 - _smoothstep(c.progress)     # 1 at the start (and held before), 0 at the end
    t.limb("shoulder", az=72 * held)
    t.limb("elbow", ay=10 * held)


def _wave(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    # upper arm out to the side, turned so the forearm points up; the forearm swings
    t.limb("shoulder", ax=-78 * c.env, az=72 * c.env)
    t.limb("elbow", ay=-78 * c.env - 32 * a * c.bump)


def _circle(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    # arm straight forward, the hand draws a circle in the frontal plane starting at
    # its lowest point; clockwise as the person sees it is bottom -> left -> top -> right
    # for the left arm, so the mirrored right arm needs the other sense.
    sense = 1.0 if (seg.direction == "clockwise") == (seg.side == "left") else -1.0
    radius = 22 * a
    phi = c.shape(lambda u: 2 * np.pi * u)
    inside = ~np.isnan(c.u)
    t.limb("shoulder", ax=np.where(inside, -radius * (1 - np.cos(phi)), 0.0),
           ay=-80 * c.env + np.where(inside, sense * radius * np.sin(phi), 0.0),
           az=72 * c.env)


def _push(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    if seg.direction == "forward":           # hands at the chest, then the arm extends
        t.limb("shoulder", ax=-45 * c.env - 40 * b)
        t.limb("elbow", ay=-100 * c.env + 90 * b)
    else:                                    # hand by the shoulder, then pressed up
        top = _PRESS_TOP - _PRESS_START
        t.limb("shoulder", ax=-70 * c.env + top[0] * b, ay=top[1] * b, az=72 * c.env + top[2] * b)
        t.limb("elbow", ay=-80 * c.env + 70 * b)


# Press up: the upper arm, out to the side and turned so the forearm points up, is
# raised 45 degrees in the frontal plane.  In XYZ Euler angles that raise is not a
# single angle, so the start and end of the press are converted once here.
_PRESS_START = np.array([-70.0, 0.0, 0.0])
_PRESS_TOP = Rotation.from_euler("ZX", [45, -70], degrees=True).as_euler("XYZ", degrees=True)


def _punch(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    t.limb("shoulder", ax=-30 * c.env - 55 * b, az=8 * c.env)
    t.limb("elbow", ay=-115 * c.env + 105 * b)


def _tap(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    if seg.part == "hand":                   # forearm forward, the hand taps down
        t.limb("shoulder", ax=-15 * c.env)
        t.limb("elbow", ay=-70 * c.env + 10 * b)
        t.limb("wrist", ay=25 * b)
    else:                                    # foot a little forward, the toes tap up
        t.limb("hip", ax=-8 * c.env)
        t.limb("knee", ax=8 * c.env)
        t.limb("ankle", ax=-21 * b)


def _bounce_ball(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    # the ball is at the hand / foot at the start of each repetition and on the floor at
    # its middle; hand and foot rise while the ball is down: the same rhythm for both
    b = c.bump * a
    if seg.part == "hand":
        t.limb("shoulder", ax=-10 * c.env, az=12 * c.env)
        t.limb("elbow", ay=-55 * c.env - 35 * b)
        t.limb("wrist", ay=-20 * b)
    else:
        t.limb("hip", ax=-20 * c.env - 20 * b)
        t.limb("knee", ax=35 * c.env + 30 * b)
    t.ball = np.where(np.isnan(c.u), 0.0, c.bump)


def _kick(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    chamber = c.shape(lambda u: np.where(u < 0.5, np.sin(2 * np.pi * u) ** 2, 0.0)) * a
    if seg.direction == "forward":
        t.limb("hip", ax=-65 * b)
        t.limb("knee", ax=60 * chamber)
        t.limb("ankle", ax=20 * b)
    else:
        t.limb("hip", ax=-10 * b, az=44 * b)
        t.limb("knee", ax=30 * chamber)


def _step(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    if seg.direction == "forward":
        t.limb("hip", ax=-30 * b)
        t.shift(z=0.08 * b)
    elif seg.direction == "backward":
        t.limb("hip", ax=20 * b)
        t.shift(z=-0.06 * b)
    else:
        t.limb("hip", az=25 * b)
        t.shift(x=0.07 * b)
    t.limb("knee", ax=20 * b)


def _stomp(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    # lift slowly (60 % of the cycle), strike down fast
    lift = c.shape(lambda u: np.where(u < 0.6, np.sin(np.pi * u / 1.2) ** 2,
                                      np.cos(np.pi * (u - 0.6) / 0.8) ** 2)) * a
    t.limb("hip", ax=-40 * lift)
    t.limb("knee", ax=75 * lift)
    t.limb("ankle", ax=15 * lift)


def _nod(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    t.joint("neck", ax=15 * a * c.bump)
    t.joint("head", ax=20 * a * c.bump)


def _shake_head(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    t.joint("neck", ay=15 * a * c.osc)
    t.joint("head", ay=20 * a * c.osc)


def _bend(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    if seg.direction == "forward":
        t.joint("spine1", ax=20 * b)
        t.joint("spine2", ax=20 * b)
        t.joint("spine3", ax=15 * b)
    else:
        t.joint("spine1", ax=-10 * b)
        t.joint("spine2", ax=-8 * b)
        t.joint("spine3", ax=-6 * b)


def _lean(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    sign = -1.0 if seg.direction == "left" else 1.0   # -z tilts the trunk to the left
    for name in ("spine1", "spine2", "spine3"):
        t.joint(name, az=sign * 10 * a * c.bump)


def _twist(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    sign = 1.0 if seg.direction == "left" else -1.0    # +y turns the chest to the left
    for name in ("spine1", "spine2", "spine3"):
        t.joint(name, ay=sign * 12 * a * c.bump)


def _squat(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    b = c.bump * a
    _planted_legs(t, hip_flex=80 * b, knee_flex=100 * b)
    t.joint("spine1", ax=15 * b)


def _jump(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    # per repetition: flight over the middle 40 %; the legs crouch before the first
    # take-off, after the last landing, and once (land-and-launch) between flights
    w = c.cycles                                   # repetitions done so far, NaN outside
    inside = ~np.isnan(w)
    w0 = np.nan_to_num(w)
    frac = w0 % 1.0
    in_flight = inside & (frac >= 0.3) & (frac <= 0.7)
    flight = np.where(in_flight, np.sin(np.pi * (frac - 0.3) / 0.4), 0.0)
    last = seg.repetitions - 0.3
    crouch = np.where(w0 < 0.3, np.sin(np.pi * w0 / 0.3) ** 2,
                      np.where(w0 > last, np.sin(np.pi * (w0 - last) / 0.3) ** 2,
                               np.sin(np.pi * ((w0 - 0.7) % 1.0) / 0.6) ** 2))
    crouch = np.where(inside & ~in_flight, crouch, 0.0)
    _planted_legs(t, hip_flex=35 * crouch, knee_flex=55 * crouch)
    t.both("ankle", ax=20 * flight)
    t.shift(y=0.22 * a * flight)


def _turn(t: _Track, c: _Clock, seg: Segment, a: float) -> None:
    sign = 1.0 if seg.direction == "left" else -1.0    # +yaw turns the body to its left
    t.yaw += sign * 90.0 * _smoothstep(c.progress)
    t.both("knee", ax=10 * np.sin(np.pi * c.progress) ** 2)


_TRAJECTORIES = {
    "raise": _raise, "lower": _lower, "wave": _wave, "circle": _circle, "push": _push,
    "punch": _punch, "kick": _kick, "step": _step, "stomp": _stomp, "tap": _tap,
    "bounce_ball": _bounce_ball, "bend": _bend, "lean": _lean, "twist": _twist,
    "squat": _squat, "jump": _jump, "turn": _turn, "nod": _nod, "shake_head": _shake_head,
}
_HOLD_BEFORE = frozenset({"lower"})   # the first frame's pose is held from frame 0
_HOLD_AFTER = frozenset({"turn"})     # the last frame's pose is held to the clip's end


# ---------------------------------------------------------------------------------
# Rest posture, idling, and putting a clip together
# ---------------------------------------------------------------------------------


def _rest_and_idle(rng: np.random.Generator, num_frames: int, fps: float):
    """Standing posture plus breathing and sway: Euler angles (T, 24, 3), roll (T,),
    transl (T, 3)."""
    t = np.arange(num_frames) / fps
    track = _Track(length=num_frames, side="left")
    arm_down = rng.uniform(68, 76)
    elbow = rng.uniform(8, 18)
    stance = rng.uniform(1, 5)
    track.both("shoulder", az=-arm_down)
    track.both("elbow", ay=-elbow)
    track.both("hip", az=stance)
    breathe = rng.uniform(0.6, 1.4) * np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t
                                             + rng.uniform(0, 2 * np.pi))
    track.joint("spine3", ax=breathe)
    track.joint("spine1", ax=0.6 * breathe)
    sway_phase = 2 * np.pi * rng.uniform(0.12, 0.25) * t + rng.uniform(0, 2 * np.pi)
    roll = rng.uniform(0.3, 1.0) * np.sin(sway_phase)
    track.transl[:, 0] += rng.uniform(0.003, 0.01) * np.sin(sway_phase)
    track.joint("neck", ay=rng.uniform(0, 2.0) * np.sin(2 * np.pi * 0.1 * t
                                                        + rng.uniform(0, 2 * np.pi)))
    return track.angles, roll, track.transl


def _check_segments(segments: Sequence[Segment], *, num_frames: int, fps: float) -> None:
    if not segments:
        raise ValueError("a clip needs at least one segment")
    previous_end = 0
    for i, seg in enumerate(segments):
        if not isinstance(seg, Segment):
            raise TypeError(f"segments[{i}] must be a Segment (use layout_segment), "
                            f"got {type(seg).__name__}")
        expected = layout_segment(part=seg.part, side=seg.side, action=seg.action,
                                  direction=seg.direction, speed=seg.speed,
                                  repetitions=seg.repetitions, start_frame=seg.start_frame,
                                  fps=fps)
        if expected != seg:
            raise ValueError(f"segments[{i}] frames do not match its labels at fps={fps}: "
                             f"build it with layout_segment(..., fps={fps})")
        if seg.start_frame < previous_end:
            raise ValueError(f"segments[{i}] starts at frame {seg.start_frame}, before the "
                             f"previous segment ends ({previous_end}); segments must be in "
                             "time order and must not overlap")
        if seg.action in OPENING_ACTIONS and i > 0:
            raise ValueError(f"{seg.action!r} holds its posture from frame 0, so it can "
                             f"only be the first segment (it is segments[{i}])")
        previous_end = seg.end_frame
    if previous_end > num_frames:
        raise ValueError(f"the segments end at frame {previous_end} but the clip has only "
                         f"{num_frames} frames; raise num_frames or shorten the segments")


def motion_from_segments(segments: Sequence[Segment], *, seed: int, num_frames: int,
                         fps: float) -> MotionClip:
    """The clip that performs the given segments; ``seed`` drives shape, posture, idling
    and amplitudes (same seed and segments -> identical arrays)."""
    _check_seed(seed)
    _check_num_frames(num_frames)
    _check_fps(fps)
    _check_segments(segments, num_frames=num_frames, fps=fps)
    return _synthesize(list(segments), rng=np.random.default_rng(seed), num_frames=num_frames,
                       fps=fps, seed=seed)


def _synthesize(segments: list[Segment], *, rng: np.random.Generator, num_frames: int,
                fps: float, seed: int) -> MotionClip:
    betas = np.clip(rng.normal(0.0, 0.7, 10), -2.0, 2.0)
    angles, roll, transl_body = _rest_and_idle(rng, num_frames, fps)
    yaw = np.zeros(num_frames)
    ball_joint_index = np.full(num_frames, -1, dtype=np.int64)
    ball_phase = np.full(num_frames, np.nan)
    for seg in segments:
        track = _Track(length=seg.end_frame - seg.start_frame, side=seg.side)
        _TRAJECTORIES[seg.action](track, _clock(seg), seg, float(rng.uniform(0.85, 1.1)))
        span = slice(seg.start_frame, seg.end_frame)
        angles[span] += track.angles
        transl_body[span] += track.transl
        yaw[span] += track.yaw
        if seg.action in _HOLD_BEFORE:
            angles[:seg.start_frame] += track.angles[0]
            transl_body[:seg.start_frame] += track.transl[0]
            yaw[:seg.start_frame] += track.yaw[0]
        if seg.action in _HOLD_AFTER:
            angles[seg.end_frame:] += track.angles[-1]
            transl_body[seg.end_frame:] += track.transl[-1]
            yaw[seg.end_frame:] += track.yaw[-1]
        if track.ball is not None:
            ball_joint_index[span] = JOINT_INDEX[ball_joint(seg.part, seg.side)]
            ball_phase[span] = track.ball
    local = Rotation.from_euler("XYZ", angles[:, 1:].reshape(-1, 3), degrees=True)
    body_pose = local.as_rotvec().reshape(num_frames, 69)
    body_pose = clamp_body_pose(torch.from_numpy(body_pose)).numpy()
    root = Rotation.from_euler("YXZ", np.stack([yaw, np.zeros_like(yaw), roll], 1), degrees=True)
    heading = Rotation.from_euler("y", yaw[:, None], degrees=True)
    transl = heading.apply(transl_body)
    ball = None
    if (ball_joint_index >= 0).any():
        ball = BallTrack(joint_index=ball_joint_index, phase=ball_phase.astype(np.float32))
    return MotionClip(global_orient=root.as_rotvec().astype(np.float32),
                      body_pose=body_pose.astype(np.float32), transl=transl.astype(np.float32),
                      betas=betas.astype(np.float32), fps=float(fps), segments=segments,
                      ball=ball, seed=seed)


# ---------------------------------------------------------------------------------
# Sampling labelled clips
# ---------------------------------------------------------------------------------

HELD_OUT_MODES = ("exclude", "require")


def generate_motion(*, seed: int, num_frames: int, fps: float, num_segments: int | None = None,
                    held_out_pairs: Collection[tuple[str, str]] = (),
                    held_out: str = "exclude") -> MotionClip:
    """A random labelled clip; the same arguments give identical arrays and labels.

    num_segments: 1-3, or None to draw it (fewer are used when the clip is too short).
    held_out_pairs: (part, action) pairs of a held-out-composition split; with
        ``held_out="exclude"`` no segment uses them (training clips), with
        ``held_out="require"`` at least one segment does (held-out test clips).
    """
    _check_seed(seed)
    _check_num_frames(num_frames)
    _check_fps(fps)
    if num_segments is not None and (isinstance(num_segments, bool)
                                     or num_segments not in (1, 2, 3)):
        raise ValueError(f"num_segments must be 1, 2, 3 or None, got {num_segments!r}")
    held = _check_held_out(held_out_pairs, held_out)
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 4)) if num_segments is None else num_segments
    segments = _sample_segments(rng, count=count, num_frames=num_frames, fps=fps,
                                held=held, held_out=held_out)
    return _synthesize(segments, rng=rng, num_frames=num_frames, fps=fps, seed=seed)


_DRAWS = 4  # full draws of `count` segments before dropping segments to make them fit


def _sample_segments(rng: np.random.Generator, *, count: int, num_frames: int, fps: float,
                     held: frozenset, held_out: str) -> list[Segment]:
    """Draw ``count`` segments (labels, speed, repetitions uniformly) up to ``_DRAWS``
    times until they fit the clip with 1-frame gaps; if the last draw does not fit, drop
    its last optional segments until it does.  A single segment that still does not fit
    gets a speed and count drawn from those that fit.  (Retrying keeps multi-segment
    clips common; dropping keeps high counts and slow speeds common in short clips.)"""
    free = [p for p in PAIRS if p not in held] if held_out == "exclude" else list(PAIRS)
    pools = {name: [p for p in pool if _length(_labels_of(p, rng=None), "quickly", 1, fps)
                    <= num_frames]
             for name, pool in (("free", free), ("held", sorted(held)))}
    if not pools["free"] or (held_out == "require" and not pools["held"]):
        raise ValueError(f"num_frames={num_frames} at fps={fps} is too short for any allowed "
                         "action; give the clip more frames")
    for _ in range(_DRAWS):
        draw, required = _draw(rng, count, pools, require=held_out == "require")
        if sum(_length(*d, fps) for d in draw) + len(draw) - 1 <= num_frames:
            break
    while len(draw) > 1 and sum(_length(*d, fps) for d in draw) + len(draw) - 1 > num_frames:
        drop = max(j for j in range(len(draw)) if j != required)
        draw.pop(drop)
        required = required - 1 if 0 <= drop < required else required
    if sum(_length(*d, fps) for d in draw) + len(draw) - 1 > num_frames:
        labels = draw[0][0]
        reps_options = REPETITIONS if is_counted(labels["action"]) else (1,)
        fits = [(speed, reps) for speed in SPEEDS for reps in reps_options
                if _length(labels, speed, reps, fps) <= num_frames]
        draw = [(labels, *fits[int(rng.integers(len(fits)))])]
    return _place(rng, draw, [_length(*d, fps) for d in draw], num_frames=num_frames, fps=fps)


def _draw(rng: np.random.Generator, n: int, pools: dict, *, require: bool):
    """n (labels, speed, repetitions) triples and the index of the held-out one (-1)."""
    only_opening = all(p[1] in OPENING_ACTIONS for p in pools["held"])
    required_slot = (0 if only_opening else int(rng.integers(n))) if require else -1
    out, required = [], -1
    for i in range(n):
        pool = pools["held"] if i == required_slot else pools["free"]
        if out:                                  # opening actions only open a clip
            pool = [p for p in pool if p[1] not in OPENING_ACTIONS]
        if not pool:
            continue
        required = len(out) if i == required_slot else required
        labels = _labels_of(pool[int(rng.integers(len(pool)))], rng=rng)
        speed = SPEEDS[int(rng.integers(len(SPEEDS)))]
        reps = int(rng.choice(REPETITIONS)) if is_counted(labels["action"]) else 1
        out.append((labels, speed, reps))
    return out, required


def _place(rng: np.random.Generator, draw: list, lengths: list[int], *, num_frames: int,
           fps: float) -> list[Segment]:
    """Lay the drawn segments out in order, spreading the spare frames over the lead-in,
    the gaps and the tail; an opening action starts at frame 0."""
    spare = num_frames - sum(lengths) - (len(draw) - 1)
    cuts = np.sort(rng.integers(0, spare + 1, size=len(draw)))
    extra = np.diff(np.concatenate([[0], cuts]))
    segments, start = [], 0
    for j, (labels, speed, reps) in enumerate(draw):
        start += int(extra[j]) + (1 if j else 0)
        if j == 0 and labels["action"] in OPENING_ACTIONS:
            start = 0
        seg = layout_segment(**labels, speed=speed, repetitions=reps, start_frame=start, fps=fps)
        segments.append(seg)
        start = seg.end_frame
    return segments


def _labels_of(pair: tuple[str, str], *, rng: np.random.Generator | None) -> dict:
    part, action = pair
    sides, directions = sides_for(part), PAIRS[pair]
    pick = (lambda seq: seq[0]) if rng is None else (lambda seq: seq[int(rng.integers(len(seq)))])
    return {"part": part, "side": pick(sides), "action": action, "direction": pick(directions)}


def _length(labels: dict, speed: str, reps: int, fps: float) -> int:
    return layout_segment(**labels, speed=speed, repetitions=reps, start_frame=0,
                          fps=fps).end_frame


def _check_held_out(pairs: Collection[tuple[str, str]], mode: str) -> frozenset:
    if mode not in HELD_OUT_MODES:
        raise ValueError(f"held_out must be one of {HELD_OUT_MODES}, got {mode!r}")
    held = set()
    for pair in pairs:
        pair = tuple(pair)
        if pair not in PAIRS:
            raise ValueError(f"held-out pair {pair!r} is not a (part, action) pair of the "
                             f"vocabulary; valid pairs: {sorted(PAIRS)}")
        held.add(pair)
    if mode == "require" and not held:
        raise ValueError("held_out='require' needs at least one pair in held_out_pairs")
    if mode == "exclude" and held == set(PAIRS):
        raise ValueError("held_out_pairs excludes every pair; leave some for training clips")
    return frozenset(held)


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _check_num_frames(num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) \
            or num_frames < 2:
        raise ValueError(f"num_frames must be an int >= 2, got {num_frames!r}")

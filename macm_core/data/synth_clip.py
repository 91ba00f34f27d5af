"""One HMI-Synth clip: labelled SMPL-format motion, posed, placed before a camera.

``make_clip`` turns a seed into everything about a clip except its pixels: the motion
and its labels (``generate_motion``), the posed joints (forward kinematics of the
procedural SMPL body), the ball's centre for the ball actions, and a camera.
``render_clip`` then renders the frames and the motion view on demand; both are
deterministic functions of the clip's seed, so pixels need not be stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

import numpy as np
import torch

from ..body.smpl import ProceduralSMPL
from ..render import Camera, Prop, RenderOutput, SceneConfig, inject_occlusion, render_scene, sample_camera
from .motion import MotionClip, generate_motion

BALL_RADIUS_M = 0.11
BALL_COLOUR = (0.85, 0.38, 0.10)
SOLE_BELOW_ANKLE_M = 0.06
# independent random streams of one clip, derived from its seed
_CAMERA_STREAM, _SCENE_STREAM, _OCCLUSION_STREAM = 1, 2, 3


@dataclass(kw_only=True)
class SynthClip:
    """A clip without pixels.

    joints: (T, 24, 3) float32 world metres; radii: (24,) float32 capsule radius per bone;
    ball_centres: (T, 3) float32, NaN in frames without a ball (None: no ball at all).
    """

    seed: int
    motion: MotionClip
    joints: np.ndarray
    radii: np.ndarray
    camera: Camera
    ball_centres: np.ndarray | None


def stream(seed: int, which: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 16 + which)


def ball_centres(motion: MotionClip, joints: np.ndarray) -> np.ndarray | None:
    """(T, 3) centre of the bounced ball: on the line from its joint down to the floor."""
    if motion.ball is None:
        return None
    floor_y = float(joints[..., 1].min()) - SOLE_BELOW_ANKLE_M
    frames = np.arange(motion.num_frames)
    index = motion.ball.joint_index
    centres = np.full((motion.num_frames, 3), np.nan, dtype=np.float32)
    has = index >= 0
    anchor = joints[frames[has], index[has]]
    ground = floor_y + BALL_RADIUS_M
    phase = motion.ball.phase[has][:, None]
    below = anchor - np.array([0.0, BALL_RADIUS_M, 0.0], dtype=np.float32)  # ball under the hand/foot
    on_floor = np.concatenate([anchor[:, :1], np.full_like(anchor[:, :1], ground), anchor[:, 2:]], axis=1)
    centres[has] = (1 - phase) * below + phase * on_floor
    return centres


def make_clip(seed: int, *, num_frames: int, fps: float, image_size: int,
              held_out_pairs: Collection[tuple[str, str]] = (), held_out: str = "exclude",
              body: ProceduralSMPL | None = None) -> SynthClip:
    """Everything about one clip but its pixels, from its seed."""
    motion = generate_motion(seed=seed, num_frames=num_frames, fps=fps,
                             held_out_pairs=held_out_pairs, held_out=held_out)
    body = body or ProceduralSMPL()
    with torch.no_grad():
        posed = body(global_orient=torch.from_numpy(motion.global_orient),
                     body_pose=torch.from_numpy(motion.body_pose),
                     betas=torch.from_numpy(motion.betas)[None],
                     transl=torch.from_numpy(motion.transl))
    joints = posed.joints.numpy().astype(np.float32)
    radii = posed.bone_radii[0].numpy().astype(np.float32)
    camera = sample_camera(torch.from_numpy(joints), stream(seed, _CAMERA_STREAM),
                           width=image_size, height=image_size)
    return SynthClip(seed=seed, motion=motion, joints=joints, radii=radii, camera=camera,
                     ball_centres=ball_centres(motion, joints))


def props_of(centres: np.ndarray | None) -> tuple[Prop, ...]:
    if centres is None:
        return ()
    # frames without a ball keep it far behind the camera's back, out of every ray
    parked = np.where(np.isnan(centres), np.array([0.0, -100.0, 0.0], dtype=np.float32), centres)
    return (Prop(centers=torch.from_numpy(parked), radius=BALL_RADIUS_M, color=BALL_COLOUR),)


def render_clip(*, seed: int, joints: np.ndarray, radii: np.ndarray, camera: Camera,
                ball_centres: np.ndarray | None = None, occlusion: float = 0.0,
                motion_view: str = "grey") -> RenderOutput:
    """Frames and motion view of a clip (deterministic per seed), optionally occluded."""
    output = render_scene(torch.from_numpy(np.ascontiguousarray(joints)), camera,
                          generator=stream(seed, _SCENE_STREAM), radii=torch.from_numpy(radii),
                          props=props_of(ball_centres), config=SceneConfig(motion_view=motion_view))
    if occlusion > 0:
        output = inject_occlusion(output, severity=occlusion, generator=stream(seed, _OCCLUSION_STREAM))
    return output

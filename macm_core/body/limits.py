"""Anatomical joint limits for SMPL's body_pose, with a clamp and a fitting penalty.

Convention: a limit is a box on the three components (rx, ry, rz) of a joint's local
axis-angle vector, in radians, i.e. directly on SMPL's body_pose parameters
(body_pose[:, 3 * (j - 1) : 3 * j] for joint j = 1..23). For a rotation about one
axis the component is exactly the angle about that axis; for combined rotations
it is the axis-angle component, as used by SMPLify's knee/elbow prior. The axes are
the parent's frame, which at rest is the world's: x to the body's left, y up,
z forward (the body faces +z). Signs that follow from this:

* knee: +x bends the knee (foot goes back); ankle: +x points the toes down.
* hip: -x swings the leg forward (flexion); left hip +z lifts the leg sideways.
* spine, neck, head: +x bends forward; +z bends to the body's right.
* left elbow: -y bends it (forearm forward); the right elbow mirrors this (+y).
* left shoulder: +z raises the arm, -z lowers it, -y swings it forward.
* left wrist / hand: -z flexes (palm down in the T-pose, so the hand goes down).

The right side is the mirror of the left: x ranges are kept, y and z ranges are
negated (a rotation vector mirrored in the x = 0 plane is (rx, -ry, -rz)).
The global orientation (pelvis) has no limits.
"""

import torch

from macm_core.body.skeleton import JOINT_NAMES, NUM_JOINTS

Range = tuple[float, float]

# ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) in radians, left side and midline
_LIMITS_LEFT_AND_MIDDLE: dict[str, tuple[Range, Range, Range]] = {
    "left_hip": ((-2.4, 0.5), (-0.7, 0.7), (-0.5, 0.9)),
    "spine1": ((-0.5, 0.9), (-0.5, 0.5), (-0.5, 0.5)),
    "left_knee": ((-0.1, 2.6), (-0.4, 0.4), (-0.1, 0.1)),
    "spine2": ((-0.4, 0.6), (-0.4, 0.4), (-0.4, 0.4)),
    "left_ankle": ((-0.4, 0.9), (-0.4, 0.4), (-0.4, 0.4)),
    "spine3": ((-0.3, 0.5), (-0.3, 0.3), (-0.3, 0.3)),
    "left_foot": ((-0.8, 0.5), (-0.1, 0.1), (-0.1, 0.1)),
    "neck": ((-0.6, 0.7), (-0.8, 0.8), (-0.5, 0.5)),
    "left_collar": ((-0.2, 0.2), (-0.4, 0.2), (-0.2, 0.5)),
    "head": ((-0.5, 0.6), (-0.6, 0.6), (-0.4, 0.4)),
    "left_shoulder": ((-1.5, 1.5), (-2.2, 0.8), (-1.7, 1.7)),
    "left_elbow": ((-1.0, 1.0), (-2.6, 0.1), (-0.2, 0.2)),
    "left_wrist": ((-1.0, 1.0), (-0.5, 0.5), (-1.2, 1.0)),
    "left_hand": ((-0.3, 0.3), (-0.3, 0.3), (-1.0, 0.4)),
}


def _with_right_side(table: dict) -> dict:
    out = dict(table)
    for name, (x, (y_lo, y_hi), (z_lo, z_hi)) in table.items():
        if name.startswith("left_"):
            out[name.replace("left_", "right_")] = (x, (-y_hi, -y_lo), (-z_hi, -z_lo))
    return out


JOINT_LIMITS: dict[str, tuple[Range, Range, Range]] = _with_right_side(_LIMITS_LEFT_AND_MIDDLE)
NUM_BODY_POSE = 3 * (NUM_JOINTS - 1)

if set(JOINT_LIMITS) != set(JOINT_NAMES[1:]):
    raise RuntimeError("JOINT_LIMITS must cover exactly joints 1..23 of JOINT_NAMES")


def body_pose_bounds(*, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None):
    """Lower and upper bounds of body_pose, each (69,), in body_pose's order."""
    lower, upper = [], []
    for name in JOINT_NAMES[1:]:
        for lo, hi in JOINT_LIMITS[name]:
            lower.append(lo)
            upper.append(hi)
    return (torch.tensor(lower, dtype=dtype, device=device),
            torch.tensor(upper, dtype=dtype, device=device))


def _check(body_pose: torch.Tensor) -> None:
    if not torch.is_tensor(body_pose) or not body_pose.is_floating_point():
        raise TypeError(f"body_pose must be a float torch.Tensor of shape (B, 69), got "
                        f"{type(body_pose).__name__}")
    if body_pose.ndim < 1 or body_pose.shape[-1] != NUM_BODY_POSE:
        raise ValueError(f"body_pose must have shape (B, {NUM_BODY_POSE}) (axis-angle of "
                         f"joints 1..23), got {tuple(body_pose.shape)}; flatten a "
                         f"(B, 23, 3) pose with .reshape(B, {NUM_BODY_POSE})")


def clamp_body_pose(body_pose: torch.Tensor) -> torch.Tensor:
    """Projects a pose into the limits (the nearest point of the box).

    body_pose: (..., 69), usually (B, 69). Returns the same shape.
    """
    _check(body_pose)
    lower, upper = body_pose_bounds(dtype=body_pose.dtype, device=body_pose.device)
    return torch.clamp(body_pose, min=lower, max=upper)


def limit_penalty(body_pose: torch.Tensor) -> torch.Tensor:
    """Sum over components of the squared excess outside the limits (radians^2).

    Exactly zero inside the limits, positive outside, differentiable everywhere.
    body_pose: (..., 69), usually (B, 69). Returns (...,), usually (B,).
    """
    _check(body_pose)
    lower, upper = body_pose_bounds(dtype=body_pose.dtype, device=body_pose.device)
    below = torch.relu(lower - body_pose)
    above = torch.relu(body_pose - upper)
    return (below.square() + above.square()).sum(dim=-1)

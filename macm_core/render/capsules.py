"""The body as capsules and spheres, plus prop spheres, ready for the ray-caster.

Bone j (1..23) is the capsule from joint PARENTS[j] to joint j.  The root has no parent
bone, so bone 0 (pelvis) is the capsule between the two hips.  Past the leaf joints
come end segments (END_SEGMENTS): a sphere for the skull above the head joint, and
short capsules for the fingers and toes, each continuing its bone's direction.  Every
primitive is a capsule (start, end, radius); a sphere is a capsule whose start equals
its end.

Primitive order: the 24 bones, the end segments, then the props.  Part labels (what
``part_mask`` stores): bone j -> j, an end segment -> its leaf joint's bone (skull ->
15 head, fingers -> 22/23 hands, toes -> 10/11 feet), prop k -> 24 + k.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from macm_core.body.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS

PROP_LABEL_OFFSET = NUM_JOINTS
MAX_PROPS = 127 - PROP_LABEL_OFFSET  # part_mask is int8

# radius (m) of bone j = the capsule PARENTS[j] -> j (bone 0: hip to hip)
DEFAULT_BONE_RADII: tuple[float, ...] = (
    0.10,   # 0 pelvis (hip to hip)
    0.09, 0.09,  # 1, 2 pelvis -> hips
    0.13,   # 3 pelvis -> spine1 (belly)
    0.075, 0.075,  # 4, 5 thighs
    0.13,   # 6 spine1 -> spine2
    0.055, 0.055,  # 7, 8 shins
    0.13,   # 9 spine2 -> spine3 (chest)
    0.045, 0.045,  # 10, 11 feet
    0.055,  # 12 neck
    0.075, 0.075,  # 13, 14 chest -> collars
    0.05,   # 15 neck -> head
    0.06, 0.06,  # 16, 17 collars -> shoulders
    0.05, 0.05,  # 18, 19 upper arms
    0.04, 0.04,  # 20, 21 forearms
    0.04, 0.04,  # 22, 23 hands
)


@dataclass(frozen=True, kw_only=True)
class EndSegment:
    """A capsule past leaf joint ``leaf``, along the direction ``base`` -> ``leaf``,
    from ``start_m`` to ``end_m`` metres beyond the leaf, of radius ``radius_m``."""

    leaf: str
    base: str
    start_m: float
    end_m: float
    radius_m: float


END_SEGMENTS: tuple[EndSegment, ...] = (
    EndSegment(leaf="head", base="neck", start_m=0.07, end_m=0.07, radius_m=0.1),
    EndSegment(leaf="left_hand", base="left_wrist", start_m=0.0, end_m=0.07, radius_m=0.032),
    EndSegment(leaf="right_hand", base="right_wrist", start_m=0.0, end_m=0.07, radius_m=0.032),
    EndSegment(leaf="left_foot", base="left_ankle", start_m=0.0, end_m=0.05, radius_m=0.035),
    EndSegment(leaf="right_foot", base="right_ankle", start_m=0.0, end_m=0.05, radius_m=0.035),
)


@dataclass(frozen=True, kw_only=True)
class Prop:
    """A sphere that moves with the clip, e.g. a ball.

    centers: (T, 3) world positions in metres.  radius: metres.  color: RGB in [0, 1].
    """

    centers: torch.Tensor
    radius: float
    color: tuple[float, float, float]

    def __post_init__(self) -> None:
        c = self.centers
        if not isinstance(c, torch.Tensor) or c.ndim != 2 or c.shape[1] != 3:
            raise ValueError(f"Prop.centers must be a (T, 3) tensor, got "
                             f"{tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__}")
        if not torch.isfinite(c).all():
            raise ValueError("Prop.centers contain NaN or inf")
        if not self.radius > 0:
            raise ValueError(f"Prop.radius must be > 0 metres, got {self.radius}")
        if len(self.color) != 3 or not all(0.0 <= float(x) <= 1.0 for x in self.color):
            raise ValueError(f"Prop.color must be 3 numbers in [0, 1], got {self.color!r}")


@dataclass(frozen=True, kw_only=True)
class Primitives:
    """Capsules for the ray-caster.

    starts, ends: (T, P, 3) world metres.  radii: (P,).  labels: (P,) int64 part label.
    """

    starts: torch.Tensor
    ends: torch.Tensor
    radii: torch.Tensor
    labels: torch.Tensor


def check_radii(radii: torch.Tensor | None) -> torch.Tensor:
    """Bone radii (24,) float32, defaulting to DEFAULT_BONE_RADII; raises on bad input.

    Entry 0 (hip to hip) may be 0, as SMPL-format bodies give no root bone; it then
    becomes 1.1 x the larger pelvis -> hip radius.
    """
    if radii is None:
        return torch.tensor(DEFAULT_BONE_RADII)
    if not isinstance(radii, torch.Tensor) or radii.shape != (NUM_JOINTS,):
        shape = tuple(radii.shape) if isinstance(radii, torch.Tensor) else type(radii).__name__
        raise ValueError(f"bone radii must be a ({NUM_JOINTS},) tensor of metres (one row of a "
                         f"body model's (B, {NUM_JOINTS}) bone_radii), got {shape}")
    radii = radii.detach().float()
    if not (torch.isfinite(radii).all() and (radii[1:] > 0).all() and radii[0] >= 0):
        raise ValueError("bone radii must be finite and > 0 metres (entry 0 may be 0)")
    if radii[0] == 0:
        radii = radii.clone()
        radii[0] = 1.1 * torch.maximum(radii[JOINT_INDEX["left_hip"]], radii[JOINT_INDEX["right_hip"]])
    return radii


def body_primitives(joints: torch.Tensor, radii: torch.Tensor, *,
                    props: tuple[Prop, ...] = ()) -> Primitives:
    """Capsules for a body (T, 24, 3) with bone radii (24,) and optional props."""
    num_frames = joints.shape[0]
    if len(props) > MAX_PROPS:
        raise ValueError(f"at most {MAX_PROPS} props fit the int8 part mask, got {len(props)}")
    parents = torch.tensor((JOINT_INDEX["right_hip"],) + PARENTS[1:])
    starts, ends = [joints[:, parents]], [joints.clone()]
    ends[0][:, 0] = joints[:, JOINT_INDEX["left_hip"]]
    all_radii, labels = [radii], list(range(NUM_JOINTS))

    for seg in END_SEGMENTS:
        leaf = joints[:, JOINT_INDEX[seg.leaf]]
        along = torch.nn.functional.normalize(leaf - joints[:, JOINT_INDEX[seg.base]], dim=-1)
        starts.append((leaf + seg.start_m * along)[:, None])
        ends.append((leaf + seg.end_m * along)[:, None])
        all_radii.append(torch.tensor([seg.radius_m]))
        labels.append(JOINT_INDEX[seg.leaf])

    for k, prop in enumerate(props):
        if not isinstance(prop, Prop):
            raise TypeError(f"props must be Prop objects, got {type(prop).__name__} at index {k}")
        if prop.centers.shape[0] != num_frames:
            raise ValueError(f"prop {k} has {prop.centers.shape[0]} frames but the body has "
                             f"{num_frames}; give one centre per frame")
        centre = prop.centers.float()[:, None]
        starts.append(centre)
        ends.append(centre)
        all_radii.append(torch.tensor([float(prop.radius)]))
        labels.append(PROP_LABEL_OFFSET + k)
    return Primitives(starts=torch.cat(starts, dim=1), ends=torch.cat(ends, dim=1),
                      radii=torch.cat(all_radii), labels=torch.tensor(labels))


def joint_tolerance(radii: torch.Tensor, *, margin_m: float) -> torch.Tensor:
    """How far (m) in front of joint j a surface may be and still count as its own, (24,).

    The largest radius of any primitive that touches joint j (its bone, its child bones,
    the hip-to-hip bone for the pelvis and hips, its end segment) + margin.
    """
    tol = radii.clone()
    for child, parent in enumerate(PARENTS):
        if parent >= 0:
            tol[parent] = torch.maximum(tol[parent], radii[child])
    for name in ("pelvis", "left_hip", "right_hip"):
        tol[JOINT_INDEX[name]] = torch.maximum(tol[JOINT_INDEX[name]], radii[0])
    for seg in END_SEGMENTS:
        tol[JOINT_INDEX[seg.leaf]] = tol[JOINT_INDEX[seg.leaf]].clamp(min=seg.radius_m)
    return tol + margin_m

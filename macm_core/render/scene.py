"""Render a clip: a capsule body (and props) shaded over a procedural background.

``render_scene`` draws, from the caller's generator and in this order: clothing and skin
colours, the light, the background, the sensor noise.  The same joints, camera and seed
therefore give byte-identical frames.

Outputs besides the RGB frames:
* ``motion_view``: the M-ACM motion input, the body re-drawn over the RGB frame in
  shaded grey (or a fixed per-part palette) under a fixed light; props are left as they
  appear in the frame.
* ``part_mask``: bone index per pixel, 24 + k for prop k, -1 for background.
* per joint: pixel position, depth, and visibility (inside the image and not hidden by
  the body or a prop: the first surface along the joint's pixel ray lies no more than the
  joint's own capsule radius, plus a margin, in front of the joint).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import repeat

from macm_core.body.skeleton import JOINT_INDEX, NUM_JOINTS
from macm_core.render.background import BackgroundConfig, sample_background
from macm_core.render.camera import Camera
from macm_core.render.capsules import (
    PROP_LABEL_OFFSET, Prop, body_primitives, check_radii, joint_tolerance,
)
from macm_core.render.overlay import motion_colours
from macm_core.render.raycast import NEAR, raycast_capsules

_J = JOINT_INDEX
TOP = ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder",
       "right_shoulder", "left_elbow", "right_elbow")
FOREARMS = ("left_wrist", "right_wrist")
BOTTOM = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee")
SHINS = ("left_ankle", "right_ankle")
SHOES = ("left_foot", "right_foot")
SKIN = ("neck", "head", "left_hand", "right_hand")

@dataclass(frozen=True, kw_only=True)
class SceneConfig:
    """motion_view: "grey" or "palette".  ambient, noise_std (in 0..255 units): uniform
    ranges.  visibility_margin_m: slack added to each joint's own radius in the
    self-occlusion test."""

    motion_view: str = "grey"
    ambient: tuple[float, float] = (0.25, 0.5)
    noise_std: tuple[float, float] = (1.0, 4.0)
    visibility_margin_m: float = 0.03
    background: BackgroundConfig = BackgroundConfig()

    def __post_init__(self) -> None:
        if self.motion_view not in ("grey", "palette"):
            raise ValueError(f'SceneConfig.motion_view must be "grey" or "palette", '
                             f"got {self.motion_view!r}")


@dataclass(frozen=True, kw_only=True)
class RenderOutput:
    """A rendered clip.

    frames, motion_view: (T, H, W, 3) uint8.  part_mask: (T, H, W) int8.
    joints_2d: (T, 24, 2) float32 pixel (u, v).  joint_depth: (T, 24) float32 metres.
    joint_visible, joint_occluded: (T, 24) bool.  occluder_mask: (T, H, W) bool, the
    pixels covered by injected occluders (all False straight from the renderer).
    """

    frames: torch.Tensor
    motion_view: torch.Tensor
    part_mask: torch.Tensor
    joints_2d: torch.Tensor
    joint_depth: torch.Tensor
    joint_visible: torch.Tensor
    joint_occluded: torch.Tensor
    occluder_mask: torch.Tensor


def render_scene(joints: torch.Tensor, camera: Camera, *, generator: torch.Generator,
                 radii: torch.Tensor | None = None, props: tuple[Prop, ...] = (),
                 config: SceneConfig = SceneConfig()) -> RenderOutput:
    """Render joints (T, 24, 3) (world metres, Y up) seen by ``camera``.

    radii: (24,) bone radii (see capsules.check_radii), default DEFAULT_BONE_RADII.
    props: spheres to add.
    """
    joints = check_joints(joints)
    radii = check_radii(radii)
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a macm_core.render.Camera, got {type(camera).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    g = generator
    prims = body_primitives(joints, radii, props=tuple(props))
    hits = raycast_capsules(prims.starts, prims.ends, prims.radii, camera)
    hit = hits.primitive >= 0
    part = torch.where(hit, prims.labels[hits.primitive.clamp(min=0)], -1)
    # shade only the covered pixels: flat index, part label and normal of each
    pixel = hit.flatten().nonzero().squeeze(1)
    pixel_part = part.flatten()[pixel]
    pixel_normal = hits.normal.reshape(-1, 3)[pixel]

    albedo = torch.cat([_clothing(g), torch.tensor([p.color for p in props]).reshape(-1, 3)])
    light = _light(g)
    ambient = _uniform(g, *config.ambient)
    lambert = (pixel_normal @ light).clamp(min=0)[:, None]
    shaded = albedo[pixel_part] * (ambient + (1 - ambient) * lambert)

    lowest = float((torch.minimum(prims.starts[..., 1], prims.ends[..., 1]) - prims.radii).min())
    background = sample_background(camera, g, floor_y=lowest - 0.01, config=config.background)
    gain = (0.92 + 0.16 * torch.rand(3, generator=g)) * 255
    image = (background * gain).expand(part.shape + (3,)).reshape(-1, 3).clone()
    image[pixel] = shaded * gain
    image = image.reshape(part.shape + (3,)).add_(sensor_noise(part.shape, g, config.noise_std))
    frames = _to_uint8(image)

    on_body = pixel_part < PROP_LABEL_OFFSET
    motion_colour = motion_colours(pixel_part[on_body], pixel_normal[on_body], style=config.motion_view)
    motion_view = frames.clone()
    motion_view.view(-1, 3)[pixel[on_body]] = _to_uint8(motion_colour * 255)

    joints_2d, joint_depth = camera.project(joints)
    tolerance = joint_tolerance(radii, margin_m=config.visibility_margin_m)
    visible = joint_visibility(joints_2d, joint_depth, hits.depth, tolerance)
    return RenderOutput(
        frames=frames, motion_view=motion_view, part_mask=part.to(torch.int8),
        joints_2d=joints_2d, joint_depth=joint_depth, joint_visible=visible,
        joint_occluded=torch.zeros_like(visible), occluder_mask=torch.zeros_like(hit))


def joint_visibility(joints_2d: torch.Tensor, joint_depth: torch.Tensor, depth_map: torch.Tensor,
                     tolerance: torch.Tensor) -> torch.Tensor:
    """(T, 24) bool: the joint's pixel is inside the image and the nearest surface along
    it is at most ``tolerance`` (24,) metres in front of the joint.

    joints_2d: (T, 24, 2); joint_depth: (T, 24); depth_map: (T, H, W), inf where empty.
    """
    num_frames, height, width = depth_map.shape
    u, v = joints_2d[..., 0], joints_2d[..., 1]
    inside = (joint_depth > NEAR) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    col = torch.nan_to_num(u).floor().long().clamp(0, width - 1)
    row = torch.nan_to_num(v).floor().long().clamp(0, height - 1)
    frame = torch.arange(num_frames)[:, None].expand_as(col)
    surface = depth_map[frame, row, col]
    return inside & (surface >= joint_depth - tolerance)


def check_joints(joints: torch.Tensor) -> torch.Tensor:
    """Joints as float32 (T, 24, 3); raises a clear error on anything else."""
    if not isinstance(joints, torch.Tensor):
        raise TypeError(f"joints must be a torch.Tensor of shape (T, {NUM_JOINTS}, 3), got "
                        f"{type(joints).__name__}")
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] < 1:
        raise ValueError(f"joints must have shape (T, {NUM_JOINTS}, 3) with T >= 1 (SMPL joint "
                         f"order, metres); got {tuple(joints.shape)}. Add a frame axis with "
                         f"joints[None] for a single pose.")
    if not joints.is_floating_point():
        raise TypeError(f"joints must be floating point metres, got dtype {joints.dtype}")
    bad = ~torch.isfinite(joints).all(dim=-1)
    if bad.any():
        frame, joint = bad.nonzero()[0].tolist()
        raise ValueError(f"joints contain NaN or inf (first at frame {frame}, joint {joint}); "
                         f"fix or drop those frames before rendering")
    return joints.float()


def sensor_noise(shape: tuple[int, int, int], g: torch.Generator,
                 std_range: tuple[float, float]) -> torch.Tensor:
    """Gaussian sensor noise (T, H, W, 3) in 0..255 units: per-pixel luminance noise plus
    weaker chroma noise at half resolution (as a demosaiced Bayer sensor gives)."""
    std = _uniform(g, *std_range)
    num_frames, height, width = shape
    noise = torch.randn((num_frames, height, width, 1), generator=g)
    chroma = torch.randn((num_frames, (height + 1) // 2, (width + 1) // 2, 3), generator=g)
    chroma = repeat(chroma, "t h w c -> t (h 2) (w 2) c")[:, :height, :width]
    return noise.mul_(std) + chroma.mul_(0.5 * std)


def _clothing(g: torch.Generator) -> torch.Tensor:
    """(24, 3) albedo per bone: a top, a bottom, shoes and a skin tone, with random
    sleeve and leg lengths."""
    skin = torch.tensor([0.36, 0.22, 0.15]) + _uniform(g, 0, 1) * torch.tensor([0.60, 0.58, 0.54])
    top, bottom, shoes = (0.08 + 0.84 * torch.rand((3, 3), generator=g)).unbind(0)
    short_sleeves, shorts = (torch.rand(2, generator=g) < 0.35).tolist()
    albedo = torch.empty(NUM_JOINTS, 3)
    for names, colour in ((TOP, top), (FOREARMS, skin if short_sleeves else top),
                          (BOTTOM, bottom), (SHINS, skin if shorts else bottom),
                          (SHOES, shoes), (SKIN, skin)):
        for name in names:
            albedo[_J[name]] = colour
    return albedo


def _light(g: torch.Generator) -> torch.Tensor:
    """A unit direction towards the light in the camera frame, from the viewer's side
    and mostly above."""
    x = _uniform(g, -0.8, 0.8)
    y = _uniform(g, -1.0, -0.1)
    z = _uniform(g, -1.0, -0.3)
    return torch.nn.functional.normalize(torch.tensor([x, y, z]), dim=0)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round 0..255 floats to uint8 (the input is overwritten)."""
    return x.add_(0.5).clamp_(0, 255).to(torch.uint8)

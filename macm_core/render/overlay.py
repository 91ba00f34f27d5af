"""The motion view: a body drawn in shaded grey (or a per-part palette) over frames.

M-ACM's motion pathway does not see the raw frames' body: it sees the body that pose
estimation and SMPL fitting recovered, rendered over the frame. ``overlay_body`` draws
any body (ground truth, or a fitted one) that way; ``render_scene`` uses the same
shading for the ground-truth motion view, so the two are directly comparable.
"""
from __future__ import annotations

import colorsys

import torch

from macm_core.body.skeleton import NUM_JOINTS
from macm_core.render.camera import Camera
from macm_core.render.capsules import body_primitives, check_radii
from macm_core.render.raycast import raycast_capsules

# a fixed, well-spread colour per bone for the palette motion view
PALETTE = torch.tensor([colorsys.hsv_to_rgb((j * 0.618034) % 1.0, 0.65, 0.95)
                        for j in range(NUM_JOINTS)], dtype=torch.float32)
MOTION_LIGHT = torch.nn.functional.normalize(torch.tensor([-0.3, -0.6, -1.0]), dim=0)
STYLES = ("grey", "palette")


def motion_colours(part: torch.Tensor, normal: torch.Tensor, *, style: str = "grey") -> torch.Tensor:
    """Colours in [0, 1] of body pixels: part (P,) bone index, normal (P, 3) -> (P, 3)."""
    if style not in STYLES:
        raise ValueError(f'motion view style must be "grey" or "palette", got {style!r}')
    shade = 0.25 + 0.7 * (normal @ MOTION_LIGHT).clamp(min=0)[:, None]
    return PALETTE[part] * shade if style == "palette" else shade.expand(-1, 3)


def overlay_body(frames: torch.Tensor, joints: torch.Tensor, camera: Camera, *,
                 radii: torch.Tensor | None = None, style: str = "grey") -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a capsule body over frames.

    frames: (T, H, W, 3) uint8; joints: (T, 24, 3) world metres; radii: (24,) or None.
    Returns (motion_view (T, H, W, 3) uint8, body_mask (T, H, W) bool).
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {tuple(frames.shape)} {frames.dtype}")
    if joints.ndim != 3 or joints.shape[0] != frames.shape[0] or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (T, {NUM_JOINTS}, 3) with T = {frames.shape[0]} frames, "
                         f"got {tuple(joints.shape)}")
    if (camera.height, camera.width) != tuple(frames.shape[1:3]):
        raise ValueError(f"the camera sees {camera.height}x{camera.width} pixels but the frames are "
                         f"{frames.shape[1]}x{frames.shape[2]}")
    prims = body_primitives(joints.float(), check_radii(radii))
    hits = raycast_capsules(prims.starts, prims.ends, prims.radii, camera)
    mask = hits.primitive >= 0
    pixel = mask.flatten().nonzero().squeeze(1)
    part = prims.labels[hits.primitive.flatten()[pixel]]
    colours = motion_colours(part, hits.normal.reshape(-1, 3)[pixel], style=style)
    view = frames.clone()
    view.view(-1, 3)[pixel] = (colours * 255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return view, mask

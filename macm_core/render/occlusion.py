"""Inject occlusion into a rendered clip: a zoom-crop that cuts limbs off at the border,
then textured boxes pasted over the frames, which may persist and move.

Severity in [0, 1] sets how likely the crop is and how far it zooms, and how many boxes
there are and how large.  Severity 0 returns the clip unchanged.  Joints that the crop
pushes out of the frame, or that lie under a box, are marked occluded and not visible.

The motion view stays the body drawn on top of the (now occluded) frame: it stands for
a body estimate that sees through occluders, as the M-ACM motion input does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from macm_core.render.background import muted_colour
from macm_core.render.capsules import PROP_LABEL_OFFSET
from macm_core.render.scene import RenderOutput


@dataclass(frozen=True, kw_only=True)
class OcclusionConfig:
    """max_boxes: boxes at severity 1 (at least one for any severity > 0).
    box_side: range of a box side as a fraction of the image side; severity scales the
    upper end.  max_zoom: crop zoom at severity 1.  max_travel: how far (fraction of the
    image) a moving box may travel over the clip."""

    max_boxes: int = 5
    box_side: tuple[float, float] = (0.12, 0.5)
    max_zoom: float = 1.8
    max_travel: float = 0.5


def inject_occlusion(output: RenderOutput, *, severity: float, generator: torch.Generator,
                     config: OcclusionConfig = OcclusionConfig()) -> RenderOutput:
    """A copy of ``output`` with occlusion of the given severity; severity 0 returns
    ``output`` itself.  Draws from ``generator``: the crop, then each box in turn."""
    if isinstance(severity, bool) or not isinstance(severity, (int, float)) \
            or not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be a number in [0, 1], got {severity!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if severity == 0:
        return output
    g = generator

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    num_frames, height, width = output.part_mask.shape
    if uniform(0, 1) < severity:
        zoom = 1.0 + (config.max_zoom - 1.0) * severity * uniform(0.5, 1.0)
        output = zoom_crop(output, zoom=zoom, left=uniform(0, 1) * width * (1 - 1 / zoom),
                           top=uniform(0, 1) * height * (1 - 1 / zoom))

    frames = output.frames.clone()
    occluder = output.occluder_mask.clone()
    under = torch.zeros_like(output.joint_occluded)
    col = torch.nan_to_num(output.joints_2d[..., 0], nan=-1.0).floor()
    row = torch.nan_to_num(output.joints_2d[..., 1], nan=-1.0).floor()
    for _ in range(max(1, math.ceil(severity * config.max_boxes))):
        lo, hi = config.box_side
        box_w = max(2, round(width * uniform(lo, lo + (hi - lo) * severity)))
        box_h = max(2, round(height * uniform(lo, lo + (hi - lo) * severity)))
        patch = _box_texture(box_h, box_w, g)
        # centre on a random joint of a random frame, so that boxes hit the body
        anchor_t = int(torch.randint(num_frames, (), generator=g))
        anchor_j = int(torch.randint(output.joints_2d.shape[1], (), generator=g))
        centre = torch.nan_to_num(output.joints_2d[anchor_t, anchor_j], nan=width / 2.0)
        cx = float(centre[0]) + uniform(-0.5, 0.5) * box_w
        cy = float(centre[1]) + uniform(-0.5, 0.5) * box_h
        moving = uniform(0, 1) < 0.5
        vx, vy = (uniform(-1, 1) * config.max_travel * width / num_frames,
                  uniform(-1, 1) * config.max_travel * height / num_frames) if moving else (0.0, 0.0)
        if uniform(0, 1) < 0.5:
            first, last = 0, num_frames
        else:
            length = int(torch.randint(max(1, num_frames // 3), num_frames + 1, (), generator=g))
            first = int(torch.randint(0, num_frames - length + 1, (), generator=g))
            last = first + length
        for t in range(first, last):
            x0 = round(cx + vx * (t - anchor_t) - box_w / 2)
            y0 = round(cy + vy * (t - anchor_t) - box_h / 2)
            x_lo, x_hi = max(x0, 0), min(x0 + box_w, width)
            y_lo, y_hi = max(y0, 0), min(y0 + box_h, height)
            if x_lo >= x_hi or y_lo >= y_hi:
                continue
            frames[t, y_lo:y_hi, x_lo:x_hi] = patch[y_lo - y0:y_hi - y0, x_lo - x0:x_hi - x0]
            occluder[t, y_lo:y_hi, x_lo:x_hi] = True
            under[t] |= (col[t] >= x_lo) & (col[t] < x_hi) & (row[t] >= y_lo) & (row[t] < y_hi)

    return replace(output, frames=frames, motion_view=_overlay(output.motion_view, frames, output.part_mask),
                   joint_visible=output.joint_visible & ~under,
                   joint_occluded=output.joint_occluded | under, occluder_mask=occluder)


def recover_zoom_crop(before: np.ndarray, after: np.ndarray) -> tuple[float, np.ndarray]:
    """(zoom, offset) with ``after = zoom * before + offset``: the zoom-crop that occlusion
    applied to a whole clip, by least squares over the points finite in both.

    before, after: (..., 2) pixel positions of the same points without and with the crop.
    """
    before, after = np.asarray(before).reshape(-1, 2), np.asarray(after).reshape(-1, 2)
    ok = np.isfinite(before).all(-1) & np.isfinite(after).all(-1)
    p, q = before[ok].astype(np.float64), after[ok].astype(np.float64)
    if len(p) < 2:
        return 1.0, np.zeros(2)
    n = len(p)
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[:n, 1], a[n:, 0], a[n:, 2] = p[:, 0], 1.0, p[:, 1], 1.0
    (zoom, bx, by), *_ = np.linalg.lstsq(a, np.concatenate([q[:, 0], q[:, 1]]), rcond=None)
    return float(zoom), np.array([bx, by])


def zoom_crop(output: RenderOutput, *, zoom: float, left: float, top: float) -> RenderOutput:
    """Crop the window (left, top, W / zoom, H / zoom) (pixels) and scale it back to the
    full size; joints that leave the frame become occluded and not visible."""
    num_frames, height, width = output.part_mask.shape
    if not (zoom >= 1.0 and 0 <= left <= width * (1 - 1 / zoom) + 1e-6
            and 0 <= top <= height * (1 - 1 / zoom) + 1e-6):
        raise ValueError(f"zoom_crop needs zoom >= 1 and a window inside the image, got "
                         f"zoom={zoom}, left={left}, top={top} for a {width}x{height} image")
    # output pixel centre (j + 0.5) samples source x = left + (j + 0.5) / zoom
    xs = (left + (torch.arange(width) + 0.5) / zoom) / width * 2 - 1
    ys = (top + (torch.arange(height) + 0.5) / zoom) / height * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)
    grid = grid.expand(num_frames, height, width, 2)

    def sample(x: torch.Tensor, mode: str) -> torch.Tensor:
        x = x.float().reshape(num_frames, height, width, -1).permute(0, 3, 1, 2)
        y = F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
        return y.permute(0, 2, 3, 1)

    frames = sample(output.frames, "bilinear").round().clamp(0, 255).to(torch.uint8)
    motion = sample(output.motion_view, "bilinear").round().clamp(0, 255).to(torch.uint8)
    part = sample(output.part_mask, "nearest")[..., 0].to(torch.int8)
    occluder = sample(output.occluder_mask, "nearest")[..., 0] > 0.5

    uv = (output.joints_2d - torch.tensor([left, top])) * zoom
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height)
    was_inside = ((output.joints_2d[..., 0] >= 0) & (output.joints_2d[..., 0] < width)
                  & (output.joints_2d[..., 1] >= 0) & (output.joints_2d[..., 1] < height))
    return replace(output, frames=frames, motion_view=_overlay(motion, frames, part), part_mask=part,
                   joints_2d=uv, joint_visible=output.joint_visible & inside,
                   joint_occluded=output.joint_occluded | (was_inside & ~inside),
                   occluder_mask=occluder)


def _overlay(motion_view: torch.Tensor, frames: torch.Tensor, part_mask: torch.Tensor) -> torch.Tensor:
    """The motion view's body pixels over ``frames``: (T, H, W, 3) uint8."""
    body = ((part_mask >= 0) & (part_mask < PROP_LABEL_OFFSET))[..., None]
    return torch.where(body, motion_view, frames)


def _box_texture(height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """A (height, width, 3) uint8 patch: stripes or checks between two colours, plus grain."""
    c0, c1 = muted_colour(g), muted_colour(g)
    period = 3.0 + 17.0 * float(torch.rand((), generator=g))
    angle = float(torch.rand((), generator=g)) * math.pi
    checks = float(torch.rand((), generator=g)) < 0.4
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    along = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    if checks:
        across = (-xx * math.sin(angle) + yy * math.cos(angle)) / period
        pattern = ((along.floor() + across.floor()) % 2)
    else:
        pattern = 0.5 + 0.5 * torch.sin(2 * math.pi * along)
    patch = c0 + (c1 - c0) * pattern[..., None]
    patch = patch * 255 + 4.0 * torch.randn((height, width, 3), generator=g)
    return patch.round().clamp(0, 255).to(torch.uint8)

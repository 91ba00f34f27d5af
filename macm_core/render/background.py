"""Procedural backgrounds: a gradient, low-frequency noise, clutter and an optional floor.

The camera does not move during a clip, so one background image serves every frame.
Every random number comes from the caller's generator, in a fixed order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from macm_core.render.camera import Camera


@dataclass(frozen=True, kw_only=True)
class BackgroundConfig:
    """clutter: how many rectangles / soft blobs (inclusive range).  floor_probability:
    chance of a textured floor under the feet.  texture_strength: amplitude of the
    low-frequency colour noise."""

    clutter: tuple[int, int] = (3, 12)
    floor_probability: float = 0.6
    texture_strength: float = 0.08


def sample_background(camera: Camera, generator: torch.Generator, *, floor_y: float,
                      config: BackgroundConfig = BackgroundConfig()) -> torch.Tensor:
    """A background image (H, W, 3) float32 in [0, 1].

    floor_y: world height (m) of the floor plane, used if a floor is drawn.
    """
    height, width = camera.height, camera.width
    g = generator

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g)

    def colour() -> torch.Tensor:
        return muted_colour(g)

    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")               # (H, W)

    # gradient between two colours along a random direction
    c0, c1, angle = colour(), colour(), float(rand(1)) * 2 * math.pi
    ramp = (xx * math.cos(angle) + yy * math.sin(angle))
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min()).clamp(min=1e-6)
    image = c0 + (c1 - c0) * ramp[..., None]

    # low-frequency colour noise
    coarse = torch.randn((1, 3, 6, 6), generator=g)
    noise = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    image = image + config.texture_strength * noise[0].permute(1, 2, 0)

    # clutter: axis-aligned rectangles and soft elliptical blobs
    lo, hi = config.clutter
    count = int(torch.randint(lo, hi + 1, (1,), generator=g))
    for _ in range(count):
        is_blob, paint, centre, size, alpha = float(rand(1)) < 0.4, colour(), rand(2), rand(2), rand(1)
        size = 0.05 + 0.35 * size
        dx, dy = (xx - centre[0]) / size[0], (yy - centre[1]) / size[1]
        if is_blob:
            weight = torch.exp(-2.0 * (dx * dx + dy * dy))
        else:
            weight = ((dx.abs() < 1) & (dy.abs() < 1)).float()
        weight = (0.3 + 0.7 * alpha) * weight[..., None]
        image = image + weight * (paint - image)

    if float(rand(1)) < config.floor_probability:
        image = _floor(image, camera, g, floor_y=floor_y)
    return image.clamp(0, 1)


def muted_colour(g: torch.Generator) -> torch.Tensor:
    """A random RGB colour (3,) in [0, 1], mostly unsaturated like indoor scenes."""
    brightness = 0.15 + 0.7 * torch.rand((), generator=g)
    tint = (torch.rand(3, generator=g) - 0.5) * (0.1 + 0.5 * torch.rand((), generator=g))
    return (brightness + tint).clamp(0, 1)


def _floor(image: torch.Tensor, camera: Camera, g: torch.Generator, *, floor_y: float) -> torch.Tensor:
    """Paint a checker/plank floor at height floor_y where pixel rays hit it."""
    c0, c1 = muted_colour(g), muted_colour(g)
    tile = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    planks = float(torch.rand(1, generator=g)) < 0.5
    rays = camera.pixel_rays() @ camera.rotation()                # world directions (H, W, 3)
    eye = camera.position()
    t = (floor_y - eye[1]) / rays[..., 1].where(rays[..., 1] < -1e-6, torch.tensor(-1e-6))
    hit = (rays[..., 1] < -1e-6) & (eye[1] > floor_y)
    point = eye + t[..., None] * rays
    u, v = point[..., 0] / tile, point[..., 2] / tile
    if planks:
        pattern = (torch.floor(v) % 2) * 0.6 + 0.4 * (torch.frac(u * 0.25 + 0.5 * torch.floor(v)) < 0.04)
    else:
        pattern = ((torch.floor(u) + torch.floor(v)) % 2).float()
    colour = c0 + (c1 - c0) * pattern[..., None]
    # fade the floor out towards the horizon
    fade = (hit.float() * torch.exp(-(t * rays.norm(dim=-1) / 12.0) ** 2))[..., None]
    return image + fade * (colour - image)

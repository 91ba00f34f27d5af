"""Ray-cast capsules: per pixel, the nearest hit's depth, primitive and normal.

All work happens in the camera frame, where every ray starts at the origin and the ray
through a pixel centre has direction (x, y, 1), so the ray parameter of a hit is its
depth.  To stay fast, a capsule is only tested against the 8x8-pixel tiles its projected
bounding box touches: each (frame, capsule, tile) triple that survives this cull becomes
64 ray tests, evaluated together.  The nearest hit per pixel is found with a single
scatter-min over an int64 key that packs (depth bits, primitive index); for positive
float32 numbers the raw bits sort like the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from macm_core.render.camera import Camera

TILE = 8
NEAR = 1e-3
_INDEX_BITS = 16


@dataclass(frozen=True, kw_only=True)
class RayHits:
    """depth: (T, H, W) float32, inf where no hit.  primitive: (T, H, W) int64, -1 where
    no hit.  normal: (T, H, W, 3) float32 unit normals in the camera frame, 0 where no hit."""

    depth: torch.Tensor
    primitive: torch.Tensor
    normal: torch.Tensor


def raycast_capsules(starts: torch.Tensor, ends: torch.Tensor, radii: torch.Tensor,
                     camera: Camera, *, frame_chunk: int = 64) -> RayHits:
    """Cast one ray per pixel per frame against capsules.

    starts, ends: (T, P, 3) world-frame capsule axis endpoints (equal for a sphere).
    radii: (P,) metres.  Frames are processed ``frame_chunk`` at a time.
    """
    if starts.ndim != 3 or starts.shape[-1] != 3 or ends.shape != starts.shape:
        raise ValueError(f"starts and ends must both be (T, P, 3), got {tuple(starts.shape)} "
                         f"and {tuple(ends.shape)}")
    if radii.shape != (starts.shape[1],) or not (radii > 0).all():
        raise ValueError(f"radii must be ({starts.shape[1]},) and > 0, got {tuple(radii.shape)}")
    if starts.shape[1] >= 2 ** _INDEX_BITS:
        raise ValueError(f"at most {2 ** _INDEX_BITS - 1} capsules per frame, got {starts.shape[1]}")
    a, b = camera.to_camera(starts), camera.to_camera(ends)
    rays = camera.pixel_rays().reshape(-1, 3)
    parts = [_cast(a[i:i + frame_chunk], b[i:i + frame_chunk], radii.float(), rays, camera)
             for i in range(0, a.shape[0], frame_chunk)]
    return RayHits(depth=torch.cat([p.depth for p in parts]),
                   primitive=torch.cat([p.primitive for p in parts]),
                   normal=torch.cat([p.normal for p in parts]))


def _cast(a: torch.Tensor, b: torch.Tensor, radii: torch.Tensor, rays: torch.Tensor,
          camera: Camera) -> RayHits:
    """a, b: (T, P, 3) camera frame; rays: (H*W, 3)."""
    num_frames, num_prims = a.shape[:2]
    height, width = camera.height, camera.width
    frame, prim, pixel = _candidates(a, b, radii, camera)
    direction = rays[pixel]                                         # (K, 64, 3)
    t = _intersect(direction, a[frame, prim][:, None], b[frame, prim][:, None],
                   radii[prim][:, None])                            # (K, 64)
    hit = torch.isfinite(t)
    key = (t[hit].view(torch.int32).long() << _INDEX_BITS) | prim[:, None].expand_as(t)[hit]
    flat = (frame[:, None] * (height * width) + pixel)[hit]
    best = torch.full((num_frames * height * width,), torch.iinfo(torch.int64).max)
    best.scatter_reduce_(0, flat, key, reduce="amin")

    covered = best != torch.iinfo(torch.int64).max
    primitive = torch.where(covered, best & (2 ** _INDEX_BITS - 1), -1)
    depth_bits = (best >> _INDEX_BITS).to(torch.int32)
    depth = torch.where(covered, depth_bits.view(torch.float32), float("inf"))

    normal = torch.zeros(num_frames * height * width, 3)
    idx = covered.nonzero().squeeze(1)
    f, p = idx // (height * width), primitive[idx]
    point = depth[idx, None] * rays[idx % (height * width)]
    normal[idx] = _capsule_normal(point, a[f, p], b[f, p])
    shape = (num_frames, height, width)
    return RayHits(depth=depth.reshape(shape), primitive=primitive.reshape(shape),
                   normal=normal.reshape(*shape, 3))


def _candidates(a: torch.Tensor, b: torch.Tensor, radii: torch.Tensor,
                camera: Camera) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frame, primitive, pixel) for every pixel inside a tile that a capsule's projected
    bounding box touches: frame, primitive (K,) and pixel (K, 64) flat indices."""
    height, width = camera.height, camera.width
    tiles_y, tiles_x = -(-height // TILE), -(-width // TILE)
    r = radii[None, :, None]
    lo, hi = torch.minimum(a, b) - r, torch.maximum(a, b) + r       # (T, P, 3)
    corners = torch.stack([torch.stack([(lo, hi)[i][..., 0], (lo, hi)[j][..., 1],
                                        (lo, hi)[k][..., 2]], dim=-1)
                           for i in (0, 1) for j in (0, 1) for k in (0, 1)], dim=2)
    z = corners[..., 2]
    in_front = z > NEAR
    uv = camera.focal_px * corners[..., :2] / z.clamp(min=NEAR)[..., None] + camera.principal_point()
    umin, vmin = uv.amin(dim=2).unbind(-1)
    umax, vmax = uv.amax(dim=2).unbind(-1)
    # a box that reaches behind the camera may cover anything: test the whole image
    straddles = ~in_front.all(dim=2)
    umin = torch.where(straddles, 0.0, umin)
    vmin = torch.where(straddles, 0.0, vmin)
    umax = torch.where(straddles, width - 1.0, umax)
    vmax = torch.where(straddles, height - 1.0, vmax)
    keep = in_front.any(dim=2) & (umax >= 0) & (umin < width) & (vmax >= 0) & (vmin < height)

    tx0 = (umin / TILE).floor().clamp(0, tiles_x - 1)[..., None, None]
    tx1 = (umax / TILE).floor().clamp(0, tiles_x - 1)[..., None, None]
    ty0 = (vmin / TILE).floor().clamp(0, tiles_y - 1)[..., None, None]
    ty1 = (vmax / TILE).floor().clamp(0, tiles_y - 1)[..., None, None]
    ty = torch.arange(tiles_y, dtype=torch.float32)[:, None]
    tx = torch.arange(tiles_x, dtype=torch.float32)[None, :]
    mask = keep[..., None, None] & (ty >= ty0) & (ty <= ty1) & (tx >= tx0) & (tx <= tx1)
    frame, prim, tile_y, tile_x = mask.nonzero(as_tuple=True)

    offset = torch.arange(TILE)
    py = (tile_y[:, None, None] * TILE + offset[None, :, None]).expand(-1, TILE, TILE)
    px = (tile_x[:, None, None] * TILE + offset[None, None, :]).expand(-1, TILE, TILE)
    py, px = py.reshape(-1, TILE * TILE), px.reshape(-1, TILE * TILE)
    # tiles on the right/bottom edge may stick out of the image: fold those onto a real
    # pixel of the same tile (a duplicate test, harmless under a min)
    pixel = py.clamp(max=height - 1) * width + px.clamp(max=width - 1)
    return frame, prim, pixel


def _intersect(d: torch.Tensor, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Nearest t > NEAR where the ray t * d meets the capsule (a, b, r), else inf.

    d: (K, M, 3); a, b: (K, 1, 3); r: (K, 1).  Returns (K, M).  The capsule is the union
    of a finite cylinder and two end spheres, so its first hit is the least of theirs.
    """
    dd = (d * d).sum(-1)
    ba = b - a
    baba = (ba * ba).sum(-1)
    bad = (ba * d).sum(-1)
    baa = (ba * a).sum(-1)
    da = (d * a).sum(-1)
    aa = (a * a).sum(-1)
    r2 = r * r
    # cylinder: |(p - a) - ((p - a).ba / baba) ba| = r with p = t d, scaled by baba
    qa = baba * dd - bad * bad
    qb = baba * da - baa * bad          # half of the linear coefficient, sign flipped
    qc = baba * aa - baa * baa - r2 * baba
    h = qb * qb - qa * qc
    t_body = (qb - h.clamp(min=0).sqrt()) / qa.clamp(min=1e-12)
    axial = t_body * bad - baa          # (t d - a) . ba
    body_ok = (h >= 0) & (qa > 1e-12) & (axial >= 0) & (axial <= baba) & (t_body > NEAR)
    best = torch.where(body_ok, t_body, float("inf"))
    for centre, dc, cc in ((a, da, aa), (b, (d * b).sum(-1), (b * b).sum(-1))):
        hs = dc * dc - dd * (cc - r2)
        t_cap = (dc - hs.clamp(min=0).sqrt()) / dd
        best = torch.where((hs >= 0) & (t_cap > NEAR) & (t_cap < best), t_cap, best)
    return best


def _capsule_normal(point: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Outward unit normal at ``point`` (N, 3) on the capsule with axis a -> b (N, 3)."""
    ba = b - a
    baba = (ba * ba).sum(-1, keepdim=True)
    s = (((point - a) * ba).sum(-1, keepdim=True) / baba.clamp(min=1e-12)).clamp(0, 1)
    return torch.nn.functional.normalize(point - (a + s * ba), dim=-1)

"""A pinhole camera looking at the body, and a seeded sampler of such cameras.

World frame: metres, Y up, the body facing +z, the body's left on +x (SMPL's frame).
Camera frame (OpenCV): x right, y down, z forward; the depth of a point is its camera
z.  Pixel (row i, column j) covers [j, j+1) x [i, i+1) in (u, v), so its centre is at
(j + 0.5, i + 0.5) and the principal point is the image centre (W / 2, H / 2).

The camera sits on a sphere around ``target``: yaw 0 and elevation 0 put it in front
of the body (on +z); positive yaw swings it towards the body's left (+x), positive
elevation lifts it so that it looks down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_WORLD_UP = (0.0, 1.0, 0.0)


@dataclass(frozen=True, kw_only=True)
class Camera:
    """A pinhole camera aimed at ``target`` from ``distance`` metres away.

    yaw_deg, elevation_deg: where the camera sits around the target (see module doc).
    focal_px: focal length in pixels (the same along u and v).
    width, height: image size in pixels.
    """

    yaw_deg: float
    elevation_deg: float
    distance: float
    focal_px: float
    width: int
    height: int
    target: tuple[float, float, float] = (0.0, 0.9, 0.0)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Camera.{name} must be a positive int (pixels), got {value!r}")
        for name in ("yaw_deg", "elevation_deg", "distance", "focal_px"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"Camera.{name} must be finite, got {getattr(self, name)!r}")
        if self.distance <= 0 or self.focal_px <= 0:
            raise ValueError(
                f"Camera.distance and Camera.focal_px must be > 0, got distance={self.distance}, "
                f"focal_px={self.focal_px}")
        if not -89.0 <= self.elevation_deg <= 89.0:
            raise ValueError(
                f"Camera.elevation_deg must lie in [-89, 89] (the camera cannot look straight "
                f"up or down), got {self.elevation_deg}")
        if len(self.target) != 3 or not all(math.isfinite(float(c)) for c in self.target):
            raise ValueError(f"Camera.target must be 3 finite numbers, got {self.target!r}")

    def position(self) -> torch.Tensor:
        """The camera centre in world coordinates, (3,) float32."""
        yaw, elev = math.radians(self.yaw_deg), math.radians(self.elevation_deg)
        offset = torch.tensor([math.sin(yaw) * math.cos(elev), math.sin(elev),
                               math.cos(yaw) * math.cos(elev)], dtype=torch.float64)
        return (torch.tensor(self.target, dtype=torch.float64) + self.distance * offset).float()

    def rotation(self) -> torch.Tensor:
        """World-to-camera rotation (3, 3) float32; its rows are right, down, forward."""
        eye = self.position().double()
        forward = torch.tensor(self.target, dtype=torch.float64) - eye
        forward = forward / forward.norm()
        right = torch.linalg.cross(forward, torch.tensor(_WORLD_UP, dtype=torch.float64))
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        return torch.stack([right, down, forward]).float()

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points (..., 3) -> camera-frame points (..., 3), float32."""
        points = _check_points(points)
        return (points - self.position()) @ self.rotation().T

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points (T, N, 3) -> pixel coordinates uv (T, N, 2) and depth (T, N).

        Points at or behind the camera (depth <= 0) get uv = NaN.
        """
        if points.ndim != 3:
            raise ValueError(f"project expects points of shape (T, N, 3), got {tuple(points.shape)}")
        cam = self.to_camera(points)
        depth = cam[..., 2]
        safe = torch.where(depth > 0, depth, torch.ones_like(depth))
        uv = self.focal_px * cam[..., :2] / safe[..., None] + self.principal_point()
        uv = torch.where((depth > 0)[..., None], uv, torch.full_like(uv, float("nan")))
        return uv, depth

    def principal_point(self) -> torch.Tensor:
        """(cx, cy) = the image centre, (2,) float32."""
        return torch.tensor([self.width / 2.0, self.height / 2.0])

    def pixel_rays(self) -> torch.Tensor:
        """Camera-frame ray directions through pixel centres, (H, W, 3) float32, z = 1.

        Because z = 1, a hit at ray parameter t lies at depth t.
        """
        u = (torch.arange(self.width, dtype=torch.float32) + 0.5 - self.width / 2.0) / self.focal_px
        v = (torch.arange(self.height, dtype=torch.float32) + 0.5 - self.height / 2.0) / self.focal_px
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        return torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)


@dataclass(frozen=True, kw_only=True)
class CameraSampling:
    """Ranges for ``sample_camera``.

    max_yaw_deg: yaw is triangular on [-max, max] (mostly frontal).
    elevation_deg: uniform range.  half_fov_deg: uniform range of the half field of view
    of the image's shorter side.  margin: the points, each grown by ``pad_m`` (body
    thickness), fill 1 / margin of the image's half width and half height (uniform
    range).  max_shift: the aim point moves off the points' centre by up to this
    fraction of their extent, so the body is not always dead centre.
    """

    max_yaw_deg: float = 60.0
    elevation_deg: tuple[float, float] = (-5.0, 25.0)
    half_fov_deg: tuple[float, float] = (20.0, 30.0)
    margin: tuple[float, float] = (1.08, 1.3)
    pad_m: float = 0.15
    max_shift: float = 0.1


def sample_camera(points: torch.Tensor, generator: torch.Generator, *, width: int = 128,
                  height: int = 128, config: CameraSampling = CameraSampling()) -> Camera:
    """A random camera that sees every point of ``points`` (T, N, 3), with margin.

    Draws, in order: yaw, elevation, field of view, margin, aim offset.  The distance is
    then the least at which every padded point projects inside the margin.
    """
    points = _check_points(points)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(width, bool) or not isinstance(width, int) or width <= 0 \
            or isinstance(height, bool) or not isinstance(height, int) or height <= 0:
        raise ValueError(f"width and height must be positive ints (pixels), got {width!r}, {height!r}")

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))

    yaw = config.max_yaw_deg * (uniform(0, 1) + uniform(0, 1) - 1.0)
    elevation = uniform(*config.elevation_deg)
    half_fov = math.radians(uniform(*config.half_fov_deg))
    margin = uniform(*config.margin)
    shift = torch.tensor([uniform(-1, 1), uniform(-1, 1)], dtype=torch.float64) * config.max_shift
    focal = min(width, height) / 2.0 / math.tan(half_fov)

    flat = points.reshape(-1, 3).double()
    lo, hi = flat.min(0).values, flat.max(0).values
    aim = Camera(yaw_deg=yaw, elevation_deg=elevation, distance=1.0, focal_px=focal,
                 width=width, height=height, target=tuple(((lo + hi) / 2).tolist()))
    rel = (flat - torch.tensor(aim.target, dtype=torch.float64)) @ aim.rotation().double().T
    extent = rel[:, :2].abs().amax(0)                      # half extent along right, down
    target_cam = shift * extent
    rel[:, :2] -= target_cam
    # a padded point projects inside the margin when (|x| + pad) * margin * f <= (W / 2) * (d + z - pad)
    need_u = (rel[:, 0].abs() + config.pad_m) * margin * focal / (width / 2.0) - rel[:, 2] + config.pad_m
    need_v = (rel[:, 1].abs() + config.pad_m) * margin * focal / (height / 2.0) - rel[:, 2] + config.pad_m
    distance = float(torch.maximum(need_u, need_v).max().clamp(min=config.pad_m * 2))
    target = torch.tensor(aim.target, dtype=torch.float64) + target_cam @ aim.rotation().double()[:2]
    return Camera(yaw_deg=yaw, elevation_deg=elevation, distance=distance, focal_px=focal,
                  width=width, height=height, target=tuple(float(c) for c in target))


def _check_points(points: torch.Tensor) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ValueError(f"points must have a last dimension of 3 (x, y, z), got shape "
                         f"{tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise ValueError("points contain NaN or inf; fix the motion before rendering it")
    return points.float()

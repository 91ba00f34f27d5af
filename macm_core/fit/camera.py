"""The camera of a fit and the starting translation of the body.

A track comes either with its camera (synthetic clips) or without one (a video). For
the second case ``default_camera`` builds a pinhole in ``macm_core.render.Camera``'s
conventions that the body's global orientation and translation are then fitted to:

* focal length = max(H, W) pixels (a ~53 degree field of view across the longer
  side, a common guess for phone and web video when nothing is known);
* principal point = the image centre (``Camera``'s convention);
* yaw 0 and elevation 0: the camera sits on the world's +z axis, level, looking
  down -z at ``target`` = the world origin, so a body facing +z faces it
  (world x -> image right, world y -> image up);
* ``distance`` = the depth the body is first estimated at, so the fitted body ends
  up near the world origin.

``initial_translation`` places a template body so that its joints cover the
keypoints' box: depth = focal * template height / box height (both measured on the
keypoints that are present), and the template's centroid is put on the ray through
the keypoints' centroid.
"""
from __future__ import annotations

import torch

from macm_core.render.camera import Camera

MIN_BOX_PX = 2.0  # a box shorter than this (pixels) gives no usable depth


def camera_tensors(camera: Camera) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """World-to-camera rotation R (3, 3), camera centre C (3,), focal (pixels) and
    principal point (2,): a camera point is (X - C) @ R.T."""
    return camera.rotation(), camera.position(), float(camera.focal_px), camera.principal_point()


def project(points: torch.Tensor, camera: Camera, *, min_depth: float = 0.05) -> torch.Tensor:
    """Differentiable pinhole projection of world points (..., 3) -> pixels (..., 2).

    Unlike ``Camera.project`` it never returns NaN: depths below ``min_depth``
    metres are clamped, so a body that wanders behind the camera during a fit still
    has a gradient that brings it back.
    """
    rotation, centre, focal, principal = camera_tensors(camera)
    cam = (points - centre.to(points)) @ rotation.to(points).T
    depth = cam[..., 2:].clamp(min=min_depth)
    return focal * cam[..., :2] / depth + principal.to(points)


def box_height(keypoints: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Vertical extent (pixels) of the keypoints with weight > 0, per frame.

    keypoints: (T, K, 2); weight: (T, K). Returns (T,), 0 where < 2 keypoints.
    """
    present = weight > 0
    v = keypoints[..., 1]
    top = torch.where(present, v, torch.full_like(v, float("inf"))).amin(dim=1)
    bottom = torch.where(present, v, torch.full_like(v, float("-inf"))).amax(dim=1)
    height = bottom - top
    return torch.where(present.sum(dim=1) >= 2, height, torch.zeros_like(height))


def estimate_depth(*, keypoints: torch.Tensor, weight: torch.Tensor, template: torch.Tensor,
                   focal_px: float) -> torch.Tensor:
    """Depth (metres) of the body in every frame: focal * template height / box height.

    keypoints: (T, K, 2) pixels; weight: (T, K), > 0 where a keypoint is present;
    template: (T, K, 3) the template's joints for those keypoints (world, Y up).
    Frames whose box is under MIN_BOX_PX tall take the depth of the nearest frame
    that has one. Returns (T,). Raises ValueError when no frame has a usable box.
    """
    present = weight > 0
    y = template[..., 1]
    top = torch.where(present, y, torch.full_like(y, float("-inf"))).amax(dim=1)
    bottom = torch.where(present, y, torch.full_like(y, float("inf"))).amin(dim=1)
    height_m = (top - bottom).clamp(min=0.1)
    height_px = box_height(keypoints, weight)
    usable = height_px >= MIN_BOX_PX
    if not usable.any():
        raise ValueError(f"no person in the track: no frame has keypoints spanning at least "
                         f"{MIN_BOX_PX} pixels vertically, so the body's distance cannot be "
                         f"estimated; check the keypoints' units (pixels) and confidences")
    depth = focal_px * height_m / height_px.clamp(min=MIN_BOX_PX)
    return fill_nearest(depth, usable)


def fill_nearest(values: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Replaces values[t] (T, ...) where usable[t] (T,) is False by the value of the
    nearest usable frame (the earlier one on ties)."""
    frames = torch.arange(len(usable), dtype=torch.float64)
    good = frames[usable]
    nearest = (frames[:, None] - good[None]).abs().argmin(dim=1)
    return values[usable][nearest]


def check_image_size(image_size) -> tuple[int, int]:
    """(H, W) as two positive ints, or a ValueError saying what is wrong."""
    try:
        height, width = image_size
        ok = all(float(s) == int(s) and int(s) > 0 for s in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_size must be (height, width) in positive whole pixels, "
                         f"got {image_size!r}")
    return int(height), int(width)


def default_camera(*, image_size: tuple[int, int], distance: float) -> Camera:
    """The assumed camera of a video without calibration (see the module docstring).

    image_size: (H, W) pixels; distance: metres from the camera to the world origin.
    """
    height, width = check_image_size(image_size)
    return Camera(yaw_deg=0.0, elevation_deg=0.0, distance=float(distance),
                  focal_px=float(max(height, width)), width=width, height=height,
                  target=(0.0, 0.0, 0.0))


def initial_translation(*, keypoints: torch.Tensor, weight: torch.Tensor,
                        template: torch.Tensor, camera: Camera,
                        depth: torch.Tensor) -> torch.Tensor:
    """The translation that puts the template's centroid on the ray through the
    keypoints' centroid, ``depth`` metres in front of the camera.

    keypoints: (T, K, 2); weight: (T, K); template: (T, K, 3) the template's joints
    for the keypoints with zero translation; depth: (T,). Returns transl (T, 3).
    Frames without keypoints take the translation of the nearest frame with some.
    """
    rotation, centre, focal, principal = camera_tensors(camera)
    present = (weight > 0).to(keypoints.dtype)
    count = present.sum(dim=1).clamp(min=1)[:, None]
    centroid_px = (keypoints * present[..., None]).sum(dim=1) / count           # (T, 2)
    centroid_3d = (template * present[..., None]).sum(dim=1) / count             # (T, 3)
    xy = (centroid_px - principal) / focal * depth[:, None]
    point_cam = torch.cat([xy, depth[:, None]], dim=1)                           # (T, 3)
    point_world = point_cam @ rotation + centre
    transl = point_world - centroid_3d
    return fill_nearest(transl, (weight > 0).any(dim=1))

"""SMPL-format fitting: keypoint tracks -> SMPL parameters, saved as .npz.

Typical use::

    result = fit_track(keypoints=uv, confidence=conf, joint_map=COCO17_MAP,
                       camera=None, image_size=(H, W))
    save_fit("clip.fit.npz", result)
    pa_mpjpe(result.joints, gt_joints)      # millimetres

    # many clips in one optimisation (the same result per clip, a fraction of the time)
    results = fit_tracks(keypoints=[uv_a, uv_b], confidence=[conf_a, conf_b],
                         joint_map=COCO17_MAP, camera=[camera_a, camera_b])

``load_nlf`` loads the paper's localizer (NLF, a TorchScript file) from disk.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from macm_core.cache import atomic_path
from macm_core.fit.camera import default_camera, project
from macm_core.fit.fitter import (COCO17_MAP, COCO17_NAMES, SMPL24_MAP, STANDING_BODY_POSE,
                                  FitConfig, FitResult, JointMap, JointsFK, as_joint_map,
                                  fit_track, fit_tracks, mpjpe, pa_mpjpe, procrustes)
from macm_core.render.camera import Camera

FIT_FORMAT_VERSION = 1
_ARRAYS = ("global_orient", "body_pose", "betas", "transl", "joints")
_CAMERA_FIELDS = ("yaw_deg", "elevation_deg", "distance", "focal_px", "width", "height",
                  "target")
NLF_HINT = ("NLF (Neural Localizer Fields, Sarandi & Pons-Moll 2024) is released as a "
            "TorchScript file at https://github.com/isarandi/nlf (e.g. nlf_l_multi.torchscript); "
            "download it on a machine with internet and pass its local path")


def save_fit(path: str | os.PathLike, result: FitResult) -> Path:
    """Writes a FitResult as an .npz (atomically): the arrays, plus the camera, the
    losses and the converged flag as JSON in a ``meta`` entry. Returns the path."""
    if not isinstance(result, FitResult):
        raise TypeError(f"save_fit expects a FitResult, got {type(result).__name__}")
    camera = None if result.camera is None else {
        name: getattr(result.camera, name) for name in _CAMERA_FIELDS}
    meta = {"version": FIT_FORMAT_VERSION, "camera": camera, "losses": result.losses,
            "converged": bool(result.converged)}
    arrays = {name: getattr(result, name).detach().cpu().numpy().astype(np.float32)
              for name in _ARRAYS}
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_fit(path: str | os.PathLike) -> FitResult:
    """Reads a FitResult written by ``save_fit``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no fit file at {path}; write one with save_fit(path, result)")
    with np.load(path, allow_pickle=False) as archive:
        missing = [name for name in ("meta",) + _ARRAYS if name not in archive.files]
        if missing:
            raise ValueError(f"{path} is not a fit file written by save_fit: it lacks "
                             f"{', '.join(missing)}")
        meta = json.loads(str(archive["meta"]))
        arrays = {name: torch.from_numpy(archive[name].copy()) for name in _ARRAYS}
    if meta.get("version") != FIT_FORMAT_VERSION:
        raise ValueError(f"{path} has fit format version {meta.get('version')!r}, this code "
                         f"reads version {FIT_FORMAT_VERSION}; refit the track")
    camera = meta["camera"]
    if camera is not None:
        camera = Camera(**{**camera, "target": tuple(camera["target"])})
    return FitResult(**arrays, camera=camera, losses=dict(meta["losses"]),
                     converged=bool(meta["converged"]))


def load_nlf(path: str | os.PathLike, *, device: str = "cpu") -> torch.jit.ScriptModule:
    """Loads an NLF TorchScript model from a local file (nothing is downloaded)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"NLF model {path} {what}. {NLF_HINT}")
    try:
        return torch.jit.load(str(path), map_location=device)
    except RuntimeError as error:
        raise ValueError(f"{path} is not a TorchScript model that torch {torch.__version__} "
                         f"can load ({error}). {NLF_HINT}") from error


__all__ = [
    "COCO17_MAP", "COCO17_NAMES", "SMPL24_MAP", "STANDING_BODY_POSE", "FitConfig",
    "FitResult", "JointMap", "JointsFK", "as_joint_map", "default_camera", "fit_track",
    "fit_tracks", "load_fit", "load_nlf", "mpjpe", "pa_mpjpe", "procrustes", "project", "save_fit",
]

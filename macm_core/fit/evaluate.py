"""How close the fitted body comes to the true one, on synthetic clips.

``fit_accuracy`` fits the SMPL-format body to the keyframes of test clips from each
keypoint source (the oracle's ground truth, or a pose backend's estimate) with the
clip's camera, and measures MPJPE and PA-MPJPE of the fitted 24 joints against the
true ones, in millimetres. ``cross_view_consistency`` compares fits of the same
instants seen by different cameras (a check that needs no ground truth).
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..pipeline.sampling import uniform_keyframes
from ..pose.oracle import OracleBackend
from ..body.smpl import ProceduralSMPL
from .fitter import COCO17_MAP, STANDING_BODY_POSE, FitConfig, fit_track, mpjpe, pa_mpjpe

BASELINE = "standing body (no fit)"


def standing_joints(frames: int) -> np.ndarray:
    """(T, 24, 3) joints of the fitter's initial standing body: the no-information baseline."""
    import torch

    with torch.no_grad():
        body = ProceduralSMPL()(body_pose=STANDING_BODY_POSE.expand(frames, -1))
    return body.joints.numpy()


def moving_joint_error(pred: np.ndarray, truth: np.ndarray, *, count: int = 4) -> float:
    """Root-aligned error (mm) on the ``count`` joints that move most in ``truth``.

    The synthetic people mostly stand while one part acts, so whole-body errors reward
    a body that does nothing; this one looks where the motion is."""
    pred = np.asarray(pred) - np.asarray(pred)[:, :1]
    truth = np.asarray(truth) - np.asarray(truth)[:, :1]
    spread = np.linalg.norm(truth - truth.mean(axis=0), axis=-1).mean(axis=0)
    moving = np.argsort(spread)[-count:]
    return float(np.linalg.norm(pred[:, moving] - truth[:, moving], axis=-1).mean() * 1000)


def fit_accuracy(benchmark, clip_ids: Sequence[str], sources: dict[str, Callable | None], *,
                 keyframes: int = 8, occlusion: float = 0.0, config: FitConfig = FitConfig(),
                 baseline: bool = True) -> pd.DataFrame:
    """One row per (source, clip): mpjpe_mm, pa_mpjpe_mm, moving_joints_mm (see
    ``moving_joint_error``), fit seconds and frames.

    sources maps a name to a pose backend ``backend(frames, fps=...)``, or to None for
    the oracle (the projected ground truth, hidden joints dropped). With ``baseline``,
    rows named ``BASELINE`` score the fitter's standing starting body, unfitted: a fit
    is only informative where it beats that."""
    rows = []
    for clip_id in clip_ids:
        oracle = OracleBackend.for_clip(benchmark, clip_id, occlusion=occlusion)
        num_frames = oracle.rendered.frames.shape[0]
        chosen = uniform_keyframes(num_frames, min(keyframes, num_frames))
        fps = float(benchmark.clips.loc[clip_id, "fps"])
        truth = benchmark.joints(clip_id)[chosen]
        if baseline:
            standing = standing_joints(len(chosen))
            rows.append({"source": BASELINE, "clip": clip_id, "mpjpe_mm": mpjpe(standing, truth),
                         "pa_mpjpe_mm": pa_mpjpe(standing, truth),
                         "moving_joints_mm": moving_joint_error(standing, truth), "fit_seconds": 0.0,
                         "frames": len(chosen)})
        for name, backend in sources.items():
            if backend is None:
                track = oracle(fps=fps)
                keypoints, confidence = track.keypoints[chosen], track.confidence[chosen]
            else:
                track = backend(oracle.rendered.frames.numpy()[chosen], fps=fps)
                keypoints, confidence = track.keypoints, track.confidence
            start = time.perf_counter()
            result = fit_track(keypoints=keypoints, confidence=confidence, joint_map=COCO17_MAP,
                               camera=benchmark.camera(clip_id), config=config)
            seconds = time.perf_counter() - start
            fitted = np.asarray(result.joints)
            rows.append({"source": name, "clip": clip_id, "mpjpe_mm": mpjpe(fitted, truth),
                         "pa_mpjpe_mm": pa_mpjpe(fitted, truth),
                         "moving_joints_mm": moving_joint_error(fitted, truth), "fit_seconds": seconds,
                         "frames": len(chosen)})
    return pd.DataFrame(rows)


def cross_view_consistency(joints_by_view: dict[str, np.ndarray]) -> pd.DataFrame:
    """PA-MPJPE (mm) between every pair of views of the same instants.

    joints_by_view: name -> (T, J, 3) joints of the same T instants from one view."""
    rows = []
    for (a, ja), (b, jb) in itertools.combinations(joints_by_view.items(), 2):
        if ja.shape != jb.shape:
            raise ValueError(f"views {a} and {b} differ in shape: {ja.shape} vs {jb.shape}")
        rows.append({"view a": a, "view b": b, "pa_mpjpe_mm": pa_mpjpe(ja, jb)})
    return pd.DataFrame(rows)

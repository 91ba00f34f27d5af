"""How well a pose backend sees the synthetic people: PCK against the ground truth.

``pck_by_severity`` renders test clips at several occlusion severities, runs each
backend on the frames, and scores its COCO-17 keypoints against the oracle's (the
projected ground truth), over the joints the renderer says are visible, and
separately over those inside the frame but hidden (by the body or an occluder).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .base import PoseTrack
from .oracle import OracleBackend
from .vitpose_tiny import pck

Estimator = Callable[..., PoseTrack]


def pck_by_severity(estimators: dict[str, Estimator], benchmark, clip_ids: Sequence[str], *,
                    severities: Sequence[float] = (0.0, 0.3, 0.6, 0.9), frame_stride: int = 2,
                    threshold: float = 0.1) -> pd.DataFrame:
    """One row per (backend, severity): PCK on visible and on hidden in-frame joints,
    mean confidence on each, and the number of frames scored. ``estimators`` maps a
    name to ``backend(frames, fps=...)``; the name ``"oracle"`` scores the ground truth
    itself (1.0 on visible joints by construction, confidence 0 on hidden ones)."""
    rows = []
    for severity in severities:
        preds = {name: [] for name in estimators}
        confs = {name: [] for name in estimators}
        truths, visibles, in_frames = [], [], []
        for clip_id in clip_ids:
            oracle = OracleBackend.for_clip(benchmark, clip_id, occlusion=severity)
            gt, visible = oracle.ground_truth()
            frames = oracle.rendered.frames.numpy()[::frame_stride]
            gt, visible = gt[::frame_stride], visible[::frame_stride]
            h, w = frames.shape[1:3]
            inside = (gt[..., 0] >= 0) & (gt[..., 0] < w) & (gt[..., 1] >= 0) & (gt[..., 1] < h)
            truths.append(gt), visibles.append(visible), in_frames.append(inside)
            fps = float(benchmark.clips.loc[clip_id, "fps"])
            for name, estimator in estimators.items():
                track = oracle(fps=fps) if name == "oracle" else estimator(frames, fps=fps)
                keypoints = track.keypoints if name != "oracle" else track.keypoints[::frame_stride]
                confidence = track.confidence if name != "oracle" else track.confidence[::frame_stride]
                preds[name].append(np.nan_to_num(keypoints, nan=-1e4))
                confs[name].append(confidence)
        gt, visible, inside = np.concatenate(truths), np.concatenate(visibles), np.concatenate(in_frames)
        hidden = inside & ~visible
        for name in estimators:
            pred, conf = np.concatenate(preds[name]), np.concatenate(confs[name])
            rows.append({"backend": name, "severity": severity,
                         "pck_visible": pck(pred, gt, visible, threshold=threshold),
                         "pck_hidden": pck(pred, gt, hidden, threshold=threshold) if hidden.any() else np.nan,
                         "confidence_visible": float(conf[visible].mean()) if visible.any() else np.nan,
                         "confidence_hidden": float(conf[hidden].mean()) if hidden.any() else np.nan,
                         "hidden_share": float(hidden.sum() / max(inside.sum(), 1)),
                         "frames": int(gt.shape[0])})
    return pd.DataFrame(rows)

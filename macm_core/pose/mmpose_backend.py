"""``mmpose``: ViTPose / DWPose through mmpose, from local config and checkpoint files.

The paper's pose estimator (ViTPose) at paper scale, on GPU nodes. This backend never
downloads anything: the pose model comes from a local mmpose config file and
checkpoint, and the person box from an optional local mmdet detector (config +
checkpoint); without one, the whole frame is the box (fine for single-person clips).
mmpose is an optional extra (``make mmpose`` builds it on a CPU machine); a missing
package or file is an error naming what to install or where to put the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import PoseTrack, check_fps, check_frames

INSTALL_HINT = ("mmpose is not installed: it is an optional extra. Run `make mmpose` (builds mmcv "
                "from source on CPU, ~20 min) or, on a GPU node, `pip install -U openmim && "
                "mim install mmcv==2.1.0 mmdet==3.3.0 mmpose==1.3.2`")


@dataclass(frozen=True, kw_only=True)
class MMPoseConfig:
    """Local files of the mmpose backend (paths; nothing is fetched)."""

    pose_config: str
    pose_checkpoint: str
    det_config: str | None = None
    det_checkpoint: str | None = None
    device: str = "cpu"
    det_score: float = 0.5


def _require(path: str | None, what: str) -> Path:
    if not path or not Path(path).is_file():
        raise FileNotFoundError(
            f"{what} {path!r} does not exist: put the file there (mmpose model zoo for ViTPose, "
            "e.g. td-hm_ViTPose-base_8xb64-210e_coco-256x192.py and its .pth) and set its path "
            "in the profile; nothing is downloaded")
    return Path(path)


class MMPoseBackend:
    """Top-down 2D pose with an mmpose model (COCO-17 keypoints)."""

    name = "mmpose"

    def __init__(self, config: MMPoseConfig):
        pose_config = _require(config.pose_config, "mmpose config")
        pose_checkpoint = _require(config.pose_checkpoint, "mmpose checkpoint")
        try:
            from mmpose.apis import inference_topdown, init_model
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
        self.config = config
        self._inference = inference_topdown
        self.model = init_model(str(pose_config), str(pose_checkpoint), device=config.device)
        self.detector = None
        if config.det_config or config.det_checkpoint:
            det_config = _require(config.det_config, "mmdet config")
            det_checkpoint = _require(config.det_checkpoint, "mmdet checkpoint")
            try:
                from mmdet.apis import inference_detector, init_detector
            except ImportError as err:
                raise ImportError(INSTALL_HINT) from err
            self._detect = inference_detector
            self.detector = init_detector(str(det_config), str(det_checkpoint), device=config.device)

    def _boxes(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """(P, 4) person boxes x1 y1 x2 y2, or None for the whole frame."""
        if self.detector is None:
            return None
        instances = self._detect(self.detector, frame_bgr).pred_instances.cpu().numpy()
        keep = (instances.labels == 0) & (instances.scores > self.config.det_score)
        return instances.bboxes[keep]

    def __call__(self, frames: np.ndarray, *, fps: float) -> PoseTrack:
        frames, fps = check_frames(frames), check_fps(fps)
        T, H, W, _ = frames.shape
        keypoints = np.full((T, 17, 2), np.nan, np.float32)
        confidence = np.zeros((T, 17), np.float32)
        people = np.full(T, -1, np.int64)
        for t, frame in enumerate(frames):
            bgr = np.ascontiguousarray(frame[..., ::-1])
            boxes = self._boxes(bgr)
            if boxes is not None:
                people[t] = len(boxes)
                if len(boxes) == 0:
                    continue
            results = self._inference(self.model, bgr, bboxes=boxes)
            best = max(results, key=lambda r: float(r.pred_instances.keypoint_scores.mean()))
            points = np.asarray(best.pred_instances.keypoints[0], np.float32)
            scores = np.asarray(best.pred_instances.keypoint_scores[0], np.float32)
            if points.shape[0] < 17:
                raise ValueError(f"the mmpose model gives {points.shape[0]} keypoints; a COCO-17 "
                                 "(or COCO-WholeBody, first 17) model is needed")
            keypoints[t] = points[:17] + 0.5  # mmpose: pixel centres at integers
            confidence[t] = np.clip(scores[:17], 0, 1)
        return PoseTrack(keypoints=keypoints, confidence=confidence, person_count=people,
                         frame_size=(H, W), fps=fps, backend=self.name)

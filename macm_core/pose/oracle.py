"""``oracle``: the ground-truth pose of a synthetic clip, as if a perfect estimator saw it.

For ablations only (how much of M-ACM's gain survives a perfect motion pathway?): the
clip's posed SMPL joints are turned into COCO-17 points (``smpl_to_coco``), projected
with the clip's camera, and given confidence 1 where the renderer says the joint is
visible (not self-occluded, not under an injected occluder, inside the frame) and 0
elsewhere. It needs the clip, not just its pixels, so it is built per clip.
"""
from __future__ import annotations

import numpy as np
import torch

from ..body.skeleton import JOINT_INDEX
from ..render import RenderOutput
from ..render.occlusion import recover_zoom_crop
from .base import PoseTrack, check_fps
from .coco import COCO_NAMES, SMPL_TO_COCO_BODY, smpl_to_coco

# the SMPL joint whose visibility a COCO point takes (face points: the head)
COCO_VISIBILITY_JOINT = np.array([SMPL_TO_COCO_BODY.get(i, JOINT_INDEX["head"])
                                  for i in range(len(COCO_NAMES))])


class OracleBackend:
    """Ground-truth COCO-17 keypoints of one rendered synthetic clip."""

    name = "oracle"

    def __init__(self, *, joints: np.ndarray, rendered: RenderOutput, camera):
        self.joints = np.asarray(joints, np.float32)
        self.rendered = rendered
        self.camera = camera

    @classmethod
    def for_clip(cls, benchmark, clip_id: str, *, occlusion: float = 0.0) -> "OracleBackend":
        return cls(joints=benchmark.joints(clip_id), camera=benchmark.camera(clip_id),
                   rendered=benchmark.render(clip_id, occlusion=occlusion))

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """COCO-17 pixels of every joint, hidden or not, (T, 17, 2); visible (T, 17) bool."""
        coco = smpl_to_coco(self.joints)
        uv, _ = self.camera.project(torch.from_numpy(coco))
        # occlusion may have zoom-cropped the frames: apply the same crop to the points
        projected, _ = self.camera.project(torch.from_numpy(self.joints))
        zoom, offset = recover_zoom_crop(projected.numpy(), self.rendered.joints_2d.numpy())
        uv = zoom * uv.numpy() + offset
        visible = self.rendered.joint_visible.numpy()[:, COCO_VISIBILITY_JOINT]
        return uv.astype(np.float32), visible

    def __call__(self, frames: np.ndarray | None = None, *, fps: float) -> PoseTrack:
        fps = check_fps(fps)
        keypoints, visible = self.ground_truth()
        keypoints = keypoints.copy()
        keypoints[~visible] = np.nan
        T, H, W = self.rendered.frames.shape[:3]
        return PoseTrack(keypoints=keypoints, confidence=visible.astype(np.float32),
                         person_count=np.ones(T, np.int64), frame_size=(H, W), fps=fps,
                         backend=self.name)

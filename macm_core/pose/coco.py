"""COCO-17 keypoints: names and order, skeleton edges, and the maps into COCO-17 from
BlazePose's 33 landmarks and from SMPL's 24 joints.

"left"/"right" are the person's own sides (COCO's convention), so for a person facing
the camera the left shoulder appears at the larger image x.
"""
from __future__ import annotations

import numpy as np

from macm_core.body.skeleton import JOINT_INDEX as SMPL_INDEX

COCO_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO_NAMES)}

# COCO's 19 skeleton limbs (pycocotools person_keypoints "skeleton"), 0-based here.
COCO_EDGES: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# Each joint's mirror image: COCO_FLIP[j] is the same joint on the other side.
COCO_FLIP: tuple[int, ...] = tuple(
    COCO_INDEX[n.replace("left_", "@").replace("right_", "left_").replace("@", "right_")]
    for n in COCO_NAMES)

# BlazePose's 33 landmarks (mediapipe pose_landmark_topology; order of the model output).
BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb",
    "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
# BLAZEPOSE_TO_COCO[j] is the BlazePose landmark for COCO joint j (same names).
BLAZEPOSE_TO_COCO: tuple[int, ...] = tuple(BLAZEPOSE_NAMES.index(n) for n in COCO_NAMES)

# The 12 body joints with an SMPL joint of the same name.  SMPL's hip joints are the
# femur heads (inside the pelvis, a little lower and closer together than the skin
# landmarks COCO annotates); the others sit where COCO's do, to a few centimetres.
SMPL_TO_COCO_BODY: dict[int, int] = {
    COCO_INDEX[name]: SMPL_INDEX[name] for name in COCO_NAMES[5:]
}

# Face points that SMPL lacks, as offsets from SMPL's head joint (which sits at the
# top of the neck, level with the jaw) in a head frame: (left, up, forward) metres.
# They are adult averages, good to about 3 cm.  The frame follows the head's pitch and
# roll through the neck -> head bone, which at rest leans forward by HEAD_REST_TILT
# (SMPL's neutral template: neck (0, 0.293, -0.012), head (0, 0.360, 0.039)); the frame
# turns that lean back out, so at rest up is world up and forward is where the body
# faces.  Left is the shoulder line made perpendicular to the bone.  Head yaw is not
# in the joints and is taken from the shoulders.
SMPL_FACE_OFFSETS: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.04, 0.10),
    "left_eye": (0.032, 0.08, 0.08),
    "right_eye": (-0.032, 0.08, 0.08),
    "left_ear": (0.075, 0.05, -0.01),
    "right_ear": (-0.075, 0.05, -0.01),
}
HEAD_REST_TILT = float(np.arctan2(0.039 + 0.012, 0.360 - 0.293))  # ~37 degrees


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-9)


def smpl_to_coco(joints: np.ndarray) -> np.ndarray:
    """COCO-17 points from SMPL's 24 joints.

    joints: (..., 24, 3) SMPL joint positions in metres (any frame, any pose).
    Returns (..., 17, 3): the 12 body joints copied from ``SMPL_TO_COCO_BODY``, the 5
    face points placed by ``SMPL_FACE_OFFSETS`` in the head frame (approximate, see
    there).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim < 2 or joints.shape[-2:] != (len(SMPL_INDEX), 3):
        raise ValueError(f"smpl_to_coco needs joints of shape (..., {len(SMPL_INDEX)}, 3), "
                         f"got {joints.shape}")
    out = np.zeros(joints.shape[:-2] + (len(COCO_NAMES), 3))
    for coco_j, smpl_j in SMPL_TO_COCO_BODY.items():
        out[..., coco_j, :] = joints[..., smpl_j, :]
    head = joints[..., SMPL_INDEX["head"], :]
    bone = _unit(head - joints[..., SMPL_INDEX["neck"], :])
    across = joints[..., SMPL_INDEX["left_shoulder"], :] - joints[..., SMPL_INDEX["right_shoulder"], :]
    left = _unit(across - np.sum(across * bone, axis=-1, keepdims=True) * bone)
    bone_forward = np.cross(left, bone)  # left x up = forward (x left, y up, z forward)
    cos, sin = np.cos(HEAD_REST_TILT), np.sin(HEAD_REST_TILT)
    up = cos * bone - sin * bone_forward
    forward = sin * bone + cos * bone_forward
    for name, (dl, du, df) in SMPL_FACE_OFFSETS.items():
        out[..., COCO_INDEX[name], :] = head + dl * left + du * up + df * forward
    return out.astype(np.float32)

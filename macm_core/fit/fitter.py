"""SMPLify-style fitting of SMPL-format parameters to a track of keypoints.

``fit_track`` turns one person's keypoints over T frames into SMPL parameters, all
frames optimised together in one batch with Adam for a fixed number of steps:

* 2D mode (``keypoints`` (T, K, 2) pixels): the objective is
  - a confidence-weighted robust reprojection error: Geman-McClure on the pixel
    distance divided by the person's size (the median diagonal of the keypoints'
    box over the track), so ``robust_sigma`` = 0.05 means 5 % of the person;
  - an L2 pose prior pulling body_pose towards ``STANDING_BODY_POSE`` (arms down,
    elbows slightly bent; also the starting pose), plus ``limit_penalty``;
  - temporal smoothness: squared change of the joints (metres) and of body_pose
    between neighbouring frames;
  - one set of betas for the whole clip with an L2 prior.
  Stage 1 fits only global orientation and translation to the torso keypoints, from
  several starting headings (``yaw_hypotheses_deg``, relative to facing the camera)
  at once, keeping the best per frame; stage 2 fits everything.
* 3D mode (``world`` (T, K, 3) metres, root-relative, e.g. BlazePose's world
  landmarks): the same robust error on 3D distances after a per-frame rigid
  Procrustes alignment of the landmarks onto the body, so the landmarks' frame does
  not matter; the body's orientation is recovered afterwards by reading the
  landmarks' axes as the camera's (x right, y down, z away from the camera).

``fit_tracks`` fits many clips at once: their frames are stacked in one batch (each
clip with its own betas and camera) and the clips' objectives are summed, so each
clip's result is the one ``fit_track`` gives it alone, but a step of the
optimisation (a few hundred small tensor operations, whatever their size) is paid
once per batch instead of once per clip. ``fit_track`` is its one-clip case. The
optimisation needs only the joints: ``JointsFK`` poses them without skinning a mesh.

Keypoint layouts are described by a ``JointMap``: for each keypoint, the SMPL joint
it corresponds to (or -1) and the weight of its term. ``SMPL24_MAP`` is the identity
on SMPL's 24 joints; ``COCO17_MAP`` maps COCO-17 (the pose backends' output).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from macm_core.body.limits import body_pose_bounds
from macm_core.body.skeleton import JOINT_INDEX, NUM_JOINTS
from macm_core.body.smpl import NUM_BETAS, NUM_BODY_POSE, ProceduralSMPL
from macm_core.fit.camera import (camera_tensors, check_image_size, default_camera,
                                  estimate_depth, initial_translation)
from macm_core.render.camera import Camera

# ---------------------------------------------------------------------------------
# Keypoint layouts
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JointMap:
    """How a keypoint layout relates to SMPL's 24 joints.

    smpl_index[k]: the SMPL joint keypoint k stands for, or -1 (not used).
    weight[k]: the weight of keypoint k's term (>= 0), multiplied by its confidence.
    """

    name: str
    smpl_index: tuple[int, ...]
    weight: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.smpl_index) != len(self.weight) or not self.smpl_index:
            raise ValueError(f"JointMap {self.name!r}: smpl_index and weight must be non-empty "
                             f"and of equal length, got {len(self.smpl_index)} and "
                             f"{len(self.weight)}")
        bad = [i for i in self.smpl_index if not -1 <= int(i) < NUM_JOINTS]
        if bad:
            raise ValueError(f"JointMap {self.name!r}: SMPL joint indices must lie in "
                             f"[-1, {NUM_JOINTS - 1}] (-1 = no joint), got {bad}")
        if any(not math.isfinite(w) or w < 0 for w in self.weight):
            raise ValueError(f"JointMap {self.name!r}: weights must be finite and >= 0, "
                             f"got {self.weight}")

    @property
    def num_keypoints(self) -> int:
        return len(self.smpl_index)


SMPL24_MAP = JointMap(name="smpl24", smpl_index=tuple(range(NUM_JOINTS)),
                      weight=(1.0,) * NUM_JOINTS)

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
FACE_WEIGHT = 0.2
# The five face points all go to SMPL's head joint (the middle of the skull, ~10 cm
# behind and below the eyes) with weight FACE_WEIGHT each: together they pin the
# head roughly without pulling it forward by the face's offset. COCO's hips sit a few
# centimetres lower and wider than SMPL's hip joints; the residual is left to the fit.
COCO17_MAP = JointMap(
    name="coco17",
    smpl_index=(JOINT_INDEX["head"],) * 5 + tuple(JOINT_INDEX[n] for n in COCO17_NAMES[5:]),
    weight=(FACE_WEIGHT,) * 5 + (1.0,) * 12)

# joints that move with the trunk: stage 1 fits orientation and translation to these
TORSO_JOINTS = frozenset(JOINT_INDEX[n] for n in (
    "pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck",
    "left_collar", "right_collar", "left_shoulder", "right_shoulder"))


def as_joint_map(joint_map: JointMap | Sequence[int]) -> JointMap:
    """A JointMap as given, or one built from a plain list of SMPL indices (weight 1)."""
    if isinstance(joint_map, JointMap):
        return joint_map
    indices = tuple(int(i) for i in joint_map)
    return JointMap(name="custom", smpl_index=indices, weight=(1.0,) * len(indices))


def _standing_body_pose() -> torch.Tensor:
    """Arms down (shoulders 69 degrees below the T-pose), elbows bent 11 degrees. (69,)"""
    pose = torch.zeros(NUM_JOINTS - 1, 3)
    for side, sign in (("left", 1.0), ("right", -1.0)):   # the right side mirrors y, z
        pose[JOINT_INDEX[f"{side}_shoulder"] - 1, 2] = -1.2 * sign
        pose[JOINT_INDEX[f"{side}_elbow"] - 1, 1] = -0.2 * sign
    return pose.reshape(NUM_BODY_POSE)


STANDING_BODY_POSE = _standing_body_pose()

# ---------------------------------------------------------------------------------
# Config and result
# ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """Steps, learning rate and loss weights of ``fit_track``.

    orient_steps / full_steps: Adam steps of stage 1 (orientation + translation on
    the torso) and stage 2 (everything); the learning rate decays from ``lr`` to
    lr / 20 over each stage (cosine).
    yaw_hypotheses_deg: starting headings of stage 1, relative to facing the camera.
    min_confidence: keypoints below it (or NaN) get weight 0.
    min_keypoints: a track needs at least one frame with this many usable keypoints.
    robust_sigma: Geman-McClure scale, as a fraction of the person's size; each stage
    starts at robust_sigma_start (nearly L2, so far-off joints still pull) and
    shrinks to it.
    The *_weight fields weigh the prior terms against the data term (per frame);
    world_weight multiplies the data term in 3D mode, where the landmarks carry
    depth and the priors are needed much less.
    converge_tol: ``converged`` is False when the total loss still fell by more than
    this fraction over the last tenth of stage 2.
    """

    orient_steps: int = 20
    full_steps: int = 40
    lr: float = 0.05
    yaw_hypotheses_deg: tuple[float, ...] = (0.0, 90.0, 180.0, -90.0)
    min_confidence: float = 0.1
    min_keypoints: int = 6
    robust_sigma: float = 0.05
    robust_sigma_start: float = 0.2
    pose_prior_weight: float = 1e-2
    limit_weight: float = 1.0
    smooth_joints_weight: float = 1e-2
    smooth_pose_weight: float = 1e-5
    betas_weight: float = 1e-4
    world_weight: float = 30.0
    fit_betas: bool = True
    converge_tol: float = 1e-2

    def __post_init__(self) -> None:
        for name in ("orient_steps", "full_steps", "min_keypoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"FitConfig.{name} must be an int >= 0, got {value!r}")
        if not self.yaw_hypotheses_deg:
            raise ValueError("FitConfig.yaw_hypotheses_deg needs at least one heading, "
                             "e.g. (0.0,) to start facing the camera")
        for name in ("lr", "robust_sigma", "robust_sigma_start"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FitConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("min_confidence", "pose_prior_weight", "limit_weight",
                     "smooth_joints_weight", "smooth_pose_weight", "betas_weight",
                     "world_weight", "converge_tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"FitConfig.{name} must be finite and >= 0, got {value!r}")


@dataclass(kw_only=True)
class FitResult:
    """A fitted track; tensors are float32 on the CPU.

    global_orient (T, 3), body_pose (T, 69), transl (T, 3): per frame; betas (10,):
    one shape for the clip; joints (T, 24, 3): the fitted body's joints in world
    metres; camera: the camera fitted to (None in 3D mode without a camera);
    losses: the final value of each objective term and "total"; converged: see
    FitConfig.converge_tol.
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    camera: Camera | None
    losses: dict[str, float] = field(default_factory=dict)
    converged: bool = True

    @property
    def num_frames(self) -> int:
        return self.body_pose.shape[0]


# ---------------------------------------------------------------------------------
# Joints-only forward kinematics (the vertices are not needed to fit joints)
# ---------------------------------------------------------------------------------


class JointsFK:
    """SMPL joints from SMPL parameters, without skinning the mesh.

    Equal to ``body(...).joints`` (smplx's lbs poses the joints by the same rigid
    chain), but much cheaper, which is what makes a fit step fast. Only the joints
    that have children need a global rotation (a leaf's own rotation does not move
    any joint): those are chained one depth level of the tree at a time (7 batched
    3x3 products), stored so that each level's parents are, for most levels, simply
    the previous level. Then every bone's rest offset is turned by its parent's
    global rotation in one batched product, and each joint is the root plus the sum
    of the turned bones on its chain (one product with a constant 0/1 matrix). The
    autograd graph is a few dozen nodes, none of them a slice of a larger tensor.
    """

    def __init__(self, body: torch.nn.Module):
        with torch.no_grad():
            regressor = body.J_regressor.float()
            self.template = regressor @ body.v_template.float()                      # (24, 3)
            self.directions = torch.einsum("jv,vcl->jcl", regressor,
                                           body.shapedirs.float())                   # (24, 3, 10)
        parents = [int(p) for p in body.parents]
        parents[0] = -1
        self.parents = torch.tensor([max(p, 0) for p in parents])
        inner = {p for p in parents if p >= 0}          # the joints with children
        # level order: each level's joints sorted by their parent's place in the level above
        levels = [[0]]
        while True:
            above = levels[-1]
            level = sorted((j for j in range(NUM_JOINTS) if parents[j] in above and j in inner),
                           key=lambda j: (above.index(parents[j]), j))
            if not level:
                break
            levels.append(level)
        order = [j for level in levels for j in level]
        self.inner = torch.tensor(order)                # the inner joints, level order
        self.level_sizes = [len(level) for level in levels]
        # how to pick each joint's parent from the level above: None (the same places)
        # or an index tensor
        self.picks = []
        for above, level in zip(levels, levels[1:]):
            parent_at = [above.index(parents[j]) for j in level]
            self.picks.append(None if parent_at == list(range(len(above)))
                              else torch.tensor(parent_at))
        # for joints 1..23: where their parent's global rotation sits in level order
        self.parent_slot = torch.tensor([order.index(parents[j]) for j in range(1, NUM_JOINTS)])
        # chain[j, k - 1] = 1 when bone k (parent(k) -> k) lies on the chain root -> j
        chain = torch.zeros(NUM_JOINTS, NUM_JOINTS - 1)
        for j in range(1, NUM_JOINTS):
            k = j
            while k > 0:
                chain[j, k - 1] = 1.0
                k = parents[k]
        self.chain = chain

    def rest(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest joints of a shape: betas (B, 10) -> (B, 24, 3)."""
        return self.template + torch.einsum("jcl,bl->bjc", self.directions, betas)

    def __call__(self, *, global_orient: torch.Tensor, body_pose: torch.Tensor,
                 betas: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
        """global_orient (B, 3), body_pose (B, 69), betas (B or 1, 10), transl (B, 3)
        -> joints (B, 24, 3)."""
        batch = body_pose.shape[0]
        rest = self.rest(betas)                                                    # (b, 24, 3)
        bones = rest[:, 1:] - rest.index_select(1, self.parents[1:])               # (b, 23, 3)
        pose = torch.cat([global_orient, body_pose], dim=1).reshape(batch, NUM_JOINTS, 3)
        local = rodrigues(pose.index_select(1, self.inner).reshape(-1, 3))
        levels = local.reshape(batch, -1, 3, 3).split(self.level_sizes, dim=1)
        rotations = [levels[0]]                          # global rotations, level by level
        for level, pick in zip(levels[1:], self.picks):
            above = rotations[-1] if pick is None else rotations[-1].index_select(1, pick)
            rotations.append(above @ level)
        parent = torch.cat(rotations, dim=1).index_select(1, self.parent_slot)     # (B, 23, 3, 3)
        turned = (parent @ bones.expand(batch, -1, -1).unsqueeze(-1)).squeeze(-1)  # (B, 23, 3)
        # the sums along the chains, as one (3B, 23) x (23, 24) product
        joints = (turned.transpose(1, 2).reshape(-1, NUM_JOINTS - 1) @ self.chain.T)
        joints = joints.reshape(batch, 3, NUM_JOINTS).transpose(1, 2)
        return joints + (rest[:, :1] + transl[:, None])


_SKEW = torch.tensor([0, 6, 2, 3, 0, 4, 5, 1, 0])   # K's entries in (0, k, -k)
_EYE = torch.eye(3)


def rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of axis-angle vectors, (B, 3) -> (B, 3, 3).

    ``smplx.lbs.batch_rodrigues`` (same formula and the same 1e-8 guard) with its
    K @ K product written as k k^T - |k|^2 I, so there is no batched matrix
    product to run forward and backward."""
    angle = torch.norm(rot_vecs + 1e-8, dim=1, keepdim=True)                     # (B, 1)
    k = rot_vecs / angle
    cos, sin = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    skew = torch.cat([torch.zeros_like(angle), k, -k], dim=1).index_select(1, _SKEW)
    square = k[:, :, None] * k[:, None, :] - (k * k).sum(dim=1)[:, None, None] * _EYE
    return _EYE + sin * skew.reshape(-1, 3, 3) + (1 - cos) * square


@lru_cache(maxsize=1)
def _default_body() -> ProceduralSMPL:
    return ProceduralSMPL()


# ---------------------------------------------------------------------------------
# Procrustes alignment and the joint-error metrics
# ---------------------------------------------------------------------------------


def procrustes(source: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
               scale: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame similarity (or rigid) transform taking source onto target.

    source, target: (T, N, 3); weight: (T, N) >= 0 or None (all 1).
    Returns s (T,), R (T, 3, 3), t (T, 3) minimising sum w |s R x + t - y|^2, so the
    aligned source is ``s[:, None, None] * source @ R.transpose(1, 2) + t[:, None]``.
    s is 1 when ``scale`` is False.
    """
    if weight is None:
        weight = torch.ones(source.shape[:2], dtype=source.dtype)
    w = weight / weight.sum(dim=1, keepdim=True).clamp(min=1e-12)
    mu_s = (w[..., None] * source).sum(dim=1)
    mu_t = (w[..., None] * target).sum(dim=1)
    xs, xt = source - mu_s[:, None], target - mu_t[:, None]
    cross = (w[..., None] * xs).transpose(1, 2) @ xt                    # (T, 3, 3)
    u, sv, vh = torch.linalg.svd(cross)
    sign = torch.sign(torch.linalg.det(vh.transpose(1, 2) @ u.transpose(1, 2)))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(sv)
    d[:, 2] = sign
    rotation = vh.transpose(1, 2) @ torch.diag_embed(d) @ u.transpose(1, 2)
    if scale:
        variance = (w * (xs ** 2).sum(dim=-1)).sum(dim=1).clamp(min=1e-12)
        s = (sv * d).sum(dim=1) / variance
    else:
        s = torch.ones(source.shape[0], dtype=source.dtype)
    t = mu_t - s[:, None] * (mu_s[:, None] @ rotation.transpose(1, 2))[:, 0]
    return s, rotation, t


def _as_joints(name: str, value) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (T, J, 3) (or (J, 3)), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; metrics need complete joints")
    return x


def _pair(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = _as_joints("pred", pred), _as_joints("gt", gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {tuple(p.shape)} and "
                         f"{tuple(g.shape)}")
    return p, g


def mpjpe(pred, gt, *, root: int = 0) -> float:
    """Mean per-joint position error in millimetres after subtracting the root joint
    (SMPL's pelvis) of each frame. pred, gt: (T, J, 3) metres (numpy or torch)."""
    p, g = _pair(pred, gt)
    p, g = p - p[:, root:root + 1], g - g[:, root:root + 1]
    return float((p - g).norm(dim=-1).mean() * 1000)


def pa_mpjpe(pred, gt) -> float:
    """Mean per-joint position error in millimetres after aligning each frame of
    pred onto gt with the best similarity transform (scale, rotation, translation).
    pred, gt: (T, J, 3) metres (numpy or torch)."""
    p, g = _pair(pred, gt)
    s, rotation, t = procrustes(p, g, scale=True)
    aligned = s[:, None, None] * p @ rotation.transpose(1, 2) + t[:, None]
    return float((aligned - g).norm(dim=-1).mean() * 1000)


# ---------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------


@dataclass
class _Track:
    points: torch.Tensor      # (T, K, D), 0 where missing
    weight: torch.Tensor      # (T, K) confidence * map weight, 0 where unusable
    index: torch.Tensor       # (K,) SMPL joint per keypoint (0 where unmapped; weight 0)
    size: float               # the person's size: median box diagonal (pixels / metres)


def _prepare_track(points, confidence, joint_map: JointMap, *, dim: int,
                   config: FitConfig) -> _Track:
    name = "keypoints" if dim == 2 else "world"
    x = torch.as_tensor(np.asarray(points, dtype=np.float32))
    c = torch.as_tensor(np.asarray(confidence, dtype=np.float32))
    if x.ndim != 3 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (T, K, {dim}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"no person in the track: {name} has 0 frames")
    if c.shape != x.shape[:2]:
        raise ValueError(f"confidence must have shape (T, K) = {tuple(x.shape[:2])} to match "
                         f"{name}, got {tuple(c.shape)}")
    if joint_map.num_keypoints != x.shape[1]:
        raise ValueError(f"joint_map {joint_map.name!r} describes {joint_map.num_keypoints} "
                         f"keypoints but {name} has K = {x.shape[1]}; pass SMPL24_MAP for "
                         f"SMPL's 24 joints, COCO17_MAP for COCO-17, or your own JointMap")
    index = torch.tensor(joint_map.smpl_index)
    usable = torch.isfinite(x).all(dim=-1) & torch.isfinite(c) & (c >= config.min_confidence)
    usable &= (index >= 0)[None]
    weight = torch.where(usable, c, torch.zeros_like(c)) * torch.tensor(joint_map.weight)[None]
    weight = torch.where(usable, weight, torch.zeros_like(weight))
    counts = (weight > 0).sum(dim=1)
    if int(counts.max()) < config.min_keypoints:
        raise ValueError(
            f"no person in the track: no frame has {config.min_keypoints} usable keypoints "
            f"(confidence >= {config.min_confidence}, finite, mapped to an SMPL joint); the "
            f"best of {x.shape[0]} frames has {int(counts.max())} of {x.shape[1]}")
    x = torch.where(usable[..., None], x, torch.zeros_like(x))
    present = (weight > 0)[..., None]
    lo = torch.where(present, x, torch.full_like(x, float("inf"))).amin(dim=1)
    hi = torch.where(present, x, torch.full_like(x, float("-inf"))).amax(dim=1)
    diagonal = (hi - lo).norm(dim=-1)[counts >= 2]
    size = float(diagonal.median()) if len(diagonal) else 0.0
    if not size > 0:
        raise ValueError(f"no person in the track: the usable {name} of every frame sit on "
                         f"one point, so the person's size is 0")
    return _Track(points=x, weight=weight, index=index.clamp(min=0), size=size)


# ---------------------------------------------------------------------------------
# A batch of tracks
# ---------------------------------------------------------------------------------


class _Batch:
    """Prepared tracks of several clips stacked along the frame axis (N = sum of T).

    ``clip`` (N,) names the clip of every stacked frame. The objective of a batch is
    the sum over clips of each clip's own objective: per-frame terms are averaged
    over the clip's frames (``frame_weight`` = 1 / T), temporal terms over the clip's
    neighbouring pairs (``pair_weight`` = 1 / (T - 1), 0 for a pair that straddles
    two clips), the betas prior is per clip. So a clip's gradient, and with Adam
    (elementwise) its whole optimisation, is the one it gets when fitted alone.
    """

    def __init__(self, tracks: Sequence[_Track]):
        self.count = len(tracks)
        self.lengths = [int(t.points.shape[0]) for t in tracks]
        self.starts = [0]
        for length in self.lengths[:-1]:
            self.starts.append(self.starts[-1] + length)
        self.points = torch.cat([t.points for t in tracks])
        self.weight = torch.cat([t.weight for t in tracks])
        self.index = tracks[0].index
        lengths = torch.tensor(self.lengths)
        self.clip = torch.repeat_interleave(torch.arange(self.count), lengths)
        self.frame_weight = (1.0 / lengths.float())[self.clip]
        self.pair_clip = self.clip[:-1]
        pair = (1.0 / (lengths - 1).clamp(min=1).float())[self.pair_clip]
        self.pair_weight = torch.where(self.clip[1:] == self.pair_clip, pair, torch.zeros_like(pair))
        sizes = torch.tensor([t.size for t in tracks], dtype=torch.float64)
        self.inv_size2 = (1.0 / sizes ** 2).float()[self.clip][:, None]          # (N, 1)

    @property
    def frames(self) -> int:
        return self.points.shape[0]

    def per_clip(self, values: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
        """Sums the rows of values (n, ...) into their clips (``clip`` (n,)): (C, ...)."""
        return values.new_zeros((self.count,) + values.shape[1:]).index_add(0, clip, values)

    def span(self, c: int) -> slice:
        return slice(self.starts[c], self.starts[c] + self.lengths[c])


@lru_cache(maxsize=4096)
def _camera_tensors(camera: Camera) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """``camera_tensors`` of a camera (a frozen dataclass), worked out once."""
    return camera_tensors(camera)


@dataclass
class _Cameras:
    """The cameras of a batch, one row per stacked frame (see ``fit.camera.project``)."""

    rotation: torch.Tensor    # (N, 3, 3) world -> camera
    centre: torch.Tensor      # (N, 1, 3)
    focal: torch.Tensor       # (N, 1, 1) pixels
    principal: torch.Tensor   # (N, 1, 2) pixels

    @classmethod
    def stack(cls, cameras: Sequence[Camera], lengths: Sequence[int]) -> "_Cameras":
        rows = [_camera_tensors(camera) for camera in cameras]
        repeats = torch.tensor(list(lengths))

        def per_frame(values):
            return torch.stack(values).repeat_interleave(repeats, dim=0)
        return cls(rotation=per_frame([r[0] for r in rows]),
                   centre=per_frame([r[1] for r in rows])[:, None],
                   focal=per_frame([torch.tensor(r[2]) for r in rows])[:, None, None],
                   principal=per_frame([r[3].float() for r in rows])[:, None])

    def repeat(self, times: int) -> "_Cameras":
        return _Cameras(**{name: value.repeat(times, *([1] * (value.ndim - 1)))
                           for name, value in self.__dict__.items()})

    def project(self, points: torch.Tensor, *, min_depth: float = 0.05) -> torch.Tensor:
        """World points (N, K, 3) -> pixels (N, K, 2); depths clamped as ``project``."""
        cam = (points - self.centre) @ self.rotation.transpose(1, 2)
        depth = cam[..., 2:].clamp(min=min_depth)
        return self.focal * cam[..., :2] / depth + self.principal


# ---------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------

# the columns of a batch's objective, (C, len(_TERMS)): one row per clip
_TERMS = ("data", "pose_prior", "limits", "betas", "smooth_joints", "smooth_pose")


def _geman_mcclure(squared: torch.Tensor, sigma: float) -> torch.Tensor:
    """sigma^2 r^2 / (sigma^2 + r^2) of squared residuals r^2: r^2 when small, sigma^2
    at most."""
    return sigma ** 2 * squared / (sigma ** 2 + squared)


@lru_cache(maxsize=1)
def _pose_bounds() -> tuple[torch.Tensor, torch.Tensor]:
    return body_pose_bounds()


def _limit_penalty(body_pose: torch.Tensor) -> torch.Tensor:
    """``limits.limit_penalty`` with its bounds built once. (N, 69) -> (N,)."""
    lower, upper = _pose_bounds()
    return (torch.relu(lower - body_pose).square()
            + torch.relu(body_pose - upper).square()).sum(dim=-1)


def _data_2d(joints: torch.Tensor, *, points: torch.Tensor, inv_size2: torch.Tensor,
             cameras: _Cameras, sigma: float, weight: torch.Tensor) -> torch.Tensor:
    """Robust reprojection error of each frame, summed over its keypoints.

    joints (N, K, 3): the body's joints of the keypoints points (N, K, 2), weighted
    by weight (N, K) -> (N,). The squared pixel distance is divided by the square of
    the person's size (inv_size2 (N, 1) = 1 / size^2)."""
    squared = ((cameras.project(joints) - points) ** 2).sum(dim=-1) * inv_size2
    return (weight * _geman_mcclure(squared, sigma)).sum(dim=1)


def _data_3d(joints: torch.Tensor, batch: _Batch, sigma: float) -> torch.Tensor:
    """Robust 3D error of each frame after aligning the landmarks rigidly onto the
    body (the alignment is held fixed for the gradient: at the optimal alignment its
    own derivative vanishes). joints (N, K, 3) -> (N,)."""
    with torch.no_grad():
        _, rotation, t = procrustes(batch.points, joints.detach(), weight=batch.weight)
    aligned = batch.points @ rotation.transpose(1, 2) + t[:, None]
    squared = ((joints - aligned) ** 2).sum(dim=-1) * batch.inv_size2
    return (batch.weight * _geman_mcclure(squared, sigma)).sum(dim=1)


def _objective(batch: _Batch, *, data: torch.Tensor, joints: torch.Tensor,
               body_pose: torch.Tensor, betas: torch.Tensor,
               config: FitConfig) -> torch.Tensor:
    """Every term of every clip's objective, (C, len(_TERMS)): per-frame terms
    averaged over the clip's frames, temporal ones over its neighbouring frames.

    data (N,): the data term of each frame (weighted); joints (N, 24, 3);
    body_pose (N, 69); betas (C, 10)."""
    per_frame = torch.stack([
        data,
        config.pose_prior_weight * ((body_pose - STANDING_BODY_POSE) ** 2).sum(dim=1),
        config.limit_weight * _limit_penalty(body_pose),
    ], dim=1) * batch.frame_weight[:, None]
    columns = [batch.per_clip(per_frame, batch.clip),
               config.betas_weight * (betas ** 2).sum(dim=1, keepdim=True)]
    if batch.frames > 1:
        per_pair = torch.stack([
            config.smooth_joints_weight * ((joints[1:] - joints[:-1]) ** 2).sum(dim=(1, 2)),
            config.smooth_pose_weight * ((body_pose[1:] - body_pose[:-1]) ** 2).sum(dim=1),
        ], dim=1) * batch.pair_weight[:, None]
        columns.append(batch.per_clip(per_pair, batch.pair_clip))
    else:
        columns.append(data.new_zeros(batch.count, 2))
    return torch.cat(columns, dim=1)


def _sigma(progress: float, config: FitConfig) -> float:
    """The Geman-McClure scale at ``progress`` (0..1) through a stage: it shrinks
    geometrically from robust_sigma_start to robust_sigma over the first 70 % of the
    steps (far-off joints keep a gradient early on), then stays there."""
    remaining = max(0.0, 1.0 - progress / 0.7)
    start = max(config.robust_sigma_start, config.robust_sigma)
    return config.robust_sigma * (start / config.robust_sigma) ** remaining


def _adam(params: list[torch.Tensor], loss_fn, *, steps: int, lr: float) -> torch.Tensor:
    """Runs Adam for ``steps`` steps on ``loss_fn(progress)`` (progress = step / steps),
    lr decaying lr -> lr / 20 (cosine). loss_fn returns a scalar or one loss per clip
    (C,), whose sum is minimised; returns the losses of every step, (steps, ...)."""
    if steps == 0:
        return torch.zeros(0)
    optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    history = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step / steps)
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def _converged(history: list[float], tol: float) -> bool:
    if not history:
        return True
    if not all(math.isfinite(v) for v in history):
        return False
    back = history[-max(1, len(history) // 10) - 1] if len(history) > 1 else history[-1]
    return (back - history[-1]) <= tol * max(abs(history[-1]), 1e-12)


def _yaw_orient(yaw_deg: torch.Tensor) -> torch.Tensor:
    """Axis-angle of a turn about world up. (B,) degrees -> (B, 3)."""
    zeros = torch.zeros_like(yaw_deg)
    return torch.stack([zeros, torch.deg2rad(yaw_deg), zeros], dim=1)


# ---------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------


def fit_track(*, keypoints=None, world=None, confidence, joint_map: JointMap | Sequence[int],
              camera: Camera | None = None, image_size: tuple[int, int] | None = None,
              body: torch.nn.Module | None = None,
              config: FitConfig = FitConfig()) -> FitResult:
    """Fits SMPL parameters to one person's track (see the module docstring).

    keypoints: (T, K, 2) pixels, or world: (T, K, 3) metres root-relative (exactly
    one of the two); numpy or torch; NaN marks a missing keypoint.
    confidence: (T, K) in [0, 1]; below config.min_confidence counts as missing.
    joint_map: a JointMap (SMPL24_MAP, COCO17_MAP, ...) or a list of SMPL indices.
    camera: the camera of the keypoints; when None in 2D mode, ``default_camera``
    (focal = max(H, W), level, on +z) is built from image_size (H, W), required then.
    body: an SMPL-format body (``load_body_model``); None: the procedural body.
    Raises ValueError("no person in the track: ...") when no frame has
    config.min_keypoints usable keypoints.

    The one-clip case of ``fit_tracks`` (same code, same result).
    """
    _check_call(keypoints, world, config)
    _check_camera(camera)
    points = keypoints if world is None else world
    return _fit_batch([points], [confidence], dim=2 if world is None else 3,
                      joint_map=as_joint_map(joint_map), cameras=[camera],
                      image_sizes=[image_size], body=body, config=config, labels=[None],
                      on_error="raise")[0]


def fit_tracks(*, keypoints=None, world=None, confidence, joint_map: JointMap | Sequence[int],
               camera: Camera | None | Sequence[Camera | None] = None,
               image_size: tuple[int, int] | Sequence[tuple[int, int] | None] | None = None,
               body: torch.nn.Module | None = None, config: FitConfig = FitConfig(),
               names: Sequence[str] | None = None,
               on_error: str = "raise") -> list[FitResult | None]:
    """Fits many clips' tracks in one optimisation; one FitResult per clip, in order.

    The clips are stacked along the frame axis: each has its own betas, camera and
    per-frame pose, and the objective is the sum of the clips' objectives, so every
    clip gets the result ``fit_track`` gives it alone (to float rounding), while the
    cost of a step is paid once for the whole batch.

    keypoints: a sequence of (T_i, K, 2) pixel tracks (or one (B, T, K, 2) array), or
    world: of (T_i, K, 3) metres, exactly one of the two; clips may differ in T but
    share K and ``joint_map``. confidence: a sequence of (T_i, K).
    camera: one Camera (or None) for every clip, or a sequence with one per clip.
    image_size: (H, W) for every clip, or a sequence with one per clip (needed for
    clips without a camera in 2D mode). body, config: as ``fit_track``.
    names: what to call the clips in error messages (default: their position).
    on_error: "raise" (default): a clip that cannot be fitted (no person in its
    track, ...) raises ValueError("clip 'name' (#i): ...") before anything is fitted;
    "skip": it is left out with a warning and its result is None, the other clips are
    fitted as if it were not there.
    """
    _check_call(keypoints, world, config)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    dim = 2 if world is None else 3
    clips = _per_clip_arrays(keypoints if world is None else world,
                             "keypoints" if world is None else "world", ndim=3)
    confidences = _per_clip_arrays(confidence, "confidence", ndim=2)
    count = len(clips)
    if len(confidences) != count:
        raise ValueError(f"confidence must have one (T, K) array per clip: {count} tracks "
                         f"but {len(confidences)} confidences")
    cameras = _one_per_clip(camera, single=isinstance(camera, Camera) or camera is None, count=count,
                            name="camera", one="Camera")
    for each in cameras:
        _check_camera(each)
    image_sizes = _one_per_clip(image_size, single=image_size is None or _is_image_size(image_size),
                                count=count, name="image_size", one="(H, W)")
    if names is None:
        labels = [f"clip #{i}" for i in range(count)]
    else:
        names = list(names)
        if len(names) != count:
            raise ValueError(f"names: give one name per clip ({count}), got {len(names)}")
        labels = [f"clip {name!r} (#{i})" for i, name in enumerate(names)]
    return _fit_batch(clips, confidences, dim=dim, joint_map=as_joint_map(joint_map),
                      cameras=cameras, image_sizes=image_sizes, body=body, config=config,
                      labels=labels, on_error=on_error)


def _one_per_clip(value, *, single: bool, count: int, name: str, one: str) -> list:
    """``value`` for every clip when it is a ``single`` one, else the sequence, which must
    hold one entry per clip."""
    if single:
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name}: give one {one} for every clip or a list of {count} "
                         f"(one per clip), got a list of {len(values)}")
    return values


def _check_call(keypoints, world, config) -> None:
    if (keypoints is None) == (world is None):
        raise ValueError("give exactly one of keypoints (T, K, 2) pixels or world (T, K, 3) "
                         "metres, got " + ("neither" if keypoints is None else "both"))
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")


def _check_camera(camera) -> None:
    if camera is not None and not isinstance(camera, Camera):
        raise TypeError(f"camera must be a macm_core.render.Camera or None, got "
                        f"{type(camera).__name__}")


def _is_image_size(value) -> bool:
    """Whether value is one (H, W) pair rather than a sequence of them."""
    try:
        return len(value) == 2 and all(np.ndim(v) == 0 for v in value)
    except TypeError:
        return False


def _per_clip_arrays(value, name: str, *, ndim: int) -> list:
    """A sequence of per-clip arrays (or one stacked array with a clip axis) as a list."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        if len(shape) != ndim + 1:
            raise ValueError(f"fit_tracks takes one {name} array per clip: a list of "
                             f"{ndim}-D arrays or one {ndim + 1}-D array with the clips first, "
                             f"got one array of shape {tuple(shape)}; fit one clip with "
                             f"fit_track")
        return list(value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a sequence of per-clip arrays, got "
                        f"{type(value).__name__}")
    return list(value)


_FK_CACHE: dict[int, tuple[torch.nn.Module, JointsFK]] = {}


def _joints_fk(body: torch.nn.Module | None) -> JointsFK:
    """The joints-only forward kinematics of a body (built once per body)."""
    body = _default_body() if body is None else body
    cached = _FK_CACHE.get(id(body))
    if cached is None or cached[0] is not body:
        if len(_FK_CACHE) > 4:
            _FK_CACHE.clear()
        cached = _FK_CACHE[id(body)] = (body, JointsFK(body))
    return cached[1]


def _fit_batch(clips: list, confidences: list, *, dim: int, joint_map: JointMap,
               cameras: list, image_sizes: list, body, config: FitConfig,
               labels: list, on_error: str) -> list[FitResult | None]:
    """Prepares every clip (per clip: checks, starting camera and translation), then
    fits the usable ones in one batch. labels[i] None: errors are raised unlabelled."""
    fk = _joints_fk(body)
    rigid = _standing_joints(fk) if dim == 2 else None
    tracks, kept, starts = [], [], []
    for i, (points, confidence) in enumerate(zip(clips, confidences)):
        try:
            track = _prepare_track(points, confidence, joint_map, dim=dim, config=config)
            if dim == 2:
                camera, transl0 = _start_2d(track, camera=cameras[i], image_size=image_sizes[i],
                                            rigid=rigid)
            else:
                camera, transl0 = cameras[i], None
        except ValueError as error:
            if labels[i] is None:
                raise
            if on_error == "raise":
                raise ValueError(f"{labels[i]}: {error}") from error
            warnings.warn(f"{labels[i]} skipped: {error}", stacklevel=3)
            continue
        tracks.append(track)
        kept.append(i)
        starts.append((camera, transl0))
    results: list[FitResult | None] = [None] * len(clips)
    if not tracks:
        return results
    batch = _Batch(tracks)
    chosen = [camera for camera, _ in starts]
    if dim == 2:
        fitted = _fit_2d(batch, fk=fk, rigid=rigid, cameras=chosen,
                         transl0=torch.cat([t for _, t in starts]), config=config)
    else:
        fitted = _fit_3d(batch, fk=fk, cameras=chosen, config=config)
    for i, result in zip(kept, fitted):
        results[i] = result
    return results


def _standing_joints(fk: JointsFK) -> torch.Tensor:
    """Joints (24, 3) of the standing mean body facing +z with transl 0; it turns
    rigidly about its pelvis (joint 0)."""
    with torch.no_grad():
        return fk(global_orient=torch.zeros(1, 3), body_pose=STANDING_BODY_POSE[None],
                  betas=torch.zeros(1, NUM_BETAS), transl=torch.zeros(1, 3))[0]


def _turned(rigid: torch.Tensor, yaw_deg: torch.Tensor) -> torch.Tensor:
    """The rigid standing joints (J, 3) turned by yaw_deg (B,) about the pelvis
    (joint 0 of the full body, given as ``rigid[0]``): (B, J, 3)."""
    pelvis = rigid[0]
    rotation = rodrigues(_yaw_orient(yaw_deg))
    return (rigid - pelvis) @ rotation.transpose(1, 2) + pelvis


def _start_2d(track: _Track, *, camera: Camera | None, image_size,
              rigid: torch.Tensor) -> tuple[Camera, torch.Tensor]:
    """The camera of a 2D track (the given one, or ``default_camera`` at the depth the
    standing body is estimated at) and the starting translation (T, 3)."""
    frames = track.points.shape[0]
    facing = 0.0 if camera is None else float(camera.yaw_deg)
    with torch.no_grad():
        template = _turned(rigid, torch.tensor([facing]))[:, track.index].expand(frames, -1, -1)
        if camera is None:
            if image_size is None:
                raise ValueError("without a camera, give image_size=(height, width) so a "
                                 "pinhole with focal = max(H, W) can be assumed")
            focal = float(max(check_image_size(image_size)))
            depth = estimate_depth(keypoints=track.points, weight=track.weight,
                                   template=template, focal_px=focal)
            camera = default_camera(image_size=image_size, distance=float(depth.median()))
        else:
            depth = estimate_depth(keypoints=track.points, weight=track.weight,
                                   template=template, focal_px=camera.focal_px)
        transl0 = initial_translation(keypoints=track.points, weight=track.weight,
                                      template=template, camera=camera, depth=depth)
    return camera, transl0


def _fit_2d(batch: _Batch, *, fk: JointsFK, rigid: torch.Tensor, cameras: list[Camera],
            transl0: torch.Tensor, config: FitConfig) -> list[FitResult]:
    frames = batch.frames
    projector = _Cameras.stack(cameras, batch.lengths)
    facing = torch.tensor([float(c.yaw_deg) for c in cameras])[batch.clip]          # (N,)

    # stage 1: orientation and translation on the torso, several headings at once;
    # the standing body only turns about its pelvis: its joints are a rigid template
    hypotheses = torch.tensor(config.yaw_hypotheses_deg, dtype=torch.float32)
    count = len(hypotheses)
    # only the keypoints of torso joints count (the others would weigh 0)
    torso = torch.tensor([k for k, j in enumerate(batch.index.tolist()) if j in TORSO_JOINTS],
                         dtype=torch.long)
    torso_weight = batch.weight.index_select(1, torso).repeat(count, 1)
    orient = _yaw_orient((facing[None] + hypotheses[:, None]).reshape(-1)).requires_grad_()
    transl = transl0.repeat(count, 1).requires_grad_()
    pelvis = rigid[0]
    relative = (rigid - pelvis).index_select(0, batch.index.index_select(0, torso))  # (K', 3)
    # the batch seen once per heading
    points = batch.points.index_select(1, torso).repeat(count, 1, 1)
    inv_size2 = batch.inv_size2.repeat(count, 1)
    stacked_cameras = projector.repeat(count)
    entry_weight = batch.frame_weight.repeat(count)

    def stage1_per_frame(progress=1.0):
        # the turned template, as one (3 HN, 3) x (3, K') product
        joints = (rodrigues(orient) @ relative.T).transpose(1, 2) + pelvis + transl[:, None]
        return _data_2d(joints, points=points, inv_size2=inv_size2, cameras=stacked_cameras,
                        sigma=_sigma(progress, config), weight=torso_weight)

    _adam([orient, transl], lambda progress: (stage1_per_frame(progress) * entry_weight).sum(),
          steps=config.orient_steps, lr=config.lr)
    with torch.no_grad():
        best = stage1_per_frame().reshape(count, frames).argmin(dim=0)
        pick = best * frames + torch.arange(frames)
        orient0, transl0 = orient[pick].detach(), transl[pick].detach()

    # stage 2: everything
    orient = orient0.clone().requires_grad_()
    transl = transl0.clone().requires_grad_()
    body_pose = STANDING_BODY_POSE.expand(frames, -1).clone().requires_grad_()
    betas = torch.zeros(batch.count, NUM_BETAS, requires_grad=config.fit_betas)

    def terms(progress=1.0):
        joints = fk(global_orient=orient, body_pose=body_pose,
                    betas=betas.index_select(0, batch.clip), transl=transl)
        data = _data_2d(joints.index_select(1, batch.index), points=batch.points,
                        inv_size2=batch.inv_size2, cameras=projector,
                        sigma=_sigma(progress, config), weight=batch.weight)
        return _objective(batch, data=data, joints=joints, body_pose=body_pose, betas=betas,
                          config=config)

    params = [orient, transl, body_pose] + ([betas] if config.fit_betas else [])
    history = _adam(params, lambda progress: terms(progress).sum(dim=1),
                    steps=config.full_steps, lr=config.lr)
    return _results(batch, fk, orient=orient, body_pose=body_pose, betas=betas, transl=transl,
                    cameras=cameras, terms=terms, history=history, config=config)


def _fit_3d(batch: _Batch, *, fk: JointsFK, cameras: list[Camera | None],
            config: FitConfig) -> list[FitResult]:
    frames = batch.frames
    facing = torch.tensor([0.0 if c is None else float(c.yaw_deg) for c in cameras])
    orient0 = _yaw_orient(facing[batch.clip])
    transl0 = torch.zeros(frames, 3)
    body_pose = STANDING_BODY_POSE.expand(frames, -1).clone().requires_grad_()
    betas = torch.zeros(batch.count, NUM_BETAS, requires_grad=config.fit_betas)

    def joints_now(orient=orient0, transl=transl0):
        return fk(global_orient=orient, body_pose=body_pose,
                  betas=betas.index_select(0, batch.clip), transl=transl)

    def terms(progress=1.0):
        joints = joints_now()
        data = config.world_weight * _data_3d(joints.index_select(1, batch.index), batch,
                                              _sigma(progress, config))
        return _objective(batch, data=data, joints=joints, body_pose=body_pose, betas=betas,
                          config=config)

    params = [body_pose] + ([betas] if config.fit_betas else [])
    history = _adam(params, lambda progress: terms(progress).sum(dim=1),
                    steps=config.orient_steps + config.full_steps, lr=config.lr)

    # orientation: the landmarks' axes are the camera's (x right, y down, z forward)
    with torch.no_grad():
        pred = joints_now()[:, batch.index]
        _, align, _ = procrustes(batch.points, pred, weight=batch.weight)  # landmarks -> body
        yaw0 = torch.diag(torch.tensor([1.0, -1.0, -1.0]))                  # a yaw-0 camera
        to_world = torch.stack([yaw0 if c is None else c.rotation().T
                                for c in cameras])[batch.clip]
        start = torch.as_tensor(Rotation.from_rotvec(orient0.double().numpy()).as_matrix())
        final = to_world.double() @ align.double().transpose(1, 2) @ start
        orient = torch.as_tensor(Rotation.from_matrix(final.numpy()).as_rotvec()).float()
        # the landmarks are root-relative: the pelvis goes to the camera's target
        pelvis = fk.rest(betas.detach())[:, 0]                                   # (C, 3)
        target = torch.tensor([(0.0, 0.0, 0.0) if c is None else c.target for c in cameras],
                              dtype=torch.float32)
        transl = (target - pelvis)[batch.clip]
    return _results(batch, fk, orient=orient, body_pose=body_pose, betas=betas, transl=transl,
                    cameras=cameras, terms=terms, history=history, config=config)


def _results(batch: _Batch, fk: JointsFK, *, orient, body_pose, betas, transl, cameras, terms,
             history: torch.Tensor, config: FitConfig) -> list[FitResult]:
    """One FitResult per clip of the batch; history: (steps, C) losses of stage 2."""
    with torch.no_grad():
        final = terms().tolist()
        joints = fk(global_orient=orient, body_pose=body_pose,
                    betas=betas.index_select(0, batch.clip), transl=transl)
    histories = history.T.tolist() if len(history) else [[] for _ in range(batch.count)]
    orient, body_pose = orient.detach(), body_pose.detach()
    betas, transl = betas.detach(), transl.detach()
    results = []
    for c in range(batch.count):
        span = batch.span(c)
        losses = {name: value for name, value in zip(_TERMS, final[c])
                  if batch.lengths[c] > 1 or not name.startswith("smooth_")}
        losses["total"] = sum(losses.values())
        results.append(FitResult(
            global_orient=orient[span].clone(), body_pose=body_pose[span].clone(),
            betas=betas[c].clone(), transl=transl[span].clone(), joints=joints[span].clone(),
            camera=cameras[c], losses=losses,
            converged=_converged(histories[c], config.converge_tol)
            and all(math.isfinite(v) for v in losses.values())))
    return results

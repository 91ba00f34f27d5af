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

Keypoint layouts are described by a ``JointMap``: for each keypoint, the SMPL joint
it corresponds to (or -1) and the weight of its term. ``SMPL24_MAP`` is the identity
on SMPL's 24 joints; ``COCO17_MAP`` maps COCO-17 (the pose backends' output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rodrigues

from macm_core.body.limits import limit_penalty
from macm_core.body.skeleton import JOINT_INDEX, NUM_JOINTS
from macm_core.body.smpl import NUM_BETAS, NUM_BODY_POSE, ProceduralSMPL
from macm_core.fit.camera import (check_image_size, default_camera, estimate_depth,
                                  initial_translation, project)
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
    chain), but cheaper, which is what makes a fit step fast: the tree is walked one
    depth level at a time (8 batched steps instead of 23), with the joints stored in
    an order where each level's parents are, for most levels, simply the previous
    level (a view, no gather).
    """

    def __init__(self, body: torch.nn.Module):
        with torch.no_grad():
            regressor = body.J_regressor.float()
            self.template = regressor @ body.v_template.float()                      # (24, 3)
            self.directions = torch.einsum("jv,vcl->jcl", regressor,
                                           body.shapedirs.float())                   # (24, 3, 10)
        parents = [int(p) for p in body.parents]
        parents[0] = -1
        # level order: each level's joints sorted by their parent's place in the level above
        levels = [[0]]
        while True:
            above = levels[-1]
            level = sorted((j for j in range(NUM_JOINTS) if parents[j] in above),
                           key=lambda j: (above.index(parents[j]), j))
            if not level:
                break
            levels.append(level)
        order = [j for level in levels for j in level]
        self.order = torch.tensor(order)
        self.inverse = torch.tensor([order.index(j) for j in range(NUM_JOINTS)])
        self.parents = torch.tensor([max(p, 0) for p in parents])
        # per level below the root: (start, size) in level order and how to pick each
        # joint's parent from the level above: None (the same places), an int (a run
        # of places starting there), or an index tensor
        self.levels = []
        start = 1
        for above, level in zip(levels, levels[1:]):
            parent_at = [above.index(parents[j]) for j in level]
            if parent_at == list(range(len(above))):
                pick = None
            elif parent_at == list(range(parent_at[0], parent_at[0] + len(level))):
                pick = parent_at[0]
            else:
                pick = torch.tensor(parent_at)
            self.levels.append((start, len(level), pick))
            start += len(level)

    def rest(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest joints of a shape: betas (B, 10) -> (B, 24, 3)."""
        return self.template + torch.einsum("jcl,bl->bjc", self.directions, betas)

    def __call__(self, *, global_orient: torch.Tensor, body_pose: torch.Tensor,
                 betas: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
        """global_orient (B, 3), body_pose (B, 69), betas (B or 1, 10), transl (B, 3)
        -> joints (B, 24, 3)."""
        batch = body_pose.shape[0]
        rest = self.rest(betas)                                        # (b, 24, 3)
        offsets = (rest - rest.index_select(1, self.parents)).index_select(1, self.order)
        pose = torch.cat([global_orient, body_pose], dim=1).reshape(batch, NUM_JOINTS, 3)
        local = batch_rodrigues(pose.index_select(1, self.order).reshape(-1, 3))
        # [R_j | offset_j] of every joint, level order: (B, 24, 3, 4)
        frames = torch.cat([local.reshape(batch, NUM_JOINTS, 3, 3),
                            offsets.expand(batch, -1, -1)[..., None]], dim=-1)
        rotations = frames[:, :1, :, :3]                 # of the level above
        positions = rest[:, :1].expand(batch, 1, 3)      # of the level above
        every = [positions]
        for start, size, pick in self.levels:
            if pick is None:
                parent_rot, parent_pos = rotations, positions
            elif isinstance(pick, int):
                parent_rot = rotations.narrow(1, pick, size)
                parent_pos = positions.narrow(1, pick, size)
            else:
                parent_rot = rotations.index_select(1, pick)
                parent_pos = positions.index_select(1, pick)
            moved = parent_rot @ frames.narrow(1, start, size)       # (B, n, 3, 4)
            positions = parent_pos + moved[..., 3]
            rotations = moved[..., :3]
            every.append(positions)
        return torch.cat(every, dim=1).index_select(1, self.inverse) + transl[:, None]


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
# The objective
# ---------------------------------------------------------------------------------


def _geman_mcclure(squared: torch.Tensor, sigma: float) -> torch.Tensor:
    """sigma^2 r^2 / (sigma^2 + r^2) of squared residuals r^2: r^2 when small, sigma^2
    at most."""
    return sigma ** 2 * squared / (sigma ** 2 + squared)


def _data_2d(joints: torch.Tensor, track: _Track, camera: Camera, sigma: float,
             weight: torch.Tensor) -> torch.Tensor:
    """Robust reprojection error of each keypoint. joints (B, 24, 3), where B is
    the track's T or a multiple of it (stacked starting guesses) -> (B, K)."""
    uv = project(joints.index_select(1, track.index), camera)
    groups = joints.shape[0] // track.points.shape[0]
    squared = ((uv - track.points.repeat(groups, 1, 1)) ** 2).sum(dim=-1) / track.size ** 2
    return weight * _geman_mcclure(squared, sigma)


def _data_3d(joints: torch.Tensor, track: _Track, sigma: float) -> torch.Tensor:
    """Robust 3D error of each frame after aligning the landmarks rigidly onto the
    body (the alignment is held fixed for the gradient: at the optimal alignment its
    own derivative vanishes). joints (T, 24, 3) -> (T,)."""
    pred = joints.index_select(1, track.index)
    with torch.no_grad():
        _, rotation, t = procrustes(track.points, pred.detach(), weight=track.weight)
    aligned = track.points @ rotation.transpose(1, 2) + t[:, None]
    squared = ((pred - aligned) ** 2).sum(dim=-1) / track.size ** 2
    return (track.weight * _geman_mcclure(squared, sigma)).sum(dim=1)


def _priors(*, joints, body_pose, betas, config: FitConfig) -> dict[str, torch.Tensor]:
    """The prior terms (each a scalar, averaged over frames)."""
    terms = {
        "pose_prior": config.pose_prior_weight
        * ((body_pose - STANDING_BODY_POSE) ** 2).sum(dim=1).mean(),
        "limits": config.limit_weight * limit_penalty(body_pose).mean(),
        "betas": config.betas_weight * (betas ** 2).sum(),
    }
    if joints.shape[0] > 1:
        terms["smooth_joints"] = config.smooth_joints_weight * (
            (joints[1:] - joints[:-1]) ** 2).sum(dim=(1, 2)).mean()
        terms["smooth_pose"] = config.smooth_pose_weight * (
            (body_pose[1:] - body_pose[:-1]) ** 2).sum(dim=1).mean()
    return terms


def _sigma(progress: float, config: FitConfig) -> float:
    """The Geman-McClure scale at ``progress`` (0..1) through a stage: it shrinks
    geometrically from robust_sigma_start to robust_sigma over the first 70 % of the
    steps (far-off joints keep a gradient early on), then stays there."""
    remaining = max(0.0, 1.0 - progress / 0.7)
    start = max(config.robust_sigma_start, config.robust_sigma)
    return config.robust_sigma * (start / config.robust_sigma) ** remaining


def _adam(params: list[torch.Tensor], loss_fn, *, steps: int, lr: float) -> list[float]:
    """Runs Adam for ``steps`` steps on ``loss_fn(progress)`` (progress = step / steps),
    lr decaying lr -> lr / 20 (cosine); returns the total loss of every step."""
    if steps == 0:
        return []
    optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    history = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step / steps)
        loss.backward()
        optimizer.step()
        history.append(loss.detach())
    return [float(v) for v in torch.stack(history)]


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
    """
    if (keypoints is None) == (world is None):
        raise ValueError("give exactly one of keypoints (T, K, 2) pixels or world (T, K, 3) "
                         "metres, got " + ("neither" if keypoints is None else "both"))
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
    if camera is not None and not isinstance(camera, Camera):
        raise TypeError(f"camera must be a macm_core.render.Camera or None, got "
                        f"{type(camera).__name__}")
    joint_map = as_joint_map(joint_map)
    fk = JointsFK(body if body is not None else _default_body())
    if keypoints is not None:
        track = _prepare_track(keypoints, confidence, joint_map, dim=2, config=config)
        return _fit_2d(track, fk=fk, camera=camera, image_size=image_size, config=config)
    track = _prepare_track(world, confidence, joint_map, dim=3, config=config)
    return _fit_3d(track, fk=fk, camera=camera, config=config)


def _template_joints(fk: JointsFK, *, yaw_deg: float, frames: int) -> torch.Tensor:
    """Joints (T, 24, 3) of the standing mean body facing heading yaw_deg, transl 0."""
    orient = _yaw_orient(torch.full((frames,), float(yaw_deg)))
    return fk(global_orient=orient, body_pose=STANDING_BODY_POSE.expand(frames, -1),
              betas=torch.zeros(1, NUM_BETAS), transl=torch.zeros(frames, 3))


def _fit_2d(track: _Track, *, fk: JointsFK, camera: Camera | None,
            image_size: tuple[int, int] | None, config: FitConfig) -> FitResult:
    frames = track.points.shape[0]
    facing = 0.0 if camera is None else float(camera.yaw_deg)
    with torch.no_grad():
        template = _template_joints(fk, yaw_deg=facing, frames=frames)[:, track.index]
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

    # stage 1: orientation and translation on the torso, several headings at once
    hypotheses = torch.tensor(config.yaw_hypotheses_deg, dtype=torch.float32)
    count = len(hypotheses)
    torso = torch.tensor([int(j) in TORSO_JOINTS for j in track.index])
    torso_weight = (track.weight * torso[None]).repeat(count, 1)
    stage1 = _Track(points=track.points, weight=torso_weight, index=track.index,
                    size=track.size)
    orient = _yaw_orient((facing + hypotheses).repeat_interleave(frames)).requires_grad_()
    transl = transl0.repeat(count, 1).requires_grad_()
    # the standing body only turns about its pelvis: its joints are a rigid template
    rigid = _template_joints(fk, yaw_deg=0.0, frames=1)[0]
    pelvis = rigid[0]

    def stage1_loss(progress=1.0, per_frame=False):
        rotation = batch_rodrigues(orient)
        joints = (rigid - pelvis) @ rotation.transpose(1, 2) + pelvis + transl[:, None]
        data = _data_2d(joints, stage1, camera, _sigma(progress, config),
                        stage1.weight).sum(dim=1)
        return data if per_frame else data.sum() / frames

    _adam([orient, transl], stage1_loss, steps=config.orient_steps, lr=config.lr)
    with torch.no_grad():
        best = stage1_loss(per_frame=True).reshape(count, frames).argmin(dim=0)
        pick = best * frames + torch.arange(frames)
        orient0, transl0 = orient[pick].detach(), transl[pick].detach()

    # stage 2: everything
    orient = orient0.clone().requires_grad_()
    transl = transl0.clone().requires_grad_()
    body_pose = STANDING_BODY_POSE.expand(frames, -1).clone().requires_grad_()
    betas = torch.zeros(1, NUM_BETAS, requires_grad=config.fit_betas)

    def terms(progress=1.0):
        joints = fk(global_orient=orient, body_pose=body_pose, betas=betas, transl=transl)
        data = _data_2d(joints, track, camera, _sigma(progress, config), track.weight)
        return {"data": data.sum(dim=1).mean(),
                **_priors(joints=joints, body_pose=body_pose, betas=betas, config=config)}

    params = [orient, transl, body_pose] + ([betas] if config.fit_betas else [])
    history = _adam(params, lambda progress: sum(terms(progress).values()),
                    steps=config.full_steps, lr=config.lr)
    return _result(fk, orient=orient, body_pose=body_pose, betas=betas, transl=transl,
                   camera=camera, terms=terms, history=history, config=config)


def _fit_3d(track: _Track, *, fk: JointsFK, camera: Camera | None,
            config: FitConfig) -> FitResult:
    frames = track.points.shape[0]
    facing = 0.0 if camera is None else float(camera.yaw_deg)
    orient0 = _yaw_orient(torch.full((frames,), facing))
    transl0 = torch.zeros(frames, 3)
    body_pose = STANDING_BODY_POSE.expand(frames, -1).clone().requires_grad_()
    betas = torch.zeros(1, NUM_BETAS, requires_grad=config.fit_betas)

    def joints_now(orient=orient0, transl=transl0):
        return fk(global_orient=orient, body_pose=body_pose, betas=betas, transl=transl)

    def terms(progress=1.0):
        joints = joints_now()
        data = config.world_weight * _data_3d(joints, track, _sigma(progress, config)).mean()
        return {"data": data, **_priors(joints=joints, body_pose=body_pose, betas=betas,
                                        config=config)}

    params = [body_pose] + ([betas] if config.fit_betas else [])
    history = _adam(params, lambda progress: sum(terms(progress).values()),
                    steps=config.orient_steps + config.full_steps, lr=config.lr)

    # orientation: the landmarks' axes are the camera's (x right, y down, z forward)
    with torch.no_grad():
        pred = joints_now()[:, track.index]
        _, align, _ = procrustes(track.points, pred, weight=track.weight)   # landmarks -> body
        if camera is None:
            to_world = torch.diag(torch.tensor([1.0, -1.0, -1.0]))          # a yaw-0 camera
        else:
            to_world = camera.rotation().T
        start = torch.as_tensor(Rotation.from_rotvec(orient0.double().numpy()).as_matrix())
        final = to_world.double() @ align.double().transpose(1, 2) @ start
        orient = torch.as_tensor(Rotation.from_matrix(final.numpy()).as_rotvec()).float()
        # the landmarks are root-relative: the pelvis goes to the camera's target
        pelvis = fk.rest(betas.detach())[0, 0]
        target = torch.zeros(3) if camera is None else torch.tensor(camera.target)
        transl = (target - pelvis).expand(frames, 3).clone()
    return _result(fk, orient=orient, body_pose=body_pose, betas=betas, transl=transl,
                   camera=camera, terms=terms, history=history, config=config)


def _result(fk: JointsFK, *, orient, body_pose, betas, transl, camera, terms, history,
            config: FitConfig) -> FitResult:
    with torch.no_grad():
        losses = {name: float(value) for name, value in terms().items()}
        losses["total"] = sum(losses.values())
        joints = fk(global_orient=orient, body_pose=body_pose, betas=betas, transl=transl)
    return FitResult(global_orient=orient.detach().clone(), body_pose=body_pose.detach().clone(),
                     betas=betas.detach()[0].clone(), transl=transl.detach().clone(),
                     joints=joints.detach(), camera=camera, losses=losses,
                     converged=_converged(history, config.converge_tol)
                     and all(math.isfinite(v) for v in losses.values()))

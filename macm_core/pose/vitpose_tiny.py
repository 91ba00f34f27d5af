"""ViTPose-tiny: a plain ViT encoder and ViTPose's classic deconvolution heatmap head.

After Xu et al. 2022 (ViTPose), shrunk to train on a CPU in minutes on the synthetic
HMI-Synth frames, where one person fills the whole frame (so the whole frame is the
"person crop"):

- patch embedding of the frame (resized to ``image_size``), learned position embedding,
  a plain pre-norm ViT encoder (no class token);
- the "classic decoder": two 4x4 stride-2 transposed convolutions, each with batch norm
  and ReLU, then a 1x1 convolution to one heatmap per joint.  The encoder works at
  1/``patch_size`` of the input, so the heatmaps have ``4 / patch_size`` of its
  resolution (1/4 with the default patch of 16, as in ViTPose);
- Gaussian target heatmaps, MSE loss weighted per joint, decoding by argmax refined to
  sub-cell precision (a parabola through the log-heatmap, exact for a Gaussian);
  confidence is the heatmap's peak value, so it drops where the joint is hidden.

Keypoints (``KEYPOINT_NAMES``, 29): the 24 SMPL joints of ``macm_core.body.skeleton``,
then COCO's 5 face points (nose, eyes, ears; placed on the body by
``macm_core.pose.coco.smpl_to_coco``), so that ``to_coco17`` can give all of COCO-17.
Pixel convention everywhere (as ``macm_core.pose.base``): the centre of pixel (row i,
column j) is at (u, v) = (j + 0.5, i + 0.5); heatmap cell (i, j) is centred on image
pixel ((j + 0.5) * stride, (i + 0.5) * stride).

Typical use::

    backend = load_vitpose_tiny("cpu")                 # trains first if no checkpoint is cached
    track = backend(frames, fps=8)                     # PoseTrack, COCO-17
    keypoints, confidence = backend.predict(frames)    # (T, 29, 2) pixels, (T, 29) in [0, 1]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from ..body.skeleton import JOINT_NAMES
from ..cache import atomic_path
from .base import PoseTrack, check_fps
from .coco import COCO_NAMES, SMPL_TO_COCO_BODY

CHECKPOINT_VERSION = 1


def _flip_index(names: Sequence[str]) -> tuple[int, ...]:
    """For each joint, the index of its mirror image (left <-> right; itself otherwise)."""
    index = {name: i for i, name in enumerate(names)}
    def mirror(name: str) -> str:
        if name.startswith("left_"):
            return "right_" + name[5:]
        if name.startswith("right_"):
            return "left_" + name[6:]
        return name
    return tuple(index[mirror(name)] for name in names)


FACE_NAMES: tuple[str, ...] = COCO_NAMES[:5]
KEYPOINT_NAMES: tuple[str, ...] = JOINT_NAMES + FACE_NAMES
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
FLIP_INDEX: tuple[int, ...] = _flip_index(KEYPOINT_NAMES)
# COCO_FROM_KEYPOINTS[j]: the keypoint that is COCO-17 joint j
COCO_FROM_KEYPOINTS: tuple[int, ...] = tuple(
    SMPL_TO_COCO_BODY[j] if j in SMPL_TO_COCO_BODY else KEYPOINT_NAMES.index(name)
    for j, name in enumerate(COCO_NAMES))


def _group(*kinds: str) -> tuple[int, ...]:
    return tuple(i for i, n in enumerate(KEYPOINT_NAMES) if n.split("_")[-1] in kinds)


# keypoint groups for PCK; hips go with the legs, collars and face points with head/torso
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "arms": _group("shoulder", "elbow", "wrist", "hand"),
    "legs": _group("hip", "knee", "ankle", "foot"),
    "head_torso": _group("pelvis", "spine1", "spine2", "spine3", "neck", "head", "collar",
                         "nose", "eye", "ear"),
}


def to_coco17(keypoints: Any, confidence: Any) -> tuple[np.ndarray, np.ndarray]:
    """keypoints (..., 29, 2), confidence (..., 29) -> COCO-17 (..., 17, 2), (..., 17)."""
    keypoints, confidence = np.asarray(keypoints), np.asarray(confidence)
    if keypoints.shape[-2:] != (NUM_KEYPOINTS, 2) or confidence.shape != keypoints.shape[:-1]:
        raise ValueError(f"to_coco17 needs keypoints (..., {NUM_KEYPOINTS}, 2) and confidence "
                         f"(..., {NUM_KEYPOINTS}), got {keypoints.shape} and {confidence.shape}")
    index = list(COCO_FROM_KEYPOINTS)
    return keypoints[..., index, :], confidence[..., index]


@dataclass(frozen=True, kw_only=True)
class VitPoseConfig:
    """Architecture of the network and of its targets (defaults: the ``cpu`` profile's,
    0.84 M parameters).

    image_size: side of the square network input (frames are resized to it).
    patch_size: side of a ViT patch; the heatmaps are ``image_size / patch_size * 4`` wide.
    dim, depth, heads, dim_head, mlp_dim: the ViT encoder.
    deconv_channels: channels of the two transposed convolutions of the head.
    num_keypoints: heatmaps (29: ``KEYPOINT_NAMES``).
    sigma: standard deviation of the target Gaussians, in heatmap cells.
    """

    image_size: int = 128
    patch_size: int = 16
    dim: int = 128
    depth: int = 4
    heads: int = 4
    dim_head: int = 32
    mlp_dim: int = 256
    deconv_channels: int = 64
    num_keypoints: int = NUM_KEYPOINTS
    sigma: float = 2.0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "dim", "depth", "heads", "dim_head", "mlp_dim",
                     "deconv_channels", "num_keypoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VitPoseConfig.{name} must be a positive int, got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"VitPoseConfig.image_size ({self.image_size}) must be a multiple of "
                             f"patch_size ({self.patch_size})")
        if not self.sigma > 0:
            raise ValueError(f"VitPoseConfig.sigma must be > 0, got {self.sigma!r}")

    @property
    def heatmap_size(self) -> int:
        return self.image_size // self.patch_size * 4

    @property
    def stride(self) -> float:
        """Input pixels per heatmap cell."""
        return self.image_size / self.heatmap_size


# --------------------------------------------------------------------------- network

class FeedForward(nn.Module):
    def __init__(self, *, dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, *, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, dim) -> (B, N, dim)."""
        q, k, v = rearrange(self.to_qkv(self.norm(x)), "b n (three h d) -> three b h n d",
                            three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class Transformer(nn.Module):
    def __init__(self, *, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([Attention(dim=dim, heads=heads, dim_head=dim_head),
                           FeedForward(dim=dim, hidden_dim=mlp_dim)]) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class VitPoseNet(nn.Module):
    """images (B, 3, S, S) float (normalised, see ``preprocess``) -> heatmaps (B, K, h, h)."""

    def __init__(self, *, config: VitPoseConfig = VitPoseConfig()):
        super().__init__()
        self.config = c = config
        side = c.image_size // c.patch_size
        self.to_patch_embedding = nn.Sequential(
            Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=c.patch_size, p2=c.patch_size),
            nn.LayerNorm(3 * c.patch_size ** 2), nn.Linear(3 * c.patch_size ** 2, c.dim),
            nn.LayerNorm(c.dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, side * side, c.dim) * 0.02)
        self.transformer = Transformer(dim=c.dim, depth=c.depth, heads=c.heads,
                                       dim_head=c.dim_head, mlp_dim=c.mlp_dim)
        self.to_feature_map = Rearrange("b (h w) d -> b d h w", h=side, w=side)
        ch = c.deconv_channels
        self.head = nn.Sequential(
            nn.ConvTranspose2d(c.dim, ch, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
            nn.Conv2d(ch, c.num_keypoints, 1))
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.to_patch_embedding(images) + self.pos_embedding
        return self.head(self.to_feature_map(self.transformer(x)))


def _init_weights(module: nn.Module) -> None:
    # as ViTPose: truncated-normal linear layers, small normal deconvs, zero output bias
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.ConvTranspose2d, nn.Conv2d)):
        nn.init.normal_(module.weight, std=0.001)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- pre/post

def check_frames(frames: Any) -> torch.Tensor:
    """frames (T, H, W, 3) uint8, numpy or torch -> the same as a torch tensor; a clear error otherwise."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a (T, H, W, 3) uint8 numpy array or torch tensor, "
                        f"got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 (0-255 RGB), got dtype {frames.dtype}: convert "
                        "float frames with (frames * 255).round().clip(0, 255).astype(uint8)")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {tuple(frames.shape)}: "
                         "add a leading axis for one frame (frames[None])")
    if min(frames.shape[:3]) == 0:
        raise ValueError(f"frames must hold at least one non-empty frame, got shape {tuple(frames.shape)}")
    return frames


def preprocess(frames: torch.Tensor, *, image_size: int) -> torch.Tensor:
    """frames (B, H, W, 3) uint8 -> network input (B, 3, S, S) float32, resized (bilinear,
    antialiased) when (H, W) != (S, S) and normalised to about zero mean, unit spread."""
    x = rearrange(frames, "b h w c -> b c h w").float().div_(255.0)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=True)
    return (x - 0.5) / 0.25


def gaussian_heatmaps(keypoints: torch.Tensor, *, heatmap_size: int, stride: float,
                      sigma: float) -> torch.Tensor:
    """Target heatmaps: keypoints (B, K, 2) input pixels -> (B, K, h, h) Gaussians of peak 1.

    Non-finite keypoints give an all-zero heatmap (give them zero loss weight too).
    """
    centre = keypoints / stride - 0.5  # in heatmap cells
    finite = torch.isfinite(centre).all(-1)
    centre = torch.nan_to_num(centre, nan=-1e4, posinf=-1e4, neginf=-1e4)
    grid = torch.arange(heatmap_size, dtype=torch.float32)
    gx = torch.exp(-(grid - centre[..., :1]) ** 2 / (2 * sigma ** 2))  # (B, K, w)
    gy = torch.exp(-(grid - centre[..., 1:]) ** 2 / (2 * sigma ** 2))  # (B, K, h)
    heat = gy[..., :, None] * gx[..., None, :]
    return heat * finite[..., None, None]


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Joint-weighted MSE: pred, target (B, K, h, w), weight (B, K) -> scalar.

    Mean over every element (weight 0 joints count as zeros), as ViTPose's JointsMSELoss.
    """
    if pred.shape != target.shape or weight.shape != pred.shape[:2]:
        raise ValueError(f"heatmap_loss needs pred, target (B, K, h, w) and weight (B, K); got "
                         f"{tuple(pred.shape)}, {tuple(target.shape)}, {tuple(weight.shape)}")
    return ((pred - target) ** 2 * weight[..., None, None].to(pred.dtype)).mean()


def decode_heatmaps(heatmaps: torch.Tensor, *, stride: float) -> tuple[torch.Tensor, torch.Tensor]:
    """heatmaps (B, K, h, w) -> keypoints (B, K, 2) input pixels (u, v), confidence (B, K).

    Argmax, then per axis the vertex of the parabola through the log-heatmap at three
    neighbouring cells around the argmax (the argmax and its two neighbours; at the border
    the three nearest cells), exact for a Gaussian; no shift where the log-heatmap is not
    concave there, and never more than half a cell.  Confidence is the peak value
    clamped to [0, 1].
    """
    if heatmaps.ndim != 4 or min(heatmaps.shape) == 0:
        raise ValueError(f"heatmaps must have shape (B, K, h, w), got {tuple(heatmaps.shape)}")
    b, k, h, w = heatmaps.shape
    heat = heatmaps.detach().float()
    peak, index = heat.flatten(2).max(-1)
    y, x = index // w, index % w
    logh = heat.clamp(min=1e-10).log().flatten(2)

    def refine(pos: torch.Tensor, size: int, step: int, other: torch.Tensor) -> torch.Tensor:
        """Sub-cell shift along one axis: pos (B, K) argmax on that axis, step the flat
        stride of that axis, other the flat offset of the other coordinate."""
        if size < 3:
            return torch.zeros_like(pos, dtype=torch.float32)
        mid = pos.clamp(1, size - 2)
        lo, centre, hi = (logh.gather(-1, (other + (mid + d) * step)[..., None])[..., 0] for d in (-1, 0, 1))
        curvature = lo - 2 * centre + hi
        shift = 0.5 * (lo - hi) / curvature + (mid - pos)
        ok = torch.isfinite(shift) & (curvature < 0)
        return torch.where(ok, shift, torch.zeros_like(shift)).clamp(-0.5, 0.5)

    dx = refine(x, w, 1, y * w)
    dy = refine(y, h, w, x)
    keypoints = torch.stack([(x + dx + 0.5) * stride, (y + dy + 0.5) * stride], dim=-1)
    return keypoints, peak.clamp(0.0, 1.0)


def flip_batch(images: torch.Tensor, keypoints: torch.Tensor, weight: torch.Tensor,
               flip: torch.Tensor, *, flip_index: Sequence[int] = FLIP_INDEX
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror the samples where ``flip`` (B,) is True: images (B, C, H, W) left-right,
    keypoints (B, K, 2) pixels u -> W - u, and left/right joints (and their weights) swapped."""
    width = images.shape[-1]
    index = torch.as_tensor(flip_index)
    mirrored = keypoints[:, index].clone()
    mirrored[..., 0] = width - mirrored[..., 0]
    f = flip[:, None, None]
    return (torch.where(flip[:, None, None, None], images.flip(-1), images),
            torch.where(f, mirrored, keypoints), torch.where(flip[:, None], weight[:, index], weight))


# --------------------------------------------------------------------------- metric

def pck(pred: Any, gt: Any, visible: Any, *, threshold: float = 0.1,
        joints: Sequence[int] | None = None) -> float:
    """Percentage of correct keypoints (a fraction in [0, 1]).

    pred, gt: (..., K, 2) pixels; visible: (..., K) bool, the joints that count.
    A joint is correct when its error is at most ``threshold`` times the diagonal of the
    person's box, the box around all of that frame's finite ground-truth joints (visible
    or not).  ``joints`` restricts the count to those joint indices (a joint group).
    NaN when no joint counts.
    """
    pred = torch.as_tensor(np.asarray(pred, dtype=np.float32))
    gt = torch.as_tensor(np.asarray(gt, dtype=np.float32))
    visible = torch.as_tensor(np.asarray(visible))
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 2:
        raise ValueError(f"pck needs pred and gt of the same shape (..., K, 2), got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}")
    if visible.dtype != torch.bool or visible.shape != gt.shape[:-1]:
        raise ValueError(f"pck needs visible as a bool array of shape {tuple(gt.shape[:-1])}, got "
                         f"{visible.dtype} {tuple(visible.shape)}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
        raise ValueError(f"threshold must be a number > 0 (a fraction of the box diagonal), got {threshold!r}")
    finite = torch.isfinite(gt).all(-1)
    big = torch.tensor(float("inf"))
    lo = torch.where(finite[..., None], gt, big).amin(-2)
    hi = torch.where(finite[..., None], gt, -big).amax(-2)
    diagonal = torch.linalg.vector_norm(hi - lo, dim=-1)  # (...,)
    error = torch.linalg.vector_norm(pred - gt, dim=-1)
    correct = error <= threshold * diagonal[..., None]
    mask = visible & finite
    if joints is not None:
        keep = torch.zeros(gt.shape[-2], dtype=torch.bool)
        keep[list(joints)] = True
        mask = mask & keep
    if not mask.any():
        return float("nan")
    return float(correct[mask].float().mean())


# --------------------------------------------------------------------------- backend

class VitPoseTiny:
    """The pose backend (a ``macm_core.pose.base.PoseBackend``).

    ``backend(frames, fps=...)``: frames (T, H, W, 3) uint8 -> ``PoseTrack`` (COCO-17).
    The whole frame is the person box (no detector, as mmpose without one), so
    ``person_count`` is -1 (unknown).
    ``backend.predict(frames)``: keypoints (T, 29, 2) float32 pixels of ``frames``
    (``KEYPOINT_NAMES``), confidence (T, 29) float32 in [0, 1] (the heatmap peak).
    Frames of any size are resized to the network input and the keypoints mapped back.
    """

    name = "vitpose-tiny"
    keypoint_names = KEYPOINT_NAMES

    def __init__(self, *, net: VitPoseNet, batch_size: int = 64, threads: int | None = 1,
                 info: dict | None = None):
        if not isinstance(net, VitPoseNet):
            raise TypeError(f"net must be a VitPoseNet, got {type(net).__name__}")
        if net.config.num_keypoints != NUM_KEYPOINTS:
            raise ValueError(f"the backend needs a network with {NUM_KEYPOINTS} heatmaps "
                             f"(KEYPOINT_NAMES), got {net.config.num_keypoints}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.net = net.eval()
        self.config = net.config
        self.batch_size = batch_size
        self.threads = threads
        self.info = dict(info or {})

    @torch.no_grad()
    def heatmaps(self, frames: Any) -> torch.Tensor:
        """frames (T, H, W, 3) uint8 -> heatmaps (T, 29, h, h) float32 of the network input."""
        frames = check_frames(frames)
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            self.net.eval()
            chunks = [self.net(preprocess(frames[i:i + self.batch_size], image_size=self.config.image_size))
                      for i in range(0, len(frames), self.batch_size)]
        finally:
            torch.set_num_threads(before)
        return torch.cat(chunks)

    def predict(self, frames: Any) -> tuple[np.ndarray, np.ndarray]:
        """frames (T, H, W, 3) uint8 -> keypoints (T, 29, 2) pixels, confidence (T, 29)."""
        frames = check_frames(frames)
        keypoints, confidence = decode_heatmaps(self.heatmaps(frames), stride=self.config.stride)
        height, width = frames.shape[1:3]
        scale = torch.tensor([width / self.config.image_size, height / self.config.image_size])
        return (keypoints * scale).numpy().astype(np.float32), confidence.numpy().astype(np.float32)

    def __call__(self, frames: Any, *, fps: float) -> PoseTrack:
        fps = check_fps(fps)
        frames = check_frames(frames)
        keypoints, confidence = to_coco17(*self.predict(frames))
        return PoseTrack(keypoints=keypoints, confidence=confidence,
                         person_count=np.full(len(frames), -1, np.int64),
                         frame_size=tuple(frames.shape[1:3]), fps=fps, backend=self.name)

    # -------------------------------------------------------------- checkpoints
    def save(self, path: str | Path) -> Path:
        """Write the checkpoint (architecture, weights, ``info``) atomically."""
        state = {"version": CHECKPOINT_VERSION, "config": dataclasses.asdict(self.config),
                 "state_dict": self.net.state_dict(), "info": self.info}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> "VitPoseTiny":
        """The backend of a checkpoint written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ViTPose-tiny checkpoint at {path}: train one with "
                                    "`python -m macm_core.pose.train_vitpose --profile P`")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path} is not a version-{CHECKPOINT_VERSION} ViTPose-tiny checkpoint: "
                             "delete it and train again")
        net = VitPoseNet(config=VitPoseConfig(**state["config"]))
        net.load_state_dict(state["state_dict"])
        return cls(net=net, info=state.get("info", {}), **kwargs)


def load_vitpose_tiny(profile_or_config: Any = "cpu", *, progress: bool = True) -> VitPoseTiny:
    """The trained backend of a profile name, ``Profile`` or ``VitPoseTrainConfig``.

    Loads the cached checkpoint; when there is none, says so and trains it first
    (``train_vitpose.train_vitpose``), never returning an untrained network.
    """
    from .train_vitpose import load_or_train

    return load_or_train(profile_or_config, progress=progress)

"""A dedicated motion encoder over a fitted SMPL sequence (the paper's open question 1).

M-ACM renders the fitted body and feeds the picture to the frozen image encoder. The
alternative tested here reads the body's parameters directly: each frame's 24 joint
rotations in the continuous 6D representation (Zhou et al., CVPR 2019: the first two
columns of the rotation matrix) and its joint velocities, a linear embedding, a small
temporal transformer, and pooling into a fixed number of motion tokens.

    rotations (B, T, 24, 3, 3) -> 6D (B, T, 144) --+
    joints (B, T, 24, 3) -> velocities (B, T, 72) -+-> Linear -> + time -> Transformer
                                                        -> pool to num_tokens -> (B, N, D)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from smplx.lbs import batch_rodrigues
from torch import nn

from macm_core.body.skeleton import NUM_JOINTS


@dataclass(frozen=True, kw_only=True)
class MotionEncoderConfig:
    """dim: transformer width; num_tokens: motion tokens per clip; max_frames: time embedding size."""

    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    num_tokens: int = 8
    max_frames: int = 256
    dropout: float = 0.0


def axis_angle_to_6d(pose: torch.Tensor) -> torch.Tensor:
    """pose (..., J, 3) axis-angle -> (..., J, 6): first two columns of each rotation."""
    matrices = batch_rodrigues(pose.reshape(-1, 3)).reshape(*pose.shape[:-1], 3, 3)
    return rearrange(matrices[..., :, :2], "... r c -> ... (c r)")


def rotation_from_6d(six: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt (the inverse of ``axis_angle_to_6d``)."""
    a, b = six[..., :3], six[..., 3:]
    x = nn.functional.normalize(a, dim=-1)
    y = nn.functional.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
    z = torch.cross(x, y, dim=-1)
    return torch.stack([x, y, z], dim=-1)


def motion_features(*, global_orient: torch.Tensor, body_pose: torch.Tensor,
                    joints: torch.Tensor, fps: float) -> torch.Tensor:
    """Per-frame input features (B, T, 24*6 + 24*3).

    global_orient (B, T, 3), body_pose (B, T, 69) axis-angle; joints (B, T, 24, 3) metres.
    Velocities in metres per second, zero at the first frame; the root's position is
    removed so that the features describe the motion, not where the person stands.
    """
    if body_pose.shape[-1] != 3 * (NUM_JOINTS - 1):
        raise ValueError(f"body_pose must end in {3 * (NUM_JOINTS - 1)} values, got {tuple(body_pose.shape)}")
    pose = torch.cat([global_orient, body_pose], dim=-1).reshape(*body_pose.shape[:-1], NUM_JOINTS, 3)
    six = rearrange(axis_angle_to_6d(pose), "b t j s -> b t (j s)")
    local = joints - joints[:, :, :1]
    velocity = torch.diff(local, dim=1, prepend=local[:, :1]) * fps
    return torch.cat([six, rearrange(velocity, "b t j c -> b t (j c)")], dim=-1)


class MotionEncoder(nn.Module):
    """Temporal transformer over SMPL motion features -> (B, num_tokens, dim) tokens."""

    def __init__(self, config: MotionEncoderConfig = MotionEncoderConfig()):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(NUM_JOINTS * 9, config.dim)
        self.time = nn.Parameter(torch.randn(config.max_frames, config.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, int(config.dim * config.mlp_ratio),
                                           dropout=config.dropout, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    @property
    def hidden_size(self) -> int:
        return self.config.dim

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, T, 216) from ``motion_features``; mask (B, T) True = real frame."""
        b, t, _ = features.shape
        if t > self.config.max_frames:
            raise ValueError(f"{t} frames exceed max_frames={self.config.max_frames}; raise it in the config")
        x = self.embed(features) + self.time[:t]
        x = self.norm(self.transformer(x, src_key_padding_mask=None if mask is None else ~mask))
        if mask is not None:
            x = x * mask[..., None]
        chunks = torch.linspace(0, t, self.config.num_tokens + 1).round().long()
        tokens = []
        for start, stop in zip(chunks[:-1].tolist(), chunks[1:].tolist()):
            stop = max(stop, start + 1)
            if mask is None:
                tokens.append(x[:, start:stop].mean(dim=1))
            else:
                weight = mask[:, start:stop, None].float()
                tokens.append((x[:, start:stop] * weight).sum(1) / weight.sum(1).clamp(min=1.0))
        return torch.stack(tokens, dim=1)

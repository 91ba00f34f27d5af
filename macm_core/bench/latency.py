"""``macm bench latency``: time per caption of every decoder, on the same model and clips.

The paper's Figure 2 times MSD against its baseline decoding (0.41 s per caption for
greedy decoding of the visual pathway, about 1.99 s with all five synergy terms).  This
benchmark measures the same comparison in one run: every decoder of the one decoding
loop (``decoding.loop.decode``: greedy on the visual pathway, greedy on the joint input,
product of experts, VCD) and MSD with CUMULATIVE term sets (basic = L2 alone, then +L1,
+L3, +L4, +L5 = all five), on the same model and the same clips.

How it measures:

* eos is off: every caption is exactly ``max_new_tokens`` long, so the decoders are
  compared per token on equal terms (a decoder that stops early would look faster);
* the first ``warmup`` clips run every decoder once, untimed;
* each timed clip runs every decoder in turn, the order rotated by one per clip, so
  that drift in the machine's load spreads over all decoders alike;
* torch's intra-op threads are fixed for the run (and restored afterwards);
* one JSON object per measurement on stdout: the median, 10th and 90th percentile of the
  per-caption wall time, ms per token, the ratio of the medians to greedy-visual's and
  the median of the per-clip ratios (paired: robust to slow stretches of a shared
  machine); then one summary line, MSD-all / greedy-visual.

``latency_main(profile)`` builds the profile's model (random weights unless a checkpoint
is given; the rows say which) and random encoder features of the cached features' shape,
so it needs neither data nor training.
"""
from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..decoding import DECODERS, DecodeConfig, MSDConfig, PathwayPrompts, VCDConfig, decode
from ..decoding.msd import TERMS

# the paper's Figure 2 adds the terms in this order: basic (L2), +L1, +L3, +L4, +L5
TERM_ORDER = ("L2", "L1", "L3", "L4", "L5")
CUMULATIVE_TERMS: tuple[tuple[str, ...], ...] = tuple(TERM_ORDER[:i + 1] for i in range(len(TERM_ORDER)))

# SmolLM2-135M-Instruct (cpu-pretrained profile), as a Llama config: random weights here
SMOLLM2_135M = dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
# Qwen2-7B (gpu profile) when its folder is not on this machine
QWEN2_7B = dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=False,
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
# SigLIP-so400m-patch14-384 (gpu profile) when its folder is not on this machine
SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                     image_size=384, patch_size=14)


@dataclass(frozen=True)
class Variant:
    """One measured decoder: ``decoder`` of ``DECODERS`` and, for MSD, its enabled terms."""

    decoder: str
    terms: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        if self.terms is None:
            return self.decoder
        return f"msd[{'+'.join(self.terms)}]"


def variants(decoders: Sequence[str] = DECODERS,
             term_sets: Sequence[Sequence[str]] = CUMULATIVE_TERMS) -> list[Variant]:
    """The measurements: each decoder once, MSD once per term set (in the given order)."""
    out: list[Variant] = []
    for decoder in decoders:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected some of {DECODERS}")
        if decoder == "msd":
            for terms in term_sets:
                unknown = set(terms) - set(TERMS)
                if unknown:
                    raise ValueError(f"unknown MSD terms {sorted(unknown)}; expected some of {TERMS}")
                out.append(Variant("msd", tuple(terms)))
        else:
            out.append(Variant(decoder))
    if len(set(out)) != len(out):
        raise ValueError("a decoder or an MSD term set is listed twice")
    return out


@dataclass
class LatencyReport:
    """What ``bench_latency`` printed: one row (dict) per variant, the summary line, and
    MSD-all / greedy-visual (None when either was not measured)."""

    rows: list[dict]
    summary: str
    msd_all_ratio: float | None = None
    seconds: dict[str, list[float]] = field(default_factory=dict)  # label -> per-caption times


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def bench_latency(model, prompts_per_caption: Sequence[PathwayPrompts], *,
                  decoders: Sequence[str] = DECODERS, max_new_tokens: int = 32, threads: int = 1,
                  warmup: int = 1, term_sets: Sequence[Sequence[str]] = CUMULATIVE_TERMS,
                  embed_tokens: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  msd: MSDConfig = MSDConfig(), vcd: VCDConfig = VCDConfig(), pad_token_id: int = 0,
                  info: dict | None = None, emit: Callable[[str], None] = print,
                  decode_fn: Callable = decode) -> LatencyReport:
    """Per-caption wall time of each decoder (and of MSD per term set) on the same clips.

    model: an ``MACMForConditionalGeneration`` (its ``language_model`` decodes) or any
        causal LM that ``decode`` runs (then give ``embed_tokens``).
    prompts_per_caption: one ``PathwayPrompts`` per clip (one caption each, or B: the
        time per caption is then the call's time / B); the first ``warmup`` are only run
        for warm-up; the rest are timed.  Each must hold the pathways the decoders need.
    decoders: from ``DECODERS``; ``msd`` is measured once per entry of ``term_sets``.
    max_new_tokens: the caption length (eos is off, so every caption has exactly this many).
    threads: torch intra-op threads for the run.
    info: extra fields for every row (e.g. ``{"weights": "random", "profile": "cpu"}``).
    decode_fn: the decoding function (``decode``); another one with its signature can be
        compared on the same clips.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    timed_clips = len(prompts_per_caption) - warmup
    if timed_clips < 1:
        raise ValueError(f"{len(prompts_per_caption)} clips leave none to time after {warmup} warm-up clips")
    measured = variants(decoders, term_sets)
    lm = getattr(model, "language_model", model)
    if embed_tokens is None:
        embed_tokens = model.embed_tokens if hasattr(model, "embed_tokens") else lm.get_input_embeddings()
    device = _model_device(lm)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    configs = {v: DecodeConfig(decoder=v.decoder, max_new_tokens=max_new_tokens, eos_token_id=None,
                               pad_token_id=pad_token_id, vcd=vcd,
                               msd=msd.only(*v.terms) if v.terms is not None else msd)
               for v in measured}
    seconds: dict[Variant, list[float]] = {v: [] for v in measured}
    captions_per_clip = [len(p.visual) for p in prompts_per_caption]
    was_training = lm.training
    lm.eval()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for index, prompts in enumerate(prompts_per_caption):
            shift = index % len(measured)
            for variant in measured[shift:] + measured[:shift]:
                sync()
                start = time.perf_counter()
                out = decode_fn(lm, prompts, embed_tokens=embed_tokens, cfg=configs[variant])
                sync()
                elapsed = time.perf_counter() - start
                lengths = {len(tokens) for tokens in out.tokens}
                if lengths != {max_new_tokens}:
                    raise RuntimeError(f"{variant.label} generated {sorted(lengths)} tokens, not {max_new_tokens}")
                if index >= warmup:
                    seconds[variant].append(elapsed / captions_per_clip[index])
    finally:
        torch.set_num_threads(threads_before)
        lm.train(was_training)

    base = Variant("greedy_visual")
    medians = {v: statistics.median(t) for v, t in seconds.items()}
    dtype = str(next(lm.parameters()).dtype).replace("torch.", "")
    rows = []
    for v in measured:
        times = seconds[v]
        row = {"bench": "latency", "decoder": v.decoder, "terms": list(v.terms) if v.terms else None,
               "label": v.label, "median_s": round(medians[v], 5), "p10_s": round(_percentile(times, 10), 5),
               "p90_s": round(_percentile(times, 90), 5), "tokens": max_new_tokens,
               "ms_per_token": round(1000 * medians[v] / max_new_tokens, 3), "captions": len(times)}
        if base in medians:
            paired = [t / g for t, g in zip(times, seconds[base])]
            row["ratio"] = round(medians[v] / medians[base], 4)
            row["paired_ratio"] = round(statistics.median(paired), 4)
        row.update({"threads": threads, "device": str(device), "dtype": dtype, "warmup": warmup})
        row.update(info or {})
        rows.append(row)
        emit(json.dumps(row))

    ratio = None
    where = ", ".join(f"{k}={v}" for k, v in (info or {}).items() if k in ("profile", "weights"))
    head = (f"latency ({where + ', ' if where else ''}{device}, {dtype}, {threads} thread{'s' * (threads > 1)}, "
            f"{timed_clips} clips x {max_new_tokens} tokens)")
    if base in medians and any(v.decoder == "msd" and set(v.terms) == set(TERMS) for v in measured):
        full = next(v for v in measured if v.decoder == "msd" and set(v.terms) == set(TERMS))
        ratio = medians[full] / medians[base]
        paired = statistics.median(t / g for t, g in zip(seconds[full], seconds[base]))
        summary = (f"{head}: MSD-all / greedy-visual = {ratio:.2f} (paired {paired:.2f}; "
                   f"{medians[full]:.3f} s vs {medians[base]:.3f} s per caption, "
                   f"{1000 * medians[full] / max_new_tokens:.2f} vs {1000 * medians[base] / max_new_tokens:.2f} "
                   f"ms/token)")
    else:
        summary = f"{head}: " + ", ".join(f"{v.label} {medians[v]:.3f} s" for v in measured)
    emit(summary)
    return LatencyReport(rows=rows, summary=summary, msd_all_ratio=ratio,
                         seconds={v.label: t for v, t in seconds.items()})


# --------------------------------------------------------------------------- the profile's model


def _model_folder(setting: str | None) -> Path | None:
    """The profile's local model folder (resolved), or None when it is unset or holds no config.json."""
    from ..paths import resolve

    folder = resolve(setting) if setting else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def substituted_parts(profile) -> list[str]:
    """What the benchmark times in place of a local folder the profile names but this
    machine lacks (random weights either way; the sizes are the paper's): one line each,
    empty when nothing is substituted.  ``build_bench_model`` puts them in its weights label."""
    from ..paths import resolve

    parts = []
    f, m = profile.features, profile.model
    if f.encoder == "siglip" and _model_folder(f.encoder_path) is None:
        where = resolve(f.encoder_path) if f.encoder_path else None
        parts.append(f"encoder: a SigLIP-so400m-sized encoder (no SigLIP folder at {where})")
    if m.decoder == "local" and _model_folder(m.decoder_path) is None:
        where = resolve(m.decoder_path) if m.decoder_path else None
        parts.append(f"decoder: a Qwen2-7B-sized decoder (no model folder at {where})")
    return parts


def bench_vision_config(profile, folder: Path | None = None) -> dict:
    """The profile's frozen encoder as a ``VisionEncoderConfig`` dict.  A SigLIP folder
    that is not on this machine is replaced by a random SigLIP-so400m written to
    ``folder`` (the benchmark never runs the encoder: only its width matters;
    ``substituted_parts`` says so)."""
    features = profile.features
    config = {"name": features.encoder, "grid": features.grid, "image_size": profile.data.image_size,
              "seed": profile.seed}
    if features.encoder == "siglip":
        path = _model_folder(features.encoder_path)
        if path is None:
            if folder is None:
                raise ValueError("a random SigLIP needs a folder to be written to")
            from transformers import SiglipVisionConfig, SiglipVisionModel

            path = folder / "siglip"
            SiglipVisionModel(SiglipVisionConfig(**SIGLIP_SO400M)).save_pretrained(path)
        config["path"] = str(path)
    return config


def bench_text_config(profile):
    """The profile's decoder architecture (a transformers config), for random weights."""
    from transformers import AutoConfig

    from ..model.configuration_macm import small_qwen2_config

    m = profile.model
    if m.decoder == "scratch-qwen2":
        return small_qwen2_config(m.vocab_size, hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
                                  num_attention_heads=m.num_heads, num_key_value_heads=m.num_heads,
                                  intermediate_size=m.intermediate_size)
    if m.decoder == "smollm2":
        sizes = dict(SMOLLM2_135M)
        return AutoConfig.for_model(sizes.pop("model_type"), **sizes)
    folder = _model_folder(m.decoder_path)
    if folder is not None:
        return AutoConfig.from_pretrained(folder)
    sizes = dict(QWEN2_7B)
    return AutoConfig.for_model(sizes.pop("model_type"), **sizes)


def keyframes_of(profile) -> int:
    return profile.features.keyframes


def build_bench_model(profile, *, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                      dtype: torch.dtype | None = None):
    """(model in eval mode, tokenizer or None, weights label): the checkpoint's model (a
    ``save_pretrained`` folder, its tokenizer beside it if saved), or the profile's
    architecture with random weights (decoder and projectors; the frozen encoder keeps
    its source's weights).  The label is the folder, or ``random``, followed by the
    ``substituted_parts`` when a local folder of the profile is missing."""
    from ..model.configuration_macm import MACMConfig
    from ..model.modeling_macm import MACMForConditionalGeneration

    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if checkpoint is not None:
        folder = Path(checkpoint)
        model = MACMForConditionalGeneration.from_pretrained(folder)
        tokenizer = None
        if (folder / "tokenizer_config.json").is_file():
            from ..model.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(folder)
        return model.to(device=device, dtype=dtype).eval(), tokenizer, str(folder)
    with tempfile.TemporaryDirectory() as tmp:
        config = MACMConfig(vision_config=bench_vision_config(profile, Path(tmp)),
                            text_config=bench_text_config(profile).to_dict())
        with torch.device(device):
            model = MACMForConditionalGeneration(config)
    substituted = substituted_parts(profile)
    label = "random" + (f"; timing in place of missing folders: {'; '.join(substituted)}" if substituted else "")
    return model.to(dtype=dtype).eval(), None, label


# fixed ids of the prompt text when there is no tokenizer (random weights): <s> USER: ...
_USER_IDS, _INSTRUCTION_IDS = [5, 6, 7], list(range(8, 20))


def _prompt_ids(model, tokenizer, conditioning: str, n: int) -> torch.Tensor:
    if tokenizer is not None:
        from ..model.tokenizer import build_inputs

        return build_inputs(tokenizer, num_video_tokens=n, num_motion_tokens=n,
                            conditioning=conditioning).input_ids
    cfg = model.config
    video = [cfg.video_token_id] * n if conditioning in ("visual", "joint") else []
    motion = [cfg.motion_token_id] * n if conditioning in ("motion", "joint") else []
    bos = cfg.text_config.bos_token_id if cfg.text_config.bos_token_id is not None else 1
    return torch.tensor([bos] + _USER_IDS + video + motion + _INSTRUCTION_IDS)


@torch.inference_mode()
def random_clip_prompts(model, count: int, *, keyframes: int, tokenizer=None, seed: int = 0,
                        vcd_noise: float = 0.5) -> list[PathwayPrompts]:
    """``count`` clips of random encoder features (``keyframes`` frames, the encoder's
    grid and width), each as one ``PathwayPrompts`` with the four pathways (visual,
    motion, joint, visual_noised = visual features + ``vcd_noise`` Gaussian noise)."""
    n = model.tokens_per_clip(keyframes)
    width = model.vision_encoder.hidden_size
    device = _model_device(model)
    generator = torch.Generator().manual_seed(seed)
    ids = {c: _prompt_ids(model, tokenizer, c, n)[None].to(device) for c in ("visual", "motion", "joint")}
    clips = []
    for _ in range(count):
        video, motion = (torch.rand(1, n, width, generator=generator).to(device) for _ in range(2))
        noised = video + vcd_noise * torch.randn(1, n, width, generator=generator).to(device)
        embed = model.prompt_embeddings
        clips.append(PathwayPrompts(
            visual=[embed(ids["visual"], video_features=video)[0]],
            motion=[embed(ids["motion"], motion_features=motion)[0]],
            joint=[embed(ids["joint"], video_features=video, motion_features=motion)[0]],
            visual_noised=[embed(ids["visual"], video_features=noised)[0]]))
    return clips


def latency_main(profile_name: str = "cpu", *, checkpoint: str | Path | None = None, captions: int | None = None,
                 threads: int | None = None, max_new_tokens: int | None = None, warmup: int = 1,
                 decoders: Sequence[str] = DECODERS, device: str | None = None,
                 emit: Callable[[str], None] = print) -> LatencyReport:
    """``macm bench latency --profile P [--checkpoint DIR]``: the profile's model (random
    weights without a checkpoint) on random features of the cached features' shape.

    captions: timed clips (default: the profile's ``eval.latency_captions``);
    threads: torch threads (default 1: one caption's small matrix products gain nothing
    from more, and on a busy machine threads wait for each other, on two rows more than on
    one, which inflates the pairwise decoders' ratios); max_new_tokens: caption length
    (default: the profile's ``eval.max_new_tokens``); device: ``cuda`` when one
    is available, else ``cpu``.
    """
    from ..config import load_profile
    from ..determinism import set_determinism

    profile = load_profile(profile_name)
    captions = captions if captions is not None else profile.eval.latency_captions
    max_new_tokens = max_new_tokens or profile.eval.max_new_tokens
    threads = threads or 1
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    set_determinism(profile.seed, threads=threads)
    model, tokenizer, weights = build_bench_model(profile, checkpoint=checkpoint, device=device)
    clips = random_clip_prompts(model, captions + warmup, keyframes=keyframes_of(profile), tokenizer=tokenizer,
                                seed=profile.seed, vcd_noise=profile.features.vcd_noise)
    text = model.config.text_config
    info = {"profile": profile.name, "weights": weights,
            "decoder_params": sum(p.numel() for p in model.language_model.parameters()),
            "vocab": text.vocab_size, "prompt_tokens": int(clips[0].visual[0].shape[0])}
    pad = text.pad_token_id if text.pad_token_id is not None else 0
    return bench_latency(model, clips, decoders=decoders, max_new_tokens=max_new_tokens, threads=threads,
                         warmup=warmup, info=info, pad_token_id=pad, emit=emit)


bench_latency_main = latency_main

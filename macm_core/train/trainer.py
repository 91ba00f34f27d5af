"""Train M-ACM on cached encoder features, in the paper's two stages, with ``accelerate``.

- stage 1 (alignment): only ``visual_projector`` and ``motion_projector`` train, the
  decoder is frozen;
- stage 2 (fine-tuning): the projectors and the decoder train, or, with ``lora=True``,
  the projectors and LoRA adapters on the decoder's linear layers (peft; large or
  pretrained decoders).  ``merge_lora(model)`` folds the adapters back in afterwards.

The same code runs as one process (CPU or one GPU) and under ``accelerate launch`` /
``torchrun`` with several processes (DDP, or FSDP with ``configs/fsdp_7b.yaml``):
``batch_size`` is per process and every process draws its own share of each step's
batch (``dataset.batch_keys``).  Only trainable parameters reach AdamW (weight decay on
matrices only), under linear warm-up then cosine decay.  With ``matmul_dtype="bfloat16"``
the linear layers multiply in bfloat16 during the loop (``precision.linear_matmuls``).

Checkpoints (every ``save_every`` steps and at the end) go to
``output_dir/checkpoint-<step>``: ``accelerator.save_state`` (trainable weights only
outside FSDP, optimizer, scheduler) plus ``rng_state_<rank>.pt`` (python, numpy, torch
generators of each process) and ``trainer_state.json`` (step, loss curve, config and
data fingerprints).  Each is written into a temporary folder renamed into place, so a
kill leaves either the whole checkpoint or none.  ``train`` resumes from the newest
checkpoint of ``output_dir``: because an item depends only on (seed, epoch, index) and
the data order only on the step, restoring the state restores the run exactly, and the
resumed loss curve equals an uninterrupted run's.  ``losses.json`` beside the
checkpoints holds the curve up to the last checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from macm_core.cache import write_json_atomic
from macm_core.model.tokenizer import CONDITIONINGS, placeholder_ids
from macm_core.precision import bfloat16_matmul_is_native, linear_matmuls, matmul_dtype
from macm_core.train.dataset import (CAPTION_FIELDS, CONDITIONING_PRESETS, CaptionDataset, ClipTexts, batch_keys,
                                     check_conditioning_probs, collate)
from macm_core.train.loss import label_token_loss

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
LOSSES_FILE = "losses.json"
# config fields that do not change what is computed: a resumed run may change them
RESUME_FREE_FIELDS = ("output_dir", "log_every", "save_every", "keep_checkpoints", "stop_after", "progress")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run.

    output_dir: checkpoints and ``losses.json``; a run resumes from the newest checkpoint here.
    stage: 1 (projector alignment) or 2 (decoder fine-tuning).
    steps: optimizer steps in all; batch_size: examples per process per step.
    lr, warmup_steps, weight_decay, grad_clip: AdamW (betas 0.9/0.999), linear warm-up then
        cosine decay to 0; weight decay on matrices only; grad_clip <= 0 turns clipping off.
    seed: LoRA init, data order, item choices, dropout.
    log_every: progress-bar refresh period; save_every: checkpoint period (steps);
        keep_checkpoints: how many of the newest checkpoints to keep.
    conditioning_probs: probabilities of the (visual, motion, joint) prompt per item
        (pathway dropout); ``CONDITIONING_PRESETS["visual-only"]`` for the visual-only variant.
    caption_field: ``caption`` (fine) or ``coarse_caption`` (the "before HMI data" baseline).
    qa_fraction: probability that an item is a QA pair of its clip instead of the caption.
    freeze_decoder: None follows the stage (frozen in stage 1, trained in stage 2).
    lora, lora_rank, lora_alpha, lora_dropout, lora_targets: stage-2 LoRA adapters on the
        decoder (peft ``target_modules``; "all-linear" = every linear layer but the LM head).
    length_groups: the decoder runs each batch in this many groups of rows of similar
        length, each padded to its own longest row (``loss.label_token_loss``; keep 1 under FSDP).
    matmul_dtype: "bfloat16" multiplies in every linear layer in bfloat16 while training
        (``precision.linear_matmuls``; weights, gradients and the rest stay float32); None
        leaves the weights' own dtype.
    stop_after: stop after this many steps without a final checkpoint, as a kill would
        (tests of resuming); None runs to ``steps``.
    progress: show the tqdm bar (stderr, main process).
    """

    output_dir: str
    stage: int = 1
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    save_every: int = 200
    keep_checkpoints: int = 1
    conditioning_probs: tuple[float, float, float] = CONDITIONING_PRESETS["pathway-dropout"]
    caption_field: str = "caption"
    qa_fraction: float = 0.2
    freeze_decoder: bool | None = None
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str | tuple[str, ...] = "all-linear"
    length_groups: int = 1
    matmul_dtype: str | None = None
    stop_after: int | None = None
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "output_dir", str(self.output_dir))
        object.__setattr__(self, "conditioning_probs", check_conditioning_probs(self.conditioning_probs))
        if isinstance(self.lora_targets, list):
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 (projector alignment) or 2 (decoder fine-tuning), got {self.stage}")
        for name in ("steps", "batch_size", "log_every", "save_every", "keep_checkpoints", "length_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or not self.lr > 0:
            raise ValueError(f"need lr > 0, warmup_steps >= 0 and weight_decay >= 0, got lr={self.lr}, "
                             f"warmup_steps={self.warmup_steps}, weight_decay={self.weight_decay}")
        if self.caption_field not in CAPTION_FIELDS:
            raise ValueError(f"caption_field must be one of {CAPTION_FIELDS}, got {self.caption_field!r}")
        if not 0.0 <= self.qa_fraction <= 1.0:
            raise ValueError(f"qa_fraction must be in [0, 1], got {self.qa_fraction}")
        if self.stage == 1 and self.freeze_decoder is False:
            raise ValueError("stage 1 aligns the projectors with the decoder frozen; use stage=2 to train the decoder")
        if self.lora and self.decoder_frozen:
            raise ValueError("lora=True trains adapters on the decoder: use stage=2 with freeze_decoder left None")
        if self.lora and (self.lora_rank < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1):
            raise ValueError(f"need lora_rank >= 1, lora_alpha > 0 and lora_dropout in [0, 1), got "
                             f"{self.lora_rank}, {self.lora_alpha}, {self.lora_dropout}")
        matmul_dtype(self.matmul_dtype)  # ValueError naming the choices
        if self.stop_after is not None and not 1 <= self.stop_after <= self.steps:
            raise ValueError(f"stop_after must be in 1..steps={self.steps} or None, got {self.stop_after}")

    @property
    def decoder_frozen(self) -> bool:
        return self.stage == 1 if self.freeze_decoder is None else self.freeze_decoder

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, as a checkpoint stores them


@dataclass
class TrainResult:
    """losses: (step, loss) of every step from 1 to where the run stopped, the steps of
    earlier (resumed) runs included; loss = the mean over processes of the per-process
    mean token cross-entropy.  samples_per_s and seconds: this call's training loop
    (checkpoint writes included), all processes together.  start_step: the step it
    resumed from (0: fresh); checkpoint: the newest checkpoint folder (None: none yet)."""

    losses: list[tuple[int, float]]
    samples_per_s: float
    seconds: float
    start_step: int
    checkpoint: Path | None


class MixedPathwayModel(nn.Module):
    """Adapter: ``MACMForConditionalGeneration.forward`` needs every row of a batch to hold
    the same placeholders, pathway dropout mixes conditionings within a batch.  This builds
    each conditioning group's prompt embeddings with ``macm.prompt_embeddings``, puts the
    rows back in order and takes the loss of the whole batch (``loss.label_token_loss``:
    the decoder runs on ``length_groups`` groups of rows of similar length).  It is the
    module handed to ``accelerator.prepare`` (one forward per step, as DDP requires)."""

    def __init__(self, macm: nn.Module, *, length_groups: int = 1):
        super().__init__()
        self.macm = macm
        self.length_groups = length_groups

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                video_features: torch.Tensor, motion_features: torch.Tensor,
                conditioning: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask, labels (B, L); video_features (B, K_v, D); motion_features
        (B, K_m, D); conditioning (B,) indices into CONDITIONINGS -> mean token loss ()."""
        pieces, rows_in_order = [], []
        for code, name in enumerate(CONDITIONINGS):
            rows = (conditioning == code).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            pieces.append(self.macm.prompt_embeddings(
                input_ids[rows],
                video_features=video_features[rows] if name in ("visual", "joint") else None,
                motion_features=motion_features[rows] if name in ("motion", "joint") else None))
            rows_in_order.append(rows)
        embeds = torch.cat(pieces)[torch.argsort(torch.cat(rows_in_order))]
        return label_token_loss(self.macm.language_model, embeds, attention_mask, labels,
                                length_groups=self.length_groups)


# -- trainable parameters -----------------------------------------------------------------
def configure_trainable(model: nn.Module, config: TrainConfig) -> list[str]:
    """Set ``requires_grad`` for the stage (adding LoRA adapters to ``model.language_model``
    when ``config.lora``) and return the names of the trainable parameters."""
    from peft import PeftModel

    has_adapters = isinstance(model.language_model, PeftModel)
    if config.lora and not has_adapters:
        from peft import LoraConfig, get_peft_model

        targets = config.lora_targets if isinstance(config.lora_targets, str) else list(config.lora_targets)
        model.language_model = get_peft_model(model.language_model, LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=targets, task_type="CAUSAL_LM"))
    elif has_adapters and not config.lora:
        raise ValueError("the decoder carries LoRA adapters but lora=False; fold them in with merge_lora(model) "
                         "first (or train with lora=True)")
    model.requires_grad_(False)
    model.visual_projector.requires_grad_(True)
    model.motion_projector.requires_grad_(True)
    if not config.decoder_frozen:
        for name, param in model.language_model.named_parameters():
            if not config.lora or "lora_" in name:
                param.requires_grad_(True)
    return [name for name, param in model.named_parameters() if param.requires_grad]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the decoder's weights (for decoding and ``save_pretrained``)."""
    from peft import PeftModel

    if isinstance(model.language_model, PeftModel):
        model.language_model = model.language_model.merge_and_unload()
    return model


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]


def _frozen_fingerprint(model: nn.Module) -> list:
    """(count, float64 sum) of the frozen parameters: a resumed run must start from the same
    frozen weights, which checkpoints do not store."""
    frozen = [p for p in model.parameters() if not p.requires_grad]
    with torch.no_grad():
        total = sum(float(p.detach().double().sum()) for p in frozen)
    return [sum(p.numel() for p in frozen), total]


# -- checkpoints ----------------------------------------------------------------------------
def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run (None: none)."""
    found = [(int(m.group(1)), path) for path in Path(output_dir).glob("checkpoint-*")
             if (m := CHECKPOINT_PATTERN.match(path.name)) and (path / STATE_FILE).is_file()]
    return max(found)[1] if found else None


def _keep_trainable_weights(models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
    """``save_state`` pre-hook: outside FSDP/DeepSpeed (where ``weights`` holds full state
    dicts), keep only the trainable tensors, each storage once (tied embeddings)."""
    for model, state in zip(models, weights):
        trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
        seen: set[int] = set()
        for key in list(state):
            if key not in trainable or state[key].data_ptr() in seen:
                del state[key]
            else:
                seen.add(state[key].data_ptr())


def _check_saved_weights(models: list[nn.Module], input_dir: str) -> None:
    """``load_state`` pre-hook: the weights are loaded non-strictly (frozen ones are not in the
    file), so refuse a file whose names do not match this model (a different wrapping)."""
    from safetensors import safe_open

    for i, model in enumerate(models):
        path = Path(input_dir) / ("model.safetensors" if i == 0 else f"model_{i}.safetensors")
        if not path.is_file():
            continue
        with safe_open(str(path), framework="pt") as handle:
            saved = set(handle.keys())
        known = set(model.state_dict())
        if not saved or not saved <= known:
            raise ValueError(f"{path} holds weights this model does not have (e.g. {sorted(saved - known)[:3]}); "
                             "resume with the same model, stage, LoRA setting and number of processes")


def _save_checkpoint(accelerator, output_dir: Path, step: int, run_state: dict, losses: list,
                     keep: int) -> Path:
    final = output_dir / f"checkpoint-{step:07d}"
    tmp = output_dir / f".checkpoint-{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / f"rng_state_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {**run_state, "step": step, "losses": [list(x) for x in losses]}
        write_json_atomic(tmp / STATE_FILE, state)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_json_atomic(output_dir / LOSSES_FILE, {"step": [s for s, _ in losses],
                                                      "loss": [v for _, v in losses]})
        older = sorted((int(m.group(1)), p) for p in output_dir.glob("checkpoint-*")
                       if (m := CHECKPOINT_PATTERN.match(p.name)) and int(m.group(1)) != step)
        for _, path in older[:max(0, len(older) - (keep - 1))]:
            shutil.rmtree(path)
    accelerator.wait_for_everyone()
    return final


def _load_checkpoint(accelerator, folder: Path, run_state: dict) -> tuple[int, list[tuple[int, float]]]:
    state = json.loads((folder / STATE_FILE).read_text())
    changed = [key for key in run_state if key != "config" and state.get(key) != run_state[key]]
    changed += [f"config.{key}" for key, value in run_state["config"].items()
                if key not in RESUME_FREE_FIELDS and state["config"].get(key) != value]
    if changed:
        raise ValueError(f"cannot resume from {folder}: it was written by a different run ({', '.join(changed)} "
                         f"differ); use the same model, data, config and number of processes, or a fresh "
                         f"output_dir")
    accelerator.load_state(str(folder), strict=False)
    # load_state restores generators too but ignores any failure to; ours must not fail silently
    rng_file = folder / f"rng_state_{accelerator.process_index}.pt"
    if not rng_file.is_file():
        raise FileNotFoundError(f"{rng_file} is missing: the checkpoint is incomplete or was written by another "
                                "number of processes")
    rng = torch.load(rng_file, weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"]), [(int(s), float(v)) for s, v in state["losses"]]


# -- the loop ---------------------------------------------------------------------------
def _check_inputs(model: nn.Module, tokenizer, visual: Any, motion: Any) -> None:
    video_id, motion_id = placeholder_ids(tokenizer)
    if (video_id, motion_id) != (model.config.video_token_id, model.config.motion_token_id):
        raise ValueError(f"the tokenizer's <video>/<motion> ids ({video_id}, {motion_id}) differ from the model's "
                         f"({model.config.video_token_id}, {model.config.motion_token_id}); build MACMConfig "
                         "with the ids from placeholder_ids(tokenizer)")
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the decoder embeds only {vocab}; build "
                         "the decoder with vocab_size=len(tokenizer) or resize its embeddings")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; call add_placeholder_tokens(tokenizer) (it adds one)")
    width = model.vision_encoder.hidden_size
    for name, array in (("visual", visual), ("motion", motion)):
        shape = tuple(getattr(array, "shape", ()))
        if len(shape) != 3 or shape[2] != width:
            raise ValueError(f"features[{name!r}] must have shape (num_clips, num_tokens, {width}) (the "
                             f"{model.vision_encoder.encoder_config.name} encoder's width), got {shape}")


def train(model: nn.Module, tokenizer, features: Mapping[str, Any], clips: pd.DataFrame,
          qa: pd.DataFrame | None, config: TrainConfig) -> TrainResult:
    """Train ``model`` (a ``MACMForConditionalGeneration``, updated in place) on cached
    features ``{"visual": (N, K_v, D), "motion": (N, K_m, D)}`` of the clips of ``clips``
    (a ``Benchmark.clips``-like table, same row order) with the QA pairs of ``qa`` (None:
    captions only).  Resumes from ``config.output_dir``'s newest checkpoint if there is one.
    Seeds python, numpy and torch (``config.seed``) and sets ``requires_grad`` on ``model``
    for the stage; with ``lora`` its ``language_model`` becomes a peft model."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    missing = {"visual", "motion"} - set(features)
    if missing:
        raise ValueError(f"features lack {sorted(missing)}; pass {{'visual': (N, K, D), 'motion': (N, K, D)}}")
    _check_inputs(model, tokenizer, features["visual"], features["motion"])
    texts = ClipTexts.from_tables(clips, qa, caption_field=config.caption_field)
    dataset = CaptionDataset(features["visual"], features["motion"], texts, tokenizer, qa_fraction=config.qa_fraction,
                             conditioning_probs=config.conditioning_probs, seed=config.seed)

    # the scheduler steps once per optimizer step (not once per process, accelerate's default);
    # a batch may lack a conditioning, leaving a projector unused in that step's graph
    accelerator = Accelerator(step_scheduler_with_optimizer=False,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(config.seed)
    trainable = configure_trainable(model, config)
    run_state = {"config": config.to_dict(), "num_processes": accelerator.num_processes,
                 "distributed_type": str(accelerator.distributed_type), "trainable": trainable,
                 "frozen": _frozen_fingerprint(model), "texts": texts.fingerprint(),
                 "features": [list(features["visual"].shape), list(features["motion"].shape)]}
    wrapper = MixedPathwayModel(model, length_groups=config.length_groups)
    optimizer = torch.optim.AdamW(_param_groups(wrapper, config.weight_decay), lr=config.lr, betas=(0.9, 0.999))
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    wrapper, optimizer, scheduler = accelerator.prepare(wrapper, optimizer, scheduler)
    accelerator.register_save_state_pre_hook(_keep_trainable_weights)
    accelerator.register_load_state_pre_hook(_check_saved_weights)

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start_step, losses = 0, []
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None:
        start_step, losses = _load_checkpoint(accelerator, checkpoint, run_state)
    else:
        set_seed(config.seed, device_specific=True)  # dropout differs between processes
    end_step = config.steps if config.stop_after is None else max(start_step, config.stop_after)

    wrapper.train()
    per_step = config.batch_size * accelerator.num_processes
    bar = tqdm(total=config.steps, initial=start_step, desc=f"stage {config.stage}", unit="step", file=sys.stderr,
               disable=not (config.progress and accelerator.is_main_process), dynamic_ncols=True)
    if (matmul_dtype(config.matmul_dtype) == torch.bfloat16 and accelerator.device.type == "cpu"
            and not bfloat16_matmul_is_native()):
        warnings.warn("matmul_dtype='bfloat16' on a CPU without bfloat16 instructions (avx512_bf16 / amx_bf16): "
                      "the products are emulated and slower than float32; set train.matmul_dtype to null")
    with linear_matmuls(model, config.matmul_dtype):  # restored before the model is saved or decodes
        t0 = time.perf_counter()
        for step in range(start_step, end_step):
            keys = batch_keys(step, batch_size=config.batch_size, num_items=len(dataset), seed=config.seed,
                              num_processes=accelerator.num_processes, process_index=accelerator.process_index)
            batch = collate([dataset[key] for key in keys], pad_token_id=tokenizer.pad_token_id)
            batch = {name: value.to(accelerator.device) for name, value in batch.items()}
            loss = wrapper(**batch)
            accelerator.backward(loss)
            if config.grad_clip > 0:
                accelerator.clip_grad_norm_(wrapper.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            loss_value = float(accelerator.reduce(loss.detach(), reduction="mean"))
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss is {loss_value} at step {step + 1}; lower lr (now {config.lr}) or "
                                         "raise warmup_steps, and check the features for NaN/inf")
            done = step + 1
            losses.append((done, loss_value))
            bar.update()
            if done % config.log_every == 0 or done == end_step:
                rate = (done - start_step) * per_step / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{rate:.1f}")
            if config.stop_after is not None and done >= config.stop_after:
                break  # as a kill would: no checkpoint for the steps since the last one
            if done % config.save_every == 0 or done == config.steps:
                checkpoint = _save_checkpoint(accelerator, output_dir, done, run_state, losses, config.keep_checkpoints)
    seconds = time.perf_counter() - t0
    bar.close()
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    steps_run = len(losses) - start_step
    return TrainResult(losses=losses, samples_per_s=steps_run * per_step / seconds if steps_run else 0.0,
                       seconds=seconds, start_step=start_step, checkpoint=checkpoint)

"""Training examples for M-ACM: cached encoder features of a clip plus one target text.

Item ``(epoch, index)`` of a ``CaptionDataset`` is clip ``index`` under one conditioning
with one target, both drawn from a generator seeded by ``(seed, epoch, index)`` alone, so an
item never depends on which items came before it (resuming needs only the step):

- target: the clip's caption (``ClipTexts.captions``: the fine or the coarse caption,
  chosen by ``caption_field``), or with probability ``qa_fraction`` (0.2, as the paper
  mixes QA into caption training) one of its QA pairs: the question replaces the
  instruction in the prompt and the answer is the target;
- conditioning (*pathway dropout*): ``visual``, ``motion`` or ``joint`` with probabilities
  ``conditioning_probs``, so that both single-pathway prompts (what motion-specific
  decoding contrasts) are in-distribution at decoding time.  ``CONDITIONING_PRESETS``
  names the mixes; ``visual-only`` is the baseline without the motion pathway.

The data order is a pure function of the step too (``batch_keys``): epoch ``e`` visits the
clips in the permutation seeded by ``(seed, e)``; step ``s`` of ``W`` processes with
per-process batch ``B`` takes the stream positions ``s*B*W ... (s+1)*B*W - 1``, process
``r`` the ``B`` of them starting at ``s*B*W + r*B``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from macm_core.model.tokenizer import (CONDITIONINGS, DEFAULT_INSTRUCTION, ModelInputs, build_inputs,
                                       pad_inputs)

CAPTION_FIELDS = ("caption", "coarse_caption")
# probabilities of (visual, motion, joint).  pathway-dropout gives the visual prompt half of
# the items: with (0.25, 0.25, 0.5) the cpu profile's M-ACM collapsed onto the caption prior
# on seed 1 (2% distinct test captions, greedy-visual) and nearly on seed 2 (12%); with
# (0.5, 0.25, 0.25) seeds 0, 1 and 2 wrote 31%, 24% and 22% (measured 2026-11-27, 300 clips).
CONDITIONING_PRESETS: dict[str, tuple[float, float, float]] = {
    "pathway-dropout": (0.5, 0.25, 0.25),
    "visual-only": (1.0, 0.0, 0.0),
    "joint-only": (0.0, 0.0, 1.0),
}
_ORDER_STREAM, _ITEM_STREAM = 1, 2  # keep the two generators' seed sequences apart


def check_conditioning_probs(probs: Sequence[float]) -> tuple[float, float, float]:
    """(visual, motion, joint) probabilities, validated; ``ValueError`` otherwise."""
    probs = tuple(float(p) for p in probs)
    if len(probs) != 3 or any(not np.isfinite(p) or p < 0 for p in probs) or abs(sum(probs) - 1) > 1e-6:
        raise ValueError(f"conditioning_probs must be 3 non-negative probabilities of (visual, motion, joint) "
                         f"summing to 1, got {probs}; presets: {CONDITIONING_PRESETS}")
    return probs  # type: ignore[return-value]


@dataclass(frozen=True)
class ClipTexts:
    """The texts of each clip, in the row order of the feature arrays.

    clip_ids: one id per clip; captions: the target caption of each clip;
    qa: per clip, its (question, answer) pairs (possibly none).
    """

    clip_ids: tuple[str, ...]
    captions: tuple[str, ...]
    qa: tuple[tuple[tuple[str, str], ...], ...]

    def __post_init__(self):
        if not (len(self.clip_ids) == len(self.captions) == len(self.qa)):
            raise ValueError(f"clip_ids, captions and qa must have one entry per clip, got {len(self.clip_ids)}, "
                             f"{len(self.captions)} and {len(self.qa)}")
        empty = [c for c, text in zip(self.clip_ids, self.captions) if not isinstance(text, str) or not text.strip()]
        if empty:
            raise ValueError(f"{len(empty)} clips have no caption text (first: {empty[:3]}); drop them or fill the "
                             "caption column")

    def __len__(self) -> int:
        return len(self.captions)

    @classmethod
    def from_tables(cls, clips: pd.DataFrame, qa: pd.DataFrame | None = None, *,
                    caption_field: str = "caption") -> "ClipTexts":
        """From a ``Benchmark.clips``-like table (one row per clip, in feature order; the clip
        id is the index named ``clip_id`` or a ``clip_id`` column) and a ``Benchmark.qa``-like
        table (``clip_id``, ``question``, ``answer``; None: no QA)."""
        if caption_field not in CAPTION_FIELDS:
            raise ValueError(f"caption_field must be one of {CAPTION_FIELDS}, got {caption_field!r}")
        if caption_field not in clips.columns:
            raise ValueError(f"the clips table has no {caption_field!r} column (columns: {list(clips.columns)}); "
                             "pass Benchmark.clips (or a table with that column)")
        if "clip_id" in clips.columns:
            ids = clips["clip_id"].astype(str).tolist()
        elif clips.index.name == "clip_id":
            ids = clips.index.astype(str).tolist()
        else:
            raise ValueError("the clips table needs the clip ids, as its index named 'clip_id' (as Benchmark.clips) "
                             "or as a 'clip_id' column")
        if len(set(ids)) != len(ids):
            raise ValueError("the clips table repeats clip ids; give each clip one row, in feature order")
        pairs: dict[str, list[tuple[str, str]]] = {i: [] for i in ids}
        if qa is not None and len(qa):
            missing = {"clip_id", "question", "answer"} - set(qa.columns)
            if missing:
                raise ValueError(f"the qa table lacks columns {sorted(missing)}; pass Benchmark.qa")
            for clip_id, question, answer in qa[["clip_id", "question", "answer"]].itertuples(index=False):
                if clip_id in pairs:  # QA of clips outside this split is ignored
                    pairs[clip_id].append((str(question), str(answer)))
        return cls(tuple(ids), tuple(clips[caption_field].tolist()), tuple(tuple(pairs[i]) for i in ids))

    def fingerprint(self) -> str:
        """A short hash of all the texts (a resumed run checks it is training on the same data)."""
        text = json.dumps([self.clip_ids, self.captions, self.qa], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Choice(NamedTuple):
    """What item (epoch, index) is: its conditioning and its QA pair (None: the caption)."""

    conditioning: str
    qa_index: int | None


class Example(NamedTuple):
    """One training item.

    inputs: ``ModelInputs`` (input_ids, attention_mask, labels), each (L,).
    video_features (K_v, D) and motion_features (K_m, D): the clip's cached encoder
    features (both always present; the prompt holds placeholders only for the pathways
    that ``conditioning`` uses).  conditioning: index into ``CONDITIONINGS``.
    """

    inputs: ModelInputs
    video_features: torch.Tensor
    motion_features: torch.Tensor
    conditioning: int
    clip: int
    is_qa: bool


class CaptionDataset(torch.utils.data.Dataset):
    """Clips with cached features (visual (N, K_v, D), motion (N, K_m, D), numpy arrays,
    memory maps or tensors) and their ``ClipTexts``; ``dataset[(epoch, index)]`` (or
    ``dataset[index]`` for epoch 0) is an ``Example``."""

    def __init__(self, visual: Any, motion: Any, texts: ClipTexts, tokenizer, *, qa_fraction: float = 0.2,
                 conditioning_probs: Sequence[float] = CONDITIONING_PRESETS["pathway-dropout"], seed: int = 0,
                 prompt: str = DEFAULT_INSTRUCTION):
        for name, array in (("visual", visual), ("motion", motion)):
            if len(getattr(array, "shape", ())) != 3:
                raise ValueError(f"{name} features must be an array of shape (num_clips, num_tokens, dim), got "
                                 f"shape {getattr(array, 'shape', None)}")
        if visual.shape[0] != motion.shape[0] or visual.shape[2] != motion.shape[2]:
            raise ValueError(f"visual {tuple(visual.shape)} and motion {tuple(motion.shape)} features must have "
                             "the same number of clips and the same dim (one shared encoder)")
        if visual.shape[0] != len(texts):
            raise ValueError(f"{visual.shape[0]} clips of features but {len(texts)} clips of texts; pass the "
                             "clips table of exactly the clips the features were computed for, in that order")
        if not 0.0 <= qa_fraction <= 1.0:
            raise ValueError(f"qa_fraction must be in [0, 1], got {qa_fraction}")
        self.visual, self.motion, self.texts, self.tokenizer = visual, motion, texts, tokenizer
        self.qa_fraction = float(qa_fraction)
        self.cumulative = np.cumsum(check_conditioning_probs(conditioning_probs))
        self.seed, self.prompt = int(seed), prompt
        self.num_video_tokens, self.num_motion_tokens = int(visual.shape[1]), int(motion.shape[1])
        # tokenized (prompt, target) per (index, qa_index, conditioning): every epoch revisits
        # the same few texts of a clip, and tokenizing them took about 8% of a cpu training step
        self._inputs: dict[tuple[int, int | None, str], ModelInputs] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def choose(self, index: int, epoch: int = 0) -> Choice:
        """The conditioning and target of item (epoch, index): three uniform draws from
        a generator seeded by (seed, epoch, index)."""
        u_qa, u_conditioning, u_pair = np.random.default_rng(
            [self.seed, _ITEM_STREAM, epoch, index]).random(3)
        conditioning = CONDITIONINGS[int(np.searchsorted(self.cumulative, u_conditioning, side="right"))]
        pairs = self.texts.qa[index]
        qa_index = int(u_pair * len(pairs)) if pairs and u_qa < self.qa_fraction else None
        return Choice(conditioning, qa_index)

    def example(self, index: int, epoch: int = 0) -> Example:
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        choice = self.choose(index, epoch)
        inputs = ModelInputs(*(t.clone() for t in self._tokenized(index, choice)))  # callers may edit theirs
        return Example(inputs, _float_tensor(self.visual[index]), _float_tensor(self.motion[index]),
                       CONDITIONINGS.index(choice.conditioning), index, choice.qa_index is not None)

    def _tokenized(self, index: int, choice: Choice) -> ModelInputs:
        key = (index, choice.qa_index, choice.conditioning)
        if key not in self._inputs:
            if choice.qa_index is None:
                prompt, target = self.prompt, self.texts.captions[index]
            else:
                prompt, target = self.texts.qa[index][choice.qa_index]
            self._inputs[key] = build_inputs(self.tokenizer, prompt=prompt, caption=target,
                                             num_video_tokens=self.num_video_tokens,
                                             num_motion_tokens=self.num_motion_tokens,
                                             conditioning=choice.conditioning)
        return self._inputs[key]

    def __getitem__(self, key: int | tuple[int, int]) -> Example:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        return self.example(int(index), int(epoch))


def _float_tensor(array: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array).float()


@lru_cache(maxsize=8)
def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation (num_items,) in which epoch ``epoch`` visits the clips."""
    order = np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(num_items)
    order.setflags(write=False)
    return order


def batch_keys(step: int, *, batch_size: int, num_items: int, seed: int, num_processes: int = 1,
               process_index: int = 0) -> list[tuple[int, int]]:
    """The (epoch, index) keys of process ``process_index``'s batch at 0-based ``step``."""
    if num_items < 1:
        raise ValueError("no clips to train on")
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index {process_index} is outside 0..{num_processes - 1}")
    start = (step * num_processes + process_index) * batch_size
    keys = []
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, num_items)
        keys.append((epoch, int(epoch_order(num_items, seed, epoch)[offset])))
    return keys


def collate(examples: Sequence[Example], *, pad_token_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Examples -> the batch ``MixedPathwayModel`` takes: input_ids, attention_mask, labels
    (B, L) padded on ``padding_side`` (all three the same way: pad id / 0 / -100),
    video_features (B, K_v, D), motion_features (B, K_m, D), conditioning (B,)."""
    if not examples:
        raise ValueError("no examples to collate")
    inputs = pad_inputs([e.inputs for e in examples], pad_token_id=pad_token_id, side=padding_side)
    return {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask, "labels": inputs.labels,
            "video_features": torch.stack([e.video_features for e in examples]),
            "motion_features": torch.stack([e.motion_features for e in examples]),
            "conditioning": torch.tensor([e.conditioning for e in examples], dtype=torch.long)}

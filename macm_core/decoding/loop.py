"""The one decoding loop: greedy (visual / joint), product of experts, VCD and MSD.

It runs on any Hugging Face causal LM whose forward takes ``inputs_embeds``,
``attention_mask``, ``position_ids`` and a KV cache (``cache`` in transformers 5.x,
``past_key_values`` before); call ``model.eval()`` first.

The model-level code hands it, per caption, the prompt embeddings of each pathway
(``PathwayPrompts``) and a callable that embeds generated tokens.  For B captions:

* single-pathway decoders (``greedy_visual``, ``greedy_joint``) run B rows;
* pairwise decoders run 2B rows in ONE batch with ONE KV cache: rows 0..B-1 are the
  visual pathway, rows B..2B-1 the motion pathway (``poe``, ``msd``) or the visual
  pathway fed the noised video (``vcd``).  Prompts of different lengths are padded on
  the left with zero embeddings; the attention mask marks the padding, the position
  ids are ``cumsum(mask) - 1`` (0 on padding), so each row sees exactly its own
  unpadded sequence.  Each step is one forward of all rows; the caption's token is
  chosen from its two rows' logits (``msd.py``) and appended to BOTH rows.

With ``log_tokens`` each token gets the log of ``msd.gather_token_log``: for the
single-pathway decoders "p_v" is that pathway's distribution (the joint one for
``greedy_joint``) and ``changed`` only marks sampled tokens other than its argmax.
Without it each step is scored on the fast path (``details=False``: nothing computed
for the log), which gives the same scores bit for bit, hence the same tokens.  On the
CPU both score the step with ``fused.step`` (see ``msd.py``).

A caption stops at an eos token; its rows are then fed ``pad_token_id`` (and ignored)
until every caption has stopped or ``max_new_tokens`` are generated; without an eos
token the loop reads nothing back from the device before the end (no sync per step).
Tokens are chosen by argmax, or sampled (temperature, top-p) with a seeded generator.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .msd import (
    MSDConfig,
    VCDConfig,
    gather_token_log,
    greedy_scores,
    msd_pair_scores,
    poe_scores,
    vcd_scores,
)

DECODERS = ("greedy_visual", "greedy_joint", "poe", "vcd", "msd")
# the pathways each decoder runs, in row order
PATHWAYS = {
    "greedy_visual": ("visual",),
    "greedy_joint": ("joint",),
    "poe": ("visual", "motion"),
    "vcd": ("visual", "visual_noised"),
    "msd": ("visual", "motion"),
}


@dataclass
class PathwayPrompts:
    """Prompt embeddings per caption: each list holds one (L_i, D) tensor per caption.

    ``visual``: prompt with the video features; ``motion``: with the motion features;
    ``joint``: with both; ``visual_noised``: ``visual`` built from a noised video (VCD).
    """

    visual: list[Tensor]
    motion: list[Tensor] | None = None
    joint: list[Tensor] | None = None
    visual_noised: list[Tensor] | None = None

    def __post_init__(self) -> None:
        for name in ("visual", "motion", "joint", "visual_noised"):
            seqs = getattr(self, name)
            if seqs is None:
                continue
            if len(seqs) != len(self.visual):
                raise ValueError(f"{name} has {len(seqs)} captions, visual has {len(self.visual)}")
            for seq in seqs:
                if seq.ndim != 2 or seq.shape[0] == 0:
                    raise ValueError(f"{name}: each prompt must be (L > 0, D), got {tuple(seq.shape)}")

    def rows(self, decoder: str) -> list[Tensor]:
        """The prompts of ``decoder``'s rows: pathway after pathway, captions in order."""
        rows: list[Tensor] = []
        for name in PATHWAYS[decoder]:
            seqs = getattr(self, name)
            if seqs is None:
                raise ValueError(f"decoder {decoder!r} needs the {name!r} prompts")
            rows.extend(seqs)
        return rows


@dataclass(frozen=True)
class DecodeConfig:
    """How to decode: the decoder, the stopping rule, the token choice, the constants."""

    decoder: str = "msd"
    max_new_tokens: int = 32
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    log_tokens: bool = False
    msd: MSDConfig = field(default_factory=MSDConfig)
    vcd: VCDConfig = field(default_factory=VCDConfig)

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; expected one of {DECODERS}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError("sampling needs temperature > 0 and 0 < top_p <= 1")


@dataclass
class DecodeOutput:
    """Generated token ids per caption (ending with eos when one was generated) and,
    with ``log_tokens``, one log dict per token (see ``msd.gather_token_log``)."""

    tokens: list[list[int]]
    token_logs: list[list[dict]] | None = None


def left_pad(seqs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack (L_i, D) sequences into embeddings (R, L, D) padded on the left with zeros,
    and the attention mask (R, L) (1 on real positions)."""
    length = max(seq.shape[0] for seq in seqs)
    first = seqs[0]
    embeds = first.new_zeros(len(seqs), length, first.shape[-1])
    mask = torch.zeros(len(seqs), length, dtype=torch.long, device=first.device)
    for row, seq in enumerate(seqs):
        embeds[row, length - seq.shape[0]:] = seq
        mask[row, length - seq.shape[0]:] = 1
    return embeds, mask


def preallocated_cache(capacity: int):
    """A transformers ``DynamicCache`` whose layers write each step's keys and values into
    buffers of ``capacity`` positions instead of concatenating (``PreallocatedLayer``);
    None when this transformers has no cache layers (4.x: the model builds its own)."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:
        return None

    class PreallocatedLayer(DynamicLayer):
        """``DynamicLayer`` with the same keys and values, kept as views of one buffer.

        ``DynamicLayer.update`` concatenates, copying the whole cache at every step (the
        larger share of a small model's per-token time beyond its matmuls, twice as
        large for the two rows of a pairwise decoder).  Here a step copies only its own
        positions; the attention reads ``buffer[:, :, :length]``, the same numbers.
        """

        def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                batch, heads, _, dim = key_states.shape
                self.key_buffer = key_states.new_empty(batch, heads, capacity, dim)
                self.value_buffer = value_states.new_empty(batch, heads, capacity, value_states.shape[-1])
                self.length = 0
            end = self.length + key_states.shape[-2]
            if end > capacity:
                raise RuntimeError(f"the decoding cache holds {capacity} positions, {end} were asked for")
            self.key_buffer[:, :, self.length:end].copy_(key_states)
            self.value_buffer[:, :, self.length:end].copy_(value_states)
            self.length = end
            self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
            return self.keys, self.values

    cache = DynamicCache()
    cache.layer_class_to_replicate = PreallocatedLayer
    return cache


class CachedRows:
    """R prompts of one causal LM advanced together, one token per row per step, with
    one KV cache.

    ``start()`` runs the left-padded prompts and returns the next-token logits (R, V);
    ``advance(embeds (R, 1, D))`` appends one token to every row and returns the next
    logits (R, V).  ``max_new_tokens``: when given, the cache is preallocated for the
    prompt plus that many tokens (``preallocated_cache``); else it grows by concatenation.
    """

    def __init__(self, model, prompts: list[Tensor], *, max_new_tokens: int | None = None) -> None:
        self.model = model
        params = inspect.signature(model.forward).parameters
        self.cache_key = "cache" if "cache" in params else "past_key_values"
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.embeds, self.mask = left_pad(prompts)
        self.cache = None if max_new_tokens is None else preallocated_cache(self.mask.shape[1] + max_new_tokens)
        self.last_position: Tensor | None = None

    def _forward(self, embeds: Tensor, positions: Tensor) -> Tensor:
        out = self.model(inputs_embeds=embeds, attention_mask=self.mask, position_ids=positions,
                         use_cache=True, **{self.cache_key: self.cache}, **self.keep_last)
        self.cache = getattr(out, self.cache_key)
        return out.logits[:, -1]

    def start(self) -> Tensor:
        positions = (self.mask.cumsum(-1) - 1).masked_fill(self.mask == 0, 0)
        self.last_position = positions[:, -1:]
        embeds, self.embeds = self.embeds, None
        return self._forward(embeds, positions)

    def advance(self, embeds: Tensor) -> Tensor:
        if self.last_position is None:
            raise RuntimeError("call start() before advance()")
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.last_position = self.last_position + 1
        return self._forward(embeds, self.last_position)


def step_scores(decoder: str, logits: Tensor, cfg: DecodeConfig, *,
                details: bool = True) -> tuple[Tensor, dict | None]:
    """Scores (B, V) of one step from the logits of all rows: (B, V) for single-pathway
    decoders, (2B, V) for pairwise ones (visual rows first).  ``details=False`` skips
    what only the per-token log needs (info is then None; the scores are the same)."""
    if len(PATHWAYS[decoder]) == 1:
        return greedy_scores(logits, details=details)
    if decoder == "msd":
        return msd_pair_scores(logits, cfg.msd, details=details)
    first, second = logits.chunk(2, dim=0)
    if decoder == "poe":
        return poe_scores(first, second, cfg.msd, details=details)
    return vcd_scores(first, second, cfg.vcd, details=details)


def choose(scores: Tensor, cfg: DecodeConfig, generator: torch.Generator | None) -> Tensor:
    """Token ids (B,) from scores (B, V): argmax, or a temperature / top-p sample."""
    if not cfg.do_sample:
        return scores.argmax(-1)
    scores = scores / cfg.temperature
    if cfg.top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probs = sorted_scores.softmax(-1)
        # drop a token when the tokens before it already hold top_p of the mass
        drop = (probs.cumsum(-1) - probs) > cfg.top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    probs = scores.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.inference_mode()
def decode(model, prompts: PathwayPrompts, *, embed_tokens: Callable[[Tensor], Tensor],
           cfg: DecodeConfig) -> DecodeOutput:
    """Decode one caption per prompt with ``cfg.decoder``.

    ``embed_tokens`` maps token ids (R, 1) to embeddings (R, 1, D), e.g.
    ``model.get_input_embeddings()``.
    """
    rows = prompts.rows(cfg.decoder)
    n_captions, n_pathways = len(prompts.visual), len(PATHWAYS[cfg.decoder])
    device = rows[0].device
    eos = torch.tensor([] if cfg.eos_token_id is None else cfg.eos_token_id,
                       dtype=torch.long, device=device).reshape(-1)
    generator = None
    if cfg.do_sample:
        generator = torch.Generator(device=device).manual_seed(cfg.seed)

    runner = CachedRows(model, rows, max_new_tokens=cfg.max_new_tokens)
    logits = runner.start()
    # without eos no caption stops: no stopping bookkeeping, and no host-device sync per step
    stopping = eos.numel() > 0
    finished = torch.zeros(n_captions, dtype=torch.bool, device=device)
    lengths = torch.full((n_captions,), cfg.max_new_tokens, dtype=torch.long, device=device)
    chosen_steps: list[Tensor] = []
    log_steps: list[dict[str, Tensor]] = []
    for step in range(cfg.max_new_tokens):
        scores, info = step_scores(cfg.decoder, logits, cfg, details=cfg.log_tokens)
        chosen = choose(scores, cfg, generator)
        if stopping:
            chosen = chosen.masked_fill(finished, cfg.pad_token_id)
        chosen_steps.append(chosen)
        if cfg.log_tokens:
            log_steps.append(gather_token_log(info, chosen))
        if step + 1 == cfg.max_new_tokens:
            break
        if stopping:
            stops = torch.isin(chosen, eos) & ~finished
            lengths = torch.where(stops, step + 1, lengths)
            finished = finished | stops
            if bool(finished.all()):
                break
        ids = chosen.repeat(n_pathways)[:, None]  # (R, 1): the same token in every pathway
        logits = runner.advance(embed_tokens(ids))

    tokens = torch.stack(chosen_steps, dim=1).tolist()  # (B, T)
    lengths = lengths.tolist()
    tokens = [row[:n] for row, n in zip(tokens, lengths)]
    token_logs = _unstack_logs(log_steps, lengths) if cfg.log_tokens else None
    return DecodeOutput(tokens=tokens, token_logs=token_logs)


def _unstack_logs(log_steps: list[dict[str, Tensor]], lengths: list[int]) -> list[list[dict]]:
    """Per-step dicts of (B,) tensors -> per caption, one dict of Python values per token."""
    columns = {key: torch.stack([step[key] for step in log_steps], dim=1).tolist()
               for key in log_steps[0]}  # key -> (B, T) nested lists
    return [[{key: columns[key][b][t] for key in columns} for t in range(n)]
            for b, n in enumerate(lengths)]

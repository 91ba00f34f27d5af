"""MSD as a ``LogitsProcessor``, for users of ``model.generate(inputs_embeds=visual, ...)``.

``generate`` runs the visual pathway; the processor keeps the motion pathway in its own
KV cache (``loop.CachedRows``) and advances it by the token ``generate`` chose last, one
token per call, the way transformers' ``UnbatchedClassifierFreeGuidanceLogitsProcessor``
runs its negative prompt.  Each call replaces the visual scores by ``msd_scores``
(its fast path, ``details=False``).

This costs a second forward per step (two passes of B rows instead of one of 2B rows),
so ``loop.decode`` is the faster path; the tokens are the same.  One processor serves
one ``generate`` call: batch row b of ``generate`` is caption b of ``motion``, so
beam search and ``num_return_sequences > 1`` are not supported.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from transformers import LogitsProcessor

from .loop import CachedRows
from .msd import MSDConfig, msd_scores


class MSDLogitsProcessor(LogitsProcessor):
    """Replace the visual pathway's scores (B, V) by MSD scores against the motion pathway.

    ``motion``: one motion-pathway prompt (L_i, D) per caption, in ``generate``'s batch
    order; ``embed_tokens`` maps token ids (B, 1) to embeddings (B, 1, D).
    """

    def __init__(self, *, model, motion: list[Tensor], embed_tokens: Callable[[Tensor], Tensor],
                 cfg: MSDConfig | None = None) -> None:
        self.cfg = cfg or MSDConfig()
        self.embed_tokens = embed_tokens
        self.rows = CachedRows(model, motion)
        self.started = False

    def motion_logits(self, input_ids: Tensor) -> Tensor:
        """Next-token logits (B, V) of the motion pathway after ``input_ids`` (B, t).

        ``input_ids`` holds the tokens generated so far (t = 0 on the first call when
        ``generate`` got ``inputs_embeds`` only): the first call runs the motion
        prompts, every later call appends the last generated token.
        """
        if input_ids.shape[0] != len(self.rows.mask):
            raise ValueError(f"generate runs {input_ids.shape[0]} rows, the processor has "
                             f"{len(self.rows.mask)} motion prompts")
        if not self.started:
            self.started = True
            return self.rows.start()
        return self.rows.advance(self.embed_tokens(input_ids[:, -1:]))

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        with torch.no_grad():
            z_m = self.motion_logits(input_ids)
        msd, _ = msd_scores(scores, z_m, self.cfg, details=False)
        return msd

"""Decoding: Motion Synergetic Decoding (MSD) and its baselines.

* ``msd``: one step's arithmetic: ``MSDConfig``, ``synergy_terms`` / ``synergy``,
  ``msd_scores``, ``poe_scores``, ``vcd_scores`` (the L1..L5 are this project's
  reconstruction); ``details=False`` is the decoders' fast path (same scores, bit for bit).
* ``fused``: the same step as one compiled CPU loop (numba), used by ``msd`` on the CPU.
* ``example``: the worked "hand or foot" step of the book and the tests.
* ``loop``: the one decoding loop, ``decode(model, PathwayPrompts, ...)``, with every
  pairwise decoder run as one batch of 2B rows and one KV cache.
* ``processor``: ``MSDLogitsProcessor`` for ``model.generate`` users (imports transformers).
"""
from .loop import DECODERS, DecodeConfig, DecodeOutput, PathwayPrompts, decode
from .msd import MSDConfig, VCDConfig, msd_scores, poe_scores, synergy, synergy_terms, vcd_scores

__all__ = [
    "DECODERS", "DecodeConfig", "DecodeOutput", "MSDConfig", "PathwayPrompts", "VCDConfig",
    "decode", "msd_scores", "poe_scores", "synergy", "synergy_terms", "vcd_scores",
]

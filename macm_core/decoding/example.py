"""The worked example of MSD: "hand" or "foot"?

After "the person raises their left ...", the video (visual pathway) slightly prefers
"foot"; the motion pathway, which sees the wrist move, clearly prefers "hand".  A
vocabulary of ten words and one decoding step; tests/test_msd.py checks every number of
it by hand and notebooks/04_msd.py prints them.
"""
from __future__ import annotations

import torch

VOCAB = ("<eos>", "the", "person", "raises", "their", "left", "right", "hand", "foot", "slowly")
HAND, FOOT = VOCAB.index("hand"), VOCAB.index("foot")


def noised_logits() -> torch.Tensor:
    """z_v' (1, 10) for VCD: the visual pathway fed the video with diffusion noise.  The
    noise wipes out the detail that separated the two words (both at 1.5); what is left is
    the prompt's prior."""
    z = torch.full((1, len(VOCAB)), -2.0)
    z[0, FOOT], z[0, HAND] = 1.5, 1.5
    return z


def hand_foot_logits() -> tuple[torch.Tensor, torch.Tensor]:
    """(z_v, z_m), each (1, 10): every word at -2; the visual pathway gives "foot" 2.0 and
    "hand" 1.8, the motion pathway "foot" 0.0 and "hand" 4.0."""
    z_v = torch.full((1, len(VOCAB)), -2.0)
    z_m = torch.full((1, len(VOCAB)), -2.0)
    z_v[0, FOOT], z_v[0, HAND] = 2.0, 1.8
    z_m[0, FOOT], z_m[0, HAND] = 0.0, 4.0
    return z_v, z_m

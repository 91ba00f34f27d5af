"""Seed every random number generator and fix torch's thread count.

Every entry point (CLI commands, notebooks, tests, benchmarks) calls ``set_determinism``
first, so that a profile and a seed are all it takes to reproduce a number.
"""
from __future__ import annotations

import os
import random

import numpy as np


def set_determinism(seed: int, *, threads: int | None = None) -> None:
    """Seed Python, numpy and torch; set torch's intra-op threads when given."""
    import torch

    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)

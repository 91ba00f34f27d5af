"""Seed every random number generator and fix torch's thread count.

Every entry point (CLI commands, notebooks, tests, benchmarks) calls ``set_determinism``
first, so that a profile and a seed are all it takes to reproduce a number.
"""
from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

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


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads, then restore the old count.

    Loops over many small tensors (one clip at a time) are fastest on one thread: more
    threads only add synchronisation, and on a busy machine they wait for each other.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def spawned_with_threads(threads: int) -> Iterator[object]:
    """A ``spawn`` multiprocessing context whose children start with at most ``threads``
    threads in every OpenMP / MKL / OpenBLAS pool, for the length of the block.

    ``torch.set_num_threads(1)`` in a child is not enough: two such feature workers on two
    cores each kept a second busy thread (/proc), and py-spy showed OpenMP regions opened by
    MKL's vector math (``vmsLn`` under ``torch.log``) and by ``torch.nonzero``.  The pools
    read these variables when a child starts, so they are set in this process's
    environment while the children are spawned, and restored after.
    """
    import multiprocessing

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    try:
        yield multiprocessing.get_context("spawn")
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

"""Matrix products of the linear layers in bfloat16 while training; everything else in float32.

``linear_matmuls(model, "bfloat16")`` is a context manager: while it is active, every
``nn.Linear`` of ``model`` casts its input and weight to bfloat16, multiplies (the BLAS
accumulates in float32), casts the product back to the input's dtype and adds the bias
there.  Autograd carries the casts, so gradients reach the float32 weights in float32,
and the optimizer state, the norms, attention, the softmax and the loss stay in float32.
This is the matrix-product half of ``torch.autocast``, without the rest: on the cpu
profile, ``torch.autocast("cpu", dtype=torch.bfloat16)`` made a training step slower
(137-143 against 143-147 samples/s) and its loss stalled at 6.0 in 90 steps, where this
follows the float32 loss to the second decimal.

Why: on a CPU with AVX512-BF16 (this project's 2-core AMD EPYC), a (990, 128) x (128, 384)
product takes 0.46 ms in bfloat16 against 1.11 ms in float32 (one thread, MKL).  What that
buys depends on what else runs (measured on that machine):
- vitpose-tiny's training (one process, two threads): 600 steps in 77-87 s against 100 s in
  the book's builds; the cpu profile sets ``pose.vitpose_tiny.matmul_dtype: bfloat16``;
- the caption model's stage 2, one run alone: 1.18-1.31x the samples/s of float32;
- but the book trains two runs at once, one per core, and there the two bfloat16 runs
  made about 1.03x the samples of two float32 runs, and the build's training took longer;
  the cpu profile leaves ``train.matmul_dtype`` null.  ``macm bench train`` measures it.
A CPU without bfloat16 instructions emulates them and is slower
(``bfloat16_matmul_is_native`` says which, ``trainer.train`` warns).

The layers are patched on the instance and restored on exit, so the model saved after
training is an ordinary float32 model, and decoding, which runs outside the context, multiplies in
float32.  ``None`` leaves the model as it is (the weights' own dtype: float32 on the cpu
profiles, bfloat16 on the gpu profile's bfloat16 weights).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MATMUL_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def matmul_dtype(name: str | None) -> torch.dtype | None:
    """The torch dtype of a ``matmul_dtype`` setting (None: the weights' own)."""
    if name is None:
        return None
    if name not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {', '.join(MATMUL_DTYPES)} or None (the weights' own "
                         f"dtype), got {name!r}")
    return MATMUL_DTYPES[name]


def _linear_in(self: nn.Linear, x: torch.Tensor, *, dtype: torch.dtype) -> torch.Tensor:
    y = F.linear(x.to(dtype), self.weight.to(dtype)).to(x.dtype)
    return y if self.bias is None else y + self.bias.to(x.dtype)


@contextlib.contextmanager
def linear_matmuls(model: nn.Module, dtype: str | torch.dtype | None) -> Iterator[int]:
    """While active, every ``nn.Linear`` of ``model`` multiplies in ``dtype`` and returns
    its input's dtype; yields how many layers it changed (0 for ``dtype=None``).  The
    layers' own ``forward`` is back on exit, also after an error."""
    if isinstance(dtype, str) or dtype is None:
        dtype = matmul_dtype(dtype)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)] if dtype is not None else []
    saved = [m.__dict__.get("forward") for m in layers]  # an instance-level forward (hooks) comes back too
    try:
        for layer in layers:
            layer.forward = functools.partial(_linear_in, layer, dtype=dtype)
        yield len(layers)
    finally:
        for layer, forward in zip(layers, saved):
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


@functools.cache
def bfloat16_matmul_is_native() -> bool:
    """Whether this machine's CPU has bfloat16 dot-product instructions (AVX512-BF16 or
    AMX-BF16; Linux ``/proc/cpuinfo``).  Without them bfloat16 products are emulated and slower
    than float32.  False where the flags cannot be read."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags

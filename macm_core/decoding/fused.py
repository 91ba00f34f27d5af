"""One decoding step of MSD, PoE or VCD as ONE compiled CPU loop (numba), for float32
logits on the CPU.

Why: on the cpu profile (a vocabulary of 800) the torch version of an MSD step is ~26
elementwise operations of a few microseconds each, and in the decoding loop, between
two forward passes, they cost about twice what they cost alone: about 110 us a token,
against about 15 us for this loop (measured by timing each part of ``loop.decode``; see
``msd.py``'s docstring).  The formulas are ``msd.py``'s; the torch functions there stay
the reference (and the path on GPUs, or with ``fused=False``).

What is computed, per caption b (rows b and B + b of ``z``, visual first):

* log-softmax of both rows, in float64 (max-shifted, one ``exp`` per logit and row);
* ``y_hat`` = argmax z_v (the first on ties; p_v is monotone in z_v);
* MSD: S at ``y_hat`` gives the cut c = clamp(beta (1 + S(y_hat)), 0, 1); then
  V_head = {p_v >= c max p_v} and the scores log p_v + S on V_head, -inf elsewhere.  S
  is computed on V_head only, since the scores need it nowhere else (its value outside
  is returned as 0), unless the per-token log asks for it everywhere;
* PoE: log p_v + log p_m on {p_v >= min(beta, 1) max p_v} (MSD's cut with S = 0);
* VCD: log p_v + a log p_v - a log p_v' on {p_v >= b max p_v}.

Numbers: float64 inside, float32 out.  They agree with the torch functions to float32
rounding (tests/test_msd_fused.py compares them on the properties' inputs), so a token can
differ only where two candidates tie to within that rounding.  Every CPU path of
``msd.py`` (the decoding loop, the per-token log, ``msd_scores``, the LogitsProcessor)
calls this one, so they choose the same tokens as each other.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

MSD, POE, VCD = 0, 1, 2


def available(logits: Tensor) -> bool:
    """Whether ``step`` can score these logits: they live on the CPU."""
    return logits.device.type == "cpu"


def _step_rows(z, scores, synergy, cut, top, mode, w1, theta, w2, w3, w4, root, w5, beta, use, vcd_alpha,
               everywhere):
    """Fill scores, synergy (B, V), cut and top (B,) from z (2B, V); see the module docstring.
    ``everywhere``: S on every token, not only on V_head (what the per-token log shows)."""
    rows, vocab = z.shape
    half = rows // 2
    l1_scale = w1 / math.expm1(theta)
    ratio = np.empty(vocab)  # p_v / max p_v = exp(z_v - max z_v)
    for b in range(half):
        zv, zm = z[b], z[half + b]
        # float64 throughout (numba keeps float32 for float() of a float32 element)
        best_v, best_m, y_hat = np.float64(zv[0]), np.float64(zm[0]), 0
        for i in range(vocab):
            if zv[i] > best_v:
                best_v, y_hat = np.float64(zv[i]), i
            if zm[i] > best_m:
                best_m = np.float64(zm[i])
        sum_v, sum_m = 0.0, 0.0
        for i in range(vocab):
            ratio[i] = math.exp(np.float64(zv[i]) - best_v)
            sum_v += ratio[i]
            sum_m += math.exp(np.float64(zm[i]) - best_m)
        # log p = (z - max z) - log(sum): z - max z is exact, so shifting the logits by a
        # constant (exactly representable) changes nothing
        lse_v, lse_m = math.log(sum_v), math.log(sum_m)
        p_max = math.exp(-lse_v)
        top[b] = y_hat

        c = min(max(beta, 0.0), 1.0)
        if mode == MSD and (use[0] or use[1] or use[2] or use[3] or use[4]):
            p_top_m = math.exp((np.float64(zm[y_hat]) - best_m) - lse_m)
            s_top = _synergy(p_max, p_top_m, l1_scale, theta, w2, w3, w4, root, w5, use)
            c = min(max(beta * (1.0 + s_top), 0.0), 1.0)
        cut[b] = c
        for i in range(vocab):
            inside = ratio[i] >= c  # p_v >= c max p_v
            logp_v = (np.float64(zv[i]) - best_v) - lse_v
            logp_m = (np.float64(zm[i]) - best_m) - lse_m  # VCD: of the noised video
            s = 0.0
            if mode == MSD and (inside or everywhere):
                s = _synergy(math.exp(logp_v), math.exp(logp_m), l1_scale, theta, w2, w3, w4, root, w5, use)
            synergy[b, i] = s
            if not inside:
                scores[b, i] = -np.inf
            elif mode == MSD:
                scores[b, i] = logp_v + s
            elif mode == POE:
                scores[b, i] = logp_v + logp_m
            else:
                scores[b, i] = logp_v + (logp_v * vcd_alpha - logp_m * vcd_alpha)


def _synergy(p_v, p_m, l1_scale, theta, w2, w3, w4, root, w5, use):
    """S = L1 + ... + L5 of msd.md at one token (the enabled terms), float64."""
    s = 0.0
    if use[0]:
        s += l1_scale * math.expm1(theta * min(p_v, p_m))
    if use[1]:
        s += w2 * (p_v + p_m) / 2.0
    diff = p_v - p_m
    if use[2]:
        s -= w3 * math.log1p(abs(diff))
    if use[3]:
        product = p_v * p_m
        s += w4 * (math.sqrt(product) if root == 0.5 else product ** root)
    if use[4]:
        s -= w5 * diff * diff
    return s


_synergy = numba.njit(cache=True, inline="always")(_synergy)
_step_rows = numba.njit(cache=True)(_step_rows)


def step(logits: Tensor, mode: int, *, msd=None, vcd=None,
         synergy_everywhere: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step from the stacked logits (2B, V) (first pathway's rows first).

    mode: ``MSD`` (with ``msd``: an ``MSDConfig``), ``POE`` (``msd.beta`` is its cut) or
    ``VCD`` (with ``vcd``: a ``VCDConfig``).  Returns scores (B, V) float32, S (B, V)
    float32 (MSD: on V_head, 0 elsewhere unless ``synergy_everywhere``; else 0), the cut
    c (B,) float32 and y_hat (B,).  The scores do not depend on ``synergy_everywhere``.
    """
    if logits.ndim != 2 or logits.shape[0] % 2:
        raise ValueError(f"expected stacked logits (2B, V), got {tuple(logits.shape)}")
    z = logits.detach().float().contiguous().numpy()
    half, vocab = z.shape[0] // 2, z.shape[1]
    scores = np.empty((half, vocab), dtype=np.float32)
    synergy = np.empty((half, vocab), dtype=np.float32)
    cut = np.empty(half, dtype=np.float32)
    top = np.empty(half, dtype=np.int64)
    if mode == VCD:
        _step_rows(z, scores, synergy, cut, top, VCD, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5, 0.0, float(vcd.beta),
                   (False,) * 5, float(vcd.alpha), False)
    else:
        use = (msd.use_l1, msd.use_l2, msd.use_l3, msd.use_l4, msd.use_l5) if mode == MSD else (False,) * 5
        _step_rows(z, scores, synergy, cut, top, mode, float(msd.alpha1), float(msd.theta), float(msd.alpha2),
                   float(msd.alpha3), float(msd.alpha4), 1.0 / float(msd.alpha6), float(msd.alpha5),
                   float(msd.beta), use, 0.0, bool(synergy_everywhere))
    return (torch.from_numpy(scores), torch.from_numpy(synergy), torch.from_numpy(cut),
            torch.from_numpy(top))

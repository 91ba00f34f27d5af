"""Motion Synergetic Decoding (MSD) and the pairwise baselines, one decoding step.

The paper (arXiv 2510.24767) publishes only the outline of MSD: a synergy score
S = L1 + ... + L5 built from an exponential, an averaging, a logarithmic, a power and
a quadratic term, its hyperparameters, and the pruning rule
``V_head = {y : rho(y) >= beta * (1 + S(y_hat))}``.  The exact L1..L5 are NOT public:
the formulas below are this project's reconstruction (``/work/shared/design/msd.md``).
Every constant lives in ``MSDConfig`` and every term has a switch, so the paper's own
formula can replace ours here without touching the decoding loop.

At one decoding step, for B captions and a vocabulary of V tokens:

* ``z_v`` (B, V): logits of the visual pathway, ``z_m`` (B, V): of the motion pathway;
  ``p_v = softmax(z_v)``, ``p_m = softmax(z_m)``, always computed in float32.
* ``synergy_terms`` gives the enabled L_i, each (B, V); ``S`` is their sum.
* ``msd_scores``: with ``y_hat = argmax p_v`` and ``c = clamp(beta * (1 + S[y_hat]), 0, 1)``,
  ``V_head = {y : p_v(y) >= c * max p_v}`` (never empty: it holds y_hat) and the scores
  are ``log p_v + S`` on V_head, ``-inf`` elsewhere.  Argmax or the usual warpers pick
  the token.
* ``poe_scores``: product of experts, ``log p_v + log p_m`` on the V_head of S = 0
  (``c = beta``).
* ``vcd_scores``: visual contrastive decoding (Leng et al., CVPR 2024),
  ``(1 + a) z_v - a z_v'`` for the noised video v', on ``{y : p_v(y) >= b * max p_v}``.
  It is computed on log-probabilities, which differ from the logits by one constant
  per row, so the tokens and the sampling distribution are those of the logit formula.
* ``greedy_scores``: one pathway, its logits (greedy decoding of the visual or the
  joint input).

Every ``*_scores`` returns ``(scores (B, V), info)``; ``info`` holds what the per-token
log needs (see ``gather_token_log``): ``"vocab"``, a dict of (B, V) tensors read at the
chosen and at the visual top token; ``"row"``, a dict of (B,) tensors; ``"y_hat"`` (B,).
With ``details=False`` (the decoding loop without a log) info is None, nothing is
computed for the log, and ``msd_scores`` may compute S on candidate tokens only; the
scores are the same bit for bit (the proof is in ``msd_scores``).

On the CPU every entry point (``msd_pair_scores``, ``msd_scores``, ``poe_scores``,
``vcd_scores``; with or without details) scores the step with ``fused.step``, one
compiled loop over the vocabulary (numba), and the functions below give only what the
per-token log reads beyond it (p_v, p_m, the terms one by one).  They are the reference
(tests/test_msd_fused.py compares the two), and the path on GPUs (``fused=False``
forces it).

Speed of the torch path (the profile behind these choices, ``macm bench latency``): per
step MSD adds the element-wise operations over the vocabulary below to the two-row
forward pass.  ``msd_pair_scores`` does one log-softmax and one exp for both pathways,
``max`` giving max p_v and its argmax at once, the cut and the pruning in place (each
op on a small vocabulary costs its dispatch, not its arithmetic).  S is one fused chain
of 14 operations (``synergy``: each weight folded into the sum), not 21
(``synergy_terms`` + stacking + summing, which only the log needs); the log-only work
(p_m of the log, |V_head|, the terms one by one) is skipped.  On a small vocabulary the
per-operation overhead dominates, so S covers the whole vocabulary; from
``CANDIDATE_MIN_VOCAB`` tokens on the CPU it covers the candidates only.  Nothing here
reads a value back from the device (no ``.item()``), except boolean indexing on that
CPU-only candidate path.  Still, about 26 operations of a few microseconds each, which
in the decoding loop cost about twice what they cost alone: on the cpu profile the
torch step took about 110 us a token in the loop against about 15 us for ``fused.step``
(MSD-all / greedy-visual 1.29 against 1.22, ``macm bench latency --profile cpu``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from . import fused as fused_step

TERMS = ("L1", "L2", "L3", "L4", "L5")


@dataclass(frozen=True)
class MSDConfig:
    """Every constant of MSD; defaults are the paper's alpha, beta and theta.

    ``use_l1`` .. ``use_l5`` switch the terms; with all off MSD is greedy decoding of
    the visual pathway pruned by ``beta``.
    """

    alpha1: float = 0.5
    alpha2: float = 0.2
    alpha3: float = 0.4
    alpha4: float = 0.8
    alpha5: float = 0.3
    alpha6: float = 2.0
    beta: float = 0.2
    theta: float = 2.0
    use_l1: bool = True
    use_l2: bool = True
    use_l3: bool = True
    use_l4: bool = True
    use_l5: bool = True

    def __post_init__(self) -> None:
        if not self.alpha6 > 0:
            raise ValueError(f"alpha6 must be > 0 (it is the root of L4), got {self.alpha6}")
        if not self.theta > 0:
            raise ValueError(f"theta must be > 0 (L1 divides by exp(theta) - 1), got {self.theta}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        switches = (self.use_l1, self.use_l2, self.use_l3, self.use_l4, self.use_l5)
        # read at every decoding step: computed once (an attribute, not a field: not in eq/hash)
        object.__setattr__(self, "_enabled", tuple(name for name, on in zip(TERMS, switches) if on))

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the enabled terms, in order, e.g. ``("L1", "L3")``."""
        return self._enabled

    def only(self, *terms: str) -> "MSDConfig":
        """The same constants with exactly ``terms`` enabled (``only()`` disables all)."""
        unknown = set(terms) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown terms {sorted(unknown)}; expected some of {TERMS}")
        switches = {f"use_l{i + 1}": name in terms for i, name in enumerate(TERMS)}
        return replace(self, **switches)


@dataclass(frozen=True)
class VCDConfig:
    """Visual contrastive decoding: contrast strength ``alpha`` and plausibility cut ``beta``."""

    alpha: float = 1.0
    beta: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.beta <= 1:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")


# elementwise kernels compute each element independently of where it sits in the tensor
# (checked for every op below, with torch 2.13 on CPU): the synergy of a gathered subset
# of tokens is then bit for bit the synergy of those tokens in the full vocabulary.  A
# general power ``x ** (1 / a6)`` is the exception (its vector and scalar code round
# differently), so the root of L4 is taken as ``exp(log(x) / a6)`` unless a6 == 2 (sqrt).
CANDIDATE_MIN_VOCAB = 8192  # below this, restricting S to candidate tokens costs more than it saves


def _float32(z: Tensor) -> Tensor:
    return z if z.dtype == torch.float32 else z.float()


def _root(product: Tensor, alpha6: float) -> Tensor:
    """``product ** (1 / alpha6)`` in place, computed the same way wherever an element sits."""
    if alpha6 == 2.0:
        return product.sqrt_()
    return product.log_().mul_(1.0 / alpha6).exp_()  # log(0) = -inf -> exp(-inf) = 0


def synergy_terms(p_v: Tensor, p_m: Tensor, cfg: MSDConfig) -> dict[str, Tensor]:
    """The enabled synergy terms, each (B, V), from probabilities p_v, p_m (B, V).

    L1 = a1 * (exp(theta * min(p_v, p_m)) - 1) / (exp(theta) - 1)
    L2 = a2 * (p_v + p_m) / 2
    L3 = -a3 * log(1 + |p_v - p_m|)
    L4 = a4 * (p_v * p_m) ** (1 / a6)
    L5 = -a5 * (p_v - p_m) ** 2

    These are what the per-token log reports; the decoders add them up with ``synergy``.
    """
    enabled = cfg.enabled
    terms: dict[str, Tensor] = {}
    if "L1" in enabled:
        scale = cfg.alpha1 / math.expm1(cfg.theta)
        terms["L1"] = torch.expm1(torch.minimum(p_v, p_m) * cfg.theta).mul_(scale)
    if "L2" in enabled:
        terms["L2"] = (p_v + p_m).mul_(cfg.alpha2 / 2)
    if "L3" in enabled or "L5" in enabled:
        diff = p_v - p_m
        if "L3" in enabled:
            terms["L3"] = torch.log1p(diff.abs()).mul_(-cfg.alpha3)
        if "L5" in enabled:
            terms["L5"] = diff.square().mul_(-cfg.alpha5)
    if "L4" in enabled:
        terms["L4"] = _root(p_v * p_m, cfg.alpha6).mul_(cfg.alpha4)
    return {name: terms[name] for name in TERMS if name in terms}


def synergy(p_v: Tensor, p_m: Tensor, cfg: MSDConfig) -> Tensor | None:
    """S = the sum of the enabled terms, same shape as p_v and p_m (any shape); None when
    every term is off.

    The terms of ``synergy_terms``, fused: each term's weight is folded into the sum
    (``S.add_(x, alpha=w)``), so S costs 14 elementwise ops instead of 21.  S equals the
    sum of ``synergy_terms`` up to float32 rounding; every decoder uses this one, so the
    logged S and the S that chose the token are the same numbers.
    """
    enabled = cfg.enabled
    if not enabled:
        return None
    total: Tensor | None = None

    def add(x: Tensor, weight: float) -> None:
        nonlocal total
        total = x.mul_(weight) if total is None else total.add_(x, alpha=weight)

    if "L1" in enabled:
        add(torch.minimum(p_v, p_m).mul_(cfg.theta).expm1_(), cfg.alpha1 / math.expm1(cfg.theta))
    if "L2" in enabled:
        add(p_v + p_m, cfg.alpha2 / 2)
    diff = p_v - p_m if ("L3" in enabled or "L5" in enabled) else None
    if "L3" in enabled:
        add(diff.abs().log1p_(), -cfg.alpha3)
    if "L4" in enabled:
        add(_root(p_v * p_m, cfg.alpha6), cfg.alpha4)
    if "L5" in enabled:
        if total is None:
            total = diff.square().mul_(-cfg.alpha5)
        else:
            total.addcmul_(diff, diff, value=-cfg.alpha5)
    return total


def synergy_bounds(cfg: MSDConfig) -> tuple[float, float]:
    """(lowest, highest) value S can take for any p_v, p_m in [0, 1] with ``cfg``.

    Over [0, 1]^2: L1 in a1 * [0, 1] (min(p_v, p_m) in [0, 1]), L2 in a2 * [0, 1],
    L3 in -a3 * [0, log 2] (|p_v - p_m| in [0, 1]), L4 in a4 * [0, 1], L5 in -a5 * [0, 1].
    """
    ranges = {"L1": (0.0, cfg.alpha1), "L2": (0.0, cfg.alpha2), "L3": (0.0, -cfg.alpha3 * math.log(2.0)),
              "L4": (0.0, cfg.alpha4), "L5": (0.0, -cfg.alpha5)}
    low = sum(min(ranges[name]) for name in cfg.enabled)
    high = sum(max(ranges[name]) for name in cfg.enabled)
    return low, high


def pair_log_probs(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(log p_v, log p_m), each (B, V), from the stacked logits (2B, V) of a pairwise step
    (first pathway's rows first): one log-softmax for both pathways, row by row the same
    numbers as two calls."""
    logp_v, logp_m = torch.log_softmax(_float32(logits), dim=-1).chunk(2, dim=0)
    return logp_v, logp_m


def use_fused(logits: Tensor, fused: bool | None) -> bool:
    """Whether a step is scored by ``fused.step`` (one compiled CPU loop): ``fused`` None
    = when it can (CPU logits), True = always (an error where it can not), False = never
    (the torch functions of this module)."""
    if fused is None:
        return fused_step.available(logits)
    if fused and not fused_step.available(logits):
        raise RuntimeError(f"fused=True needs CPU logits, got {logits.device} ones; pass fused=None")
    return fused


def _fused_info(scores: Tensor, cut: Tensor, y_hat: Tensor, vocab: dict) -> dict:
    """The per-token log's info of a fused step: its cut and y_hat, |V_head| from its scores."""
    return {"vocab": vocab, "row": {"c": cut, "v_head": torch.isfinite(scores).sum(-1)}, "y_hat": y_hat}


def _fused_pair(z_v: Tensor, z_second: Tensor, second: str, details: bool, mode: int,
                **config) -> tuple[Tensor, dict | None]:
    """PoE or VCD (``mode``) by ``fused.step``; the log's p_v and p of the second row
    (named ``second``) from one torch log-softmax."""
    logits = torch.cat([z_v, z_second])
    scores, _, cut, y_hat = fused_step.step(logits, mode, **config)
    if not details:
        return scores, None
    p_v, p_second = torch.log_softmax(_float32(logits), dim=-1).exp().chunk(2, dim=0)
    return scores, _fused_info(scores, cut, y_hat, {"p_v": p_v, second: p_second})


def msd_pair_scores(logits: Tensor, cfg: MSDConfig, *, details: bool = True,
                    candidates: bool | None = None, fused: bool | None = None) -> tuple[Tensor, dict | None]:
    """``msd_scores`` from the stacked logits (2B, V) of a pairwise step (visual rows
    first), as the decoding loop holds them: one log-softmax and one exp for both
    pathways (elementwise, so the same numbers as one call per pathway).

    On the CPU (``fused``, see ``use_fused``) the scores, S, the cut and y_hat come from
    ``fused.step``; the log's p_v, p_m and terms from the torch functions here."""
    if use_fused(logits, fused):
        scores, total, cut, y_hat = fused_step.step(logits, fused_step.MSD, msd=cfg, synergy_everywhere=details)
        if not details:
            return scores, None
        p_v, p_m = torch.log_softmax(_float32(logits), dim=-1).exp().chunk(2, dim=0)
        vocab = {"p_v": p_v, "p_m": p_m, **synergy_terms(p_v, p_m, cfg), "S": total}
        return scores, _fused_info(scores, cut, y_hat, vocab)
    logp = torch.log_softmax(_float32(logits), dim=-1)
    logp_v, logp_m = logp.chunk(2, dim=0)
    p_v, p_m = logp.exp().chunk(2, dim=0)
    return _msd(logp_v, p_v, logp_m, p_m, cfg, details=details, candidates=candidates)


@functools.lru_cache(maxsize=64)
def cut_floor(cfg: MSDConfig) -> float:
    """A float c_lo <= the cut c of every step, for any logits: 0 when none is known.

    c = clamp(beta * (1 + S(y_hat)), 0, 1) is non-decreasing in S(y_hat) (beta >= 0) and
    S(y_hat) >= ``synergy_bounds(cfg)[0]``.  The slack (1e-4 of the weights' size) covers
    the float32 rounding of the computed S and of c, many orders of magnitude larger than
    it, so c_lo <= c holds for the computed numbers too, not only for the real ones.
    """
    low, _ = synergy_bounds(cfg)
    weights = (cfg.alpha1, cfg.alpha2, cfg.alpha3, cfg.alpha4, cfg.alpha5)
    slack = 1e-4 * (1.0 + sum(abs(w) for w in weights))
    return min(max(cfg.beta * (1.0 + low - slack), 0.0), 1.0)


def _cut(synergy_at_top: Tensor | None, cfg: MSDConfig, like: Tensor) -> Tensor:
    """c (B, 1) = clamp(beta * (1 + S(y_hat)), 0, 1); min(beta, 1) without synergy."""
    if synergy_at_top is None:
        return torch.full_like(like[:, :1], min(cfg.beta, 1.0))
    return (cfg.beta * (1.0 + synergy_at_top)).clamp(0.0, 1.0)


def _prune(logp_v: Tensor, p_v: Tensor, bonus: Tensor | None, c: Tensor, *,
           p_max: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Scores ``log p_v + bonus`` on ``V_head = {p_v >= c * max p_v}``, -inf elsewhere;
    and the mask of the tokens outside V_head (B, V).

    logp_v, p_v (B, V); bonus (B, V) or None; c (B, 1) in [0, 1], so the top token is
    always kept.
    """
    if p_max is None:
        p_max = p_v.amax(-1, keepdim=True)
    outside = p_v < c * p_max
    scores = logp_v if bonus is None else logp_v + bonus
    return scores.masked_fill(outside, float("-inf")), outside


def greedy_scores(z: Tensor, *, details: bool = True) -> tuple[Tensor, dict | None]:
    """One pathway: the scores are the float32 logits z (B, V) themselves, nothing
    pruned, so argmax is ``generate``'s greedy choice bit for bit.  ``details=False``
    skips what only the per-token log needs (info is then None)."""
    scores = _float32(z)
    if not details:
        return scores, None
    y_hat = scores.argmax(-1)
    head_size = torch.full_like(y_hat, scores.shape[-1])
    p_v = torch.softmax(scores, dim=-1)
    info = {"vocab": {"p_v": p_v}, "row": {"v_head": head_size}, "y_hat": y_hat}
    return scores, info


def _use_candidates(p_v: Tensor, candidates: bool | None) -> bool:
    if candidates is not None:
        return candidates
    return p_v.device.type == "cpu" and p_v.shape[-1] >= CANDIDATE_MIN_VOCAB


def msd_scores(z_v: Tensor, z_m: Tensor, cfg: MSDConfig, *, details: bool = True,
               candidates: bool | None = None, fused: bool | None = None) -> tuple[Tensor, dict | None]:
    """MSD scores (B, V) from the visual and motion logits z_v, z_m (B, V).

    With ``details`` (the default) ``info["vocab"]`` holds p_v, p_m, each enabled L_i
    and S (all (B, V)), ``info["row"]`` the cut c and |V_head| (B,).  ``details=False``
    returns info None and may compute S on candidate tokens only (``candidates``: None =
    on CPU with a vocabulary of at least ``CANDIDATE_MIN_VOCAB``; True / False = always /
    never).  The scores are the same bit for bit either way (tests/test_msd.py):

    Why S on the candidates C = {y : p_v(y) >= c_lo * max p_v} gives the same scores,
    with c_lo = ``cut_floor(cfg)`` > 0.  The scores need S at two places only: at y_hat
    (for the cut c) and on V_head (elsewhere they are -inf whatever S is).  c >= c_lo
    (``cut_floor``), so V_head = {p_v >= c * max p_v} is inside C; y_hat is in C because
    p_v(y_hat) = max p_v and c_lo <= 1.  On C, S is computed by the same elementwise ops
    on the same values as over the whole vocabulary, hence the same numbers (see the
    comment above ``CANDIDATE_MIN_VOCAB``); outside C it is set to 0, which only reaches
    tokens outside V_head, and those are -inf anyway.  In float32: c_lo is below the
    computed c by a margin far above rounding (``cut_floor``), and x -> x * max p_v is
    monotone in IEEE arithmetic, so the computed V_head is inside the computed C.

    On the CPU (``fused``, see ``use_fused``) this is ``msd_pair_scores`` of the stacked
    logits, scored by ``fused.step``.
    """
    if use_fused(z_v, fused):
        return msd_pair_scores(torch.cat([z_v, z_m]), cfg, details=details, fused=True)
    logp_v = torch.log_softmax(_float32(z_v), dim=-1)
    logp_m = torch.log_softmax(_float32(z_m), dim=-1)
    return msd_from_log_probs(logp_v, logp_m, cfg, details=details, candidates=candidates)


def msd_from_log_probs(logp_v: Tensor, logp_m: Tensor, cfg: MSDConfig, *, details: bool = True,
                       candidates: bool | None = None) -> tuple[Tensor, dict | None]:
    """``msd_scores`` from the log-probabilities of both pathways (B, V)."""
    return _msd(logp_v, logp_v.exp(), logp_m, None, cfg, details=details, candidates=candidates)


def _msd(logp_v: Tensor, p_v: Tensor, logp_m: Tensor, p_m: Tensor | None, cfg: MSDConfig, *,
         details: bool, candidates: bool | None) -> tuple[Tensor, dict | None]:
    """MSD from log p_v, p_v = exp(log p_v), log p_m and p_m = exp(log p_m) (None: computed
    here when needed), each (B, V).  Without ``details`` the cut and the pruning are done
    in place on temporaries (fewer allocations per step; the same numbers)."""
    p_max, y_hat = p_v.max(-1, keepdim=True)  # y_hat = argmax p_v, the first one on ties
    c_lo = cut_floor(cfg)
    if not details and cfg.enabled and c_lo > 0 and _use_candidates(p_v, candidates):
        chosen = p_v >= p_max * c_lo  # C, holding V_head and y_hat
        p_m_chosen = logp_m[chosen].exp_() if p_m is None else p_m[chosen]  # indexing copies: exp_ is safe
        total = torch.zeros_like(p_v).masked_scatter_(chosen, synergy(p_v[chosen], p_m_chosen, cfg))
    else:
        p_m = logp_m.exp() if p_m is None else p_m  # as p_v: equal logits, equal p
        total = synergy(p_v, p_m, cfg)
    if not details:
        if total is None:
            return _prune(logp_v, p_v, None, _cut(None, cfg, p_v), p_max=p_max)[0], None
        # c = clamp(beta * (1 + S(y_hat)), 0, 1) and log p_v + S, computed as _cut and _prune do
        c = total.gather(-1, y_hat).add_(1.0).mul_(cfg.beta).clamp_(0.0, 1.0)
        outside = p_v < c.mul_(p_max)
        return total.add_(logp_v).masked_fill_(outside, float("-inf")), None
    c = _cut(None if total is None else total.gather(-1, y_hat), cfg, p_v)
    scores, outside = _prune(logp_v, p_v, total, c, p_max=p_max)
    terms = synergy_terms(p_v, p_m, cfg)
    vocab = {"p_v": p_v, "p_m": p_m, **terms, "S": torch.zeros_like(p_v) if total is None else total}
    head_size = p_v.shape[-1] - outside.sum(-1)
    info = {"vocab": vocab, "row": {"c": c[:, 0], "v_head": head_size}, "y_hat": y_hat[:, 0]}
    return scores, info


def poe_scores(z_v: Tensor, z_m: Tensor, cfg: MSDConfig, *, details: bool = True,
               fused: bool | None = None) -> tuple[Tensor, dict | None]:
    """Product of experts (B, V): log p_v + log p_m on ``{p_v >= beta * max p_v}``.

    The pruning is MSD's with S = 0, so only ``cfg.beta`` is read.  ``fused``: as in
    ``msd_pair_scores``.
    """
    if use_fused(z_v, fused):
        return _fused_pair(z_v, z_m, "p_m", details, fused_step.POE, msd=cfg)
    logp_v = torch.log_softmax(_float32(z_v), dim=-1)
    logp_m = torch.log_softmax(_float32(z_m), dim=-1)
    p_v = logp_v.exp()
    c = _cut(None, cfg, logp_v)
    scores, outside = _prune(logp_v, p_v, logp_m, c)
    if not details:
        return scores, None
    vocab = {"p_v": p_v, "p_m": logp_m.exp()}
    info = {"vocab": vocab, "row": {"c": c[:, 0], "v_head": p_v.shape[-1] - outside.sum(-1)},
            "y_hat": logp_v.argmax(-1)}
    return scores, info


def vcd_scores(z_v: Tensor, z_noised: Tensor, cfg: VCDConfig, *, details: bool = True,
               fused: bool | None = None) -> tuple[Tensor, dict | None]:
    """VCD (B, V): (1 + a) log p_v - a log p_v' on ``{p_v >= b * max p_v}``.

    z_noised (B, V) are the logits of the visual pathway fed the noised video.
    ``fused``: as in ``msd_pair_scores``.
    """
    if use_fused(z_v, fused):
        return _fused_pair(z_v, z_noised, "p_noised", details, fused_step.VCD, vcd=cfg)
    logp_v = torch.log_softmax(_float32(z_v), dim=-1)
    logp_n = torch.log_softmax(_float32(z_noised), dim=-1)
    p_v = logp_v.exp()
    c = torch.full_like(logp_v[:, :1], cfg.beta)
    contrast = logp_v * cfg.alpha - logp_n * cfg.alpha
    scores, outside = _prune(logp_v, p_v, contrast, c)
    if not details:
        return scores, None
    vocab = {"p_v": p_v, "p_noised": logp_n.exp()}
    info = {"vocab": vocab, "row": {"c": c[:, 0], "v_head": p_v.shape[-1] - outside.sum(-1)},
            "y_hat": logp_v.argmax(-1)}
    return scores, info


def gather_token_log(info: dict, chosen: Tensor) -> dict[str, Tensor]:
    """The per-token log of one step, as (B,) tensors, for the chosen tokens (B,).

    For each (B, V) entry X of ``info["vocab"]`` (p_v, p_m, L1..L5, S, ...): ``X_chosen``
    and ``X_top`` (at the visual pathway's top token); plus ``token``, ``visual_top``,
    ``changed`` (MSD picked another token than the visual pathway's argmax) and the
    per-row entries (``c``, ``v_head``).
    """
    y_hat = info["y_hat"]
    both = torch.stack([chosen, y_hat], dim=-1)  # (B, 2)
    log = {"token": chosen, "visual_top": y_hat, "changed": chosen != y_hat}
    for name, values in info["vocab"].items():
        at = values.gather(-1, both)
        log[f"{name}_chosen"], log[f"{name}_top"] = at[:, 0], at[:, 1]
    log.update(info["row"])
    return log

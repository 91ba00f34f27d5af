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
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

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

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the enabled terms, in order, e.g. ``("L1", "L3")``."""
        switches = (self.use_l1, self.use_l2, self.use_l3, self.use_l4, self.use_l5)
        return tuple(name for name, on in zip(TERMS, switches) if on)

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


def _float32(z: Tensor) -> Tensor:
    return z if z.dtype == torch.float32 else z.float()


def synergy_terms(p_v: Tensor, p_m: Tensor, cfg: MSDConfig) -> dict[str, Tensor]:
    """The enabled synergy terms, each (B, V), from probabilities p_v, p_m (B, V).

    L1 = a1 * (exp(theta * min(p_v, p_m)) - 1) / (exp(theta) - 1)
    L2 = a2 * (p_v + p_m) / 2
    L3 = -a3 * log(1 + |p_v - p_m|)
    L4 = a4 * (p_v * p_m) ** (1 / a6)
    L5 = -a5 * (p_v - p_m) ** 2
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
        product = p_v * p_m
        root = product.sqrt_() if cfg.alpha6 == 2.0 else product.pow_(1.0 / cfg.alpha6)
        terms["L4"] = root.mul_(cfg.alpha4)
    return {name: terms[name] for name in TERMS if name in terms}


def _prune(logp_v: Tensor, p_v: Tensor, bonus: Tensor | None, c: Tensor) -> tuple[Tensor, Tensor]:
    """Scores ``log p_v + bonus`` on ``V_head = {p_v >= c * max p_v}``, -inf elsewhere;
    and |V_head| (B,).

    logp_v, p_v (B, V); bonus (B, V) or None; c (B, 1) in [0, 1], so the top token is
    always kept.
    """
    outside = p_v < c * p_v.amax(-1, keepdim=True)
    scores = logp_v if bonus is None else logp_v + bonus
    scores = scores.masked_fill(outside, float("-inf"))
    return scores, p_v.shape[-1] - outside.sum(-1)


def greedy_scores(z: Tensor) -> tuple[Tensor, dict]:
    """One pathway: the scores are the float32 logits z (B, V) themselves, nothing
    pruned, so argmax is ``generate``'s greedy choice bit for bit."""
    scores = _float32(z)
    y_hat = scores.argmax(-1)
    head_size = torch.full_like(y_hat, scores.shape[-1])
    p_v = torch.softmax(scores, dim=-1)
    info = {"vocab": {"p_v": p_v}, "row": {"v_head": head_size}, "y_hat": y_hat}
    return scores, info


def msd_scores(z_v: Tensor, z_m: Tensor, cfg: MSDConfig) -> tuple[Tensor, dict]:
    """MSD scores (B, V) from the visual and motion logits z_v, z_m (B, V).

    ``info["vocab"]`` holds p_v, p_m, each enabled L_i and S (all (B, V));
    ``info["row"]`` the cut c and |V_head| (B,).
    """
    logp_v = torch.log_softmax(_float32(z_v), dim=-1)
    p_v = logp_v.exp()
    p_m = torch.log_softmax(_float32(z_m), dim=-1).exp_()  # as p_v: equal logits, equal p
    terms = synergy_terms(p_v, p_m, cfg)
    y_hat = logp_v.argmax(-1)
    if terms:
        synergy = torch.stack(list(terms.values())).sum(0)
        s_hat = synergy.gather(-1, y_hat[:, None])
        c = (cfg.beta * (1.0 + s_hat)).clamp(0.0, 1.0)
    else:
        synergy = torch.zeros_like(p_v)
        c = torch.full_like(p_v[:, :1], min(cfg.beta, 1.0))
    scores, head_size = _prune(logp_v, p_v, synergy if terms else None, c)
    vocab = {"p_v": p_v, "p_m": p_m, **terms, "S": synergy}
    info = {"vocab": vocab, "row": {"c": c[:, 0], "v_head": head_size}, "y_hat": y_hat}
    return scores, info


def poe_scores(z_v: Tensor, z_m: Tensor, cfg: MSDConfig) -> tuple[Tensor, dict]:
    """Product of experts (B, V): log p_v + log p_m on ``{p_v >= beta * max p_v}``.

    The pruning is MSD's with S = 0, so only ``cfg.beta`` is read.
    """
    logp_v = torch.log_softmax(_float32(z_v), dim=-1)
    logp_m = torch.log_softmax(_float32(z_m), dim=-1)
    y_hat = logp_v.argmax(-1)
    p_v = logp_v.exp()
    c = torch.full_like(logp_v[:, :1], min(cfg.beta, 1.0))
    scores, head_size = _prune(logp_v, p_v, logp_m, c)
    vocab = {"p_v": p_v, "p_m": logp_m.exp()}
    info = {"vocab": vocab, "row": {"c": c[:, 0], "v_head": head_size}, "y_hat": y_hat}
    return scores, info


def vcd_scores(z_v: Tensor, z_noised: Tensor, cfg: VCDConfig) -> tuple[Tensor, dict]:
    """VCD (B, V): (1 + a) log p_v - a log p_v' on ``{p_v >= b * max p_v}``.

    z_noised (B, V) are the logits of the visual pathway fed the noised video.
    """
    logp_v = torch.log_softmax(_float32(z_v), dim=-1)
    logp_n = torch.log_softmax(_float32(z_noised), dim=-1)
    y_hat = logp_v.argmax(-1)
    p_v = logp_v.exp()
    c = torch.full_like(logp_v[:, :1], cfg.beta)
    contrast = logp_v * cfg.alpha - logp_n * cfg.alpha
    scores, head_size = _prune(logp_v, p_v, contrast, c)
    vocab = {"p_v": p_v, "p_noised": logp_n.exp()}
    info = {"vocab": vocab, "row": {"c": c[:, 0], "v_head": head_size}, "y_hat": y_hat}
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

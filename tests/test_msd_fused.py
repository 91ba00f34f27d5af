"""The compiled CPU step (``decoding.fused``) against the torch functions of msd.py, and
msd.md's properties on it: it is what every CPU decoder uses."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_msd import ANY_PAIR, CONFIGS, EIGHTHS, SETTINGS, logit_pairs

from macm_core.decoding import fused as fused_step
from macm_core.decoding.msd import MSDConfig, VCDConfig, gather_token_log, msd_pair_scores, msd_scores, \
    poe_scores, vcd_scores

torch.set_num_threads(1)


def same_top(fused_info, info):
    """Rows where both find the same visual top token; elsewhere the two tops must tie in
    float32 p_v (the fused step tells them apart by z_v, torch by the rounded p_v)."""
    same = fused_info["y_hat"] == info["y_hat"]
    p_v = info["vocab"]["p_v"]
    at = p_v.gather(-1, torch.stack([fused_info["y_hat"], info["y_hat"]], dim=-1))[~same]
    torch.testing.assert_close(at[:, 0], at[:, 1], rtol=1e-6, atol=0.0)
    return same


def assert_agree(fused_scores, torch_scores, p_v, cut):
    """Same V_head except for tokens within float32 rounding of the cut; on the common
    head, the same scores to float32 rounding."""
    head_f, head_t = torch.isfinite(fused_scores), torch.isfinite(torch_scores)
    border = (p_v - cut[:, None] * p_v.amax(-1, keepdim=True)).abs() <= 1e-6 * p_v.amax(-1, keepdim=True)
    assert torch.equal(head_f | border, head_t | border)
    both = head_f & head_t
    torch.testing.assert_close(fused_scores[both], torch_scores[both], rtol=1e-5, atol=1e-5)


@SETTINGS
@given(pair=ANY_PAIR, cfg=CONFIGS)
def test_fused_step_agrees_with_the_torch_functions(pair, cfg):
    z_v, z_m = pair
    reference, info = msd_scores(z_v, z_m, cfg, fused=False)
    scores, fused_info = msd_scores(z_v, z_m, cfg, fused=True)
    rows = same_top(fused_info, info)  # where the tops differ, S(y_hat) and so c may too
    torch.testing.assert_close(fused_info["row"]["c"][rows], info["row"]["c"][rows], rtol=1e-5, atol=1e-6)
    assert_agree(scores[rows], reference[rows], info["vocab"]["p_v"][rows], info["row"]["c"][rows])
    for name, function, config in (("poe", poe_scores, cfg), ("vcd", vcd_scores, VCDConfig())):
        reference, info = function(z_v, z_m, config, fused=False)
        scores, fused_info = function(z_v, z_m, config, fused=True)
        assert torch.equal(fused_info["row"]["c"], info["row"]["c"]), name
        same_top(fused_info, info)
        assert_agree(scores, reference, info["vocab"]["p_v"], info["row"]["c"])


@SETTINGS
@given(pair=ANY_PAIR, cfg=CONFIGS)
def test_no_nan_head_never_empty_and_the_log_is_the_step(pair, cfg):
    """No NaN, V_head holds y_hat, and the per-token log reads the step that chose the
    token: the same scores with and without details, its c, S and |V_head|."""
    z_v, z_m = pair
    scores, info = msd_scores(z_v, z_m, cfg, fused=True)
    fast, none = msd_scores(z_v, z_m, cfg, details=False, fused=True)
    assert none is None and torch.equal(fast, scores)
    assert not scores.isnan().any()
    y_hat = info["y_hat"]
    assert torch.isfinite(scores.gather(-1, y_hat[:, None])).all()
    assert torch.equal(y_hat, z_v.argmax(-1))
    assert torch.equal(info["row"]["v_head"], torch.isfinite(scores).sum(-1))
    log = gather_token_log(info, scores.argmax(-1))
    assert torch.equal(log["changed"], scores.argmax(-1) != y_hat)
    if cfg.enabled:
        # the logged terms add up to the S that chose the token
        terms = sum(log[f"{name}_chosen"] for name in cfg.enabled)
        torch.testing.assert_close(log["S_chosen"], terms, rtol=1e-5, atol=1e-5)
        # the log's S is the step's S on every token (not only on V_head)
        torch.testing.assert_close(info["vocab"]["S"], sum(info["vocab"][name] for name in cfg.enabled),
                                   rtol=1e-5, atol=1e-5)
    # the stacked entry point is the same step
    assert torch.equal(msd_pair_scores(torch.cat([z_v, z_m]), cfg, details=False)[0], scores)


@SETTINGS
@given(pair=logit_pairs(elements=EIGHTHS), shift_v=EIGHTHS, shift_m=EIGHTHS, cfg=CONFIGS)
def test_shift_invariance(pair, shift_v, shift_m, cfg):
    z_v, z_m = pair
    scores, _ = msd_scores(z_v, z_m, cfg, fused=True)
    assert torch.equal(msd_scores(z_v + shift_v, z_m + shift_m, cfg, fused=True)[0], scores)
    assert torch.equal(poe_scores(z_v + shift_v, z_m + shift_m, cfg, fused=True)[0],
                       poe_scores(z_v, z_m, cfg, fused=True)[0])
    assert torch.equal(vcd_scores(z_v + shift_v, z_m + shift_m, VCDConfig(), fused=True)[0],
                       vcd_scores(z_v, z_m, VCDConfig(), fused=True)[0])


@SETTINGS
@given(pair=logit_pairs(elements=EIGHTHS), shift=EIGHTHS, cfg=CONFIGS)
def test_equal_pathways_never_change_the_greedy_choice(pair, shift, cfg):
    z_v, _ = pair
    scores, info = msd_scores(z_v, z_v + shift, cfg, fused=True)
    # in float64 p is exact enough that every tie of z_v is a tie of p: on ties MSD
    # picks one of the tied tokens, otherwise the visual argmax
    chosen = scores.argmax(-1)
    assert torch.equal(z_v.gather(-1, chosen[:, None])[:, 0], z_v.amax(-1))


@SETTINGS
@given(pair=logit_pairs(), beta=st.floats(0.0, 1.0))
def test_all_terms_disabled_is_visual_greedy_pruned_by_beta(pair, beta):
    z_v, z_m = pair
    scores, info = msd_scores(z_v, z_m, MSDConfig(beta=beta).only(), fused=True)
    # the visual argmax, or a token whose score rounds to the same float32
    top = z_v.argmax(-1, keepdim=True)
    assert torch.equal(scores.amax(-1, keepdim=True), scores.gather(-1, top))
    assert (info["row"]["c"] == np.float32(beta)).all()
    z64 = z_v.double()
    logp = torch.log_softmax(z64, -1)
    head = (z64 - z64.amax(-1, keepdim=True)).exp() >= beta  # p_v / max p_v >= beta
    assert torch.equal(torch.isfinite(scores), head)
    torch.testing.assert_close(scores[head], logp[head].float())


def test_wrong_shapes_and_devices():
    with pytest.raises(ValueError, match="stacked logits"):
        fused_step.step(torch.zeros(3, 5), fused_step.MSD, msd=MSDConfig())
    assert not fused_step.available(torch.zeros(2, 5, device="meta"))
    with pytest.raises(RuntimeError, match="needs CPU logits"):
        msd_scores(torch.zeros(1, 5, device="meta"), torch.zeros(1, 5, device="meta"), MSDConfig(), fused=True)

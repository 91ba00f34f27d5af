"""One step of MSD and its baselines: the formulas of msd.md and the properties it lists,
on the torch functions of msd.py (the reference; tests/test_msd_fused.py checks the
compiled CPU step against them and against the same properties)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from macm_core.decoding import fused as fused_step
from macm_core.decoding.example import FOOT, HAND, hand_foot_logits
from macm_core.decoding.example import VOCAB as EXAMPLE_VOCAB
from macm_core.decoding.msd import (
    TERMS,
    MSDConfig,
    VCDConfig,
    cut_floor,
    gather_token_log,
    greedy_scores,
    msd_scores,
    poe_scores,
    synergy,
    synergy_bounds,
    synergy_terms,
    vcd_scores,
)

torch.set_num_threads(1)
SETTINGS = settings(max_examples=150, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def torch_functions_only():
    """Every step of this module is scored by the torch functions, not ``fused.step``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_step, "available", lambda logits: False)
        yield

# logits: extremes, ties and ordinary values all show up often
LOGIT = st.one_of(st.sampled_from([-1e4, -30.0, 0.0, 1.0, 30.0, 1e4]),
                  st.floats(-1e4, 1e4, width=32))


@st.composite
def logit_pairs(draw, elements=LOGIT):
    """Two (B, V) float32 tensors of logits with the same shape."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 12)))
    z_v = draw(arrays(np.float32, shape, elements=elements))
    z_m = draw(arrays(np.float32, shape, elements=elements))
    return torch.from_numpy(z_v), torch.from_numpy(z_m)


def one_hot_logits(b, v, hot, *, high=1e4, low=-1e4):
    z = torch.full((b, v), low)
    z[:, hot] = high
    return z


@st.composite
def one_hot_pairs(draw):
    """Logit pairs where p_v, p_m or both are one-hot (a +1e4 spike over -1e4), the rest
    any logits."""
    z_v, z_m = draw(logit_pairs())
    b, v = z_v.shape
    for z in draw(st.sampled_from([(z_v,), (z_m,), (z_v, z_m)])):
        z.fill_(-1e4)
        z[torch.arange(b), torch.tensor([draw(st.integers(0, v - 1)) for _ in range(b)])] = 1e4
    return z_v, z_m


# every pair of logits the properties are checked on: ordinary values, extremes, ties, one-hot
ANY_PAIR = st.one_of(logit_pairs(), one_hot_pairs())

# the decoders' fast path (no per-token log): S over the whole vocabulary or on candidates
FAST = [dict(details=False, candidates=False), dict(details=False, candidates=True)]


@st.composite
def msd_configs(draw):
    """Any admissible constants (non-negative weights) and any set of enabled terms."""
    weight = st.floats(0.0, 2.0)
    return MSDConfig(
        alpha1=draw(weight), alpha2=draw(weight), alpha3=draw(weight), alpha4=draw(weight),
        alpha5=draw(weight), alpha6=draw(st.floats(0.25, 4.0)), beta=draw(st.floats(0.0, 1.5)),
        theta=draw(st.floats(0.1, 5.0)),
        use_l1=draw(st.booleans()), use_l2=draw(st.booleans()), use_l3=draw(st.booleans()),
        use_l4=draw(st.booleans()), use_l5=draw(st.booleans()))


CONFIGS = st.one_of(st.just(MSDConfig()), msd_configs())


# --------------------------------------------------------------------------- formulas


def reference_terms(p_v, p_m, cfg):
    """The table of msd.md in float64 numpy, written independently of msd.py."""
    p_v, p_m = np.float64(p_v), np.float64(p_m)
    return {
        "L1": cfg.alpha1 * (np.exp(cfg.theta * np.minimum(p_v, p_m)) - 1) / (np.exp(cfg.theta) - 1),
        "L2": cfg.alpha2 * (p_v + p_m) / 2,
        "L3": -cfg.alpha3 * np.log(1 + np.abs(p_v - p_m)),
        "L4": cfg.alpha4 * (p_v * p_m) ** (1 / cfg.alpha6),
        "L5": -cfg.alpha5 * (p_v - p_m) ** 2,
    }


@SETTINGS
@given(pair=logit_pairs(elements=st.floats(-20, 20, width=32)), cfg=CONFIGS)
def test_synergy_terms_follow_the_table(pair, cfg):
    p_v, p_m = (torch.softmax(z, -1) for z in pair)
    terms = synergy_terms(p_v, p_m, cfg)
    assert tuple(terms) == cfg.enabled
    expected = reference_terms(p_v.numpy(), p_m.numpy(), cfg)
    for name, value in terms.items():
        assert value.shape == p_v.shape and value.dtype == torch.float32
        np.testing.assert_allclose(value.numpy(), expected[name], rtol=2e-5, atol=2e-6)


def test_config_switches_and_validation():
    assert MSDConfig().enabled == TERMS
    assert MSDConfig().only("L1", "L4").enabled == ("L1", "L4")
    assert MSDConfig().only().enabled == ()
    assert MSDConfig(alpha1=0.7).only("L2").alpha1 == 0.7
    with pytest.raises(ValueError):
        MSDConfig().only("L6")
    for bad in ({"alpha6": 0.0}, {"theta": 0.0}, {"beta": -0.1}):
        with pytest.raises(ValueError):
            MSDConfig(**bad)
    with pytest.raises(ValueError):
        VCDConfig(beta=1.5)


# --------------------------------------------------------------------------- properties


def check_scores(scores, info, z_v):
    """No NaN; V_head non-empty and holding the visual top token; argmax inside V_head."""
    assert not torch.isnan(scores).any()
    head = torch.isfinite(scores)
    assert (head.sum(-1) >= 1).all()
    assert torch.equal(head.sum(-1), info["row"]["v_head"])
    assert head.gather(-1, info["y_hat"][:, None]).all()
    p_v = info["vocab"]["p_v"]
    assert torch.equal(p_v.gather(-1, info["y_hat"][:, None])[:, 0], p_v.amax(-1))
    assert head.gather(-1, scores.argmax(-1, keepdim=True)).all()
    for values in info["vocab"].values():
        assert not torch.isnan(values).any()


@SETTINGS
@given(pair=ANY_PAIR, cfg=CONFIGS)
def test_no_nan_and_v_head_never_empty(pair, cfg):
    z_v, z_m = pair
    scores, info = msd_scores(z_v, z_m, cfg)
    check_scores(scores, info, z_v)
    c = info["row"]["c"]
    assert ((c >= 0) & (c <= 1)).all()
    for other, other_info in (poe_scores(z_v, z_m, cfg), vcd_scores(z_v, z_m, VCDConfig())):
        check_scores(other, other_info, z_v)
    for fast in FAST:  # the path the decoding loop takes: the same scores, so the same checks
        fast_scores, none = msd_scores(z_v, z_m, cfg, **fast)
        assert none is None and torch.equal(fast_scores, scores)
    assert torch.equal(poe_scores(z_v, z_m, cfg, details=False)[0], poe_scores(z_v, z_m, cfg)[0])
    vcd = vcd_scores(z_v, z_m, VCDConfig())[0]
    assert torch.equal(vcd_scores(z_v, z_m, VCDConfig(), details=False)[0], vcd)
    assert torch.equal(greedy_scores(z_v, details=False)[0], greedy_scores(z_v)[0])


@pytest.mark.parametrize("cfg", [MSDConfig(), MSDConfig(beta=1.5), MSDConfig().only()])
def test_one_hot_and_ties(cfg):
    v = 7
    cases = [
        (one_hot_logits(2, v, 3), one_hot_logits(2, v, 3)),   # both one-hot, agreeing
        (one_hot_logits(2, v, 3), one_hot_logits(2, v, 5)),   # both one-hot, disagreeing
        (torch.zeros(2, v), one_hot_logits(2, v, 5)),         # flat vs one-hot
        (one_hot_logits(2, v, 1), torch.zeros(2, v)),         # one-hot vs flat
        (torch.zeros(2, v), torch.zeros(2, v)),               # all tied
        (torch.full((2, v), 1e4), torch.full((2, v), -1e4)),  # tied at the extremes
    ]
    for z_v, z_m in cases:
        scores, info = msd_scores(z_v, z_m, cfg)
        check_scores(scores, info, z_v)
    # a one-hot visual pathway keeps exactly its token whatever the motion pathway says
    scores, info = msd_scores(one_hot_logits(1, v, 3), one_hot_logits(1, v, 5), cfg)
    assert info["row"]["v_head"].item() == 1 and scores.argmax().item() == 3
    # all tied: every token is in V_head and the first one wins, like argmax
    scores, info = msd_scores(torch.zeros(1, v), torch.zeros(1, v), cfg)
    assert info["row"]["v_head"].item() == v and scores.argmax().item() == 0


# multiples of 1/8 up to 1e4 are exact in float32, and so are their sums: a shift then
# changes the logits exactly by a constant, and the scores must not change at all
EIGHTHS = st.integers(-80_000, 80_000).map(lambda k: k / 8)


@SETTINGS
@given(pair=logit_pairs(elements=EIGHTHS), shift_v=EIGHTHS, shift_m=EIGHTHS, cfg=CONFIGS)
def test_shift_invariance(pair, shift_v, shift_m, cfg):
    z_v, z_m = pair
    scores, _ = msd_scores(z_v, z_m, cfg)
    assert torch.equal(msd_scores(z_v + shift_v, z_m, cfg)[0], scores)
    assert torch.equal(msd_scores(z_v, z_m + shift_m, cfg)[0], scores)
    assert torch.equal(msd_scores(z_v + shift_v, z_m + shift_m, cfg)[0], scores)
    for fast in FAST:
        assert torch.equal(msd_scores(z_v + shift_v, z_m + shift_m, cfg, **fast)[0], scores)
    assert torch.equal(poe_scores(z_v + shift_v, z_m + shift_m, cfg)[0], poe_scores(z_v, z_m, cfg)[0])
    vcd = vcd_scores(z_v, z_m, VCDConfig())[0]
    assert torch.equal(vcd_scores(z_v + shift_v, z_m + shift_m, VCDConfig())[0], vcd)


@SETTINGS
@given(pair=st.one_of(logit_pairs(), logit_pairs(elements=EIGHTHS)), shift=EIGHTHS,
       cfg=CONFIGS)
def test_equal_pathways_never_change_the_greedy_choice(pair, shift, cfg):
    z_v, _ = pair
    # on the 1/8 grid the shifted copy has exactly the same p; otherwise use no shift
    on_grid = torch.equal(z_v * 8, (z_v * 8).round())
    z_m = z_v + (shift if on_grid else 0.0)
    scores, info = msd_scores(z_v, z_m, cfg)
    assert torch.equal(info["vocab"]["p_v"], info["vocab"]["p_m"])
    for fast in FAST:
        assert torch.equal(msd_scores(z_v, z_m, cfg, **fast)[0], scores)
    chosen = scores.argmax(-1)
    p_v = info["vocab"]["p_v"]
    top2 = p_v.topk(min(2, p_v.shape[-1]), dim=-1).values
    # where the visual top token is clear (beyond float32 rounding), MSD keeps it ...
    clear = top2[:, 0] > top2[:, -1] * (1 + 1e-5)
    assert torch.equal(chosen[clear], z_v.argmax(-1)[clear])
    # ... and on (near-)ties it picks one of the tied most likely tokens.  Which one may
    # differ from argmax: elementwise kernels round the same input differently in their
    # vector body and scalar tail, so exact ties do not survive the synergy terms.
    torch.testing.assert_close(p_v.gather(-1, chosen[:, None])[:, 0], p_v.amax(-1),
                               rtol=1e-5, atol=0.0)


@SETTINGS
@given(pair=logit_pairs(), beta=st.floats(0.0, 1.5))
def test_all_terms_disabled_is_visual_greedy_pruned_by_beta(pair, beta):
    z_v, z_m = pair
    cfg = MSDConfig(beta=beta).only()
    scores, info = msd_scores(z_v, z_m, cfg)
    logp_v = torch.log_softmax(z_v, -1)
    assert torch.equal(scores.argmax(-1), logp_v.argmax(-1))
    p_v = logp_v.exp()
    cut = min(beta, 1.0) * p_v.amax(-1, keepdim=True)
    head = torch.isfinite(scores)
    assert torch.equal(head, p_v >= cut)
    assert torch.equal(scores[head], logp_v[head])
    assert (info["row"]["c"] == min(beta, 1.0)).all()
    assert not info["vocab"]["S"].any()
    for fast in FAST:
        assert torch.equal(msd_scores(z_v, z_m, cfg, **fast)[0], scores)


@SETTINGS
@given(pair=logit_pairs(elements=st.floats(-30, 30, width=32)), alpha=st.floats(0.0, 3.0),
       beta=st.floats(0.0, 1.0))
def test_poe_and_vcd_follow_their_formulas(pair, alpha, beta):
    z_v, z_n = pair
    p_v = torch.softmax(z_v, -1)
    head = p_v >= beta * p_v.amax(-1, keepdim=True)
    # VCD: (1 + a) z_v - a z_v' up to one constant per row, on {p_v >= b max p_v}
    scores, _ = vcd_scores(z_v, z_n, VCDConfig(alpha=alpha, beta=beta))
    assert torch.equal(torch.isfinite(scores), head)
    offset = scores - ((1 + alpha) * z_v - alpha * z_n)
    spread = (offset.masked_fill(~head, -torch.inf).amax(-1)
              - offset.masked_fill(~head, torch.inf).amin(-1))
    assert (spread < 1e-4 * (1 + alpha) * 60).all()
    # PoE: log p_v + log p_m on MSD's V_head with S = 0
    scores, _ = poe_scores(z_v, z_n, MSDConfig(beta=beta))
    expected = torch.log_softmax(z_v, -1) + torch.log_softmax(z_n, -1)
    assert torch.equal(torch.isfinite(scores), head)
    torch.testing.assert_close(scores[head], expected[head])


def test_greedy_scores_are_the_logits():
    z = torch.tensor([[0.5, 2.0, -1.0], [3.0, 3.0, 0.0]])
    scores, info = greedy_scores(z.double())
    assert scores.dtype == torch.float32 and torch.equal(scores, z)
    torch.testing.assert_close(info["vocab"]["p_v"], torch.softmax(z, -1))
    assert info["y_hat"].tolist() == [1, 0] and info["row"]["v_head"].tolist() == [3, 3]


def test_low_precision_logits_are_scored_in_float32():
    z_v = torch.randn(2, 50, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    scores, info = msd_scores(z_v, z_v.flip(-1), MSDConfig())
    assert scores.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in info["vocab"].values())


# --------------------------------------------------------------------------- the fast path


def test_elementwise_ops_do_not_depend_on_position():
    """What the candidate restriction relies on: S of a gathered subset of tokens is, bit
    for bit, S of those tokens inside the whole vocabulary (vector body and scalar tail of
    each kernel agree).  The general power does not have this property on CPU, which is
    why L4 takes its root as exp(log(x) / a6)."""
    g = torch.Generator().manual_seed(0)
    p_v = torch.softmax(torch.randn(3, 5003, generator=g) * 4, -1)
    p_m = torch.softmax(torch.randn(3, 5003, generator=g) * 4, -1)
    for cfg in (MSDConfig(), MSDConfig(alpha6=1.7), MSDConfig(alpha6=0.3).only("L4", "L1")):
        full = synergy(p_v, p_m, cfg)
        for size in (1, 3, 7, 8, 9, 17, 31, 64, 1000):
            idx = torch.randint(0, p_v.numel(), (size,), generator=g)
            part = synergy(p_v.flatten()[idx], p_m.flatten()[idx], cfg)
            assert torch.equal(part, full.flatten()[idx]), (cfg, size)


@SETTINGS
@given(pair=ANY_PAIR, cfg=CONFIGS)
def test_cut_floor_is_below_every_cut_and_synergy_within_its_bounds(pair, cfg):
    """The lemma of msd_scores' proof: c >= cut_floor(cfg) for the computed c."""
    z_v, z_m = pair
    scores, info = msd_scores(z_v, z_m, cfg)
    assert (info["row"]["c"] >= cut_floor(cfg)).all()
    low, high = synergy_bounds(cfg)
    s = info["vocab"]["S"]
    slack = 1e-5 * (1 + cfg.alpha1 + cfg.alpha2 + cfg.alpha3 + cfg.alpha4 + cfg.alpha5)
    assert (s >= low - slack).all() and (s <= high + slack).all()
    # V_head lies inside the candidates {p_v >= c_lo * max p_v}
    p_v = info["vocab"]["p_v"]
    candidates = p_v >= p_v.amax(-1, keepdim=True) * cut_floor(cfg)
    assert not (torch.isfinite(scores) & ~candidates).any()


@SETTINGS
@given(pair=logit_pairs(elements=st.floats(-20, 20, width=32)), cfg=CONFIGS)
def test_synergy_is_the_sum_of_the_logged_terms(pair, cfg):
    p_v, p_m = (torch.softmax(z, -1) for z in pair)
    total = synergy(p_v, p_m, cfg)
    terms = synergy_terms(p_v, p_m, cfg)
    if not terms:
        assert total is None
        return
    torch.testing.assert_close(total, torch.stack(list(terms.values())).sum(0), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(pair=ANY_PAIR, cfg=CONFIGS, candidates=st.sampled_from([None, True, False]))
def test_fast_path_gives_the_same_scores_bit_for_bit(pair, cfg, candidates):
    """The decoders' path (no per-token log; S on candidate tokens when asked) against the
    full computation over the vocabulary: equal scores, so equal tokens, ties included."""
    z_v, z_m = pair
    reference, info = msd_scores(z_v, z_m, cfg)
    fast, none = msd_scores(z_v, z_m, cfg, details=False, candidates=candidates)
    assert none is None
    assert torch.equal(fast, reference)
    assert torch.equal(fast.argmax(-1), reference.argmax(-1))


def test_fast_path_on_a_large_vocabulary():
    """Candidates are used by default from CANDIDATE_MIN_VOCAB tokens on (CPU): the same
    scores as the full computation, on peaked and on flat distributions."""
    g = torch.Generator().manual_seed(1)
    for scale in (0.01, 1.0, 8.0):
        z_v = torch.randn(2, 50_000, generator=g) * scale
        z_m = torch.randn(2, 50_000, generator=g) * scale
        for cfg in (MSDConfig(), MSDConfig(alpha6=3.0), MSDConfig().only("L3", "L5")):
            reference, _ = msd_scores(z_v, z_m, cfg)
            assert torch.equal(msd_scores(z_v, z_m, cfg, details=False)[0], reference)


def test_cut_floor_values():
    # paper constants: S >= -a3 log 2 - a5, so c >= beta (1 - 0.4 log 2 - 0.3) ~ 0.0846
    assert cut_floor(MSDConfig()) == pytest.approx(0.2 * (1 - 0.4 * math.log(2) - 0.3), abs=1e-3)
    assert cut_floor(MSDConfig()) < 0.2 * (1 - 0.4 * math.log(2) - 0.3)
    assert cut_floor(MSDConfig(beta=0.0)) == 0.0          # no floor: the full computation is used
    assert cut_floor(MSDConfig(alpha5=5.0)) == 0.0        # S can reach below -1
    assert synergy_bounds(MSDConfig().only()) == (0, 0)
    assert synergy_bounds(MSDConfig().only("L2", "L4")) == (0.0, pytest.approx(1.0))


# --------------------------------------------------------------------------- worked example

# the example lives in the package: notebooks/04_msd.py prints the same numbers
VOCAB = list(EXAMPLE_VOCAB)


def test_hand_vs_foot_worked_example():
    cfg = MSDConfig()
    z_v, z_m = hand_foot_logits()
    scores, info = msd_scores(z_v, z_m, cfg)
    log = {k: v.item() for k, v in gather_token_log(info, scores.argmax(-1)).items()}
    greedy = z_v.argmax(-1).item()
    assert VOCAB[greedy] == "foot" and VOCAB[log["token"]] == "hand" and log["changed"]

    # every number by hand (math on Python floats), against the implementation
    p_v = torch.softmax(z_v.double(), -1)[0]
    p_m = torch.softmax(z_m.double(), -1)[0]

    def terms_at(y):
        a, b = p_v[y].item(), p_m[y].item()
        return [cfg.alpha1 * math.expm1(cfg.theta * min(a, b)) / math.expm1(cfg.theta),
                cfg.alpha2 * (a + b) / 2, -cfg.alpha3 * math.log1p(abs(a - b)),
                cfg.alpha4 * (a * b) ** (1 / cfg.alpha6), -cfg.alpha5 * (a - b) ** 2]

    s_hand, s_foot = sum(terms_at(HAND)), sum(terms_at(FOOT))
    c = min(max(cfg.beta * (1 + s_foot), 0.0), 1.0)
    assert log["c"] == pytest.approx(c, rel=1e-5)
    assert log["S_chosen"] == pytest.approx(s_hand, rel=1e-5)
    assert log["S_top"] == pytest.approx(s_foot, abs=1e-6)
    for i, name in enumerate(TERMS):
        assert log[f"{name}_chosen"] == pytest.approx(terms_at(HAND)[i], rel=1e-5, abs=1e-7)
        assert log[f"{name}_top"] == pytest.approx(terms_at(FOOT)[i], rel=1e-5, abs=1e-7)
    head = [VOCAB[y] for y in range(len(VOCAB)) if p_v[y] >= c * p_v.max()]
    assert head == ["hand", "foot"] and log["v_head"] == 2
    score_hand = math.log(p_v[HAND]) + s_hand
    score_foot = math.log(p_v[FOOT]) + s_foot
    assert score_hand > score_foot
    assert scores[0, HAND].item() == pytest.approx(score_hand, rel=1e-5)

    # without the synergy, or with the pathways swapped, "foot" stays
    assert msd_scores(z_v, z_m, cfg.only())[0].argmax().item() == FOOT
    assert msd_scores(z_v, z_v, cfg)[0].argmax().item() == FOOT
    print(f"\nhand-vs-foot: p_v(hand)={p_v[HAND]:.4f} p_v(foot)={p_v[FOOT]:.4f} "
          f"p_m(hand)={p_m[HAND]:.4f} p_m(foot)={p_m[FOOT]:.4f}")
    print("  L1..L5(hand) = " + ", ".join(f"{t:+.4f}" for t in terms_at(HAND)) + f"  S={s_hand:+.4f}")
    print("  L1..L5(foot) = " + ", ".join(f"{t:+.4f}" for t in terms_at(FOOT)) + f"  S={s_foot:+.4f}")
    print(f"  c={c:.4f}  V_head={head}  score(hand)={score_hand:+.4f} score(foot)={score_foot:+.4f}")


def test_token_log_fields():
    z_v, z_m = hand_foot_logits()
    scores, info = msd_scores(z_v, z_m, MSDConfig().only("L2", "L4"))
    log = gather_token_log(info, scores.argmax(-1))
    expected = {"token", "visual_top", "changed", "c", "v_head"}
    for name in ("p_v", "p_m", "L2", "L4", "S"):
        expected |= {f"{name}_chosen", f"{name}_top"}
    assert set(log) == expected
    assert all(v.shape == (1,) for v in log.values())
    assert log["p_v_top"].item() == pytest.approx(torch.softmax(z_v, -1).max().item())

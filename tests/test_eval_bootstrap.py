"""Bootstrap intervals, and corpus metrics recomputed on resampled clips (no Java)."""
import math

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from macm_core.eval import CiderD, bootstrap_ci, resample_indices
from macm_core.eval.bootstrap import weights_of
from macm_core.eval.corpus import bleu_from_stats, bleu_scores, bleu_stats


def test_resamples_are_deterministic_given_the_seed():
    a, b = resample_indices(50, 20, seed=3), resample_indices(50, 20, seed=3)
    assert a.shape == (20, 50) and np.array_equal(a, b)
    assert not np.array_equal(a, resample_indices(50, 20, seed=4))
    assert a.min() >= 0 and a.max() < 50
    values = np.random.default_rng(0).random(50)
    assert bootstrap_ci(values, n=200, seed=1) == bootstrap_ci(values, n=200, seed=1)
    assert bootstrap_ci(values, n=200, seed=1) != bootstrap_ci(values, n=200, seed=2)


def test_interval_contains_the_estimate_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)
    widths = []
    for size in (20, 2000):
        values = (rng.random(size) < 0.3).astype(float)
        mean, low, high = bootstrap_ci(values, n=500, seed=0)
        assert mean == pytest.approx(values.mean())
        assert low <= mean <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 4          # ~ 1 / sqrt(N): 10x more clips, ~10x narrower
    _, low90, high90 = bootstrap_ci(values, n=500, seed=0, level=0.9)
    assert high90 - low90 < widths[1]


def test_a_statistic_function_gets_resampled_indices():
    num = np.array([1.0, 0.0, 2.0, 1.0])
    den = np.array([1.0, 2.0, 2.0, 1.0])
    seen = []

    def ratio(idx):
        seen.append(idx)
        w = weights_of(idx, 4)
        return float(num @ w / (den @ w))

    estimate, low, high = bootstrap_ci(ratio, size=4, n=50, seed=0)
    assert estimate == pytest.approx(4 / 6) and low <= estimate <= high
    assert len(seen) == 51 and np.array_equal(seen[0], np.arange(4))
    assert all(s.shape == (4,) for s in seen)
    with pytest.raises(ValueError, match="size="):
        bootstrap_ci(ratio)


def test_nan_resamples_are_left_out_and_bad_arguments_rejected():
    def first_is_nan(idx):
        return float("nan") if 0 in idx else 1.0

    estimate, low, high = bootstrap_ci(first_is_nan, size=3, n=100, seed=0)
    assert math.isnan(estimate) and low == high == 1.0
    assert all(math.isnan(x) for x in bootstrap_ci(lambda idx: float("nan"), size=3, n=5)[1:])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.ones(3), level=1.5)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(np.ones(0))
    assert bootstrap_ci(np.ones(3), n=10) == (1.0, 1.0, 1.0)


# tokenized captions (as the PTB tokenizer leaves them), two clips with two references
PREDICTIONS = ["a person waves the left hand twice", "someone jumps in place",
               "the person kicks forward with the right foot", "a person nods the head",
               "", "a person waves the right hand"]
REFERENCES = [["the person waves the left hand twice", "a person waves a hand"],
              ["the person jumps straight up once"],
              ["the person kicks forward with the left foot three times"],
              ["someone nods their head slowly", "a person nods"],
              ["the person squats twice"],
              ["the person slowly waves the right hand"]]


def pycoco(scorer, idx):
    """pycocoevalcap's score of the clips idx (duplicates as distinct clips)."""
    gts = {f"{i}#{k}": REFERENCES[i] for k, i in enumerate(idx)}
    res = {f"{i}#{k}": [PREDICTIONS[i]] for k, i in enumerate(idx)}
    return scorer.compute_score(gts, res, verbose=0) if isinstance(scorer, Bleu) else \
        scorer.compute_score(gts, res)


@pytest.mark.parametrize("idx", [np.arange(6), np.array([0, 0, 1, 3, 3, 3]),
                                 np.array([5, 4, 4, 2, 1, 0, 0])])
def test_cider_d_matches_pycocoevalcap_on_resamples(idx):
    cider = CiderD(PREDICTIONS, REFERENCES)
    size = len(PREDICTIONS)
    want, want_clips = pycoco(Cider(), idx)
    assert cider(weights_of(idx, size)) == pytest.approx(want, rel=1e-12, abs=1e-12)
    got_clips = cider.clip_scores(weights_of(idx, size))[idx]
    np.testing.assert_allclose(got_clips, want_clips, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("idx", [np.arange(6), np.array([0, 0, 1, 3, 3, 3]),
                                 np.array([4, 4, 4, 2])])
def test_bleu_matches_pycocoevalcap_on_resamples(idx):
    stats = bleu_stats(PREDICTIONS, REFERENCES)
    want, _ = pycoco(Bleu(4), idx)
    got = bleu_from_stats(stats, weights_of(idx, len(PREDICTIONS)))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_cider_of_one_clip_is_zero():
    """A pycocoevalcap quirk kept on purpose: with one clip every idf is log(1) = 0."""
    assert CiderD(PREDICTIONS[:1], REFERENCES[:1])(np.ones(1)) == 0.0


def test_weighted_bootstrap_draws_bootstrap_ci_s_resamples():
    """A statistic of weight matrices gets the resamples of ``bootstrap_ci`` (same seed),
    in blocks of at most ``BLOCK`` rows; NaN resamples are left out; a statistic that
    returns the wrong shape is a clear error."""
    from macm_core.eval import bootstrap_weighted
    from macm_core.eval.bootstrap import BLOCK, weight_matrix

    num = np.array([1.0, 0.0, 2.0, 1.0, 3.0])
    den = np.array([1.0, 2.0, 2.0, 1.0, 4.0])
    blocks = []

    def ratio(weights):
        blocks.append(weights)
        return weights @ num / (weights @ den)

    got = bootstrap_weighted(ratio, size=5, n=BLOCK + 7, seed=3)
    want = bootstrap_ci(lambda idx: float(num @ weights_of(idx, 5) / (den @ weights_of(idx, 5))),
                        size=5, n=BLOCK + 7, seed=3)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert np.array_equal(blocks[0], np.ones((1, 5)))
    assert all(len(b) <= BLOCK for b in blocks[1:]) and sum(len(b) for b in blocks[1:]) == BLOCK + 7
    np.testing.assert_array_equal(np.concatenate(blocks[1:]), weight_matrix(resample_indices(5, BLOCK + 7, 3), 5))
    nan_first = bootstrap_weighted(lambda w: np.where(w[:, 0] > 0, np.nan, 1.0), size=5, n=100, seed=0)
    assert math.isnan(nan_first[0]) and nan_first[1:] == (1.0, 1.0)
    with pytest.raises(ValueError, match="one value per row"):
        bootstrap_weighted(lambda w: w.sum(), size=5, n=10)


@pytest.mark.parametrize("idx", [np.arange(6), np.array([0, 0, 1, 3, 3, 3]), np.array([5, 4, 4, 2, 1, 0])])
def test_cider_and_bleu_of_many_resamples_at_once_equal_one_at_a_time(idx):
    cider, stats = CiderD(PREDICTIONS, REFERENCES), bleu_stats(PREDICTIONS, REFERENCES)
    weights = np.stack([weights_of(idx, 6), np.ones(6), weights_of(idx[::-1][:3], 6)])
    np.testing.assert_allclose(cider.corpus(weights), [cider(w) for w in weights], rtol=1e-12)
    np.testing.assert_allclose(cider.clip_scores(weights), [cider.clip_scores(w) for w in weights], rtol=1e-12)
    np.testing.assert_allclose(bleu_scores(stats, weights), [bleu_from_stats(stats, w) for w in weights],
                               rtol=1e-12)
